//! The HTTP front: one `POST /` endpoint. Each request is read (bounded), authenticated,
//! routed by its target, and answered in the awsJson1_1 shape.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{get, post};
use berth_model::arn::Scope;
use berth_model::{ApiError, ErrorCode};
use berth_store::Store;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::api::{self, Ctx, Shared};
use crate::auth::{RequestParts, SigV4Verifier};
use crate::protocol;
use crate::sessions::{self, SessionHub};

/// How the server is set up.
pub struct ServerConfig {
    /// The account id in every ARN.
    pub account_id: String,
    /// The region of requests whose credential scope names none (unauthenticated mode).
    pub default_region: String,
    /// The verifier of signed requests; `None` only with `--no-auth`.
    pub verifier: Option<SigV4Verifier>,
    /// How long a service task without health checks must have been RUNNING before
    /// it counts as healthy in a deployment (ECS waits 40 seconds).
    pub task_running_grace: std::time::Duration,
    /// How long an instance's agent may be disconnected before its tasks are marked
    /// STOPPED (and services replace them elsewhere).
    pub lost_agent_grace: std::time::Duration,
}

/// Everything a request handler shares.
pub struct App {
    store: Arc<dyn Store>,
    config: ServerConfig,
    shared: Shared,
    sessions: SessionHub,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            shared: Shared::default(),
            sessions: SessionHub::default(),
        })
    }
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn verifier(&self) -> Option<&SigV4Verifier> {
        self.config.verifier.as_ref()
    }
    pub fn default_region(&self) -> &str {
        &self.config.default_region
    }
    pub fn account_id(&self) -> &str {
        &self.config.account_id
    }
    pub fn sessions(&self) -> &SessionHub {
        &self.sessions
    }
    pub fn shared(&self) -> &Shared {
        &self.shared
    }
    pub fn task_running_grace(&self) -> std::time::Duration {
        self.config.task_running_grace
    }
    pub fn lost_agent_grace(&self) -> std::time::Duration {
        self.config.lost_agent_grace
    }
}

/// The router of the ECS endpoint.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route(berth_proto::SESSION_PATH, get(sessions::upgrade))
        .with_state(app)
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match respond(&app, request).await {
        Ok(body) => protocol::success(body, &request_id),
        Err(error) => {
            if error.code == ErrorCode::ServerException {
                tracing::error!(%request_id, message = %error.message, "request failed");
            } else {
                tracing::debug!(%request_id, code = %error.code, message = %error.message, "request refused");
            }
            protocol::failure(&error, &request_id)
        }
    }
}

async fn respond(app: &App, request: Request) -> Result<Bytes, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body).await?;
    let (region, principal) = match &app.config.verifier {
        Some(verifier) => {
            let caller =
                verifier.verify(&RequestParts::from_http(&parts), &body, SystemTime::now())?;
            (caller.region, Some(caller.access_key_id))
        }
        None => (
            unverified_region(&parts.headers).unwrap_or_else(|| app.config.default_region.clone()),
            None,
        ),
    };
    protocol::check_content_type(&parts.headers)?;
    let op = protocol::operation(&parts.headers)?;
    let scope = Scope::new(region, app.config.account_id.clone());
    let access_key_id = principal;
    let principal_arn = match &access_key_id {
        Some(access_key_id) => format!("arn:aws:iam::{}:user/{access_key_id}", scope.account),
        None => scope.account_root_arn(),
    };
    let mut ctx = Ctx::new(app.store.as_ref(), &app.shared, scope, principal_arn);
    ctx.access_key_id = access_key_id;
    ctx.host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    api::dispatch(&ctx, op, &body).await
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::RequestEntityTooLargeException,
        format!(
            "Request body is larger than {} bytes.",
            protocol::MAX_BODY_BYTES
        ),
    )
}

/// Reads the whole body, refusing (without buffering) anything over the limit.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > protocol::MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match Limited::new(body, protocol::MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large()),
        Err(err) => Err(ApiError::serialization(format!(
            "Could not read the request body: {err}"
        ))),
    }
}

/// With authentication off, the region still comes from the credential scope when a
/// client signed anyway (SDKs always do), so resources land where the client expects.
fn unverified_region(headers: &HeaderMap) -> Option<String> {
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = authorization.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let region = scope.split('/').nth(2)?;
    (!region.is_empty()).then(|| region.to_string())
}

//! Signed ECS API calls (awsJson1_1) to the control plane.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ClientError, Signer};

/// The HTTP/1.1 client (with its pool of keep-alive connections) API calls go
/// through. One can be shared by many agents in one process (see [`crate::sim`]).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new HTTP client that keeps at most `max_idle` idle connections per host.
pub fn http_client(max_idle: usize) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build_http()
}

/// A client of one control-plane endpoint.
#[derive(Clone, Debug)]
pub struct ApiClient {
    endpoint: http::Uri,
    signer: Signer,
    http: HttpClient,
}

impl ApiClient {
    /// `endpoint` is the control plane's URL, e.g. `http://127.0.0.1:7474`.
    pub fn new(endpoint: &str, signer: Signer) -> Result<Self, ClientError> {
        Self::with_http(
            endpoint,
            signer,
            Client::builder(TokioExecutor::new()).build_http(),
        )
    }

    /// Like [`ApiClient::new`], over an HTTP client shared with others.
    pub fn with_http(
        endpoint: &str,
        signer: Signer,
        http: HttpClient,
    ) -> Result<Self, ClientError> {
        let endpoint: http::Uri = endpoint
            .parse()
            .map_err(|err| ClientError::Transport(format!("invalid endpoint {endpoint}: {err}")))?;
        if endpoint.scheme_str() != Some("http") || endpoint.authority().is_none() {
            return Err(ClientError::Transport(format!(
                "the endpoint must be http://HOST:PORT, got {endpoint}"
            )));
        }
        Ok(Self {
            endpoint,
            signer,
            http,
        })
    }

    pub fn endpoint(&self) -> &http::Uri {
        &self.endpoint
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Calls operation `op` with `request`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: &str,
        request: &Req,
    ) -> Result<Resp, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|err| ClientError::Protocol(err.to_string()))?;
        let authority = self
            .endpoint
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_default();
        let uri = format!("http://{authority}/");
        let mut headers = HeaderMap::new();
        let header_value = |text: &str| {
            HeaderValue::from_str(text).map_err(|err| ClientError::Protocol(err.to_string()))
        };
        headers.insert(header::HOST, header_value(authority)?);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        headers.insert(
            "x-amz-target",
            header_value(&format!("AmazonEC2ContainerServiceV20141113.{op}"))?,
        );
        self.signer.sign("POST", &uri, &mut headers, &body)?;
        let mut request = Request::post(&uri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| ClientError::Protocol(err.to_string()))?;
        *request.headers_mut() = headers;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|err| ClientError::Transport(err.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| ClientError::Transport(err.to_string()))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|err| {
                ClientError::Protocol(format!("{op} answered undecodable JSON: {err}"))
            });
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            #[serde(rename = "__type")]
            code: Option<String>,
            message: Option<String>,
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody {
                code: Some(code),
                message,
            }) => Err(ClientError::Api {
                code,
                message: message.unwrap_or_default(),
            }),
            _ if status.is_server_error() => {
                Err(ClientError::Transport(format!("{op}: HTTP {status}")))
            }
            _ => Err(ClientError::Protocol(format!(
                "{op}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
        }
    }
}

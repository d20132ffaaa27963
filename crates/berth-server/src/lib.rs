//! The berth control plane: the ECS API over awsJson1_1, authenticated with SigV4,
//! on the store.
//!
//! - [`http`]: the endpoint (read, authenticate, route, answer).
//! - [`protocol`]: the awsJson1_1 wire format and error shape.
//! - [`auth`]: access keys and SigV4 verification.
//! - [`api`]: the operations, one file per resource kind.
//! - [`sessions`]: the agents' WebSocket sessions.
//! - [`state`]: the key layout and typed, compare-and-swap access to the store.

pub mod api;
pub mod auth;
pub mod controllers;
pub mod http;
pub mod protocol;
pub mod sessions;
pub mod state;

pub use http::{App, ServerConfig, router};

use std::future::Future;
use std::sync::Arc;

use berth_store::Store;
use tokio::net::TcpListener;

/// Serves the ECS API on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // No agent is connected to a server that just started.
    if let Err(err) = sessions::reset_connections(store.as_ref()).await {
        tracing::error!(%err, "cannot reset the agents' connection state");
    }
    let app = App::new(store, config);
    let controller = tokio::spawn(controllers::services::run(Arc::clone(&app)));
    let lost_agents = tokio::spawn(controllers::lost_agents::run(Arc::clone(&app)));
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    controller.abort();
    lost_agents.abort();
    served
}

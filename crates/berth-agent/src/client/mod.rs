//! The agent's side of the control plane: signed ECS API calls (`api`) and the
//! session WebSocket (`session`), both authenticated with SigV4 (`signer`).

pub mod api;
pub mod session;
pub mod signer;

pub use api::{ApiClient, HttpClient, http_client};
pub use signer::Signer;

/// What can go wrong talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The control plane answered with an ECS error.
    #[error("{code}: {message}")]
    Api { code: String, message: String },
    /// The control plane could not be reached, or the connection failed.
    #[error("cannot reach the control plane: {0}")]
    Transport(String),
    /// An answer that is not what the protocol says.
    #[error("unexpected answer from the control plane: {0}")]
    Protocol(String),
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

impl ClientError {
    /// Whether trying again later may succeed (the control plane is away or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Api { code, .. } => {
                code == "ServerException" || code == "ThrottlingException"
            }
            ClientError::Protocol(_) | ClientError::Signing(_) => false,
        }
    }
}

//! Opening the session WebSocket: `GET /v1/session?cluster=..&containerInstance=..`,
//! SigV4-signed like any other request.

use berth_proto::SESSION_PATH;
use http::HeaderValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{ClientError, Signer};

/// The size the session socket reads in and buffers writes up to.
const SOCKET_BUFFER: usize = 8 * 1024;

pub type SessionStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn query_escape(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Connects to the session endpoint at `endpoint` (`http://host:port`, as
/// DiscoverPollEndpoint answers it).
pub async fn connect(
    endpoint: &str,
    signer: &Signer,
    cluster_arn: &str,
    container_instance_arn: &str,
) -> Result<SessionStream, ClientError> {
    let authority = endpoint
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(|| ClientError::Protocol(format!("unsupported session endpoint {endpoint}")))?;
    let query = format!(
        "cluster={}&containerInstance={}",
        query_escape(cluster_arn),
        query_escape(container_instance_arn)
    );
    let http_uri = format!("http://{authority}{SESSION_PATH}?{query}");
    let ws_uri = format!("ws://{authority}{SESSION_PATH}?{query}");
    let mut request = ws_uri
        .into_client_request()
        .map_err(|err| ClientError::Protocol(err.to_string()))?;
    let mut signed = http::HeaderMap::new();
    signed.insert(
        http::header::HOST,
        HeaderValue::from_str(authority).map_err(|err| ClientError::Protocol(err.to_string()))?,
    );
    signer.sign("GET", &http_uri, &mut signed, b"")?;
    for (name, value) in &signed {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    // One session per agent: small socket buffers (the library's default is 128 KiB
    // each way); larger messages are still read whole, in several steps.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER);
    let (stream, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
        .await
        .map_err(|err| match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .into_owned();
                ClientError::Api {
                    code: format!("HTTP {}", response.status()),
                    message: body,
                }
            }
            other => ClientError::Transport(other.to_string()),
        })?;
    Ok(stream)
}

//! The awsJson1_1 protocol as ECS speaks it: the operation comes from the
//! `X-Amz-Target` header, bodies are JSON, errors carry `__type` and `message`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_model::{ApiError, ErrorCode};
use bytes::Bytes;

/// The prefix of every ECS target.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The largest request body berth reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The operation named by `X-Amz-Target`.
pub fn operation(headers: &HeaderMap) -> Result<&str, ApiError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownOperationException,
                "Missing X-Amz-Target header.",
            )
        })?;
    target
        .strip_prefix(TARGET_PREFIX)
        .filter(|op| !op.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownOperationException,
                format!("Unknown operation {target}"),
            )
        })
}

/// Requests must be JSON (the SDKs send application/x-amz-json-1.1).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value.to_str().unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json" | "" => {
            Ok(())
        }
        _ => Err(ApiError::serialization(format!(
            "Unsupported Content-Type '{value}': send application/x-amz-json-1.1."
        ))),
    }
}

fn request_id_header(request_id: &str) -> HeaderValue {
    HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("invalid"))
}

/// A successful answer: HTTP 200 with the JSON body.
pub fn success(body: Bytes, request_id: &str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert("x-amzn-requestid", request_id_header(request_id));
    response
}

/// An error answer: the status of the code, `{"__type", "message"}` and `X-Amzn-Errortype`.
pub fn failure(error: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({ "__type": error.code.as_str(), "message": error.message });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert("x-amzn-requestid", request_id_header(request_id));
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static(error.code.as_str()),
    );
    response
}

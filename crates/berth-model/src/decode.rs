//! Decoding request bodies into typed shapes, with errors that name the member.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// Decodes an awsJson1_1 request body. An empty body is the empty object.
///
/// Malformed JSON is a `SerializationException`; a member of the wrong type, an
/// unknown enum value or a missing required member is an `InvalidParameterException`
/// whose message names the member by its path (`containerDefinitions[0].cpu`).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    // Tracking the path wraps every visitor of the decode and costs as much again, so
    // it is done only to explain a failure: the second decode meets the same error,
    // now with the member it happened at.
    let de = &mut serde_json::Deserializer::from_slice(body);
    match T::deserialize(de) {
        Ok(value) => Ok(value),
        Err(_) => decode_with_path(body),
    }
}

/// The decode of [`decode`], tracking the path to the member at fault.
fn decode_with_path<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if !inner.is_data() {
            return ApiError::serialization(format!("Malformed request body: {inner}"));
        }
        let text = strip_position(&inner.to_string());
        if let Some(field) = missing_field(&text) {
            let member = if path == "." {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            return ApiError::invalid_parameter(format!("Missing required parameter: {member}"));
        }
        let member = if path == "." {
            "request".to_string()
        } else {
            path
        };
        ApiError::invalid_parameter(format!("Invalid value for parameter {member}: {text}"))
    })?;
    Ok(value)
}

/// serde_json appends " at line L column C"; callers want the member, not the column.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text.to_string(),
    }
}

fn missing_field(text: &str) -> Option<&str> {
    text.strip_prefix("missing field `")?.strip_suffix('`')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)] // only decoded
    struct Inner {
        cpu: Option<i32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)] // only decoded
    struct Outer {
        family: String,
        containers: Option<Vec<Inner>>,
    }

    #[test]
    fn malformed_json_is_a_serialization_error() {
        let err = decode::<Outer>(b"{\"family\": ").err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::SerializationException));
    }

    #[test]
    fn wrong_type_names_the_member() {
        let err = decode::<Outer>(br#"{"family":"f","containers":[{"cpu":"x"}]}"#).err();
        let err = err.map(|e| (e.code, e.message));
        let (code, message) = err.unwrap_or((ErrorCode::ServerException, String::new()));
        assert_eq!(code, ErrorCode::InvalidParameterException);
        assert!(message.contains("containers[0].cpu"), "{message}");
    }

    #[test]
    fn missing_member_is_named() {
        let err = decode::<Outer>(b"{}").err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("Missing required parameter: family"));
    }

    #[test]
    fn empty_body_is_the_empty_object() {
        #[derive(Deserialize)]
        struct Empty {}
        assert!(decode::<Empty>(b"").is_ok());
    }
}

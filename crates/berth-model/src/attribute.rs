//! PutAttributes, DeleteAttributes, ListAttributes: custom attributes of container
//! instances, and the rules ECS puts on their names and values.

use serde::{Deserialize, Serialize};

use crate::common::Attribute;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAttributesRequest {
    pub cluster: Option<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAttributesRequest {
    pub cluster: Option<String>,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AttributesResponse {
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAttributesRequest {
    pub cluster: Option<String>,
    pub target_type: String,
    pub attribute_name: Option<String>,
    pub attribute_value: Option<String>,
    pub next_token: Option<String>,
    pub max_results: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListAttributesResponse {
    pub attributes: Vec<Attribute>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The most attributes one PutAttributes call may carry.
pub const MAX_ATTRIBUTES_PER_CALL: usize = 10;
/// The most custom attributes a container instance may carry.
pub const MAX_ATTRIBUTES_PER_TARGET: usize = 10;

/// The only target type ECS knows.
pub const CONTAINER_INSTANCE: &str = "container-instance";

/// Names: 1-128 letters, digits, hyphens, underscores, slashes, periods and at signs.
/// Values: up to 128 letters, digits, hyphens, underscores, periods, at signs,
/// forward slashes, back slashes, colons and spaces, not starting or ending with a space.
pub fn validate_attribute(attribute: &Attribute) -> ApiResult<()> {
    let name = attribute.name.as_str();
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/.@".contains(c));
    if !name_ok {
        return Err(ApiError::invalid_parameter(format!(
            "Attribute name '{name}' is invalid: use 1-128 letters, numbers, hyphens, underscores, slashes, periods and at signs."
        )));
    }
    if let Some(value) = attribute.value.as_deref() {
        let value_ok = value.len() <= 128
            && !value.starts_with(' ')
            && !value.ends_with(' ')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@/\\: ".contains(c));
        if !value_ok {
            return Err(ApiError::invalid_parameter(format!(
                "Attribute value '{value}' of '{name}' is invalid: use up to 128 letters, numbers, hyphens, underscores, periods, at signs, slashes, colons and inner spaces."
            )));
        }
    }
    if let Some(target_type) = attribute.target_type.as_deref()
        && target_type != CONTAINER_INSTANCE
    {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid targetType '{target_type}': the only target type is container-instance."
        )));
    }
    Ok(())
}

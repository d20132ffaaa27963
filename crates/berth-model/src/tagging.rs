//! TagResource, UntagResource, ListTagsForResource, and the tag rules ECS enforces.

use serde::{Deserialize, Serialize};

use crate::common::Tag;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceRequest {
    pub resource_arn: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceRequest {
    pub resource_arn: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceRequest {
    pub resource_arn: String,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceResponse {
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct EmptyResponse {}

/// The most tags a resource may carry.
pub const MAX_TAGS: usize = 50;

/// Checks one tag as ECS does: key 1-128 characters, value 0-256, and the `aws:`
/// prefix reserved.
pub fn validate_tag(tag: &Tag) -> ApiResult<()> {
    let key = tag.key.as_deref().unwrap_or("");
    if key.is_empty() || key.chars().count() > 128 {
        return Err(ApiError::invalid_parameter(format!(
            "Tag keys must be 1-128 characters long: '{key}'."
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(ApiError::invalid_parameter(format!(
            "Tag keys cannot start with the reserved prefix 'aws:': '{key}'."
        )));
    }
    if tag.value.as_deref().unwrap_or("").chars().count() > 256 {
        return Err(ApiError::invalid_parameter(format!(
            "The value of tag '{key}' is longer than 256 characters."
        )));
    }
    Ok(())
}

/// Merges `new` into `existing` (a new value replaces an old one of the same key),
/// refusing a result of more than [`MAX_TAGS`] tags.
pub fn merge_tags(existing: &mut Vec<Tag>, new: &[Tag]) -> ApiResult<()> {
    for tag in new {
        validate_tag(tag)?;
    }
    for tag in new {
        match existing.iter_mut().find(|t| t.key == tag.key) {
            Some(old) => old.value = tag.value.clone(),
            None => existing.push(tag.clone()),
        }
    }
    if existing.len() > MAX_TAGS {
        return Err(ApiError::invalid_parameter(format!(
            "A resource can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

/// Validates tags given at creation: each tag, the count, and unique keys.
pub fn validate_new_tags(tags: &[Tag]) -> ApiResult<()> {
    let mut merged = Vec::new();
    merge_tags(&mut merged, tags)?;
    if merged.len() != tags.len() {
        return Err(ApiError::invalid_parameter(
            "Duplicate tag keys are not allowed.",
        ));
    }
    Ok(())
}

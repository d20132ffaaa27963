//! TagResource, UntagResource, ListTagsForResource, for every taggable resource kind.
//! Every record that can be tagged keeps its tags in a top-level `tags` array, so
//! tagging works on the record as JSON without knowing its shape.

use berth_model::arn::ResourceRef;
use berth_model::common::Tag;
use berth_model::tagging::*;
use berth_model::{ApiError, ApiResult, ErrorCode};
use berth_store::{Compare, Snapshot, Txn};
use serde_json::Value;

use super::Ctx;
use crate::state::{self, keys};

/// The key of the record `arn` names, if that record exists (and, for a cluster, is ACTIVE).
fn locate(ctx: &Ctx<'_>, snapshot: &Snapshot, arn: &str) -> ApiResult<(String, Value, i64)> {
    let (parsed, resource) = ResourceRef::from_arn(arn)?;
    let region = ctx.region();
    let key = match &resource {
        ResourceRef::Cluster { name } => keys::cluster(region, name),
        ResourceRef::TaskDefinition { family, revision } => {
            keys::task_definition(region, family, *revision)
        }
        ResourceRef::ContainerInstance { cluster, id } => {
            keys::container_instance(region, cluster, id)
        }
        ResourceRef::Task { cluster, id } => format!("{}{id}", keys::tasks(region, cluster)),
        ResourceRef::Service { cluster, name } => {
            format!("{}{name}", keys::services(region, cluster))
        }
        ResourceRef::CapacityProvider { .. } => String::new(),
    };
    let not_found = || match resource {
        ResourceRef::Cluster { .. } => ApiError::cluster_not_found(),
        _ => ApiError::new(
            ErrorCode::ResourceNotFoundException,
            "The specified resource could not be found.",
        ),
    };
    if !parsed.in_scope(&ctx.scope) || key.is_empty() {
        return Err(not_found());
    }
    let found = state::read::<Value>(snapshot, &key)?.ok_or_else(not_found)?;
    if matches!(resource, ResourceRef::Cluster { .. })
        && found.value.get("status").and_then(Value::as_str) != Some("ACTIVE")
    {
        return Err(not_found());
    }
    Ok((key, found.value, found.mod_revision))
}

fn tags_of(record: &Value) -> ApiResult<Vec<Tag>> {
    match record.get("tags") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(tags) => serde_json::from_value(tags.clone())
            .map_err(|err| ApiError::server(format!("Corrupt tags in the store: {err}"))),
    }
}

fn set_tags(record: &mut Value, tags: Vec<Tag>) -> ApiResult<()> {
    let tags = serde_json::to_value(tags).map_err(|err| ApiError::server(err.to_string()))?;
    match record.as_object_mut() {
        Some(object) => {
            object.insert("tags".to_string(), tags);
            Ok(())
        }
        None => Err(ApiError::server("A tagged record is not an object.")),
    }
}

async fn change_tags(
    ctx: &Ctx<'_>,
    arn: &str,
    change: impl Fn(&mut Vec<Tag>) -> ApiResult<()>,
) -> ApiResult<EmptyResponse> {
    state::write(ctx.store, |snapshot| {
        let (key, mut record, revision) = locate(ctx, snapshot, arn)?;
        let mut tags = tags_of(&record)?;
        change(&mut tags)?;
        set_tags(&mut record, tags)?;
        let txn = Txn::new()
            .when(Compare::unchanged(&key, revision))
            .put(&key, state::encode_record(&record)?);
        Ok((Some(txn), EmptyResponse {}))
    })
    .await
}

pub async fn tag_resource(ctx: &Ctx<'_>, req: TagResourceRequest) -> ApiResult<EmptyResponse> {
    if req.tags.is_empty() {
        return Err(ApiError::invalid_parameter(
            "tags must contain at least one tag.",
        ));
    }
    change_tags(ctx, &req.resource_arn, |tags| merge_tags(tags, &req.tags)).await
}

pub async fn untag_resource(ctx: &Ctx<'_>, req: UntagResourceRequest) -> ApiResult<EmptyResponse> {
    if req.tag_keys.is_empty() {
        return Err(ApiError::invalid_parameter(
            "tagKeys must contain at least one key.",
        ));
    }
    change_tags(ctx, &req.resource_arn, |tags| {
        tags.retain(|tag| {
            !req.tag_keys
                .iter()
                .any(|key| tag.key.as_deref() == Some(key))
        });
        Ok(())
    })
    .await
}

pub async fn list_tags_for_resource(
    ctx: &Ctx<'_>,
    req: ListTagsForResourceRequest,
) -> ApiResult<ListTagsForResourceResponse> {
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let (_, record, _) = locate(ctx, &snapshot, &req.resource_arn)?;
    Ok(ListTagsForResourceResponse {
        tags: tags_of(&record)?,
    })
}

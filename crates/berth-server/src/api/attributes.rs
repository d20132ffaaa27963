//! PutAttributes, DeleteAttributes, ListAttributes. Custom attributes live in the
//! container instance record's `attributes` array, next to the attributes the agent
//! registers, so placement reads one record per instance.

use berth_model::arn::cluster_name;
use berth_model::attribute::*;
use berth_model::common::Attribute;
use berth_model::pagination::{PageRequest, page};
use berth_model::{ApiError, ApiResult, ErrorCode};
use berth_store::{Compare, Snapshot, Txn};
use serde_json::Value;

use super::Ctx;
use super::clusters::read_active;
use super::container_instances::instance_id;
use crate::state::{self, keys};

fn target_not_found(target_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TargetNotFoundException,
        format!("Could not find the target '{target_id}' of the attribute."),
    )
}

fn attributes_of(record: &Value) -> ApiResult<Vec<Attribute>> {
    match record.get("attributes") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(list) => serde_json::from_value(list.clone())
            .map_err(|err| ApiError::server(format!("Corrupt attributes in the store: {err}"))),
    }
}

fn set_attributes(record: &mut Value, attributes: &[Attribute]) -> ApiResult<()> {
    let list = serde_json::to_value(attributes).map_err(|err| ApiError::server(err.to_string()))?;
    record
        .as_object_mut()
        .map(|object| {
            object.insert("attributes".to_string(), list);
        })
        .ok_or_else(|| ApiError::server("A container instance record is not an object."))
}

/// Groups the request's attributes by target, checking each.
fn by_target(cluster: &str, attributes: &[Attribute]) -> ApiResult<Vec<(String, Vec<Attribute>)>> {
    if attributes.is_empty() {
        return Err(ApiError::invalid_parameter(
            "attributes must contain at least one attribute.",
        ));
    }
    let mut groups: Vec<(String, Vec<Attribute>)> = Vec::new();
    for attribute in attributes {
        validate_attribute(attribute)?;
        let target = attribute.target_id.as_deref().ok_or_else(|| {
            ApiError::invalid_parameter(format!("Attribute '{}' needs a targetId.", attribute.name))
        })?;
        // An instance of another cluster is not a target in this one.
        let in_other_cluster = berth_model::arn::Arn::parse(target).is_some_and(|arn| {
            matches!(arn.resource_type(), ("container-instance", rest) if rest.contains('/') && !rest.starts_with(&format!("{cluster}/")))
        });
        if in_other_cluster {
            return Err(target_not_found(target));
        }
        let id = instance_id(cluster, target)?.to_string();
        match groups.iter_mut().find(|(existing, _)| *existing == id) {
            Some((_, list)) => list.push(attribute.clone()),
            None => groups.push((id, vec![attribute.clone()])),
        }
    }
    Ok(groups)
}

/// Applies `change` to the attribute list of every target, all in one transaction.
async fn change_attributes(
    ctx: &Ctx<'_>,
    cluster: Option<&str>,
    attributes: &[Attribute],
    change: impl Fn(&mut Vec<Attribute>, &[Attribute]) -> ApiResult<()>,
) -> ApiResult<AttributesResponse> {
    let cluster = cluster_name(cluster)?;
    state::write(ctx.store, |snapshot| {
        // The cluster first: a request naming a cluster that does not exist is about that.
        read_active(snapshot, ctx.region(), &cluster)?;
        let groups = by_target(&cluster, attributes)?;
        let mut txn = Txn::new();
        for (id, requested) in &groups {
            let key = keys::container_instance(ctx.region(), &cluster, id);
            let found = state::read::<Value>(snapshot, &key)?.ok_or_else(|| {
                target_not_found(
                    requested
                        .first()
                        .and_then(|a| a.target_id.as_deref())
                        .unwrap_or(id),
                )
            })?;
            let mut record = found.value;
            let mut current = attributes_of(&record)?;
            change(&mut current, requested)?;
            set_attributes(&mut record, &current)?;
            txn = txn
                .when(Compare::unchanged(&key, found.mod_revision))
                .put(&key, state::encode_record(&record)?);
        }
        Ok((
            Some(txn),
            AttributesResponse {
                attributes: attributes.to_vec(),
            },
        ))
    })
    .await
}

/// The attributes berth or the agent set (`ecs.*`), which callers may not change.
fn is_reserved(name: &str) -> bool {
    name.starts_with("ecs.") || name.starts_with("com.amazonaws.ecs.")
}

pub async fn put_attributes(
    ctx: &Ctx<'_>,
    req: PutAttributesRequest,
) -> ApiResult<AttributesResponse> {
    if req.attributes.len() > MAX_ATTRIBUTES_PER_CALL {
        return Err(ApiError::new(
            ErrorCode::AttributeLimitExceededException,
            format!("At most {MAX_ATTRIBUTES_PER_CALL} attributes can be put in one call."),
        ));
    }
    change_attributes(ctx, req.cluster.as_deref(), &req.attributes, |current, requested| {
        for attribute in requested {
            if is_reserved(&attribute.name) {
                return Err(ApiError::invalid_parameter(format!(
                    "Attribute '{}' is reserved and cannot be set.",
                    attribute.name
                )));
            }
            let stored = Attribute { target_id: None, target_type: None, ..attribute.clone() };
            match current.iter_mut().find(|a| a.name == attribute.name) {
                Some(existing) => *existing = stored,
                None => current.push(stored),
            }
        }
        let custom = current.iter().filter(|a| !is_reserved(&a.name)).count();
        if custom > MAX_ATTRIBUTES_PER_TARGET {
            return Err(ApiError::new(
                ErrorCode::AttributeLimitExceededException,
                format!("A container instance can have at most {MAX_ATTRIBUTES_PER_TARGET} custom attributes."),
            ));
        }
        Ok(())
    })
    .await
}

pub async fn delete_attributes(
    ctx: &Ctx<'_>,
    req: DeleteAttributesRequest,
) -> ApiResult<AttributesResponse> {
    change_attributes(
        ctx,
        req.cluster.as_deref(),
        &req.attributes,
        |current, requested| {
            for attribute in requested {
                if is_reserved(&attribute.name) {
                    return Err(ApiError::invalid_parameter(format!(
                        "Attribute '{}' is reserved and cannot be deleted.",
                        attribute.name
                    )));
                }
            }
            current.retain(|a| !requested.iter().any(|r| r.name == a.name));
            Ok(())
        },
    )
    .await
}

pub async fn list_attributes(
    ctx: &Ctx<'_>,
    req: ListAttributesRequest,
) -> ApiResult<ListAttributesResponse> {
    if req.target_type != CONTAINER_INSTANCE {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid targetType '{}': the only target type is container-instance.",
            req.target_type
        )));
    }
    if req.attribute_value.is_some() && req.attribute_name.is_none() {
        return Err(ApiError::invalid_parameter(
            "attributeValue can only be given with attributeName.",
        ));
    }
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 100, 100)?;
    let cluster = cluster_name(req.cluster.as_deref())?;
    let snapshot: Snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let prefix = keys::container_instances(ctx.region(), &cluster);
    let mut found = Vec::new();
    for kv in snapshot.iter_prefix(&prefix) {
        let id = &kv.key[prefix.len()..];
        let record: Value = state::decode_record(kv)?;
        let arn = record
            .get("containerInstanceArn")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| ctx.scope.container_instance_arn(&cluster, id));
        for attribute in attributes_of(&record)? {
            let name_matches = req
                .attribute_name
                .as_deref()
                .is_none_or(|n| n == attribute.name);
            let value_matches = req
                .attribute_value
                .as_deref()
                .is_none_or(|v| attribute.value.as_deref() == Some(v));
            if name_matches && value_matches {
                let sort_key = format!("{id}/{}", attribute.name);
                found.push((
                    sort_key,
                    Attribute {
                        target_id: Some(arn.clone()),
                        target_type: Some(CONTAINER_INSTANCE.to_string()),
                        ..attribute
                    },
                ));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(after) = &page_request.after {
        found.retain(|(key, _)| key > after);
    }
    let (items, next_token) = page(found, page_request.limit, |(key, _)| key.clone());
    Ok(ListAttributesResponse {
        attributes: items.into_iter().map(|(_, a)| a).collect(),
        next_token,
    })
}

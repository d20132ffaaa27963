//! RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_model::arn::{Arn, is_valid_name};
use berth_model::common::{Failure, Tag};
use berth_model::pagination::{PageRequest, page};
use berth_model::tagging::validate_new_tags;
use berth_model::task_definition::*;
use berth_model::{ApiError, ApiResult};
use berth_store::{Compare, Snapshot, Txn};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Ctx;
use crate::state::{self, Versioned, keys};

/// A task definition revision as the store keeps it: the definition and its tags
/// (tags are not a member of the TaskDefinition shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionRecord {
    pub task_definition: TaskDefinition,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// The part of a record that listings read, so they skip decoding the rest.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusOnly {
    task_definition: StatusField,
}
#[derive(Deserialize)]
struct StatusField {
    status: Option<TaskDefinitionStatus>,
}

fn status_of(kv: &berth_store::KeyValue) -> ApiResult<Option<TaskDefinitionStatus>> {
    let record: StatusOnly = state::decode_record(kv)?;
    Ok(record.task_definition.status)
}

/// Hands out revision numbers without a shared counter key, so that concurrent
/// registrations of one family commit together instead of conflicting: each takes the
/// next number past both what this process handed out and what the store holds, and
/// its transaction requires that revision's key to be absent. Another replica taking the
/// same number makes the transaction conflict, and the retry reads the newer snapshot.
#[derive(Default)]
pub struct FamilyRevisions {
    last: Mutex<HashMap<String, i32>>,
}

impl FamilyRevisions {
    fn next(&self, region: &str, family: &str, latest_in_store: i32) -> i32 {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = last.entry(format!("{region}/{family}")).or_insert(0);
        *entry = (*entry).max(latest_in_store) + 1;
        *entry
    }
}

/// The highest revision of `family` in the store (0 if none).
fn latest_revision(snapshot: &Snapshot, region: &str, family: &str) -> i32 {
    let prefix = keys::task_definition_family(region, family);
    snapshot
        .iter_prefix(&prefix)
        .next_back()
        .and_then(|kv| kv.key[prefix.len()..].parse::<i32>().ok())
        .unwrap_or(0)
}

/// What a request names: a family (its latest ACTIVE revision) or one revision.
pub(crate) enum Reference {
    Family(String),
    Revision(String, i32),
}

pub(crate) fn parse_reference(ctx: &Ctx<'_>, text: &str) -> ApiResult<Reference> {
    let invalid = || ApiError::client(format!("Invalid task definition: '{text}'."));
    let short = match Arn::parse(text) {
        Some(arn) => match arn.resource_type() {
            ("task-definition", rest) if arn.in_scope(&ctx.scope) => rest,
            ("task-definition", _) => {
                return Err(ApiError::client("Unable to describe task definition."));
            }
            _ => return Err(invalid()),
        },
        None => text,
    };
    match short.rsplit_once(':') {
        Some((family, revision)) => {
            let revision = revision
                .parse::<i32>()
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(invalid)?;
            if !is_valid_name(family) {
                return Err(invalid());
            }
            Ok(Reference::Revision(family.to_string(), revision))
        }
        None if is_valid_name(short) => Ok(Reference::Family(short.to_string())),
        None => Err(invalid()),
    }
}

/// Finds the record a reference names: for a family, its latest ACTIVE revision.
pub(crate) fn find(
    snapshot: &Snapshot,
    region: &str,
    reference: &Reference,
) -> ApiResult<Option<(String, Versioned<TaskDefinitionRecord>)>> {
    match reference {
        Reference::Revision(family, revision) => {
            let key = keys::task_definition(region, family, *revision);
            Ok(state::read(snapshot, &key)?.map(|found| (key, found)))
        }
        Reference::Family(family) => {
            let prefix = keys::task_definition_family(region, family);
            for kv in snapshot.iter_prefix(&prefix).rev() {
                if status_of(kv)? == Some(TaskDefinitionStatus::Active) {
                    let found = Versioned {
                        value: state::decode_record(kv)?,
                        mod_revision: kv.mod_revision,
                    };
                    return Ok(Some((kv.key.to_string(), found)));
                }
            }
            Ok(None)
        }
    }
}

/// Registers a revision; `sent_bytes` is the length of the request body, for the size
/// limit. Answers with the response body: RegisterTaskDefinition's response
/// (`{taskDefinition, tags}`) is the stored record, so the record's bytes are both
/// stored and sent, encoded once.
pub async fn register_task_definition(
    ctx: &Ctx<'_>,
    req: RegisterTaskDefinitionRequest,
    sent_bytes: usize,
) -> ApiResult<Bytes> {
    validate_registration_sent(&req, sent_bytes)?;
    let mut req = req;
    let tags = req.tags.take().unwrap_or_default();
    validate_new_tags(&tags)?;
    let family = req.family.clone();
    // Only the revision and its ARN depend on the store: the record is built once, and
    // each attempt numbers it.
    let mut record = TaskDefinitionRecord {
        task_definition: TaskDefinition::from_registration(
            req,
            String::new(),
            0,
            ctx.now,
            Some(ctx.principal_arn.clone()),
        ),
        tags,
    };
    state::write(ctx.store, |snapshot| {
        let latest = latest_revision(snapshot, ctx.region(), &family);
        let revision = ctx.shared.revisions.next(ctx.region(), &family, latest);
        let key = keys::task_definition(ctx.region(), &family, revision);
        let definition = &mut record.task_definition;
        definition.task_definition_arn = Some(ctx.scope.task_definition_arn(&family, revision));
        definition.revision = Some(revision);
        let encoded = Bytes::from(state::encode_record(&record)?);
        let txn = Txn::new()
            .when(Compare::absent(&key))
            .put(&key, encoded.clone());
        Ok((Some(txn), encoded))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTaskDefinitionRequest {
    task_definition: String,
    include: Option<Vec<TaskDefinitionField>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskDefinitionField {
    Tags,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTaskDefinitionResponse {
    task_definition: TaskDefinition,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<Tag>>,
}

pub async fn describe_task_definition(
    ctx: &Ctx<'_>,
    req: DescribeTaskDefinitionRequest,
) -> ApiResult<DescribeTaskDefinitionResponse> {
    let reference = parse_reference(ctx, &req.task_definition)?;
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let (_, found) = find(&snapshot, ctx.region(), &reference)?
        .ok_or_else(|| ApiError::client("Unable to describe task definition."))?;
    let with_tags = req
        .include
        .unwrap_or_default()
        .contains(&TaskDefinitionField::Tags);
    Ok(DescribeTaskDefinitionResponse {
        task_definition: found.value.task_definition,
        tags: with_tags.then_some(found.value.tags),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitionsRequest {
    family_prefix: Option<String>,
    status: Option<TaskDefinitionStatus>,
    sort: Option<SortOrder>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitionsResponse {
    task_definition_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

/// The family and revision encoded in a task definition key.
fn family_and_revision<'k>(prefix: &str, key: &'k str) -> Option<(&'k str, i32)> {
    let (family, revision) = key.get(prefix.len()..)?.rsplit_once('/')?;
    Some((family, revision.parse().ok()?))
}

pub async fn list_task_definitions(
    ctx: &Ctx<'_>,
    req: ListTaskDefinitionsRequest,
) -> ApiResult<ListTaskDefinitionsResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 100, 100)?;
    let status = req.status.unwrap_or(TaskDefinitionStatus::Active);
    let descending = req.sort.unwrap_or_default() == SortOrder::Desc;
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let prefix = keys::task_definitions(ctx.region());
    // familyPrefix is, despite its name, the full family name (ECS API reference).
    let scan = match &req.family_prefix {
        Some(family) => keys::task_definition_family(ctx.region(), family),
        None => prefix.clone(),
    };
    // Families sort by name, then revisions by number (keys sort "web" after "web-x",
    // since '-' < '/'; ECS lists lexicographically by family).
    let mut matching = Vec::new();
    for kv in snapshot.iter_prefix(&scan) {
        let Some((family, revision)) = family_and_revision(&prefix, &kv.key) else {
            continue;
        };
        if status_of(kv)? == Some(status) {
            matching.push((family.to_string(), revision));
        }
    }
    matching.sort();
    if descending {
        matching.reverse();
    }
    let sort_key = |(family, revision): &(String, i32)| format!("{family}:{revision:010}");
    if let Some(after) = &page_request.after {
        matching.retain(|item| {
            let key = sort_key(item);
            if descending {
                key < *after
            } else {
                key > *after
            }
        });
    }
    let (items, next_token) = page(matching, page_request.limit, sort_key);
    Ok(ListTaskDefinitionsResponse {
        task_definition_arns: items
            .iter()
            .map(|(family, revision)| ctx.scope.task_definition_arn(family, *revision))
            .collect(),
        next_token,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FamilyStatus {
    Active,
    Inactive,
    All,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitionFamiliesRequest {
    family_prefix: Option<String>,
    status: Option<FamilyStatus>,
    next_token: Option<String>,
    max_results: Option<i32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTaskDefinitionFamiliesResponse {
    families: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub async fn list_task_definition_families(
    ctx: &Ctx<'_>,
    req: ListTaskDefinitionFamiliesRequest,
) -> ApiResult<ListTaskDefinitionFamiliesResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 100, 100)?;
    // By default both ACTIVE and INACTIVE families are listed (ECS API reference).
    let wanted = req.status.unwrap_or(FamilyStatus::All);
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    let prefix = keys::task_definitions(ctx.region());
    let scan = format!("{prefix}{}", req.family_prefix.as_deref().unwrap_or(""));
    // family -> whether any revision is ACTIVE
    let mut families: Vec<(String, bool)> = Vec::new();
    for kv in snapshot.iter_prefix(&scan) {
        let Some((family, _)) = family_and_revision(&prefix, &kv.key) else {
            continue;
        };
        let active = status_of(kv)? == Some(TaskDefinitionStatus::Active);
        match families.iter_mut().find(|(name, _)| name == family) {
            Some(entry) => entry.1 |= active,
            None => families.push((family.to_string(), active)),
        }
    }
    let mut names: Vec<String> = families
        .into_iter()
        .filter(|(_, active)| match wanted {
            FamilyStatus::Active => *active,
            FamilyStatus::Inactive => !*active,
            FamilyStatus::All => true,
        })
        .map(|(name, _)| name)
        .collect();
    names.sort();
    if let Some(after) = &page_request.after {
        names.retain(|name| name > after);
    }
    let (families, next_token) = page(names, page_request.limit, Clone::clone);
    Ok(ListTaskDefinitionFamiliesResponse {
        families,
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterTaskDefinitionRequest {
    task_definition: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterTaskDefinitionResponse {
    task_definition: TaskDefinition,
}

/// The one revision a deregistration or deletion names; a bare family is refused.
fn exact_revision(ctx: &Ctx<'_>, text: &str) -> ApiResult<(String, i32)> {
    match parse_reference(ctx, text)? {
        Reference::Revision(family, revision) => Ok((family, revision)),
        Reference::Family(_) => Err(ApiError::client(format!(
            "Invalid revision number: '{text}' names a family; specify family:revision or a full ARN."
        ))),
    }
}

pub async fn deregister_task_definition(
    ctx: &Ctx<'_>,
    req: DeregisterTaskDefinitionRequest,
) -> ApiResult<DeregisterTaskDefinitionResponse> {
    let (family, revision) = exact_revision(ctx, &req.task_definition)?;
    let key = keys::task_definition(ctx.region(), &family, revision);
    state::write(ctx.store, |snapshot| {
        let found = state::read::<TaskDefinitionRecord>(snapshot, &key)?
            .ok_or_else(|| ApiError::client("The specified task definition does not exist."))?;
        let mut record = found.value;
        if record.task_definition.status != Some(TaskDefinitionStatus::Active) {
            // Already deregistered: nothing changes, as in ECS.
            return Ok((
                None,
                DeregisterTaskDefinitionResponse {
                    task_definition: record.task_definition,
                },
            ));
        }
        record.task_definition.status = Some(TaskDefinitionStatus::Inactive);
        record.task_definition.deregistered_at = Some(ctx.now);
        let txn = Txn::new()
            .when(Compare::unchanged(&key, found.mod_revision))
            .put(&key, state::encode_record(&record)?);
        Ok((
            Some(txn),
            DeregisterTaskDefinitionResponse {
                task_definition: record.task_definition,
            },
        ))
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTaskDefinitionsRequest {
    task_definitions: Vec<String>,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTaskDefinitionsResponse {
    task_definitions: Vec<TaskDefinition>,
    failures: Vec<Failure>,
}

/// Marks INACTIVE revisions DELETE_IN_PROGRESS. Each revision succeeds or fails on its
/// own (reported in `failures`), as in ECS. The records stay, as ECS keeps them until no
/// task refers to them, so their revision numbers are never reused.
pub async fn delete_task_definitions(
    ctx: &Ctx<'_>,
    req: DeleteTaskDefinitionsRequest,
) -> ApiResult<DeleteTaskDefinitionsResponse> {
    if req.task_definitions.is_empty() || req.task_definitions.len() > 10 {
        return Err(ApiError::invalid_parameter(
            "taskDefinitions must name between 1 and 10 task definitions.",
        ));
    }
    let mut response = DeleteTaskDefinitionsResponse::default();
    for text in &req.task_definitions {
        let failure = |reason: &str| Failure {
            arn: Some(text.clone()),
            reason: Some(reason.to_string()),
            detail: None,
        };
        let (family, revision) = match exact_revision(ctx, text) {
            Ok(found) => found,
            Err(err) => {
                response.failures.push(failure(&err.message));
                continue;
            }
        };
        let key = keys::task_definition(ctx.region(), &family, revision);
        let outcome = state::write(ctx.store, |snapshot| {
            let Some(found) = state::read::<TaskDefinitionRecord>(snapshot, &key)? else {
                return Ok((None, Err("The specified task definition does not exist.")));
            };
            let mut record = found.value;
            match record.task_definition.status {
                Some(TaskDefinitionStatus::Inactive) => {}
                Some(TaskDefinitionStatus::DeleteInProgress) => {
                    return Ok((None, Ok(record.task_definition)));
                }
                _ => {
                    return Ok((
                        None,
                        Err("The specified task definition is still in ACTIVE status. Please deregister the target and try again."),
                    ));
                }
            }
            record.task_definition.status = Some(TaskDefinitionStatus::DeleteInProgress);
            record.task_definition.delete_requested_at = Some(ctx.now);
            let txn = Txn::new()
                .when(Compare::unchanged(&key, found.mod_revision))
                .put(&key, state::encode_record(&record)?);
            Ok((Some(txn), Ok(record.task_definition)))
        })
        .await?;
        match outcome {
            Ok(definition) => response.task_definitions.push(definition),
            Err(reason) => response.failures.push(Failure {
                arn: Some(ctx.scope.task_definition_arn(&family, revision)),
                ..failure(reason)
            }),
        }
    }
    Ok(response)
}

//! RegisterContainerInstance, DeregisterContainerInstance, DescribeContainerInstances,
//! ListContainerInstances, UpdateContainerInstancesState, DiscoverPollEndpoint.

use berth_model::arn::{cluster_name, cluster_resource_id};
use berth_model::cluster::Cluster;
use berth_model::common::Failure;
use berth_model::container_instance::*;
use berth_model::pagination::{PageRequest, page};
use berth_model::tagging::validate_new_tags;
use berth_model::{ApiError, ApiResult};
use berth_store::{Compare, Snapshot, Txn};

use super::Ctx;
use super::clusters::{ACTIVE, INACTIVE, read_active};
use crate::state::records::{InstanceRecord, TaskRecord};
use crate::state::usage::{self, Usage};
use crate::state::views::TaskSummary;
use crate::state::{self, Versioned, keys};
use std::collections::HashMap;

pub const DRAINING: &str = "DRAINING";

/// The instance id an identifier names: a container instance ARN (of `cluster`) or an id.
pub fn instance_id<'a>(cluster: &str, identifier: &'a str) -> ApiResult<&'a str> {
    cluster_resource_id("container-instance", cluster, identifier)
}

pub fn read_instance(
    snapshot: &Snapshot,
    region: &str,
    cluster: &str,
    id: &str,
) -> ApiResult<Option<Versioned<InstanceRecord>>> {
    state::read(snapshot, &keys::container_instance(region, cluster, id))
}

/// The tasks of a cluster placed on one instance.
pub fn tasks_on(
    snapshot: &Snapshot,
    region: &str,
    cluster: &str,
    instance_arn: &str,
) -> ApiResult<Vec<Versioned<TaskRecord>>> {
    let mut found = Vec::new();
    for kv in snapshot.iter_prefix(&keys::tasks(region, cluster)) {
        // Only the instance is read of the other instances' tasks.
        if TaskSummary::of(kv)
            .is_some_and(|t| t.container_instance_arn.as_deref() != Some(instance_arn))
        {
            continue;
        }
        let record: TaskRecord = state::decode_record(kv)?;
        if record.task.container_instance_arn.as_deref() == Some(instance_arn) {
            found.push(Versioned {
                value: record,
                mod_revision: kv.mod_revision,
            });
        }
    }
    Ok(found)
}

/// The instance as the API shows it: task counts filled in, tags only if asked for.
fn present(
    snapshot: &Snapshot,
    region: &str,
    cluster: &str,
    record: InstanceRecord,
    with_tags: bool,
) -> ApiResult<ContainerInstance> {
    let arn = record
        .instance
        .container_instance_arn
        .clone()
        .unwrap_or_default();
    let (mut running, mut pending) = (0, 0);
    for kv in snapshot.iter_prefix(&keys::tasks(region, cluster)) {
        let Some(task) = TaskSummary::of(kv) else {
            continue;
        };
        if task.container_instance_arn.as_deref() != Some(arn.as_str()) {
            continue;
        }
        match task.last_status.as_deref() {
            Some("RUNNING") => running += 1,
            Some("STOPPED") => {}
            _ => pending += 1,
        }
    }
    Ok(present_counted(record, with_tags, (running, pending)))
}

/// The instance as the API shows it, with its task counts (RUNNING, PENDING) given.
fn present_counted(
    record: InstanceRecord,
    with_tags: bool,
    (running, pending): (i32, i32),
) -> ContainerInstance {
    let mut instance = record.instance;
    instance.running_tasks_count = Some(running);
    instance.pending_tasks_count = Some(pending);
    if !with_tags {
        instance.tags = None;
    }
    instance
}

/// A random 32-hex-digit id, as ECS ids are.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn check_resources(resources: &[Resource]) -> ApiResult<()> {
    for name in [Resource::CPU, Resource::MEMORY] {
        let resource = resources.iter().find(|r| r.name.as_deref() == Some(name));
        if resource.is_none_or(|r| r.amount() <= 0) {
            return Err(ApiError::invalid_parameter(format!(
                "totalResources must include a positive {name} resource."
            )));
        }
    }
    Ok(())
}

pub async fn register_container_instance(
    ctx: &Ctx<'_>,
    req: RegisterContainerInstanceRequest,
) -> ApiResult<RegisterContainerInstanceResponse> {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let resources = req.total_resources.clone().unwrap_or_default();
    check_resources(&resources)?;
    let tags = req.tags.clone().unwrap_or_default();
    validate_new_tags(&tags)?;
    for attribute in req.attributes.iter().flatten() {
        berth_model::attribute::validate_attribute(attribute)?;
    }
    let requested_id = match req.container_instance_arn.as_deref() {
        Some(arn) => Some(instance_id(&cluster, arn)?.to_string()),
        None => None,
    };
    let fresh_id = new_id();
    let cluster_key = keys::cluster(ctx.region(), &cluster);
    state::write(ctx.store, |snapshot| {
        let mut txn = Txn::new();
        match state::read::<Cluster>(snapshot, &cluster_key)? {
            Some(found) if found.value.status.as_deref() == Some(ACTIVE) => {
                txn = txn.when(Compare::unchanged(&cluster_key, found.mod_revision));
            }
            // The default cluster is created on first use, as ECS does.
            previous if cluster == "default" => {
                let created = Cluster {
                    cluster_arn: Some(ctx.scope.cluster_arn(&cluster)),
                    cluster_name: Some(cluster.clone()),
                    status: Some(ACTIVE.to_string()),
                    tags: Some(Vec::new()),
                    settings: Some(Vec::new()),
                    capacity_providers: Some(Vec::new()),
                    default_capacity_provider_strategy: Some(Vec::new()),
                    ..Cluster::default()
                };
                txn = txn
                    .when(Compare::unchanged(
                        &cluster_key,
                        previous.map_or(0, |p| p.mod_revision),
                    ))
                    .put(&cluster_key, state::encode_record(&created)?);
            }
            _ => return Err(ApiError::cluster_not_found()),
        }
        // Re-registering a live instance keeps its identity and its tasks.
        let existing = match &requested_id {
            Some(id) => read_instance(snapshot, ctx.region(), &cluster, id)?
                .filter(|found| found.value.instance.status.as_deref() != Some(INACTIVE)),
            None => None,
        };
        let (id, record, revision) = match existing {
            Some(found) => {
                let mut record = found.value;
                let arn = record
                    .instance
                    .container_instance_arn
                    .clone()
                    .unwrap_or_default();
                let used: Vec<_> = tasks_on(snapshot, ctx.region(), &cluster, &arn)?
                    .into_iter()
                    .filter(|t| !t.value.released)
                    .map(|t| t.value.reserved)
                    .collect();
                record.instance.remaining_resources = Some(remaining(&resources, &used));
                record.instance.registered_resources = Some(resources.clone());
                record.instance.version_info = req.version_info.clone();
                record.instance.attributes = Some(merge_attributes(
                    record.instance.attributes.take(),
                    req.attributes.clone(),
                ));
                record.instance.version = Some(record.instance.version.unwrap_or(0) + 1);
                record.owner = ctx.access_key_id.clone().or(record.owner);
                let id = instance_id(&cluster, &arn)?.to_string();
                (id, record, found.mod_revision)
            }
            None => {
                let id = fresh_id.clone();
                let instance = ContainerInstance {
                    container_instance_arn: Some(ctx.scope.container_instance_arn(&cluster, &id)),
                    ec2_instance_id: Some(format!("i-{}", &id[..17])),
                    version: Some(1),
                    version_info: req.version_info.clone(),
                    remaining_resources: Some(resources.clone()),
                    registered_resources: Some(resources.clone()),
                    status: Some(ACTIVE.to_string()),
                    agent_connected: Some(false),
                    running_tasks_count: Some(0),
                    pending_tasks_count: Some(0),
                    attributes: req.attributes.clone(),
                    registered_at: Some(ctx.now),
                    tags: Some(tags.clone()),
                    ..ContainerInstance::default()
                };
                let record = InstanceRecord {
                    instance,
                    owner: ctx.access_key_id.clone(),
                    disconnected_at: None,
                };
                (id, record, 0)
            }
        };
        let key = keys::container_instance(ctx.region(), &cluster, &id);
        let txn = txn
            .when(Compare::unchanged(&key, revision))
            .put(&key, state::encode_record(&record)?);
        // The usage starts (or, re-registered, starts again) from what the record
        // now says is left.
        let mut usage = Usage::read(snapshot, &key, &record)?;
        if revision != 0 {
            usage.set(
                record
                    .instance
                    .remaining_resources
                    .clone()
                    .unwrap_or_default(),
            );
        }
        let txn = usage.write(txn)?;
        let mut record = record;
        usage::overlay(&mut record.instance, &usage.record);
        let instance = present(snapshot, ctx.region(), &cluster, record, true)?;
        Ok((
            Some(txn),
            RegisterContainerInstanceResponse {
                container_instance: Some(instance),
            },
        ))
    })
    .await
}

/// The agent's attributes replace those it registered before; custom ones (set with
/// PutAttributes) stay.
fn merge_attributes(
    current: Option<Vec<berth_model::common::Attribute>>,
    reported: Option<Vec<berth_model::common::Attribute>>,
) -> Vec<berth_model::common::Attribute> {
    let reported = reported.unwrap_or_default();
    let mut merged: Vec<_> = current
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !reported.iter().any(|r| r.name == a.name))
        .collect();
    merged.extend(reported);
    merged
}

pub async fn deregister_container_instance(
    ctx: &Ctx<'_>,
    req: DeregisterContainerInstanceRequest,
) -> ApiResult<RegisterContainerInstanceResponse> {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let id = instance_id(&cluster, &req.container_instance)?.to_string();
    let force = req.force.unwrap_or(false);
    state::write(ctx.store, |snapshot| {
        read_active(snapshot, ctx.region(), &cluster)?;
        let key = keys::container_instance(ctx.region(), &cluster, &id);
        let found = read_instance(snapshot, ctx.region(), &cluster, &id)?
            .filter(|f| f.value.instance.status.as_deref() != Some(INACTIVE))
            .ok_or_else(|| ApiError::invalid_parameter(format!("Container instance '{}' not found.", req.container_instance)))?;
        let arn = found.value.instance.container_instance_arn.clone().unwrap_or_default();
        let live: Vec<_> = tasks_on(snapshot, ctx.region(), &cluster, &arn)?
            .into_iter()
            .filter(|t| !t.value.is_stopped())
            .collect();
        if !live.is_empty() && !force {
            return Err(ApiError::invalid_parameter(format!(
                "Found {} running task(s) on the instance; stop them first or deregister with force.",
                live.len()
            )));
        }
        let mut txn = Txn::new().when(Compare::unchanged(&key, found.mod_revision));
        // Forced: the instance's tasks are stopped; their containers are the host's
        // business from now on (ECS orphans them likewise).
        for task in live {
            let mut record = task.value;
            let task_key = format!("{}{}", keys::tasks(ctx.region(), &cluster), record.id());
            record.task.desired_status = Some("STOPPED".to_string());
            record.task.last_status = Some("STOPPED".to_string());
            record.task.stopped_reason = Some("Container instance deregistered".to_string());
            record.task.stopped_at = Some(ctx.now);
            record.task.version = Some(record.task.version.unwrap_or(0) + 1);
            record.released = true;
            txn = state::put_task(txn.when(Compare::unchanged(&task_key, task.mod_revision)), &task_key, record)?;
        }
        let mut record = found.value;
        record.instance.status = Some(INACTIVE.to_string());
        record.instance.agent_connected = Some(false);
        record.instance.version = Some(record.instance.version.unwrap_or(0) + 1);
        let txn = txn.put(&key, state::encode_record(&record)?);
        usage::overlay_from(snapshot, &key, &mut record)?;
        let instance = present(snapshot, ctx.region(), &cluster, record, true)?;
        Ok((Some(txn), RegisterContainerInstanceResponse { container_instance: Some(instance) }))
    })
    .await
}

pub async fn describe_container_instances(
    ctx: &Ctx<'_>,
    req: DescribeContainerInstancesRequest,
) -> ApiResult<DescribeContainerInstancesResponse> {
    if req.container_instances.is_empty() || req.container_instances.len() > 100 {
        return Err(ApiError::invalid_parameter(
            "containerInstances must name between 1 and 100 container instances.",
        ));
    }
    let cluster = cluster_name(req.cluster.as_deref())?;
    let with_tags = req
        .include
        .unwrap_or_default()
        .contains(&ContainerInstanceField::Tags);
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let mut response = DescribeContainerInstancesResponse::default();
    let mut found_all = Vec::new();
    for identifier in req.container_instances {
        // Read to be shown: with its usage overlaid.
        let found = match instance_id(&cluster, &identifier) {
            Ok(id) => {
                let key = keys::container_instance(ctx.region(), &cluster, id);
                match state::read::<InstanceRecord>(&snapshot, &key)? {
                    Some(mut found) => {
                        usage::overlay_from(&snapshot, &key, &mut found.value)?;
                        Some(found)
                    }
                    None => None,
                }
            }
            Err(_) => None,
        };
        found_all.push((identifier, found));
    }
    // The task counts of every instance asked for, from the task view (which then
    // includes this snapshot); each instance scans the tasks if there is no view.
    let arns: Vec<String> = found_all
        .iter()
        .filter_map(|(_, found)| {
            found
                .as_ref()?
                .value
                .instance
                .container_instance_arn
                .clone()
        })
        .collect();
    let counts: Option<HashMap<String, (i32, i32)>> = ctx
        .shared
        .views
        .caught_up(ctx.store, snapshot.revision(), |view| {
            arns.iter()
                .map(|arn| {
                    let counts = view
                        .instance(arn)
                        .map_or((0, 0), |tasks| (tasks.running, tasks.pending));
                    (arn.clone(), counts)
                })
                .collect()
        })
        .await;
    for (identifier, found) in found_all {
        match found {
            Some(found) => response.container_instances.push(match &counts {
                Some(counts) => {
                    let arn = found.value.instance.container_instance_arn.as_deref();
                    let counted = arn.and_then(|arn| counts.get(arn)).copied();
                    present_counted(found.value, with_tags, counted.unwrap_or((0, 0)))
                }
                None => present(&snapshot, ctx.region(), &cluster, found.value, with_tags)?,
            }),
            None => response.failures.push(Failure {
                arn: Some(if identifier.starts_with("arn:") {
                    identifier
                } else {
                    ctx.scope.container_instance_arn(&cluster, &identifier)
                }),
                reason: Some("MISSING".to_string()),
                detail: None,
            }),
        }
    }
    Ok(response)
}

pub async fn list_container_instances(
    ctx: &Ctx<'_>,
    req: ListContainerInstancesRequest,
) -> ApiResult<ListContainerInstancesResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 100, 100)?;
    let filter = match req.filter.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Some(berth_sched::query::Expression::parse_api(text)?),
        _ => None,
    };
    let cluster = cluster_name(req.cluster.as_deref())?;
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let prefix = keys::container_instances(ctx.region(), &cluster);
    let mut found = Vec::new();
    for kv in snapshot.iter_prefix(&prefix) {
        let id = &kv.key[prefix.len()..];
        if page_request
            .after
            .as_deref()
            .is_some_and(|after| id <= after)
        {
            continue;
        }
        let record: InstanceRecord = state::decode_record(kv)?;
        let status = record.instance.status.as_deref().unwrap_or(ACTIVE);
        let mut wanted = match req.status {
            Some(wanted) => status == wanted.as_str(),
            None => status != INACTIVE,
        };
        if wanted && let Some(filter) = &filter {
            let arn = record
                .instance
                .container_instance_arn
                .clone()
                .unwrap_or_default();
            let tasks: Vec<TaskRecord> = tasks_on(&snapshot, ctx.region(), &cluster, &arn)?
                .into_iter()
                .map(|t| t.value)
                .filter(|t| t.desired_status() != Some(berth_model::task::TaskStatus::Stopped))
                .collect();
            wanted = filter.matches(&QueryView {
                record: &record,
                tasks: &tasks,
            });
        }
        if wanted {
            found.push((
                id.to_string(),
                record.instance.container_instance_arn.unwrap_or_default(),
            ));
            if found.len() > page_request.limit {
                break;
            }
        }
    }
    let (items, next_token) = page(found, page_request.limit, |(id, _)| id.clone());
    Ok(ListContainerInstancesResponse {
        container_instance_arns: items.into_iter().map(|(_, arn)| arn).collect(),
        next_token,
    })
}

pub async fn update_container_instances_state(
    ctx: &Ctx<'_>,
    req: UpdateContainerInstancesStateRequest,
) -> ApiResult<DescribeContainerInstancesResponse> {
    if req.container_instances.is_empty() || req.container_instances.len() > 10 {
        return Err(ApiError::invalid_parameter(
            "containerInstances must name between 1 and 10 container instances.",
        ));
    }
    let status = match req.status {
        ContainerInstanceStatus::Active => ACTIVE,
        ContainerInstanceStatus::Draining => DRAINING,
        other => {
            return Err(ApiError::invalid_parameter(format!(
                "Container instances can only be set ACTIVE or DRAINING, not {}.",
                other.as_str()
            )));
        }
    };
    let cluster = cluster_name(req.cluster.as_deref())?;
    let mut response = DescribeContainerInstancesResponse::default();
    for identifier in &req.container_instances {
        let id = match instance_id(&cluster, identifier) {
            Ok(id) => id.to_string(),
            Err(err) => {
                response.failures.push(Failure {
                    arn: Some(identifier.clone()),
                    reason: Some(err.message),
                    detail: None,
                });
                continue;
            }
        };
        let outcome = state::write(ctx.store, |snapshot| {
            read_active(snapshot, ctx.region(), &cluster)?;
            let key = keys::container_instance(ctx.region(), &cluster, &id);
            let Some(found) = read_instance(snapshot, ctx.region(), &cluster, &id)?
                .filter(|f| f.value.instance.status.as_deref() != Some(INACTIVE))
            else {
                return Ok((None, None));
            };
            let mut record = found.value;
            if record.instance.status.as_deref() == Some(status) {
                usage::overlay_from(snapshot, &key, &mut record)?;
                return Ok((
                    None,
                    Some(present(snapshot, ctx.region(), &cluster, record, false)?),
                ));
            }
            record.instance.status = Some(status.to_string());
            record.instance.version = Some(record.instance.version.unwrap_or(0) + 1);
            let txn = Txn::new()
                .when(Compare::unchanged(&key, found.mod_revision))
                .put(&key, state::encode_record(&record)?);
            usage::overlay_from(snapshot, &key, &mut record)?;
            Ok((
                Some(txn),
                Some(present(snapshot, ctx.region(), &cluster, record, false)?),
            ))
        })
        .await?;
        match outcome {
            Some(instance) => response.container_instances.push(instance),
            None => response.failures.push(Failure {
                arn: Some(ctx.scope.container_instance_arn(&cluster, &id)),
                reason: Some("MISSING".to_string()),
                detail: None,
            }),
        }
    }
    Ok(response)
}

/// Where agents open their session: this same server, as the caller reached it.
pub async fn discover_poll_endpoint(
    ctx: &Ctx<'_>,
    _req: DiscoverPollEndpointRequest,
) -> ApiResult<DiscoverPollEndpointResponse> {
    let host = ctx.host.clone().ok_or_else(|| {
        ApiError::invalid_parameter("The request has no Host header to derive the endpoint from.")
    })?;
    let endpoint = format!("http://{host}");
    Ok(DiscoverPollEndpointResponse {
        endpoint: Some(endpoint.clone()),
        telemetry_endpoint: Some(endpoint.clone()),
        service_connect_endpoint: Some(endpoint),
    })
}

/// A container instance as the cluster query language sees it.
struct QueryView<'a> {
    record: &'a InstanceRecord,
    /// Its tasks not desired STOPPED.
    tasks: &'a [TaskRecord],
}

impl berth_sched::query::QueryTarget for QueryView<'_> {
    fn agent_connected(&self) -> bool {
        self.record.instance.agent_connected == Some(true)
    }
    fn agent_version(&self) -> Option<&str> {
        self.record
            .instance
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.as_deref())
    }
    fn attribute(&self, name: &str) -> Option<Option<&str>> {
        self.record
            .instance
            .attributes
            .iter()
            .flatten()
            .find(|a| a.name == name)
            .map(|a| a.value.as_deref())
    }
    fn ec2_instance_id(&self) -> Option<&str> {
        self.record.instance.ec2_instance_id.as_deref()
    }
    fn registered_at(&self) -> Option<f64> {
        self.record.instance.registered_at
    }
    fn running_tasks_count(&self) -> i64 {
        self.tasks
            .iter()
            .filter(|t| t.task.last_status.as_deref() == Some("RUNNING"))
            .count() as i64
    }
    fn any_task_group(&self, test: &mut dyn FnMut(&str) -> bool) -> bool {
        self.tasks
            .iter()
            .any(|t| t.task.group.as_deref().is_some_and(&mut *test))
    }
}

//! The service controller: keeps every service's tasks as its deployments want them.
//! It is level-triggered: each pass reads the service, its tasks and its instances
//! from one snapshot, asks the pure planner (`plan.rs`) what to do, and commits the
//! whole decision (new tasks with their reservations, tasks to stop, the service's new
//! deployments, counts and events) in one compare-and-swap transaction. It remembers
//! nothing between passes that is not in the store, so after a crash it simply
//! continues from what the store says.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use berth_model::ApiResult;
use berth_model::arn::Scope;
use berth_model::service::{
    DeploymentRolloutState, SchedulingStrategy, Service, ServiceEvent, ServiceStatus,
};
use berth_model::task::{HealthStatus, LaunchType, PropagateTags, TaskStatus, TaskStopCode};
use berth_store::{Change, Compare, Snapshot, Store, Txn};
use tokio::sync::broadcast::error::RecvError;

use super::plan::{self, EventKind, EventRecord, ServiceSpec, ServiceTask};
use crate::api::Ctx;
use crate::api::Shared;
use crate::api::services::{ServiceRecord, service_key};
use crate::api::task_definitions::TaskDefinitionRecord;
use crate::api::tasks::{PlacementRules, launch, place_tasks, placeable_instances};
use crate::http::App;
use crate::state::records::{InstanceRecord, TaskRecord};
use crate::state::{self, keys};

/// How often every service is looked at even if nothing changed (timers: throttle,
/// health grace, steady-state events).
const TICK: Duration = Duration::from_secs(1);

impl EventRecord for ServiceEvent {
    fn message(&self) -> &str {
        self.message.as_deref().unwrap_or_default()
    }
    fn created_at(&self) -> f64 {
        self.created_at.unwrap_or(0.0)
    }
}

/// A service, by where it lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ServiceId {
    region: String,
    cluster: String,
    name: String,
}

/// Parses `/{region}/{kind}/{cluster}/...` into (region, kind, cluster).
fn key_parts(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.trim_start_matches('/').splitn(4, '/');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// Every service in the store that is not INACTIVE.
fn services(snapshot: &Snapshot, only: Option<&BTreeSet<(String, String)>>) -> Vec<ServiceId> {
    let mut found = Vec::new();
    for kv in snapshot.iter_prefix("/") {
        let Some((region, kind, cluster)) = key_parts(&kv.key) else {
            continue;
        };
        if kind != "service"
            || only.is_some_and(|only| !only.contains(&(region.to_string(), cluster.to_string())))
        {
            continue;
        }
        let Ok(record) = state::decode_record::<ServiceRecord>(kv) else {
            continue;
        };
        if record.service.status.as_deref() != Some(ServiceStatus::Inactive.as_str()) {
            found.push(ServiceId {
                region: region.to_string(),
                cluster: cluster.to_string(),
                name: record.service.service_name.unwrap_or_default(),
            });
        }
    }
    found
}

/// Runs the controller until the store's change feed closes.
pub async fn run(app: Arc<App>) {
    let store = Arc::clone(app.store());
    let shared = app.shared();
    let account = app.account_id().to_string();
    let grace = app.task_running_grace();
    let mut feed = store.watch();
    let mut tick = tokio::time::interval(TICK);
    loop {
        // Which clusters' services to look at: on a tick all; on changes, those of
        // the clusters whose services, tasks or instances changed.
        let dirty: Option<BTreeSet<(String, String)>> = tokio::select! {
            _ = tick.tick() => None,
            batch = feed.recv() => match batch {
                Ok(batch) => {
                    let mut dirty = BTreeSet::new();
                    let mut add = |changes: &[Change]| for change in changes {
                        let key = match change { Change::Put(kv) => kv.key.as_str(), Change::Delete { key } => key.as_str() };
                        if let Some((region, kind, cluster)) = key_parts(key)
                            && matches!(kind, "service" | "task" | "instance")
                        {
                            dirty.insert((region.to_string(), cluster.to_string()));
                        }
                    };
                    add(&batch.changes);
                    // Take every batch already waiting, so a burst is one pass.
                    while let Ok(batch) = feed.try_recv() {
                        add(&batch.changes);
                    }
                    if dirty.is_empty() { continue; }
                    Some(dirty)
                }
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return,
            },
        };
        let snapshot = match store.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                tracing::error!(%err, "service controller cannot read the store");
                continue;
            }
        };
        for service in services(&snapshot, dirty.as_ref()) {
            if let Err(err) = reconcile(store.as_ref(), shared, &account, grace, &service).await {
                tracing::warn!(service = %service.name, cluster = %service.cluster, message = %err.message, "service reconciliation failed");
            }
        }
    }
}

fn task_status(text: Option<&str>) -> TaskStatus {
    text.and_then(TaskStatus::parse)
        .unwrap_or(TaskStatus::Pending)
}

fn spec_of(service: &Service, running_grace: Duration) -> ServiceSpec {
    let scheduling = service.scheduling();
    let config = service.deployment_configuration.clone().unwrap_or_default();
    let (min, max) = config.effective(scheduling);
    let draining = service.status.as_deref() != Some(ServiceStatus::Active.as_str());
    ServiceSpec {
        name: service.service_name.clone().unwrap_or_default(),
        desired_count: if draining {
            0
        } else {
            u32::try_from(service.desired_count.unwrap_or(0)).unwrap_or(0)
        },
        minimum_healthy_percent: u32::try_from(min).unwrap_or(100),
        maximum_percent: u32::try_from(max).unwrap_or(200),
        circuit_breaker: config.deployment_circuit_breaker.as_ref().map(|breaker| {
            plan::CircuitBreaker {
                enable: breaker.enable,
                rollback: breaker.rollback,
            }
        }),
        // A task without health checks counts as healthy once it has been RUNNING
        // this long, so that one that crashes right after starting is a failure, not
        // a healthy replacement.
        running_grace,
    }
}

fn definition_record(
    snapshot: &Snapshot,
    region: &str,
    arn: &str,
) -> ApiResult<Option<(String, berth_store::KeyValue, TaskDefinitionRecord)>> {
    let Some((family, revision)) = arn
        .rsplit_once("task-definition/")
        .and_then(|(_, rest)| rest.rsplit_once(':'))
        .and_then(|(family, revision)| Some((family, revision.parse::<i32>().ok()?)))
    else {
        return Ok(None);
    };
    let key = keys::task_definition(region, family, revision);
    let Some(kv) = snapshot.get(&key) else {
        return Ok(None);
    };
    let record: TaskDefinitionRecord = state::decode_record(kv)?;
    Ok(Some((key, kv.clone(), record)))
}

fn has_health_check(record: &TaskDefinitionRecord) -> bool {
    record
        .task_definition
        .container_definitions
        .iter()
        .flatten()
        .any(|c| c.health_check.is_some())
}

async fn reconcile(
    store: &dyn Store,
    shared: &Shared,
    account: &str,
    grace: Duration,
    id: &ServiceId,
) -> ApiResult<()> {
    let scope = Scope::new(id.region.clone(), account.to_string());
    let principal = scope.account_root_arn();
    let ctx = Ctx::new(store, shared, scope, principal);
    let key = service_key(&id.region, &id.cluster, &id.name);
    let group = format!("service:{}", id.name);
    state::write(store, |snapshot| {
        let Some(found) = state::read::<ServiceRecord>(snapshot, &key)? else { return Ok((None, ())) };
        let mut record = found.value.clone();
        if record.service.scheduling() == SchedulingStrategy::Daemon {
            // The DAEMON scheduler is not built yet; such services are accepted and kept.
            return Ok((None, ()));
        }
        let Some(cluster_kv) = snapshot.get(&keys::cluster(&id.region, &id.cluster)) else { return Ok((None, ())) };
        let now = ctx.now;

        // The service's tasks, as the planner sees them.
        let mut task_records = Vec::new();
        for kv in snapshot.iter_prefix(&keys::tasks(&id.region, &id.cluster)) {
            let task: TaskRecord = state::decode_record(kv)?;
            if task.task.group.as_deref() == Some(group.as_str()) && !(task.is_stopped() && task.accounted) {
                task_records.push((kv.key.clone(), kv.mod_revision, task));
            }
        }
        let mut tasks = Vec::new();
        for (_, _, record) in &task_records {
            let instance_id = record.task.container_instance_arn.as_deref().and_then(|arn| arn.rsplit('/').next());
            let instance = match instance_id {
                Some(instance) => state::read::<InstanceRecord>(snapshot, &keys::container_instance(&id.region, &id.cluster, instance))?,
                None => None,
            };
            let zone = instance.as_ref().and_then(|i| {
                i.value.instance.attributes.iter().flatten().find(|a| a.name == "ecs.availability-zone").and_then(|a| a.value.clone())
            });
            let available = instance.as_ref().and_then(|i| {
                i.value.instance.remaining_resources.iter().flatten().find(|r| r.name.as_deref() == Some("MEMORY")).map(|r| r.amount())
            });
            tasks.push(ServiceTask {
                task_arn: record.task.task_arn.clone().unwrap_or_default(),
                deployment_id: record.task.started_by.clone().unwrap_or_default(),
                last_status: task_status(record.task.last_status.as_deref()),
                desired_status: task_status(record.task.desired_status.as_deref()),
                health: record.task.health_status.unwrap_or(HealthStatus::Unknown),
                instance_id: instance_id.map(str::to_string),
                zone,
                instance_available: available,
                started_at: record.task.started_at,
                stop_code: record.task.stop_code,
                accounted: record.accounted,
            });
        }
        let mut deployments = Vec::new();
        for deployment in record.service.deployments.iter().flatten() {
            let arn = deployment.task_definition.clone().unwrap_or_default();
            let health = definition_record(snapshot, &id.region, &arn)?.is_some_and(|(_, _, d)| has_health_check(&d));
            deployments.push(plan::Deployment {
                id: deployment.id.clone().unwrap_or_default(),
                task_definition_arn: arn,
                status: deployment.status.as_deref().and_then(plan::DeploymentStatus::parse).unwrap_or(plan::DeploymentStatus::Inactive),
                rollout_state: match deployment.rollout_state {
                    Some(DeploymentRolloutState::Completed) => plan::RolloutState::Completed,
                    Some(DeploymentRolloutState::Failed) => plan::RolloutState::Failed,
                    _ => plan::RolloutState::InProgress,
                },
                rollout_state_reason: deployment.rollout_state_reason.clone().unwrap_or_default(),
                desired_count: u32::try_from(deployment.desired_count.unwrap_or(0)).unwrap_or(0),
                running_count: u32::try_from(deployment.running_count.unwrap_or(0)).unwrap_or(0),
                pending_count: u32::try_from(deployment.pending_count.unwrap_or(0)).unwrap_or(0),
                failed_tasks: u32::try_from(deployment.failed_tasks.unwrap_or(0)).unwrap_or(0),
                created_at: deployment.created_at.unwrap_or(0.0),
                has_health_check: health,
            });
        }
        let spec = spec_of(&record.service, grace);
        let mut outcome = plan::plan(&spec, &deployments, &tasks, &record.scheduler, now);

        let mut txn = Txn::new().when(Compare::unchanged(&key, found.mod_revision));
        let mut wrote_tasks = false;
        // Stops, and stopped tasks now counted.
        for (task_key, revision, task) in &task_records {
            let arn = task.task.task_arn.clone().unwrap_or_default();
            let stop = outcome.stop.iter().find(|s| s.task_arn == arn);
            let accounted = outcome.accounted.contains(&arn);
            if stop.is_none() && !accounted {
                continue;
            }
            let mut task = task.clone();
            if let Some(stop) = stop
                && task.desired_status() != Some(TaskStatus::Stopped)
            {
                task.task.desired_status = Some(TaskStatus::Stopped.as_str().to_string());
                task.task.stopping_at = Some(now);
                task.task.stopped_reason = Some(stop.reason.clone());
                task.task.stop_code = Some(TaskStopCode::ServiceSchedulerInitiated);
                task.task.version = Some(task.task.version.unwrap_or(0) + 1);
            }
            if accounted {
                task.accounted = true;
            }
            txn = txn.when(Compare::unchanged(task_key, *revision)).put(task_key, state::encode_record(&task)?);
            wrote_tasks = true;
        }
        // Deployments as planned; a rollback makes the old task definition current.
        for (deployment, planned) in record.service.deployments.iter_mut().flatten().zip(&outcome.deployments) {
            deployment.status = Some(planned.status.as_str().to_string());
            deployment.rollout_state = Some(match planned.rollout_state {
                plan::RolloutState::InProgress => DeploymentRolloutState::InProgress,
                plan::RolloutState::Completed => DeploymentRolloutState::Completed,
                plan::RolloutState::Failed => DeploymentRolloutState::Failed,
            });
            deployment.rollout_state_reason = Some(planned.rollout_state_reason.clone());
            deployment.desired_count = Some(i32::try_from(planned.desired_count).unwrap_or(i32::MAX));
            deployment.running_count = Some(i32::try_from(planned.running_count).unwrap_or(i32::MAX));
            deployment.pending_count = Some(i32::try_from(planned.pending_count).unwrap_or(i32::MAX));
            deployment.failed_tasks = Some(i32::try_from(planned.failed_tasks).unwrap_or(i32::MAX));
        }
        if let Some(rollback) = &outcome.rollback {
            record.service.task_definition = Some(rollback.task_definition_arn.clone());
        }
        // Starts: place the planned tasks on the cluster's instances.
        let mut events: Vec<(EventKind, ServiceEvent)> =
            outcome.events.iter().map(|e| (e.kind, event(now, e.message.clone()))).collect();
        let mut candidates = placeable_instances(snapshot, &id.region, &id.cluster)?;
        let mut new_tasks: Vec<TaskRecord> = Vec::new();
        for start in &outcome.start {
            let Some(deployment) = outcome.deployments.iter().find(|d| d.id == start.deployment_id) else { continue };
            let Some((definition_key, definition_kv, definition)) =
                definition_record(snapshot, &id.region, &deployment.task_definition_arn)?
            else {
                continue;
            };
            let tags = match record.service.propagate_tags {
                Some(PropagateTags::Service) => record.service.tags.clone().unwrap_or_default(),
                Some(PropagateTags::TaskDefinition) => definition.tags.clone(),
                _ => Vec::new(),
            };
            let launch = launch(
                &definition.task_definition,
                None,
                record.service.launch_type.or(Some(LaunchType::Ec2)),
                None,
                Some(&group),
                Some(&start.deployment_id),
                tags,
                record.service.enable_execute_command.unwrap_or(false),
            )?;
            let count = i32::try_from(start.count).unwrap_or(i32::MAX);
            let (placed, failures) = place_tasks(
                &ctx,
                snapshot,
                &id.cluster,
                &launch,
                count,
                &mut candidates,
                PlacementRules {
                    constraints: record.service.placement_constraints.as_deref().unwrap_or_default(),
                    strategies: record.service.placement_strategy.as_deref().unwrap_or_default(),
                },
            )?;
            if !placed.is_empty() {
                let ids: Vec<&str> = placed.iter().map(|t| t.id()).collect();
                let message = plan::message::tasks_started(&spec.name, ids, outcome.unhealthy_replacements);
                events.push((EventKind::TasksStarted, event(now, message)));
                // The definition must still be there when the tasks are written.
                txn = txn.when(Compare::unchanged(&definition_key, definition_kv.mod_revision));
            }
            if placed.len() < start.count as usize {
                let reason = match failures.first() {
                    Some(failure) => format!(
                        "The closest matching container-instance {} is missing a required resource: {}.",
                        failure.arn.as_deref().unwrap_or_default(),
                        failure.reason.as_deref().unwrap_or_default()
                    ),
                    None => "No Container Instances were found in your cluster.".to_string(),
                };
                events.push((EventKind::UnableToPlace, event(now, plan::message::unable_to_place(&spec.name, &reason))));
                if outcome.state.backoff.record_failure(now) {
                    events.push((EventKind::StartImpaired, event(now, plan::message::start_impaired(&spec.name))));
                }
            }
            new_tasks.extend(placed);
        }
        if !new_tasks.is_empty() {
            txn = txn.when(Compare::unchanged(keys::cluster(&id.region, &id.cluster), cluster_kv.mod_revision));
            for candidate in candidates.iter().filter(|c| c.touched) {
                txn = txn
                    .when(Compare::unchanged(&candidate.key, candidate.mod_revision))
                    .put(&candidate.key, state::encode_record(&candidate.record)?);
            }
            for task in &new_tasks {
                let task_key = keys::task(&id.region, &id.cluster, task.id());
                txn = txn.when(Compare::absent(&task_key)).put(task_key, state::encode_record(task)?);
            }
            wrote_tasks = true;
        }
        let log = record.service.events.get_or_insert_with(Vec::new);
        plan::record_events(log, events, now);
        record.service.running_count = Some(i32::try_from(outcome.running_count).unwrap_or(i32::MAX));
        record.service.pending_count = Some(i32::try_from(outcome.pending_count).unwrap_or(i32::MAX));
        record.scheduler = std::mem::take(&mut outcome.state);
        let draining = record.service.status.as_deref() == Some(ServiceStatus::Draining.as_str());
        if draining && task_records.iter().all(|(_, _, t)| t.is_stopped()) && outcome.start.is_empty() {
            record.service.status = Some(ServiceStatus::Inactive.as_str().to_string());
        }
        let changed = wrote_tasks || serde_json::to_value(&record).ok() != serde_json::to_value(&found.value).ok();
        if !changed {
            return Ok((None, ()));
        }
        let txn = txn.put(&key, state::encode_record(&record)?);
        Ok((Some(txn), ()))
    })
    .await
}

fn event(now: f64, message: String) -> ServiceEvent {
    ServiceEvent {
        id: Some(uuid::Uuid::new_v4().to_string()),
        created_at: Some(now),
        message: Some(message),
    }
}

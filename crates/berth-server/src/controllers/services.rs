//! The service controller: keeps every service's tasks as its deployments want them.
//! It is level-triggered: each pass reads the service, its tasks and its instances
//! from one snapshot, asks the pure planner (`plan.rs`) what to do, and commits the
//! whole decision (new tasks with their reservations, tasks to stop, the service's new
//! deployments, counts and events) in one compare-and-swap transaction. It remembers
//! nothing between passes that is not in the store, so after a crash it simply
//! continues from what the store says.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_model::ApiResult;
use berth_model::arn::Scope;
use berth_model::service::{
    DeploymentRolloutState, SchedulingStrategy, Service, ServiceEvent, ServiceStatus,
};
use berth_model::task::{LaunchType, PropagateTags, TaskStatus, TaskStopCode};
use berth_sched::InstanceView;
use berth_store::{ChangeBatch, Compare, Snapshot, Store, Txn};
use tokio::sync::broadcast::error::RecvError;

use super::plan::{self, EventKind, EventRecord, ServiceSpec, ServiceTask, TaskList};
use super::service_index::{self, ServiceId, ServiceIndex};
use crate::api::Ctx;
use crate::api::Shared;
use crate::api::container_instances::DRAINING;
use crate::api::services::{ServiceRecord, service_key};
use crate::api::task_definitions::TaskDefinitionRecord;
use crate::api::tasks::{
    Candidate, PlacementRules, candidates_of, launch, only_random, place_tasks, sample_placeable,
    with_reservations,
};
use crate::http::App;
use crate::state::definition_cache::DefinitionCache;
use crate::state::instance_cache::{CachedInstance, ClusterInstances};
use crate::state::records::TaskRecord;
use crate::state::{self, keys};

/// How often every service is looked at even if nothing changed (timers: throttle,
/// health grace, steady-state events).
const TICK: Duration = Duration::from_secs(1);
/// The most tasks one pass starts for one service (the next pass, at most
/// [`PASS_GAP`] later, starts more). A pass's transaction conflicts with any
/// concurrent placement on the instances it touches, and a conflict makes it decide
/// again: smaller passes conflict less and lose less when they do.
const MAX_STARTS_PER_PASS: u32 = 250;
/// The least time between the end of one round of passes and the start of the next.
const PASS_GAP: Duration = Duration::from_millis(20);
/// The gap after a round is also at least this many times what the round spent
/// planning, so that recounting large services takes at most a quarter of the time
/// (a plan walks its service's tasks, whatever it decides). Small services plan in
/// microseconds and are paced by [`PASS_GAP`] alone.
const GAP_PER_PLANNING: u32 = 3;
/// How long a pass waits for the index to reach its snapshot's revision before it
/// gives up (the next tick tries again).
const CATCH_UP: Duration = Duration::from_secs(1);

impl EventRecord for ServiceEvent {
    fn message(&self) -> &str {
        self.message.as_deref().unwrap_or_default()
    }
    fn created_at(&self) -> f64 {
        self.created_at.unwrap_or(0.0)
    }
}

/// The clusters to look at: `None` means all of them.
type Dirty = Option<service_index::Dirty>;

/// The service index and what changed since the controller last looked, kept by
/// [`follow`] from the change feed in a task of its own, so that the index never
/// falls behind the feed while the controller is busy reconciling.
struct Followed {
    index: Option<ServiceIndex>,
    dirty: Dirty,
}

struct Follower {
    state: std::sync::Mutex<Followed>,
    /// Rings when something is dirty.
    changed: tokio::sync::Notify,
    /// The revision the index has reached.
    revision: tokio::sync::watch::Sender<i64>,
}

impl Follower {
    fn lock(&self) -> std::sync::MutexGuard<'_, Followed> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps the index from the change feed; rebuilds it from a snapshot when the feed
/// lagged (and then marks every cluster dirty). Returns when the feed closes.
async fn follow(store: Arc<dyn Store>, follower: Arc<Follower>) {
    // Subscribed before the snapshot the index is built from, so no batch after it
    // is missed (those before it are skipped by revision).
    let mut feed = store.watch();
    rebuild(store.as_ref(), &follower).await;
    loop {
        match feed.recv().await {
            Ok(batch) => {
                let revision = {
                    let mut state = follower.lock();
                    let Followed { index, dirty } = &mut *state;
                    let mut seen = service_index::Dirty::default();
                    absorb(index, &batch, &mut seen);
                    while let Ok(batch) = feed.try_recv() {
                        absorb(index, &batch, &mut seen);
                    }
                    if let Some(dirty) = dirty.as_mut() {
                        dirty.extend(seen);
                    }
                    index.as_ref().map(ServiceIndex::revision)
                };
                if let Some(revision) = revision {
                    follower.revision.send_replace(revision);
                }
                follower.changed.notify_one();
            }
            Err(RecvError::Lagged(_)) => rebuild(store.as_ref(), &follower).await,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Builds the index from a fresh snapshot and marks every cluster dirty.
async fn rebuild(store: &dyn Store, follower: &Follower) {
    let snapshot = loop {
        match store.snapshot().await {
            Ok(snapshot) => break snapshot,
            Err(err) => {
                tracing::error!(%err, "service controller cannot read the store");
                tokio::time::sleep(TICK).await;
            }
        }
    };
    let index = ServiceIndex::build(&snapshot);
    let revision = index.revision();
    {
        let mut state = follower.lock();
        state.index = Some(index);
        state.dirty = None;
    }
    follower.revision.send_replace(revision);
    follower.changed.notify_one();
}

/// Runs the controller until the store's change feed closes.
pub async fn run(app: Arc<App>) {
    let store = Arc::clone(app.store());
    let shared = app.shared();
    let account = app.account_id().to_string();
    let grace = app.task_running_grace();
    let (revision, mut reached) = tokio::sync::watch::channel(0);
    let follower = Arc::new(Follower {
        state: std::sync::Mutex::new(Followed {
            index: None,
            dirty: None,
        }),
        changed: tokio::sync::Notify::new(),
        revision,
    });
    let mut following = tokio::spawn(follow(Arc::clone(&store), Arc::clone(&follower)));
    let mut tick = tokio::time::interval(TICK);
    let mut gap = Duration::ZERO;
    loop {
        // Changes that come while a round of passes runs or during the gap after it
        // wait for the next round, so a stream of small changes costs a round per gap
        // rather than one per change. The gap is at least three times as long as
        // the round spent planning: a plan costs the size of its service whatever
        // it decides, so with large services and a stream of reports the controller
        // recounts at most a quarter of the time, and each round then has more to
        // start. What a round spends starting tasks (placing, writing) is not
        // waited for again.
        tokio::time::sleep(gap).await;
        // Which clusters' services to look at: on a tick all; on changes, those of
        // the clusters whose services, tasks or instances changed.
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            _ = follower.changed.notified() => false,
            _ = &mut following => return,
        };
        let dirty = {
            let mut state = follower.lock();
            let dirty = state.dirty.replace(service_index::Dirty::default());
            if ticked { None } else { dirty }
        };
        if dirty.as_ref().is_some_and(service_index::Dirty::is_empty) {
            continue;
        }
        let snapshot = match store.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                tracing::error!(%err, "service controller cannot read the store");
                continue;
            }
        };
        // The index must hold every task the snapshot holds, or a pass would take
        // a service's missing tasks for tasks to start.
        let target = snapshot.revision();
        if tokio::time::timeout(CATCH_UP, reached.wait_for(|at| *at >= target))
            .await
            .is_err()
        {
            // Not this time; whatever was dirty is looked at on the next tick.
            continue;
        }
        let services = match follower.lock().index.as_ref() {
            Some(index) => index.services(),
            None => continue,
        };
        let mut planning = Duration::ZERO;
        for service in services {
            if dirty
                .as_ref()
                .is_some_and(|dirty| !dirty.contains(&service))
            {
                continue;
            }
            let tasks = match follower.lock().index.as_ref() {
                Some(index) => index.tasks_of(&service.region, &service.cluster, &service.name),
                None => continue,
            };
            match reconcile(store.as_ref(), shared, &account, grace, &service, &tasks).await {
                Ok(planned) => planning += planned,
                Err(err) => {
                    tracing::warn!(service = %service.name, cluster = %service.cluster, message = %err.message, "service reconciliation failed");
                }
            }
        }
        gap = PASS_GAP.max(planning * GAP_PER_PLANNING);
    }
}

/// Applies a batch of the change feed to the index (if it is not already past it),
/// noting the services it concerns.
fn absorb(index: &mut Option<ServiceIndex>, batch: &ChangeBatch, dirty: &mut service_index::Dirty) {
    if let Some(current) = index.as_mut()
        && batch.revision > current.revision()
    {
        current.apply(batch, dirty);
    }
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
        daemon: None,
    }
}

fn definition_record(
    snapshot: &Snapshot,
    definitions: &DefinitionCache,
    region: &str,
    arn: &str,
) -> ApiResult<Option<(String, i64, Arc<TaskDefinitionRecord>)>> {
    let Some((family, revision)) = arn
        .rsplit_once("task-definition/")
        .and_then(|(_, rest)| rest.rsplit_once(':'))
        .and_then(|(family, revision)| Some((family, revision.parse::<i32>().ok()?)))
    else {
        return Ok(None);
    };
    let key = keys::task_definition(region, family, revision);
    Ok(definitions
        .read(snapshot, &key)?
        .map(|found| (key, found.mod_revision, found.value)))
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
    tasks: &TaskList,
) -> ApiResult<Duration> {
    let scope = Scope::new(id.region.clone(), account.to_string());
    let principal = scope.account_root_arn();
    let ctx = Ctx::new(store, shared, scope, principal);
    let key = service_key(&id.region, &id.cluster, &id.name);
    let group = format!("service:{}", id.name);
    // The plan of this pass, kept across the retries of its write while the service
    // record is the one it was made from. A retry after a conflict (most often a
    // concurrent RunTask that took resources on an instance this pass placed on)
    // places the starts again on the newer snapshot without planning the service's
    // tasks again, so a retry costs its placements, not the size of the service; and
    // the shorter a retry, the less likely the next one conflicts. The plan's inputs
    // are the index's heads (fixed for the pass) and the service record (the same
    // revision, which the write is conditional on); the instances' zones and memory
    // only order scale-in. DAEMON services plan on the instances: every attempt plans.
    let mut memo: Option<(i64, ServiceSpec, plan::Plan)> = None;
    // The time spent planning (reading the service's tasks and planning), which the
    // controller paces its rounds by.
    let mut planning = Duration::ZERO;
    state::write(store, |snapshot| {
        let Some(found) = state::read::<ServiceRecord>(snapshot, &key)? else { return Ok((None, ())) };
        let mut record = found.value.clone();
        let is_daemon = record.service.scheduling() == SchedulingStrategy::Daemon;
        let Some(cluster_kv) = snapshot.get(&keys::cluster(&id.region, &id.cluster)) else { return Ok((None, ())) };
        let now = ctx.now;
        let instance_list = shared.instances.instances(snapshot, &id.region, &id.cluster)?;

        // The service's tasks, as the planner sees them: the index's list. The index
        // is at this snapshot's revision or later (so it holds every task the
        // snapshot does, the ones this controller started included) and is one
        // consistent state; a task the plan changes is read from the snapshot and
        // written only if it is still at that revision, so a task newer than the
        // snapshot makes the write fail and the pass retry, never overwrite.
        let kept = memo.as_ref().filter(|(revision, _, _)| !is_daemon && *revision == found.mod_revision);
        let (spec, mut outcome) = match kept {
            Some((_, spec, outcome)) => (spec.clone(), outcome.clone()),
            None => {
                let started = Instant::now();
                let mut deployments = Vec::new();
                for deployment in record.service.deployments.iter().flatten() {
                    let arn = deployment.task_definition.clone().unwrap_or_default();
                    let health = definition_record(snapshot, &shared.definitions, &id.region, &arn)?.is_some_and(|(_, _, d)| has_health_check(&d));
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
                let mut spec = spec_of(&record.service, grace);
                if is_daemon {
                    let primary = record.service.deployments.iter().flatten().find(|d| d.status.as_deref() == Some("PRIMARY"));
                    let definition = match primary.and_then(|d| d.task_definition.as_deref()) {
                        Some(arn) => definition_record(snapshot, &shared.definitions, &id.region, arn)?.map(|(_, _, d)| d),
                        None => None,
                    };
                    let holding: BTreeSet<&str> = tasks.iter().filter(|t| t.last_status < TaskStatus::Stopped).filter_map(|t| t.instance_id.as_deref()).collect();
                    let daemon = daemon_spec(snapshot, &id.region, &id.cluster, instance_list.list(), &holding, &record.service, definition.as_deref())?;
                    spec.desired_count = if record.service.status.as_deref() == Some(ServiceStatus::Active.as_str()) {
                        u32::try_from(daemon.instances.len()).unwrap_or(u32::MAX)
                    } else {
                        0
                    };
                    spec.daemon = Some(if spec.desired_count == 0 { plan::DaemonSpec { instances: Vec::new(), ..daemon } } else { daemon });
                    record.service.desired_count = Some(i32::try_from(spec.desired_count).unwrap_or(i32::MAX));
                }
                let facts = Facts(&instance_list);
                let outcome = plan::plan_with(&spec, &deployments, tasks, &record.scheduler, now, &facts);
                if !is_daemon {
                    memo = Some((found.mod_revision, spec.clone(), outcome.clone()));
                }
                planning += started.elapsed();
                (spec, outcome)
            }
        };

        let mut txn = Txn::new().when(Compare::unchanged(&key, found.mod_revision));
        let mut wrote_tasks = false;
        // Stops, and stopped tasks now counted: each task's record, by the key its
        // ARN names.
        let mut changed: BTreeMap<&str, (Option<&plan::Stop>, bool)> = BTreeMap::new();
        for stop in &outcome.stop {
            changed.entry(stop.task_arn.as_str()).or_default().0 = Some(stop);
        }
        for arn in &outcome.accounted {
            changed.entry(arn.as_str()).or_default().1 = true;
        }
        for (arn, (stop, accounted)) in changed {
            let task_key = keys::task(&id.region, &id.cluster, plan::task_id(arn));
            let Some(kv) = snapshot.get(&task_key) else { continue };
            let mut task: TaskRecord = state::decode_record(kv)?;
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
            txn = state::put_task(txn.when(Compare::unchanged(&task_key, kv.mod_revision)), &task_key, task)?;
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
        // Candidates are made only when the pass starts tasks (most passes only
        // count them), and, when it starts one deployment's tasks with random
        // placement, only of the instances drawn (`sample_placeable`): O(tasks
        // started), not O(instances). Otherwise, of every placeable instance: the
        // drawn ones are only ever the candidates of a pass's one start, so a list
        // still empty at a later start is one not made yet.
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        let sample_first = outcome.start.len() == 1;
        let mut new_tasks: Vec<TaskRecord> = Vec::new();
        for start in &outcome.start {
            // This pass starts at most MAX_STARTS_PER_PASS; the next pass the rest.
            let wanted = start.count.min(MAX_STARTS_PER_PASS);
            let Some(deployment) = outcome.deployments.iter().find(|d| d.id == start.deployment_id) else { continue };
            let Some((definition_key, definition_revision, definition)) =
                definition_record(snapshot, &shared.definitions, &id.region, &deployment.task_definition_arn)?
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
            let rules = PlacementRules {
                constraints: record.service.placement_constraints.as_deref().unwrap_or_default(),
                strategies: record.service.placement_strategy.as_deref().unwrap_or_default(),
            };
            let (placed, failures) = if start.instances.is_empty() {
                let count = i32::try_from(wanted).unwrap_or(i32::MAX);
                let mut sampled = None;
                if sample_first && only_random(&launch, rules) {
                    let mut touched = Vec::new();
                    let mut placed = Vec::new();
                    if sample_placeable(&ctx, &id.cluster, &launch, count, &instance_list, &mut touched, &mut placed) == count {
                        candidates = touched;
                        sampled = Some((placed, Vec::new()));
                    }
                }
                match sampled {
                    Some(sampled) => sampled,
                    None => {
                        if candidates.is_empty() {
                            candidates = candidates_of(instance_list.list());
                        }
                        place_tasks(&ctx, snapshot, &id.cluster, &launch, count, &mut candidates, rules)?
                    }
                }
            } else {
                if candidates.is_empty() {
                    candidates = candidates_of(instance_list.list());
                }
                // A daemon's task goes to its own instance, or nowhere.
                let mut placed = Vec::new();
                let mut failures = Vec::new();
                for instance in &start.instances {
                    let Some(at) = candidates.iter().position(|c| c.id() == instance) else {
                        continue;
                    };
                    let (mut on, mut why) = place_tasks(&ctx, snapshot, &id.cluster, &launch, 1, &mut candidates[at..=at], rules)?;
                    placed.append(&mut on);
                    failures.append(&mut why);
                }
                (placed, failures)
            };
            if !placed.is_empty() {
                let ids: Vec<&str> = placed.iter().map(|t| t.id()).collect();
                let message = plan::message::tasks_started(&spec.name, ids, outcome.unhealthy_replacements);
                events.push((EventKind::TasksStarted, event(now, message)));
                // The definition must still be there when the tasks are written.
                txn = txn.when(Compare::unchanged(&definition_key, definition_revision));
            }
            if placed.len() < wanted as usize && (start.instances.is_empty() || !failures.is_empty()) {
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
            txn = with_reservations(txn, &candidates)?;
            for task in &new_tasks {
                let task_key = keys::task(&id.region, &id.cluster, task.id());
                txn = state::put_task(txn.when(Compare::absent(&task_key)), task_key, task.clone())?;
            }
            wrote_tasks = true;
        }
        let log = record.service.events.get_or_insert_with(Vec::new);
        plan::record_events(log, events, now);
        record.service.running_count = Some(i32::try_from(outcome.running_count).unwrap_or(i32::MAX));
        record.service.pending_count = Some(i32::try_from(outcome.pending_count).unwrap_or(i32::MAX));
        record.scheduler = std::mem::take(&mut outcome.state);
        let draining = record.service.status.as_deref() == Some(ServiceStatus::Draining.as_str());
        if draining && tasks.iter().all(|t| t.last_status == TaskStatus::Stopped) && outcome.start.is_empty() {
            record.service.status = Some(ServiceStatus::Inactive.as_str().to_string());
        }
        // Unchanged if it is the record read, or if it encodes to the bytes stored
        // (records are written by this same encoder; a record stored in another form
        // is written once more). Most passes change nothing, and comparing is
        // cheaper than encoding a hundred events.
        if !wrote_tasks && record == found.value {
            return Ok((None, ()));
        }
        let encoded = state::encode_record(&record)?;
        let stored = snapshot.get(&key).map(|kv| kv.value.as_ref());
        if !wrote_tasks && stored == Some(encoded.as_slice()) {
            return Ok((None, ()));
        }
        let txn = txn.put(&key, encoded);
        Ok((Some(txn), ()))
    })
    .await?;
    Ok(planning)
}

/// The facts of a pass's tasks' instances, from the cluster's instances as the pass's
/// snapshot holds them: the zone, and the memory available (the binpack measure).
struct Facts<'a>(&'a ClusterInstances);

impl Facts<'_> {
    fn of(&self, task: &ServiceTask) -> Option<&Arc<CachedInstance>> {
        self.0.get(task.instance_id.as_deref()?)
    }
}

impl plan::InstanceFacts for Facts<'_> {
    fn zone<'a>(&'a self, task: &'a ServiceTask) -> Option<&'a str> {
        self.of(task)?.zone.as_deref()
    }

    fn available(&self, task: &ServiceTask) -> Option<i64> {
        Some(self.of(task)?.view.remaining.memory)
    }

    /// Looked up only when one of the cluster's instances is DRAINING (which each
    /// version of the instance cache works out once).
    fn draining(&self, task: &ServiceTask) -> bool {
        self.0.any_draining()
            && self
                .of(task)
                .is_some_and(|cached| cached.view.status == DRAINING)
    }
}

/// The instances a DAEMON service runs on (ACTIVE ones its and its task
/// definition's `memberOf` constraints select, with their agent connected or
/// already `holding` a task of the service, so that a short disconnection does not
/// replace it), and the DRAINING ones where other tasks than daemons' still run.
fn daemon_spec(
    snapshot: &Snapshot,
    region: &str,
    cluster: &str,
    instances: &imbl::Vector<Arc<CachedInstance>>,
    holding: &BTreeSet<&str>,
    service: &Service,
    definition: Option<&TaskDefinitionRecord>,
) -> ApiResult<plan::DaemonSpec> {
    // In key order, so by id.
    let candidates: Vec<&CachedInstance> = instances
        .iter()
        .filter(|cached| {
            let r = &cached.record;
            r.instance.status.as_deref() == Some("ACTIVE")
                && (r.instance.agent_connected == Some(true) || holding.contains(cached.id()))
        })
        .map(|cached| &**cached)
        .collect();
    let ids: Vec<&str> = candidates.iter().map(|cached| cached.id()).collect();
    let views: Vec<InstanceView> = candidates
        .iter()
        .map(|cached| cached.view.clone())
        .collect();
    let definition_constraints = definition
        .and_then(|d| d.task_definition.placement_constraints.clone())
        .unwrap_or_default();
    let selected = berth_sched::satisfies_member_of(
        &views,
        &definition_constraints,
        service.placement_constraints.as_deref().unwrap_or_default(),
    )?;
    let eligible = ids
        .into_iter()
        .zip(selected)
        .filter(|(_, selected)| *selected)
        .map(|(id, _)| id.to_string())
        .collect();
    // Tasks of daemon services do not keep a draining instance busy.
    let mut daemon_groups = BTreeSet::new();
    for kv in snapshot.iter_prefix(&keys::services(region, cluster)) {
        let record: ServiceRecord = state::decode_record(kv)?;
        if record.service.scheduling() == SchedulingStrategy::Daemon {
            daemon_groups.insert(format!(
                "service:{}",
                record.service.service_name.unwrap_or_default()
            ));
        }
    }
    let draining: BTreeSet<&str> = instances
        .iter()
        .filter(|c| c.record.instance.status.as_deref() == Some(DRAINING))
        .filter_map(|c| c.record.instance.container_instance_arn.as_deref())
        .collect();
    let mut busy = BTreeSet::new();
    if !draining.is_empty() {
        for kv in snapshot.iter_prefix(&keys::tasks(region, cluster)) {
            let task: TaskRecord = state::decode_record(kv)?;
            let Some(arn) = task.task.container_instance_arn.as_deref() else {
                continue;
            };
            if task.is_stopped()
                || !draining.contains(arn)
                || task
                    .task
                    .group
                    .as_ref()
                    .is_some_and(|g| daemon_groups.contains(g))
            {
                continue;
            }
            busy.insert(arn.rsplit('/').next().unwrap_or_default().to_string());
        }
    }
    Ok(plan::DaemonSpec {
        instances: eligible,
        draining_busy: busy.into_iter().collect(),
    })
}

fn event(now: f64, message: String) -> ServiceEvent {
    ServiceEvent {
        id: Some(uuid::Uuid::new_v4().to_string()),
        created_at: Some(now),
        message: Some(message),
    }
}

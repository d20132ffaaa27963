//! Recording what agents report of their tasks: the known state (lastStatus,
//! containers, exit codes, bindings, health, timestamps) next to the desired state,
//! and giving a task's reservation back to its instance once it has STOPPED.
//!
//! Reports arrive over the agent session (each one a task's full known state) and
//! through SubmitTaskStateChange / SubmitContainerStateChange. Applying one is
//! idempotent, and statuses only move forward, so a report re-sent after a lost
//! acknowledgement, or one overtaken by a newer one, changes nothing.

use berth_model::arn::Scope;
use berth_model::task::{HealthStatus, NetworkBinding, TaskStatus, TaskStopCode};
use berth_model::task_definition::TransportProtocol;
use berth_model::{ApiError, ApiResult};
use berth_proto::ContainerStatus;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;

use berth_store::{Compare, KeyValue, Op, Snapshot, Store, Txn};

use crate::state::records::{InstanceRecord, TaskRecord, release};
use crate::state::usage::Usage;
use crate::state::{self, keys};

/// One container's reported state.
#[derive(Debug, Clone, Default)]
pub struct KnownContainer {
    pub name: String,
    pub runtime_id: Option<String>,
    pub image_digest: Option<String>,
    pub status: Option<ContainerStatus>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub network_bindings: Option<Vec<NetworkBinding>>,
    pub health_status: Option<HealthStatus>,
}

/// A task's reported state; absent members are left as they are.
#[derive(Debug, Clone, Default)]
pub struct KnownState {
    pub status: Option<TaskStatus>,
    pub reason: Option<String>,
    pub stop_code: Option<TaskStopCode>,
    pub containers: Vec<KnownContainer>,
    pub health_status: Option<HealthStatus>,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub started_at: Option<f64>,
    pub execution_stopped_at: Option<f64>,
}

fn health(status: berth_proto::HealthStatus) -> HealthStatus {
    match status {
        berth_proto::HealthStatus::Healthy => HealthStatus::Healthy,
        berth_proto::HealthStatus::Unhealthy => HealthStatus::Unhealthy,
        berth_proto::HealthStatus::Unknown => HealthStatus::Unknown,
    }
}

fn task_status(status: berth_proto::TaskStatus) -> TaskStatus {
    TaskStatus::parse(status.as_str()).unwrap_or(TaskStatus::Pending)
}

fn stop_code(code: berth_proto::StopCode) -> TaskStopCode {
    match code {
        berth_proto::StopCode::TaskFailedToStart => TaskStopCode::TaskFailedToStart,
        berth_proto::StopCode::EssentialContainerExited => TaskStopCode::EssentialContainerExited,
        berth_proto::StopCode::UserInitiated => TaskStopCode::UserInitiated,
        berth_proto::StopCode::ServiceSchedulerInitiated => TaskStopCode::ServiceSchedulerInitiated,
        berth_proto::StopCode::SpotInterruption => TaskStopCode::SpotInterruption,
        berth_proto::StopCode::TerminationNotice => TaskStopCode::TerminationNotice,
    }
}

impl From<&berth_proto::TaskStateChange> for KnownState {
    fn from(change: &berth_proto::TaskStateChange) -> Self {
        KnownState {
            status: Some(task_status(change.status)),
            reason: change.reason.clone(),
            stop_code: change.stop_code.map(stop_code),
            containers: change
                .containers
                .iter()
                .map(|c| KnownContainer {
                    name: c.container_name.clone(),
                    runtime_id: c.runtime_id.clone(),
                    image_digest: c.image_digest.clone(),
                    status: Some(c.status),
                    exit_code: c.exit_code,
                    reason: c.reason.clone(),
                    network_bindings: Some(
                        c.network_bindings
                            .iter()
                            .map(|b| NetworkBinding {
                                bind_ip: Some(b.bind_ip.clone()),
                                container_port: Some(b.container_port),
                                host_port: Some(b.host_port),
                                protocol: TransportProtocol::parse(&b.protocol),
                                ..NetworkBinding::default()
                            })
                            .collect(),
                    ),
                    health_status: c.health_status.map(health),
                })
                .collect(),
            health_status: change.health_status.map(health),
            pull_started_at: change.pull_started_at,
            pull_stopped_at: change.pull_stopped_at,
            started_at: change.started_at,
            execution_stopped_at: change.execution_stopped_at,
        }
    }
}

fn container_rank(status: Option<&str>) -> u8 {
    match status {
        Some("RUNNING") => 1,
        Some("STOPPED") => 2,
        _ => 0,
    }
}

fn container_status_str(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Pending => "PENDING",
        ContainerStatus::Running => "RUNNING",
        ContainerStatus::Stopped => "STOPPED",
    }
}

/// Sets `slot` to `value`; whether that changed it.
fn set<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}

/// Sets `slot` to a copy of `value` unless it holds that already (no copy is made
/// then); whether that changed it.
fn set_to<T: ToOwned + PartialEq + ?Sized>(slot: &mut Option<T::Owned>, value: &T) -> bool {
    if slot.as_ref().map(Borrow::borrow) == Some(value) {
        return false;
    }
    *slot = Some(value.to_owned());
    true
}

/// Sets `slot` to `value` if it is empty; whether that changed it.
fn set_if_none<T>(slot: &mut Option<T>, value: impl FnOnce() -> T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value());
    true
}

/// Folds `known` into the task record; returns whether anything changed. Each member
/// says whether it changed as it is set (a report comes with every state change, and
/// a copy of the whole task to compare against cost more than the merge itself).
fn merge(record: &mut TaskRecord, known: &KnownState, now: f64) -> bool {
    let mut changed = false;
    let task = &mut record.task;
    for reported in &known.containers {
        let Some(container) = task
            .containers
            .iter_mut()
            .flatten()
            .find(|c| c.name.as_deref() == Some(&reported.name))
        else {
            continue;
        };
        if let Some(id) = &reported.runtime_id {
            changed |= set_to(&mut container.runtime_id, id.as_str());
        }
        if let Some(digest) = &reported.image_digest {
            changed |= set_to(&mut container.image_digest, digest.as_str());
        }
        if let Some(status) = reported.status {
            let status = container_status_str(status);
            if container_rank(Some(status)) >= container_rank(container.last_status.as_deref()) {
                changed |= set_to(&mut container.last_status, status);
            }
        }
        if reported.exit_code.is_some() {
            changed |= set(&mut container.exit_code, reported.exit_code);
        }
        if let Some(reason) = &reported.reason {
            changed |= set_to(&mut container.reason, reason.as_str());
        }
        if let Some(bindings) = &reported.network_bindings
            && (!bindings.is_empty() || container.last_status.as_deref() != Some("RUNNING"))
        {
            changed |= set_to(&mut container.network_bindings, bindings.as_slice());
        }
        if reported.health_status.is_some() {
            changed |= set(&mut container.health_status, reported.health_status);
        }
    }
    let current = task.last_status.as_deref().and_then(TaskStatus::parse);
    if let Some(status) = known.status
        && current.is_none_or(|current| status > current)
    {
        changed |= set_to(&mut task.last_status, status.as_str());
    }
    let status = task.last_status.as_deref().and_then(TaskStatus::parse);
    if status >= Some(TaskStatus::Running) && status < Some(TaskStatus::Stopped) {
        changed |= set_if_none(&mut task.started_at, || known.started_at.unwrap_or(now));
    }
    if status >= Some(TaskStatus::Deactivating) {
        changed |= set_if_none(&mut task.stopping_at, || now);
    }
    if status == Some(TaskStatus::Stopped) {
        changed |= set_to(&mut task.desired_status, TaskStatus::Stopped.as_str());
        changed |= set_if_none(&mut task.stopped_at, || now);
        changed |= set_if_none(&mut task.execution_stopped_at, || {
            known.execution_stopped_at.unwrap_or(now)
        });
    }
    // The first reason wins: a StopTask's reason is not replaced by the agent's.
    if let Some(reason) = &known.reason
        && status >= Some(TaskStatus::Deactivating)
    {
        changed |= set_if_none(&mut task.stopped_reason, || reason.clone());
    }
    if let Some(code) = known.stop_code
        && status >= Some(TaskStatus::Deactivating)
    {
        changed |= set_if_none(&mut task.stop_code, || code);
    }
    if known.health_status.is_some() {
        changed |= set(&mut task.health_status, known.health_status);
    }
    if let Some(at) = known.pull_started_at {
        changed |= set_if_none(&mut task.pull_started_at, || at);
    }
    if let Some(at) = known.pull_stopped_at {
        changed |= set_if_none(&mut task.pull_stopped_at, || at);
    }
    if changed {
        task.version = Some(task.version.unwrap_or(0) + 1);
    }
    changed
}

/// The member of an instance record that says who may report for it.
#[derive(serde::Deserialize)]
struct InstanceOwner {
    #[serde(rename = "berthOwner", default)]
    owner: Option<String>,
}

/// Who owns each instance record read, by key, at the revision it was read: a
/// report's instance record is large, and its owner is all a report needs of it. A
/// session keeps one for all its reports (they are all of its one instance).
#[derive(Default)]
pub struct Owners {
    /// Per record key: the revision its owner was read at (0: not yet), and the owner.
    read: HashMap<Arc<str>, (i64, Option<String>)>,
}

impl Owners {
    pub fn new() -> Self {
        Self::default()
    }

    /// Who owns the instance stored as `kv`.
    fn of(&mut self, kv: &KeyValue) -> ApiResult<Option<&str>> {
        let (revision, owner) = self.read.entry(Arc::clone(&kv.key)).or_default();
        if *revision != kv.mod_revision {
            *owner = crate::state::codec::decode::<InstanceOwner>(&kv.value)
                .map_err(|_| ApiError::server(format!("The record {} is corrupt.", kv.key)))?
                .owner;
            *revision = kv.mod_revision;
        }
        Ok(owner.as_deref())
    }
}

/// A task record its reader already holds decoded, as stored at `mod_revision`: a
/// session holds the records it sent its agent until the agent reports on them.
#[derive(Debug, Clone)]
pub struct HeldRecord {
    pub mod_revision: i64,
    pub record: Arc<TaskRecord>,
}

/// One task's report: the task's id, the state the agent knows, and the task's record
/// if the reporter holds it (used if the store still has that version: nothing to
/// decode).
pub type Report<'a> = (&'a str, &'a KnownState, Option<&'a HeldRecord>);

/// Records `known` for task `task_id` of `cluster`. `caller_key` (the access key that
/// signed the report) must own the task's instance; `session_instance`, when the report
/// came over a session, must be the task's instance.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    store: &dyn Store,
    scope: &Scope,
    cluster: &str,
    task_id: &str,
    caller_key: Option<&str>,
    session_instance: Option<&str>,
    known: &KnownState,
    now: f64,
) -> ApiResult<()> {
    let reports = [(task_id, known, None)];
    let mut results = apply_all(
        store,
        scope,
        cluster,
        &reports,
        caller_key,
        session_instance,
        now,
        &mut Owners::new(),
    )
    .await?;
    results.pop().unwrap_or(Ok(()))
}

/// Records several reports (of different tasks), as few transactions as it can: the
/// reports whose writes touch different keys share one; a report that writes a key an
/// earlier one of the same transaction writes (two tasks stopping on one instance give
/// back their reservations to the same instance record) waits for the next. Returns
/// each report's own result, in order; `Err` only if the store failed.
#[allow(clippy::too_many_arguments)]
pub async fn apply_all(
    store: &dyn Store,
    scope: &Scope,
    cluster: &str,
    reports: &[Report<'_>],
    caller_key: Option<&str>,
    session_instance: Option<&str>,
    now: f64,
    owners: &mut Owners,
) -> ApiResult<Vec<ApiResult<()>>> {
    let region = scope.region.as_str();
    let mut results: Vec<Option<ApiResult<()>>> = reports.iter().map(|_| None).collect();
    while results.iter().any(Option::is_none) {
        let decided = state::write(store, |snapshot| {
            let mut txn = Txn::new();
            let mut written: std::collections::HashSet<String> = std::collections::HashSet::new();
            let mut decided = Vec::new();
            for (at, (task_id, known, held)) in reports.iter().enumerate() {
                if results.get(at).is_some_and(Option::is_some) {
                    continue;
                }
                let report = Decide {
                    region,
                    cluster,
                    task_id,
                    caller_key,
                    session_instance,
                    now,
                };
                match report.decide(snapshot, known, *held, owners) {
                    Ok(None) => decided.push((at, Ok(()))),
                    Ok(Some(one)) => {
                        let keys = one.ops.iter().map(|op| match op {
                            Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
                        });
                        if keys.clone().any(|key| written.contains(key)) {
                            continue;
                        }
                        written.extend(keys.map(str::to_string));
                        txn.compares.extend(one.compares);
                        txn.ops.extend(one.ops);
                        decided.push((at, Ok(())));
                    }
                    Err(error) => decided.push((at, Err(error))),
                }
            }
            Ok(((!txn.ops.is_empty()).then_some(txn), decided))
        })
        .await?;
        for (at, result) in decided {
            if let Some(slot) = results.get_mut(at) {
                *slot = Some(result);
            }
        }
    }
    Ok(results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect())
}

/// What one report is about, and who sent it.
struct Decide<'a> {
    region: &'a str,
    cluster: &'a str,
    task_id: &'a str,
    caller_key: Option<&'a str>,
    session_instance: Option<&'a str>,
    now: f64,
}

impl Decide<'_> {
    /// The writes that record the report on `snapshot` (None: nothing changes).
    fn decide(
        &self,
        snapshot: &Snapshot,
        known: &KnownState,
        held: Option<&HeldRecord>,
        owners: &mut Owners,
    ) -> ApiResult<Option<Txn>> {
        let Decide {
            region,
            cluster,
            task_id,
            caller_key,
            session_instance,
            now,
        } = *self;
        let key = keys::task(region, cluster, task_id);
        let stored = snapshot.get(&key).ok_or_else(|| {
            ApiError::invalid_parameter(format!("Task {task_id} not found in cluster {cluster}."))
        })?;
        let mut record: TaskRecord = match held {
            Some(held) if held.mod_revision == stored.mod_revision => (*held.record).clone(),
            _ => state::decode_record(stored)?,
        };
        let instance_arn = record
            .task
            .container_instance_arn
            .clone()
            .unwrap_or_default();
        if session_instance.is_some_and(|instance| instance != instance_arn) {
            return Err(ApiError::new(
                berth_model::ErrorCode::AccessDeniedException,
                "A session may only report the tasks of its own container instance.",
            ));
        }
        let instance_id = instance_arn.rsplit('/').next().unwrap_or_default();
        let instance_key = keys::container_instance(region, cluster, instance_id);
        // Only who owns the instance is needed, unless the task stops (below): an
        // instance record is large, and a report comes with every state change.
        let owner = match snapshot.get(&instance_key) {
            Some(kv) => owners.of(kv)?,
            None => None,
        };
        if let (Some(caller), Some(owner)) = (caller_key, owner)
            && caller != owner
        {
            return Err(ApiError::new(
                berth_model::ErrorCode::AccessDeniedException,
                "Only the key that registered a container instance may report its tasks.",
            ));
        }
        if !merge(&mut record, known, now) && (record.released || !record.is_stopped()) {
            return Ok(None);
        }
        let mut txn = Txn::new().when(Compare::unchanged(&key, stored.mod_revision));
        if record.is_stopped() && !record.released {
            record.released = true;
            if let Some(instance) = state::read::<InstanceRecord>(snapshot, &instance_key)? {
                let registered = instance
                    .value
                    .instance
                    .registered_resources
                    .clone()
                    .unwrap_or_default();
                let mut usage = Usage::read(snapshot, &instance_key, &instance.value)?;
                let mut left = usage.record.remaining_resources.clone();
                release(&mut left, &registered, &record.reserved);
                usage.set(left);
                txn = usage.write(txn)?;
            }
        }
        Ok(Some(state::put_task(txn, key, record)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::TxnOutcome;

    fn fresh_record() -> TaskRecord {
        let container = |name: &str| berth_model::task::Container {
            name: Some(name.to_string()),
            last_status: Some("PENDING".to_string()),
            network_bindings: Some(Vec::new()),
            ..Default::default()
        };
        TaskRecord {
            task: berth_model::task::Task {
                last_status: Some("PENDING".to_string()),
                desired_status: Some("RUNNING".to_string()),
                containers: Some(vec![container("app"), container("sidecar")]),
                version: Some(1),
                ..Default::default()
            },
            reserved: Default::default(),
            released: false,
            accounted: false,
        }
    }

    fn seen(name: &str, status: ContainerStatus) -> KnownContainer {
        KnownContainer {
            name: name.to_string(),
            runtime_id: Some(format!("id-{name}")),
            status: Some(status),
            network_bindings: Some(Vec::new()),
            ..Default::default()
        }
    }

    /// A life of reports, each sent twice (a re-sent report changes nothing), with
    /// every member merge reads set somewhere.
    fn reports() -> Vec<KnownState> {
        let pending = KnownState {
            status: Some(TaskStatus::Pending),
            containers: vec![seen("app", ContainerStatus::Pending)],
            pull_started_at: Some(10.0),
            ..Default::default()
        };
        let pulled = KnownState {
            pull_stopped_at: Some(11.0),
            containers: vec![
                KnownContainer {
                    image_digest: Some("sha256:1".to_string()),
                    ..seen("app", ContainerStatus::Pending)
                },
                seen("sidecar", ContainerStatus::Pending),
            ],
            ..pending.clone()
        };
        let binding = NetworkBinding {
            bind_ip: Some("0.0.0.0".to_string()),
            container_port: Some(80),
            host_port: Some(32768),
            ..NetworkBinding::default()
        };
        let running = KnownState {
            status: Some(TaskStatus::Running),
            started_at: Some(12.0),
            health_status: Some(HealthStatus::Unknown),
            containers: vec![
                KnownContainer {
                    network_bindings: Some(vec![binding.clone()]),
                    health_status: Some(HealthStatus::Unknown),
                    ..seen("app", ContainerStatus::Running)
                },
                seen("sidecar", ContainerStatus::Running),
                seen("not-in-the-task", ContainerStatus::Running),
            ],
            ..pulled.clone()
        };
        let healthy = KnownState {
            health_status: Some(HealthStatus::Healthy),
            containers: vec![KnownContainer {
                network_bindings: Some(vec![binding]),
                health_status: Some(HealthStatus::Healthy),
                ..seen("app", ContainerStatus::Running)
            }],
            ..running.clone()
        };
        // An older report arriving late: statuses do not go back.
        let late = pending.clone();
        let exited = KnownState {
            status: Some(TaskStatus::Stopping),
            reason: Some("Essential container in task exited".to_string()),
            stop_code: Some(TaskStopCode::EssentialContainerExited),
            containers: vec![KnownContainer {
                exit_code: Some(2),
                reason: Some("exited".to_string()),
                ..seen("app", ContainerStatus::Stopped)
            }],
            ..healthy.clone()
        };
        let stopped = KnownState {
            status: Some(TaskStatus::Stopped),
            execution_stopped_at: Some(20.0),
            reason: Some("a later reason does not replace the first".to_string()),
            containers: vec![seen("sidecar", ContainerStatus::Stopped)],
            ..exited.clone()
        };
        [pending, pulled, running, healthy, late, exited, stopped]
            .into_iter()
            .flat_map(|report| [report.clone(), report])
            .collect()
    }

    /// One member at a time: the record made ready for it, and a report that changes
    /// that member only.
    fn one_member_changes() -> Vec<(&'static str, TaskRecord, KnownState)> {
        let base = fresh_record();
        let with = |edit: &dyn Fn(&mut berth_model::task::Task)| {
            let mut record = base.clone();
            edit(&mut record.task);
            record
        };
        let app = |edit: &dyn Fn(&mut KnownContainer)| {
            let mut container = KnownContainer {
                name: "app".to_string(),
                ..Default::default()
            };
            edit(&mut container);
            KnownState {
                containers: vec![container],
                ..Default::default()
            }
        };
        let stopped_all_set = |task: &mut berth_model::task::Task| {
            task.last_status = Some("STOPPED".to_string());
            task.desired_status = Some("STOPPED".to_string());
            task.stopping_at = Some(1.0);
            task.stopped_at = Some(1.0);
            task.execution_stopped_at = Some(1.0);
            task.stopped_reason = Some("r".to_string());
            task.stop_code = Some(TaskStopCode::UserInitiated);
        };
        let stopped = |reason: Option<&str>, code: Option<TaskStopCode>| KnownState {
            status: Some(TaskStatus::Stopped),
            reason: reason.map(str::to_string),
            stop_code: code,
            ..Default::default()
        };
        let binding = NetworkBinding {
            host_port: Some(32768),
            ..NetworkBinding::default()
        };
        vec![
            (
                "runtime id",
                base.clone(),
                app(&|c| c.runtime_id = Some("id".into())),
            ),
            (
                "image digest",
                base.clone(),
                app(&|c| c.image_digest = Some("sha256:1".into())),
            ),
            (
                "container status",
                base.clone(),
                app(&|c| c.status = Some(ContainerStatus::Running)),
            ),
            ("exit code", base.clone(), app(&|c| c.exit_code = Some(2))),
            (
                "container reason",
                base.clone(),
                app(&|c| c.reason = Some("why".into())),
            ),
            (
                "bindings",
                base.clone(),
                app(&|c| c.network_bindings = Some(vec![binding.clone()])),
            ),
            (
                "container health",
                base.clone(),
                app(&|c| c.health_status = Some(HealthStatus::Healthy)),
            ),
            (
                "task status",
                with(&|t| t.started_at = Some(1.0)),
                KnownState {
                    status: Some(TaskStatus::Running),
                    ..Default::default()
                },
            ),
            (
                "startedAt",
                with(&|t| t.last_status = Some("RUNNING".to_string())),
                KnownState {
                    status: Some(TaskStatus::Running),
                    ..Default::default()
                },
            ),
            (
                "stoppingAt",
                with(&|t| {
                    t.last_status = Some("STOPPING".to_string());
                    t.started_at = Some(1.0);
                }),
                KnownState {
                    status: Some(TaskStatus::Stopping),
                    ..Default::default()
                },
            ),
            (
                "desired STOPPED",
                with(&|t| {
                    stopped_all_set(t);
                    t.desired_status = Some("RUNNING".into());
                }),
                stopped(None, None),
            ),
            (
                "stoppedAt",
                with(&|t| {
                    stopped_all_set(t);
                    t.stopped_at = None;
                }),
                stopped(None, None),
            ),
            (
                "executionStoppedAt",
                with(&|t| {
                    stopped_all_set(t);
                    t.execution_stopped_at = None;
                }),
                stopped(None, None),
            ),
            (
                "stoppedReason",
                with(&|t| {
                    stopped_all_set(t);
                    t.stopped_reason = None;
                }),
                stopped(Some("why"), None),
            ),
            (
                "stopCode",
                with(&|t| {
                    stopped_all_set(t);
                    t.stop_code = None;
                }),
                stopped(None, Some(TaskStopCode::EssentialContainerExited)),
            ),
            (
                "task health",
                base.clone(),
                KnownState {
                    health_status: Some(HealthStatus::Healthy),
                    ..Default::default()
                },
            ),
            (
                "pullStartedAt",
                base.clone(),
                KnownState {
                    pull_started_at: Some(1.0),
                    ..Default::default()
                },
            ),
            (
                "pullStoppedAt",
                base.clone(),
                KnownState {
                    pull_stopped_at: Some(1.0),
                    ..Default::default()
                },
            ),
        ]
    }

    #[test]
    fn a_change_to_any_one_member_is_seen_and_recorded_once() {
        for (member, mut record, known) in one_member_changes() {
            let before = record.task.clone();
            assert!(merge(&mut record, &known, 50.0), "{member}: not seen");
            let mut after = record.task.clone();
            after.version = before.version;
            assert_ne!(after, before, "{member}: nothing changed");
            let again = record.task.clone();
            assert!(!merge(&mut record, &known, 60.0), "{member}: seen twice");
            assert_eq!(record.task, again, "{member}: changed by the same report");
        }
    }

    #[test]
    fn merge_says_changed_exactly_when_the_task_changed() {
        let mut record = fresh_record();
        let mut changes = 0;
        for (at, known) in reports().iter().enumerate() {
            let before = record.task.clone();
            let changed = merge(&mut record, known, 100.0 + at as f64);
            let mut after = record.task.clone();
            if changed {
                assert_eq!(after.version, before.version.map(|v| v + 1), "report {at}");
                changes += 1;
            }
            after.version = before.version;
            assert_eq!(changed, after != before, "report {at}: {known:?}");
        }
        // Every report's first sending changed something but the late one; no
        // second sending did.
        assert_eq!(changes, 6);
        let task = &record.task;
        assert_eq!(task.last_status.as_deref(), Some("STOPPED"));
        assert_eq!(task.desired_status.as_deref(), Some("STOPPED"));
        assert_eq!(
            task.stopped_reason.as_deref(),
            Some("Essential container in task exited")
        );
        assert_eq!(
            (task.pull_started_at, task.pull_stopped_at),
            (Some(10.0), Some(11.0))
        );
        assert_eq!(
            (task.started_at, task.execution_stopped_at),
            (Some(12.0), Some(20.0))
        );
    }

    const INSTANCE: &str = "arn:aws:ecs:r:1:container-instance/c/i1";

    fn task(id: &str) -> serde_json::Value {
        serde_json::json!({
            "taskArn": format!("arn:aws:ecs:r:1:task/c/{id}"),
            "containerInstanceArn": INSTANCE,
            "lastStatus": "RUNNING",
            "desiredStatus": "RUNNING",
            "berthReserved": {"cpu": 100, "memory": 64, "tcpPorts": [], "udpPorts": []},
        })
    }

    /// Records `reports` of instance INSTANCE of cluster `c` in region `r`, as the
    /// session of the key `caller` would.
    async fn record(
        store: &Arc<berth_store::sqlite::SqliteStore>,
        reports: &[Report<'_>],
        caller: Option<&str>,
        now: f64,
        owners: &mut Owners,
    ) -> Result<Vec<Result<(), ApiError>>, String> {
        let scope = Scope::new("r".to_string(), "1".to_string());
        apply_all(
            store.as_ref(),
            &scope,
            "c",
            reports,
            caller,
            Some(INSTANCE),
            now,
            owners,
        )
        .await
        .map_err(|e| e.message)
    }

    fn stopped() -> KnownState {
        KnownState {
            status: Some(TaskStatus::Stopped),
            ..KnownState::default()
        }
    }

    #[tokio::test]
    async fn reports_of_one_burst_give_back_every_reservation()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let resources = |cpu: i64, memory: i64| {
            serde_json::json!([
                {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
            ])
        };
        let instance = serde_json::json!({
            "containerInstanceArn": INSTANCE,
            "status": "ACTIVE",
            "registeredResources": resources(1024, 1024),
            "remainingResources": resources(824, 896),
        });
        let txn = Txn::new()
            .put(
                keys::container_instance("r", "c", "i1"),
                serde_json::to_vec(&instance)?,
            )
            .put(keys::task("r", "c", "t1"), serde_json::to_vec(&task("t1"))?)
            .put(keys::task("r", "c", "t2"), serde_json::to_vec(&task("t2"))?);
        assert!(matches!(
            store.commit(txn).await?,
            TxnOutcome::Committed { .. }
        ));

        let (one, two, missing) = (stopped(), stopped(), stopped());
        let reports = [
            ("t1", &one, None),
            ("t2", &two, None),
            ("t9", &missing, None),
        ];
        let results = record(&store, &reports, None, 1.0, &mut Owners::new()).await?;
        assert!(results[0].is_ok() && results[1].is_ok());
        assert!(results[2].is_err(), "an unknown task is refused on its own");

        let snapshot = store.snapshot().await?;
        let instance_key = keys::container_instance("r", "c", "i1");
        let instance: InstanceRecord = state::read(&snapshot, &instance_key)
            .map_err(|e| e.message)?
            .ok_or("instance gone")?
            .value;
        let usage = Usage::read(&snapshot, &instance_key, &instance).map_err(|e| e.message)?;
        assert!(usage.mod_revision > 0, "written to the usage record");
        assert_eq!(
            Some(usage.record.remaining_resources),
            serde_json::from_value(resources(1024, 1024))?,
            "both tasks' reservations are back"
        );
        assert_eq!(usage.record.changes, 2, "one change per task");
        for id in ["t1", "t2"] {
            let record: TaskRecord = state::read(&snapshot, &keys::task("r", "c", id))
                .map_err(|e| e.message)?
                .ok_or("task gone")?
                .value;
            assert!(record.is_stopped() && record.released);
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_held_record_stands_for_the_stored_version_it_was_read_at()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let instance = serde_json::json!({"containerInstanceArn": INSTANCE, "status": "ACTIVE"});
        let mut pending = task("t1");
        pending["lastStatus"] = "PENDING".into();
        let txn = Txn::new()
            .put(
                keys::container_instance("r", "c", "i1"),
                serde_json::to_vec(&instance)?,
            )
            .put(keys::task("r", "c", "t1"), serde_json::to_vec(&pending)?);
        let TxnOutcome::Committed { revision } = store.commit(txn).await? else {
            return Err("conflict".into());
        };
        let running = KnownState {
            status: Some(TaskStatus::Running),
            ..KnownState::default()
        };
        // What the holder has differs from the store only in its group, so the
        // written record tells which one the report was folded into.
        let held = |mod_revision: i64| -> Result<HeldRecord, serde_json::Error> {
            let mut record: TaskRecord = serde_json::from_value(pending.clone())?;
            record.task.group = Some("held".to_string());
            Ok(HeldRecord {
                mod_revision,
                record: Arc::new(record),
            })
        };
        let group = |store: Arc<berth_store::sqlite::SqliteStore>| async move {
            let snapshot = store.snapshot().await?;
            let record: TaskRecord = state::read(&snapshot, &keys::task("r", "c", "t1"))
                .map_err(|e| e.message)?
                .ok_or("task gone")?
                .value;
            Ok::<_, Box<dyn std::error::Error>>((record.task.group, record.task.last_status))
        };
        // An older version than the store's is not used.
        let stale = held(revision - 1)?;
        let reports = [("t1", &running, Some(&stale))];
        record(&store, &reports, None, 1.0, &mut Owners::new()).await?;
        assert_eq!(
            group(Arc::clone(&store)).await?,
            (None, Some("RUNNING".to_string()))
        );
        // The version the store has is used as it is.
        let snapshot = store.snapshot().await?;
        let current = snapshot
            .get(&keys::task("r", "c", "t1"))
            .map(|kv| kv.mod_revision)
            .ok_or("task gone")?;
        let current = held(current)?;
        let stopped = stopped();
        let reports = [("t1", &stopped, Some(&current))];
        record(&store, &reports, None, 2.0, &mut Owners::new()).await?;
        assert_eq!(
            group(store).await?,
            (Some("held".to_string()), Some("STOPPED".to_string()))
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_instance_owner_is_read_again_when_its_record_changes()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let instance = |owner: &str| serde_json::json!({"containerInstanceArn": INSTANCE, "status": "ACTIVE", "berthOwner": owner});
        let instance_key = keys::container_instance("r", "c", "i1");
        let txn = Txn::new()
            .put(&instance_key, serde_json::to_vec(&instance("k1"))?)
            .put(keys::task("r", "c", "t1"), serde_json::to_vec(&task("t1"))?);
        store.commit(txn).await?;
        let mut owners = Owners::new();
        let report = |status: TaskStatus| KnownState {
            status: Some(status),
            ..KnownState::default()
        };
        let (running, stopped) = (report(TaskStatus::Running), report(TaskStatus::Stopped));
        let results = record(
            &store,
            &[("t1", &running, None)],
            Some("k1"),
            1.0,
            &mut owners,
        )
        .await?;
        assert!(results[0].is_ok(), "k1 owns the instance");
        store
            .commit(Txn::new().put(&instance_key, serde_json::to_vec(&instance("k2"))?))
            .await?;
        let results = record(
            &store,
            &[("t1", &stopped, None)],
            Some("k1"),
            2.0,
            &mut owners,
        )
        .await?;
        assert!(
            results[0]
                .as_ref()
                .is_err_and(|e| e.code == berth_model::ErrorCode::AccessDeniedException),
            "the new owner is read: {results:?}"
        );
        Ok(())
    }
}

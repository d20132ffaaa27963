//! What the engine knows of one task: its containers, their phases and outcomes, and
//! how each observation (an action's result, a runtime event) changes that. Pure: the
//! decisions taken from this state are `plan`'s, the I/O is `runner`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_model::task_definition::{ContainerCondition, ContainerDefinition};
use berth_proto::{DesiredTask, StopCode, TaskStatus};
use tokio::time::Instant;

use super::spec::{self, TaskContext, VolumeToCreate, link_target};
use crate::runtime::{
    ContainerSpec, ContainerState, Health, PortBound, RuntimeError, Status, TaskLimits,
};

/// The container's reason when the kernel killed it for memory (ECS's wording).
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
/// The task's stoppedReason when an essential container exited (ECS's wording).
pub const ESSENTIAL_EXITED: &str = "Essential container in task exited";
/// The task's stoppedReason when StopTask gave none.
pub const STOPPED_BY_USER: &str = "Task stopped by user";

/// Defaults the task definition may leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// How long a dependent waits for a container to reach COMPLETE, SUCCESS or
    /// HEALTHY, from the container's start (ECS_CONTAINER_START_TIMEOUT).
    pub start_timeout: Duration,
    /// Time between SIGTERM and SIGKILL (ECS_CONTAINER_STOP_TIMEOUT).
    pub stop_timeout: Duration,
    /// Wait before trying again to stop a container the runtime failed to stop.
    pub stop_retry: Duration,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(180),
            stop_timeout: Duration::from_secs(30),
            stop_retry: Duration::from_secs(5),
        }
    }
}

/// A moment, both monotonic (for timeouts) and wall-clock (for reports).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    pub at: Instant,
    /// Epoch seconds.
    pub epoch: f64,
}

impl Now {
    pub fn current() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            at: Instant::now(),
            epoch,
        }
    }

    /// The monotonic instant of a past epoch time (now, if it is in the future).
    fn instant_of(&self, epoch: f64) -> Instant {
        let elapsed = (self.epoch - epoch).max(0.0);
        Duration::try_from_secs_f64(elapsed)
            .ok()
            .and_then(|d| self.at.checked_sub(d))
            .unwrap_or(self.at)
    }
}

/// Where a container is in its lifecycle. `Pulling`, `Creating`, `Starting` and
/// `Stopping` mean the runtime is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    None,
    Pulling,
    Pulled,
    Creating,
    Created,
    Starting,
    Running,
    Stopping,
    Stopped,
}

/// What a container waits for in another. `Created` is implied by volumesFrom (the
/// source must exist); links and shared namespaces imply `Start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Created,
    Start,
    Complete,
    Success,
    Healthy,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Created => "CREATED",
            Condition::Start => "START",
            Condition::Complete => "COMPLETE",
            Condition::Success => "SUCCESS",
            Condition::Healthy => "HEALTHY",
        }
    }
}

impl From<ContainerCondition> for Condition {
    fn from(value: ContainerCondition) -> Self {
        match value {
            ContainerCondition::Start => Condition::Start,
            ContainerCondition::Complete => Condition::Complete,
            ContainerCondition::Success => Condition::Success,
            ContainerCondition::Healthy => Condition::Healthy,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub container: String,
    pub condition: Condition,
}

/// One container of a task: what the definition says, and what is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerModel {
    pub name: String,
    pub image: Option<String>,
    pub essential: bool,
    pub dependencies: Vec<Dependency>,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    pub has_health_check: bool,
    /// The runtime spec, or why there cannot be one (a creation failure).
    pub spec: Result<ContainerSpec, String>,

    pub phase: Phase,
    pub runtime_id: Option<String>,
    /// Its dependencies were satisfied when it was created: it starts right away.
    pub dependencies_cleared: bool,
    /// When it started running (monotonic), for dependency timeouts.
    pub started_at: Option<Instant>,
    /// When it started running, epoch seconds.
    pub started_epoch: Option<f64>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub health: Option<Health>,
    pub ports: Vec<PortBound>,
    /// A failed stop is tried again from then on.
    pub retry_stop_at: Option<Instant>,
}

impl ContainerModel {
    fn new(name: String, defaults: &Defaults) -> Self {
        Self {
            name,
            image: None,
            essential: true,
            dependencies: Vec::new(),
            start_timeout: defaults.start_timeout,
            stop_timeout: defaults.stop_timeout,
            has_health_check: false,
            spec: Err("the task definition is not known".to_owned()),
            phase: Phase::None,
            runtime_id: None,
            dependencies_cleared: false,
            started_at: None,
            started_epoch: None,
            exit_code: None,
            reason: None,
            health: None,
            ports: Vec::new(),
            retry_stop_at: None,
        }
    }

    /// Whether it ever ran (it may have exited since).
    pub fn ever_started(&self) -> bool {
        self.started_at.is_some()
    }

    /// Whether it ran and has exited.
    pub fn exited(&self) -> bool {
        self.phase == Phase::Stopped && self.ever_started()
    }

    /// Marks it stopped without running (it failed, or the task stopped first).
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.phase = Phase::Stopped;
        self.reason.get_or_insert_with(|| reason.into());
    }

    /// Folds in what the runtime says of the container. Only moves forward.
    pub fn apply_state(&mut self, state: &ContainerState, now: Now) {
        if self.runtime_id.is_none() {
            self.runtime_id = Some(state.id.clone());
        }
        if let Some(health) = state.health {
            self.health = Some(health);
        }
        if !state.ports.is_empty() {
            self.ports = state.ports.clone();
        }
        match state.status {
            Status::Created => {
                if self.phase < Phase::Created {
                    self.phase = Phase::Created;
                }
            }
            Status::Running => {
                self.mark_started(state, now);
                if self.phase < Phase::Running {
                    self.phase = Phase::Running;
                }
            }
            Status::Exited => {
                // An exited container ran (one that never started stays "created").
                self.mark_started(state, now);
                self.phase = Phase::Stopped;
                if state.oom_killed {
                    self.exit_code = Some(137);
                    self.reason = Some(OOM_REASON.to_owned());
                } else {
                    if state.exit_code.is_some() {
                        self.exit_code = state.exit_code;
                    }
                    if let Some(error) = state.error.as_deref().filter(|e| !e.is_empty()) {
                        self.reason.get_or_insert_with(|| error.to_owned());
                    }
                }
            }
        }
    }

    fn mark_started(&mut self, state: &ContainerState, now: Now) {
        if self.started_at.is_none() {
            let epoch = state.started_at.unwrap_or(now.epoch);
            self.started_at = Some(now.instant_of(epoch));
            self.started_epoch = Some(epoch);
        }
    }
}

/// Task-scoped volumes: created before any container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumesPhase {
    Pending,
    Creating,
    Ready,
    Failed(String),
}

/// The task's cgroup, which holds its task-level cpu and memory limits: made before
/// any container is created, since the containers are created inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPhase {
    Pending,
    Creating,
    /// The cgroup parent of the task's containers; `None` when the task has no
    /// task-level limits or the host cannot give it a cgroup.
    Ready(Option<String>),
}

impl CgroupPhase {
    /// The cgroup parent of the task's containers, once known.
    pub fn parent(&self) -> Option<String> {
        match self {
            CgroupPhase::Ready(parent) => parent.clone(),
            CgroupPhase::Pending | CgroupPhase::Creating => None,
        }
    }
}

/// Why the task stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopCause {
    pub reason: String,
    pub code: Option<StopCode>,
}

impl StopCause {
    pub fn new(reason: impl Into<String>, code: Option<StopCode>) -> Self {
        Self {
            reason: reason.into(),
            code,
        }
    }
}

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskModel {
    pub task_arn: String,
    pub cluster_arn: String,
    /// False for a task re-adopted from its containers whose definition has not come
    /// yet: the engine then only watches it.
    pub definition_known: bool,
    /// Why the task cannot run at all (bad volumes, a dependency cycle), if so.
    pub invalid: Option<String>,
    /// In definition order.
    pub containers: Vec<ContainerModel>,
    pub volumes_to_create: Vec<VolumeToCreate>,
    pub volumes_to_remove: Vec<String>,
    pub volumes: VolumesPhase,
    /// The task-level cpu and memory.
    pub limits: TaskLimits,
    pub cgroup: CgroupPhase,
    pub stop: Option<StopCause>,
    /// The known status; only moves forward.
    pub status: TaskStatus,
    /// Containers and volumes may be removed once stopped (not before the
    /// definition of an adopted task is known, or the task is let go).
    pub cleanup_allowed: bool,
    pub cleanup_started: bool,
    pub cleanup_done: bool,
    pub pull_started_at: Option<f64>,
    pub pull_stopped_at: Option<f64>,
    pub started_at: Option<f64>,
    pub execution_stopped_at: Option<f64>,
    /// Wait before trying again to stop a container the runtime failed to stop.
    pub stop_retry: Duration,
}

impl TaskModel {
    /// A task the control plane gave, not yet started.
    pub fn from_desired(desired: &DesiredTask, instance_arn: &str, defaults: &Defaults) -> Self {
        let definitions = desired
            .task_definition
            .container_definitions
            .clone()
            .unwrap_or_default();
        let context = TaskContext::new(
            &desired.task_arn,
            &desired.cluster_arn,
            instance_arn,
            &desired.task_definition,
            desired.effective_network_mode.as_deref(),
        );
        let mut invalid = None;
        let (volumes_to_create, volumes_to_remove) = match &context {
            Ok(context) => (context.volumes_to_create(), context.volumes_to_remove()),
            Err(error) => {
                invalid = Some(format!("CannotCreateContainerError: {error}"));
                (Vec::new(), Vec::new())
            }
        };
        let anchor = context
            .as_ref()
            .ok()
            .and_then(|c| c.namespace_anchor.clone());
        let containers: Vec<ContainerModel> = definitions
            .iter()
            .map(|definition| container_model(definition, &context, anchor.as_deref(), defaults))
            .collect();
        if invalid.is_none() {
            invalid = dependency_problem(&containers);
        }
        let size = desired.task_definition.size();
        let limits = TaskLimits::new(size.cpu, size.memory);
        Self {
            task_arn: desired.task_arn.clone(),
            cluster_arn: desired.cluster_arn.clone(),
            definition_known: true,
            invalid,
            containers,
            volumes: if volumes_to_create.is_empty() {
                VolumesPhase::Ready
            } else {
                VolumesPhase::Pending
            },
            volumes_to_create,
            volumes_to_remove,
            limits,
            cgroup: if limits.is_none() {
                CgroupPhase::Ready(None)
            } else {
                CgroupPhase::Pending
            },
            stop: None,
            status: TaskStatus::Pending,
            cleanup_allowed: true,
            cleanup_started: false,
            cleanup_done: false,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            execution_stopped_at: None,
            stop_retry: defaults.stop_retry,
        }
    }

    /// A task rebuilt from its containers after an agent restart: `containers` pairs
    /// each container name with what the runtime says of it.
    pub fn adopted(
        task_arn: &str,
        cluster_arn: &str,
        containers: Vec<(String, ContainerState)>,
        defaults: &Defaults,
        now: Now,
    ) -> Self {
        let containers = containers
            .into_iter()
            .map(|(name, state)| {
                let mut container = ContainerModel::new(name, defaults);
                container.image = Some(state.image.clone());
                container.apply_state(&state, now);
                // It was created, so its dependencies were met once.
                container.dependencies_cleared = true;
                container
            })
            .collect();
        Self {
            task_arn: task_arn.to_owned(),
            cluster_arn: cluster_arn.to_owned(),
            definition_known: false,
            invalid: None,
            containers,
            volumes_to_create: Vec::new(),
            volumes_to_remove: Vec::new(),
            volumes: VolumesPhase::Ready,
            // Its containers are in whatever cgroup they were created in; it is made
            // again (the same) if the definition comes with containers to create.
            limits: TaskLimits::default(),
            cgroup: CgroupPhase::Ready(None),
            stop: None,
            status: TaskStatus::Pending,
            cleanup_allowed: false,
            cleanup_started: false,
            cleanup_done: false,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            execution_stopped_at: None,
            stop_retry: defaults.stop_retry,
        }
    }

    /// Gives an adopted task its definition: the containers found keep what is known
    /// of them; the others start from nothing.
    pub fn attach_definition(
        &mut self,
        desired: &DesiredTask,
        instance_arn: &str,
        defaults: &Defaults,
    ) {
        if self.definition_known {
            return;
        }
        let mut fresh = TaskModel::from_desired(desired, instance_arn, defaults);
        for container in &mut fresh.containers {
            let Some(known) = self.containers.iter().find(|c| c.name == container.name) else {
                continue;
            };
            container.phase = known.phase;
            container.runtime_id = known.runtime_id.clone();
            container.dependencies_cleared = known.dependencies_cleared;
            container.started_at = known.started_at;
            container.started_epoch = known.started_epoch;
            container.exit_code = known.exit_code;
            container.reason = known.reason.clone();
            container.ports = known.ports.clone();
            if container.has_health_check {
                container.health = known.health;
            }
        }
        // Containers of the task the definition does not name cannot be; keep them so
        // that they are stopped and removed with the task.
        for known in &self.containers {
            if !fresh.containers.iter().any(|c| c.name == known.name) {
                let mut extra = known.clone();
                extra.essential = false;
                fresh.containers.push(extra);
            }
        }
        fresh.stop = self.stop.clone();
        fresh.status = self.status;
        fresh.started_at = self.started_at;
        fresh.execution_stopped_at = self.execution_stopped_at;
        fresh.cleanup_started = self.cleanup_started;
        fresh.cleanup_done = self.cleanup_done;
        *self = fresh;
    }

    /// A stop: StopTask, or the control plane no longer wanting the task. The first
    /// cause is kept.
    pub fn request_stop(&mut self, cause: StopCause) {
        if self.stop.is_none() {
            self.stop = Some(cause);
        }
        self.cleanup_allowed = true;
    }

    pub fn container(&self, name: &str) -> Option<&ContainerModel> {
        self.containers.iter().find(|c| c.name == name)
    }

    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerModel> {
        self.containers.iter_mut().find(|c| c.name == name)
    }

    /// The name of the container the runtime knows by `id`.
    pub fn container_named_by_id(&self, id: &str) -> Option<&str> {
        self.containers
            .iter()
            .find(|c| c.runtime_id.as_deref() == Some(id))
            .map(|c| c.name.as_str())
    }

    /// Every runtime id of the task's containers.
    pub fn runtime_ids(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter_map(|c| c.runtime_id.clone())
            .collect()
    }

    /// Folds in the result of an action or an inspection.
    pub fn apply(&mut self, outcome: Outcome, now: Now) {
        match outcome {
            Outcome::VolumesCreated(result) => {
                if self.volumes == VolumesPhase::Creating {
                    self.volumes = match result {
                        Ok(()) => VolumesPhase::Ready,
                        Err(error) => VolumesPhase::Failed(format!(
                            "CannotCreateVolumeError: {}",
                            bare(&error)
                        )),
                    };
                }
            }
            Outcome::TaskCgroupCreated(result) => {
                if self.cgroup == CgroupPhase::Creating {
                    // A host that cannot limit the task still runs it, with its
                    // containers' own limits (the runner says so).
                    self.cgroup = CgroupPhase::Ready(result.ok().flatten());
                }
            }
            Outcome::Pulled { container, result } => {
                self.pull_stopped_at = Some(now.epoch);
                let Some(c) = self.container_mut(&container) else {
                    return;
                };
                if c.phase != Phase::Pulling {
                    return;
                }
                match result {
                    Ok(()) => c.phase = Phase::Pulled,
                    Err(error) => {
                        c.fail(failure("CannotPullContainerError", &error));
                    }
                }
            }
            Outcome::Created { container, result } => {
                let Some(c) = self.container_mut(&container) else {
                    return;
                };
                if c.phase != Phase::Creating {
                    return;
                }
                match result {
                    Ok(id) => {
                        c.runtime_id = Some(id);
                        c.phase = Phase::Created;
                    }
                    Err(error) => {
                        c.fail(failure("CannotCreateContainerError", &error));
                    }
                }
            }
            Outcome::Started {
                container,
                result,
                state,
            } => {
                let Some(c) = self.container_mut(&container) else {
                    return;
                };
                match result {
                    Ok(()) => {
                        if let Some(state) = state {
                            c.apply_state(&state, now);
                        }
                        if c.phase == Phase::Starting {
                            // Started, though the inspection did not say so.
                            c.phase = Phase::Running;
                            if c.started_at.is_none() {
                                c.started_at = Some(now.at);
                                c.started_epoch = Some(now.epoch);
                            }
                        }
                    }
                    Err(error) => {
                        if c.phase == Phase::Starting {
                            c.fail(failure("CannotStartContainerError", &error));
                        }
                    }
                }
            }
            Outcome::Stopped {
                container,
                result,
                state,
            } => {
                let retry = self.stop_retry;
                let Some(c) = self.container_mut(&container) else {
                    return;
                };
                match result {
                    Ok(()) => {
                        if let Some(state) = state {
                            c.apply_state(&state, now);
                        }
                        c.phase = Phase::Stopped;
                    }
                    Err(RuntimeError::NotFound(_)) => c.phase = Phase::Stopped,
                    Err(_) => {
                        if c.phase == Phase::Stopping {
                            c.phase = Phase::Running;
                            c.retry_stop_at = Some(now.at + retry);
                        }
                    }
                }
            }
            Outcome::Inspected { container, result } => {
                let Some(c) = self.container_mut(&container) else {
                    return;
                };
                match result {
                    Ok(state) => {
                        // A container being created or started is the action's to
                        // settle; an inspection racing it only adds facts.
                        c.apply_state(&state, now);
                    }
                    Err(RuntimeError::NotFound(_)) => {
                        if c.phase != Phase::Stopped {
                            c.fail("CannotInspectContainerError: the container no longer exists");
                        }
                    }
                    // The engine is away: the next Resync inspects again.
                    Err(_) => {}
                }
            }
            Outcome::Health { container, health } => {
                let watch_all = !self.definition_known;
                if let Some(c) = self.container_mut(&container)
                    && (c.has_health_check || watch_all)
                {
                    c.health = Some(health);
                }
            }
            Outcome::CleanedUp => self.cleanup_done = true,
        }
    }
}

/// The result of an action, or a fact the runtime reported.
#[derive(Debug)]
pub enum Outcome {
    VolumesCreated(Result<(), RuntimeError>),
    /// The task's cgroup parent, if it has one.
    TaskCgroupCreated(Result<Option<String>, RuntimeError>),
    Pulled {
        container: String,
        result: Result<(), RuntimeError>,
    },
    Created {
        container: String,
        result: Result<String, RuntimeError>,
    },
    /// `state` is the inspection right after a successful start.
    Started {
        container: String,
        result: Result<(), RuntimeError>,
        state: Option<ContainerState>,
    },
    /// `state` is the inspection right after a successful stop.
    Stopped {
        container: String,
        result: Result<(), RuntimeError>,
        state: Option<ContainerState>,
    },
    Inspected {
        container: String,
        result: Result<ContainerState, RuntimeError>,
    },
    Health {
        container: String,
        health: Health,
    },
    CleanedUp,
}

/// A runtime error as ECS words the failure of `kind` (`CannotPullContainerError`...).
pub fn failure(kind: &str, error: &RuntimeError) -> String {
    format!("{kind}: {}", bare(error))
}

/// The error's message without the kind [`RuntimeError`]'s Display puts first.
fn bare(error: &RuntimeError) -> String {
    match error {
        RuntimeError::Pull(m) | RuntimeError::Create(m) | RuntimeError::Start(m) => m.clone(),
        other => other.to_string(),
    }
}

fn container_model(
    definition: &ContainerDefinition,
    context: &Result<TaskContext, spec::SpecError>,
    anchor: Option<&str>,
    defaults: &Defaults,
) -> ContainerModel {
    let name = definition.name_or_empty().to_owned();
    let mut dependencies: Vec<Dependency> = Vec::new();
    let mut add = |container: &str, condition: Condition| {
        if container != name
            && !dependencies
                .iter()
                .any(|d| d.container == container && d.condition == condition)
        {
            dependencies.push(Dependency {
                container: container.to_owned(),
                condition,
            });
        }
    };
    for dependency in definition.depends_on.iter().flatten() {
        add(&dependency.container_name, dependency.condition.into());
    }
    for link in definition.links.iter().flatten() {
        add(link_target(link), Condition::Start);
    }
    for source in definition.volumes_from.iter().flatten() {
        if let Some(source) = &source.source_container {
            add(source, Condition::Created);
        }
    }
    if let Some(anchor) = anchor {
        add(anchor, Condition::Start);
    }
    let spec = match context {
        Ok(context) => spec::container_spec(context, definition).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    let seconds = |value: Option<i32>| {
        value
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v > 0)
            .map(Duration::from_secs)
    };
    ContainerModel {
        image: definition.image.clone(),
        essential: definition.is_essential(),
        dependencies,
        start_timeout: seconds(definition.start_timeout).unwrap_or(defaults.start_timeout),
        stop_timeout: seconds(definition.stop_timeout).unwrap_or(defaults.stop_timeout),
        has_health_check: definition.health_check.is_some(),
        spec,
        ..ContainerModel::new(name, defaults)
    }
}

/// A dependency on a container the task does not have, or a cycle: the task can never
/// start.
fn dependency_problem(containers: &[ContainerModel]) -> Option<String> {
    let names: BTreeSet<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    for container in containers {
        for dependency in &container.dependencies {
            if !names.contains(dependency.container.as_str()) {
                return Some(format!(
                    "CannotCreateContainerError: container {} depends on unknown container {}",
                    container.name, dependency.container
                ));
            }
        }
    }
    let edges: BTreeMap<&str, Vec<&str>> = containers
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.dependencies
                    .iter()
                    .map(|d| d.container.as_str())
                    .collect(),
            )
        })
        .collect();
    // Kahn: whatever cannot be ordered is on a cycle.
    let mut pending: BTreeMap<&str, usize> =
        edges.iter().map(|(n, deps)| (*n, deps.len())).collect();
    let mut ready: Vec<&str> = pending
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(n, _)| *n)
        .collect();
    while let Some(done) = ready.pop() {
        pending.remove(done);
        for (name, deps) in &edges {
            if let Some(count) = pending.get_mut(name) {
                let hits = deps.iter().filter(|d| **d == done).count();
                if hits > 0 {
                    *count -= hits;
                    if *count == 0 {
                        ready.push(name);
                    }
                }
            }
        }
    }
    if pending.is_empty() {
        None
    } else {
        let cycle: Vec<&str> = pending.keys().copied().collect();
        Some(format!(
            "CannotCreateContainerError: the dependencies of containers {} form a cycle",
            cycle.join(", ")
        ))
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;

//! The task engine: runs the tasks the control plane assigns to this host as
//! containers, following ECS's task lifecycle, and reports their known state.
//!
//! - [`spec`] turns container definitions into runtime specs;
//! - [`model`] is what the engine knows of a task and how observations change it;
//! - [`plan`] decides what to do next (dependencies, essential exits, stop order,
//!   status, health);
//! - [`report`] makes the [`TaskStateChange`] of a task;
//! - `runner` is the one tokio task per task that does the I/O.
//!
//! The engine follows the runtime's event stream (no polling): one router task sends
//! each event to the runner of the task owning the container.
//!
//! Every container carries labels naming its cluster, task and container instance, so
//! that [`TaskEngine::adopt`] can take a restarted agent's tasks back without
//! restarting them, and never touches another instance's containers.

pub mod model;
pub mod plan;
pub mod report;
mod runner;
pub mod spec;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use berth_proto::{
    DesiredStatus, DesiredTask, StopCode, TaskStateChange, TaskStatus as ProtoTaskStatus, labels,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use model::{Defaults, ESSENTIAL_EXITED, OOM_REASON, STOPPED_BY_USER, StopCause};

use model::{Now, TaskModel};
use runner::{TaskHandle, TaskInput};

use crate::runtime::{ContainerState, PullPolicy, Runtime, RuntimeError, RuntimeEvent};

/// The reason of a container that is gone from the host although its task ran.
pub const CONTAINER_VANISHED: &str =
    "CannotInspectContainerError: the container no longer exists on the container instance";
/// The stoppedReason of a task whose containers are gone from the host.
pub const TASK_VANISHED: &str = "The task's containers no longer exist on the container instance";

/// The stoppedReason of a task the control plane no longer lists for this instance.
pub const NOT_DESIRED: &str = "Task is no longer assigned to this container instance";

/// Who this engine runs tasks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineIdentity {
    pub cluster_arn: String,
    pub instance_arn: String,
}

/// How the engine runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineConfig {
    pub pull_policy: PullPolicy,
    pub defaults: Defaults,
}

/// What the router and the runners share.
pub(crate) struct Shared {
    pub runtime: Arc<dyn Runtime>,
    pub identity: EngineIdentity,
    pub config: EngineConfig,
    pub reports: mpsc::Sender<TaskStateChange>,
    /// Every task the engine knows, by ARN.
    tasks: Mutex<HashMap<String, TaskHandle>>,
    /// The task ARN of each container id the engine owns.
    owners: Mutex<HashMap<String, String>>,
    /// The runners that finished since the table was last pruned: task ARN and the
    /// runner's number (`TaskHandle::runner`), so that a newer runner of the same task
    /// is not taken for the finished one.
    finished: Mutex<Vec<(String, u64)>>,
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, HashMap<String, TaskHandle>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn owners(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finished(&self) -> MutexGuard<'_, Vec<(String, u64)>> {
        self.finished.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A runner says it is done: its task stopped, was reported and cleaned up.
    pub fn runner_finished(&self, task_arn: &str, runner: u64) {
        self.finished().push((task_arn.to_owned(), runner));
    }

    pub fn own(&self, container_id: &str, task_arn: &str) {
        self.owners()
            .insert(container_id.to_owned(), task_arn.to_owned());
    }

    pub fn disown(&self, container_id: &str) {
        self.owners().remove(container_id);
    }
}

/// Runs tasks as containers and reports their state on the channel it is given.
pub struct TaskEngine {
    shared: Arc<Shared>,
    router: Mutex<Option<JoinHandle<()>>>,
}

impl TaskEngine {
    /// An engine with the default configuration. Must be called within a tokio
    /// runtime; it follows the runtime's events from now on.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        identity: EngineIdentity,
        reports: mpsc::Sender<TaskStateChange>,
    ) -> Self {
        Self::with_config(runtime, identity, EngineConfig::default(), reports)
    }

    pub fn with_config(
        runtime: Arc<dyn Runtime>,
        identity: EngineIdentity,
        config: EngineConfig,
        reports: mpsc::Sender<TaskStateChange>,
    ) -> Self {
        let events = runtime.events();
        let shared = Arc::new(Shared {
            runtime,
            identity,
            config,
            reports,
            tasks: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            finished: Mutex::new(Vec::new()),
        });
        let router = tokio::spawn(route(Arc::downgrade(&shared), events));
        Self {
            shared,
            router: Mutex::new(Some(router)),
        }
    }

    pub fn identity(&self) -> &EngineIdentity {
        &self.shared.identity
    }

    /// Applies the control plane's desired tasks: starts the new ones, stops those now
    /// desired STOPPED. With `full_state`, `tasks` is the whole desired set: tasks the
    /// engine runs that are not in it are stopped, and stopped ones are forgotten.
    pub fn apply(&self, tasks: Vec<DesiredTask>, full_state: bool) {
        let shared = &self.shared;
        let mut table = shared.tasks();
        let listed: HashSet<String> = tasks.iter().map(|t| t.task_arn.clone()).collect();
        for desired in tasks {
            let stop = (desired.desired_status == DesiredStatus::Stopped).then(|| {
                StopCause::new(
                    desired
                        .stopped_reason
                        .clone()
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| STOPPED_BY_USER.to_owned()),
                    Some(StopCode::UserInitiated),
                )
            });
            if let Some(handle) = table.get(&desired.task_arn) {
                handle.send(TaskInput::Definition(Box::new(desired)));
                if let Some(cause) = stop {
                    handle.send(TaskInput::Stop(cause));
                }
                continue;
            }
            let mut model = TaskModel::from_desired(
                &desired,
                &shared.identity.instance_arn,
                &shared.config.defaults,
            );
            if let Some(cause) = stop {
                // Never started here: it stops at once, and says so.
                model.request_stop(cause);
            } else if desired
                .known_status
                .is_some_and(|status| status >= ProtoTaskStatus::Running)
            {
                // It ran here before, but none of its containers is left (they were
                // removed while the agent was away): ECS runs a task's containers once.
                for container in &mut model.containers {
                    container.fail(CONTAINER_VANISHED);
                }
                model.request_stop(StopCause::new(TASK_VANISHED, None));
                tracing::warn!(task = %desired.task_arn, "the task's containers no longer exist");
            }
            tracing::info!(task = %desired.task_arn, "task assigned");
            let handle = runner::spawn(model, shared.clone(), false);
            table.insert(desired.task_arn, handle);
        }
        if !full_state {
            // A finished task the control plane no longer lists is done with: its last
            // report waits in the session until acknowledged, so nothing is lost by
            // forgetting it here, and the agent does not grow with every task it ran.
            // Only the runners that said they finished are looked at, not the whole
            // table: a delta costs what it carries, not the number of tasks here.
            let mut finished = shared.finished();
            finished.retain(|(arn, runner)| {
                if listed.contains(arn) {
                    // Listed again: kept until a delta that does not list it.
                    return true;
                }
                if table
                    .get(arn)
                    .is_some_and(|handle| handle.runner == *runner)
                {
                    table.remove(arn);
                }
                false
            });
        }
        if full_state {
            table.retain(|arn, handle| {
                if listed.contains(arn) {
                    return true;
                }
                if handle.finished() {
                    return false;
                }
                handle.send(TaskInput::Stop(StopCause::new(NOT_DESIRED, None)));
                true
            });
            // Notices of runners forgotten just now have nothing left to prune.
            shared.finished().retain(|(arn, runner)| {
                table
                    .get(arn)
                    .is_some_and(|handle| handle.runner == *runner)
            });
        }
    }

    /// Takes back the tasks whose containers carry this instance's ARN (after an agent
    /// restart): their state is rebuilt from the containers' labels and inspection;
    /// running containers keep running, exited ones are reported with their exit
    /// codes. The tasks continue once the control plane's payload gives their
    /// definitions. Returns the ARNs of the tasks taken back.
    pub async fn adopt(&self) -> Result<Vec<String>, RuntimeError> {
        let shared = &self.shared;
        let instance = shared.identity.instance_arn.clone();
        let filter = BTreeMap::from([(labels::INSTANCE_ARN.to_owned(), instance.clone())]);
        let found = shared.runtime.list(&filter).await?;
        let groups = group_by_task(found, &instance, &shared.identity.cluster_arn);
        let now = Now::current();
        let mut adopted = Vec::new();
        let mut table = shared.tasks();
        for (task_arn, (cluster_arn, containers)) in groups {
            if table.contains_key(&task_arn) {
                continue;
            }
            for (_, state) in &containers {
                shared.own(&state.id, &task_arn);
            }
            let model = TaskModel::adopted(
                &task_arn,
                &cluster_arn,
                containers,
                &shared.config.defaults,
                now,
            );
            tracing::info!(task = %task_arn, "task adopted");
            table.insert(task_arn.clone(), runner::spawn(model, shared.clone(), true));
            adopted.push(task_arn);
        }
        Ok(adopted)
    }

    /// The current known state of every task the engine knows (to send again after a
    /// reconnection), in task ARN order.
    pub fn known_states(&self) -> Vec<TaskStateChange> {
        let table = self.shared.tasks();
        let mut states: Vec<TaskStateChange> =
            table.values().map(|h| h.known.borrow().clone()).collect();
        states.sort_by(|a, b| a.task_arn.cmp(&b.task_arn));
        states
    }

    /// The current known state of one task.
    pub fn known_state(&self, task_arn: &str) -> Option<TaskStateChange> {
        self.shared
            .tasks()
            .get(task_arn)
            .map(|h| h.known.borrow().clone())
    }

    /// Stops following the tasks, leaving their containers as they are (the agent may
    /// be restarting; [`TaskEngine::adopt`] takes them back).
    pub async fn shutdown(&self) {
        let router = self
            .router
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let runners: Vec<JoinHandle<()>> = self
            .shared
            .tasks()
            .values_mut()
            .filter_map(|h| h.join.take())
            .collect();
        for handle in router.into_iter().chain(runners) {
            handle.abort();
            // Cancelled (or already finished): either way it is over.
            let _ = handle.await;
        }
    }
}

impl Drop for TaskEngine {
    fn drop(&mut self) {
        if let Some(router) = self
            .router
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            router.abort();
        }
        for handle in self.shared.tasks().values_mut() {
            if let Some(join) = handle.join.take() {
                join.abort();
            }
        }
    }
}

/// Sends each runtime event to the runner of the task owning the container; a Resync
/// to every runner.
async fn route(shared: std::sync::Weak<Shared>, mut events: BoxStream<'static, RuntimeEvent>) {
    while let Some(event) = events.next().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match &event {
            RuntimeEvent::Resync => {
                for handle in shared.tasks().values() {
                    handle.send(TaskInput::Event(RuntimeEvent::Resync));
                }
            }
            RuntimeEvent::Started { id }
            | RuntimeEvent::Died { id }
            | RuntimeEvent::Health { id, .. } => {
                let owner = shared.owners().get(id).cloned();
                if let Some(task_arn) = owner
                    && let Some(handle) = shared.tasks().get(&task_arn)
                {
                    handle.send(TaskInput::Event(event.clone()));
                }
            }
        }
    }
}

type AdoptedContainers = Vec<(String, ContainerState)>;

/// The containers of this instance, by task ARN, with each task's cluster. Containers
/// without the labels of a task container, or of another instance, are left out.
fn group_by_task(
    found: Vec<ContainerState>,
    instance_arn: &str,
    default_cluster: &str,
) -> BTreeMap<String, (String, AdoptedContainers)> {
    let mut groups: BTreeMap<String, (String, AdoptedContainers)> = BTreeMap::new();
    for state in found {
        if state.labels.get(labels::INSTANCE_ARN).map(String::as_str) != Some(instance_arn) {
            continue;
        }
        let (Some(task_arn), Some(name)) = (
            state.labels.get(labels::TASK_ARN).cloned(),
            state.labels.get(labels::CONTAINER_NAME).cloned(),
        ) else {
            continue;
        };
        let cluster = state
            .labels
            .get(labels::CLUSTER)
            .cloned()
            .unwrap_or_else(|| default_cluster.to_owned());
        groups
            .entry(task_arn)
            .or_insert_with(|| (cluster, Vec::new()))
            .1
            .push((name, state));
    }
    groups
}

//! The I/O side of one task: a tokio task that asks `plan` what to do, does it with
//! the runtime (each request its own future, so that pulls and independent starts go
//! in parallel), folds the results and the runtime's events back into the model, and
//! reports every change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_proto::{DesiredTask, TaskStateChange};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};

use super::Shared;
use super::model::{Now, Outcome, StopCause, TaskModel};
use super::plan::{self, Action};
use super::report;
use crate::runtime::{RuntimeError, RuntimeEvent};

/// What reaches a task's runner from outside.
#[derive(Debug)]
pub(crate) enum TaskInput {
    /// A runtime event about one of its containers, or a Resync.
    Event(RuntimeEvent),
    Stop(StopCause),
    /// The control plane's view of the task (gives an adopted task its definition).
    Definition(Box<DesiredTask>),
}

/// The engine's handle on a running task.
pub(crate) struct TaskHandle {
    pub inbox: mpsc::UnboundedSender<TaskInput>,
    pub known: watch::Receiver<TaskStateChange>,
    pub join: Option<tokio::task::JoinHandle<()>>,
    /// This runner's number, unique in the process: tells it from a later runner of
    /// the same task when it says it finished.
    pub runner: u64,
}

impl TaskHandle {
    pub fn send(&self, input: TaskInput) {
        // A runner that finished has nothing left to do with it.
        let _ = self.inbox.send(input);
    }

    /// Whether the runner is done (the task stopped and was cleaned up).
    pub fn finished(&self) -> bool {
        self.join
            .as_ref()
            .is_none_or(tokio::task::JoinHandle::is_finished)
    }
}

/// Starts the runner of `model`. With `resync_first`, every container is inspected
/// before anything else (an adopted task may have missed events).
pub(crate) fn spawn(model: TaskModel, shared: Arc<Shared>, resync_first: bool) -> TaskHandle {
    let (inbox, receiver) = mpsc::unbounded_channel();
    let initial = report::task_state_change(&model, new_message_id());
    let (known, watcher) = watch::channel(initial);
    let number = RUNNERS.fetch_add(1, Ordering::Relaxed);
    let runner = Runner {
        number,
        model,
        shared,
        inbox: receiver,
        known,
        last: None,
        sent: None,
        actions: JoinSet::new(),
    };
    let join = tokio::spawn(runner.run(resync_first));
    TaskHandle {
        inbox,
        known: watcher,
        join: Some(join),
        runner: number,
    }
}

pub(crate) fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Runners started in this process, for their numbers.
static RUNNERS: AtomicU64 = AtomicU64::new(0);

struct Runner {
    number: u64,
    model: TaskModel,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<TaskInput>,
    known: watch::Sender<TaskStateChange>,
    /// The newest known state, and the newest one reported to the control plane.
    last: Option<TaskStateChange>,
    sent: Option<TaskStateChange>,
    actions: JoinSet<Outcome>,
}

enum Wake {
    Input(Option<TaskInput>),
    Done(Box<Result<Outcome, JoinError>>),
    Timer,
}

impl Runner {
    async fn run(mut self, resync_first: bool) {
        if resync_first {
            self.resync();
        }
        loop {
            let actions = plan::next_actions(&mut self.model, Now::current());
            // The report goes first: the STOPPED report is queued before cleanup.
            self.report().await;
            for action in actions {
                self.dispatch(action);
            }
            if self.model.cleanup_done {
                self.shared
                    .runner_finished(&self.model.task_arn, self.number);
                return;
            }
            let deadline = plan::next_deadline(&self.model);
            let wake = tokio::select! {
                input = self.inbox.recv() => Wake::Input(input),
                Some(done) = self.actions.join_next(), if !self.actions.is_empty() => Wake::Done(Box::new(done)),
                () = sleep_until(deadline), if deadline.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Input(None) => return,
                Wake::Input(Some(input)) => self.handle(input),
                Wake::Done(done) => match *done {
                    Ok(outcome) => self.model.apply(outcome, Now::current()),
                    Err(error) => {
                        tracing::error!(task = %self.model.task_arn, %error, "runtime request failed");
                    }
                },
                Wake::Timer => {}
            }
        }
    }

    async fn report(&mut self) {
        let current = report::task_state_change(&self.model, String::new());
        if self
            .last
            .as_ref()
            .is_some_and(|last| report::same_state(last, &current))
        {
            return;
        }
        let current = TaskStateChange {
            message_id: new_message_id(),
            ..current
        };
        tracing::debug!(task = %current.task_arn, status = current.status.as_str(), "task state");
        self.known.send_replace(current.clone());
        self.last = Some(current.clone());
        if !report::worth_sending(self.sent.as_ref(), &current) {
            return;
        }
        self.sent = Some(current.clone());
        // Without a receiver the agent is going away; the state stays in `known`.
        let _ = self.shared.reports.send(current).await;
    }

    fn handle(&mut self, input: TaskInput) {
        match input {
            TaskInput::Event(RuntimeEvent::Started { id } | RuntimeEvent::Died { id }) => {
                if let Some(name) = self.model.container_named_by_id(&id) {
                    let name = name.to_owned();
                    self.inspect(name, id);
                }
            }
            TaskInput::Event(RuntimeEvent::Health { id, health }) => {
                if let Some(name) = self.model.container_named_by_id(&id) {
                    let container = name.to_owned();
                    self.model
                        .apply(Outcome::Health { container, health }, Now::current());
                }
            }
            TaskInput::Event(RuntimeEvent::Resync) => self.resync(),
            TaskInput::Stop(cause) => self.model.request_stop(cause),
            TaskInput::Definition(desired) => self.model.attach_definition(
                &desired,
                &self.shared.identity.instance_arn,
                &self.shared.config.defaults,
            ),
        }
    }

    fn resync(&mut self) {
        let known: Vec<(String, String)> = self
            .model
            .containers
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.runtime_id.clone()?)))
            .collect();
        for (name, id) in known {
            self.inspect(name, id);
        }
    }

    fn inspect(&mut self, container: String, id: String) {
        let runtime = self.shared.runtime.clone();
        self.actions.spawn(async move {
            let result = runtime.inspect(&id).await;
            Outcome::Inspected { container, result }
        });
    }

    fn dispatch(&mut self, action: Action) {
        let runtime = self.shared.runtime.clone();
        match action {
            Action::CreateVolumes(volumes) => {
                self.actions.spawn(async move {
                    let mut result = Ok(());
                    for volume in volumes {
                        result = runtime
                            .ensure_volume(&volume.name, volume.driver.as_deref(), &volume.labels)
                            .await;
                        if result.is_err() {
                            break;
                        }
                    }
                    Outcome::VolumesCreated(result)
                });
            }
            Action::CreateTaskCgroup { task_id, limits } => {
                let task_arn = self.model.task_arn.clone();
                self.actions.spawn(async move {
                    let result = runtime.ensure_task_cgroup(&task_id, &limits).await;
                    match &result {
                        Ok(Some(parent)) => {
                            tracing::debug!(task = %task_arn, cgroup = %parent, "task cgroup ready");
                        }
                        Ok(None) => {}
                        Err(error) => tracing::warn!(
                            task = %task_arn,
                            %error,
                            "cannot make the task's cgroup: its task-level cpu and memory are not \
                             enforced, its containers have their own limits only"
                        ),
                    }
                    Outcome::TaskCgroupCreated(result)
                });
            }
            Action::Pull { container, image } => {
                let policy = self.shared.config.pull_policy;
                self.actions.spawn(async move {
                    let result = runtime.ensure_image(&image, policy).await;
                    Outcome::Pulled { container, result }
                });
            }
            Action::Create { container, spec } => {
                let shared = self.shared.clone();
                let task_arn = self.model.task_arn.clone();
                self.actions.spawn(async move {
                    let result = runtime.create(&spec).await;
                    if let Ok(id) = &result {
                        // Before the start: its events must find the task.
                        shared.own(id, &task_arn);
                    }
                    Outcome::Created { container, result }
                });
            }
            Action::Start { container, id } => {
                self.actions.spawn(async move {
                    let result = runtime.start(&id).await;
                    let state = match result {
                        Ok(()) => runtime.inspect(&id).await.ok(),
                        Err(_) => None,
                    };
                    Outcome::Started {
                        container,
                        result,
                        state,
                    }
                });
            }
            Action::Stop {
                container,
                id,
                timeout,
            } => {
                self.actions.spawn(async move {
                    let result = runtime.stop(&id, timeout).await;
                    let state = match result {
                        Ok(()) => runtime.inspect(&id).await.ok(),
                        Err(_) => None,
                    };
                    Outcome::Stopped {
                        container,
                        result,
                        state,
                    }
                });
            }
            Action::Cleanup {
                containers,
                volumes,
                task_id,
            } => {
                let shared = self.shared.clone();
                let task_arn = self.model.task_arn.clone();
                self.actions.spawn(async move {
                    for id in containers {
                        log_failure(&task_arn, "remove container", runtime.remove(&id).await);
                        shared.disown(&id);
                    }
                    for volume in volumes {
                        log_failure(
                            &task_arn,
                            "remove volume",
                            runtime.remove_volume(&volume).await,
                        );
                    }
                    log_failure(
                        &task_arn,
                        "remove the task's cgroup",
                        runtime.remove_task_cgroup(&task_id).await,
                    );
                    Outcome::CleanedUp
                });
            }
        }
    }
}

fn log_failure(task_arn: &str, what: &str, result: Result<(), RuntimeError>) {
    match result {
        Ok(()) | Err(RuntimeError::NotFound(_)) => {}
        Err(error) => tracing::warn!(task = %task_arn, %error, "cannot {what}"),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

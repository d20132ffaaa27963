//! The decisions of the REPLICA service scheduler, with no I/O: given a service, its
//! deployments, its tasks, the scheduler's own small state and the time, [`plan`]
//! says which tasks to start and stop, how the deployments move (rollout state,
//! counts, PRIMARY -> ACTIVE -> INACTIVE, circuit breaker, rollback), which service
//! events to record, and when to look again.
//!
//! The function is level-triggered: it reads only what it is given, so the
//! controller can call it after any change (or after a crash) and converge. Whatever
//! must survive between calls is in the input: the deployments' `failed_tasks`, the
//! tasks' `accounted` flag (a stopped task is taken into account once), and the
//! [`SchedulerState`] (start throttle, steady state).
//!
//! The rules follow the Amazon ECS Developer Guide; each rule quotes the sentence
//! it implements. Where the guide changed over time, the current text wins (the
//! circuit breaker's minimum threshold is 3, no longer 10; the start throttle's
//! longest wait is 27 minutes, no longer 15): the constants below say so.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The planner's maps count a service's tasks by deployment, zone and instance, tens
/// of thousands of string keys per pass: hashed with foldhash rather than SipHash
/// (the maps live for one pass and their keys are the store's own ids).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

use berth_model::task::{HealthStatus, TaskStatus, TaskStopCode};

/// Seconds since the Unix epoch, as ECS timestamps are on the wire (and in berth's
/// records).
pub type Timestamp = f64;

/// A service's tasks as the planner takes them: a persistent vector, so the
/// controller's index can keep one per service, changed a task at a time, and hand a
/// pass the whole list as an O(1) clone.
pub type TaskList = imbl::Vector<ServiceTask>;

/// The tasks of a [`TaskList`] in order, a leaf of the vector at a time: each step is
/// a slice's, where the vector's own iterator looks every element up from the root.
/// A plan walks its service's tasks several times.
fn each(tasks: &TaskList) -> impl Iterator<Item = &ServiceTask> {
    tasks.leaves().flatten()
}

/// The circuit breaker's smallest failure threshold. ECS: "The deployment circuit
/// breaker has a minimum threshold of 3 and a maximum threshold of 200" (earlier
/// editions of the guide said 10).
pub const MIN_FAILURE_THRESHOLD: u32 = 3;
/// The circuit breaker's largest failure threshold.
pub const MAX_FAILURE_THRESHOLD: u32 = 200;

/// How many consecutive failures to start it takes before the scheduler waits
/// between attempts. One failure is retried at once; ECS throttles tasks that
/// "repeatedly fail to start".
pub const THROTTLE_AFTER: u32 = 2;
/// The first wait of the start throttle; every further failure doubles it.
pub const THROTTLE_BASE: Duration = Duration::from_secs(10);
/// The longest wait of the start throttle. ECS: "the time between subsequent restart
/// attempts is incrementally increased up to a maximum of 27 minutes" (earlier
/// editions: 15 minutes).
pub const THROTTLE_MAX: Duration = Duration::from_secs(27 * 60);

/// What ECS waits, after a task without health checks reaches RUNNING, before the
/// task counts as healthy: "If a task has no essential containers with a health
/// check defined, the service scheduler will wait for 40 seconds after a task
/// reaches a RUNNING state before the task is counted towards the minimum healthy
/// percent total." The controller chooses ([`ServiceSpec::running_grace`]); zero
/// counts a RUNNING task at once.
pub const ECS_RUNNING_GRACE: Duration = Duration::from_secs(40);

/// How many events a service keeps. ECS: "we only show the 100 most recent events".
pub const EVENT_LOG_CAPACITY: usize = 100;
/// How long a repeated event is left out, and how often the steady-state event is
/// repeated. ECS: "duplicate event messages are omitted until either the cause is
/// resolved or six hours passes".
pub const EVENT_REPEAT_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

// ---------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------

/// The service as the scheduler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The service name, as events name it: `(service NAME) ...`.
    pub name: String,
    pub desired_count: u32,
    /// `deploymentConfiguration.minimumHealthyPercent` (ECS default 100).
    pub minimum_healthy_percent: u32,
    /// `deploymentConfiguration.maximumPercent` (ECS default 200).
    pub maximum_percent: u32,
    /// `deploymentConfiguration.deploymentCircuitBreaker`.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// How long a RUNNING task without health checks waits before it counts as
    /// healthy; [`ECS_RUNNING_GRACE`] is what ECS waits.
    pub running_grace: Duration,
    /// Set for a DAEMON service: the instances it runs on. Its `desired_count` is
    /// then the number of those instances.
    pub daemon: Option<DaemonSpec>,
}

/// What the DAEMON scheduler needs beyond a replica service's spec. ECS: "The daemon
/// scheduling strategy deploys exactly one task on each active container instance
/// that meets all of the task placement constraints that are specified in your
/// cluster."
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonSpec {
    /// The instances that must each run one task of the service: ACTIVE and
    /// meeting the service's placement constraints.
    pub instances: Vec<String>,
    /// DRAINING instances that still run tasks other than daemon tasks: the
    /// service's task there stays until those have stopped. ECS: "the daemon
    /// service tasks are the last tasks to stop" on a draining instance.
    pub draining_busy: Vec<String>,
}

/// `deploymentCircuitBreaker`: whether failing deployments are failed, and whether
/// the service then rolls back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

/// A deployment's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentStatus {
    /// The most recent deployment: the one the scheduler runs tasks of.
    Primary,
    /// An older deployment that still has tasks to drain.
    Active,
    /// A deployment whose tasks are all gone.
    Inactive,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PRIMARY" => Some(Self::Primary),
            "ACTIVE" => Some(Self::Active),
            "INACTIVE" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// A deployment's `rolloutState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "IN_PROGRESS" => Some(Self::InProgress),
            "COMPLETED" => Some(Self::Completed),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A deployment of the service: in the input as stored, in the [`Plan`] as it
/// should be stored next.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// `ecs-svc/<digits>`, as ECS names deployments (and as a service task's
    /// `startedBy` names its deployment).
    pub id: String,
    pub task_definition_arn: String,
    pub status: DeploymentStatus,
    pub rollout_state: RolloutState,
    pub rollout_state_reason: String,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// ECS `failedTasks`: the tasks of this deployment counted as failures.
    pub failed_tasks: u32,
    pub created_at: Timestamp,
    /// Whether the deployment's task definition has an essential container with a
    /// health check (then only a HEALTHY task is healthy).
    pub has_health_check: bool,
}

/// A task of the service, in whatever state (stopped tasks included until the
/// scheduler has taken them into account).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTask {
    /// Shared with the controller's index (a pass builds one per task of the service).
    pub task_arn: Arc<str>,
    /// The deployment that started the task (ECS: the task's `startedBy`).
    pub deployment_id: Arc<str>,
    pub last_status: TaskStatus,
    pub desired_status: TaskStatus,
    pub health: HealthStatus,
    pub instance_id: Option<Arc<str>>,
    /// The value of the spread attribute on the task's instance: its availability
    /// zone (`attribute:ecs.availability-zone`). Read by [`plan`]; the controller
    /// leaves it (and `instance_available`) unset and answers through
    /// [`InstanceFacts`] instead, for the tasks a plan chooses among.
    pub zone: Option<Arc<str>>,
    /// The binpack measure of the task's instance: the amount of the binpack
    /// resource (memory or CPU) the instance has available. `None` when the service
    /// does not binpack.
    pub instance_available: Option<i64>,
    /// When the task reached RUNNING: ECS tells a task that never started by the
    /// absence of this timestamp.
    pub started_at: Option<Timestamp>,
    pub stop_code: Option<TaskStopCode>,
    /// Whether an earlier plan already took this (stopped) task into account; the
    /// controller sets it for every task of [`Plan::accounted`].
    pub accounted: bool,
    /// Whether the task's instance is DRAINING (read by [`plan`]; the controller
    /// answers through [`InstanceFacts::draining`] instead). ECS: "Service tasks on the container
    /// instance that are in the RUNNING state are stopped and replaced according to
    /// the service's deployment configuration parameters, minimumHealthyPercent and
    /// maximumPercent", and those PENDING "are stopped immediately".
    pub instance_draining: bool,
}

impl ServiceTask {
    /// The task's id: the last segment of its ARN.
    pub fn id(&self) -> &str {
        task_id(&self.task_arn)
    }

    fn is_stopped(&self) -> bool {
        self.last_status >= TaskStatus::Stopped
    }

    /// Whether (and how) this stopped task counts as a failure of its deployment.
    ///
    /// ECS `failedTasks`: "A task is considered a failure if the service scheduler
    /// can't launch the task, the task doesn't transition to a RUNNING state, or if
    /// it fails any of its defined health checks and is stopped." A task whose
    /// essential container exited counts too: "If that stopped container was marked
    /// as essential, then the entire task is considered to be unhealthy and the task
    /// must be replaced." Tasks stopped by a user, or for the infrastructure's sake
    /// (spot, instance health), are not the deployment's failures; tasks the
    /// scheduler stopped are failures only when they were unhealthy.
    pub fn failure(&self) -> Option<Failure> {
        match self.stop_code {
            Some(
                TaskStopCode::UserInitiated
                | TaskStopCode::SpotInterruption
                | TaskStopCode::TerminationNotice
                | TaskStopCode::InfrastructureHealth,
            ) => None,
            Some(TaskStopCode::ServiceSchedulerInitiated) => {
                (self.health == HealthStatus::Unhealthy).then_some(Failure::FailedHealthChecks)
            }
            Some(TaskStopCode::TaskFailedToStart) => Some(Failure::FailedToStart),
            Some(TaskStopCode::EssentialContainerExited) | None => {
                Some(if self.started_at.is_none() {
                    Failure::FailedToStart
                } else if self.health == HealthStatus::Unhealthy {
                    Failure::FailedHealthChecks
                } else {
                    Failure::Exited
                })
            }
        }
    }
}

/// Why a stopped task counts as a failure of its deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It stopped without reaching RUNNING. Only these feed the start throttle:
    /// "Tasks that are stopped after they reach the RUNNING state do not trigger the
    /// throttle logic".
    FailedToStart,
    /// It was stopped for failing its health checks.
    FailedHealthChecks,
    /// An essential container exited after the task reached RUNNING.
    Exited,
}

/// What the scheduler keeps between plans.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SchedulerState {
    pub backoff: Backoff,
    /// Whether the last plan found the service in a steady state.
    pub steady: bool,
    /// When the steady-state event was last recorded.
    pub steady_event_at: Option<Timestamp>,
}

/// The start throttle. ECS: "If tasks for an ECS service repeatedly fail to enter the
/// RUNNING state (progressing directly from PENDING to STOPPED), then the time
/// between subsequent restart attempts is incrementally increased", and "If you
/// update your service to use a new task definition, your service returns to a
/// normal, non-throttled state immediately."
///
/// The throttle belongs to one deployment: when the PRIMARY deployment changes (a
/// new deployment, a rollback), it starts afresh. A task of it reaching RUNNING ends
/// the run of consecutive failures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Backoff {
    /// The PRIMARY deployment the failures were counted for.
    pub deployment_id: Option<String>,
    pub consecutive_failures: u32,
    pub last_failure_at: Option<Timestamp>,
    /// No task is started before this time.
    pub next_attempt_at: Option<Timestamp>,
}

impl Backoff {
    /// A fresh throttle for `deployment_id`.
    pub fn for_deployment(deployment_id: &str) -> Self {
        Self {
            deployment_id: Some(deployment_id.to_string()),
            ..Self::default()
        }
    }

    /// The wait after `failures` consecutive failures to start: none below
    /// [`THROTTLE_AFTER`], then [`THROTTLE_BASE`] doubling up to [`THROTTLE_MAX`].
    pub fn delay_after(failures: u32) -> Duration {
        if failures < THROTTLE_AFTER {
            return Duration::ZERO;
        }
        let doublings = (failures - THROTTLE_AFTER).min(31);
        THROTTLE_BASE
            .saturating_mul(1u32 << doublings)
            .min(THROTTLE_MAX)
    }

    /// Counts one more failure to start (a task that stopped before RUNNING, or one
    /// the controller could not place) at `now`. Returns whether this failure made
    /// the scheduler start throttling, when ECS records "(service NAME) is unable to
    /// consistently start tasks successfully." ([`message::start_impaired`]).
    pub fn record_failure(&mut self, now: Timestamp) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_failure_at = Some(now);
        let delay = Self::delay_after(self.consecutive_failures);
        self.next_attempt_at = (!delay.is_zero()).then_some(now + delay.as_secs_f64());
        self.consecutive_failures == THROTTLE_AFTER
    }

    /// Ends the run of consecutive failures (a task started).
    pub fn clear(&mut self) {
        self.consecutive_failures = 0;
        self.last_failure_at = None;
        self.next_attempt_at = None;
    }

    /// Whether starts must wait at `now`.
    pub fn throttled(&self, now: Timestamp) -> bool {
        self.next_attempt_at.is_some_and(|at| now < at)
    }
}

// ---------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------

/// Everything one round of the scheduler decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Tasks to start (place) for a deployment.
    pub start: Vec<Start>,
    /// Tasks to stop (desired status STOPPED, stop code `ServiceSchedulerInitiated`).
    pub stop: Vec<Stop>,
    /// Stopped tasks this plan took into account (failures counted, throttle fed):
    /// the controller marks them so no later plan counts them again.
    pub accounted: Vec<String>,
    /// Every input deployment as it should be stored next (same order): status,
    /// rollout state and reason, counts.
    pub deployments: Vec<Deployment>,
    /// Set when the circuit breaker rolled the service back: the service's task
    /// definition becomes the rollback deployment's.
    pub rollback: Option<Rollback>,
    /// Service events, oldest first (see [`record_events`]). The "has started"
    /// event is the controller's once it has placed the tasks
    /// ([`message::tasks_started`]), and so is "unable to place"
    /// ([`message::unable_to_place`]).
    pub events: Vec<Event>,
    /// The scheduler state to keep for the next plan.
    pub state: SchedulerState,
    /// Of the tasks started, how many replace unhealthy tasks (for the "has started"
    /// event: "Amazon ECS replaced N tasks due to an unhealthy status.").
    pub unhealthy_replacements: u32,
    /// The service's `runningCount` and `pendingCount` after this plan.
    pub running_count: u32,
    pub pending_count: u32,
    /// When to plan again even if nothing changes: the start throttle ends, or a
    /// task's health grace ends.
    pub wake_at: Option<Timestamp>,
}

impl Plan {
    /// Whether the service is in a steady state.
    pub fn steady(&self) -> bool {
        self.state.steady
    }
}

/// Start `count` tasks of a deployment's task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub deployment_id: String,
    pub count: u32,
    /// For a DAEMON service, the instance of each task (`count` of them); empty for
    /// a REPLICA service, whose tasks go where the placement engine puts them.
    pub instances: Vec<String>,
}

/// Stop a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub task_arn: String,
    pub cause: StopCause,
    /// The task's `stoppedReason`, as ECS words it.
    pub reason: String,
}

/// Why the scheduler stops a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// A deployment replaces the task, or the service scales in: "Scaling activity
    /// initiated by (deployment ID)".
    ScalingActivity,
    /// The task failed its health checks: "Task failed container health checks".
    FailedHealthChecks,
}

/// The circuit breaker failed a deployment and rolled the service back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The deployment that failed (now ACTIVE, rollout FAILED, draining).
    pub failed_deployment_id: String,
    /// The last COMPLETED deployment, PRIMARY again with rollout IN_PROGRESS.
    pub deployment_id: String,
    pub task_definition_arn: String,
}

/// A service event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub message: String,
}

/// What a service event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    SteadyState,
    TasksStarted,
    TasksStopped,
    FailedHealthChecks,
    DeploymentCompleted,
    DeploymentFailed,
    RollingBack,
    StartImpaired,
    DeploymentConfigurationBlocked,
    UnableToPlace,
}

impl EventKind {
    /// Whether the event reports a condition that lasts (and would be reported by
    /// every round while it lasts): [`record_events`] leaves a repeat out for six
    /// hours.
    pub fn is_condition(self) -> bool {
        matches!(
            self,
            Self::StartImpaired | Self::DeploymentConfigurationBlocked | Self::UnableToPlace
        )
    }
}

// ---------------------------------------------------------------------------------
// The texts ECS writes
// ---------------------------------------------------------------------------------

/// The task id in an ARN (`arn:...:task/cluster/ID` -> `ID`); an id stays itself.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Service event messages, word for word as ECS writes them.
pub mod message {
    use super::task_id;

    /// "service (service-name) has reached a steady state." The scheduler sends it
    /// "when the service is healthy and at the desired number of tasks".
    pub fn steady_state(service: &str) -> String {
        format!("(service {service}) has reached a steady state.")
    }

    /// `(service NAME) has started N tasks: (task ID) (task ID).`, with ECS's
    /// sentence about unhealthy tasks when some of them replace unhealthy ones.
    pub fn tasks_started<'a>(
        service: &str,
        tasks: impl IntoIterator<Item = &'a str>,
        unhealthy_replacements: u32,
    ) -> String {
        let (count, list) = task_list(tasks);
        let mut text = format!("(service {service}) has started {count} tasks: {list}.");
        if unhealthy_replacements > 0 {
            text.push_str(&format!(
                " Amazon ECS replaced {unhealthy_replacements} tasks due to an unhealthy status."
            ));
        }
        text
    }

    /// `(service NAME) has stopped N running tasks: (task ID) (task ID).`
    pub fn tasks_stopped<'a>(service: &str, tasks: impl IntoIterator<Item = &'a str>) -> String {
        let (count, list) = task_list(tasks);
        format!("(service {service}) has stopped {count} running tasks: {list}.")
    }

    /// `(service NAME) (task ID) failed container health checks.`
    pub fn failed_health_checks(service: &str, task: &str) -> String {
        format!(
            "(service {service}) (task {}) failed container health checks.",
            task_id(task)
        )
    }

    /// `(service NAME) (deployment ecs-svc/ID) deployment completed.`
    pub fn deployment_completed(service: &str, deployment_id: &str) -> String {
        format!("(service {service}) (deployment {deployment_id}) deployment completed.")
    }

    /// `(service NAME) (deployment ecs-svc/ID) deployment failed: tasks failed to start.`
    pub fn deployment_failed(service: &str, deployment_id: &str) -> String {
        format!(
            "(service {service}) (deployment {deployment_id}) deployment failed: tasks failed to start."
        )
    }

    /// `(service NAME) rolling back to deployment ecs-svc/ID.`
    pub fn rolling_back(service: &str, deployment_id: &str) -> String {
        format!("(service {service}) rolling back to deployment {deployment_id}.")
    }

    /// "(service service-name) is unable to consistently start tasks successfully."
    pub fn start_impaired(service: &str) -> String {
        format!("(service {service}) is unable to consistently start tasks successfully.")
    }

    /// "service (service-name) was unable to stop or start tasks during a deployment
    /// because of the service deployment configuration. Update the
    /// minimumHealthyPercent or maximumPercent value and try again."
    pub fn deployment_configuration_blocked(service: &str) -> String {
        format!(
            "(service {service}) was unable to stop or start tasks during a deployment because of \
             the service deployment configuration. Update the minimumHealthyPercent or \
             maximumPercent value and try again."
        )
    }

    /// "service (service-name) was unable to place a task because no container
    /// instance met all of its requirements." followed by the placement's reason
    /// (e.g. "The closest matching container-instance ID has insufficient CPU units
    /// available.").
    pub fn unable_to_place(service: &str, reason: &str) -> String {
        let mut text = format!(
            "(service {service}) was unable to place a task because no container instance met all \
             of its requirements."
        );
        if !reason.is_empty() {
            text.push(' ');
            text.push_str(reason);
        }
        text
    }

    fn task_list<'a>(tasks: impl IntoIterator<Item = &'a str>) -> (usize, String) {
        let ids: Vec<String> = tasks
            .into_iter()
            .map(|task| format!("(task {})", task_id(task)))
            .collect();
        (ids.len(), ids.join(" "))
    }
}

/// Deployment `rolloutStateReason` texts, as ECS writes them.
pub mod reason {
    /// `ECS deployment ecs-svc/ID in progress.`
    pub fn in_progress(deployment_id: &str) -> String {
        format!("ECS deployment {deployment_id} in progress.")
    }

    /// `ECS deployment ecs-svc/ID completed.`
    pub fn completed(deployment_id: &str) -> String {
        format!("ECS deployment {deployment_id} completed.")
    }

    /// The failed deployment's reason.
    pub const CIRCUIT_BREAKER_FAILED: &str =
        "ECS deployment circuit breaker: tasks failed to start.";

    /// The rollback deployment's reason:
    /// `ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/ID.`
    pub fn rolling_back(deployment_id: &str) -> String {
        format!("ECS deployment circuit breaker: rolling back to deploymentId {deployment_id}.")
    }

    /// The `stoppedReason` of a task stopped for a deployment or a scale-in.
    pub fn scaling_activity(deployment_id: &str) -> String {
        format!("Scaling activity initiated by (deployment {deployment_id})")
    }

    /// The `stoppedReason` of a task stopped for failing its health checks.
    pub const FAILED_HEALTH_CHECKS: &str = "Task failed container health checks";
}

// ---------------------------------------------------------------------------------
// Bounds
// ---------------------------------------------------------------------------------

/// The task counts a rolling update keeps within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// No task is stopped while it would leave fewer healthy tasks than this.
    /// ECS: "The minimumHealthyPercent represents the lower limit on the number of
    /// tasks that should be running for a service during a deployment ... This value
    /// is rounded up."
    pub min_healthy: u32,
    /// No task is started while it would make more tasks RUNNING or PENDING than
    /// this. ECS: "The maximumPercent represents the upper limit on the number of
    /// tasks that should be running for a service during a deployment ... This value
    /// is rounded down."
    pub max_tasks: u32,
}

impl Bounds {
    pub fn of(spec: &ServiceSpec) -> Self {
        let desired = u64::from(spec.desired_count);
        let min = (desired * u64::from(spec.minimum_healthy_percent)).div_ceil(100);
        let max = desired * u64::from(spec.maximum_percent) / 100;
        Self {
            min_healthy: u32::try_from(min).unwrap_or(u32::MAX),
            max_tasks: u32::try_from(max).unwrap_or(u32::MAX),
        }
    }
}

/// The number of failures that fails a deployment. ECS: "Minimum threshold <= 0.5 *
/// desired task count => maximum threshold", and "When the result of the calculation
/// is greater than the minimum of 3, but smaller than the maximum of 200, the failure
/// threshold is set to the calculated threshold (rounded up)" (the guide's example:
/// 25 desired tasks, threshold 13).
pub fn failure_threshold(desired_count: u32) -> u32 {
    desired_count
        .div_ceil(2)
        .clamp(MIN_FAILURE_THRESHOLD, MAX_FAILURE_THRESHOLD)
}

// ---------------------------------------------------------------------------------
// The event log
// ---------------------------------------------------------------------------------

/// A recorded service event, as the controller stores it.
pub trait EventRecord {
    fn message(&self) -> &str;
    fn created_at(&self) -> Timestamp;
}

/// Adds `new` events (oldest first, as a [`Plan`] lists them) to `log` (newest first,
/// as DescribeServices returns them) and keeps the newest [`EVENT_LOG_CAPACITY`].
/// A condition event ([`EventKind::is_condition`]) whose message the log already
/// holds from the last [`EVENT_REPEAT_AFTER`] is left out.
pub fn record_events<E: EventRecord>(
    log: &mut Vec<E>,
    new: impl IntoIterator<Item = (EventKind, E)>,
    now: Timestamp,
) {
    let window = EVENT_REPEAT_AFTER.as_secs_f64();
    for (kind, event) in new {
        let repeat = kind.is_condition()
            && log
                .iter()
                .any(|old| old.message() == event.message() && now - old.created_at() < window);
        if !repeat {
            log.insert(0, event);
        }
    }
    log.truncate(EVENT_LOG_CAPACITY);
}

// ---------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------

/// Where a live task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    /// RUNNING and healthy: counts toward the minimum.
    Healthy,
    /// On its way: PENDING (or before), or RUNNING and not yet healthy.
    Starting { running: bool },
    /// RUNNING and failing its health checks: to be replaced.
    Unhealthy,
    /// Being stopped: still counts toward the maximum until it is STOPPED.
    Draining,
}

/// Decides one round of the replica scheduler. See the module documentation.
///
/// The rolling update, as ECS describes it: "the Amazon ECS service scheduler
/// replaces the currently running tasks with new tasks. The number of tasks that
/// Amazon ECS adds or removes from the service during a rolling update is controlled
/// by the deployment configuration." Tasks of the PRIMARY deployment are started
/// while the tasks RUNNING or PENDING (those being stopped included, until they are
/// STOPPED) stay within [`Bounds::max_tasks`]; tasks of older deployments, and
/// surplus tasks, are stopped: those not healthy at once, healthy ones only while
/// the healthy tasks stay at or above [`Bounds::min_healthy`]. A task that stopped is
/// replaced like any missing task: "If any of your tasks should fail or stop for any
/// reason, the Amazon ECS service scheduler launches another instance of your task
/// definition to replace it".
pub fn plan(
    spec: &ServiceSpec,
    deployments: &[Deployment],
    tasks: &[ServiceTask],
    state: &SchedulerState,
    now: Timestamp,
) -> Plan {
    let tasks: TaskList = tasks.iter().cloned().collect();
    plan_with(spec, deployments, &tasks, state, now, &Carried)
}

/// [`plan`], with the facts of the tasks' instances from `facts` rather than from
/// the tasks themselves (the controller looks an instance up only for a plan that
/// chooses tasks to stop, or when the cluster has a DRAINING instance, not for every
/// task of every pass), on the list its index keeps.
pub fn plan_with(
    spec: &ServiceSpec,
    deployments: &[Deployment],
    tasks: &TaskList,
    state: &SchedulerState,
    now: Timestamp,
    facts: &dyn InstanceFacts,
) -> Plan {
    let mut round = Round::new(spec, deployments, tasks, state, now, facts);
    round.account_stopped_tasks();
    round.run_circuit_breaker();
    match &spec.daemon {
        Some(daemon) => round.schedule_daemon(daemon),
        None => round.schedule(),
    }
    round.finish()
}

/// What choosing the tasks to stop needs to know of a task's instance.
pub trait InstanceFacts {
    /// The value of the spread attribute on the task's instance (its zone).
    fn zone<'a>(&'a self, task: &'a ServiceTask) -> Option<&'a str>;
    /// The binpack measure of the task's instance (see
    /// [`ServiceTask::instance_available`]).
    fn available(&self, task: &ServiceTask) -> Option<i64>;
    /// Whether the task's instance is DRAINING (see
    /// [`ServiceTask::instance_draining`]).
    fn draining(&self, task: &ServiceTask) -> bool;
}

/// The facts the tasks carry ([`ServiceTask::zone`],
/// [`ServiceTask::instance_available`], [`ServiceTask::instance_draining`]).
pub struct Carried;

impl InstanceFacts for Carried {
    fn zone<'a>(&'a self, task: &'a ServiceTask) -> Option<&'a str> {
        task.zone.as_deref()
    }

    fn available(&self, task: &ServiceTask) -> Option<i64> {
        task.instance_available
    }

    fn draining(&self, task: &ServiceTask) -> bool {
        task.instance_draining
    }
}

/// Finds tasks' deployments by position among a plan's deployments, remembering the
/// last task's (tasks come in runs of one deployment, whose id they share).
#[derive(Default)]
struct DeploymentOf {
    last: Option<(*const u8, Option<usize>)>,
}

impl DeploymentOf {
    fn find(&mut self, deployments: &[Deployment], task: &ServiceTask) -> Option<usize> {
        let id = &*task.deployment_id;
        if let Some((at, found)) = self.last
            && std::ptr::eq(at, id.as_ptr())
        {
            return found;
        }
        let found = deployments.iter().position(|d| d.id == id);
        self.last = Some((id.as_ptr(), found));
        found
    }
}

struct Round<'a> {
    spec: &'a ServiceSpec,
    tasks: &'a TaskList,
    facts: &'a dyn InstanceFacts,
    now: Timestamp,
    deployments: Vec<Deployment>,
    primary: Option<usize>,
    state: SchedulerState,
    events: Vec<Event>,
    accounted: Vec<String>,
    rollback: Option<Rollback>,
    start: u32,
    /// The DAEMON scheduler's starts, one per instance.
    start_on: Vec<String>,
    stop: Vec<(usize, StopCause)>,
    unhealthy_replacements: u32,
    wake_at: Option<Timestamp>,
    steady: bool,
}

impl<'a> Round<'a> {
    fn new(
        spec: &'a ServiceSpec,
        deployments: &[Deployment],
        tasks: &'a TaskList,
        state: &SchedulerState,
        now: Timestamp,
        facts: &'a dyn InstanceFacts,
    ) -> Self {
        let mut deployments = deployments.to_vec();
        // One PRIMARY: the newest; any other PRIMARY is treated as (and becomes)
        // ACTIVE.
        let primary = deployments
            .iter()
            .enumerate()
            .filter(|(_, d)| d.status == DeploymentStatus::Primary)
            .max_by(|(_, a), (_, b)| a.created_at.total_cmp(&b.created_at))
            .map(|(i, _)| i);
        for (i, deployment) in deployments.iter_mut().enumerate() {
            if deployment.status == DeploymentStatus::Primary && Some(i) != primary {
                deployment.status = DeploymentStatus::Active;
            }
        }
        let mut state = state.clone();
        if let Some(p) = primary {
            let id = deployments[p].id.as_str();
            if state.backoff.deployment_id.as_deref() != Some(id) {
                state.backoff = Backoff::for_deployment(id);
            }
        }
        Self {
            spec,
            tasks,
            facts,
            now,
            deployments,
            primary,
            state,
            events: Vec::new(),
            accounted: Vec::new(),
            rollback: None,
            start: 0,
            start_on: Vec::new(),
            stop: Vec::new(),
            unhealthy_replacements: 0,
            wake_at: None,
            steady: false,
        }
    }

    fn event(&mut self, kind: EventKind, message: String) {
        self.events.push(Event { kind, message });
    }

    fn deployment_index(&self, id: &str) -> Option<usize> {
        self.deployments.iter().position(|d| d.id == id)
    }

    fn is_primary_task(&self, task: &ServiceTask) -> bool {
        self.primary
            .is_some_and(|p| *self.deployments[p].id == *task.deployment_id)
    }

    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Counts the failures among the tasks that stopped since the last plan, and
    /// feeds the start throttle.
    fn account_stopped_tasks(&mut self) {
        // A task of the PRIMARY deployment that reached RUNNING after the last
        // failure ends the run of consecutive failures.
        if let Some(last) = self.state.backoff.last_failure_at {
            let started = each(self.tasks).any(|t| {
                self.is_primary_task(t)
                    && t.last_status == TaskStatus::Running
                    && t.started_at.is_some_and(|at| at >= last)
            });
            if started {
                self.state.backoff.clear();
            }
        }
        let tasks = self.tasks;
        for task in each(tasks).filter(|t| t.is_stopped() && !t.accounted) {
            self.accounted.push(task.task_arn.to_string());
            let Some(failure) = task.failure() else {
                continue;
            };
            if let Some(d) = self.deployment_index(&task.deployment_id) {
                let deployment = &mut self.deployments[d];
                deployment.failed_tasks = deployment.failed_tasks.saturating_add(1);
            }
            if failure == Failure::FailedToStart
                && self.is_primary_task(task)
                && self.state.backoff.record_failure(self.now)
            {
                self.event(
                    EventKind::StartImpaired,
                    message::start_impaired(&self.spec.name),
                );
            }
        }
    }

    /// Fails the PRIMARY deployment when its failures reach the threshold, and rolls
    /// back when asked to.
    ///
    /// ECS: "If the service fails to reach a steady state and circuit breaker is
    /// turned on, the deployment will transition to a FAILED state. A deployment in
    /// a FAILED state doesn't launch any new tasks." "When the failure count equals
    /// the threshold, the deployment is marked as FAILED." "When the deployment
    /// circuit breaker determines that a deployment failed, it looks for the most
    /// recent deployment that is in a COMPLETED state. This is the deployment that
    /// it uses as the roll-back deployment. When the rollback starts, the deployment
    /// changes from a COMPLETED to IN_PROGRESS." "When the deployment circuit breaker
    /// does not find a deployment that is in a COMPLETED state, the circuit breaker
    /// does not launch new tasks and the deployment is stalled."
    fn run_circuit_breaker(&mut self) {
        let Some(breaker) = self.spec.circuit_breaker.filter(|b| b.enable) else {
            return;
        };
        let Some(p) = self.primary else {
            return;
        };
        let primary = &self.deployments[p];
        if primary.rollout_state != RolloutState::InProgress
            || primary.failed_tasks < failure_threshold(self.spec.desired_count)
        {
            return;
        }
        let failed_id = primary.id.clone();
        let primary = &mut self.deployments[p];
        primary.rollout_state = RolloutState::Failed;
        primary.rollout_state_reason = reason::CIRCUIT_BREAKER_FAILED.to_string();
        self.event(
            EventKind::DeploymentFailed,
            message::deployment_failed(&self.spec.name, &failed_id),
        );
        if !breaker.rollback {
            return;
        }
        let target = self
            .deployments
            .iter()
            .enumerate()
            .filter(|(i, d)| *i != p && d.rollout_state == RolloutState::Completed)
            .max_by(|(_, a), (_, b)| a.created_at.total_cmp(&b.created_at))
            .map(|(i, _)| i);
        let Some(r) = target else {
            return;
        };
        self.deployments[p].status = DeploymentStatus::Active;
        let desired = self.spec.desired_count;
        let to = &mut self.deployments[r];
        to.status = DeploymentStatus::Primary;
        to.rollout_state = RolloutState::InProgress;
        to.rollout_state_reason = reason::rolling_back(&to.id);
        to.desired_count = desired;
        to.failed_tasks = 0;
        let rollback = Rollback {
            failed_deployment_id: failed_id,
            deployment_id: to.id.clone(),
            task_definition_arn: to.task_definition_arn.clone(),
        };
        self.state.backoff = Backoff::for_deployment(&rollback.deployment_id);
        self.event(
            EventKind::RollingBack,
            message::rolling_back(&self.spec.name, &rollback.deployment_id),
        );
        self.rollback = Some(rollback);
        self.primary = Some(r);
    }

    fn condition(&self, task: &ServiceTask) -> Option<Condition> {
        if task.is_stopped() {
            return None;
        }
        if task.desired_status > TaskStatus::Running || task.last_status > TaskStatus::Running {
            return Some(Condition::Draining);
        }
        if task.last_status < TaskStatus::Running {
            return Some(Condition::Starting { running: false });
        }
        let has_health_check = self
            .deployment_index(&task.deployment_id)
            .is_some_and(|d| self.deployments[d].has_health_check);
        if has_health_check {
            return Some(match task.health {
                HealthStatus::Healthy => Condition::Healthy,
                HealthStatus::Unhealthy => Condition::Unhealthy,
                HealthStatus::Unknown => Condition::Starting { running: true },
            });
        }
        let grace = self.spec.running_grace.as_secs_f64();
        match task.started_at {
            Some(at) if self.now < at + grace => Some(Condition::Starting { running: true }),
            _ => Some(Condition::Healthy),
        }
    }

    /// Wakes the scheduler when a RUNNING task without health checks becomes
    /// healthy.
    fn wake_for_running_grace(&mut self, conditions: &[Option<Condition>]) {
        let grace = self.spec.running_grace.as_secs_f64();
        let mut of = DeploymentOf::default();
        for (task, condition) in each(self.tasks).zip(conditions) {
            // The condition first: most tasks are not waiting for their grace, and
            // their records need not be read again.
            if *condition != Some(Condition::Starting { running: true }) {
                continue;
            }
            if let Some(at) = task.started_at {
                let has_health_check = of
                    .find(&self.deployments, task)
                    .is_some_and(|d| self.deployments[d].has_health_check);
                if !has_health_check {
                    self.wake(at + grace);
                }
            }
        }
    }

    /// Decides what to start and what to stop.
    fn schedule(&mut self) {
        let Some(p) = self.primary else {
            return;
        };
        let conditions: Vec<Option<Condition>> =
            each(self.tasks).map(|t| self.condition(t)).collect();
        self.wake_for_running_grace(&conditions);
        // "A deployment in a FAILED state doesn't launch any new tasks": a failed
        // PRIMARY (no rollback, or none possible) is left as it is.
        if self.deployments[p].rollout_state == RolloutState::Failed {
            return;
        }

        let desired = self.spec.desired_count as usize;
        let bounds = Bounds::of(self.spec);
        let primary_id = self.deployments[p].id.clone();

        let mut live = 0usize;
        let mut healthy = 0usize;
        let mut draining = 0usize;
        let mut primary_healthy = Vec::new();
        let mut primary_pending = Vec::new();
        let mut primary_awaiting = Vec::new();
        let mut primary_unhealthy = Vec::new();
        let mut old_healthy = Vec::new();
        let mut old_other = Vec::new();
        // A task is the PRIMARY's if its deployment is found where the PRIMARY's id
        // is first found (ids are compared once per run of tasks sharing one).
        let mut of = DeploymentOf::default();
        let primary_at = self.deployments.iter().position(|d| d.id == primary_id);
        for (i, (task, condition)) in each(self.tasks).zip(&conditions).enumerate() {
            let Some(condition) = condition else {
                continue;
            };
            live += 1;
            // A task on a DRAINING instance is replaced like an older deployment's.
            let on_draining = self.facts.draining(task);
            let primary = of.find(&self.deployments, task) == primary_at && !on_draining;
            match condition {
                Condition::Draining => draining += 1,
                Condition::Healthy => {
                    healthy += 1;
                    if primary {
                        primary_healthy.push(i)
                    } else {
                        old_healthy.push(i)
                    }
                }
                Condition::Starting { running } if primary => {
                    if *running {
                        primary_awaiting.push(i)
                    } else {
                        primary_pending.push(i)
                    }
                }
                Condition::Unhealthy if primary => primary_unhealthy.push(i),
                // A task RUNNING on a draining instance is replaced within the
                // deployment limits: it waits to become healthy, then counts as one.
                Condition::Starting { running: true } if on_draining => {}
                Condition::Starting { .. } | Condition::Unhealthy => old_other.push(i),
            }
        }
        let primary_starting = primary_pending.len() + primary_awaiting.len();

        // Starts: the PRIMARY deployment is short of tasks that are (or may become)
        // healthy; unhealthy tasks are replaced, within the maximum.
        let need = desired.saturating_sub(primary_healthy.len() + primary_starting);
        let room = (bounds.max_tasks as usize).saturating_sub(live);
        let throttled = self.state.backoff.throttled(self.now);
        if need > 0 && throttled {
            if let Some(at) = self.state.backoff.next_attempt_at {
                self.wake(at);
            }
        } else {
            self.start = u32::try_from(need.min(room)).unwrap_or(u32::MAX);
            self.unhealthy_replacements = self
                .start
                .min(u32::try_from(primary_unhealthy.len()).unwrap_or(u32::MAX));
        }

        let mut spread = Spread::new(self.tasks, self.facts, &conditions);
        let unhealthy_cause = |i: usize, conditions: &[Option<Condition>]| {
            if conditions[i] == Some(Condition::Unhealthy) {
                StopCause::FailedHealthChecks
            } else {
                StopCause::ScalingActivity
            }
        };

        // Stops that cannot lower the healthy count. Older deployments' tasks that
        // are not healthy go at once.
        while let Some(i) = spread.take(&mut old_other) {
            self.stop.push((i, unhealthy_cause(i, &conditions)));
        }
        // Surplus PRIMARY tasks still starting (a scale-in): those not yet RUNNING
        // first.
        let surplus = (primary_healthy.len() + primary_starting).saturating_sub(desired);
        let mut surplus = surplus.min(primary_starting);
        for group in [&mut primary_pending, &mut primary_awaiting] {
            while surplus > 0 {
                let Some(i) = spread.take(group) else { break };
                self.stop.push((i, StopCause::ScalingActivity));
                surplus -= 1;
            }
        }
        // Unhealthy PRIMARY tasks are kept while their replacements are not healthy
        // yet. ECS: "Amazon ECS will attempt to start a replacement for each
        // unhealthy task and wait until the replacement becomes healthy, before
        // terminating an old task."
        let keep_unhealthy = primary_unhealthy
            .len()
            .min(desired.saturating_sub(primary_healthy.len()));
        let mut extra_unhealthy = primary_unhealthy.len() - keep_unhealthy;
        while extra_unhealthy > 0 {
            let Some(i) = spread.take(&mut primary_unhealthy) else {
                break;
            };
            self.stop.push((i, StopCause::FailedHealthChecks));
            extra_unhealthy -= 1;
        }

        // Stops of healthy tasks, while the healthy count stays at the minimum or
        // above: older deployments' first, then the PRIMARY's surplus (a scale-in).
        let mut budget = healthy.saturating_sub(bounds.min_healthy as usize);
        while budget > 0 {
            let Some(i) = spread.take(&mut old_healthy) else {
                break;
            };
            self.stop.push((i, StopCause::ScalingActivity));
            budget -= 1;
        }
        let mut surplus = primary_healthy.len().saturating_sub(desired);
        while budget > 0 && surplus > 0 {
            let Some(i) = spread.take(&mut primary_healthy) else {
                break;
            };
            self.stop.push((i, StopCause::ScalingActivity));
            budget -= 1;
            surplus -= 1;
        }

        // Replacements that the maximum does not let start: ECS "stops the unhealthy
        // tasks one-by-one — using the minimumHealthyPercent as a constraint — to
        // clear up capacity to launch replacement tasks".
        if need > 0
            && room == 0
            && self.stop.is_empty()
            && draining == 0
            && let Some(i) = spread.take(&mut primary_unhealthy)
        {
            self.stop.push((i, StopCause::FailedHealthChecks));
        }

        let in_flight = draining > 0
            || primary_starting > 0
            || each(self.tasks).zip(&conditions).any(|(t, c)| {
                (*t.deployment_id != *primary_id || self.facts.draining(t))
                    && matches!(c, Some(Condition::Starting { .. }))
            });
        let idle = self.start == 0 && self.stop.is_empty();
        self.steady = idle && live == desired && primary_healthy.len() == desired;
        if idle
            && !self.steady
            && !in_flight
            && !throttled
            && self.deployments[p].rollout_state == RolloutState::InProgress
        {
            self.event(
                EventKind::DeploymentConfigurationBlocked,
                message::deployment_configuration_blocked(&self.spec.name),
            );
        }
    }

    /// Decides what to start and what to stop for a DAEMON service: one task of the
    /// PRIMARY deployment on each of its instances. A task of an older deployment
    /// is stopped before its replacement starts (a daemon never runs two tasks on
    /// one instance: ECS caps its maximumPercent at 100), healthy ones only while
    /// the healthy tasks stay at or above the minimum (ECS's default minimum for
    /// daemons is 0: all at once). Tasks on instances that should not run the
    /// service are stopped, except on a DRAINING instance that still runs other
    /// tasks: there the daemon's task stops last.
    fn schedule_daemon(&mut self, daemon: &DaemonSpec) {
        let Some(p) = self.primary else {
            return;
        };
        let conditions: Vec<Option<Condition>> =
            each(self.tasks).map(|t| self.condition(t)).collect();
        self.wake_for_running_grace(&conditions);
        let failed = self.deployments[p].rollout_state == RolloutState::Failed;
        let primary_id = self.deployments[p].id.clone();
        let tasks = self.tasks;
        let eligible: HashSet<&str> = daemon.instances.iter().map(String::as_str).collect();
        let busy: HashSet<&str> = daemon.draining_busy.iter().map(String::as_str).collect();

        let mut on: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut stopping_on: HashSet<&str> = HashSet::new();
        let mut healthy = 0usize;
        let mut draining = 0usize;
        for (i, (task, condition)) in each(tasks).zip(&conditions).enumerate() {
            let Some(condition) = condition else {
                continue;
            };
            let instance = task.instance_id.as_deref().unwrap_or_default();
            if *condition == Condition::Draining {
                stopping_on.insert(instance);
                draining += 1;
                continue;
            }
            if *condition == Condition::Healthy && eligible.contains(instance) {
                healthy += 1;
            }
            on.entry(instance).or_default().push(i);
        }
        let cause = |i: usize| {
            if conditions[i] == Some(Condition::Unhealthy) {
                StopCause::FailedHealthChecks
            } else {
                StopCause::ScalingActivity
            }
        };

        // Instances that should not run the service.
        let mut stray = false;
        for (instance, list) in &on {
            if eligible.contains(instance) {
                continue;
            }
            stray = true;
            if busy.contains(instance) {
                continue;
            }
            for &i in list {
                self.stop.push((i, cause(i)));
            }
        }

        // The service's instances.
        let rank = |i: usize| match conditions[i] {
            Some(Condition::Healthy) => 0,
            Some(Condition::Starting { running: true }) => 1,
            Some(Condition::Starting { running: false }) => 2,
            _ => 3,
        };
        let throttled = self.state.backoff.throttled(self.now);
        let mut settled = 0usize;
        let mut old_healthy = Vec::new();
        for instance in &daemon.instances {
            let list = on.get(instance.as_str()).cloned().unwrap_or_default();
            let (mut primaries, olds): (Vec<usize>, Vec<usize>) = list
                .into_iter()
                .partition(|&i| *tasks[i].deployment_id == *primary_id);
            primaries.sort_by_key(|&i| (rank(i), &*tasks[i].task_arn));
            if let Some((&keep, extra)) = primaries.split_first() {
                for &i in extra {
                    self.stop.push((i, cause(i)));
                }
                for &i in &olds {
                    self.stop.push((i, cause(i)));
                }
                match conditions[keep] {
                    Some(Condition::Unhealthy) => {
                        self.stop.push((keep, StopCause::FailedHealthChecks))
                    }
                    Some(Condition::Healthy) if extra.is_empty() && olds.is_empty() => settled += 1,
                    _ => {}
                }
                continue;
            }
            if !olds.is_empty() {
                for i in olds {
                    if conditions[i] == Some(Condition::Healthy) {
                        old_healthy.push(i);
                    } else {
                        self.stop.push((i, cause(i)));
                    }
                }
                continue;
            }
            // Its last task is still stopping, or nothing may start.
            if stopping_on.contains(instance.as_str()) || failed {
                continue;
            }
            if throttled {
                if let Some(at) = self.state.backoff.next_attempt_at {
                    self.wake(at);
                }
                continue;
            }
            self.start_on.push(instance.clone());
        }
        let min_healthy = Bounds::of(self.spec).min_healthy as usize;
        let mut budget = healthy.saturating_sub(min_healthy);
        old_healthy.sort_by_key(|&i| &*tasks[i].task_arn);
        for i in old_healthy {
            if budget == 0 {
                break;
            }
            self.stop.push((i, StopCause::ScalingActivity));
            budget -= 1;
        }
        self.start = u32::try_from(self.start_on.len()).unwrap_or(u32::MAX);
        self.steady = self.start_on.is_empty()
            && self.stop.is_empty()
            && draining == 0
            && !stray
            && settled == daemon.instances.len();
    }

    fn finish(mut self) -> Plan {
        let name = self.spec.name.clone();
        let primary_id = self.primary.map(|p| self.deployments[p].id.clone());

        // Stop list and its events.
        let mut stops = Vec::with_capacity(self.stop.len());
        for &(i, cause) in &self.stop {
            let task = &self.tasks[i];
            if cause == StopCause::FailedHealthChecks {
                self.events.push(Event {
                    kind: EventKind::FailedHealthChecks,
                    message: message::failed_health_checks(&name, task.id()),
                });
            }
            let reason = match cause {
                StopCause::FailedHealthChecks => reason::FAILED_HEALTH_CHECKS.to_string(),
                StopCause::ScalingActivity => {
                    reason::scaling_activity(primary_id.as_deref().unwrap_or(&task.deployment_id))
                }
            };
            stops.push(Stop {
                task_arn: task.task_arn.to_string(),
                cause,
                reason,
            });
        }
        if !stops.is_empty() {
            let message = message::tasks_stopped(&name, stops.iter().map(|s| s.task_arn.as_str()));
            self.event(EventKind::TasksStopped, message);
        }

        // Counts: the tasks that stay wanted after this plan.
        let stopping: HashSet<usize> = self.stop.iter().map(|&(i, _)| i).collect();
        let mut running_count = 0u32;
        let mut pending_count = 0u32;
        // Per deployment (by position): RUNNING, PENDING, and not stopped. A task of
        // an unknown deployment counts only in the totals.
        let mut per_deployment = vec![(0u32, 0u32, 0usize); self.deployments.len()];
        let mut of = DeploymentOf::default();
        for (i, task) in each(self.tasks).enumerate() {
            if task.is_stopped() {
                continue;
            }
            let mut counts = of
                .find(&self.deployments, task)
                .map(|d| &mut per_deployment[d]);
            if let Some(counts) = counts.as_mut() {
                counts.2 += 1;
            }
            if (!stopping.is_empty() && stopping.contains(&i))
                || task.desired_status > TaskStatus::Running
                || task.last_status > TaskStatus::Running
            {
                continue;
            }
            if task.last_status == TaskStatus::Running {
                running_count += 1;
                if let Some(counts) = counts {
                    counts.0 += 1;
                }
            } else {
                pending_count += 1;
                if let Some(counts) = counts {
                    counts.1 += 1;
                }
            }
        }

        let primary_in_progress = self
            .primary
            .is_some_and(|p| self.deployments[p].rollout_state == RolloutState::InProgress);
        // Steady state: ECS sends the event "when the service is healthy and at the
        // desired number of tasks", and "When the service reaches a steady state, the
        // rollout state transitions to COMPLETED."
        if let Some(p) = self.primary.filter(|_| self.steady) {
            let deployment = &mut self.deployments[p];
            if deployment.rollout_state == RolloutState::InProgress {
                deployment.rollout_state = RolloutState::Completed;
                deployment.rollout_state_reason = reason::completed(&deployment.id);
                let message = message::deployment_completed(&name, &deployment.id);
                self.event(EventKind::DeploymentCompleted, message);
            }
        }
        let rollout_settled = !primary_in_progress || self.steady;
        for (i, deployment) in self.deployments.iter_mut().enumerate() {
            let (running, pending, live) = per_deployment.get(i).copied().unwrap_or_default();
            deployment.running_count = running;
            deployment.pending_count = pending;
            if Some(i) == self.primary {
                deployment.desired_count = self.spec.desired_count;
                continue;
            }
            deployment.desired_count = running + pending;
            // An older deployment is INACTIVE once its tasks are gone and the
            // PRIMARY's rollout is over (until then it may be rolled back to).
            let drained = live == 0;
            if deployment.status == DeploymentStatus::Active && drained && rollout_settled {
                deployment.status = DeploymentStatus::Inactive;
            }
        }

        // "The service scheduler reports the status periodically": on reaching a
        // steady state, and again every six hours while it lasts.
        if self.steady {
            let due = !self.state.steady
                || self
                    .state
                    .steady_event_at
                    .is_none_or(|at| self.now - at >= EVENT_REPEAT_AFTER.as_secs_f64());
            if due {
                self.event(EventKind::SteadyState, message::steady_state(&name));
                self.state.steady_event_at = Some(self.now);
            }
        }
        self.state.steady = self.steady;

        let start = match (self.start, primary_id) {
            (count, Some(deployment_id)) if count > 0 => vec![Start {
                deployment_id,
                count,
                instances: std::mem::take(&mut self.start_on),
            }],
            _ => Vec::new(),
        };
        Plan {
            start,
            stop: stops,
            accounted: self.accounted,
            deployments: self.deployments,
            rollback: self.rollback,
            events: self.events,
            state: self.state,
            unhealthy_replacements: self.unhealthy_replacements,
            running_count,
            pending_count,
            wake_at: self.wake_at,
        }
    }
}

/// Chooses which task to stop, as ECS does for a service without a placement
/// strategy of its own (which spreads across availability zones): "Sort the valid
/// container instances, giving priority to instances that have the largest number of
/// running tasks for this service in their respective Availability Zone", then "Stop
/// the task on a container instance in an optimal Availability Zone (based on the
/// previous steps), favoring container instances with the largest number of running
/// tasks for this service." Between instances of one zone, the binpack rule comes
/// first when the service binpacks: on scale-in ECS stops the task whose instance
/// has the most resources available, which empties the emptiest instances first.
struct Spread<'a, 'c> {
    tasks: &'a TaskList,
    facts: &'a dyn InstanceFacts,
    conditions: &'c [Option<Condition>],
    /// The tasks counted per zone and per instance, made at the first choice (most
    /// plans stop nothing).
    counts: Option<SpreadCounts<'a>>,
}

#[derive(Default)]
struct SpreadCounts<'a> {
    zones: FastMap<Option<&'a str>, usize>,
    instances: FastMap<Option<&'a str>, usize>,
}

impl<'a, 'c> Spread<'a, 'c> {
    /// Counts, when first asked to choose, the service's tasks that are not being
    /// stopped (those with a condition other than [`Condition::Draining`]) per zone
    /// and instance.
    fn new(
        tasks: &'a TaskList,
        facts: &'a dyn InstanceFacts,
        conditions: &'c [Option<Condition>],
    ) -> Self {
        Self {
            tasks,
            facts,
            conditions,
            counts: None,
        }
    }

    /// Removes the best task to stop from `candidates` and counts it gone.
    fn take(&mut self, candidates: &mut Vec<usize>) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let (tasks, facts) = (self.tasks, self.facts);
        let counts = self.counts.get_or_insert_with(|| {
            let mut counts = SpreadCounts::default();
            let counted = (each(tasks).zip(self.conditions))
                .filter(|(_, c)| c.is_some_and(|c| c != Condition::Draining));
            for (task, _) in counted {
                *counts.zones.entry(facts.zone(task)).or_insert(0) += 1;
                *(counts.instances)
                    .entry(task.instance_id.as_deref())
                    .or_insert(0) += 1;
            }
            counts
        });
        let key = |i: usize| {
            let task = &tasks[i];
            (
                counts.zones.get(&facts.zone(task)).copied().unwrap_or(0),
                facts.available(task).unwrap_or(i64::MIN),
                (counts.instances)
                    .get(&task.instance_id.as_deref())
                    .copied()
                    .unwrap_or(0),
                std::cmp::Reverse(&*task.task_arn),
            )
        };
        let at =
            (0..candidates.len()).max_by(|&a, &b| key(candidates[a]).cmp(&key(candidates[b])))?;
        let i = candidates.swap_remove(at);
        let task = &tasks[i];
        if let Some(n) = counts.zones.get_mut(&facts.zone(task)) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = counts.instances.get_mut(&task.instance_id.as_deref()) {
            *n = n.saturating_sub(1);
        }
        Some(i)
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

//! The agent session: one long-lived WebSocket between each agent and the control
//! plane, modelled on the ECS agent's ACS session.
//!
//! Every frame is a JSON text message `{"type": "<Kind>", "message": {...}}`, as ACS
//! frames are. The control plane sends the instance's desired tasks
//! ([`PayloadMessage`]: on connect the full set, then changes), each with a sequence
//! number the agent acknowledges ([`AckRequest`]). The agent sends the known state of
//! its tasks ([`TaskStateChange`], the shape of ECS's SubmitTaskStateChange plus the
//! container states of SubmitContainerStateChange), each acknowledged by the control
//! plane ([`StateChangeAck`]) once recorded, with the next message the agent is sent
//! or within [`ACK_DELAY`], and re-sent after [`RESEND_AFTER`] until it is. Each side
//! sends heartbeats when it has been quiet.
//!
//! The session is opened with `GET /v1/session?cluster=C&containerInstance=ARN` on the
//! control plane's endpoint (found through DiscoverPollEndpoint), signed with SigV4 by
//! the key that registered the instance.

use std::time::Duration;

use berth_model::task_definition::TaskDefinition;
use serde::{Deserialize, Serialize};

/// The path of the session endpoint.
pub const SESSION_PATH: &str = "/v1/session";

/// Seconds between heartbeat ticks, each way. A side that hears nothing for
/// [`SESSION_TIMEOUT_SECS`] considers the session dead. Any message is a sign of
/// life, so a side sends a heartbeat at its tick only when it has been quiet (see
/// [`heartbeat_due`]): a busy session carries no heartbeats.
pub const HEARTBEAT_INTERVAL_SECS: u64 = 10;
pub const SESSION_TIMEOUT_SECS: u64 = 30;

/// How long the control plane may hold a report's [`StateChangeAck`] after the
/// report is recorded, so that it goes out with the next message the agent is sent
/// (a payload, a heartbeat, other acknowledgements) instead of in a write of its own.
pub const ACK_DELAY: Duration = Duration::from_secs(2);

/// How long an agent waits for a report's acknowledgement before it sends the
/// report again (at its next heartbeat tick): well past [`ACK_DELAY`], so a report
/// whose acknowledgement is merely held is not sent twice.
pub const RESEND_AFTER: Duration = Duration::from_secs(HEARTBEAT_INTERVAL_SECS);

/// Whether a side that last wrote to the session `since_last_write` ago sends a
/// heartbeat at this tick: only after half an interval of its own silence. A side
/// that writes now and then therefore sends none, and the longest it can stay
/// silent is under one and a half intervals, well inside [`SESSION_TIMEOUT_SECS`].
pub fn heartbeat_due(since_last_write: Duration) -> bool {
    since_last_write >= Duration::from_secs(HEARTBEAT_INTERVAL_SECS) / 2
}

/// Docker labels on every container the agent runs: they let a restarted agent
/// re-adopt its containers and never touch anyone else's.
pub mod labels {
    pub const CLUSTER: &str = "com.amazonaws.ecs.cluster";
    pub const TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
    pub const TASK_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
    pub const TASK_VERSION: &str = "com.amazonaws.ecs.task-definition-version";
    pub const CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
    /// berth's own: the container instance that owns the container.
    pub const INSTANCE_ARN: &str = "dev.berth.container-instance-arn";
}

/// A message from the control plane to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "message")]
pub enum ServerMessage {
    PayloadMessage(PayloadMessage),
    HeartbeatMessage(HeartbeatMessage),
    StateChangeAck(StateChangeAck),
    /// The control plane is closing the session (shutdown, or a newer session of the
    /// same instance replaced this one).
    CloseMessage(CloseMessage),
    /// The agent sent something the control plane refused.
    ErrorMessage(ErrorMessage),
}

/// A message from an agent to the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "message")]
pub enum AgentMessage {
    AckRequest(AckRequest),
    HeartbeatMessage(HeartbeatMessage),
    TaskStateChange(TaskStateChange),
}

/// Desired tasks for the instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayloadMessage {
    pub message_id: String,
    /// Increases by one per payload within a session.
    pub seq_num: u64,
    pub cluster_arn: String,
    pub container_instance_arn: String,
    /// True when `tasks` is the instance's whole desired set: tasks the agent runs
    /// that are not in it are not wanted (the first payload of every session).
    pub full_state: bool,
    pub tasks: Vec<DesiredTask>,
    pub generated_at: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    Running,
    Stopped,
}

/// One task as the control plane wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredTask {
    pub task_arn: String,
    pub cluster_arn: String,
    pub desired_status: DesiredStatus,
    /// The task definition with the task's overrides already applied (command,
    /// environment, cpu, memory of each container; task cpu and memory).
    pub task_definition: TaskDefinition,
    /// Why the task is to stop (StopTask's reason), when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// The network mode the agent realizes (awsvpc runs as bridge for now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_network_mode: Option<String>,
    /// The task's lastStatus as the control plane knows it. An agent that is sent a
    /// task it has no containers of, which the control plane knows already started,
    /// lost those containers (removed while it was away): it reports the task stopped
    /// instead of running its containers a second time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_status: Option<TaskStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AckRequest {
    pub cluster: String,
    pub container_instance: String,
    pub message_id: String,
    pub seq_num: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatMessage {
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChangeAck {
    pub message_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseMessage {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessage {
    pub message: String,
}

/// The ECS task lifecycle (lastStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
        }
    }
}

/// A container's lastStatus, as ECS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContainerStatus {
    Pending,
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    Unknown,
}

/// A port bound on the host (ECS NetworkBinding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    pub bind_ip: String,
    pub container_port: i32,
    pub host_port: i32,
    /// "tcp" or "udp".
    pub protocol: String,
}

/// The known state of one container of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateChange {
    pub container_name: String,
    /// The runtime's id of the container (Docker's container id), once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    pub status: ContainerStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the container stopped or failed (e.g. "OutOfMemoryError: Container killed
    /// due to memory usage", "CannotPullContainerError: ...").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub network_bindings: Vec<NetworkBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
}

/// Why a task stopped, as ECS's stopCode says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopCode {
    TaskFailedToStart,
    EssentialContainerExited,
    UserInitiated,
    ServiceSchedulerInitiated,
    SpotInterruption,
    TerminationNotice,
}

/// The known state of a whole task: what the agent reports, every time anything in
/// it changes. It is the full state (not a delta), so applying it twice is harmless
/// and only the newest unacknowledged one per task needs re-sending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChange {
    pub message_id: String,
    pub cluster: String,
    pub task_arn: String,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<StopCode>,
    pub containers: Vec<ContainerStateChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<HealthStatus>,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_stopped_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_stopped_at: Option<f64>,
}

impl TaskStateChange {
    /// A report of a task's status alone: no containers, reason, health or times.
    pub fn of_status(
        message_id: impl Into<String>,
        cluster: impl Into<String>,
        task_arn: impl Into<String>,
        status: TaskStatus,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            cluster: cluster.into(),
            task_arn: task_arn.into(),
            status,
            reason: None,
            stop_code: None,
            containers: Vec::new(),
            health_status: None,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            execution_stopped_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_side_always_heartbeats_inside_the_peers_timeout() {
        // A side's last write at 0, its ticks every interval at any phase: the first
        // tick that finds it quiet long enough comes well before the peer gives up.
        let interval = Duration::from_secs(HEARTBEAT_INTERVAL_SECS);
        for phase_ms in (0..HEARTBEAT_INTERVAL_SECS * 1000).step_by(7) {
            let first_tick = Duration::from_millis(phase_ms);
            let beat = (0..4)
                .map(|n| first_tick + interval * n)
                .find(|tick| heartbeat_due(*tick))
                .unwrap_or(Duration::MAX);
            assert!(
                beat < Duration::from_secs(SESSION_TIMEOUT_SECS) / 2 + interval / 2,
                "a tick at {first_tick:?} after the last write beats only at {beat:?}"
            );
        }
        // A side that wrote within the last half interval sends none.
        assert!(!heartbeat_due(interval / 2 - Duration::from_millis(1)));
        assert!(heartbeat_due(interval / 2));
    }

    #[test]
    fn an_agent_resends_only_what_a_held_acknowledgement_cannot_explain() {
        assert!(RESEND_AFTER >= ACK_DELAY * 4);
        assert!(RESEND_AFTER < Duration::from_secs(SESSION_TIMEOUT_SECS));
    }

    #[test]
    fn frames_are_type_and_message() -> Result<(), serde_json::Error> {
        let heartbeat = ServerMessage::HeartbeatMessage(HeartbeatMessage { healthy: true });
        let text = serde_json::to_string(&heartbeat)?;
        assert_eq!(
            text,
            r#"{"type":"HeartbeatMessage","message":{"healthy":true}}"#
        );
        let back: ServerMessage = serde_json::from_str(&text)?;
        assert_eq!(back, heartbeat);
        let ack = AgentMessage::AckRequest(AckRequest {
            cluster: "c".into(),
            container_instance: "i".into(),
            message_id: "m".into(),
            seq_num: 3,
        });
        let text = serde_json::to_string(&ack)?;
        assert!(
            text.starts_with(r#"{"type":"AckRequest","message":{"#),
            "{text}"
        );
        Ok(())
    }
}

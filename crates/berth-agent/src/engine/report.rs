//! What the engine reports of a task: its full known state as a [`TaskStateChange`].

use berth_proto::{
    ContainerStateChange, ContainerStatus, NetworkBinding, TaskStateChange, TaskStatus,
};

use super::model::{ContainerModel, Phase, TaskModel};
use super::plan::{container_health, task_health};
use crate::runtime::Protocol;

/// The task's known state. `message_id` identifies this report.
pub fn task_state_change(task: &TaskModel, message_id: String) -> TaskStateChange {
    let stop = task.stop.as_ref();
    TaskStateChange {
        message_id,
        cluster: task.cluster_arn.clone(),
        task_arn: task.task_arn.clone(),
        status: task.status,
        reason: stop.map(|s| s.reason.clone()),
        stop_code: stop.and_then(|s| s.code),
        containers: task.containers.iter().map(container_state_change).collect(),
        health_status: Some(task_health(task)),
        pull_started_at: task.pull_started_at,
        pull_stopped_at: task.pull_stopped_at,
        started_at: task.started_at,
        execution_stopped_at: task.execution_stopped_at,
    }
}

/// Whether two reports say the same (all but their message ids).
///
/// Compared in place, member by member (every member is named, so a new one must be
/// added here): a runner asks this after every step of every task.
pub fn same_state(a: &TaskStateChange, b: &TaskStateChange) -> bool {
    let TaskStateChange {
        message_id: _,
        cluster,
        task_arn,
        status,
        reason,
        stop_code,
        containers,
        health_status,
        pull_started_at,
        pull_stopped_at,
        started_at,
        execution_stopped_at,
    } = a;
    *status == b.status
        && *containers == b.containers
        && *health_status == b.health_status
        && *reason == b.reason
        && *stop_code == b.stop_code
        && *pull_started_at == b.pull_started_at
        && *pull_stopped_at == b.pull_stopped_at
        && *started_at == b.started_at
        && *execution_stopped_at == b.execution_stopped_at
        && *task_arn == b.task_arn
        && *cluster == b.cluster
}

/// Whether a new known state is news to the control plane, given the last state
/// reported to it. The control plane records a task PENDING when it places it, as
/// ECS's does; while the task is still PENDING, only a container's status or health
/// changing (one ran, or exited) or a stop reason is news, and what a task goes
/// through before that (pull times, created containers' ids) goes with its next
/// report, as the ECS agent reports task and container transitions to RUNNING and
/// STOPPED, not the steps of a start. Every change of a task past PENDING is news.
/// The agent keeps every state as known (re-sent whole when a session opens).
pub fn worth_sending(last_sent: Option<&TaskStateChange>, current: &TaskStateChange) -> bool {
    if current.status != TaskStatus::Pending
        || current.reason.is_some()
        || current.stop_code.is_some()
    {
        return true;
    }
    current.containers.iter().any(|container| {
        let sent = last_sent.and_then(|sent| {
            sent.containers
                .iter()
                .find(|c| c.container_name == container.container_name)
        });
        let (status, health) = sent.map_or((ContainerStatus::Pending, None), |sent| {
            (sent.status, sent.health_status)
        });
        container.status != status || container.health_status != health
    })
}

fn container_state_change(container: &ContainerModel) -> ContainerStateChange {
    ContainerStateChange {
        container_name: container.name.clone(),
        runtime_id: container.runtime_id.clone(),
        image_digest: None,
        status: match container.phase {
            Phase::None
            | Phase::Pulling
            | Phase::Pulled
            | Phase::Creating
            | Phase::Created
            | Phase::Starting => ContainerStatus::Pending,
            Phase::Running | Phase::Stopping => ContainerStatus::Running,
            Phase::Stopped => ContainerStatus::Stopped,
        },
        exit_code: container
            .exit_code
            .map(|code| i32::try_from(code).unwrap_or(if code < 0 { i32::MIN } else { i32::MAX })),
        reason: container.reason.clone(),
        network_bindings: container
            .ports
            .iter()
            .map(|p| NetworkBinding {
                bind_ip: p.bind_ip.clone(),
                container_port: i32::from(p.container_port),
                host_port: i32::from(p.host_port),
                protocol: match p.protocol {
                    Protocol::Tcp => "tcp".to_owned(),
                    Protocol::Udp => "udp".to_owned(),
                },
            })
            .collect(),
        health_status: container_health(container),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> TaskStateChange {
        TaskStateChange {
            containers: vec![ContainerStateChange {
                container_name: "app".to_string(),
                runtime_id: Some("abc".to_string()),
                image_digest: None,
                status: ContainerStatus::Running,
                exit_code: None,
                reason: None,
                network_bindings: Vec::new(),
                health_status: None,
            }],
            pull_started_at: Some(1.0),
            pull_stopped_at: Some(2.0),
            started_at: Some(3.0),
            ..TaskStateChange::of_status(id, "c", "t", TaskStatus::Running)
        }
    }

    fn starting(id: &str) -> TaskStateChange {
        let mut pending = report(id);
        pending.status = TaskStatus::Pending;
        pending.started_at = None;
        pending.containers[0].status = ContainerStatus::Pending;
        pending.containers[0].runtime_id = None;
        pending.pull_started_at = None;
        pending.pull_stopped_at = None;
        pending
    }

    #[test]
    fn a_starting_task_is_news_only_when_a_container_moves_or_it_stops() {
        // Nothing sent yet: the control plane has the task PENDING already.
        let placed = starting("1");
        assert!(!worth_sending(None, &placed));
        // Pulled and created: still only the steps of a start.
        let mut created = starting("2");
        created.pull_started_at = Some(1.0);
        created.pull_stopped_at = Some(2.0);
        created.containers[0].runtime_id = Some("abc".into());
        assert!(!worth_sending(None, &created));
        assert!(!worth_sending(Some(&placed), &created));
        // A container that runs (a dependency, before the task is RUNNING) is news,
        // and so is its health, and a stop reason.
        let mut one_runs = created.clone();
        one_runs.containers[0].status = ContainerStatus::Running;
        assert!(worth_sending(Some(&created), &one_runs));
        let mut healthy = one_runs.clone();
        healthy.containers[0].health_status = Some(berth_proto::HealthStatus::Healthy);
        assert!(worth_sending(Some(&one_runs), &healthy));
        assert!(!worth_sending(Some(&healthy), &healthy));
        let mut stopping = created.clone();
        stopping.reason = Some("CannotPullContainerError".into());
        assert!(worth_sending(Some(&created), &stopping));
        // Past PENDING, every change is news.
        let running = report("3");
        assert!(worth_sending(Some(&created), &running));
        let mut later = report("4");
        later.pull_stopped_at = Some(2.5);
        assert!(worth_sending(Some(&running), &later));
    }

    #[test]
    fn reports_are_the_same_state_whatever_their_message_ids() {
        assert!(same_state(&report("1"), &report("2")));
        let mut later = report("3");
        later.status = TaskStatus::Stopped;
        assert!(!same_state(&report("1"), &later));
        let mut exited = report("4");
        exited.containers[0].exit_code = Some(0);
        assert!(!same_state(&report("1"), &exited));
        let mut started = report("5");
        started.started_at = Some(4.0);
        assert!(!same_state(&report("1"), &started));
    }
}

//! What the engine reports of a task: its full known state as a [`TaskStateChange`].

use berth_proto::{ContainerStateChange, ContainerStatus, NetworkBinding, TaskStateChange};

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
    use berth_proto::TaskStatus;

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

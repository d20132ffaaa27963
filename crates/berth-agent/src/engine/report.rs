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
pub fn same_state(a: &TaskStateChange, b: &TaskStateChange) -> bool {
    TaskStateChange {
        message_id: String::new(),
        ..a.clone()
    } == TaskStateChange {
        message_id: String::new(),
        ..b.clone()
    }
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

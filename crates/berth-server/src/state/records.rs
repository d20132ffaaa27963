//! Records that carry berth's own bookkeeping next to an ECS shape. The ECS members
//! are flattened to the top level (so a record reads like the shape, and `tags` is
//! where tagging expects it); berth's members are prefixed `berth`.

use berth_model::container_instance::{ContainerInstance, Resource};
use berth_model::task::{Task, TaskResources, TaskStatus};
use serde::{Deserialize, Serialize};

/// A container instance and who may act for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    #[serde(flatten)]
    pub instance: ContainerInstance,
    /// The access key that registered the instance: only it may open the instance's
    /// session and report its tasks' state.
    #[serde(rename = "berthOwner", default)]
    pub owner: Option<String>,
    /// When the instance's agent was last seen to disconnect (its session ended, or
    /// the control plane started without it); `None` while it is connected. After
    /// the lost-agent grace period its tasks are marked STOPPED.
    #[serde(
        rename = "berthDisconnectedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disconnected_at: Option<f64>,
}

/// A task and what it holds on its instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    #[serde(flatten)]
    pub task: Task,
    /// The resources the task reserved on its instance when it was placed.
    #[serde(rename = "berthReserved", default)]
    pub reserved: TaskResources,
    /// Whether the reservation was given back (once the task STOPPED).
    #[serde(rename = "berthReleased", default)]
    pub released: bool,
    /// Whether the service scheduler has counted this stopped task (as a failure or a
    /// replacement), so that it counts it once.
    #[serde(rename = "berthAccounted", default)]
    pub accounted: bool,
}

impl TaskRecord {
    pub fn last_status(&self) -> Option<TaskStatus> {
        self.task.last_status.as_deref().and_then(TaskStatus::parse)
    }
    pub fn desired_status(&self) -> Option<TaskStatus> {
        self.task
            .desired_status
            .as_deref()
            .and_then(TaskStatus::parse)
    }
    pub fn is_stopped(&self) -> bool {
        self.last_status() == Some(TaskStatus::Stopped)
    }
    /// The task's id: the last segment of its ARN.
    pub fn id(&self) -> &str {
        let arn = self.task.task_arn.as_deref().unwrap_or_default();
        arn.rsplit('/').next().unwrap_or(arn)
    }
}

/// Gives a stopped task's reservation back to its instance: CPU and memory are added
/// back, and the task's host ports leave the taken sets (unless the instance itself
/// reserves them).
pub fn release(remaining: &mut [Resource], registered: &[Resource], freed: &TaskResources) {
    for resource in remaining.iter_mut() {
        match resource.name.as_deref() {
            Some(Resource::CPU) => add(resource, freed.cpu),
            Some(Resource::MEMORY) => add(resource, freed.memory),
            Some(Resource::PORTS) => {
                free_ports(resource, registered, Resource::PORTS, &freed.tcp_ports)
            }
            Some(Resource::PORTS_UDP) => {
                free_ports(resource, registered, Resource::PORTS_UDP, &freed.udp_ports)
            }
            _ => {}
        }
    }
}

fn add(resource: &mut Resource, amount: i64) {
    match resource.resource_type.as_deref() {
        Some(Resource::LONG) => {
            resource.long_value = Some(resource.long_value.unwrap_or(0).saturating_add(amount))
        }
        Some(Resource::DOUBLE) => {
            resource.double_value = Some(resource.double_value.unwrap_or(0.0) + amount as f64)
        }
        _ => {
            let value = resource
                .integer_value
                .map_or(0, i64::from)
                .saturating_add(amount);
            resource.integer_value = Some(i32::try_from(value).unwrap_or(i32::MAX));
        }
    }
}

fn free_ports(resource: &mut Resource, registered: &[Resource], name: &str, ports: &[u16]) {
    let reserved_by_host = registered
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .map(Resource::ports)
        .unwrap_or_default();
    if let Some(set) = resource.string_set_value.as_mut() {
        set.retain(|port| {
            port.parse::<u16>().map_or(true, |port| {
                !ports.contains(&port) || reserved_by_host.contains(&port)
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::container_instance::{fits, remaining};

    #[test]
    fn release_undoes_a_placement() {
        let registered = vec![
            Resource::integer(Resource::CPU, 2048),
            Resource::integer(Resource::MEMORY, 4096),
            Resource::string_set(Resource::PORTS, ["22".to_string()]),
            Resource::string_set(Resource::PORTS_UDP, Vec::new()),
        ];
        let task = TaskResources {
            cpu: 512,
            memory: 1024,
            tcp_ports: vec![22, 80],
            udp_ports: vec![53],
        };
        let mut left = remaining(&registered, std::slice::from_ref(&task));
        assert!(fits(&left, &task).is_err());
        release(&mut left, &registered, &task);
        assert_eq!(left, registered);
    }
}

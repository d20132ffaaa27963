//! What a task reserves on the container instance it is placed on.

use crate::task_definition::{ContainerDefinition, NetworkMode, TaskDefinition, TransportProtocol};

/// The CPU, memory and host ports a task of a definition takes from its container
/// instance's resources while it runs (its `remainingResources` go down by these).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskResources {
    /// CPU units.
    pub cpu: i64,
    /// MiB.
    pub memory: i64,
    /// Host ports, sorted, each once.
    pub tcp_ports: Vec<u16>,
    /// Host ports, sorted, each once.
    pub udp_ports: Vec<u16>,
}

impl TaskResources {
    /// What a task of `definition` reserves. Pass the definition with the task's
    /// overrides applied ([`apply_overrides`](super::apply_overrides)).
    ///
    /// - CPU: the task-level `cpu` when given, else the sum of the containers' `cpu`
    ///   (absent counts 0, so a task may reserve no CPU at all).
    /// - Memory: the task-level `memory` when given, else the sum over the containers
    ///   of `memoryReservation` when given, else `memory` (hard limit), else 0. ECS
    ///   documents that the soft limit is what it subtracts from the instance when a
    ///   container has one; the hard limit only caps the container.
    /// - Ports: the static host ports of the port mappings, by protocol (`tcp` when
    ///   absent). In `bridge` mode (the default) that is each `hostPort` above 0; a
    ///   `hostPort` of 0 or none, and a `containerPortRange`, get dynamic ports Docker
    ///   picks when the container starts, which are not reserved. In `host` and
    ///   `awsvpc` modes the host port is the container port: `hostPort` when above 0,
    ///   else `containerPort`, and every port of a `containerPortRange`. Mode `none`
    ///   has no ports. Values outside 1-65535 are ignored (registration refuses them).
    pub fn of(definition: &TaskDefinition) -> TaskResources {
        let containers = definition.container_definitions.as_deref().unwrap_or(&[]);
        let size = definition.size();
        let cpu = match size.cpu {
            Some(cpu) => i64::from(cpu),
            None => containers
                .iter()
                .map(|c| i64::from(c.cpu.unwrap_or(0).max(0)))
                .sum(),
        };
        let memory = match size.memory {
            Some(memory) => i64::from(memory),
            None => containers
                .iter()
                .map(|c| i64::from(c.memory_reservation.or(c.memory).unwrap_or(0).max(0)))
                .sum(),
        };
        let mut resources = TaskResources {
            cpu,
            memory,
            ..TaskResources::default()
        };
        let mode = definition.network_mode.unwrap_or(NetworkMode::Bridge);
        for container in containers {
            resources.add_ports(container, mode);
        }
        for ports in [&mut resources.tcp_ports, &mut resources.udp_ports] {
            ports.sort_unstable();
            ports.dedup();
        }
        resources
    }

    fn add_ports(&mut self, container: &ContainerDefinition, mode: NetworkMode) {
        let host_is_container = match mode {
            NetworkMode::Bridge => false,
            NetworkMode::Host | NetworkMode::Awsvpc => true,
            NetworkMode::None => return,
        };
        for mapping in container.port_mappings.iter().flatten() {
            let ports = match mapping.protocol_or_default() {
                TransportProtocol::Tcp => &mut self.tcp_ports,
                TransportProtocol::Udp => &mut self.udp_ports,
            };
            let host_port = mapping.host_port.filter(|port| *port > 0);
            if let Some(port) = host_port.and_then(port_number) {
                ports.push(port);
            } else if host_is_container {
                if let Some(port) = mapping.container_port.and_then(port_number) {
                    ports.push(port);
                }
                if let Some((first, last)) =
                    mapping.container_port_range.as_deref().and_then(port_range)
                {
                    ports.extend(first..=last);
                }
            }
        }
    }
}

fn port_number(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|port| *port > 0)
}

/// `first-last`, both 1-65535, first not above last.
fn port_range(range: &str) -> Option<(u16, u16)> {
    let (first, last) = range.split_once('-')?;
    let first: u16 = first.trim().parse().ok()?;
    let last: u16 = last.trim().parse().ok()?;
    (first > 0 && first <= last).then_some((first, last))
}

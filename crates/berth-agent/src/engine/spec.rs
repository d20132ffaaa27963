//! From a task's container definitions to the runtime's [`ContainerSpec`]s: names,
//! labels, volumes and every container setting berth realizes. Pure.
//!
//! Where ECS's own agent has a rule (CPU shares of at least 2, dynamic host ports for
//! hostPort 0, health check defaults), the rule is followed here.
//!
//! Task-level `pidMode`/`ipcMode` `task`: ECS shares the namespaces through a hidden
//! pause container. berth has no pause image to rely on, so one container of the task,
//! the *namespace anchor* (the first one in definition order without dependencies),
//! owns the namespaces and the others join them; the engine starts the anchor first.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_model::task_definition::{
    ContainerDefinition, IpcMode, NetworkMode as EcsNetworkMode, PidMode, Scope, TaskDefinition,
    TransportProtocol, Volume,
};
use berth_proto::labels;

use crate::runtime::{
    ContainerSpec, HealthCheckSpec, Mount, MountSource, NetworkMode, PortPublish, Protocol, Ulimit,
};

const MIB: i64 = 1024 * 1024;
/// Docker's (and so ECS's) smallest CPU share value: 0 would mean "the default, 1024".
const MIN_CPU_SHARES: i64 = 2;
const HEALTH_INTERVAL: Duration = Duration::from_secs(30);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
const HEALTH_RETRIES: u32 = 3;

/// Why a container definition cannot become a container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("container {container}: mount point refers to unknown volume {volume:?}")]
    UnknownVolume { container: String, volume: String },
    #[error("container {container}: mount point without sourceVolume or containerPath")]
    IncompleteMountPoint { container: String },
    #[error("volume {volume}: {kind} volumes are not supported by berth")]
    UnsupportedVolume { volume: String, kind: &'static str },
    #[error("container {container}: invalid port {detail}")]
    InvalidPort { container: String, detail: String },
    #[error("container {container}: no image")]
    NoImage { container: String },
}

/// The id of a task: the last segment of its ARN.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// The name of a task's container on the host.
pub fn container_runtime_name(task_id: &str, container: &str) -> String {
    format!("berth-{task_id}-{container}")
}

/// What the spec of each container of one task depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskContext {
    pub task_arn: String,
    pub task_id: String,
    pub cluster_arn: String,
    pub instance_arn: String,
    pub family: String,
    pub revision: Option<i32>,
    /// The mode as realized: awsvpc is already mapped to [`RealizedNetwork::Awsvpc`].
    pub network: RealizedNetwork,
    pub pid_mode: Option<PidMode>,
    pub ipc_mode: Option<IpcMode>,
    /// The container that owns the task's PID/IPC namespaces, when the task shares them.
    pub namespace_anchor: Option<String>,
    /// Each task volume by name, and where it comes from.
    pub volumes: BTreeMap<String, TaskVolume>,
}

/// The network mode a task runs with on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealizedNetwork {
    Bridge,
    Host,
    None,
    /// awsvpc runs on the bridge network for now, publishing each container port on
    /// the same host port (as an ENI would expose it).
    Awsvpc,
}

impl RealizedNetwork {
    /// The mode from the control plane's effective mode, else the task definition's;
    /// bridge when neither says.
    pub fn of(effective: Option<&str>, definition: Option<EcsNetworkMode>) -> Self {
        let mode = match effective {
            Some("host") => Some(EcsNetworkMode::Host),
            Some("none") => Some(EcsNetworkMode::None),
            Some("awsvpc") => Some(EcsNetworkMode::Awsvpc),
            Some("bridge") => Some(EcsNetworkMode::Bridge),
            _ => definition,
        };
        match mode {
            Some(EcsNetworkMode::Host) => RealizedNetwork::Host,
            Some(EcsNetworkMode::None) => RealizedNetwork::None,
            Some(EcsNetworkMode::Awsvpc) => RealizedNetwork::Awsvpc,
            Some(EcsNetworkMode::Bridge) | None => RealizedNetwork::Bridge,
        }
    }
}

/// A task volume as the host provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskVolume {
    pub source: MountSource,
    /// A Docker volume the engine creates before the containers.
    pub create: Option<VolumeToCreate>,
    /// Whether the engine removes the Docker volume once the task stopped.
    pub task_scoped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeToCreate {
    pub name: String,
    pub driver: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl TaskContext {
    /// The context of a task definition. Volumes berth cannot provide make an error,
    /// which the task reports as its containers' creation failure.
    pub fn new(
        task_arn: &str,
        cluster_arn: &str,
        instance_arn: &str,
        definition: &TaskDefinition,
        effective_network_mode: Option<&str>,
    ) -> Result<Self, SpecError> {
        let task_id = task_id(task_arn).to_owned();
        let network = RealizedNetwork::of(effective_network_mode, definition.network_mode);
        let owner = owner_labels(cluster_arn, task_arn, instance_arn);
        let mut volumes = BTreeMap::new();
        for volume in definition.volumes.iter().flatten() {
            let Some(name) = volume.name.clone() else {
                continue;
            };
            let resolved = task_volume(&task_id, &name, volume, &owner)?;
            volumes.insert(name, resolved);
        }
        let shares_namespaces = definition.pid_mode == Some(PidMode::Task)
            || definition.ipc_mode == Some(IpcMode::Task);
        let namespace_anchor = if shares_namespaces {
            namespace_anchor(definition.container_definitions.as_deref().unwrap_or(&[]))
        } else {
            None
        };
        Ok(Self {
            task_arn: task_arn.to_owned(),
            task_id,
            cluster_arn: cluster_arn.to_owned(),
            instance_arn: instance_arn.to_owned(),
            family: definition.family.clone().unwrap_or_default(),
            revision: definition.revision,
            network,
            pid_mode: definition.pid_mode,
            ipc_mode: definition.ipc_mode,
            namespace_anchor,
            volumes,
        })
    }

    /// The Docker volumes to create before the task's containers, in name order.
    pub fn volumes_to_create(&self) -> Vec<VolumeToCreate> {
        self.volumes
            .values()
            .filter_map(|v| v.create.clone())
            .collect()
    }

    /// The Docker volumes to remove once the task stopped.
    pub fn volumes_to_remove(&self) -> Vec<String> {
        self.volumes
            .values()
            .filter(|v| v.task_scoped)
            .filter_map(|v| match &v.source {
                MountSource::Volume(name) => Some(name.clone()),
                MountSource::HostPath(_) => None,
            })
            .collect()
    }

    fn runtime_name(&self, container: &str) -> String {
        container_runtime_name(&self.task_id, container)
    }
}

/// The first container (in definition order) without dependencies: it can start first,
/// so the others may join its namespaces.
pub fn namespace_anchor(containers: &[ContainerDefinition]) -> Option<String> {
    containers
        .iter()
        .find(|c| c.depends_on.as_ref().is_none_or(Vec::is_empty))
        .or_else(|| containers.first())
        .and_then(|c| c.name.clone())
}

fn owner_labels(cluster_arn: &str, task_arn: &str, instance_arn: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::CLUSTER.to_owned(), cluster_arn.to_owned()),
        (labels::TASK_ARN.to_owned(), task_arn.to_owned()),
        (labels::INSTANCE_ARN.to_owned(), instance_arn.to_owned()),
    ])
}

fn task_volume(
    task_id: &str,
    name: &str,
    volume: &Volume,
    owner: &BTreeMap<String, String>,
) -> Result<TaskVolume, SpecError> {
    let unsupported = |kind| SpecError::UnsupportedVolume {
        volume: name.to_owned(),
        kind,
    };
    if volume.efs_volume_configuration.is_some() {
        return Err(unsupported("efs"));
    }
    if volume
        .fsx_windows_file_server_volume_configuration
        .is_some()
    {
        return Err(unsupported("fsxWindowsFileServer"));
    }
    if volume.s3files_volume_configuration.is_some() {
        return Err(unsupported("s3files"));
    }
    if volume.configured_at_launch == Some(true) {
        return Err(unsupported("configuredAtLaunch"));
    }
    if let Some(path) = volume.host.as_ref().and_then(|h| h.source_path.clone()) {
        return Ok(TaskVolume {
            source: MountSource::HostPath(path),
            create: None,
            task_scoped: false,
        });
    }
    let task_scoped_name = format!("berth-{task_id}-{name}");
    let Some(docker) = &volume.docker_volume_configuration else {
        // Neither a host path nor a Docker configuration: ECS gives the task an empty
        // volume of its own.
        return Ok(TaskVolume {
            source: MountSource::Volume(task_scoped_name.clone()),
            create: Some(VolumeToCreate {
                name: task_scoped_name,
                driver: None,
                labels: owner.clone(),
            }),
            task_scoped: true,
        });
    };
    let mut volume_labels = docker.labels.clone().unwrap_or_default();
    match docker.scope.unwrap_or(Scope::Task) {
        Scope::Task => {
            volume_labels.extend(owner.clone());
            Ok(TaskVolume {
                source: MountSource::Volume(task_scoped_name.clone()),
                create: Some(VolumeToCreate {
                    name: task_scoped_name,
                    driver: docker.driver.clone(),
                    labels: volume_labels,
                }),
                task_scoped: true,
            })
        }
        // A shared volume outlives the task and is named as the task definition names
        // it; it is created only when autoprovision asks for it.
        Scope::Shared => Ok(TaskVolume {
            source: MountSource::Volume(name.to_owned()),
            create: (docker.autoprovision == Some(true)).then(|| VolumeToCreate {
                name: name.to_owned(),
                driver: docker.driver.clone(),
                labels: volume_labels,
            }),
            task_scoped: false,
        }),
    }
}

/// The runtime spec of one container of the task.
pub fn container_spec(
    task: &TaskContext,
    container: &ContainerDefinition,
) -> Result<ContainerSpec, SpecError> {
    let name = container.name_or_empty().to_owned();
    let image = container.image.clone().ok_or_else(|| SpecError::NoImage {
        container: name.clone(),
    })?;
    let linux = container.linux_parameters.clone().unwrap_or_default();
    let capabilities = linux.capabilities.clone().unwrap_or_default();
    let is_anchor = task.namespace_anchor.as_deref() == Some(name.as_str());
    let anchor_ref = task
        .namespace_anchor
        .as_deref()
        .map(|anchor| format!("container:{}", task.runtime_name(anchor)));
    let pid_mode = match task.pid_mode {
        Some(PidMode::Host) => Some("host".to_owned()),
        Some(PidMode::Task) if !is_anchor => anchor_ref.clone(),
        Some(PidMode::Task) | None => None,
    };
    let ipc_mode = match task.ipc_mode {
        Some(IpcMode::Host) => Some("host".to_owned()),
        Some(IpcMode::None) => Some("none".to_owned()),
        Some(IpcMode::Task) if is_anchor => Some("shareable".to_owned()),
        Some(IpcMode::Task) => anchor_ref,
        None => None,
    };
    Ok(ContainerSpec {
        name: task.runtime_name(&name),
        image,
        labels: container_labels(task, container),
        entrypoint: container.entry_point.clone(),
        command: container.command.clone(),
        env: environment(container),
        working_dir: container.working_directory.clone(),
        user: container.user.clone(),
        hostname: container.hostname.clone(),
        extra_hosts: container
            .extra_hosts
            .iter()
            .flatten()
            .map(|h| format!("{}:{}", h.hostname, h.ip_address))
            .collect(),
        network_mode: Some(match task.network {
            RealizedNetwork::Bridge | RealizedNetwork::Awsvpc => NetworkMode::Bridge,
            RealizedNetwork::Host => NetworkMode::Host,
            RealizedNetwork::None => NetworkMode::None,
        }),
        ports: ports(task.network, container)?,
        links: match task.network {
            RealizedNetwork::Bridge => links(task, container),
            _ => Vec::new(),
        },
        dns_servers: container.dns_servers.clone().unwrap_or_default(),
        dns_search: container.dns_search_domains.clone().unwrap_or_default(),
        cpu_shares: Some(i64::from(container.cpu.unwrap_or(0)).max(MIN_CPU_SHARES)),
        memory: mebibytes(container.memory),
        memory_reservation: mebibytes(container.memory_reservation),
        ulimits: container
            .ulimits
            .iter()
            .flatten()
            .map(|u| Ulimit {
                name: u.name.as_str().to_owned(),
                soft: i64::from(u.soft_limit),
                hard: i64::from(u.hard_limit),
            })
            .collect(),
        mounts: mounts(task, container)?,
        volumes_from: container
            .volumes_from
            .iter()
            .flatten()
            .filter_map(|v| {
                let source = task.runtime_name(v.source_container.as_deref()?);
                Some(if v.read_only == Some(true) {
                    format!("{source}:ro")
                } else {
                    source
                })
            })
            .collect(),
        readonly_rootfs: container.readonly_root_filesystem == Some(true),
        privileged: container.privileged == Some(true),
        init: linux.init_process_enabled == Some(true),
        cap_add: capabilities.add.unwrap_or_default(),
        cap_drop: capabilities.drop.unwrap_or_default(),
        sysctls: container
            .system_controls
            .iter()
            .flatten()
            .filter_map(|s| Some((s.namespace.clone()?, s.value.clone().unwrap_or_default())))
            .collect(),
        shm_size: mebibytes(linux.shared_memory_size),
        tty: container.pseudo_terminal == Some(true),
        open_stdin: container.interactive == Some(true),
        security_opt: container
            .docker_security_options
            .clone()
            .unwrap_or_default(),
        health_check: container.health_check.as_ref().map(|h| HealthCheckSpec {
            test: h.command.clone(),
            interval: seconds(h.interval).unwrap_or(HEALTH_INTERVAL),
            timeout: seconds(h.timeout).unwrap_or(HEALTH_TIMEOUT),
            retries: h
                .retries
                .and_then(|r| u32::try_from(r).ok())
                .unwrap_or(HEALTH_RETRIES),
            start_period: seconds(h.start_period).unwrap_or(Duration::ZERO),
        }),
        network_disabled: container.disable_networking == Some(true),
        pid_mode,
        ipc_mode,
        // The task's, once the engine has made it.
        cgroup_parent: None,
    })
}

/// dockerLabels, then the labels that say who owns the container (which a user's
/// dockerLabels cannot override).
fn container_labels(
    task: &TaskContext,
    container: &ContainerDefinition,
) -> BTreeMap<String, String> {
    let mut out = container.docker_labels.clone().unwrap_or_default();
    out.extend(owner_labels(
        &task.cluster_arn,
        &task.task_arn,
        &task.instance_arn,
    ));
    out.insert(labels::TASK_FAMILY.to_owned(), task.family.clone());
    if let Some(revision) = task.revision {
        out.insert(labels::TASK_VERSION.to_owned(), revision.to_string());
    }
    out.insert(
        labels::CONTAINER_NAME.to_owned(),
        container.name_or_empty().to_owned(),
    );
    out
}

fn environment(container: &ContainerDefinition) -> Vec<String> {
    container
        .environment
        .iter()
        .flatten()
        .filter_map(|kv| {
            let name = kv.name.as_deref()?;
            Some(format!("{name}={}", kv.value.as_deref().unwrap_or("")))
        })
        .collect()
}

fn mebibytes(value: Option<i32>) -> Option<i64> {
    value.filter(|v| *v > 0).map(|v| i64::from(v) * MIB)
}

fn seconds(value: Option<i32>) -> Option<Duration> {
    value
        .and_then(|v| u64::try_from(v).ok())
        .map(Duration::from_secs)
}

fn ports(
    network: RealizedNetwork,
    container: &ContainerDefinition,
) -> Result<Vec<PortPublish>, SpecError> {
    if matches!(network, RealizedNetwork::Host | RealizedNetwork::None)
        || container.disable_networking == Some(true)
    {
        // Host mode binds the container's ports on the host directly; none has none.
        return Ok(Vec::new());
    }
    let invalid = |detail: String| SpecError::InvalidPort {
        container: container.name_or_empty().to_owned(),
        detail,
    };
    let mut out = Vec::new();
    for mapping in container.port_mappings.iter().flatten() {
        let protocol = match mapping.protocol_or_default() {
            TransportProtocol::Tcp => Protocol::Tcp,
            TransportProtocol::Udp => Protocol::Udp,
        };
        let container_ports: Vec<u16> =
            match (mapping.container_port, &mapping.container_port_range) {
                (Some(port), _) => {
                    vec![port_number(port).ok_or_else(|| invalid(port.to_string()))?]
                }
                (None, Some(range)) => {
                    port_range(range).ok_or_else(|| invalid(format!("range {range:?}")))?
                }
                (None, None) => continue,
            };
        let single = container_ports.len() == 1;
        for container_port in container_ports {
            let host_port = match network {
                RealizedNetwork::Awsvpc => Some(container_port),
                _ => match mapping.host_port {
                    // A port range always gets dynamic host ports.
                    Some(port) if port != 0 && single => {
                        Some(port_number(port).ok_or_else(|| invalid(port.to_string()))?)
                    }
                    _ => None,
                },
            };
            // A dynamic port is published on IPv4 only: Docker 20.10 may otherwise pick
            // different host ports for IPv4 and IPv6, and the task would report two
            // bindings for one container port.
            let host_ip = host_port.is_none().then(|| "0.0.0.0".to_string());
            out.push(PortPublish {
                container_port,
                host_port,
                protocol,
                host_ip,
            });
        }
    }
    Ok(out)
}

fn port_number(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|p| *p != 0)
}

/// `first-last`, both inclusive.
fn port_range(range: &str) -> Option<Vec<u16>> {
    let (first, last) = range.split_once('-')?;
    let first: u16 = first.trim().parse().ok()?;
    let last: u16 = last.trim().parse().ok()?;
    if first == 0 || first > last {
        return None;
    }
    Some((first..=last).collect())
}

fn links(task: &TaskContext, container: &ContainerDefinition) -> Vec<String> {
    container
        .links
        .iter()
        .flatten()
        .map(|link| {
            let (target, alias) = link
                .split_once(':')
                .unwrap_or((link.as_str(), link.as_str()));
            format!("{}:{alias}", task.runtime_name(target))
        })
        .collect()
}

fn mounts(task: &TaskContext, container: &ContainerDefinition) -> Result<Vec<Mount>, SpecError> {
    let name = container.name_or_empty();
    container
        .mount_points
        .iter()
        .flatten()
        .map(|point| {
            let (Some(volume), Some(target)) = (&point.source_volume, &point.container_path) else {
                return Err(SpecError::IncompleteMountPoint {
                    container: name.to_owned(),
                });
            };
            let source = task
                .volumes
                .get(volume)
                .ok_or_else(|| SpecError::UnknownVolume {
                    container: name.to_owned(),
                    volume: volume.clone(),
                })?
                .source
                .clone();
            Ok(Mount {
                source,
                target: target.clone(),
                read_only: point.read_only == Some(true),
            })
        })
        .collect()
}

/// The name a link or dependency refers to, without its alias.
pub fn link_target(link: &str) -> &str {
    link.split_once(':').map_or(link, |(target, _)| target)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;

//! ContainerDefinition and every shape nested in it: ports, environment, mounts,
//! Linux parameters, secrets, dependencies, logging, health checks, resources.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::common::{KeyValuePair, wire_enum};

wire_enum! {
    /// Whether ECS resolves an image tag to a digest.
    pub enum VersionConsistency {
        Enabled = "enabled",
        Disabled = "disabled",
    }
}

wire_enum! {
    /// A transport protocol of a port mapping. `tcp` when absent.
    pub enum TransportProtocol {
        Tcp = "tcp",
        Udp = "udp",
    }
}

wire_enum! {
    /// The application protocol of a port mapping (Service Connect).
    pub enum ApplicationProtocol {
        Http = "http",
        Http2 = "http2",
        Grpc = "grpc",
    }
}

wire_enum! {
    /// Where an environment file is.
    pub enum EnvironmentFileType {
        S3 = "s3",
    }
}

wire_enum! {
    /// What a container waits for in another before it starts.
    pub enum ContainerCondition {
        Start = "START",
        Complete = "COMPLETE",
        Success = "SUCCESS",
        Healthy = "HEALTHY",
    }
}

wire_enum! {
    /// The resource a ulimit limits.
    pub enum UlimitName {
        Core = "core",
        Cpu = "cpu",
        Data = "data",
        Fsize = "fsize",
        Locks = "locks",
        Memlock = "memlock",
        Msgqueue = "msgqueue",
        Nice = "nice",
        Nofile = "nofile",
        Nproc = "nproc",
        Rss = "rss",
        Rtprio = "rtprio",
        Rttime = "rttime",
        Sigpending = "sigpending",
        Stack = "stack",
    }
}

wire_enum! {
    /// A Docker log driver ECS supports.
    pub enum LogDriver {
        JsonFile = "json-file",
        Syslog = "syslog",
        Journald = "journald",
        Gelf = "gelf",
        Fluentd = "fluentd",
        Awslogs = "awslogs",
        Splunk = "splunk",
        Awsfirelens = "awsfirelens",
    }
}

wire_enum! {
    /// The log router of a FireLens container.
    pub enum FirelensConfigurationType {
        Fluentd = "fluentd",
        Fluentbit = "fluentbit",
    }
}

wire_enum! {
    /// The kind of resource a resource requirement asks for.
    pub enum ResourceType {
        Gpu = "GPU",
        InferenceAccelerator = "InferenceAccelerator",
        NeuronDevice = "NeuronDevice",
    }
}

wire_enum! {
    /// A cgroup permission on a host device.
    pub enum DeviceCgroupPermission {
        Read = "read",
        Write = "write",
        Mknod = "mknod",
    }
}

/// One container of a task definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDefinition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<RepositoryCredentials>,
    /// CPU units (1024 to a vCPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    /// Hard limit, MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    /// Soft limit, MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    /// `name` or `name:alias`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// `true` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<ContainerRestartPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<KeyValuePair>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_files: Option<Vec<EnvironmentFile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_points: Option<Vec<MountPoint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<VolumeFrom>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<Secret>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<ContainerDependency>>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<i32>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_consistency: Option<VersionConsistency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_networking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_search_domains: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<HostEntry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_security_options: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pseudo_terminal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_controls: Option<Vec<SystemControl>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_requirements: Option<Vec<ResourceRequirement>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firelens_configuration: Option<FirelensConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_specs: Option<Vec<String>>,
}

impl ContainerDefinition {
    /// The name, or "" when absent (validation refuses that).
    pub fn name_or_empty(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// Whether the container is essential: `essential` defaults to true.
    pub fn is_essential(&self) -> bool {
        self.essential.unwrap_or(true)
    }
}

/// Private registry credentials (a Secrets Manager secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryCredentials {
    pub credentials_parameter: String,
}

/// A port the container exposes, and where on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TransportProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<ApplicationProtocol>,
    /// `first-last`, e.g. "8000-8010".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port_range: Option<String>,
}

impl PortMapping {
    /// The protocol, `tcp` when absent.
    pub fn protocol_or_default(&self) -> TransportProtocol {
        self.protocol.unwrap_or(TransportProtocol::Tcp)
    }
}

/// When ECS restarts a container that exited, within its task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRestartPolicy {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored_exit_codes: Option<Vec<i32>>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_attempt_period: Option<i32>,
}

/// An environment file in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentFile {
    pub value: String,
    #[serde(rename = "type")]
    pub file_type: EnvironmentFileType,
}

/// A task volume mounted into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_volume: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// The volumes of another container of the task, mounted into this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeFrom {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// Linux-specific container settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxParameters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<KernelCapabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<Device>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    /// MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_memory_size: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Vec<Tmpfs>>,
    /// MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<i32>,
    /// 0-100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<i32>,
}

/// Linux capabilities added to and dropped from Docker's default set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KernelCapabilities {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
}

/// A host device exposed to the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub host_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<DeviceCgroupPermission>>,
}

/// A tmpfs mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tmpfs {
    pub container_path: String,
    /// MiB.
    pub size: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_options: Option<Vec<String>>,
}

/// A secret exposed as an environment variable or a log option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub name: String,
    /// An SSM parameter (name or ARN) or a Secrets Manager secret ARN.
    pub value_from: String,
}

/// A container this one waits for, and for what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: ContainerCondition,
}

/// An /etc/hosts entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    pub hostname: String,
    pub ip_address: String,
}

/// A resource limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ulimit {
    pub name: UlimitName,
    pub soft_limit: i32,
    pub hard_limit: i32,
}

/// The log driver of a container and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    pub log_driver: LogDriver,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_options: Option<Vec<Secret>>,
}

/// A container health check (Docker HEALTHCHECK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub command: Vec<String>,
    /// Seconds, 30 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    /// Seconds, 5 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i32>,
    /// 3 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    /// Seconds, off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i32>,
}

/// A namespaced kernel parameter (sysctl).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemControl {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A GPU, Neuron device or inference accelerator the container needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub resource_type: ResourceType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharing_strategy: Option<SharingStrategy>,
}

/// How a container shares a GPU with others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharingStrategy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvidia_mps: Option<NvidiaMpsAllocation>,
}

/// GPU memory and compute of a container sharing a GPU through NVIDIA MPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NvidiaMpsAllocation {
    /// MiB.
    pub memory: i32,
    /// 1-100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_compute_percent: Option<i32>,
}

/// The FireLens log router configuration of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirelensConfiguration {
    #[serde(rename = "type")]
    pub router_type: FirelensConfigurationType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

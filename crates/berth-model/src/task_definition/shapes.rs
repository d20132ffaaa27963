//! The task-level shapes: the RegisterTaskDefinition request and response, the
//! registered TaskDefinition, and the small task-level members (placement
//! constraints, proxy, accelerators, storage, platform, trusted execution).
//!
//! Every member of the ECS model is here, so that a definition comes back exactly as
//! it was given, including members berth does not act on yet. Members are optional
//! unless the ECS model requires them; absent members are omitted from responses.

use serde::{Deserialize, Serialize};

use super::container::ContainerDefinition;
use super::volume::Volume;
use crate::common::{Attribute, KeyValuePair, Tag, wire_enum};

wire_enum! {
    /// The Docker networking mode of a task's containers. `bridge` when absent
    /// (on Linux).
    pub enum NetworkMode {
        Bridge = "bridge",
        Host = "host",
        Awsvpc = "awsvpc",
        None = "none",
    }
}

wire_enum! {
    /// The process namespace the containers of a task use.
    pub enum PidMode {
        Host = "host",
        Task = "task",
    }
}

wire_enum! {
    /// The IPC namespace the containers of a task use.
    pub enum IpcMode {
        Host = "host",
        Task = "task",
        None = "none",
    }
}

wire_enum! {
    /// A launch type a task definition can be validated against and run on.
    pub enum Compatibility {
        Ec2 = "EC2",
        Fargate = "FARGATE",
        External = "EXTERNAL",
        ManagedInstances = "MANAGED_INSTANCES",
    }
}

wire_enum! {
    /// The lifecycle status of a task definition revision.
    pub enum TaskDefinitionStatus {
        Active = "ACTIVE",
        Inactive = "INACTIVE",
        DeleteInProgress = "DELETE_IN_PROGRESS",
    }
}

wire_enum! {
    /// The kind of proxy of a `proxyConfiguration`.
    pub enum ProxyConfigurationType {
        AppMesh = "APPMESH",
    }
}

wire_enum! {
    /// The CPU architecture a task runs on.
    pub enum CpuArchitecture {
        X86_64 = "X86_64",
        Arm64 = "ARM64",
    }
}

wire_enum! {
    /// The operating system family a task runs on.
    pub enum OsFamily {
        WindowsServer2019Full = "WINDOWS_SERVER_2019_FULL",
        WindowsServer2019Core = "WINDOWS_SERVER_2019_CORE",
        WindowsServer2016Full = "WINDOWS_SERVER_2016_FULL",
        WindowsServer2004Core = "WINDOWS_SERVER_2004_CORE",
        WindowsServer2022Core = "WINDOWS_SERVER_2022_CORE",
        WindowsServer2022Full = "WINDOWS_SERVER_2022_FULL",
        WindowsServer2025Core = "WINDOWS_SERVER_2025_CORE",
        WindowsServer2025Full = "WINDOWS_SERVER_2025_FULL",
        WindowsServer20H2Core = "WINDOWS_SERVER_20H2_CORE",
        Linux = "LINUX",
    }
}

impl OsFamily {
    pub fn is_windows(self) -> bool {
        self != OsFamily::Linux
    }
}

wire_enum! {
    /// How a task is isolated from other tasks on the same instance.
    pub enum IsolationMode {
        Shared = "SHARED",
        IsolatedSandbox = "ISOLATED_SANDBOX",
        ConfidentialSandbox = "CONFIDENTIAL_SANDBOX",
    }
}

wire_enum! {
    /// The kind of a task definition placement constraint.
    pub enum TaskDefinitionPlacementConstraintType {
        MemberOf = "memberOf",
    }
}

/// RegisterTaskDefinition's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterTaskDefinitionRequest {
    pub family: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<TaskDefinitionPlacementConstraint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_compatibilities: Option<Vec<Compatibility>>,
    /// CPU units ("1024") or vCPUs ("1 vCPU").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// MiB ("2048") or GB ("2 GB").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<PidMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<IpcMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_configuration: Option<ProxyConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_accelerators: Option<Vec<InferenceAccelerator>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_execution_configuration: Option<TrustedExecutionConfiguration>,
}

/// RegisterTaskDefinition's output. The tags are not part of the task definition;
/// they come back next to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterTaskDefinitionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<TaskDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// A registered task definition revision, as Describe/Register return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_definitions: Option<Vec<ContainerDefinition>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<NetworkMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskDefinitionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_attributes: Option<Vec<Attribute>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<TaskDefinitionPlacementConstraint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibilities: Option<Vec<Compatibility>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requires_compatibilities: Option<Vec<Compatibility>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_accelerators: Option<Vec<InferenceAccelerator>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<PidMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<IpcMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_configuration: Option<ProxyConfiguration>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<f64>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregistered_at: Option<f64>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_requested_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_execution_configuration: Option<TrustedExecutionConfiguration>,
}

/// A placement constraint carried by the task definition (`memberOf` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDefinitionPlacementConstraint {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub constraint_type: Option<TaskDefinitionPlacementConstraintType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// The App Mesh proxy of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfiguration {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub proxy_type: Option<ProxyConfigurationType>,
    pub container_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<Vec<KeyValuePair>>,
}

/// An Elastic Inference accelerator of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceAccelerator {
    pub device_name: String,
    pub device_type: String,
}

/// The ephemeral storage of a task, in GiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EphemeralStorage {
    #[serde(rename = "sizeInGiB")]
    pub size_in_gib: i32,
}

/// The platform a task runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePlatform {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<CpuArchitecture>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<OsFamily>,
}

/// How tasks of this definition are isolated, and their attestation policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrustedExecutionConfiguration {
    pub isolation_mode: IsolationMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation_policy: Option<String>,
}

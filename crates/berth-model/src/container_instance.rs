//! Container instances: the hosts an agent registers into a cluster, their
//! resources, and the operations on them (RegisterContainerInstance,
//! DeregisterContainerInstance, DescribeContainerInstances, ListContainerInstances,
//! UpdateContainerInstancesState, DiscoverPollEndpoint).
//!
//! Also the resource accounting placement needs: [`remaining`] computes an
//! instance's `remainingResources` from what it registered and what its tasks
//! reserve, and [`fits`] says whether a task fits and, if not, why, in ECS's words.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::common::{Attribute, Failure, Tag, wire_enum};
use crate::task::{Attachment, TaskResources};

wire_enum! {
    /// The kind of a device an instance offers tasks.
    pub enum PlatformDeviceType {
        Gpu = "GPU",
        NeuronDevice = "NEURON_DEVICE",
    }
}

wire_enum! {
    /// Where an agent update of the instance is.
    pub enum AgentUpdateStatus {
        Pending = "PENDING",
        Staging = "STAGING",
        Staged = "STAGED",
        Updating = "UPDATING",
        Updated = "UPDATED",
        Failed = "FAILED",
    }
}

wire_enum! {
    /// The result of an instance health check, and the instance's overall health.
    pub enum InstanceHealthCheckState {
        Ok = "OK",
        Impaired = "IMPAIRED",
        InsufficientData = "INSUFFICIENT_DATA",
        Initializing = "INITIALIZING",
    }
}

wire_enum! {
    /// What an instance health check checks.
    pub enum InstanceHealthCheckType {
        ContainerRuntime = "CONTAINER_RUNTIME",
        AcceleratedCompute = "ACCELERATED_COMPUTE",
        Daemon = "DAEMON",
        AgentConnectivity = "AGENT_CONNECTIVITY",
    }
}

wire_enum! {
    /// How a GPU of an instance is shared among containers.
    pub enum GpuSharingMode {
        Idle = "IDLE",
        NvidiaMps = "NVIDIA_MPS",
        Dedicated = "DEDICATED",
    }
}

wire_enum! {
    /// What DescribeContainerInstances adds to each instance on request.
    pub enum ContainerInstanceField {
        Tags = "TAGS",
        ContainerInstanceHealth = "CONTAINER_INSTANCE_HEALTH",
    }
}

wire_enum! {
    /// The status of a container instance (`status` is a plain string in the
    /// ContainerInstance shape; these are its values).
    pub enum ContainerInstanceStatus {
        Active = "ACTIVE",
        Draining = "DRAINING",
        Registering = "REGISTERING",
        Deregistering = "DEREGISTERING",
        RegistrationFailed = "REGISTRATION_FAILED",
    }
}

/// A host registered into a cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2_instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_name: Option<String>,
    /// Goes up by one with every change of the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_info: Option<VersionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_resources: Option<Vec<Resource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_resources: Option<Vec<Resource>>,
    /// A [`ContainerInstanceStatus`] value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_connected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_tasks_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_tasks_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_update_status: Option<AgentUpdateStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<Attribute>>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_status: Option<ContainerInstanceHealthStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_devices: Option<Vec<GpuDevice>>,
}

/// A resource of a container instance: an amount (`INTEGER`, `LONG`, `DOUBLE`) or
/// a set of strings (`STRINGSET`), by `type`.
///
/// ECS's own resources are CPU (INTEGER, CPU units), MEMORY (INTEGER, MiB), PORTS
/// and PORTS_UDP (STRINGSET of port numbers). In `registeredResources` the port sets
/// list the ports the instance keeps for itself; in `remainingResources` they list
/// those plus the ports its tasks hold, i.e. every port that is taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub double_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integer_value: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_set_value: Option<Vec<String>>,
}

impl Resource {
    /// CPU units.
    pub const CPU: &'static str = "CPU";
    /// MiB.
    pub const MEMORY: &'static str = "MEMORY";
    /// TCP ports.
    pub const PORTS: &'static str = "PORTS";
    /// UDP ports.
    pub const PORTS_UDP: &'static str = "PORTS_UDP";
    pub const INTEGER: &'static str = "INTEGER";
    pub const LONG: &'static str = "LONG";
    pub const DOUBLE: &'static str = "DOUBLE";
    pub const STRINGSET: &'static str = "STRINGSET";

    /// An INTEGER resource.
    pub fn integer(name: impl Into<String>, value: i32) -> Self {
        Self {
            name: Some(name.into()),
            resource_type: Some(Self::INTEGER.into()),
            integer_value: Some(value),
            ..Self::default()
        }
    }

    /// A STRINGSET resource.
    pub fn string_set(name: impl Into<String>, values: impl IntoIterator<Item = String>) -> Self {
        Self {
            name: Some(name.into()),
            resource_type: Some(Self::STRINGSET.into()),
            string_set_value: Some(values.into_iter().collect()),
            ..Self::default()
        }
    }

    /// The amount, from the member its `type` names (`integerValue` when the type
    /// is INTEGER or absent); 0 when that member is absent. DOUBLE rounds down.
    pub fn amount(&self) -> i64 {
        match self.resource_type.as_deref() {
            Some(Self::LONG) => self.long_value.unwrap_or(0),
            // Saturating float-to-integer conversion is what we want here.
            Some(Self::DOUBLE) => self.double_value.unwrap_or(0.0).floor() as i64,
            _ => self.integer_value.map_or(0, i64::from),
        }
    }

    /// Takes `used` from the amount, in the member its `type` names (an INTEGER
    /// saturates at the bounds of a 32-bit integer). Taking 0 changes nothing.
    fn take(&mut self, used: i64) {
        if used == 0 {
            return;
        }
        match self.resource_type.as_deref() {
            Some(Self::LONG) => {
                self.long_value = Some(self.long_value.unwrap_or(0).saturating_sub(used));
            }
            Some(Self::DOUBLE) => {
                self.double_value = Some(self.double_value.unwrap_or(0.0) - used as f64);
            }
            _ => {
                let left = self.integer_value.map_or(0, i64::from).saturating_sub(used);
                let clamped = left.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                self.integer_value = i32::try_from(clamped).ok();
            }
        }
    }

    /// The port numbers of a port set; members that are not port numbers are
    /// skipped.
    pub fn ports(&self) -> BTreeSet<u16> {
        self.string_set_value
            .iter()
            .flatten()
            .filter_map(|port| port.trim().parse().ok())
            .collect()
    }

    fn is_named(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }
}

/// The versions of the agent and the container runtime of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
}

/// The health of an instance: overall, and per check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstanceHealthStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall_status: Option<InstanceHealthCheckState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<InstanceHealthCheckResult>>,
}

/// One health check of an instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceHealthCheckResult {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub check_type: Option<InstanceHealthCheckType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<InstanceHealthCheckState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<f64>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_change: Option<f64>,
}

/// A GPU of an instance and how much of it is in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuDevice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharing_mode: Option<GpuSharingMode>,
    #[serde(rename = "totalMemoryInMiB", skip_serializing_if = "Option::is_none")]
    pub total_memory_in_mib: Option<i32>,
    #[serde(
        rename = "remainingMemoryInMiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub remaining_memory_in_mib: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_count: Option<i32>,
}

/// A device an instance offers its tasks (a GPU or a Neuron device), reported at
/// registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformDevice {
    pub id: String,
    #[serde(rename = "type")]
    pub device_type: PlatformDeviceType,
}

/// RegisterContainerInstance's input, sent by the agent. With
/// `containerInstanceArn` it re-registers that instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterContainerInstanceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_identity_document: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_identity_document_signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_resources: Option<Vec<Resource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_info: Option<VersionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<Attribute>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_devices: Option<Vec<PlatformDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// The output of the operations that return one container instance
/// (RegisterContainerInstance, DeregisterContainerInstance).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterContainerInstanceResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<ContainerInstance>,
}

/// DeregisterContainerInstance's input. Without `force`, an instance that still
/// runs tasks is not deregistered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeregisterContainerInstanceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// An ARN or id.
    pub container_instance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// DeregisterContainerInstance's output; the same member as
/// RegisterContainerInstance's.
pub type DeregisterContainerInstanceResponse = RegisterContainerInstanceResponse;

/// DescribeContainerInstances's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeContainerInstancesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Up to 100 ARNs or ids.
    pub container_instances: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<ContainerInstanceField>>,
}

/// The output of the operations that return container instances and failures
/// (DescribeContainerInstances, UpdateContainerInstancesState).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeContainerInstancesResponse {
    #[serde(default)]
    pub container_instances: Vec<ContainerInstance>,
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// ListContainerInstances's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContainerInstancesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A cluster query language expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ContainerInstanceStatus>,
}

/// ListContainerInstances's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContainerInstancesResponse {
    #[serde(default)]
    pub container_instance_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// UpdateContainerInstancesState's input: drain instances or make them active.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContainerInstancesStateRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Up to 10 ARNs or ids.
    pub container_instances: Vec<String>,
    pub status: ContainerInstanceStatus,
}

/// UpdateContainerInstancesState's output; the same members as
/// DescribeContainerInstances's.
pub type UpdateContainerInstancesStateResponse = DescribeContainerInstancesResponse;

/// DiscoverPollEndpoint's input, sent by the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverPollEndpointRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Where the agent opens its session, sends telemetry and finds Service Connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverPollEndpointResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_connect_endpoint: Option<String>,
}

/// The failure reason when an instance lacks the CPU a task needs.
pub const RESOURCE_CPU: &str = "RESOURCE:CPU";
/// The failure reason when an instance lacks the memory a task needs.
pub const RESOURCE_MEMORY: &str = "RESOURCE:MEMORY";
/// The failure reason when a host port a task needs (TCP or UDP) is taken.
pub const RESOURCE_PORTS: &str = "RESOURCE:PORTS";

/// An instance's `remainingResources`: its `registered` resources less what the
/// `used` tasks reserve.
///
/// CPU and MEMORY go down by the sums of the tasks' CPU and memory (and may go below
/// zero if the tasks were placed without [`fits`]). PORTS and PORTS_UDP, the sets of
/// taken ports, gain the tasks' TCP and UDP host ports: the registered ones keep
/// their order and the tasks' follow in ascending order; a set the instance did not
/// register is added when tasks hold ports of it. Other resources are unchanged.
pub fn remaining(registered: &[Resource], used: &[TaskResources]) -> Vec<Resource> {
    let cpu: i64 = used.iter().map(|task| task.cpu).sum();
    let memory: i64 = used.iter().map(|task| task.memory).sum();
    let tcp: BTreeSet<u16> = used
        .iter()
        .flat_map(|t| t.tcp_ports.iter().copied())
        .collect();
    let udp: BTreeSet<u16> = used
        .iter()
        .flat_map(|t| t.udp_ports.iter().copied())
        .collect();
    let mut out: Vec<Resource> = registered
        .iter()
        .map(|resource| {
            let mut resource = resource.clone();
            match resource.name.as_deref() {
                Some(Resource::CPU) => resource.take(cpu),
                Some(Resource::MEMORY) => resource.take(memory),
                Some(Resource::PORTS) => take_ports(&mut resource, &tcp),
                Some(Resource::PORTS_UDP) => take_ports(&mut resource, &udp),
                _ => {}
            }
            resource
        })
        .collect();
    for (name, ports) in [(Resource::PORTS, &tcp), (Resource::PORTS_UDP, &udp)] {
        if !ports.is_empty() && !registered.iter().any(|r| r.is_named(name)) {
            out.push(Resource::string_set(name, ports.iter().map(u16::to_string)));
        }
    }
    out
}

/// Takes what one task needs from an instance's `remaining` resources, in place:
/// the same as `*remaining = remaining(remaining, &[need])`, without copying the
/// resources (placement takes from one instance after another, task by task).
pub fn take_for_task(remaining: &mut Vec<Resource>, need: &TaskResources) {
    let tcp: BTreeSet<u16> = need.tcp_ports.iter().copied().collect();
    let udp: BTreeSet<u16> = need.udp_ports.iter().copied().collect();
    for resource in remaining.iter_mut() {
        match resource.name.as_deref() {
            Some(Resource::CPU) => resource.take(need.cpu),
            Some(Resource::MEMORY) => resource.take(need.memory),
            Some(Resource::PORTS) if !tcp.is_empty() => take_ports(resource, &tcp),
            Some(Resource::PORTS_UDP) if !udp.is_empty() => take_ports(resource, &udp),
            _ => {}
        }
    }
    for (name, ports) in [(Resource::PORTS, &tcp), (Resource::PORTS_UDP, &udp)] {
        if !ports.is_empty() && !remaining.iter().any(|r| r.is_named(name)) {
            remaining.push(Resource::string_set(name, ports.iter().map(u16::to_string)));
        }
    }
}

fn take_ports(resource: &mut Resource, ports: &BTreeSet<u16>) {
    let taken = resource.ports();
    let set = resource.string_set_value.get_or_insert_with(Vec::new);
    set.extend(
        ports
            .iter()
            .filter(|port| !taken.contains(port))
            .map(u16::to_string),
    );
}

/// Whether a task needing `need` fits an instance with these `remaining` resources
/// (as [`remaining`] computes them). If not, every reason, in this order:
/// [`RESOURCE_CPU`] when it needs more CPU than remains, [`RESOURCE_MEMORY`] when it
/// needs more memory than remains, [`RESOURCE_PORTS`] when one of its TCP ports is
/// in PORTS or one of its UDP ports in PORTS_UDP. A missing CPU or MEMORY resource
/// counts as none left; a missing port set as no port taken.
pub fn fits(remaining: &[Resource], need: &TaskResources) -> Result<(), Vec<&'static str>> {
    let find = |name: &str| remaining.iter().find(|resource| resource.is_named(name));
    let amount = |name: &str| find(name).map_or(0, Resource::amount);
    // Whether one of `ports` is in the set named `name` (parsed only when asked).
    let clash = |name: &str, ports: &[u16]| {
        !ports.is_empty()
            && find(name)
                .map(Resource::ports)
                .is_some_and(|taken| ports.iter().any(|port| taken.contains(port)))
    };
    let mut reasons = Vec::new();
    if need.cpu > amount(Resource::CPU) {
        reasons.push(RESOURCE_CPU);
    }
    if need.memory > amount(Resource::MEMORY) {
        reasons.push(RESOURCE_MEMORY);
    }
    if clash(Resource::PORTS, &need.tcp_ports) || clash(Resource::PORTS_UDP, &need.udp_ports) {
        reasons.push(RESOURCE_PORTS);
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;
    use crate::error::ErrorCode;

    /// Every member of each shape (and of every shape nested in it), by shape name.
    const EVERY_MEMBER: &str = r#"
{
  "ContainerInstance": {
    "containerInstanceArn": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/ci-1",
    "ec2InstanceId": "i-0123456789abcdef0",
    "capacityProviderName": "default",
    "version": 7,
    "versionInfo": {"agentVersion": "0.1.0", "agentHash": "abc123", "dockerVersion": "DockerVersion: 27.0.1"},
    "remainingResources": [
      {"name": "CPU", "type": "INTEGER", "doubleValue": 0.5, "longValue": 0, "integerValue": 1024, "stringSetValue": ["x"]}
    ],
    "registeredResources": [
      {"name": "PORTS", "type": "STRINGSET", "doubleValue": 0.5, "longValue": 1, "integerValue": 0, "stringSetValue": ["22", "2375"]}
    ],
    "status": "ACTIVE",
    "statusReason": "ok",
    "agentConnected": true,
    "runningTasksCount": 2,
    "pendingTasksCount": 1,
    "agentUpdateStatus": "UPDATED",
    "attributes": [{"name": "ecs.os-type", "value": "linux", "targetType": "container-instance", "targetId": "ci-1"}],
    "registeredAt": 1700000000.5,
    "attachments": [{"id": "a-1", "type": "ElasticNetworkInterface", "status": "ATTACHED", "details": [{"name": "subnetId", "value": "subnet-1"}]}],
    "tags": [{"key": "k", "value": "v"}],
    "healthStatus": {
      "overallStatus": "OK",
      "details": [{"type": "CONTAINER_RUNTIME", "status": "OK", "statusReason": "fine", "lastUpdated": 1700000001.5, "lastStatusChange": 1700000000.5}]
    },
    "gpuDevices": [{"gpuId": "GPU-1", "sharingMode": "NVIDIA_MPS", "totalMemoryInMiB": 16384, "remainingMemoryInMiB": 8192, "containerCount": 2}]
  },
  "RegisterContainerInstanceRequest": {
    "cluster": "default",
    "instanceIdentityDocument": "{}",
    "instanceIdentityDocumentSignature": "sig",
    "totalResources": [
      {"name": "CPU", "type": "INTEGER", "doubleValue": 0.5, "longValue": 2, "integerValue": 2048, "stringSetValue": ["y"]}
    ],
    "versionInfo": {"agentVersion": "0.1.0", "agentHash": "abc123", "dockerVersion": "27.0.1"},
    "containerInstanceArn": "arn:aws:ecs:us-east-1:000000000000:container-instance/default/ci-1",
    "attributes": [{"name": "ecs.capability.task-eni", "value": "v", "targetType": "container-instance", "targetId": "ci-1"}],
    "platformDevices": [{"id": "GPU-1", "type": "GPU"}],
    "tags": [{"key": "k", "value": "v"}]
  },
  "DeregisterContainerInstanceRequest": {"cluster": "default", "containerInstance": "ci-1", "force": true},
  "DescribeContainerInstancesRequest": {"cluster": "default", "containerInstances": ["ci-1"], "include": ["TAGS", "CONTAINER_INSTANCE_HEALTH"]},
  "ListContainerInstancesRequest": {"cluster": "default", "filter": "attribute:ecs.os-type == linux", "nextToken": "abc", "maxResults": 5, "status": "DRAINING"},
  "ListContainerInstancesResponse": {"containerInstanceArns": ["arn:aws:ecs:us-east-1:000000000000:container-instance/default/ci-1"], "nextToken": "abc"},
  "UpdateContainerInstancesStateRequest": {"cluster": "default", "containerInstances": ["ci-1"], "status": "ACTIVE"},
  "DiscoverPollEndpointRequest": {"containerInstance": "ci-1", "cluster": "default"},
  "DiscoverPollEndpointResponse": {"endpoint": "wss://127.0.0.1:8443/", "telemetryEndpoint": "https://127.0.0.1:8443/telemetry", "serviceConnectEndpoint": "https://127.0.0.1:8443/sc"}
}
"#;

    fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Value {
        let decoded: T = crate::decode::decode(&serde_json::to_vec(value).unwrap()).unwrap();
        serde_json::to_value(&decoded).unwrap()
    }

    #[test]
    fn every_member_round_trips() {
        let all: Value = serde_json::from_str(EVERY_MEMBER).unwrap();
        let check = |name: &str, encoded: Value| assert_eq!(encoded, all[name], "{name}");
        check(
            "ContainerInstance",
            round_trip::<ContainerInstance>(&all["ContainerInstance"]),
        );
        check(
            "RegisterContainerInstanceRequest",
            round_trip::<RegisterContainerInstanceRequest>(
                &all["RegisterContainerInstanceRequest"],
            ),
        );
        check(
            "DeregisterContainerInstanceRequest",
            round_trip::<DeregisterContainerInstanceRequest>(
                &all["DeregisterContainerInstanceRequest"],
            ),
        );
        check(
            "DescribeContainerInstancesRequest",
            round_trip::<DescribeContainerInstancesRequest>(
                &all["DescribeContainerInstancesRequest"],
            ),
        );
        check(
            "ListContainerInstancesRequest",
            round_trip::<ListContainerInstancesRequest>(&all["ListContainerInstancesRequest"]),
        );
        check(
            "ListContainerInstancesResponse",
            round_trip::<ListContainerInstancesResponse>(&all["ListContainerInstancesResponse"]),
        );
        check(
            "UpdateContainerInstancesStateRequest",
            round_trip::<UpdateContainerInstancesStateRequest>(
                &all["UpdateContainerInstancesStateRequest"],
            ),
        );
        check(
            "DiscoverPollEndpointRequest",
            round_trip::<DiscoverPollEndpointRequest>(&all["DiscoverPollEndpointRequest"]),
        );
        check(
            "DiscoverPollEndpointResponse",
            round_trip::<DiscoverPollEndpointResponse>(&all["DiscoverPollEndpointResponse"]),
        );
    }

    #[test]
    fn responses_always_write_their_lists() {
        assert_eq!(
            serde_json::to_value(DescribeContainerInstancesResponse::default()).unwrap(),
            json!({"containerInstances": [], "failures": []})
        );
        assert_eq!(
            serde_json::to_value(RegisterContainerInstanceResponse::default()).unwrap(),
            json!({})
        );
        assert_eq!(
            serde_json::to_value(ContainerInstance::default()).unwrap(),
            json!({})
        );
        let read: ListContainerInstancesResponse = serde_json::from_value(json!({})).unwrap();
        assert!(read.container_instance_arns.is_empty());
    }

    #[test]
    fn required_members_and_enums_are_checked() {
        let missing = |body: Value, member: &str, err: Option<crate::error::ApiError>| {
            let err = err.unwrap();
            assert_eq!(err.code, ErrorCode::InvalidParameterException);
            assert_eq!(
                err.message,
                format!("Missing required parameter: {member}"),
                "{body}"
            );
        };
        let body = json!({});
        let err = crate::decode::decode::<DescribeContainerInstancesRequest>(b"{}").err();
        missing(body.clone(), "containerInstances", err);
        let err = crate::decode::decode::<DeregisterContainerInstanceRequest>(b"{}").err();
        missing(body, "containerInstance", err);
        let body = json!({"containerInstances": ["a"]});
        let err = crate::decode::decode::<UpdateContainerInstancesStateRequest>(
            &serde_json::to_vec(&body).unwrap(),
        )
        .err();
        missing(body, "status", err);
        let body = json!({"platformDevices": [{"id": "g"}]});
        let err = crate::decode::decode::<RegisterContainerInstanceRequest>(
            &serde_json::to_vec(&body).unwrap(),
        )
        .err();
        missing(body, "platformDevices[0].type", err);

        let err = crate::decode::decode::<ListContainerInstancesRequest>(br#"{"status":"active"}"#)
            .unwrap_err();
        assert!(err.message.contains("status"), "{}", err.message);
        assert_eq!(
            ContainerInstanceStatus::RegistrationFailed.as_str(),
            "REGISTRATION_FAILED"
        );
        assert_eq!(
            ContainerInstanceField::ContainerInstanceHealth.as_str(),
            "CONTAINER_INSTANCE_HEALTH"
        );
    }

    fn ports(values: &[u16]) -> Vec<String> {
        values.iter().map(u16::to_string).collect()
    }

    /// A 2048-unit, 4096-MiB instance that keeps TCP 22 and 2375 for itself.
    fn registered() -> Vec<Resource> {
        vec![
            Resource::integer(Resource::CPU, 2048),
            Resource::integer(Resource::MEMORY, 4096),
            Resource::string_set(Resource::PORTS, ports(&[22, 2375])),
            Resource::string_set(Resource::PORTS_UDP, ports(&[])),
            Resource::integer("GPU", 1),
        ]
    }

    fn task(cpu: i64, memory: i64, tcp: &[u16], udp: &[u16]) -> TaskResources {
        TaskResources {
            cpu,
            memory,
            tcp_ports: tcp.to_vec(),
            udp_ports: udp.to_vec(),
        }
    }

    fn find<'a>(resources: &'a [Resource], name: &str) -> &'a Resource {
        resources.iter().find(|r| r.is_named(name)).unwrap()
    }

    #[test]
    fn remaining_subtracts_and_takes_ports() {
        let used = [
            task(512, 1024, &[80, 443], &[53]),
            task(256, 512, &[8080], &[]),
        ];
        let left = remaining(&registered(), &used);
        assert_eq!(left.len(), 5);
        assert_eq!(find(&left, "CPU").integer_value, Some(2048 - 768));
        assert_eq!(find(&left, "MEMORY").integer_value, Some(4096 - 1536));
        assert_eq!(
            find(&left, "PORTS").string_set_value,
            Some(ports(&[22, 2375, 80, 443, 8080]))
        );
        assert_eq!(
            find(&left, "PORTS_UDP").string_set_value,
            Some(ports(&[53]))
        );
        assert_eq!(find(&left, "GPU"), find(&registered(), "GPU"));
        // Nothing used: the registered resources as they are.
        assert_eq!(remaining(&registered(), &[]), registered());
    }

    #[test]
    fn remaining_adds_missing_port_sets_and_keeps_value_kinds() {
        let registered = vec![
            Resource {
                name: Some("CPU".into()),
                resource_type: Some("LONG".into()),
                long_value: Some(1000),
                ..Resource::default()
            },
            Resource {
                name: Some("MEMORY".into()),
                resource_type: Some("DOUBLE".into()),
                double_value: Some(100.5),
                ..Resource::default()
            },
        ];
        assert_eq!(remaining(&registered, &[]), registered);
        let left = remaining(&registered, &[task(10, 20, &[80], &[53, 54])]);
        assert_eq!(find(&left, "CPU").long_value, Some(990));
        assert_eq!(find(&left, "MEMORY").double_value, Some(80.5));
        assert_eq!(find(&left, "PORTS").string_set_value, Some(ports(&[80])));
        assert_eq!(
            find(&left, "PORTS_UDP").string_set_value,
            Some(ports(&[53, 54]))
        );
        // A port the instance already lists is not listed twice.
        let registered = vec![Resource::string_set("PORTS", ports(&[80]))];
        let left = remaining(&registered, &[task(0, 0, &[80, 81], &[])]);
        assert_eq!(
            find(&left, "PORTS").string_set_value,
            Some(ports(&[80, 81]))
        );
    }

    #[test]
    fn taking_task_by_task_in_place_is_remaining_of_all_the_tasks() {
        let tasks = [
            task(100, 64, &[], &[]),
            task(10, 8, &[80, 443], &[]),
            task(0, 0, &[], &[53]),
            task(5, 5, &[8080], &[53, 54]),
        ];
        // Registered with both port sets, with only PORTS, and with neither.
        let without_udp: Vec<Resource> = registered()
            .into_iter()
            .filter(|r| !r.is_named(Resource::PORTS_UDP))
            .collect();
        let bare = vec![
            Resource::integer(Resource::CPU, 1024),
            Resource::integer(Resource::MEMORY, 512),
        ];
        for start in [registered(), without_udp, bare] {
            let mut left = start.clone();
            for (done, need) in tasks.iter().enumerate() {
                take_for_task(&mut left, need);
                assert_eq!(left, remaining(&start, &tasks[..=done]), "after {done}");
            }
        }
    }

    #[test]
    fn fits_when_everything_is_there() {
        let left = remaining(&registered(), &[task(1024, 2048, &[80], &[53])]);
        assert_eq!(fits(&left, &task(1024, 2048, &[81], &[80])), Ok(()));
        assert_eq!(fits(&left, &task(0, 0, &[], &[])), Ok(()));
    }

    #[test]
    fn fits_gives_every_reason() {
        let left = remaining(&registered(), &[task(1024, 2048, &[80], &[53])]);
        assert_eq!(
            fits(&left, &task(1025, 1, &[], &[])),
            Err(vec![RESOURCE_CPU])
        );
        assert_eq!(
            fits(&left, &task(1, 2049, &[], &[])),
            Err(vec![RESOURCE_MEMORY])
        );
        assert_eq!(
            fits(&left, &task(1, 1, &[22], &[])),
            Err(vec![RESOURCE_PORTS])
        );
        assert_eq!(
            fits(&left, &task(1, 1, &[80], &[])),
            Err(vec![RESOURCE_PORTS])
        );
        assert_eq!(
            fits(&left, &task(1, 1, &[], &[53])),
            Err(vec![RESOURCE_PORTS])
        );
        assert_eq!(
            fits(&left, &task(4096, 8192, &[2375], &[53])),
            Err(vec![RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PORTS])
        );
        assert_eq!(
            [RESOURCE_CPU, RESOURCE_MEMORY, RESOURCE_PORTS],
            ["RESOURCE:CPU", "RESOURCE:MEMORY", "RESOURCE:PORTS"]
        );
    }

    #[test]
    fn missing_resources_count_as_none_left_and_no_port_taken() {
        assert_eq!(fits(&[], &task(0, 0, &[80], &[53])), Ok(()));
        assert_eq!(
            fits(&[], &task(1, 1, &[], &[])),
            Err(vec![RESOURCE_CPU, RESOURCE_MEMORY])
        );
    }

    #[test]
    fn amounts_follow_the_type() {
        let mixed = Resource {
            name: Some("CPU".into()),
            resource_type: Some("INTEGER".into()),
            double_value: Some(0.0),
            long_value: Some(0),
            integer_value: Some(2048),
            string_set_value: None,
        };
        assert_eq!(mixed.amount(), 2048);
        let untyped = Resource {
            integer_value: Some(5),
            ..Resource::default()
        };
        assert_eq!(untyped.amount(), 5);
        let double = Resource {
            resource_type: Some("DOUBLE".into()),
            double_value: Some(2.9),
            ..Resource::default()
        };
        assert_eq!(double.amount(), 2);
        let weird = Resource::string_set("PORTS", vec!["80".into(), " 81 ".into(), "x".into()]);
        assert_eq!(weird.ports().into_iter().collect::<Vec<_>>(), [80, 81]);
        // An INTEGER that would overflow saturates.
        let left = remaining(
            &[Resource::integer("CPU", i32::MIN + 1)],
            &[task(10, 0, &[], &[])],
        );
        assert_eq!(find(&left, "CPU").integer_value, Some(i32::MIN));
    }
}

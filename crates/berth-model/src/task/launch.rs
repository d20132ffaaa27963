//! What RunTask and StartTask say about where and how a task runs: its network
//! configuration, placement constraints and strategies, tag propagation and the
//! volumes configured at launch.

use serde::{Deserialize, Serialize};

use crate::common::{Tag, wire_enum};

wire_enum! {
    /// Whether a task ENI gets a public IP address.
    pub enum AssignPublicIp {
        Enabled = "ENABLED",
        Disabled = "DISABLED",
    }
}

wire_enum! {
    /// The kind of a placement constraint given at launch.
    pub enum PlacementConstraintType {
        DistinctInstance = "distinctInstance",
        MemberOf = "memberOf",
    }
}

wire_enum! {
    /// The kind of a placement strategy.
    pub enum PlacementStrategyType {
        Random = "random",
        Spread = "spread",
        Binpack = "binpack",
    }
}

wire_enum! {
    /// Where a task's tags are copied from.
    pub enum PropagateTags {
        TaskDefinition = "TASK_DEFINITION",
        Service = "SERVICE",
        None = "NONE",
    }
}

wire_enum! {
    /// What an EBS tag specification tags.
    pub enum EbsResourceType {
        Volume = "volume",
    }
}

wire_enum! {
    /// The file system a managed EBS volume is formatted with.
    pub enum TaskFilesystemType {
        Ext3 = "ext3",
        Ext4 = "ext4",
        Xfs = "xfs",
        Ntfs = "ntfs",
    }
}

/// The network of an awsvpc task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awsvpc_configuration: Option<AwsVpcConfiguration>,
}

/// The subnets and security groups of a task ENI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsVpcConfiguration {
    pub subnets: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_groups: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assign_public_ip: Option<AssignPublicIp>,
}

/// A rule a container instance must satisfy to receive the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementConstraint {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub constraint_type: Option<PlacementConstraintType>,
    /// A cluster query language expression (`memberOf` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// How to choose among the instances that satisfy the constraints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStrategy {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub strategy_type: Option<PlacementStrategyType>,
    /// `spread`: `instanceId`, `host` or an attribute; `binpack`: `cpu` or `memory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A task volume whose source is given at launch (`configuredAtLaunch` in the task
/// definition).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskVolumeConfiguration {
    pub name: String,
    #[serde(rename = "managedEBSVolume", skip_serializing_if = "Option::is_none")]
    pub managed_ebs_volume: Option<TaskManagedEbsVolumeConfiguration>,
}

/// An EBS volume ECS creates for the task and attaches to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagedEbsVolumeConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_type: Option<String>,
    #[serde(rename = "sizeInGiB", skip_serializing_if = "Option::is_none")]
    pub size_in_gib: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// MiB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_initialization_rate: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops: Option<i32>,
    /// MiB/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_specifications: Option<Vec<EbsTagSpecification>>,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_policy: Option<TaskManagedEbsVolumeTerminationPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem_type: Option<TaskFilesystemType>,
}

/// The tags of a managed EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EbsTagSpecification {
    pub resource_type: EbsResourceType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,
}

/// Whether a managed EBS volume outlives its task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManagedEbsVolumeTerminationPolicy {
    pub delete_on_termination: bool,
}

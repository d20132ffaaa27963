//! The volumes a service configures for its tasks at launch (task definition
//! volumes marked `configuredAtLaunch`).

use serde::{Deserialize, Serialize};

use crate::task::{
    EbsTagSpecification, TaskFilesystemType, TaskManagedEbsVolumeConfiguration,
    TaskVolumeConfiguration,
};

/// A task volume whose source the service gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceVolumeConfiguration {
    /// The name of a volume of the task definition.
    pub name: String,
    #[serde(rename = "managedEBSVolume", skip_serializing_if = "Option::is_none")]
    pub managed_ebs_volume: Option<ServiceManagedEbsVolumeConfiguration>,
}

/// An EBS volume ECS creates for each task of the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceManagedEbsVolumeConfiguration {
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
    pub filesystem_type: Option<TaskFilesystemType>,
}

impl From<&ServiceVolumeConfiguration> for TaskVolumeConfiguration {
    /// The volume as a task of the service is started with. A service's volumes
    /// are deleted with their tasks, so the task-level termination policy is left
    /// to its default.
    fn from(volume: &ServiceVolumeConfiguration) -> Self {
        Self {
            name: volume.name.clone(),
            managed_ebs_volume: volume.managed_ebs_volume.as_ref().map(|ebs| {
                TaskManagedEbsVolumeConfiguration {
                    encrypted: ebs.encrypted,
                    kms_key_id: ebs.kms_key_id.clone(),
                    volume_type: ebs.volume_type.clone(),
                    size_in_gib: ebs.size_in_gib,
                    snapshot_id: ebs.snapshot_id.clone(),
                    volume_initialization_rate: ebs.volume_initialization_rate,
                    iops: ebs.iops,
                    throughput: ebs.throughput,
                    tag_specifications: ebs.tag_specifications.clone(),
                    role_arn: ebs.role_arn.clone(),
                    termination_policy: None,
                    filesystem_type: ebs.filesystem_type,
                }
            }),
        }
    }
}

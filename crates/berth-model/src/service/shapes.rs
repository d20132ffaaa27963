//! The Service shape as CreateService, UpdateService, DeleteService and
//! DescribeServices return it, with its deployments, events, task sets and the
//! service enums.
//!
//! Members the ECS model types as plain strings (a service's and a deployment's
//! `status`) stay strings so that every value survives; [`ServiceStatus`] and
//! [`DeploymentStatus`] name the values berth itself writes.

use serde::{Deserialize, Serialize};

use super::deployment::{DeploymentConfiguration, DeploymentController};
use super::load_balancing::{LoadBalancer, ServiceRegistry, VpcLatticeConfiguration};
use super::service_connect::ServiceConnectConfiguration;
use super::volume::ServiceVolumeConfiguration;
use crate::cluster::CapacityProviderStrategyItem;
use crate::common::{Tag, wire_enum};
use crate::task::{
    LaunchType, NetworkConfiguration, PlacementConstraint, PlacementStrategy, PropagateTags,
};

wire_enum! {
    /// How the service scheduler places a service's tasks. `REPLICA` when absent.
    #[derive(Default)]
    pub enum SchedulingStrategy {
        /// Keep `desiredCount` tasks running across the cluster.
        #[default]
        Replica = "REPLICA",
        /// One task on every container instance that satisfies the constraints.
        Daemon = "DAEMON",
    }
}

wire_enum! {
    /// Where a deployment's rollout stands.
    pub enum DeploymentRolloutState {
        Completed = "COMPLETED",
        Failed = "FAILED",
        InProgress = "IN_PROGRESS",
    }
}

wire_enum! {
    /// Whether ECS moves a service's tasks to rebalance them across Availability
    /// Zones.
    pub enum AvailabilityZoneRebalancing {
        Enabled = "ENABLED",
        Disabled = "DISABLED",
    }
}

wire_enum! {
    /// Who manages a service: its owner, or ECS on the owner's behalf.
    pub enum ResourceManagementType {
        Customer = "CUSTOMER",
        Ecs = "ECS",
    }
}

wire_enum! {
    /// Whether a task set has reached its steady state.
    pub enum StabilityStatus {
        SteadyState = "STEADY_STATE",
        Stabilizing = "STABILIZING",
    }
}

wire_enum! {
    /// The unit of a task set's scale.
    pub enum ScaleUnit {
        Percent = "PERCENT",
    }
}

wire_enum! {
    /// The lifecycle of a service: the values of its `status`. Not an enum of the
    /// ECS model (which types it as a string); these are the values ECS documents.
    pub enum ServiceStatus {
        Active = "ACTIVE",
        /// Deleted, its tasks stopping.
        Draining = "DRAINING",
        /// Deleted, its tasks stopped.
        Inactive = "INACTIVE",
    }
}

wire_enum! {
    /// The role of a deployment in its service: the values of its `status`. Not an
    /// enum of the ECS model (which types it as a string).
    pub enum DeploymentStatus {
        /// The most recent deployment, the one the service converges to.
        Primary = "PRIMARY",
        /// An earlier deployment that still has running tasks.
        Active = "ACTIVE",
        /// A deployment whose tasks are all replaced.
        Inactive = "INACTIVE",
    }
}

/// A service: a task definition kept running at a desired count (REPLICA) or on
/// every instance (DAEMON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancers: Option<Vec<LoadBalancer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_registries: Option<Vec<ServiceRegistry>>,
    /// A [`ServiceStatus`] value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_family: Option<String>,
    /// The task definition ARN of the primary deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_sets: Option<Vec<TaskSet>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments: Option<Vec<Deployment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The most recent events first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<ServiceEvent>>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    /// The ARN of the service deployment now running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_service_deployment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_service_revisions: Option<Vec<ServiceCurrentRevisionSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling_strategy: Option<SchedulingStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<DeploymentController>,
    /// Only with DescribeServices's `include: ["TAGS"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    /// The principal that created the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(
        rename = "enableECSManagedTags",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ecs_managed_tags: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_execute_command: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<AvailabilityZoneRebalancing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_management_type: Option<ResourceManagementType>,
}

impl Service {
    /// The scheduling strategy, `REPLICA` when absent.
    pub fn scheduling(&self) -> SchedulingStrategy {
        self.scheduling_strategy.unwrap_or_default()
    }
}

/// One rollout of a service: a task definition with the launch settings it runs
/// with, and how far its tasks have come.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// `ecs-svc/` and a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A [`DeploymentStatus`] value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A task definition ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_count: Option<i32>,
    /// Tasks of this deployment that failed to start or to become healthy; what
    /// the circuit breaker counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_tasks: Option<i32>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state: Option<DeploymentRolloutState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_state_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_connect_resources: Option<Vec<ServiceConnectServiceResource>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_configurations: Option<Vec<ServiceVolumeConfiguration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fargate_ephemeral_storage: Option<DeploymentEphemeralStorage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_lattice_configurations: Option<Vec<VpcLatticeConfiguration>>,
}

/// Something that happened to a service, as DescribeServices lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The key that encrypts the Fargate ephemeral storage of a deployment's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEphemeralStorage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// A Service Connect endpoint a deployment registered in Cloud Map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConnectServiceResource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_arn: Option<String>,
}

/// The task counts of one service revision that is running now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCurrentRevisionSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_task_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_task_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_task_count: Option<i32>,
}

/// A set of a service's tasks that an external or CodeDeploy deployment
/// controller manages. berth runs the ECS controller only, so it never creates
/// one; the shape is here because Service carries it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSet {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_set_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computed_desired_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_count: Option<i32>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancers: Option<Vec<LoadBalancer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_registries: Option<Vec<ServiceRegistry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability_status: Option<StabilityStatus>,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stability_status_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fargate_ephemeral_storage: Option<DeploymentEphemeralStorage>,
}

/// How many of a service's tasks a task set runs, as a share of the desired count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<ScaleUnit>,
}

//! CreateService, UpdateService, DeleteService, DescribeServices, ListServices and
//! ListServicesByNamespace: their requests and responses.
//!
//! Responses that ECS always answers with lists (`services`, `failures`,
//! `serviceArns`) hold plain vectors, always written, and read as empty when
//! absent.

use serde::{Deserialize, Serialize};

use super::deployment::{DeploymentConfiguration, DeploymentController};
use super::load_balancing::{
    GatewayConnector, LoadBalancer, ServiceRegistry, VpcLatticeConfiguration,
};
use super::monitoring::MonitoringConfiguration;
use super::service_connect::ServiceConnectConfiguration;
use super::shapes::{
    AvailabilityZoneRebalancing, ResourceManagementType, SchedulingStrategy, Service,
};
use super::volume::ServiceVolumeConfiguration;
use crate::cluster::CapacityProviderStrategyItem;
use crate::common::{Failure, Tag, wire_enum};
use crate::task::{
    LaunchType, NetworkConfiguration, PlacementConstraint, PlacementStrategy, PropagateTags,
};

wire_enum! {
    /// What DescribeServices adds to each service on request.
    pub enum ServiceField {
        Tags = "TAGS",
    }
}

/// CreateService's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Unique in its cluster; 1-255 letters, digits, hyphens and underscores.
    pub service_name: String,
    /// `family`, `family:revision` or an ARN; required with the ECS deployment
    /// controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<AvailabilityZoneRebalancing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancers: Option<Vec<LoadBalancer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_registries: Option<Vec<ServiceRegistry>>,
    /// Required for REPLICA, refused for DAEMON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<i32>,
    /// Makes the call idempotent; up to 36 ASCII characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// The IAM role ECS calls the load balancer with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
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
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_configurations: Option<Vec<ServiceVolumeConfiguration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_lattice_configurations: Option<Vec<VpcLatticeConfiguration>>,
    /// At most one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_connectors: Option<Vec<GatewayConnector>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringConfiguration>,
}

impl CreateServiceRequest {
    /// The scheduling strategy, `REPLICA` when absent.
    pub fn scheduling(&self) -> SchedulingStrategy {
        self.scheduling_strategy.unwrap_or_default()
    }
}

/// The output of CreateService, UpdateService and DeleteService: the service as it
/// is after the call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
}

/// CreateService's output.
pub type CreateServiceResponse = ServiceResponse;
/// UpdateService's output.
pub type UpdateServiceResponse = ServiceResponse;
/// DeleteService's output: the service, DRAINING.
pub type DeleteServiceResponse = ServiceResponse;

/// UpdateService's input: the members given replace the service's; those left
/// out are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A service name or ARN.
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_provider_strategy: Option<Vec<CapacityProviderStrategyItem>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_configuration: Option<DeploymentConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone_rebalancing: Option<AvailabilityZoneRebalancing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_configuration: Option<NetworkConfiguration>,
    /// An empty list removes the service's constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    /// An empty list removes the service's strategy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// Starts a new deployment even when nothing else changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_new_deployment: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_grace_period_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_controller: Option<DeploymentController>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_execute_command: Option<bool>,
    #[serde(
        rename = "enableECSManagedTags",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ecs_managed_tags: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancers: Option<Vec<LoadBalancer>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagate_tags: Option<PropagateTags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_registries: Option<Vec<ServiceRegistry>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_connect_configuration: Option<ServiceConnectConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_configurations: Option<Vec<ServiceVolumeConfiguration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_lattice_configurations: Option<Vec<VpcLatticeConfiguration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_connectors: Option<Vec<GatewayConnector>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringConfiguration>,
}

/// DeleteService's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteServiceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// A service name or ARN.
    pub service: String,
    /// Deletes a REPLICA service that is not scaled down to zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// DescribeServices's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServicesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Up to 10 service names or ARNs.
    pub services: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<ServiceField>>,
}

impl DescribeServicesRequest {
    /// Whether the response carries each service's tags.
    pub fn includes_tags(&self) -> bool {
        self.include
            .as_deref()
            .is_some_and(|fields| fields.contains(&ServiceField::Tags))
    }
}

/// DescribeServices's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeServicesResponse {
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// ListServices's input: the filters combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServicesRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// 1-100, 10 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<LaunchType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduling_strategy: Option<SchedulingStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_management_type: Option<ResourceManagementType>,
}

/// The output of ListServices and ListServicesByNamespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServicesResponse {
    #[serde(default)]
    pub service_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// ListServicesByNamespace's input: the services of every cluster that use a
/// Service Connect namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServicesByNamespaceRequest {
    /// A Cloud Map namespace name or ARN.
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// 1-100, 10 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i32>,
}

/// ListServicesByNamespace's output; the same members as ListServices's.
pub type ListServicesByNamespaceResponse = ListServicesResponse;

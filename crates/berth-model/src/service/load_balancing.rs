//! How traffic finds a service's tasks: load balancers, Cloud Map registries, VPC
//! Lattice target groups and gateway connectors.

use serde::{Deserialize, Serialize};

use crate::common::wire_enum;

wire_enum! {
    /// The protocol of a gateway's health checks on connector targets.
    pub enum GatewayConnectorHealthCheckProtocol {
        Http = "HTTP",
        Https = "HTTPS",
    }
}

wire_enum! {
    /// Whether a resource is reachable from the internet or only from its VPC.
    pub enum AccessType {
        Public = "PUBLIC",
        Private = "PRIVATE",
    }
}

/// A load balancer (target group, or Classic Load Balancer by name) that routes
/// to a container port of the service's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// A Classic Load Balancer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced_configuration: Option<AdvancedConfiguration>,
}

/// The second target group and listener rules of a blue/green deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate_target_group_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_listener_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// A Cloud Map service the service's tasks are registered in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRegistry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_arn: Option<String>,
    /// For SRV records, when the task definition's network mode is awsvpc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// For SRV records with bridge or host networking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
}

/// A VPC Lattice target group the service's tasks are registered in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcLatticeConfiguration {
    pub role_arn: String,
    pub target_group_arn: String,
    /// A named port mapping of the task definition.
    pub port_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced_configuration: Option<VpcLatticeAdvancedConfiguration>,
}

/// The second target group and listener rules of a VPC Lattice blue/green
/// deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcLatticeAdvancedConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternate_target_group_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_listener_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_listener_rule: Option<String>,
}

/// A named port of the service's tasks that a gateway routes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnector {
    pub port_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<GatewayConnectorHealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<GatewayConnectorFilters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deregistration_delay: Option<GatewayConnectorDeregistrationDelay>,
}

/// How a gateway checks the health of connector targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectorHealthCheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_protocol: Option<GatewayConnectorHealthCheckProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_port: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_timeout_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check_interval_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matcher: Option<GatewayConnectorHealthCheckMatcher>,
}

/// The response codes a healthy connector target answers with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectorHealthCheckMatcher {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_code: Option<String>,
}

/// Which gateways a connector serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectorFilters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_types: Option<Vec<AccessType>>,
}

/// How long a gateway drains a deregistered target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectorDeregistrationDelay {
    /// 0-3600.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

//! Services: the ECS shapes of services and the operations on them, with the pure
//! rules the control plane applies to them.
//!
//! - [`shapes`] holds Service, Deployment, ServiceEvent, TaskSet and the service
//!   enums (scheduling strategy, rollout state, statuses);
//! - [`deployment`] holds DeploymentConfiguration, the circuit breaker, alarms,
//!   the deployment controller, ECS's defaults
//!   ([`DeploymentConfiguration::effective`]) and the circuit breaker threshold
//!   ([`circuit_breaker_threshold`]);
//! - [`load_balancing`] holds load balancers, service registries, VPC Lattice and
//!   gateway connectors;
//! - [`service_connect`] holds ServiceConnectConfiguration and what it nests;
//! - [`volume`] holds the volumes a service configures at launch;
//! - [`monitoring`] holds the metric resolution settings;
//! - [`requests`] holds CreateService, UpdateService, DeleteService,
//!   DescribeServices, ListServices and ListServicesByNamespace;
//! - [`validate`] holds [`validate_create_service`] and
//!   [`validate_update_service`].
//!
//! Every member of the ECS model is here; members are optional unless the model
//! requires them, absent members are omitted from responses and unknown members
//! are ignored.

pub mod deployment;
pub mod load_balancing;
pub mod monitoring;
pub mod requests;
pub mod service_connect;
pub mod shapes;
pub mod validate;
pub mod volume;

#[cfg(test)]
mod tests;

pub use deployment::*;
pub use load_balancing::*;
pub use monitoring::*;
pub use requests::*;
pub use service_connect::*;
pub use shapes::*;
pub use validate::{
    validate_create_service, validate_deployment_configuration, validate_deployment_controller,
    validate_update_service,
};
pub use volume::*;

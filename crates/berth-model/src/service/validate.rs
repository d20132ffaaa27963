//! The checks CreateService and UpdateService make on the request alone, before
//! the control plane looks at the cluster, the task definition or the service.
//!
//! A rule is here when the ECS API reference documents it or ECS is known to
//! answer it with an error; messages are ECS's where they are known (the DAEMON
//! refusals). berth runs the ECS deployment controller with rolling updates only,
//! and refuses the others with a message that says so. What needs the store
//! (capacity providers of the cluster, the task definition's network mode, a
//! service name already taken) is checked by the handlers.

use super::deployment::{
    DeploymentConfiguration, DeploymentController, DeploymentControllerType, DeploymentStrategy,
};
use super::monitoring::MonitoringConfiguration;
use super::requests::{CreateServiceRequest, UpdateServiceRequest};
use super::shapes::SchedulingStrategy;
use crate::arn::is_valid_name;
use crate::cluster::CapacityProviderStrategyItem;
use crate::error::{ApiError, ApiResult};
use crate::tagging::validate_new_tags;
use crate::task::{LaunchType, PlacementConstraint, PlacementStrategy};

/// The most placement strategy rules a service may have.
pub const MAX_PLACEMENT_STRATEGIES: usize = 5;
/// The most placement constraints a service may give (the task definition's count
/// towards the same limit, which the handler checks).
pub const MAX_PLACEMENT_CONSTRAINTS: usize = 10;
/// The most capacity providers in a service's strategy.
pub const MAX_CAPACITY_PROVIDERS: usize = 20;
/// The longest client token, in ASCII characters 33-126.
pub const MAX_CLIENT_TOKEN_LEN: usize = 36;
/// The most services one DescribeServices call names.
pub const MAX_DESCRIBE_SERVICES: usize = 10;
/// The most gateway connectors a service may have.
pub const MAX_GATEWAY_CONNECTORS: usize = 1;

/// Validates a CreateService request as ECS does, before the handler looks at
/// the cluster and the task definition.
pub fn validate_create_service(req: &CreateServiceRequest) -> ApiResult<()> {
    if !is_valid_name(&req.service_name) {
        return Err(invalid(
            "Service name can have up to 255 characters: letters (uppercase and lowercase), numbers, underscores and hyphens.",
        ));
    }
    if let Some(token) = &req.client_token {
        check_client_token(token)?;
    }
    validate_deployment_controller(req.deployment_controller.as_ref())?;
    if req.task_definition.as_deref().is_none_or(str::is_empty) {
        return Err(invalid(
            "A task definition must be specified for a service that uses the ECS deployment controller.",
        ));
    }
    let strategy = req
        .capacity_provider_strategy
        .as_deref()
        .unwrap_or_default();
    if req.launch_type.is_some() && !strategy.is_empty() {
        return Err(invalid(
            "Specify either a launchType or a capacityProviderStrategy, not both.",
        ));
    }
    let scheduling = req.scheduling();
    match scheduling {
        SchedulingStrategy::Replica => match req.desired_count {
            None => {
                return Err(invalid(
                    "desiredCount is required for a service that uses the REPLICA scheduling strategy.",
                ));
            }
            Some(count) => check_desired_count(count)?,
        },
        SchedulingStrategy::Daemon => {
            if req.desired_count.is_some() {
                return Err(daemon_desired_count());
            }
            if req.launch_type == Some(LaunchType::Fargate) {
                return Err(invalid(
                    "The daemon scheduling strategy does not support the FARGATE launch type. Change the launch type and try again",
                ));
            }
            if !strategy.is_empty() {
                return Err(invalid(
                    "Specifying a capacity provider strategy is not supported when you create a service using the DAEMON scheduling strategy.",
                ));
            }
        }
    }
    check_placement(
        scheduling,
        req.placement_constraints.as_deref(),
        req.placement_strategy.as_deref(),
    )?;
    check_capacity_provider_count(strategy)?;
    if let Some(config) = &req.deployment_configuration {
        validate_deployment_configuration(config, scheduling)?;
    }
    if let Some(seconds) = req.health_check_grace_period_seconds {
        check_grace_period(seconds)?;
    }
    check_gateway_connector_count(req.gateway_connectors.as_ref().map(Vec::len))?;
    if let Some(monitoring) = &req.monitoring {
        check_monitoring(monitoring)?;
    }
    validate_new_tags(req.tags.as_deref().unwrap_or_default())
}

/// Validates an UpdateService request against the scheduling strategy of the
/// service it updates (which UpdateService cannot change). The deployment
/// configuration is checked as given; the handler checks it again once merged
/// with the service's.
pub fn validate_update_service(
    req: &UpdateServiceRequest,
    scheduling: SchedulingStrategy,
) -> ApiResult<()> {
    validate_deployment_controller(req.deployment_controller.as_ref())?;
    if req.task_definition.as_deref().is_some_and(str::is_empty) {
        return Err(invalid("taskDefinition cannot be empty."));
    }
    if let Some(count) = req.desired_count {
        if scheduling == SchedulingStrategy::Daemon {
            return Err(daemon_desired_count());
        }
        check_desired_count(count)?;
    }
    let strategy = req
        .capacity_provider_strategy
        .as_deref()
        .unwrap_or_default();
    if scheduling == SchedulingStrategy::Daemon && !strategy.is_empty() {
        return Err(invalid(
            "The daemon scheduling strategy does not support a capacity provider strategy.",
        ));
    }
    check_placement(
        scheduling,
        req.placement_constraints.as_deref(),
        req.placement_strategy.as_deref(),
    )?;
    check_capacity_provider_count(strategy)?;
    if let Some(config) = &req.deployment_configuration {
        validate_deployment_configuration(config, scheduling)?;
    }
    if let Some(seconds) = req.health_check_grace_period_seconds {
        check_grace_period(seconds)?;
    }
    check_gateway_connector_count(req.gateway_connectors.as_ref().map(Vec::len))?;
    if let Some(monitoring) = &req.monitoring {
        check_monitoring(monitoring)?;
    }
    Ok(())
}

/// Refuses every deployment controller but ECS's (the default).
pub fn validate_deployment_controller(controller: Option<&DeploymentController>) -> ApiResult<()> {
    match controller.map(|c| c.controller_type) {
        None | Some(DeploymentControllerType::Ecs) => Ok(()),
        Some(other) => Err(invalid(format!(
            "berth supports the ECS deployment controller only; {other} is not supported."
        ))),
    }
}

/// Checks a deployment configuration for a service of this scheduling strategy:
/// the percentages, the circuit breaker's threshold and the strategy.
pub fn validate_deployment_configuration(
    config: &DeploymentConfiguration,
    scheduling: SchedulingStrategy,
) -> ApiResult<()> {
    if let Some(percent) = config.minimum_healthy_percent
        && !(0..=100).contains(&percent)
    {
        return Err(invalid(format!(
            "minimumHealthyPercent must be between 0 and 100; it is {percent}."
        )));
    }
    if let Some(percent) = config.maximum_percent {
        match scheduling {
            SchedulingStrategy::Daemon if percent > 100 => {
                return Err(invalid(
                    "The daemon scheduling strategy does not support values above 100 for maximumPercent on a deployment configuration. Change the maximumPercent value to 100, and try again",
                ));
            }
            SchedulingStrategy::Replica if percent < 100 => {
                return Err(invalid(format!(
                    "maximumPercent must be at least 100; it is {percent}."
                )));
            }
            _ => {}
        }
        if percent < 0 {
            return Err(invalid(format!(
                "maximumPercent must not be negative; it is {percent}."
            )));
        }
    }
    if let Some(threshold) = config
        .deployment_circuit_breaker
        .as_ref()
        .and_then(|breaker| breaker.threshold_configuration.as_ref())
        && threshold.value < 1
    {
        return Err(invalid(format!(
            "The value of the deployment circuit breaker's thresholdConfiguration must be at least 1; it is {}.",
            threshold.value
        )));
    }
    if let Some(criteria) = &config.early_success_criteria
        && let Some(percent) = criteria.healthy_percent
        && !(0..=100).contains(&percent)
    {
        return Err(invalid(format!(
            "earlySuccessCriteria.healthyPercent must be between 0 and 100; it is {percent}."
        )));
    }
    match config.strategy {
        None | Some(DeploymentStrategy::Rolling) => Ok(()),
        Some(other) => Err(invalid(format!(
            "berth supports the ROLLING deployment strategy only; {other} is not supported."
        ))),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(message)
}

fn daemon_desired_count() -> ApiError {
    invalid(
        "The daemon scheduling strategy does not support a desired count for services. Remove the desired count value and try again",
    )
}

fn check_client_token(token: &str) -> ApiResult<()> {
    let printable = token.bytes().all(|b| (33..=126).contains(&b));
    if token.is_empty() || token.len() > MAX_CLIENT_TOKEN_LEN || !printable {
        return Err(invalid(format!(
            "clientToken must be 1-{MAX_CLIENT_TOKEN_LEN} ASCII characters in the range 33-126."
        )));
    }
    Ok(())
}

fn check_desired_count(count: i32) -> ApiResult<()> {
    if count < 0 {
        return Err(invalid(format!(
            "desiredCount must not be negative; it is {count}."
        )));
    }
    Ok(())
}

fn check_placement(
    scheduling: SchedulingStrategy,
    constraints: Option<&[PlacementConstraint]>,
    strategy: Option<&[PlacementStrategy]>,
) -> ApiResult<()> {
    let strategy = strategy.unwrap_or_default();
    if scheduling == SchedulingStrategy::Daemon && !strategy.is_empty() {
        return Err(invalid(
            "The daemon scheduling strategy does not support placement strategies. Remove the placement strategy and try again",
        ));
    }
    if strategy.len() > MAX_PLACEMENT_STRATEGIES {
        return Err(invalid(format!(
            "A service can have at most {MAX_PLACEMENT_STRATEGIES} placement strategy rules; this one has {}.",
            strategy.len()
        )));
    }
    let constraints = constraints.unwrap_or_default();
    if constraints.len() > MAX_PLACEMENT_CONSTRAINTS {
        return Err(invalid(format!(
            "A service can have at most {MAX_PLACEMENT_CONSTRAINTS} placement constraints; this one has {}.",
            constraints.len()
        )));
    }
    Ok(())
}

fn check_capacity_provider_count(strategy: &[CapacityProviderStrategyItem]) -> ApiResult<()> {
    if strategy.len() > MAX_CAPACITY_PROVIDERS {
        return Err(invalid(format!(
            "A capacity provider strategy can contain at most {MAX_CAPACITY_PROVIDERS} capacity providers; this one has {}.",
            strategy.len()
        )));
    }
    Ok(())
}

fn check_grace_period(seconds: i32) -> ApiResult<()> {
    if seconds < 0 {
        return Err(invalid(format!(
            "healthCheckGracePeriodSeconds must not be negative; it is {seconds}."
        )));
    }
    Ok(())
}

fn check_gateway_connector_count(count: Option<usize>) -> ApiResult<()> {
    if count.is_some_and(|count| count > MAX_GATEWAY_CONNECTORS) {
        return Err(invalid(format!(
            "A service can have at most {MAX_GATEWAY_CONNECTORS} gateway connector."
        )));
    }
    Ok(())
}

fn check_monitoring(monitoring: &MonitoringConfiguration) -> ApiResult<()> {
    for metrics in monitoring
        .metric_configurations
        .as_deref()
        .unwrap_or_default()
    {
        if !matches!(metrics.resolution_seconds, 20 | 60) {
            return Err(invalid(format!(
                "resolutionSeconds must be 20 or 60; it is {}.",
                metrics.resolution_seconds
            )));
        }
        if !(1..=5).contains(&metrics.metric_names.len()) {
            return Err(invalid("metricNames must name 1-5 metrics."));
        }
    }
    Ok(())
}

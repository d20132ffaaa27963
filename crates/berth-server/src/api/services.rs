//! CreateService, UpdateService, DeleteService, DescribeServices, ListServices. These
//! record what the user wants (desired count, task definition, deployments); the
//! service controller (`controllers/`) makes it so.

use berth_model::arn::{cluster_name, cluster_resource_id};
use berth_model::common::Failure;
use berth_model::pagination::{PageRequest, page};
use berth_model::service::*;
use berth_model::tagging::validate_new_tags;
use berth_model::task::{LaunchType, PropagateTags};
use berth_model::{ApiError, ApiResult, ErrorCode};
use berth_store::{Compare, Snapshot, Txn};
use serde::{Deserialize, Serialize};

use super::Ctx;
use super::clusters::read_active;
use super::tasks::runnable_definition;
use crate::controllers::plan::{Backoff, SchedulerState};
use crate::state::{self, Versioned, keys};

/// A service and the controller's bookkeeping for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    #[serde(flatten)]
    pub service: Service,
    /// The scheduler's memory between passes: the start throttle and steady state.
    #[serde(rename = "berthScheduler", default)]
    pub scheduler: SchedulerState,
}

/// ECS keeps a service's 100 newest events.
pub const MAX_EVENTS: usize = 100;

/// Adds an event, newest first, keeping at most [`MAX_EVENTS`].
pub fn add_event(service: &mut Service, now: f64, message: String) {
    let events = service.events.get_or_insert_with(Vec::new);
    events.insert(
        0,
        ServiceEvent {
            id: Some(uuid::Uuid::new_v4().to_string()),
            created_at: Some(now),
            message: Some(message),
        },
    );
    events.truncate(MAX_EVENTS);
}

pub fn service_key(region: &str, cluster: &str, name: &str) -> String {
    format!("{}{name}", keys::services(region, cluster))
}

/// The service name a request names: a service ARN of the cluster or a name.
fn service_name<'a>(cluster: &str, identifier: &'a str) -> ApiResult<&'a str> {
    cluster_resource_id("service", cluster, identifier)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ServiceNotFoundException, "Service not found.")
}

fn read_service(
    snapshot: &Snapshot,
    region: &str,
    cluster: &str,
    name: &str,
) -> ApiResult<Option<Versioned<ServiceRecord>>> {
    state::read(snapshot, &service_key(region, cluster, name))
}

/// A new deployment of `task_definition`, PRIMARY and IN_PROGRESS.
pub fn new_deployment(service: &Service, task_definition: &str, now: f64) -> Deployment {
    let id = format!("ecs-svc/{}", rand_digits());
    Deployment {
        rollout_state_reason: Some(format!("ECS deployment {id} in progress.")),
        id: Some(id),
        status: Some(DeploymentStatus::Primary.as_str().to_string()),
        task_definition: Some(task_definition.to_string()),
        desired_count: service.desired_count,
        pending_count: Some(0),
        running_count: Some(0),
        failed_tasks: Some(0),
        created_at: Some(now),
        updated_at: Some(now),
        capacity_provider_strategy: service.capacity_provider_strategy.clone(),
        launch_type: service.launch_type,
        platform_version: service.platform_version.clone(),
        network_configuration: service.network_configuration.clone(),
        rollout_state: Some(DeploymentRolloutState::InProgress),
        ..Deployment::default()
    }
}

/// ECS deployment ids are 19 decimal digits.
fn rand_digits() -> String {
    let bytes = uuid::Uuid::new_v4().as_u128();
    format!("{:019}", bytes % 10_000_000_000_000_000_000)
}

/// Starts a new deployment: the PRIMARY one becomes ACTIVE (its tasks are replaced as
/// the rollout proceeds) and the start throttle is reset.
fn redeploy(record: &mut ServiceRecord, task_definition: &str, now: f64) {
    for deployment in record.service.deployments.iter_mut().flatten() {
        if deployment.status.as_deref() == Some(DeploymentStatus::Primary.as_str()) {
            deployment.status = Some(DeploymentStatus::Active.as_str().to_string());
            deployment.updated_at = Some(now);
        }
    }
    let deployment = new_deployment(&record.service, task_definition, now);
    record
        .service
        .deployments
        .get_or_insert_with(Vec::new)
        .insert(0, deployment);
    record.service.task_definition = Some(task_definition.to_string());
    record.scheduler.backoff = Backoff::default();
    record.scheduler.steady = false;
}

pub async fn create_service(
    ctx: &Ctx<'_>,
    req: CreateServiceRequest,
) -> ApiResult<ServiceResponse> {
    validate_create_service(&req)?;
    berth_sched::validate_constraints(req.placement_constraints.as_deref().unwrap_or_default())?;
    berth_sched::validate_strategies(req.placement_strategy.as_deref().unwrap_or_default())?;
    let cluster = cluster_name(req.cluster.as_deref())?;
    let tags = req.tags.clone().unwrap_or_default();
    validate_new_tags(&tags)?;
    let scheduling = req.scheduling();
    let key = service_key(ctx.region(), &cluster, &req.service_name);
    state::write(ctx.store, |snapshot| {
        let cluster_record = read_active(snapshot, ctx.region(), &cluster)?;
        let text = req.task_definition.as_deref().ok_or_else(|| {
            ApiError::invalid_parameter(
                "taskDefinition is required (berth has no external deployment controller).",
            )
        })?;
        let (_, definition) = runnable_definition(ctx, snapshot, text)?;
        let definition_arn = definition
            .value
            .task_definition
            .task_definition_arn
            .clone()
            .unwrap_or_default();
        let previous = read_service(snapshot, ctx.region(), &cluster, &req.service_name)?;
        if previous.as_ref().is_some_and(|p| {
            p.value.service.status.as_deref() != Some(ServiceStatus::Inactive.as_str())
        }) {
            return Err(ApiError::invalid_parameter(
                "Creation of service was not idempotent.",
            ));
        }
        let launch_type = match (&req.launch_type, &req.capacity_provider_strategy) {
            (Some(launch_type), _) => Some(*launch_type),
            (None, Some(strategy)) if !strategy.is_empty() => None,
            _ => Some(LaunchType::Ec2),
        };
        let mut service = Service {
            service_arn: Some(ctx.scope.service_arn(&cluster, &req.service_name)),
            service_name: Some(req.service_name.clone()),
            cluster_arn: Some(ctx.scope.cluster_arn(&cluster)),
            load_balancers: Some(req.load_balancers.clone().unwrap_or_default()),
            service_registries: Some(req.service_registries.clone().unwrap_or_default()),
            status: Some(ServiceStatus::Active.as_str().to_string()),
            desired_count: Some(req.desired_count.unwrap_or(0)),
            running_count: Some(0),
            pending_count: Some(0),
            launch_type,
            capacity_provider_strategy: req.capacity_provider_strategy.clone(),
            platform_version: req.platform_version.clone(),
            task_definition: Some(definition_arn.clone()),
            deployment_configuration: Some(
                req.deployment_configuration
                    .clone()
                    .unwrap_or_default()
                    .completed(scheduling),
            ),
            role_arn: req.role.clone(),
            events: Some(Vec::new()),
            created_at: Some(ctx.now),
            placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
            placement_strategy: Some(req.placement_strategy.clone().unwrap_or_default()),
            network_configuration: req.network_configuration.clone(),
            health_check_grace_period_seconds: req.health_check_grace_period_seconds,
            scheduling_strategy: Some(scheduling),
            deployment_controller: Some(req.deployment_controller.clone().unwrap_or_default()),
            tags: Some(tags.clone()),
            created_by: Some(ctx.principal_arn.clone()),
            enable_ecs_managed_tags: Some(req.enable_ecs_managed_tags.unwrap_or(false)),
            propagate_tags: Some(req.propagate_tags.unwrap_or(PropagateTags::None)),
            enable_execute_command: Some(req.enable_execute_command.unwrap_or(false)),
            ..Service::default()
        };
        let deployment = new_deployment(&service, &definition_arn, ctx.now);
        service.deployments = Some(vec![deployment]);
        let record = ServiceRecord {
            service,
            scheduler: SchedulerState::default(),
        };
        let txn = Txn::new()
            .when(Compare::unchanged(
                keys::cluster(ctx.region(), &cluster),
                cluster_record.mod_revision,
            ))
            .when(Compare::unchanged(
                &key,
                previous.map_or(0, |p| p.mod_revision),
            ))
            .put(&key, state::encode_record(&record)?);
        Ok((
            Some(txn),
            ServiceResponse {
                service: Some(record.service),
            },
        ))
    })
    .await
}

pub async fn update_service(
    ctx: &Ctx<'_>,
    req: UpdateServiceRequest,
) -> ApiResult<ServiceResponse> {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let name = service_name(&cluster, &req.service)?.to_string();
    let key = service_key(ctx.region(), &cluster, &name);
    berth_sched::validate_constraints(req.placement_constraints.as_deref().unwrap_or_default())?;
    berth_sched::validate_strategies(req.placement_strategy.as_deref().unwrap_or_default())?;
    state::write(ctx.store, |snapshot| {
        read_active(snapshot, ctx.region(), &cluster)?;
        let found = read_service(snapshot, ctx.region(), &cluster, &name)?.ok_or_else(not_found)?;
        let mut record = found.value;
        if record.service.status.as_deref() != Some(ServiceStatus::Active.as_str()) {
            return Err(ApiError::new(
                ErrorCode::ServiceNotActiveException,
                "Service was not ACTIVE.",
            ));
        }
        let scheduling = record.service.scheduling();
        validate_update_service(&req, scheduling)?;
        if let Some(count) = req.desired_count {
            record.service.desired_count = Some(count);
            for deployment in record.service.deployments.iter_mut().flatten() {
                if deployment.status.as_deref() == Some(DeploymentStatus::Primary.as_str()) {
                    deployment.desired_count = Some(count);
                    deployment.updated_at = Some(ctx.now);
                }
            }
        }
        if let Some(config) = &req.deployment_configuration {
            let mut merged = record
                .service
                .deployment_configuration
                .clone()
                .unwrap_or_default();
            if config.minimum_healthy_percent.is_some() {
                merged.minimum_healthy_percent = config.minimum_healthy_percent;
            }
            if config.maximum_percent.is_some() {
                merged.maximum_percent = config.maximum_percent;
            }
            if config.deployment_circuit_breaker.is_some() {
                merged.deployment_circuit_breaker = config.deployment_circuit_breaker.clone();
            }
            if config.alarms.is_some() {
                merged.alarms = config.alarms.clone();
            }
            validate_deployment_configuration(&merged, scheduling)?;
            record.service.deployment_configuration = Some(merged.completed(scheduling));
        }
        if let Some(constraints) = &req.placement_constraints {
            record.service.placement_constraints = Some(constraints.clone());
        }
        if let Some(strategy) = &req.placement_strategy {
            record.service.placement_strategy = Some(strategy.clone());
        }
        if let Some(grace) = req.health_check_grace_period_seconds {
            record.service.health_check_grace_period_seconds = Some(grace);
        }
        if let Some(network) = &req.network_configuration {
            record.service.network_configuration = Some(network.clone());
        }
        if let Some(enable) = req.enable_execute_command {
            record.service.enable_execute_command = Some(enable);
        }
        if let Some(propagate) = req.propagate_tags {
            record.service.propagate_tags = Some(propagate);
        }
        let current = record.service.task_definition.clone().unwrap_or_default();
        let target = match &req.task_definition {
            Some(text) => {
                let (_, definition) = runnable_definition(ctx, snapshot, text)?;
                definition
                    .value
                    .task_definition
                    .task_definition_arn
                    .clone()
                    .unwrap_or_default()
            }
            None => current.clone(),
        };
        if target != current || req.force_new_deployment == Some(true) {
            redeploy(&mut record, &target, ctx.now);
        }
        let txn = Txn::new()
            .when(Compare::unchanged(&key, found.mod_revision))
            .put(&key, state::encode_record(&record)?);
        Ok((
            Some(txn),
            ServiceResponse {
                service: Some(record.service),
            },
        ))
    })
    .await
}

pub async fn delete_service(
    ctx: &Ctx<'_>,
    req: DeleteServiceRequest,
) -> ApiResult<ServiceResponse> {
    let cluster = cluster_name(req.cluster.as_deref())?;
    let name = service_name(&cluster, &req.service)?.to_string();
    let key = service_key(ctx.region(), &cluster, &name);
    state::write(ctx.store, |snapshot| {
        read_active(snapshot, ctx.region(), &cluster)?;
        let found = read_service(snapshot, ctx.region(), &cluster, &name)?.ok_or_else(not_found)?;
        let mut record = found.value;
        match record.service.status.as_deref() {
            Some("ACTIVE") => {}
            Some("DRAINING") => {
                return Ok((
                    None,
                    ServiceResponse {
                        service: Some(record.service),
                    },
                ));
            }
            _ => return Err(not_found()),
        }
        let replica = record.service.scheduling() == SchedulingStrategy::Replica;
        if replica && record.service.desired_count.unwrap_or(0) > 0 && req.force != Some(true) {
            return Err(ApiError::invalid_parameter(
                "The service cannot be stopped while it is scaled above 0.",
            ));
        }
        // DRAINING: the controller stops every task, then marks the service INACTIVE.
        record.service.status = Some(ServiceStatus::Draining.as_str().to_string());
        record.service.desired_count = Some(0);
        for deployment in record.service.deployments.iter_mut().flatten() {
            deployment.desired_count = Some(0);
            deployment.updated_at = Some(ctx.now);
        }
        let txn = Txn::new()
            .when(Compare::unchanged(&key, found.mod_revision))
            .put(&key, state::encode_record(&record)?);
        Ok((
            Some(txn),
            ServiceResponse {
                service: Some(record.service),
            },
        ))
    })
    .await
}

pub async fn describe_services(
    ctx: &Ctx<'_>,
    req: DescribeServicesRequest,
) -> ApiResult<DescribeServicesResponse> {
    if req.services.is_empty() || req.services.len() > 10 {
        return Err(ApiError::invalid_parameter(
            "services must name between 1 and 10 services.",
        ));
    }
    let cluster = cluster_name(req.cluster.as_deref())?;
    let with_tags = req.includes_tags();
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let mut response = DescribeServicesResponse::default();
    for identifier in &req.services {
        let found = match service_name(&cluster, identifier) {
            Ok(name) => read_service(&snapshot, ctx.region(), &cluster, name)?,
            Err(_) => None,
        };
        match found {
            Some(found) => {
                let mut service = found.value.service;
                if !with_tags {
                    service.tags = None;
                }
                response.services.push(service);
            }
            None => response.failures.push(Failure {
                arn: Some(if identifier.starts_with("arn:") {
                    identifier.clone()
                } else {
                    ctx.scope.service_arn(&cluster, identifier)
                }),
                reason: Some("MISSING".to_string()),
                detail: None,
            }),
        }
    }
    Ok(response)
}

pub async fn list_services(
    ctx: &Ctx<'_>,
    req: ListServicesRequest,
) -> ApiResult<ListServicesResponse> {
    let page_request = PageRequest::new(req.max_results, req.next_token.as_deref(), 10, 100)?;
    let cluster = cluster_name(req.cluster.as_deref())?;
    let snapshot = ctx.store.snapshot().await.map_err(state::store_error)?;
    read_active(&snapshot, ctx.region(), &cluster)?;
    let prefix = keys::services(ctx.region(), &cluster);
    let mut found = Vec::new();
    for kv in snapshot.iter_prefix(&prefix) {
        let name = &kv.key[prefix.len()..];
        if page_request
            .after
            .as_deref()
            .is_some_and(|after| name <= after)
        {
            continue;
        }
        let record: ServiceRecord = state::decode_record(kv)?;
        let service = &record.service;
        let matches = service.status.as_deref() != Some(ServiceStatus::Inactive.as_str())
            && req
                .launch_type
                .is_none_or(|l| service.launch_type == Some(l))
            && req
                .scheduling_strategy
                .is_none_or(|s| service.scheduling() == s);
        if matches {
            found.push((
                name.to_string(),
                service.service_arn.clone().unwrap_or_default(),
            ));
            if found.len() > page_request.limit {
                break;
            }
        }
    }
    let (items, next_token) = page(found, page_request.limit, |(name, _)| name.clone());
    Ok(ListServicesResponse {
        service_arns: items.into_iter().map(|(_, arn)| arn).collect(),
        next_token,
    })
}

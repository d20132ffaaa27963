//! Turning a validated RegisterTaskDefinition request into the stored revision:
//! what ECS adds (ARN, revision, status, compatibilities, required attributes,
//! registration time) and what it converts (task CPU and memory units), with every
//! other member kept exactly as given.

use std::collections::BTreeSet;

use super::container::{
    ContainerDefinition, FirelensConfigurationType, LogDriver, TransportProtocol,
};
use super::shapes::{
    Compatibility, NetworkMode, PidMode, RegisterTaskDefinitionRequest, TaskDefinition,
    TaskDefinitionStatus,
};
use super::size::{is_fargate_size, parse_task_cpu, parse_task_memory};
use super::validate::is_ecr_image;
use crate::common::Attribute;

impl TaskDefinition {
    /// The revision a registration creates. `req` should have passed
    /// [`validate_registration`](super::validate::validate_registration).
    ///
    /// The request's tags are not a member of the task definition: the caller keeps
    /// them and answers them next to it (RegisterTaskDefinitionResponse.tags).
    pub fn from_registration(
        req: RegisterTaskDefinitionRequest,
        arn: String,
        revision: i32,
        registered_at: f64,
        registered_by: Option<String>,
    ) -> TaskDefinition {
        let compatibilities = compatibilities(&req);
        let requires_attributes = requires_attributes(&req);
        // ECS stores task CPU and memory converted to CPU units and MiB ("1 vCPU"
        // comes back as "1024"); plain integers come back as given.
        let cpu = req.cpu.map(|text| normalize(text, parse_task_cpu));
        let memory = req.memory.map(|text| normalize(text, parse_task_memory));
        let network_mode = req.network_mode;
        let container_definitions = req
            .container_definitions
            .into_iter()
            .map(|container| with_container_defaults(container, network_mode))
            .collect();
        TaskDefinition {
            task_definition_arn: Some(arn),
            container_definitions: Some(container_definitions),
            family: Some(req.family),
            task_role_arn: req.task_role_arn,
            execution_role_arn: req.execution_role_arn,
            network_mode: req.network_mode,
            revision: Some(revision),
            volumes: Some(req.volumes.unwrap_or_default()),
            status: Some(TaskDefinitionStatus::Active),
            requires_attributes: Some(requires_attributes),
            placement_constraints: Some(req.placement_constraints.unwrap_or_default()),
            compatibilities: Some(compatibilities),
            runtime_platform: req.runtime_platform,
            requires_compatibilities: req.requires_compatibilities,
            cpu,
            memory,
            inference_accelerators: req.inference_accelerators,
            pid_mode: req.pid_mode,
            ipc_mode: req.ipc_mode,
            proxy_configuration: req.proxy_configuration,
            registered_at: Some(registered_at),
            deregistered_at: None,
            delete_requested_at: None,
            registered_by,
            ephemeral_storage: req.ephemeral_storage,
            enable_fault_injection: req.enable_fault_injection,
            trusted_execution_configuration: req.trusted_execution_configuration,
        }
    }
}

/// What ECS fills in on a container when it registers it, and answers from then on:
/// `cpu` 0, `essential` true, empty lists for port mappings, environment, mount points,
/// volumesFrom and system controls, `tcp` for a port mapping's protocol, and, where the
/// host port must be the container port (awsvpc, host), that host port. Members the
/// caller gave are never changed.
fn with_container_defaults(
    mut container: ContainerDefinition,
    network_mode: Option<NetworkMode>,
) -> ContainerDefinition {
    container.cpu.get_or_insert(0);
    container.essential.get_or_insert(true);
    container.environment.get_or_insert_with(Vec::new);
    container.mount_points.get_or_insert_with(Vec::new);
    container.volumes_from.get_or_insert_with(Vec::new);
    container.system_controls.get_or_insert_with(Vec::new);
    let host_port_is_container_port =
        matches!(network_mode, Some(NetworkMode::Awsvpc | NetworkMode::Host));
    for mapping in container.port_mappings.get_or_insert_with(Vec::new) {
        mapping.protocol.get_or_insert(TransportProtocol::Tcp);
        if host_port_is_container_port && mapping.host_port.is_none() {
            mapping.host_port = mapping.container_port;
        }
    }
    container
}

fn normalize(text: String, parse: fn(&str) -> Option<u32>) -> String {
    let is_integer = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match parse(&text) {
        Some(value) if !is_integer => value.to_string(),
        _ => text,
    }
}

/// The launch types the definition can run on: EC2 always; EXTERNAL unless it uses
/// awsvpc (ECS Anywhere has no task ENIs); FARGATE when it fits Fargate; and every
/// launch type it requires (registration has checked those).
pub fn compatibilities(req: &RegisterTaskDefinitionRequest) -> Vec<Compatibility> {
    let required = req.requires_compatibilities.as_deref().unwrap_or_default();
    let awsvpc = req.network_mode == Some(NetworkMode::Awsvpc);
    let mut out = Vec::new();
    if !awsvpc || required.contains(&Compatibility::External) {
        out.push(Compatibility::External);
    }
    out.push(Compatibility::Ec2);
    if required.contains(&Compatibility::Fargate) || fits_fargate(req) {
        out.push(Compatibility::Fargate);
    }
    if required.contains(&Compatibility::ManagedInstances) {
        out.push(Compatibility::ManagedInstances);
    }
    out
}

/// Whether a definition that does not require FARGATE could still run there: awsvpc,
/// a task size Fargate offers, and none of the features Fargate lacks.
fn fits_fargate(req: &RegisterTaskDefinitionRequest) -> bool {
    if req.network_mode != Some(NetworkMode::Awsvpc) {
        return false;
    }
    let cpu = req.cpu.as_deref().and_then(parse_task_cpu);
    let memory = req.memory.as_deref().and_then(parse_task_memory);
    let (Some(cpu), Some(memory)) = (cpu, memory) else {
        return false;
    };
    if !is_fargate_size(cpu, memory) {
        return false;
    }
    let constrained = req
        .placement_constraints
        .as_ref()
        .is_some_and(|c| !c.is_empty());
    let host_namespaces = req.ipc_mode.is_some() || req.pid_mode == Some(PidMode::Host);
    let host_volumes = req.volumes.iter().flatten().any(|volume| {
        volume.docker_volume_configuration.is_some()
            || volume
                .host
                .as_ref()
                .is_some_and(|host| host.source_path.is_some())
    });
    if constrained || host_namespaces || host_volumes {
        return false;
    }
    req.container_definitions.iter().all(container_fits_fargate)
}

fn container_fits_fargate(container: &ContainerDefinition) -> bool {
    let privileged = container.privileged == Some(true);
    let linux = container.linux_parameters.as_ref();
    let host_linux = linux.is_some_and(|linux| {
        linux.devices.as_ref().is_some_and(|d| !d.is_empty())
            || linux.shared_memory_size.is_some()
            || linux.max_swap.is_some()
            || linux.swappiness.is_some()
    });
    let security_options = container
        .docker_security_options
        .as_ref()
        .is_some_and(|o| !o.is_empty());
    let log_driver_ok = container.log_configuration.as_ref().is_none_or(|log| {
        matches!(
            log.log_driver,
            LogDriver::Awslogs | LogDriver::Splunk | LogDriver::Awsfirelens
        )
    });
    !privileged && !host_linux && !security_options && log_driver_ok
}

/// The container instance attributes a task of this definition needs, as ECS derives
/// them (`requiresAttributes`). berth derives this subset:
///
/// | feature used | attribute |
/// | --- | --- |
/// | logConfiguration, dockerLabels, ulimits | `com.amazonaws.ecs.capability.docker-remote-api.1.18` |
/// | logConfiguration.options | `com.amazonaws.ecs.capability.docker-remote-api.1.19` |
/// | memoryReservation | `com.amazonaws.ecs.capability.docker-remote-api.1.21` |
/// | healthCheck | `com.amazonaws.ecs.capability.docker-remote-api.1.24`, `ecs.capability.container-health-check` |
/// | linuxParameters.initProcessEnabled | `com.amazonaws.ecs.capability.docker-remote-api.1.25` |
/// | log driver X | `com.amazonaws.ecs.capability.logging-driver.X` |
/// | taskRoleArn | `com.amazonaws.ecs.capability.task-iam-role` |
/// | executionRoleArn and awslogs | `ecs.capability.execution-role-awslogs` |
/// | ECR image | `com.amazonaws.ecs.capability.ecr-auth`, and with executionRoleArn `ecs.capability.execution-role-ecr-pull` |
/// | privileged | `com.amazonaws.ecs.capability.privileged-container` |
/// | awsvpc | `ecs.capability.task-eni` |
/// | dependsOn | `ecs.capability.container-ordering` |
/// | secrets from SSM / Secrets Manager | `ecs.capability.secrets.ssm.environment-variables` / `ecs.capability.secrets.asm.environment-variables` |
/// | logConfiguration.secretOptions | `ecs.capability.secrets.ssm.bootstrap.log-driver` / `ecs.capability.secrets.asm.bootstrap.log-driver` |
/// | repositoryCredentials | `ecs.capability.private-registry-authentication.secretsmanager` |
/// | firelensConfiguration | `ecs.capability.firelens.fluentbit` / `.fluentd`, and `ecs.capability.firelens.options.config.file` / `.s3` for config-file-type |
/// | environmentFiles | `ecs.capability.env-files.s3` |
/// | EFS volume | `ecs.capability.efs`, and with IAM or an access point `ecs.capability.efsAuth` |
/// | Docker volume with driver D | `ecs.capability.docker-plugin.D` |
/// | proxyConfiguration | `ecs.capability.aws-appmesh` |
/// | containerPortRange | `ecs.capability.container-port-range` |
///
/// berth's agent must advertise what it supports of these for placement to match.
pub fn requires_attributes(req: &RegisterTaskDefinitionRequest) -> Vec<Attribute> {
    const DOCKER_API: &str = "com.amazonaws.ecs.capability.docker-remote-api.";
    let mut names = BTreeSet::new();
    let mut add = |name: String| {
        names.insert(name);
    };
    let has_execution_role = req
        .execution_role_arn
        .as_deref()
        .is_some_and(|r| !r.is_empty());
    if req.task_role_arn.as_deref().is_some_and(|r| !r.is_empty()) {
        add("com.amazonaws.ecs.capability.task-iam-role".into());
    }
    if req.network_mode == Some(NetworkMode::Awsvpc) {
        add("ecs.capability.task-eni".into());
    }
    if req.proxy_configuration.is_some() {
        add("ecs.capability.aws-appmesh".into());
    }
    for volume in req.volumes.iter().flatten() {
        if let Some(efs) = &volume.efs_volume_configuration {
            add("ecs.capability.efs".into());
            let auth = efs.authorization_config.as_ref();
            if auth.is_some_and(|a| a.access_point_id.is_some() || a.iam.is_some()) {
                add("ecs.capability.efsAuth".into());
            }
        }
        if let Some(driver) = volume
            .docker_volume_configuration
            .as_ref()
            .and_then(|d| d.driver.as_deref())
        {
            add(format!("ecs.capability.docker-plugin.{driver}"));
        }
    }
    for container in &req.container_definitions {
        if let Some(log) = &container.log_configuration {
            add(format!("{DOCKER_API}1.18"));
            add(format!(
                "com.amazonaws.ecs.capability.logging-driver.{}",
                log.log_driver
            ));
            if log.options.is_some() {
                add(format!("{DOCKER_API}1.19"));
            }
            if log.log_driver == LogDriver::Awslogs && has_execution_role {
                add("ecs.capability.execution-role-awslogs".into());
            }
            for secret in log.secret_options.iter().flatten() {
                add(format!(
                    "ecs.capability.secrets.{}.bootstrap.log-driver",
                    secret_store(&secret.value_from)
                ));
            }
        }
        if container.docker_labels.is_some() || container.ulimits.is_some() {
            add(format!("{DOCKER_API}1.18"));
        }
        if container.memory_reservation.is_some() {
            add(format!("{DOCKER_API}1.21"));
        }
        if container.health_check.is_some() {
            add(format!("{DOCKER_API}1.24"));
            add("ecs.capability.container-health-check".into());
        }
        let linux = container.linux_parameters.as_ref();
        if linux.and_then(|l| l.init_process_enabled).is_some() {
            add(format!("{DOCKER_API}1.25"));
        }
        if container.image.as_deref().is_some_and(is_ecr_image) {
            add("com.amazonaws.ecs.capability.ecr-auth".into());
            if has_execution_role {
                add("ecs.capability.execution-role-ecr-pull".into());
            }
        }
        if container.privileged == Some(true) {
            add("com.amazonaws.ecs.capability.privileged-container".into());
        }
        if container.depends_on.as_ref().is_some_and(|d| !d.is_empty()) {
            add("ecs.capability.container-ordering".into());
        }
        for secret in container.secrets.iter().flatten() {
            add(format!(
                "ecs.capability.secrets.{}.environment-variables",
                secret_store(&secret.value_from)
            ));
        }
        if container.repository_credentials.is_some() {
            add("ecs.capability.private-registry-authentication.secretsmanager".into());
        }
        if let Some(firelens) = &container.firelens_configuration {
            add(match firelens.router_type {
                FirelensConfigurationType::Fluentbit => "ecs.capability.firelens.fluentbit".into(),
                FirelensConfigurationType::Fluentd => "ecs.capability.firelens.fluentd".into(),
            });
            match firelens
                .options
                .as_ref()
                .and_then(|o| o.get("config-file-type"))
                .map(String::as_str)
            {
                Some("file") => add("ecs.capability.firelens.options.config.file".into()),
                Some("s3") => add("ecs.capability.firelens.options.config.s3".into()),
                _ => {}
            }
        }
        if container
            .environment_files
            .as_ref()
            .is_some_and(|f| !f.is_empty())
        {
            add("ecs.capability.env-files.s3".into());
        }
        let port_range = container
            .port_mappings
            .iter()
            .flatten()
            .any(|mapping| mapping.container_port_range.is_some());
        if port_range {
            add("ecs.capability.container-port-range".into());
        }
    }
    names.into_iter().map(Attribute::named).collect()
}

/// Which store a secret comes from: Secrets Manager ARNs are `asm`, everything else
/// (parameter names and ARNs) is `ssm`.
fn secret_store(value_from: &str) -> &'static str {
    if value_from.starts_with("arn:") && value_from.contains(":secretsmanager:") {
        "asm"
    } else {
        "ssm"
    }
}

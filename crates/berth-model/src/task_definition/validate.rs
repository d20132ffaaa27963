//! The checks RegisterTaskDefinition makes before it stores a revision.
//!
//! berth must take every task definition ECS takes, so a rule is here only when ECS
//! documents it or is known to enforce it at registration; where that is uncertain
//! the definition is accepted and a comment says so. Messages follow ECS's where
//! they are known (most register-time errors are `ClientException`s), and otherwise
//! name the container and the member at fault.

use std::collections::{HashMap, HashSet};

use super::container::{
    ContainerCondition, ContainerDefinition, HealthCheck, LinuxParameters, LogDriver, PortMapping,
    ResourceType, TransportProtocol,
};
use super::reference::is_valid_family;
use super::shapes::{
    Compatibility, IsolationMode, NetworkMode, RegisterTaskDefinitionRequest,
    TaskDefinitionPlacementConstraintType,
};
use super::size::{
    TASK_CPU_MAX, TASK_CPU_MIN, TaskSize, is_fargate_size, parse_task_cpu, parse_task_memory,
};
use super::volume::{EfsAuthorizationConfigIam, EfsTransitEncryption, Volume};
use crate::error::{ApiError, ApiResult};

/// The most containers a task definition may have.
pub const MAX_CONTAINERS: usize = 10;
/// The largest task definition ECS stores, in bytes of JSON.
pub const MAX_TASK_DEFINITION_BYTES: usize = 65_536;
/// The most placement constraints a task definition may carry.
pub const MAX_PLACEMENT_CONSTRAINTS: usize = 10;
/// The least memory (MiB) ECS lets a container ask for. Docker 20.10 and later
/// refuse less than 6 MiB when the container is created; ECS's registration limit
/// is the older Docker minimum, so a 4-5 MiB container registers and then fails to
/// start, as on ECS.
pub const MIN_CONTAINER_MEMORY_MIB: i32 = 4;
/// The most port ranges one container may map.
pub const MAX_PORT_RANGES: usize = 100;
/// The most environment files one container may load.
pub const MAX_ENVIRONMENT_FILES: usize = 10;
/// Ephemeral storage bounds, GiB.
pub const EPHEMERAL_STORAGE_GIB: (i32, i32) = (21, 200);

/// Validates a RegisterTaskDefinition request as ECS does, measuring its size by
/// encoding it (see [`validate_registration_sent`] for a request read from a body).
pub fn validate_registration(req: &RegisterTaskDefinitionRequest) -> ApiResult<()> {
    validate(req, None)
}

/// Validates a RegisterTaskDefinition request decoded from a request body of
/// `sent_bytes` bytes: a body within the size limit needs no measuring.
pub fn validate_registration_sent(
    req: &RegisterTaskDefinitionRequest,
    sent_bytes: usize,
) -> ApiResult<()> {
    validate(req, Some(sent_bytes))
}

fn validate(req: &RegisterTaskDefinitionRequest, sent_bytes: Option<usize>) -> ApiResult<()> {
    check_family(&req.family)?;
    check_length(req, sent_bytes)?;
    let containers = &req.container_definitions;
    if containers.is_empty() {
        return Err(ApiError::client("Container list cannot be empty."));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(ApiError::client(format!(
            "Too many containers. A task definition can have at most {MAX_CONTAINERS} containers; this one has {}.",
            containers.len()
        )));
    }
    let context = Context {
        network_mode: req.network_mode.unwrap_or(NetworkMode::Bridge),
        names: check_container_names(containers)?,
        volumes: check_volumes(req.volumes.as_deref().unwrap_or_default())?,
        size: check_task_size(req)?,
    };
    for container in containers {
        check_container(container, &context)?;
    }
    if !containers.iter().any(ContainerDefinition::is_essential) {
        return Err(ApiError::client(
            "Task definition doesn't have any essential container.",
        ));
    }
    check_dependencies(containers)?;
    check_cycles(containers)?;
    check_host_ports(containers)?;
    let windows = req
        .runtime_platform
        .as_ref()
        .and_then(|platform| platform.operating_system_family)
        .is_some_and(|family| family.is_windows());
    // ECS ignores task-level CPU and memory for Windows containers.
    if !windows {
        check_resource_sums(containers, &context.size)?;
    }
    if requires(req, Compatibility::Fargate) {
        check_fargate(req, &context)?;
    }
    check_placement_constraints(req)?;
    if let Some(tags) = &req.tags {
        crate::tagging::validate_new_tags(tags)?;
    }
    if let Some(storage) = &req.ephemeral_storage {
        let (min, max) = EPHEMERAL_STORAGE_GIB;
        if !(min..=max).contains(&storage.size_in_gib) {
            return Err(ApiError::client(format!(
                "Invalid 'ephemeralStorage.sizeInGiB' setting: {} GiB. The ephemeral storage size must be between {min} and {max} GiB.",
                storage.size_in_gib
            )));
        }
    }
    if let Some(trusted) = &req.trusted_execution_configuration {
        let has_policy = trusted
            .attestation_policy
            .as_deref()
            .is_some_and(|p| !p.is_empty());
        if trusted.isolation_mode == IsolationMode::ConfidentialSandbox && !has_policy {
            return Err(ApiError::client(
                "Invalid 'trustedExecutionConfiguration' setting: 'attestationPolicy' is required when 'isolationMode' is CONFIDENTIAL_SANDBOX.",
            ));
        }
    }
    Ok(())
}

/// What the per-container checks need to know about the whole definition.
struct Context<'a> {
    network_mode: NetworkMode,
    names: HashSet<&'a str>,
    volumes: HashSet<&'a str>,
    size: TaskSize,
}

fn requires(req: &RegisterTaskDefinitionRequest, compatibility: Compatibility) -> bool {
    req.requires_compatibilities
        .as_deref()
        .unwrap_or_default()
        .contains(&compatibility)
}

fn container_error(name: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::client(format!("Invalid setting for container '{name}'. {detail}"))
}

fn check_family(family: &str) -> ApiResult<()> {
    if family.is_empty() {
        return Err(ApiError::client("Family should not be null or empty."));
    }
    if family.len() > 255 {
        return Err(ApiError::client("Family is longer than 255 characters."));
    }
    if !is_valid_family(family) {
        return Err(ApiError::client(format!(
            "Family contains invalid characters: '{family}'. Up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
        )));
    }
    Ok(())
}

/// ECS measures the definition it stores; berth measures the request: as the client
/// sent it (the body), and a body over the limit again as compact JSON, so that
/// whitespace, escapes and unknown members do not count against the limit. A request
/// is refused when both are over it. Encoding a request costs about as much as
/// decoding it, which is why only bodies over the limit are encoded. Without the body
/// ([`validate_registration`]) the request is encoded.
fn check_length(req: &RegisterTaskDefinitionRequest, sent_bytes: Option<usize>) -> ApiResult<()> {
    if sent_bytes.is_some_and(|sent| sent <= MAX_TASK_DEFINITION_BYTES) {
        return Ok(());
    }
    let length = serde_json::to_vec(req)
        .map_err(|err| ApiError::server(format!("Cannot measure the task definition: {err}")))?
        .len();
    if length > MAX_TASK_DEFINITION_BYTES {
        return Err(ApiError::client(format!(
            "Actual length: '{length}'. Max allowed length is '{MAX_TASK_DEFINITION_BYTES}' bytes."
        )));
    }
    Ok(())
}

/// Container names: present, 1-255 letters, digits, hyphens and underscores, unique.
fn check_container_names(containers: &[ContainerDefinition]) -> ApiResult<HashSet<&str>> {
    let mut names = HashSet::new();
    for container in containers {
        let name = container.name_or_empty();
        if name.is_empty() {
            return Err(ApiError::client(
                "Container.name should not be null or empty.",
            ));
        }
        if name.len() > 255 {
            return Err(ApiError::client(format!(
                "Container.name is longer than 255 characters: '{name}'."
            )));
        }
        if !is_valid_family(name) {
            return Err(ApiError::client(format!(
                "Container.name contains invalid characters: '{name}'. Up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
            )));
        }
        if !names.insert(name) {
            return Err(ApiError::client(format!(
                "Container names must be unique within a Task Definition. Duplicate: '{name}'."
            )));
        }
    }
    Ok(names)
}

/// Volume names are unique; each volume has at most one source; EFS options agree.
fn check_volumes(volumes: &[Volume]) -> ApiResult<HashSet<&str>> {
    let mut names = HashSet::new();
    let mut configured_at_launch = 0;
    for volume in volumes {
        let name = volume.name.as_deref().unwrap_or("");
        let at_launch = volume.configured_at_launch == Some(true);
        let kinds = [
            volume.host.is_some(),
            volume.docker_volume_configuration.is_some(),
            volume.efs_volume_configuration.is_some(),
            volume.s3files_volume_configuration.is_some(),
            volume
                .fsx_windows_file_server_volume_configuration
                .is_some(),
            at_launch,
        ];
        if kinds.iter().filter(|given| **given).count() > 1 {
            return Err(ApiError::client(format!(
                "Invalid setting for volume '{name}'. A volume may specify only one of host, dockerVolumeConfiguration, efsVolumeConfiguration, s3filesVolumeConfiguration, fsxWindowsFileServerVolumeConfiguration and configuredAtLaunch."
            )));
        }
        let needs_name = at_launch
            || volume.efs_volume_configuration.is_some()
            || volume.s3files_volume_configuration.is_some();
        if name.is_empty() {
            // A host or Docker volume without a name cannot be mounted, but ECS
            // only documents the name as required for these kinds.
            if needs_name {
                return Err(ApiError::client("Volume.name should not be null or empty."));
            }
            continue;
        }
        if !is_valid_family(name) {
            return Err(ApiError::client(format!(
                "Volume.name contains invalid characters: '{name}'. Up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed."
            )));
        }
        if !names.insert(name) {
            return Err(ApiError::client(format!(
                "Volume names must be unique within a Task Definition. Duplicate: '{name}'."
            )));
        }
        if at_launch {
            configured_at_launch += 1;
        }
        let host_path = volume
            .host
            .as_ref()
            .and_then(|host| host.source_path.as_deref());
        if host_path.is_some_and(|path| path.trim().is_empty()) {
            return Err(ApiError::client(format!(
                "host.sourcePath should not be blank (volume '{name}')."
            )));
        }
        if let Some(efs) = &volume.efs_volume_configuration {
            let encrypted = efs.transit_encryption == Some(EfsTransitEncryption::Enabled);
            let auth = efs.authorization_config.as_ref();
            let iam = auth.and_then(|a| a.iam) == Some(EfsAuthorizationConfigIam::Enabled);
            let access_point = auth.and_then(|a| a.access_point_id.as_deref()).is_some();
            let efs_error = |detail: &str| {
                ApiError::client(format!("Invalid setting for volume '{name}'. {detail}"))
            };
            if iam && !encrypted {
                return Err(efs_error(
                    "Transit encryption must be ENABLED when EFS IAM authorization is used.",
                ));
            }
            if access_point && !encrypted {
                return Err(efs_error(
                    "Transit encryption must be ENABLED when an EFS access point is used.",
                ));
            }
            let root = efs.root_directory.as_deref().unwrap_or("/");
            if access_point && root != "/" {
                return Err(efs_error(
                    "The root directory must be omitted or '/' when an EFS access point is used.",
                ));
            }
        }
    }
    if configured_at_launch > 1 {
        return Err(ApiError::client(
            "Only one volume can be configured at launch (configuredAtLaunch) in a task definition.",
        ));
    }
    Ok(names)
}

/// Task `cpu` and `memory`: integers or unit strings, within ECS's range.
fn check_task_size(req: &RegisterTaskDefinitionRequest) -> ApiResult<TaskSize> {
    let mut size = TaskSize::default();
    if let Some(text) = &req.cpu {
        let cpu = parse_task_cpu(text).ok_or_else(|| {
            ApiError::client(format!(
                "Invalid 'cpu' setting for task: '{text}'. Use CPU units (1024) or vCPUs (1 vCPU)."
            ))
        })?;
        if !(TASK_CPU_MIN..=TASK_CPU_MAX).contains(&cpu) {
            return Err(ApiError::client(format!(
                "Invalid 'cpu' setting for task: '{text}'. Supported values are between {TASK_CPU_MIN} CPU units (0.125 vCPUs) and {TASK_CPU_MAX} CPU units (192 vCPUs)."
            )));
        }
        size.cpu = Some(cpu);
    }
    if let Some(text) = &req.memory {
        let memory = parse_task_memory(text)
            .filter(|memory| *memory > 0)
            .ok_or_else(|| {
                ApiError::client(format!(
                    "Invalid 'memory' setting for task: '{text}'. Use MiB (2048) or GB (2 GB)."
                ))
            })?;
        size.memory = Some(memory);
    }
    Ok(size)
}

fn check_container(container: &ContainerDefinition, context: &Context<'_>) -> ApiResult<()> {
    let name = container.name_or_empty();
    if container.image.as_deref().unwrap_or("").trim().is_empty() {
        return Err(container_error(
            name,
            "Container.image should not be null or empty.",
        ));
    }
    check_container_memory(container, context.size)?;
    if let Some(links) = &container.links {
        check_links(name, links, context)?;
    }
    if let Some(mappings) = &container.port_mappings {
        check_port_mappings(name, mappings, context.network_mode)?;
    }
    for volume in container.volumes_from.as_deref().unwrap_or_default() {
        let source = volume.source_container.as_deref().unwrap_or("");
        if source.is_empty() {
            return Err(container_error(
                name,
                "volumesFrom.sourceContainer should not be empty.",
            ));
        }
        if source == name {
            return Err(container_error(
                name,
                "A container cannot mount volumes from itself.",
            ));
        }
        // A source container that is not in the task definition is accepted: ECS
        // registers such definitions (aws-samples/ecs-demo-php-simple-app names one)
        // and the task fails when it starts.
    }
    for mount in container.mount_points.as_deref().unwrap_or_default() {
        let source = mount.source_volume.as_deref().unwrap_or("");
        if source.is_empty() {
            return Err(container_error(
                name,
                "mountPoints.sourceVolume should not be empty.",
            ));
        }
        if !context.volumes.contains(source) {
            return Err(ApiError::client(format!(
                "Unknown volume '{source}' (mount point of container '{name}')."
            )));
        }
        if mount.container_path.as_deref().unwrap_or("").is_empty() {
            return Err(container_error(
                name,
                format!("mountPoints.containerPath should not be empty (volume '{source}')."),
            ));
        }
    }
    if let Some(health) = &container.health_check {
        check_health_check(name, health)?;
    }
    for variable in container.environment.as_deref().unwrap_or_default() {
        if variable.name.as_deref().unwrap_or("").is_empty() {
            return Err(container_error(
                name,
                "Environment variable name should not be null or empty.",
            ));
        }
    }
    for secret in container.secrets.as_deref().unwrap_or_default() {
        if secret.name.is_empty() || secret.value_from.is_empty() {
            return Err(container_error(
                name,
                "A secret needs a non-empty 'name' and 'valueFrom'.",
            ));
        }
    }
    let environment_files = container.environment_files.as_deref().unwrap_or_default();
    if environment_files.len() > MAX_ENVIRONMENT_FILES {
        return Err(container_error(
            name,
            format!("At most {MAX_ENVIRONMENT_FILES} environmentFiles are allowed."),
        ));
    }
    if container
        .credential_specs
        .as_ref()
        .is_some_and(|specs| specs.len() > 1)
    {
        return Err(container_error(
            name,
            "At most 1 credentialSpecs entry is allowed.",
        ));
    }
    if let Some(linux) = &container.linux_parameters {
        check_linux_parameters(name, linux)?;
    }
    if let Some(policy) = &container.restart_policy {
        if policy
            .ignored_exit_codes
            .as_ref()
            .is_some_and(|codes| codes.len() > 50)
        {
            return Err(container_error(
                name,
                "restartPolicy.ignoredExitCodes can list at most 50 exit codes.",
            ));
        }
        if policy
            .restart_attempt_period
            .is_some_and(|period| !(60..=1800).contains(&period))
        {
            return Err(container_error(
                name,
                "restartPolicy.restartAttemptPeriod must be between 60 and 1800 seconds.",
            ));
        }
    }
    for requirement in container
        .resource_requirements
        .as_deref()
        .unwrap_or_default()
    {
        let has_value = requirement.value.as_deref().is_some_and(|v| !v.is_empty());
        let sharing = requirement.sharing_strategy.is_some();
        if sharing && requirement.resource_type != ResourceType::Gpu {
            return Err(container_error(
                name,
                "resourceRequirements.sharingStrategy can be given only for type GPU.",
            ));
        }
        if has_value == sharing {
            return Err(container_error(
                name,
                format!(
                    "resourceRequirements of type {} need a 'value'{}.",
                    requirement.resource_type,
                    if requirement.resource_type == ResourceType::Gpu {
                        " or a 'sharingStrategy', not both"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Container `cpu`, `memory` and `memoryReservation` on their own and against the
/// task's memory.
fn check_container_memory(container: &ContainerDefinition, size: TaskSize) -> ApiResult<()> {
    let name = container.name_or_empty();
    if container.cpu.is_some_and(|cpu| cpu < 0) {
        return Err(ApiError::client(format!(
            "Invalid 'cpu' setting for container '{name}'. The value must not be negative."
        )));
    }
    if container
        .memory
        .is_some_and(|memory| memory < MIN_CONTAINER_MEMORY_MIB)
    {
        return Err(ApiError::client(format!(
            "Invalid 'memory' setting for container '{name}'. The minimum is {MIN_CONTAINER_MEMORY_MIB} MiB."
        )));
    }
    if container
        .memory_reservation
        .is_some_and(|reservation| reservation < MIN_CONTAINER_MEMORY_MIB)
    {
        return Err(ApiError::client(format!(
            "Invalid 'memoryReservation' setting for container '{name}'. The minimum is {MIN_CONTAINER_MEMORY_MIB} MiB."
        )));
    }
    if let (Some(memory), Some(reservation)) = (container.memory, container.memory_reservation)
        && reservation > memory
    {
        return Err(ApiError::client(format!(
            "Invalid 'memory' setting for container '{name}'. 'memory' ({memory}) must be greater than or equal to 'memoryReservation' ({reservation})."
        )));
    }
    if size.memory.is_none() && container.memory.is_none() && container.memory_reservation.is_none()
    {
        return Err(container_error(
            name,
            "At least one of 'memory' or 'memoryReservation' must be specified.",
        ));
    }
    Ok(())
}

/// `links` exist only in bridge mode and name other containers of the task, as
/// `name` or `name:alias`.
fn check_links(name: &str, links: &[String], context: &Context<'_>) -> ApiResult<()> {
    if links.is_empty() {
        return Ok(());
    }
    if context.network_mode != NetworkMode::Bridge {
        return Err(ApiError::client(format!(
            "Links are not supported when networkMode={}.",
            context.network_mode
        )));
    }
    for link in links {
        let (target, alias) = match link.split_once(':') {
            Some((target, alias)) => (target, Some(alias)),
            None => (link.as_str(), None),
        };
        if !is_valid_family(target) || alias.is_some_and(|alias| !is_valid_family(alias)) {
            return Err(container_error(
                name,
                format!(
                    "Invalid link '{link}': use 'name' or 'name:alias' of letters, numbers, underscores and hyphens."
                ),
            ));
        }
        if target == name {
            return Err(container_error(name, "A container cannot link to itself."));
        }
        if !context.names.contains(target) {
            return Err(container_error(
                name,
                format!("Linked container '{target}' does not exist in the task definition."),
            ));
        }
    }
    Ok(())
}

/// Port mappings of one container.
fn check_port_mappings(
    name: &str,
    mappings: &[PortMapping],
    network_mode: NetworkMode,
) -> ApiResult<()> {
    if mappings.is_empty() {
        return Ok(());
    }
    if network_mode == NetworkMode::None {
        return Err(container_error(
            name,
            "Port mappings are not supported when networkMode=none.",
        ));
    }
    // (first, last, protocol) of every mapping, to find overlapping ranges.
    let mut spans: Vec<(i32, i32, TransportProtocol)> = Vec::new();
    let mut ranges = 0;
    for mapping in mappings {
        let protocol = mapping.protocol_or_default();
        match (
            mapping.container_port,
            mapping.container_port_range.as_deref(),
        ) {
            (Some(_), Some(_)) => {
                return Err(ApiError::client(format!(
                    "Invalid 'containerPortRange' setting for container '{name}'. Specify 'containerPort' or 'containerPortRange', not both."
                )));
            }
            (None, None) => {
                return Err(ApiError::client(format!(
                    "Invalid 'containerPort' setting for container '{name}'. A port mapping needs a 'containerPort' or a 'containerPortRange'."
                )));
            }
            (Some(port), None) => {
                if !(1..=65535).contains(&port) {
                    return Err(ApiError::client(format!(
                        "Invalid 'containerPort' setting for container '{name}'. {port} is not between 1 and 65535."
                    )));
                }
                if let Some(host_port) = mapping.host_port {
                    if !(0..=65535).contains(&host_port) {
                        return Err(ApiError::client(format!(
                            "Invalid 'hostPort' setting for container '{name}'. {host_port} is not between 0 and 65535."
                        )));
                    }
                    // 0 means "not given" (ECS fills in the container port).
                    let static_modes =
                        matches!(network_mode, NetworkMode::Awsvpc | NetworkMode::Host);
                    if static_modes && host_port != 0 && host_port != port {
                        return Err(ApiError::client(format!(
                            "When networkMode={network_mode}, the host ports and container ports in port mappings must match (container '{name}', containerPort {port}, hostPort {host_port})."
                        )));
                    }
                }
                if spans
                    .iter()
                    .any(|(first, last, p)| *first == port && *last == port && *p == protocol)
                {
                    return Err(ApiError::invalid_parameter(format!(
                        "Container port {port} is used in more than one port mapping for container {name}"
                    )));
                }
                spans.push((port, port, protocol));
            }
            (None, Some(range)) => {
                let invalid = |detail: &str| {
                    ApiError::client(format!(
                        "Invalid 'containerPortRange' setting for container '{name}'. {detail}"
                    ))
                };
                if !matches!(network_mode, NetworkMode::Bridge | NetworkMode::Awsvpc) {
                    return Err(invalid(
                        "Port ranges are supported only in bridge and awsvpc network modes.",
                    ));
                }
                if mapping.host_port.is_some() {
                    return Err(invalid(
                        "Leave 'hostPort' empty when giving a 'containerPortRange'.",
                    ));
                }
                let (first, last) = parse_port_range(range).ok_or_else(|| {
                    invalid(&format!(
                        "'{range}' is not 'first-last' with 1 <= first < last <= 65535."
                    ))
                })?;
                ranges += 1;
                if ranges > MAX_PORT_RANGES {
                    return Err(invalid(&format!(
                        "A container can map at most {MAX_PORT_RANGES} port ranges."
                    )));
                }
                spans.push((first, last, protocol));
            }
        }
    }
    for (i, (first, last, protocol)) in spans.iter().enumerate() {
        for (other_first, other_last, other_protocol) in &spans[i + 1..] {
            let overlap = first <= other_last && other_first <= last;
            if overlap && protocol == other_protocol {
                return Err(ApiError::client(format!(
                    "Invalid 'containerPortRange' setting for container '{name}'. Ports {first}-{last} and {other_first}-{other_last} ({protocol}) overlap."
                )));
            }
        }
    }
    Ok(())
}

fn parse_port_range(range: &str) -> Option<(i32, i32)> {
    let (first, last) = range.split_once('-')?;
    let first: i32 = first.trim().parse().ok()?;
    let last: i32 = last.trim().parse().ok()?;
    (1 <= first && first < last && last <= 65535).then_some((first, last))
}

fn check_health_check(name: &str, health: &HealthCheck) -> ApiResult<()> {
    let invalid = |detail: String| {
        ApiError::client(format!(
            "Invalid 'healthCheck' setting for container '{name}'. {detail}"
        ))
    };
    if health.command.is_empty() || health.command.iter().all(|part| part.trim().is_empty()) {
        return Err(invalid("'command' should not be empty.".to_string()));
    }
    // The ECS model's documentation says 2-60 seconds for the timeout; newer ECS
    // accepts up to 120, and berth takes the wider range.
    let bounds = [
        ("interval", health.interval, 5, 300, " seconds"),
        ("timeout", health.timeout, 2, 120, " seconds"),
        ("retries", health.retries, 1, 10, ""),
        ("startPeriod", health.start_period, 0, 300, " seconds"),
    ];
    for (member, value, min, max, unit) in bounds {
        if let Some(value) = value.filter(|value| !(min..=max).contains(value)) {
            return Err(invalid(format!(
                "'{member}' must be between {min} and {max}{unit}; it is {value}."
            )));
        }
    }
    Ok(())
}

fn check_linux_parameters(name: &str, linux: &LinuxParameters) -> ApiResult<()> {
    let invalid = |detail: &str| {
        ApiError::client(format!(
            "Invalid 'linuxParameters' setting for container '{name}'. {detail}"
        ))
    };
    if linux.swappiness.is_some_and(|s| !(0..=100).contains(&s)) {
        return Err(invalid("'swappiness' must be between 0 and 100."));
    }
    if linux.max_swap.is_some_and(|s| s < 0) {
        return Err(invalid("'maxSwap' must be 0 or a positive integer."));
    }
    if linux.shared_memory_size.is_some_and(|s| s < 0) {
        return Err(invalid("'sharedMemorySize' must not be negative."));
    }
    for tmpfs in linux.tmpfs.as_deref().unwrap_or_default() {
        if tmpfs.container_path.is_empty() {
            return Err(invalid("'tmpfs.containerPath' should not be empty."));
        }
        if tmpfs.size <= 0 {
            return Err(invalid("'tmpfs.size' must be a positive number of MiB."));
        }
    }
    for device in linux.devices.as_deref().unwrap_or_default() {
        if device.host_path.is_empty() {
            return Err(invalid("'devices.hostPath' should not be empty."));
        }
    }
    Ok(())
}

/// `dependsOn` names other containers of the task; a container that others wait
/// to COMPLETE or SUCCEED must not be essential.
fn check_dependencies(containers: &[ContainerDefinition]) -> ApiResult<()> {
    let by_name: HashMap<&str, &ContainerDefinition> =
        containers.iter().map(|c| (c.name_or_empty(), c)).collect();
    for container in containers {
        let name = container.name_or_empty();
        for dependency in container.depends_on.as_deref().unwrap_or_default() {
            let target_name = dependency.container_name.as_str();
            if target_name == name {
                return Err(container_error(
                    name,
                    "A container cannot depend on itself.",
                ));
            }
            let Some(target) = by_name.get(target_name) else {
                return Err(ApiError::client(format!(
                    "Cannot depend on container '{target_name}' because it does not exist (dependsOn of container '{name}')."
                )));
            };
            let completes = matches!(
                dependency.condition,
                ContainerCondition::Complete | ContainerCondition::Success
            );
            if completes && target.is_essential() {
                return Err(ApiError::client(format!(
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container: container '{name}' waits for essential container '{target_name}' to {}.",
                    dependency.condition
                )));
            }
            // HEALTHY on a container without a health check is accepted: ECS does
            // not check it at registration.
        }
    }
    Ok(())
}

/// A container cannot (transitively) wait for itself through links, volumesFrom or
/// dependsOn: such a task could never start.
fn check_cycles(containers: &[ContainerDefinition]) -> ApiResult<()> {
    let index: HashMap<&str, usize> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name_or_empty(), i))
        .collect();
    let edges = |with_all: bool| -> Vec<Vec<usize>> {
        containers
            .iter()
            .map(|container| {
                let links = container.links.iter().flatten().map(|link| {
                    link.split_once(':')
                        .map_or(link.as_str(), |(target, _)| target)
                });
                let volumes = container
                    .volumes_from
                    .iter()
                    .flatten()
                    .filter_map(|v| v.source_container.as_deref());
                let depends = container
                    .depends_on
                    .iter()
                    .flatten()
                    .map(|d| d.container_name.as_str());
                let targets: Vec<&str> = if with_all {
                    links.chain(volumes).chain(depends).collect()
                } else {
                    links.collect()
                };
                targets
                    .into_iter()
                    .filter_map(|t| index.get(t).copied())
                    .collect()
            })
            .collect()
    };
    if find_cycle(&edges(false)).is_some() {
        return Err(ApiError::client("Container links should not have a cycle."));
    }
    if let Some(cycle) = find_cycle(&edges(true)) {
        let path: Vec<&str> = cycle
            .iter()
            .map(|i| containers[*i].name_or_empty())
            .collect();
        return Err(ApiError::client(format!(
            "Container dependencies (links, volumesFrom, dependsOn) should not have a cycle: {}.",
            path.join(" -> ")
        )));
    }
    Ok(())
}

/// A cycle of the directed graph, as the nodes along it with the first repeated at
/// the end; `None` if the graph is acyclic.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    for start in 0..edges.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            if let Some(&target) = edges[node].get(*next) {
                *next += 1;
                match marks[target] {
                    Mark::New => {
                        marks[target] = Mark::OnPath;
                        path.push((target, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut cycle: Vec<usize> = path[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(target);
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}

/// No two mappings of the task reserve the same static host port and protocol.
fn check_host_ports(containers: &[ContainerDefinition]) -> ApiResult<()> {
    let mut used: HashMap<(i32, TransportProtocol), &str> = HashMap::new();
    for container in containers {
        let name = container.name_or_empty();
        for mapping in container.port_mappings.as_deref().unwrap_or_default() {
            let Some(host_port) = mapping.host_port.filter(|port| *port != 0) else {
                continue;
            };
            let key = (host_port, mapping.protocol_or_default());
            if let Some(other) = used.insert(key, name) {
                return Err(ApiError::client(format!(
                    "Invalid 'hostPort' setting for container '{name}'. Host port {host_port}/{} is already used by container '{other}'.",
                    key.1
                )));
            }
        }
    }
    Ok(())
}

/// Container CPU and memory within the task's.
fn check_resource_sums(containers: &[ContainerDefinition], size: &TaskSize) -> ApiResult<()> {
    if let Some(task_memory) = size.memory.map(i64::from) {
        for container in containers {
            if let Some(memory) = container.memory.filter(|m| i64::from(*m) > task_memory) {
                return Err(ApiError::client(format!(
                    "Invalid 'memory' setting for container '{}'. The container 'memory' ({memory} MiB) cannot be greater than the task 'memory' ({task_memory} MiB).",
                    container.name_or_empty()
                )));
            }
        }
        let reserved: i64 = containers
            .iter()
            .map(|c| i64::from(c.memory_reservation.or(c.memory).unwrap_or(0)))
            .sum();
        if reserved > task_memory {
            return Err(ApiError::client(format!(
                "The sum of all container 'memoryReservation' values cannot be greater than the value of the task 'memory' ({reserved} MiB > {task_memory} MiB)."
            )));
        }
    }
    if let Some(task_cpu) = size.cpu.map(i64::from) {
        let total: i64 = containers
            .iter()
            .map(|c| i64::from(c.cpu.unwrap_or(0)))
            .sum();
        if total > task_cpu {
            return Err(ApiError::client(format!(
                "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu' ({total} > {task_cpu})."
            )));
        }
    }
    Ok(())
}

/// What a definition that requires FARGATE must have.
///
/// Fargate also refuses features it lacks (privileged containers, devices, Docker
/// volumes, host paths, placement constraints, IPC mode...). ECS's messages for
/// those are not known, so berth accepts them here and leaves FARGATE out of
/// `compatibilities` only when FARGATE was not required.
fn check_fargate(req: &RegisterTaskDefinitionRequest, context: &Context<'_>) -> ApiResult<()> {
    if context.network_mode != NetworkMode::Awsvpc {
        return Err(ApiError::client(
            "Fargate only supports network mode \u{2018}awsvpc\u{2019}.",
        ));
    }
    let Some(cpu) = context.size.cpu else {
        return Err(ApiError::client(
            "Fargate requires that 'cpu' be defined at the task level.",
        ));
    };
    let Some(memory) = context.size.memory else {
        return Err(ApiError::client(
            "Fargate requires that 'memory' be defined at the task level.",
        ));
    };
    if !is_fargate_size(cpu, memory) {
        return Err(ApiError::client(format!(
            "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the supported task CPU and memory combinations for Fargate."
        )));
    }
    let has_execution_role = req
        .execution_role_arn
        .as_deref()
        .is_some_and(|r| !r.is_empty());
    if !has_execution_role {
        let awslogs = req.container_definitions.iter().any(|c| {
            c.log_configuration
                .as_ref()
                .is_some_and(|l| l.log_driver == LogDriver::Awslogs)
        });
        if awslogs {
            return Err(ApiError::client(
                "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
            ));
        }
        let ecr = req
            .container_definitions
            .iter()
            .any(|c| c.image.as_deref().is_some_and(is_ecr_image));
        if ecr {
            return Err(ApiError::client(
                "Fargate requires task definition to have execution role ARN to support ECR images.",
            ));
        }
    }
    Ok(())
}

/// An image in a private ECR registry: `ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/...`.
pub fn is_ecr_image(image: &str) -> bool {
    let Some((registry, _)) = image.split_once('/') else {
        return false;
    };
    registry.contains(".dkr.ecr.") && registry.contains(".amazonaws.com")
}

fn check_placement_constraints(req: &RegisterTaskDefinitionRequest) -> ApiResult<()> {
    let constraints = req.placement_constraints.as_deref().unwrap_or_default();
    if constraints.len() > MAX_PLACEMENT_CONSTRAINTS {
        return Err(ApiError::client(format!(
            "Too many placement constraints: {}. A task definition can have at most {MAX_PLACEMENT_CONSTRAINTS}.",
            constraints.len()
        )));
    }
    for constraint in constraints {
        match constraint.constraint_type {
            Some(TaskDefinitionPlacementConstraintType::MemberOf) => {
                if constraint
                    .expression
                    .as_deref()
                    .unwrap_or("")
                    .trim()
                    .is_empty()
                {
                    return Err(ApiError::client(
                        "Invalid placement constraint: a memberOf constraint needs an 'expression'.",
                    ));
                }
            }
            None => {
                return Err(ApiError::client(
                    "Invalid placement constraint: 'type' is required (memberOf).",
                ));
            }
        }
    }
    Ok(())
}

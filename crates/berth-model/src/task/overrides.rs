//! Task overrides: what RunTask and StartTask change of a task definition for one
//! task, and [`apply_overrides`], which makes the definition the task runs.

use serde::{Deserialize, Serialize};

use crate::common::KeyValuePair;
use crate::error::{ApiError, ApiResult};
use crate::task_definition::validate::MIN_CONTAINER_MEMORY_MIB;
use crate::task_definition::{
    ContainerDefinition, EnvironmentFile, EphemeralStorage, ResourceRequirement, TaskDefinition,
    parse_task_cpu, parse_task_memory,
};

/// What a task changes of its definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_overrides: Option<Vec<ContainerOverride>>,
    /// CPU units ("1024") or vCPUs ("1 vCPU").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_accelerator_overrides: Option<Vec<InferenceAcceleratorOverride>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    /// MiB ("2048") or GB ("2 GB").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
}

/// What a task changes of one container of its definition, named by `name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<KeyValuePair>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_files: Option<Vec<EnvironmentFile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_requirements: Option<Vec<ResourceRequirement>>,
}

/// A different accelerator type for one of the definition's accelerators, named by
/// `deviceName`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceAcceleratorOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

/// The definition a task runs: `definition` with `overrides` applied.
///
/// Per container override, matched by container name:
/// - `command`, `cpu`, `memory`, `memoryReservation` replace the definition's;
/// - `environment` is merged by variable name, the override's value winning, and
///   variables the definition lacks appended in the override's order;
/// - `environmentFiles` are appended after the definition's (Docker lets a later
///   file win, so the override's files take precedence);
/// - `resourceRequirements` replace the definition's requirement of the same type
///   and add those of other types.
///
/// Task-level `cpu` and `memory` replace the definition's, converted to CPU units and
/// MiB as registration stores them; `taskRoleArn`, `executionRoleArn` and
/// `ephemeralStorage` replace the definition's; an inference accelerator override
/// changes the type of the accelerator with its device name.
///
/// Refused with InvalidParameterException: an override naming no container, or a
/// container or accelerator the definition lacks; a negative container `cpu`; a
/// container `memory` or `memoryReservation` under the registration minimum, or a
/// reservation above the container's hard limit once applied; a task `cpu` or
/// `memory` that is not a positive size.
pub fn apply_overrides(
    definition: &TaskDefinition,
    overrides: Option<&TaskOverride>,
) -> ApiResult<TaskDefinition> {
    let mut out = definition.clone();
    let Some(overrides) = overrides else {
        return Ok(out);
    };
    for container_override in overrides.container_overrides.iter().flatten() {
        let Some(name) = container_override.name.as_deref() else {
            return Err(ApiError::invalid_parameter(
                "Container overrides must name the container they override.",
            ));
        };
        let container = out
            .container_definitions
            .iter_mut()
            .flatten()
            .find(|container| container.name.as_deref() == Some(name))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "Override for container named {name} is not a container in the TaskDefinition."
                ))
            })?;
        apply_container_override(container, container_override)?;
    }
    if let Some(cpu) = &overrides.cpu {
        out.cpu = Some(task_size(cpu, "cpu", parse_task_cpu)?);
    }
    if let Some(memory) = &overrides.memory {
        out.memory = Some(task_size(memory, "memory", parse_task_memory)?);
    }
    if let Some(arn) = &overrides.task_role_arn {
        out.task_role_arn = Some(arn.clone());
    }
    if let Some(arn) = &overrides.execution_role_arn {
        out.execution_role_arn = Some(arn.clone());
    }
    if let Some(storage) = &overrides.ephemeral_storage {
        out.ephemeral_storage = Some(storage.clone());
    }
    for accelerator_override in overrides.inference_accelerator_overrides.iter().flatten() {
        let name = accelerator_override.device_name.as_deref().unwrap_or("");
        let accelerator = out
            .inference_accelerators
            .iter_mut()
            .flatten()
            .find(|accelerator| accelerator.device_name == name)
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "Inference accelerator override for device named {name} is not an inference accelerator in the TaskDefinition."
                ))
            })?;
        if let Some(device_type) = &accelerator_override.device_type {
            accelerator.device_type = device_type.clone();
        }
    }
    Ok(out)
}

fn apply_container_override(
    container: &mut ContainerDefinition,
    over: &ContainerOverride,
) -> ApiResult<()> {
    let name = container.name_or_empty().to_string();
    if let Some(command) = &over.command {
        container.command = Some(command.clone());
    }
    if let Some(environment) = over.environment.as_ref().filter(|e| !e.is_empty()) {
        merge_environment(
            container.environment.get_or_insert_with(Vec::new),
            environment,
        );
    }
    if let Some(files) = over.environment_files.as_ref().filter(|f| !f.is_empty()) {
        container
            .environment_files
            .get_or_insert_with(Vec::new)
            .extend(files.iter().cloned());
    }
    if let Some(cpu) = over.cpu {
        if cpu < 0 {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid 'cpu' override for container '{name}'. The value must not be negative."
            )));
        }
        container.cpu = Some(cpu);
    }
    for (member, value) in [
        ("memory", over.memory),
        ("memoryReservation", over.memory_reservation),
    ] {
        if value.is_some_and(|mib| mib < MIN_CONTAINER_MEMORY_MIB) {
            return Err(ApiError::invalid_parameter(format!(
                "Invalid '{member}' override for container '{name}'. The minimum is {MIN_CONTAINER_MEMORY_MIB} MiB."
            )));
        }
    }
    if let Some(memory) = over.memory {
        container.memory = Some(memory);
    }
    if let Some(reservation) = over.memory_reservation {
        container.memory_reservation = Some(reservation);
    }
    if let (Some(memory), Some(reservation)) = (container.memory, container.memory_reservation)
        && reservation > memory
    {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid 'memory' override for container '{name}'. 'memory' ({memory}) must be greater than or equal to 'memoryReservation' ({reservation})."
        )));
    }
    if let Some(requirements) = over
        .resource_requirements
        .as_ref()
        .filter(|r| !r.is_empty())
    {
        let merged = container.resource_requirements.get_or_insert_with(Vec::new);
        for requirement in requirements {
            merged.retain(|existing| existing.resource_type != requirement.resource_type);
        }
        merged.extend(requirements.iter().cloned());
    }
    Ok(())
}

/// Every variable of `base` named in `overrides` takes the override's value; the
/// others of `overrides` are appended. A name given twice in `overrides` ends with
/// its last value.
fn merge_environment(base: &mut Vec<KeyValuePair>, overrides: &[KeyValuePair]) {
    for pair in overrides {
        let mut found = false;
        for existing in base
            .iter_mut()
            .filter(|existing| existing.name == pair.name)
        {
            existing.value = pair.value.clone();
            found = true;
        }
        if !found {
            base.push(pair.clone());
        }
    }
}

/// A task size override, converted as registration stores it.
fn task_size(text: &str, member: &str, parse: fn(&str) -> Option<u32>) -> ApiResult<String> {
    match parse(text) {
        Some(value) if value > 0 => Ok(value.to_string()),
        _ => Err(ApiError::invalid_parameter(format!(
            "Invalid '{member}' override for the task: '{text}'."
        ))),
    }
}

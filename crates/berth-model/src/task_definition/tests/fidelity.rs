//! Every member of the ECS model survives decoding and encoding unchanged; absent,
//! null and unknown members behave as the wire protocol wants.

use serde_json::{Value, json};

use super::decode;
use crate::error::ErrorCode;
use crate::task_definition::{
    ContainerDefinition, LogDriver, NetworkMode, OsFamily, TaskDefinition, TransportProtocol,
    UlimitName,
};

/// A request that sets every member of RegisterTaskDefinitionRequest and of every
/// shape nested in it (one element per list, two entries per map).
const EVERY_MEMBER_REQUEST: &str = include_str!("every_member_request.json");
/// The same for TaskDefinition, with the members registration adds.
const EVERY_MEMBER_TASK_DEFINITION: &str = include_str!("every_member_task_definition.json");

#[test]
fn every_request_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_REQUEST).unwrap();
    let request = decode(&input).unwrap();
    assert_eq!(serde_json::to_value(&request).unwrap(), input);
}

#[test]
fn every_task_definition_member_round_trips() {
    let input: Value = serde_json::from_str(EVERY_MEMBER_TASK_DEFINITION).unwrap();
    let definition: TaskDefinition = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(serde_json::to_value(&definition).unwrap(), input);
}

#[test]
fn absent_members_are_omitted() {
    let request = decode(&json!({"family": "f", "containerDefinitions": [{}]})).unwrap();
    let encoded = serde_json::to_value(&request).unwrap();
    assert_eq!(
        encoded,
        json!({"family": "f", "containerDefinitions": [{}]})
    );
    let empty = serde_json::to_value(TaskDefinition::default()).unwrap();
    assert_eq!(empty, json!({}));
}

#[test]
fn null_is_absent_and_empty_lists_stay_empty() {
    let request = decode(&json!({
        "family": "f",
        "networkMode": null,
        "volumes": [],
        "containerDefinitions": [{"name": "a", "cpu": null, "portMappings": [], "dockerLabels": {}}]
    }))
    .unwrap();
    assert_eq!(request.network_mode, None);
    assert_eq!(request.volumes, Some(vec![]));
    let container = &request.container_definitions[0];
    assert_eq!(container.cpu, None);
    assert_eq!(container.port_mappings, Some(vec![]));
    let encoded = serde_json::to_value(&request).unwrap();
    assert_eq!(
        encoded,
        json!({
            "family": "f",
            "volumes": [],
            "containerDefinitions": [{"name": "a", "portMappings": [], "dockerLabels": {}}]
        })
    );
}

#[test]
fn unknown_members_are_ignored() {
    let request = decode(&json!({
        "family": "f",
        "status": "ACTIVE",
        "Tags": [{"key": "k", "value": "v"}],
        "containerDefinitions": [{"name": "a", "portBindings": [{"containerPort": 80}]}]
    }))
    .unwrap();
    assert_eq!(request.container_definitions[0].port_mappings, None);
    assert_eq!(request.tags, None);
}

#[test]
fn enums_use_the_exact_wire_values() {
    let request = decode(&json!({
        "family": "f",
        "networkMode": "awsvpc",
        "runtimePlatform": {"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE", "cpuArchitecture": "X86_64"},
        "containerDefinitions": [{
            "portMappings": [{"containerPort": 53, "protocol": "udp"}],
            "ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 2}],
            "logConfiguration": {"logDriver": "json-file"}
        }]
    }))
    .unwrap();
    assert_eq!(request.network_mode, Some(NetworkMode::Awsvpc));
    let platform = request.runtime_platform.as_ref().unwrap();
    assert_eq!(
        platform.operating_system_family,
        Some(OsFamily::WindowsServer2022Core)
    );
    let container: &ContainerDefinition = &request.container_definitions[0];
    let mapping = &container.port_mappings.as_ref().unwrap()[0];
    assert_eq!(mapping.protocol, Some(TransportProtocol::Udp));
    assert_eq!(
        container.ulimits.as_ref().unwrap()[0].name,
        UlimitName::Nofile
    );
    let log = container.log_configuration.as_ref().unwrap();
    assert_eq!(log.log_driver, LogDriver::JsonFile);
    assert_eq!(LogDriver::JsonFile.as_str(), "json-file");
}

#[test]
fn a_wrong_enum_value_names_the_member() {
    let err = decode(&json!({
        "family": "f",
        "containerDefinitions": [{"portMappings": [{"containerPort": 80, "protocol": "TCP"}]}]
    }))
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterException);
    assert!(
        err.message
            .contains("containerDefinitions[0].portMappings[0].protocol"),
        "{}",
        err.message
    );
}

#[test]
fn a_missing_required_member_is_named() {
    let err = decode(&json!({
        "family": "f",
        "containerDefinitions": [{"secrets": [{"name": "A"}]}]
    }))
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterException);
    assert!(err.message.contains("valueFrom"), "{}", err.message);
    let err = decode(&json!({"family": "f"})).unwrap_err();
    assert!(
        err.message.contains("containerDefinitions"),
        "{}",
        err.message
    );
}

#[test]
fn integers_are_ecs_integers() {
    let err =
        decode(&json!({"family": "f", "containerDefinitions": [{"memory": 3_000_000_000_i64}]}))
            .unwrap_err();
    assert!(
        err.message.contains("containerDefinitions[0].memory"),
        "{}",
        err.message
    );
}

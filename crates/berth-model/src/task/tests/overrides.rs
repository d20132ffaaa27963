//! `apply_overrides`: what each override changes, and what it refuses.

use serde_json::{Value, json};

use super::{definition, with_containers};
use crate::common::KeyValuePair;
use crate::error::ErrorCode;
use crate::task::{TaskOverride, apply_overrides};
use crate::task_definition::{ContainerDefinition, ResourceType, TaskDefinition};

fn overrides(value: Value) -> TaskOverride {
    serde_json::from_value(value).unwrap()
}

fn apply(definition: &TaskDefinition, value: Value) -> TaskDefinition {
    apply_overrides(definition, Some(&overrides(value))).unwrap()
}

fn container<'a>(definition: &'a TaskDefinition, name: &str) -> &'a ContainerDefinition {
    definition
        .container_definitions
        .iter()
        .flatten()
        .find(|c| c.name.as_deref() == Some(name))
        .unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Vec<KeyValuePair> {
    pairs
        .iter()
        .map(|(name, value)| KeyValuePair {
            name: Some((*name).into()),
            value: Some((*value).into()),
        })
        .collect()
}

fn two_containers() -> TaskDefinition {
    with_containers(
        json!({}),
        vec![
            json!({
                "name": "web", "image": "nginx", "cpu": 256, "memory": 512,
                "command": ["nginx"],
                "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "environmentFiles": [{"value": "arn:aws:s3:::b/base.env", "type": "s3"}],
                "resourceRequirements": [
                    {"type": "GPU", "value": "1"},
                    {"type": "InferenceAccelerator", "value": "acc"}
                ]
            }),
            json!({"name": "sidecar", "image": "busybox", "memory": 64}),
        ],
    )
}

#[test]
fn no_overrides_is_the_definition() {
    let base = two_containers();
    assert_eq!(apply_overrides(&base, None).unwrap(), base);
    assert_eq!(apply(&base, json!({})), base);
    assert_eq!(apply(&base, json!({"containerOverrides": []})), base);
}

#[test]
fn container_overrides_replace_and_merge() {
    let base = two_containers();
    let out = apply(
        &base,
        json!({"containerOverrides": [{
            "name": "web",
            "command": ["sh", "-c", "echo hi"],
            "environment": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
            "environmentFiles": [{"value": "arn:aws:s3:::b/extra.env", "type": "s3"}],
            "cpu": 512,
            "memory": 1024,
            "memoryReservation": 768,
            "resourceRequirements": [{"type": "GPU", "value": "2"}]
        }]}),
    );
    let web = container(&out, "web");
    assert_eq!(
        web.command.as_deref(),
        Some(&["sh".to_string(), "-c".into(), "echo hi".into()][..])
    );
    assert_eq!(
        web.environment.as_deref(),
        Some(&env(&[("A", "1"), ("B", "two"), ("C", "3")])[..])
    );
    let files: Vec<&str> = web
        .environment_files
        .iter()
        .flatten()
        .map(|f| f.value.as_str())
        .collect();
    assert_eq!(
        files,
        ["arn:aws:s3:::b/base.env", "arn:aws:s3:::b/extra.env"]
    );
    assert_eq!(
        (web.cpu, web.memory, web.memory_reservation),
        (Some(512), Some(1024), Some(768))
    );
    let requirements: Vec<(ResourceType, Option<&str>)> = web
        .resource_requirements
        .iter()
        .flatten()
        .map(|r| (r.resource_type, r.value.as_deref()))
        .collect();
    assert_eq!(
        requirements,
        [
            (ResourceType::InferenceAccelerator, Some("acc")),
            (ResourceType::Gpu, Some("2"))
        ]
    );
    // The other container and the rest of the definition are untouched.
    assert_eq!(container(&out, "sidecar"), container(&base, "sidecar"));
    assert_eq!(out.family, base.family);
    assert_eq!(container(&out, "web").image, container(&base, "web").image);
}

#[test]
fn members_an_override_leaves_out_stay() {
    let base = two_containers();
    let out = apply(
        &base,
        json!({"containerOverrides": [{"name": "web", "environment": [], "environmentFiles": []}]}),
    );
    assert_eq!(out, base);
}

#[test]
fn overrides_fill_members_the_definition_lacks() {
    let base = two_containers();
    let out = apply(
        &base,
        json!({"containerOverrides": [{
            "name": "sidecar",
            "command": ["sleep", "1"],
            "environment": [{"name": "X", "value": "y"}],
            "environmentFiles": [{"value": "arn:aws:s3:::b/s.env", "type": "s3"}],
            "resourceRequirements": [{"type": "GPU", "value": "1"}]
        }]}),
    );
    let sidecar = container(&out, "sidecar");
    assert_eq!(
        sidecar.environment.as_deref(),
        Some(&env(&[("X", "y")])[..])
    );
    assert_eq!(sidecar.environment_files.as_ref().map(Vec::len), Some(1));
    assert_eq!(
        sidecar.resource_requirements.as_ref().map(Vec::len),
        Some(1)
    );
    assert!(sidecar.command.is_some());
}

#[test]
fn environment_merge_handles_repeated_names() {
    let base = with_containers(
        json!({}),
        vec![json!({"name": "a", "memory": 64, "environment": [
            {"name": "X", "value": "1"}, {"name": "Y", "value": "2"}, {"name": "X", "value": "3"}
        ]})],
    );
    let out = apply(
        &base,
        json!({"containerOverrides": [{"name": "a", "environment": [
            {"name": "X", "value": "first"}, {"name": "Z", "value": "z"}, {"name": "X", "value": "last"}
        ]}]}),
    );
    assert_eq!(
        container(&out, "a").environment.as_deref(),
        Some(&env(&[("X", "last"), ("Y", "2"), ("X", "last"), ("Z", "z")])[..])
    );
}

#[test]
fn two_overrides_of_one_container_apply_in_order() {
    let base = two_containers();
    let out = apply(
        &base,
        json!({"containerOverrides": [
            {"name": "web", "cpu": 1, "environment": [{"name": "A", "value": "x"}]},
            {"name": "web", "cpu": 2}
        ]}),
    );
    let web = container(&out, "web");
    assert_eq!(web.cpu, Some(2));
    assert_eq!(
        web.environment.as_ref().unwrap()[0].value.as_deref(),
        Some("x")
    );
}

#[test]
fn task_level_overrides_replace_and_convert() {
    let base = with_containers(
        json!({"cpu": "1024", "memory": "2048", "taskRoleArn": "old",
               "inferenceAccelerators": [{"deviceName": "acc", "deviceType": "eia2.medium"}]}),
        vec![json!({"name": "a", "memory": 64})],
    );
    let out = apply(
        &base,
        json!({
            "cpu": "0.5 vCPU",
            "memory": "1 GB",
            "taskRoleArn": "arn:aws:iam::000000000000:role/t",
            "executionRoleArn": "arn:aws:iam::000000000000:role/e",
            "ephemeralStorage": {"sizeInGiB": 50},
            "inferenceAcceleratorOverrides": [{"deviceName": "acc", "deviceType": "eia2.large"}]
        }),
    );
    assert_eq!(out.cpu.as_deref(), Some("512"));
    assert_eq!(out.memory.as_deref(), Some("1024"));
    assert_eq!(
        out.task_role_arn.as_deref(),
        Some("arn:aws:iam::000000000000:role/t")
    );
    assert_eq!(
        out.execution_role_arn.as_deref(),
        Some("arn:aws:iam::000000000000:role/e")
    );
    assert_eq!(out.ephemeral_storage.map(|s| s.size_in_gib), Some(50));
    let accelerators = out.inference_accelerators.unwrap();
    assert_eq!(accelerators[0].device_type, "eia2.large");

    let out = apply(&base, json!({"cpu": "256"}));
    assert_eq!(
        (out.cpu.as_deref(), out.memory.as_deref()),
        (Some("256"), Some("2048"))
    );
}

#[track_caller]
fn refused(definition: &TaskDefinition, value: Value, words: &[&str]) {
    let err = apply_overrides(definition, Some(&overrides(value.clone()))).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidParameterException, "{err}");
    for word in words {
        assert!(
            err.message.contains(word),
            "{word:?} not in {}",
            err.message
        );
    }
}

#[test]
fn an_unknown_container_is_named() {
    let base = two_containers();
    refused(
        &base,
        json!({"containerOverrides": [{"name": "db", "cpu": 1}]}),
        &["Override for container named db is not a container in the TaskDefinition."],
    );
    refused(
        &base,
        json!({"containerOverrides": [{"cpu": 1}]}),
        &["name"],
    );
    let empty = definition(json!({"family": "f"}));
    refused(
        &empty,
        json!({"containerOverrides": [{"name": "web"}]}),
        &["web"],
    );
}

#[test]
fn bad_sizes_are_refused() {
    let base = two_containers();
    let container = |o: Value| {
        let mut o = o;
        o["name"] = json!("web");
        json!({"containerOverrides": [o]})
    };
    refused(&base, container(json!({"cpu": -1})), &["'cpu'", "web"]);
    refused(&base, container(json!({"memory": 2})), &["'memory'", "web"]);
    refused(
        &base,
        container(json!({"memoryReservation": 3})),
        &["'memoryReservation'", "web"],
    );
    // The reservation may not exceed the hard limit once both apply.
    refused(
        &base,
        container(json!({"memoryReservation": 600})),
        &["'memory' (512)", "'memoryReservation' (600)"],
    );
    refused(&base, json!({"cpu": "lots"}), &["'cpu'", "lots"]);
    refused(&base, json!({"memory": "0"}), &["'memory'"]);
    refused(
        &base,
        json!({"inferenceAcceleratorOverrides": [{"deviceName": "none", "deviceType": "x"}]}),
        &["none"],
    );
}

//! What registration adds to a request, and that it keeps the rest unchanged.

use serde_json::{Value, json};

use super::{decode, task, with};
use crate::common::Attribute;
use crate::task_definition::{Compatibility, TaskDefinition, TaskDefinitionStatus};

const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7";

fn register(value: &Value) -> TaskDefinition {
    let request = decode(value).unwrap();
    TaskDefinition::from_registration(
        request,
        ARN.to_string(),
        7,
        1_700_000_000.5,
        Some("arn:aws:iam::123456789012:root".into()),
    )
}

fn attributes(definition: &TaskDefinition) -> Vec<String> {
    definition
        .requires_attributes
        .iter()
        .flatten()
        .map(|a| a.name.clone())
        .collect()
}

#[test]
fn registration_adds_the_registry_members() {
    let definition = register(&with(json!({}), json!({})));
    assert_eq!(definition.task_definition_arn.as_deref(), Some(ARN));
    assert_eq!(definition.revision, Some(7));
    assert_eq!(definition.status, Some(TaskDefinitionStatus::Active));
    assert_eq!(definition.registered_at, Some(1_700_000_000.5));
    assert_eq!(
        definition.registered_by.as_deref(),
        Some("arn:aws:iam::123456789012:root")
    );
    assert_eq!(definition.family.as_deref(), Some("web"));
    assert_eq!(definition.deregistered_at, None);
    let encoded = serde_json::to_value(&definition).unwrap();
    assert_eq!(encoded["registeredAt"], json!(1_700_000_000.5));
    assert_eq!(encoded["status"], json!("ACTIVE"));
    assert!(encoded.get("deregisteredAt").is_none());
}

#[test]
fn compatibilities_follow_the_network_mode_and_size() {
    let compat = |value: Value| register(&value).compatibilities.unwrap();
    use Compatibility::*;
    assert_eq!(compat(with(json!({}), json!({}))), vec![External, Ec2]);
    assert_eq!(
        compat(with(json!({"networkMode": "host"}), json!({}))),
        vec![External, Ec2]
    );
    assert_eq!(
        compat(with(json!({"networkMode": "awsvpc"}), json!({}))),
        vec![Ec2]
    );
    let fargate_sized = json!({"networkMode": "awsvpc", "cpu": "256", "memory": "512"});
    assert_eq!(
        compat(with(fargate_sized.clone(), json!({}))),
        vec![Ec2, Fargate]
    );
    assert_eq!(
        compat(with(
            json!({"networkMode": "awsvpc", "cpu": "256", "memory": "4096"}),
            json!({})
        )),
        vec![Ec2]
    );
    // Features Fargate lacks keep it out unless it was required.
    assert_eq!(
        compat(with(fargate_sized.clone(), json!({"privileged": true}))),
        vec![Ec2]
    );
    let mut required = fargate_sized.clone();
    super::merge(
        &mut required,
        json!({"requiresCompatibilities": ["FARGATE"]}),
    );
    assert_eq!(compat(with(required, json!({}))), vec![Ec2, Fargate]);
    let managed =
        json!({"networkMode": "awsvpc", "requiresCompatibilities": ["MANAGED_INSTANCES"]});
    assert_eq!(
        compat(with(managed, json!({}))),
        vec![Ec2, ManagedInstances]
    );
    let external = json!({"requiresCompatibilities": ["EXTERNAL"]});
    assert_eq!(compat(with(external, json!({}))), vec![External, Ec2]);
}

#[test]
fn required_attributes_follow_the_features_used() {
    let definition = register(&task(
        json!({
            "networkMode": "awsvpc",
            "taskRoleArn": "task-role",
            "executionRoleArn": "exec-role",
            "volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "transitEncryption": "ENABLED", "authorizationConfig": {"iam": "ENABLED"}}}]
        }),
        vec![
            json!({
                "name": "app",
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
                "memoryReservation": 64,
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
                "healthCheck": {"command": ["CMD", "true"]},
                "dependsOn": [{"containerName": "router", "condition": "START"}],
                "secrets": [
                    {"name": "A", "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:a"},
                    {"name": "B", "valueFrom": "/param/b"}
                ],
                "linuxParameters": {"initProcessEnabled": true}
            }),
            json!({
                "name": "router",
                "image": "fluent-bit",
                "memory": 64,
                "firelensConfiguration": {"type": "fluentbit", "options": {"config-file-type": "file"}},
                "repositoryCredentials": {"credentialsParameter": "secret"},
                "privileged": true,
                "portMappings": [{"containerPortRange": "8000-8010"}]
            }),
        ],
    ));
    let names = attributes(&definition);
    for expected in [
        "com.amazonaws.ecs.capability.docker-remote-api.1.18",
        "com.amazonaws.ecs.capability.docker-remote-api.1.19",
        "com.amazonaws.ecs.capability.docker-remote-api.1.21",
        "com.amazonaws.ecs.capability.docker-remote-api.1.24",
        "com.amazonaws.ecs.capability.docker-remote-api.1.25",
        "com.amazonaws.ecs.capability.ecr-auth",
        "com.amazonaws.ecs.capability.logging-driver.awslogs",
        "com.amazonaws.ecs.capability.privileged-container",
        "com.amazonaws.ecs.capability.task-iam-role",
        "ecs.capability.container-health-check",
        "ecs.capability.container-ordering",
        "ecs.capability.container-port-range",
        "ecs.capability.efs",
        "ecs.capability.efsAuth",
        "ecs.capability.execution-role-awslogs",
        "ecs.capability.execution-role-ecr-pull",
        "ecs.capability.firelens.fluentbit",
        "ecs.capability.firelens.options.config.file",
        "ecs.capability.private-registry-authentication.secretsmanager",
        "ecs.capability.secrets.asm.environment-variables",
        "ecs.capability.secrets.ssm.environment-variables",
        "ecs.capability.task-eni",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing {expected} in {names:?}"
        );
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "sorted and unique");
    let encoded = serde_json::to_value(&definition.requires_attributes).unwrap();
    assert_eq!(encoded[0], json!({"name": names[0]}));
}

#[test]
fn a_plain_definition_requires_nothing() {
    let definition = register(&with(json!({}), json!({})));
    assert_eq!(
        definition.requires_attributes,
        Some(Vec::<Attribute>::new())
    );
}

#[test]
fn task_size_units_are_converted_and_integers_kept() {
    let definition = register(&with(json!({"cpu": "1 vCPU", "memory": "2 GB"}), json!({})));
    assert_eq!(
        (definition.cpu.as_deref(), definition.memory.as_deref()),
        (Some("1024"), Some("2048"))
    );
    let definition = register(&with(json!({"cpu": "256", "memory": "512"}), json!({})));
    assert_eq!(
        (definition.cpu.as_deref(), definition.memory.as_deref()),
        (Some("256"), Some("512"))
    );
    let definition = register(&with(json!({}), json!({})));
    assert_eq!((definition.cpu, definition.memory), (None, None));
}

#[test]
fn tags_are_not_part_of_the_task_definition() {
    let definition = register(&with(
        json!({"tags": [{"key": "team", "value": "a"}]}),
        json!({}),
    ));
    let encoded = serde_json::to_value(&definition).unwrap();
    assert!(encoded.get("tags").is_none());
}

/// Every member of the model given in a request comes back unchanged: the request
/// with all members set (tags aside) is a subset of the registered definition.
#[test]
fn every_member_comes_back_unchanged() {
    let mut input: Value = serde_json::from_str(include_str!("every_member_request.json")).unwrap();
    // Integer task sizes come back as given (unit forms are converted).
    input["cpu"] = json!("1024");
    input["memory"] = json!("2048");
    let definition = register(&input);
    let output = serde_json::to_value(&definition).unwrap();
    let input = input.as_object().unwrap();
    for (member, value) in input {
        if member == "tags" {
            continue;
        }
        assert_eq!(output.get(member), Some(value), "member {member}");
    }
}

#[test]
fn a_registered_definition_knows_its_size() {
    let definition = register(&with(
        json!({"cpu": "0.5 vCPU", "memory": "1GB"}),
        json!({}),
    ));
    let size = definition.size();
    assert_eq!((size.cpu, size.memory), (Some(512), Some(1024)));
    assert_eq!(
        TaskDefinition::default().size(),
        crate::task_definition::TaskSize::default()
    );
}

#[test]
fn registration_fills_the_defaults_ecs_fills() {
    let request = json!({
        "family": "web",
        "networkMode": "awsvpc",
        "containerDefinitions": [
            {"name": "a", "image": "busybox", "memory": 64, "portMappings": [{"containerPort": 80}]},
            {"name": "b", "image": "busybox", "memory": 64, "essential": false, "cpu": 5,
             "portMappings": [{"containerPort": 81, "hostPort": 81, "protocol": "udp"}]}
        ]
    });
    let definition = serde_json::to_value(register(&request)).unwrap();
    let a = &definition["containerDefinitions"][0];
    assert_eq!(a["essential"], json!(true));
    assert_eq!(a["cpu"], json!(0));
    assert_eq!(a["environment"], json!([]));
    assert_eq!(a["mountPoints"], json!([]));
    assert_eq!(a["volumesFrom"], json!([]));
    assert_eq!(
        a["portMappings"],
        json!([{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}])
    );
    let b = &definition["containerDefinitions"][1];
    assert_eq!(b["essential"], json!(false));
    assert_eq!(b["cpu"], json!(5));
    assert_eq!(
        b["portMappings"],
        json!([{"containerPort": 81, "hostPort": 81, "protocol": "udp"}])
    );
    assert_eq!(definition["volumes"], json!([]));
    assert_eq!(definition["placementConstraints"], json!([]));
}

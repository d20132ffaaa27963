//! Task definitions: RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions, and the
//! real-world corpus registered byte for byte.

// serde_json's json! macro recurses once per token of a large literal.
#![recursion_limit = "256"]

mod common;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_ecs::types::{
    Compatibility, ContainerCondition, ContainerDefinition, FirelensConfigurationType, LogDriver,
    NetworkMode, PortMapping, Scope, SortOrder, TaskDefinition, TaskDefinitionFamilyStatus,
    TaskDefinitionField, TaskDefinitionStatus, TransportProtocol,
};
use common::{
    BerthServer, REGION, Require, TestResult, differences, service_error, task_definition_arn,
};
use serde_json::{Value, json};

/// The members of RegisterTaskDefinitionRequest (ECS API reference).
const REQUEST_MEMBERS: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
    "trustedExecutionConfiguration",
];

/// The members of ContainerDefinition (ECS API reference).
const CONTAINER_MEMBERS: &[&str] = &[
    "name",
    "image",
    "repositoryCredentials",
    "cpu",
    "memory",
    "memoryReservation",
    "links",
    "portMappings",
    "essential",
    "restartPolicy",
    "entryPoint",
    "command",
    "environment",
    "environmentFiles",
    "mountPoints",
    "volumesFrom",
    "linuxParameters",
    "secrets",
    "dependsOn",
    "startTimeout",
    "stopTimeout",
    "versionConsistency",
    "hostname",
    "user",
    "workingDirectory",
    "disableNetworking",
    "privileged",
    "readonlyRootFilesystem",
    "dnsServers",
    "dnsSearchDomains",
    "extraHosts",
    "dockerSecurityOptions",
    "interactive",
    "pseudoTerminal",
    "dockerLabels",
    "ulimits",
    "logConfiguration",
    "healthCheck",
    "systemControls",
    "resourceRequirements",
    "firelensConfiguration",
    "credentialSpecs",
];

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn container(name: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image("busybox:latest")
        .memory(128)
        .build()
}

async fn register(client: &aws_sdk_ecs::Client, family: &str) -> TestResult<TaskDefinition> {
    let out = client
        .register_task_definition()
        .family(family)
        .container_definitions(container("app"))
        .send()
        .await?;
    Ok(out.task_definition().req("taskDefinition")?.clone())
}

/// The request as ECS reads it: members ECS does not know (top level, and in
/// container definitions) are ignored, and tags are answered apart.
fn ecs_members(request: &Value) -> Value {
    let mut known = serde_json::Map::new();
    for (name, value) in request.as_object().into_iter().flatten() {
        if !REQUEST_MEMBERS.contains(&name.as_str()) || name == "tags" {
            continue;
        }
        let value = if name == "containerDefinitions" {
            let containers = value.as_array().cloned().unwrap_or_default();
            Value::Array(
                containers
                    .into_iter()
                    .map(|c| {
                        let members = c.as_object().cloned().unwrap_or_default();
                        Value::Object(
                            members
                                .into_iter()
                                .filter(|(k, _)| CONTAINER_MEMBERS.contains(&k.as_str()))
                                .collect(),
                        )
                    })
                    .collect(),
            )
        } else {
            value.clone()
        };
        known.insert(name.clone(), value);
    }
    Value::Object(known)
}

/// Asserts the described definition carries every member registered, unchanged.
#[track_caller]
fn assert_round_trip(what: &str, sent: &Value, described: &Value) {
    let mut out = Vec::new();
    differences(
        &ecs_members(sent),
        Some(&described["taskDefinition"]),
        "taskDefinition",
        &mut out,
    );
    let sent_tags = sent.get("tags").cloned().unwrap_or(json!([]));
    differences(&sent_tags, described.get("tags"), "tags", &mut out);
    assert!(
        out.is_empty(),
        "{what}: DescribeTaskDefinition does not return what was registered:\n{}",
        out.join("\n")
    );
}

/// A definition using most ContainerDefinition members, valid for EC2 in bridge mode.
fn everything() -> Value {
    let app = json!({
        "name": "app",
        "image": "registry.example.com/team/app:1.2.3",
        "cpu": 512,
        "memory": 1024,
        "memoryReservation": 512,
        "essential": true,
        "entryPoint": ["/bin/sh", "-c"],
        "command": ["exec app --port 8080"],
        "workingDirectory": "/srv",
        "user": "1000:1000",
        "hostname": "app",
        "environment": [{"name": "MODE", "value": "test"}, {"name": "EMPTY", "value": ""}],
        "environmentFiles": [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}],
        "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}],
        "portMappings": [
            {"containerPort": 8080, "hostPort": 0, "protocol": "tcp", "name": "http", "appProtocol": "http"},
            {"containerPort": 9090, "hostPort": 9090, "protocol": "udp"}
        ],
        "mountPoints": [
            {"sourceVolume": "data", "containerPath": "/data", "readOnly": false},
            {"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": true},
            {"sourceVolume": "files", "containerPath": "/files"}
        ],
        "volumesFrom": [{"sourceContainer": "sidecar", "readOnly": true}],
        "links": ["sidecar:side"],
        "dependsOn": [
            {"containerName": "sidecar", "condition": "HEALTHY"},
            {"containerName": "init", "condition": "SUCCESS"}
        ],
        "healthCheck": {
            "command": ["CMD-SHELL", "wget -q -O /dev/null http://localhost:8080/ || exit 1"],
            "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 20
        },
        "linuxParameters": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
            "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["read", "write"]}],
            "initProcessEnabled": true,
            "sharedMemorySize": 64,
            "tmpfs": [{"containerPath": "/tmp", "size": 64, "mountOptions": ["rw", "noexec"]}],
            "maxSwap": 0,
            "swappiness": 60
        },
        "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/berth/app", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "app"},
            "secretOptions": [{"name": "token", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/token"}]
        },
        "dockerLabels": {"com.example.team": "e2e", "empty": ""},
        "dockerSecurityOptions": ["no-new-privileges"],
        "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
        "extraHosts": [{"hostname": "db.local", "ipAddress": "10.0.0.5"}],
        "dnsServers": ["10.0.0.2"],
        "dnsSearchDomains": ["example.internal"],
        "readonlyRootFilesystem": true,
        "privileged": false,
        "disableNetworking": false,
        "interactive": false,
        "pseudoTerminal": false,
        "startTimeout": 60,
        "stopTimeout": 30,
        "resourceRequirements": [{"type": "GPU", "value": "1"}],
        "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:123456789012:secret:registry"},
        "restartPolicy": {"enabled": true, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
        "versionConsistency": "disabled"
    });
    json!({
        "family": "everything",
        "taskRoleArn": "arn:aws:iam::123456789012:role/task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/execution",
        "networkMode": "bridge",
        "cpu": "1024",
        "memory": "2048",
        "pidMode": "task",
        "ipcMode": "task",
        "requiresCompatibilities": ["EC2"],
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ t3.*"}],
        "volumes": [
            {"name": "data", "host": {"sourcePath": "/srv/data"}},
            {"name": "scratch", "dockerVolumeConfiguration": {
                "scope": "task", "driver": "local",
                "driverOpts": {"type": "tmpfs", "device": "tmpfs"},
                "labels": {"owner": "e2e"}
            }},
            {"name": "files", "efsVolumeConfiguration": {
                "fileSystemId": "fs-0123456789abcdef0", "rootDirectory": "/",
                "transitEncryption": "ENABLED", "transitEncryptionPort": 2999,
                "authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0", "iam": "ENABLED"}
            }}
        ],
        "containerDefinitions": [
            app,
            {
                "name": "sidecar",
                "image": "busybox:latest",
                "essential": false,
                "memory": 64,
                "healthCheck": {"command": ["CMD", "true"], "interval": 5, "timeout": 2, "retries": 1}
            },
            {"name": "init", "image": "busybox:latest", "essential": false, "memory": 32, "command": ["true"]},
            {
                "name": "log_router",
                "image": "amazon/aws-for-fluent-bit:stable",
                "essential": false,
                "memory": 64,
                "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}}
            }
        ],
        "tags": [{"key": "suite", "value": "e2e"}, {"key": "empty-value", "value": ""}]
    })
}

#[tokio::test]
async fn register_numbers_revisions_per_family() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let before = now_secs();
    for revision in 1..=3 {
        let td = register(&client, "web").await?;
        assert_eq!(td.revision(), revision);
        assert_eq!(td.family(), Some("web"));
        assert_eq!(
            td.task_definition_arn(),
            Some(task_definition_arn(REGION, "web", revision).as_str())
        );
        assert_eq!(td.status(), Some(&TaskDefinitionStatus::Active));
        let registered_at = td.registered_at().req("registeredAt")?.as_secs_f64();
        assert!(
            registered_at >= before - 5.0 && registered_at <= now_secs() + 5.0,
            "registeredAt {registered_at}"
        );
        let by = td.registered_by().req("registeredBy")?;
        assert!(
            by.starts_with("arn:aws:") && by.contains(common::ACCOUNT),
            "registeredBy {by}"
        );
        // A bridge-mode definition with no requirements runs on EC2, not on Fargate.
        assert!(
            td.compatibilities().contains(&Compatibility::Ec2),
            "{:?}",
            td.compatibilities()
        );
        assert!(
            !td.compatibilities().contains(&Compatibility::Fargate),
            "{:?}",
            td.compatibilities()
        );
        assert!(td.requires_compatibilities().is_empty());
    }
    // Another family counts from 1.
    let other = register(&client, "worker").await?;
    assert_eq!(other.revision(), 1);
    assert_eq!(
        other.task_definition_arn(),
        Some(task_definition_arn(REGION, "worker", 1).as_str())
    );

    let fargate = client
        .register_task_definition()
        .family("serverless")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(container("app"))
        .send()
        .await?;
    let td = fargate.task_definition().req("taskDefinition")?;
    assert!(
        td.compatibilities().contains(&Compatibility::Fargate),
        "{:?}",
        td.compatibilities()
    );
    assert_eq!(td.requires_compatibilities(), [Compatibility::Fargate]);
    assert_eq!(td.cpu(), Some("256"));
    assert_eq!(td.memory(), Some("512"));
    Ok(())
}

#[tokio::test]
async fn every_member_round_trips_unchanged() -> TestResult {
    let server = BerthServer::start()?;
    let sent = everything();
    let registered = server.call_ok("RegisterTaskDefinition", &sent).await?;
    assert_eq!(registered["taskDefinition"]["revision"], 1, "{registered}");
    assert_eq!(
        registered["tags"], sent["tags"],
        "RegisterTaskDefinition answers the tags"
    );
    let mut out = Vec::new();
    differences(
        &ecs_members(&sent),
        Some(&registered["taskDefinition"]),
        "taskDefinition",
        &mut out,
    );
    assert!(
        out.is_empty(),
        "RegisterTaskDefinition does not answer what was registered:\n{}",
        out.join("\n")
    );

    let arn = task_definition_arn(REGION, "everything", 1);
    let described = server
        .call_ok(
            "DescribeTaskDefinition",
            &json!({"taskDefinition": arn, "include": ["TAGS"]}),
        )
        .await?;
    assert_round_trip("everything", &sent, &described);
    assert_eq!(described["taskDefinition"]["status"], "ACTIVE");
    assert_eq!(
        described["taskDefinition"]["taskDefinitionArn"],
        arn.as_str()
    );

    // The SDK reads every member into its types (no unknown enum values).
    let out = server
        .client()
        .describe_task_definition()
        .task_definition(&arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await?;
    let td = out.task_definition().req("taskDefinition")?;
    assert_eq!(td.network_mode(), Some(&NetworkMode::Bridge));
    assert_eq!(td.volumes().len(), 3);
    let scratch = td.volumes()[1]
        .docker_volume_configuration()
        .req("dockerVolumeConfiguration")?;
    assert_eq!(scratch.scope(), Some(&Scope::Task));
    let app = &td.container_definitions()[0];
    assert_eq!(app.name(), Some("app"));
    assert_eq!(app.memory_reservation(), Some(512));
    let health = app.health_check().req("healthCheck")?;
    assert_eq!(
        (
            health.interval(),
            health.timeout(),
            health.retries(),
            health.start_period()
        ),
        (Some(10), Some(5), Some(3), Some(20))
    );
    let conditions: Vec<_> = app
        .depends_on()
        .iter()
        .map(|d| d.condition().clone())
        .collect();
    assert_eq!(
        conditions,
        [ContainerCondition::Healthy, ContainerCondition::Success]
    );
    assert_eq!(
        app.log_configuration().map(|l| l.log_driver().clone()),
        Some(LogDriver::Awslogs)
    );
    let ports: Vec<_> = app
        .port_mappings()
        .iter()
        .map(PortMapping::protocol)
        .collect();
    assert_eq!(
        ports,
        [Some(&TransportProtocol::Tcp), Some(&TransportProtocol::Udp)]
    );
    assert_eq!(
        app.docker_labels()
            .and_then(|l| l.get("empty"))
            .map(String::as_str),
        Some("")
    );
    let router = &td.container_definitions()[3];
    assert_eq!(
        router.firelens_configuration().map(|f| f.r#type().clone()),
        Some(FirelensConfigurationType::Fluentbit)
    );
    assert_eq!(out.tags().len(), 2);
    Ok(())
}

#[tokio::test]
async fn describe_task_definition_by_family_revision_and_arn() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    for _ in 0..3 {
        register(&client, "api").await?;
    }
    let describe = |reference: String| {
        let client = client.clone();
        async move {
            let out = client
                .describe_task_definition()
                .task_definition(reference)
                .send()
                .await?;
            TestResult::Ok(out.task_definition().req("taskDefinition")?.revision())
        }
    };
    assert_eq!(
        describe("api".into()).await?,
        3,
        "the family alone names its latest ACTIVE revision"
    );
    assert_eq!(describe("api:2".into()).await?, 2);
    assert_eq!(describe(task_definition_arn(REGION, "api", 1)).await?, 1);

    for missing in [
        "api:9",
        "nope",
        "nope:1",
        &task_definition_arn(REGION, "nope", 1),
    ] {
        let err = service_error(
            client
                .describe_task_definition()
                .task_definition(missing)
                .send()
                .await,
        )?;
        err.assert_code(&["ClientException"]);
        assert_eq!(err.status, Some(400));
    }

    // Tags only with include TAGS.
    client
        .register_task_definition()
        .family("tagged")
        .container_definitions(container("app"))
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("team")
                .value("e2e")
                .build(),
        )
        .send()
        .await?;
    let without = client
        .describe_task_definition()
        .task_definition("tagged")
        .send()
        .await?;
    assert!(
        without.tags().is_empty(),
        "tags without include TAGS: {:?}",
        without.tags()
    );
    let with = client
        .describe_task_definition()
        .task_definition("tagged")
        .include(TaskDefinitionField::Tags)
        .send()
        .await?;
    let tags: Vec<_> = with.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, [(Some("team"), Some("e2e"))]);
    Ok(())
}

/// A registration that ECS refuses, and words one of which the message must contain.
struct Invalid {
    what: &'static str,
    body: Value,
    words: &'static [&'static str],
}

fn invalid_registrations() -> Vec<Invalid> {
    let app = json!({"name": "app", "image": "busybox", "memory": 128});
    let big_environment: Vec<Value> = (0..80)
        .map(|i| json!({"name": format!("VAR_{i}"), "value": "v".repeat(1000)}))
        .collect();
    vec![
        Invalid {
            what: "no family",
            body: json!({"containerDefinitions": [app]}),
            words: &["family"],
        },
        Invalid {
            what: "invalid family name",
            body: json!({"family": "bad family!", "containerDefinitions": [app]}),
            words: &["family"],
        },
        Invalid {
            what: "no containers",
            body: json!({"family": "bad", "containerDefinitions": []}),
            words: &["container"],
        },
        Invalid {
            what: "duplicate container names",
            body: json!({"family": "bad", "containerDefinitions": [app, app]}),
            words: &["duplicate", "unique", "more than once", "same name"],
        },
        Invalid {
            what: "no image",
            body: json!({"family": "bad", "containerDefinitions": [{"name": "app", "memory": 128}]}),
            words: &["image"],
        },
        Invalid {
            what: "no essential container",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128, "essential": false}
            ]}),
            words: &["essential"],
        },
        Invalid {
            what: "dependsOn an unknown container",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128,
                 "dependsOn": [{"containerName": "ghost", "condition": "START"}]}
            ]}),
            words: &["ghost"],
        },
        Invalid {
            what: "memoryReservation above memory",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128, "memoryReservation": 256}
            ]}),
            words: &["reservation"],
        },
        Invalid {
            what: "FARGATE in bridge mode",
            body: json!({"family": "bad", "requiresCompatibilities": ["FARGATE"], "networkMode": "bridge",
                "cpu": "256", "memory": "512", "containerDefinitions": [app]}),
            words: &["awsvpc", "network"],
        },
        Invalid {
            what: "FARGATE without a network mode",
            body: json!({"family": "bad", "requiresCompatibilities": ["FARGATE"],
                "cpu": "256", "memory": "512", "containerDefinitions": [app]}),
            words: &["awsvpc", "network"],
        },
        Invalid {
            what: "container port out of range",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128, "portMappings": [{"containerPort": 70000}]}
            ]}),
            words: &["port"],
        },
        Invalid {
            what: "awsvpc host port differs from the container port",
            body: json!({"family": "bad", "networkMode": "awsvpc", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128,
                 "portMappings": [{"containerPort": 80, "hostPort": 8080}]}
            ]}),
            words: &["port"],
        },
        Invalid {
            what: "healthCheck interval below 5",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128,
                 "healthCheck": {"command": ["CMD", "true"], "interval": 1}}
            ]}),
            words: &["interval"],
        },
        Invalid {
            what: "healthCheck interval above 300",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128,
                 "healthCheck": {"command": ["CMD", "true"], "interval": 301}}
            ]}),
            words: &["interval"],
        },
        Invalid {
            what: "a definition over 64 KiB",
            body: json!({"family": "bad", "containerDefinitions": [
                {"name": "app", "image": "busybox", "memory": 128, "environment": big_environment}
            ]}),
            words: &["64", "65536", "size", "length", "large", "exceed"],
        },
    ]
}

#[tokio::test]
async fn invalid_registrations_are_refused_with_a_reason() -> TestResult {
    let server = BerthServer::start()?;
    let mut problems = Vec::new();
    for case in invalid_registrations() {
        let response = server.call("RegisterTaskDefinition", &case.body).await?;
        let code = response.error_code().unwrap_or_default();
        let message = response.error_message().to_lowercase();
        if response.status != 200
            && ["ClientException", "InvalidParameterException"].contains(&code.as_str())
        {
            if !case
                .words
                .iter()
                .any(|w| message.contains(&w.to_lowercase()))
            {
                problems.push(format!(
                    "{}: the message should name one of {:?}: {message:?}",
                    case.what, case.words
                ));
            }
        } else {
            problems.push(format!(
                "{}: expected HTTP 400 ClientException or InvalidParameterException, got {} {}",
                case.what,
                response.status,
                response.text()
            ));
        }
    }
    // Nothing refused was registered.
    let families = server
        .client()
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::All)
        .send()
        .await?;
    if !families.families().is_empty() {
        problems.push(format!(
            "refused registrations left families: {:?}",
            families.families()
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

async fn list_definitions(
    client: &aws_sdk_ecs::Client,
    family: Option<&str>,
    status: Option<TaskDefinitionStatus>,
    sort: Option<SortOrder>,
    max_results: Option<i32>,
) -> TestResult<Vec<String>> {
    let mut arns = Vec::new();
    let mut token = None;
    for _ in 0..100 {
        let page = client
            .list_task_definitions()
            .set_family_prefix(family.map(str::to_string))
            .set_status(status.clone())
            .set_sort(sort.clone())
            .set_max_results(max_results)
            .set_next_token(token)
            .send()
            .await?;
        if let Some(max) = max_results {
            assert!(
                page.task_definition_arns().len() <= max as usize,
                "a page over maxResults: {page:?}"
            );
        }
        arns.extend(page.task_definition_arns().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(arns);
        }
    }
    Err("ListTaskDefinitions does not stop paging".into())
}

async fn list_families(
    client: &aws_sdk_ecs::Client,
    prefix: Option<&str>,
    status: Option<TaskDefinitionFamilyStatus>,
) -> TestResult<Vec<String>> {
    let mut families = Vec::new();
    let mut token = None;
    for _ in 0..100 {
        let page = client
            .list_task_definition_families()
            .set_family_prefix(prefix.map(str::to_string))
            .set_status(status.clone())
            .max_results(2)
            .set_next_token(token)
            .send()
            .await?;
        assert!(
            page.families().len() <= 2,
            "a page over maxResults: {page:?}"
        );
        families.extend(page.families().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(families);
        }
    }
    Err("ListTaskDefinitionFamilies does not stop paging".into())
}

fn arns(items: &[(&str, i32)]) -> Vec<String> {
    items
        .iter()
        .map(|(family, revision)| task_definition_arn(REGION, family, *revision))
        .collect()
}

#[tokio::test]
async fn list_task_definitions_filters_sorts_and_pages() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    for family in ["web", "web", "web", "webhook", "batch", "batch"] {
        register(&client, family).await?;
    }
    client
        .deregister_task_definition()
        .task_definition("web:2")
        .send()
        .await?;

    let active_asc = arns(&[
        ("batch", 1),
        ("batch", 2),
        ("web", 1),
        ("web", 3),
        ("webhook", 1),
    ]);
    assert_eq!(
        list_definitions(&client, None, None, None, None).await?,
        active_asc,
        "default: ACTIVE, ASC"
    );
    let sorted = list_definitions(
        &client,
        None,
        Some(TaskDefinitionStatus::Active),
        Some(SortOrder::Asc),
        None,
    )
    .await?;
    assert_eq!(sorted, active_asc);
    let mut active_desc = active_asc.clone();
    active_desc.reverse();
    assert_eq!(
        list_definitions(&client, None, None, Some(SortOrder::Desc), None).await?,
        active_desc
    );

    // Pages of 2 list the same definitions, in the same order, each once.
    assert_eq!(
        list_definitions(&client, None, None, None, Some(2)).await?,
        active_asc
    );
    assert_eq!(
        list_definitions(&client, None, None, Some(SortOrder::Desc), Some(2)).await?,
        active_desc
    );
    assert_eq!(
        list_definitions(&client, None, None, None, Some(1)).await?,
        active_asc
    );
    // familyPrefix is the full family name: "web" does not list "webhook". Last, so
    // the checks above run whatever this finds.
    assert_eq!(
        list_definitions(&client, Some("web"), None, None, None).await?,
        arns(&[("web", 1), ("web", 3)])
    );
    assert_eq!(
        list_definitions(
            &client,
            Some("web"),
            Some(TaskDefinitionStatus::Inactive),
            None,
            None
        )
        .await?,
        arns(&[("web", 2)])
    );

    Ok(())
}

#[tokio::test]
async fn list_task_definition_families_by_status_and_prefix() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    for family in ["alpha", "alpine", "beta", "gone"] {
        register(&client, family).await?;
    }
    client
        .deregister_task_definition()
        .task_definition("gone:1")
        .send()
        .await?;

    let all = ["alpha", "alpine", "beta", "gone"];
    assert_eq!(
        list_families(&client, None, Some(TaskDefinitionFamilyStatus::All)).await?,
        all
    );
    assert_eq!(
        list_families(&client, None, Some(TaskDefinitionFamilyStatus::Active)).await?,
        ["alpha", "alpine", "beta"]
    );
    assert_eq!(
        list_families(&client, None, Some(TaskDefinitionFamilyStatus::Inactive)).await?,
        ["gone"]
    );
    assert_eq!(
        list_families(&client, Some("alp"), None).await?,
        ["alpha", "alpine"]
    );
    assert_eq!(
        list_families(&client, Some("alpha"), None).await?,
        ["alpha"]
    );
    assert!(list_families(&client, Some("zzz"), None).await?.is_empty());
    // Last, so the checks above run whatever this finds.
    assert_eq!(
        list_families(&client, None, None).await?,
        all,
        "by default ACTIVE and INACTIVE families are listed"
    );
    Ok(())
}

#[tokio::test]
async fn deregister_makes_a_revision_inactive() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    for _ in 0..3 {
        register(&client, "svc").await?;
    }
    let out = client
        .deregister_task_definition()
        .task_definition("svc:3")
        .send()
        .await?;
    let td = out.task_definition().req("taskDefinition")?;
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Inactive));
    assert_eq!(td.revision(), 3);
    assert!(
        td.deregistered_at().is_some(),
        "deregisteredAt is set: {td:?}"
    );

    // The family's latest ACTIVE revision is now 2.
    let latest = client
        .describe_task_definition()
        .task_definition("svc")
        .send()
        .await?;
    assert_eq!(
        latest.task_definition().map(TaskDefinition::revision),
        Some(2)
    );
    // The INACTIVE revision is still described by family:revision and by ARN.
    for reference in ["svc:3".to_string(), task_definition_arn(REGION, "svc", 3)] {
        let inactive = client
            .describe_task_definition()
            .task_definition(reference)
            .send()
            .await?;
        assert_eq!(
            inactive.task_definition().and_then(TaskDefinition::status),
            Some(&TaskDefinitionStatus::Inactive)
        );
    }
    // A new registration takes the next number, never a deregistered one.
    assert_eq!(register(&client, "svc").await?.revision(), 4);

    let missing = service_error(
        client
            .deregister_task_definition()
            .task_definition("svc:99")
            .send()
            .await,
    )?;
    missing.assert_code(&["ClientException", "InvalidParameterException"]);
    // Deregistering needs a revision.
    let no_revision = service_error(
        client
            .deregister_task_definition()
            .task_definition("svc")
            .send()
            .await,
    )?;
    no_revision.assert_code(&["ClientException", "InvalidParameterException"]);
    Ok(())
}

#[tokio::test]
async fn delete_task_definitions_needs_inactive_revisions() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    for _ in 0..2 {
        register(&client, "old").await?;
    }
    client
        .deregister_task_definition()
        .task_definition("old:1")
        .send()
        .await?;

    let out = client
        .delete_task_definitions()
        .task_definitions("old:1")
        .task_definitions("old:2")
        .send()
        .await?;
    let deleted: Vec<_> = out
        .task_definitions()
        .iter()
        .map(|td| (td.task_definition_arn(), td.status()))
        .collect();
    let arn1 = task_definition_arn(REGION, "old", 1);
    assert_eq!(
        deleted,
        [(
            Some(arn1.as_str()),
            Some(&TaskDefinitionStatus::DeleteInProgress)
        )]
    );
    assert!(
        out.task_definitions()[0].delete_requested_at().is_some(),
        "deleteRequestedAt is set"
    );
    assert_eq!(
        out.failures().len(),
        1,
        "an ACTIVE revision cannot be deleted: {out:?}"
    );
    let failure = &out.failures()[0];
    assert_eq!(
        failure.arn(),
        Some(task_definition_arn(REGION, "old", 2).as_str())
    );
    assert!(
        failure.reason().is_some_and(|r| !r.is_empty()),
        "{failure:?}"
    );

    // The ACTIVE revision is untouched.
    let kept = client
        .describe_task_definition()
        .task_definition("old:2")
        .send()
        .await?;
    assert_eq!(
        kept.task_definition().and_then(TaskDefinition::status),
        Some(&TaskDefinitionStatus::Active)
    );
    // A deleted revision is not listed as ACTIVE or INACTIVE any more.
    assert_eq!(
        list_definitions(&client, Some("old"), None, None, None).await?,
        arns(&[("old", 2)])
    );
    assert!(
        list_definitions(
            &client,
            Some("old"),
            Some(TaskDefinitionStatus::Inactive),
            None,
            None
        )
        .await?
        .is_empty()
    );
    // Revisions are never reused.
    assert_eq!(register(&client, "old").await?.revision(), 3);

    // Delete everything of a family: its revisions still are not reused.
    register(&client, "temp").await?;
    client
        .deregister_task_definition()
        .task_definition("temp:1")
        .send()
        .await?;
    client
        .delete_task_definitions()
        .task_definitions("temp:1")
        .send()
        .await?;
    assert_eq!(register(&client, "temp").await?.revision(), 2);

    // A revision is required: ECS refuses the call, or fails that item.
    match client
        .delete_task_definitions()
        .task_definitions("old")
        .send()
        .await
    {
        Ok(out) => assert!(
            out.task_definitions().is_empty() && out.failures().len() == 1,
            "{out:?}"
        ),
        Err(err) => service_error::<(), _>(Err(err))?
            .assert_code(&["ClientException", "InvalidParameterException"]),
    }
    Ok(())
}

/// Every corpus file is accepted, as ECS accepts them, and as the model's corpus test
/// (crates/berth-model/tests/corpus.rs) decides: file 08's volumesFrom names a
/// container it lacks, and files 23 and 24 an App Mesh proxy container they lack, which
/// ECS does not check at registration.
#[tokio::test]
async fn the_corpus_registers_and_describes_unchanged() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    let files = common::corpus_files()?;
    let mut problems = Vec::new();
    let mut registered = BTreeSet::new();
    for path in &files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let sent = common::corpus_request(path)?;
        let response = server.call("RegisterTaskDefinition", &sent).await?;
        if response.status != 200 {
            problems.push(format!(
                "{name}: refused: {} {}",
                response.status,
                response.text()
            ));
            continue;
        }
        let answer = response.json()?;
        let arn = answer["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let described = server
            .call_ok(
                "DescribeTaskDefinition",
                &json!({"taskDefinition": arn, "include": ["TAGS"]}),
            )
            .await?;
        let mut out = Vec::new();
        differences(
            &ecs_members(&sent),
            Some(&described["taskDefinition"]),
            "taskDefinition",
            &mut out,
        );
        differences(
            &sent.get("tags").cloned().unwrap_or(json!([])),
            described.get("tags"),
            "tags",
            &mut out,
        );
        if !out.is_empty() {
            problems.push(format!(
                "{name}: described differently:\n  {}",
                out.join("\n  ")
            ));
        }
        // The SDK reads the answer too.
        if let Err(err) = client
            .describe_task_definition()
            .task_definition(&arn)
            .send()
            .await
        {
            problems.push(format!(
                "{name}: the SDK cannot read the definition: {err:?}"
            ));
        }
        registered.insert(arn);
    }
    assert!(
        problems.is_empty(),
        "{} of {} corpus files:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );
    assert_eq!(
        registered.len(),
        files.len(),
        "each file is its own revision"
    );
    Ok(())
}

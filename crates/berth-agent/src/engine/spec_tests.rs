use std::collections::BTreeMap;
use std::time::Duration;

use berth_model::task_definition::{ContainerDefinition, TaskDefinition};
use berth_proto::labels;
use serde_json::json;

use super::*;
use crate::runtime::{HealthCheckSpec, Mount, MountSource, NetworkMode, PortPublish, Protocol};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/default/abc123";
const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/default";
const INSTANCE: &str = "arn:aws:ecs:us-east-1:123456789012:container-instance/default/i-1";

fn definition(value: serde_json::Value) -> Result<TaskDefinition, serde_json::Error> {
    serde_json::from_value(value)
}

fn context(
    value: serde_json::Value,
    effective: Option<&str>,
) -> Result<TaskContext, Box<dyn std::error::Error>> {
    Ok(TaskContext::new(
        TASK,
        CLUSTER,
        INSTANCE,
        &definition(value)?,
        effective,
    )?)
}

/// The spec of the container named `name` of the task definition `value`.
fn spec_of(
    value: serde_json::Value,
    name: &str,
    effective: Option<&str>,
) -> Result<ContainerSpec, Box<dyn std::error::Error>> {
    let ctx = context(value.clone(), effective)?;
    let containers: Vec<ContainerDefinition> =
        definition(value)?.container_definitions.unwrap_or_default();
    let container = containers
        .iter()
        .find(|c| c.name.as_deref() == Some(name))
        .ok_or("no such container")?;
    Ok(container_spec(&ctx, container)?)
}

fn one(container: serde_json::Value) -> serde_json::Value {
    json!({"family": "web", "revision": 4, "containerDefinitions": [container]})
}

#[test]
fn names_come_from_the_task_id() {
    assert_eq!(task_id(TASK), "abc123");
    assert_eq!(task_id("abc"), "abc");
    assert_eq!(container_runtime_name("abc123", "web"), "berth-abc123-web");
}

#[test]
fn every_container_setting_is_carried() -> TestResult {
    let spec = spec_of(
        one(json!({
            "name": "web", "image": "nginx:1.25",
            "entryPoint": ["/bin/sh", "-c"], "command": ["nginx -g 'daemon off;'"],
            "environment": [{"name": "A", "value": "1"}, {"name": "EMPTY"}, {"value": "nameless"}],
            "workingDirectory": "/srv", "user": "1000:1000", "hostname": "web-1",
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}],
            "cpu": 256, "memory": 512, "memoryReservation": 128,
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "readonlyRootFilesystem": true, "privileged": true,
            "linuxParameters": {
                "initProcessEnabled": true, "sharedMemorySize": 64,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}
            },
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "dnsServers": ["1.1.1.1"], "dnsSearchDomains": ["svc.local"],
            "interactive": true, "pseudoTerminal": true,
            "dockerSecurityOptions": ["no-new-privileges"],
            "healthCheck": {"command": ["CMD-SHELL", "curl -f localhost"], "interval": 10, "retries": 5}
        })),
        "web",
        None,
    )?;
    assert_eq!(spec.name, "berth-abc123-web");
    assert_eq!(spec.image, "nginx:1.25");
    assert_eq!(
        spec.entrypoint,
        Some(vec!["/bin/sh".to_owned(), "-c".to_owned()])
    );
    assert_eq!(
        spec.command,
        Some(vec!["nginx -g 'daemon off;'".to_owned()])
    );
    assert_eq!(spec.env, vec!["A=1".to_owned(), "EMPTY=".to_owned()]);
    assert_eq!(spec.working_dir.as_deref(), Some("/srv"));
    assert_eq!(spec.user.as_deref(), Some("1000:1000"));
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.extra_hosts, vec!["db:10.0.0.5".to_owned()]);
    assert_eq!(spec.network_mode, Some(NetworkMode::Bridge));
    assert_eq!(spec.cpu_shares, Some(256));
    assert_eq!(spec.memory, Some(512 * 1024 * 1024));
    assert_eq!(spec.memory_reservation, Some(128 * 1024 * 1024));
    assert_eq!(spec.ulimits.len(), 1);
    assert_eq!(
        (
            spec.ulimits[0].name.as_str(),
            spec.ulimits[0].soft,
            spec.ulimits[0].hard
        ),
        ("nofile", 1024, 4096)
    );
    assert!(spec.readonly_rootfs && spec.privileged && spec.init);
    assert_eq!(spec.cap_add, vec!["NET_ADMIN".to_owned()]);
    assert_eq!(spec.cap_drop, vec!["MKNOD".to_owned()]);
    assert_eq!(spec.shm_size, Some(64 * 1024 * 1024));
    assert_eq!(
        spec.sysctls,
        BTreeMap::from([("net.core.somaxconn".to_owned(), "1024".to_owned())])
    );
    assert_eq!(spec.dns_servers, vec!["1.1.1.1".to_owned()]);
    assert_eq!(spec.dns_search, vec!["svc.local".to_owned()]);
    assert!(spec.tty && spec.open_stdin);
    assert_eq!(spec.security_opt, vec!["no-new-privileges".to_owned()]);
    assert_eq!(
        spec.health_check,
        Some(HealthCheckSpec {
            test: vec!["CMD-SHELL".to_owned(), "curl -f localhost".to_owned()],
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            retries: 5,
            start_period: Duration::ZERO,
        })
    );
    assert!(!spec.network_disabled);
    assert_eq!((spec.pid_mode, spec.ipc_mode), (None, None));
    Ok(())
}

#[test]
fn health_check_defaults_are_ecs_defaults() -> TestResult {
    let spec = spec_of(
        one(json!({"name": "web", "image": "x", "healthCheck": {"command": ["CMD", "true"]}})),
        "web",
        None,
    )?;
    let check = spec.health_check.ok_or("no health check")?;
    assert_eq!(check.interval, Duration::from_secs(30));
    assert_eq!(check.timeout, Duration::from_secs(5));
    assert_eq!(check.retries, 3);
    assert_eq!(check.start_period, Duration::ZERO);
    Ok(())
}

#[test]
fn cpu_shares_are_at_least_two_and_limits_only_when_given() -> TestResult {
    for (cpu, shares) in [
        (None, 2),
        (Some(0), 2),
        (Some(1), 2),
        (Some(2), 2),
        (Some(1024), 1024),
    ] {
        let mut container = json!({"name": "web", "image": "x"});
        if let Some(cpu) = cpu {
            container["cpu"] = json!(cpu);
        }
        let spec = spec_of(one(container), "web", None)?;
        assert_eq!(spec.cpu_shares, Some(shares), "cpu {cpu:?}");
        assert_eq!(
            (spec.memory, spec.memory_reservation, spec.shm_size),
            (None, None, None)
        );
    }
    Ok(())
}

#[test]
fn labels_say_who_owns_the_container_and_cannot_be_spoofed() -> TestResult {
    let spec = spec_of(
        one(json!({
            "name": "web", "image": "x",
            "dockerLabels": {"team": "blue", (labels::INSTANCE_ARN): "someone-else"}
        })),
        "web",
        None,
    )?;
    let expected = BTreeMap::from([
        ("team".to_owned(), "blue".to_owned()),
        (labels::CLUSTER.to_owned(), CLUSTER.to_owned()),
        (labels::TASK_ARN.to_owned(), TASK.to_owned()),
        (labels::TASK_FAMILY.to_owned(), "web".to_owned()),
        (labels::TASK_VERSION.to_owned(), "4".to_owned()),
        (labels::CONTAINER_NAME.to_owned(), "web".to_owned()),
        (labels::INSTANCE_ARN.to_owned(), INSTANCE.to_owned()),
    ]);
    assert_eq!(spec.labels, expected);
    Ok(())
}

/// Dynamic ports are published on IPv4 only (see `spec.rs`).
fn publish(container_port: u16, host_port: Option<u16>, protocol: Protocol) -> PortPublish {
    PortPublish {
        container_port,
        host_port,
        protocol,
        host_ip: host_port.is_none().then(|| "0.0.0.0".to_string()),
    }
}

fn ports_definition(network_mode: &str) -> serde_json::Value {
    json!({
        "family": "web", "networkMode": network_mode,
        "containerDefinitions": [{
            "name": "web", "image": "x",
            "portMappings": [
                {"containerPort": 80},
                {"containerPort": 443, "hostPort": 0},
                {"containerPort": 8080, "hostPort": 9090},
                {"containerPort": 53, "hostPort": 53, "protocol": "udp"},
                {"containerPortRange": "7000-7002"}
            ]
        }]
    })
}

#[test]
fn bridge_ports_are_dynamic_unless_a_host_port_is_given() -> TestResult {
    let spec = spec_of(ports_definition("bridge"), "web", None)?;
    assert_eq!(
        spec.ports,
        vec![
            publish(80, None, Protocol::Tcp),
            publish(443, None, Protocol::Tcp),
            publish(8080, Some(9090), Protocol::Tcp),
            publish(53, Some(53), Protocol::Udp),
            publish(7000, None, Protocol::Tcp),
            publish(7001, None, Protocol::Tcp),
            publish(7002, None, Protocol::Tcp),
        ]
    );
    assert_eq!(spec.network_mode, Some(NetworkMode::Bridge));
    Ok(())
}

#[test]
fn awsvpc_runs_on_the_bridge_publishing_each_port_on_itself() -> TestResult {
    for effective in [None, Some("awsvpc")] {
        let value = if effective.is_some() {
            ports_definition("bridge")
        } else {
            ports_definition("awsvpc")
        };
        let spec = spec_of(value, "web", effective)?;
        assert_eq!(spec.network_mode, Some(NetworkMode::Bridge));
        let pairs: Vec<(u16, Option<u16>)> = spec
            .ports
            .iter()
            .map(|p| (p.container_port, p.host_port))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (80, Some(80)),
                (443, Some(443)),
                (8080, Some(8080)),
                (53, Some(53)),
                (7000, Some(7000)),
                (7001, Some(7001)),
                (7002, Some(7002)),
            ]
        );
    }
    Ok(())
}

#[test]
fn host_and_none_modes_publish_nothing() -> TestResult {
    let spec = spec_of(ports_definition("host"), "web", None)?;
    assert_eq!(spec.network_mode, Some(NetworkMode::Host));
    assert!(spec.ports.is_empty());
    let spec = spec_of(ports_definition("none"), "web", None)?;
    assert_eq!(spec.network_mode, Some(NetworkMode::None));
    assert!(spec.ports.is_empty());
    // The effective mode the control plane gives wins over the definition's.
    let spec = spec_of(ports_definition("bridge"), "web", Some("host"))?;
    assert_eq!(spec.network_mode, Some(NetworkMode::Host));
    Ok(())
}

#[test]
fn disabled_networking_publishes_nothing() -> TestResult {
    let spec = spec_of(
        one(
            json!({"name": "web", "image": "x", "disableNetworking": true,
                   "portMappings": [{"containerPort": 80}]}),
        ),
        "web",
        None,
    )?;
    assert!(spec.network_disabled);
    assert!(spec.ports.is_empty());
    Ok(())
}

#[test]
fn bad_port_ranges_are_errors() -> TestResult {
    for range in ["9-3", "x-4", "0-3", "70000-70001", "5"] {
        let value = one(json!({"name": "web", "image": "x",
                               "portMappings": [{"containerPortRange": range}]}));
        let error = spec_of(value, "web", None).err().ok_or("accepted")?;
        assert!(
            error.to_string().contains("invalid port"),
            "{range}: {error}"
        );
    }
    Ok(())
}

#[test]
fn links_and_volumes_from_name_the_task_s_containers() -> TestResult {
    let value = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "db", "image": "x"},
            {"name": "data", "image": "x"},
            {"name": "web", "image": "x", "links": ["db", "db:database"],
             "volumesFrom": [{"sourceContainer": "data", "readOnly": true}, {"sourceContainer": "db"}]}
        ]
    });
    let spec = spec_of(value.clone(), "web", None)?;
    assert_eq!(
        spec.links,
        vec![
            "berth-abc123-db:db".to_owned(),
            "berth-abc123-db:database".to_owned()
        ]
    );
    assert_eq!(
        spec.volumes_from,
        vec![
            "berth-abc123-data:ro".to_owned(),
            "berth-abc123-db".to_owned()
        ]
    );
    // Links exist on the bridge only.
    let mut host = value;
    host["networkMode"] = json!("host");
    assert!(spec_of(host, "web", None)?.links.is_empty());
    assert_eq!(link_target("db:database"), "db");
    assert_eq!(link_target("db"), "db");
    Ok(())
}

#[test]
fn volumes_are_host_paths_docker_volumes_or_the_task_s_own() -> TestResult {
    let value = json!({
        "family": "web",
        "volumes": [
            {"name": "logs", "host": {"sourcePath": "/var/log/web"}},
            {"name": "scratch"},
            {"name": "empty-host", "host": {}},
            {"name": "cache", "dockerVolumeConfiguration": {"scope": "task", "driver": "local", "labels": {"k": "v"}}},
            {"name": "shared", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true}},
            {"name": "existing", "dockerVolumeConfiguration": {"scope": "shared"}}
        ],
        "containerDefinitions": [{
            "name": "web", "image": "x",
            "mountPoints": [
                {"sourceVolume": "logs", "containerPath": "/logs", "readOnly": true},
                {"sourceVolume": "scratch", "containerPath": "/tmp/scratch"},
                {"sourceVolume": "empty-host", "containerPath": "/e"},
                {"sourceVolume": "cache", "containerPath": "/cache"},
                {"sourceVolume": "shared", "containerPath": "/shared"},
                {"sourceVolume": "existing", "containerPath": "/existing"}
            ]
        }]
    });
    let spec = spec_of(value.clone(), "web", None)?;
    let mount = |source: MountSource, target: &str, read_only: bool| Mount {
        source,
        target: target.to_owned(),
        read_only,
    };
    assert_eq!(
        spec.mounts,
        vec![
            mount(
                MountSource::HostPath("/var/log/web".to_owned()),
                "/logs",
                true
            ),
            mount(
                MountSource::Volume("berth-abc123-scratch".to_owned()),
                "/tmp/scratch",
                false
            ),
            mount(
                MountSource::Volume("berth-abc123-empty-host".to_owned()),
                "/e",
                false
            ),
            mount(
                MountSource::Volume("berth-abc123-cache".to_owned()),
                "/cache",
                false
            ),
            mount(MountSource::Volume("shared".to_owned()), "/shared", false),
            mount(
                MountSource::Volume("existing".to_owned()),
                "/existing",
                false
            ),
        ]
    );
    let ctx = context(value, None)?;
    let created: Vec<(String, Option<String>)> = ctx
        .volumes_to_create()
        .into_iter()
        .map(|v| (v.name, v.driver))
        .collect();
    assert_eq!(
        created,
        vec![
            ("berth-abc123-cache".to_owned(), Some("local".to_owned())),
            ("berth-abc123-empty-host".to_owned(), None),
            ("berth-abc123-scratch".to_owned(), None),
            ("shared".to_owned(), None),
        ]
    );
    let cache = &ctx.volumes["cache"];
    let labels = &cache.create.as_ref().ok_or("not created")?.labels;
    assert_eq!(labels.get("k").map(String::as_str), Some("v"));
    assert_eq!(labels.get(labels::TASK_ARN).map(String::as_str), Some(TASK));
    assert_eq!(
        ctx.volumes_to_remove(),
        vec![
            "berth-abc123-cache".to_owned(),
            "berth-abc123-empty-host".to_owned(),
            "berth-abc123-scratch".to_owned(),
        ]
    );
    Ok(())
}

#[test]
fn unsupported_or_unknown_volumes_are_errors() -> TestResult {
    let efs = json!({
        "family": "web",
        "volumes": [{"name": "fs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
        "containerDefinitions": [{"name": "web", "image": "x"}]
    });
    let error = TaskContext::new(TASK, CLUSTER, INSTANCE, &definition(efs)?, None)
        .err()
        .ok_or("accepted")?;
    assert_eq!(
        error,
        SpecError::UnsupportedVolume {
            volume: "fs".to_owned(),
            kind: "efs"
        }
    );
    let unknown = one(json!({"name": "web", "image": "x",
                            "mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}));
    let error = spec_of(unknown, "web", None).err().ok_or("accepted")?;
    assert!(
        error.to_string().contains("unknown volume \"nope\""),
        "{error}"
    );
    let no_image = one(json!({"name": "web"}));
    assert!(spec_of(no_image, "web", None).is_err());
    Ok(())
}

#[test]
fn task_namespaces_are_shared_through_the_first_independent_container() -> TestResult {
    let value = json!({
        "family": "web", "pidMode": "task", "ipcMode": "task",
        "containerDefinitions": [
            {"name": "app", "image": "x", "dependsOn": [{"containerName": "db", "condition": "START"}]},
            {"name": "db", "image": "x"}
        ]
    });
    let ctx = context(value.clone(), None)?;
    assert_eq!(ctx.namespace_anchor.as_deref(), Some("db"));
    let db = spec_of(value.clone(), "db", None)?;
    assert_eq!(
        (db.pid_mode, db.ipc_mode.as_deref()),
        (None, Some("shareable"))
    );
    let app = spec_of(value, "app", None)?;
    assert_eq!(app.pid_mode.as_deref(), Some("container:berth-abc123-db"));
    assert_eq!(app.ipc_mode.as_deref(), Some("container:berth-abc123-db"));

    let host = json!({
        "family": "web", "pidMode": "host", "ipcMode": "none",
        "containerDefinitions": [{"name": "web", "image": "x"}]
    });
    assert_eq!(context(host.clone(), None)?.namespace_anchor, None);
    let spec = spec_of(host, "web", None)?;
    assert_eq!(
        (spec.pid_mode.as_deref(), spec.ipc_mode.as_deref()),
        (Some("host"), Some("none"))
    );
    Ok(())
}

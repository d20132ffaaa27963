use std::collections::BTreeMap;

use berth_proto::{DesiredStatus, DesiredTask};
use serde_json::json;

use super::*;
use crate::runtime::PortBound;
use crate::runtime::Protocol;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn now() -> Now {
    Now {
        at: Instant::now(),
        epoch: 2_000_000.0,
    }
}

fn state(status: Status) -> ContainerState {
    ContainerState {
        id: "c1".to_owned(),
        name: "berth-t1-app".to_owned(),
        image: "app".to_owned(),
        labels: BTreeMap::new(),
        status,
        exit_code: None,
        oom_killed: false,
        error: None,
        started_at: None,
        finished_at: None,
        health: None,
        ports: Vec::new(),
    }
}

fn model(definition: serde_json::Value) -> Result<TaskModel, serde_json::Error> {
    let desired = DesiredTask {
        task_arn: "arn:aws:ecs:us-east-1:123456789012:task/default/t1".to_owned(),
        cluster_arn: "c".to_owned(),
        desired_status: DesiredStatus::Running,
        task_definition: serde_json::from_value(definition)?,
        stopped_reason: None,
        effective_network_mode: None,
        known_status: None,
    };
    Ok(TaskModel::from_desired(&desired, "i", &Defaults::default()))
}

#[test]
fn an_oom_kill_says_so_with_137() {
    let mut container = ContainerModel::new("app".to_owned(), &Defaults::default());
    let mut exited = state(Status::Exited);
    exited.oom_killed = true;
    exited.exit_code = Some(1);
    container.apply_state(&exited, now());
    assert_eq!(container.phase, Phase::Stopped);
    assert_eq!(container.exit_code, Some(137));
    assert_eq!(container.reason.as_deref(), Some(OOM_REASON));
    assert!(container.exited());
}

#[test]
fn an_inspection_adds_what_it_knows_and_never_goes_back() {
    let n = now();
    let mut container = ContainerModel::new("app".to_owned(), &Defaults::default());
    let mut running = state(Status::Running);
    running.started_at = Some(n.epoch - 30.0);
    running.ports = vec![PortBound {
        container_port: 80,
        host_port: 32768,
        protocol: Protocol::Tcp,
        bind_ip: "0.0.0.0".to_owned(),
    }];
    container.apply_state(&running, n);
    assert_eq!(container.phase, Phase::Running);
    assert_eq!(container.runtime_id.as_deref(), Some("c1"));
    assert_eq!(container.started_epoch, Some(n.epoch - 30.0));
    // Started 30 s before `n`, in monotonic terms too (when the clock allows it).
    if let Some(expected) = n.at.checked_sub(Duration::from_secs(30)) {
        assert_eq!(container.started_at, Some(expected));
    }
    let mut exited = state(Status::Exited);
    exited.exit_code = Some(3);
    exited.error = Some("task failed".to_owned());
    container.apply_state(&exited, n);
    assert_eq!(container.phase, Phase::Stopped);
    assert_eq!(container.exit_code, Some(3));
    assert_eq!(container.reason.as_deref(), Some("task failed"));
    // Exited, a container keeps the bindings it had.
    assert_eq!(container.ports.len(), 1);
    container.apply_state(&state(Status::Running), n);
    assert_eq!(container.phase, Phase::Stopped);
}

#[test]
fn failures_are_worded_once() {
    assert_eq!(
        failure(
            "CannotPullContainerError",
            &RuntimeError::Pull("denied".to_owned())
        ),
        "CannotPullContainerError: denied"
    );
    assert_eq!(
        failure(
            "CannotPullContainerError",
            &RuntimeError::Engine("down".to_owned())
        ),
        "CannotPullContainerError: container runtime failure: down"
    );
}

#[test]
fn dependencies_include_links_volumes_from_and_shared_namespaces() -> TestResult {
    let t = model(json!({
        "family": "f", "pidMode": "task",
        "containerDefinitions": [
            {"name": "base", "image": "x"},
            {"name": "web", "image": "x", "links": ["db:database"], "volumesFrom": [{"sourceContainer": "data"}],
             "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}], "startTimeout": 9, "stopTimeout": 4},
            {"name": "db", "image": "x"},
            {"name": "data", "image": "x"}
        ]
    }))?;
    let web = t.container("web").ok_or("no web")?;
    let dependencies: Vec<(&str, Condition)> = web
        .dependencies
        .iter()
        .map(|d| (d.container.as_str(), d.condition))
        .collect();
    assert_eq!(
        dependencies,
        vec![
            ("db", Condition::Healthy),
            ("db", Condition::Start),
            ("data", Condition::Created),
            ("base", Condition::Start),
        ]
    );
    assert_eq!(web.start_timeout, Duration::from_secs(9));
    assert_eq!(web.stop_timeout, Duration::from_secs(4));
    let base = t.container("base").ok_or("no base")?;
    assert!(base.dependencies.is_empty(), "the anchor waits for no one");
    assert_eq!(base.start_timeout, Defaults::default().start_timeout);
    assert_eq!(base.stop_timeout, Duration::from_secs(30));
    assert_eq!(t.invalid, None);
    Ok(())
}

#[test]
fn an_adopted_container_keeps_its_identity_when_the_definition_comes() -> TestResult {
    let n = now();
    let mut running = state(Status::Running);
    running.health = Some(Health::Healthy);
    let mut t = TaskModel::adopted(
        "arn:aws:ecs:us-east-1:123456789012:task/default/t1",
        "c",
        vec![
            ("app".to_owned(), running),
            ("stray".to_owned(), state(Status::Exited)),
        ],
        &Defaults::default(),
        n,
    );
    assert_eq!(t.container_named_by_id("c1"), Some("app"));
    let desired = DesiredTask {
        task_arn: t.task_arn.clone(),
        cluster_arn: "c".to_owned(),
        desired_status: DesiredStatus::Running,
        task_definition: serde_json::from_value(json!({
            "family": "f",
            "containerDefinitions": [{"name": "app", "image": "x", "healthCheck": {"command": ["CMD", "true"]}}]
        }))?,
        stopped_reason: None,
        effective_network_mode: None,
        known_status: None,
    };
    t.attach_definition(&desired, "i", &Defaults::default());
    let app = t.container("app").ok_or("no app")?;
    assert_eq!(app.phase, Phase::Running);
    assert_eq!(app.runtime_id.as_deref(), Some("c1"));
    assert_eq!(app.health, Some(Health::Healthy));
    assert!(app.spec.is_ok());
    // A container the definition does not name is kept, to be removed with the task.
    let stray = t.container("stray").ok_or("no stray")?;
    assert!(!stray.essential);
    // Attaching again changes nothing.
    let before = t.clone();
    t.attach_definition(&desired, "i", &Defaults::default());
    assert_eq!(t, before);
    Ok(())
}

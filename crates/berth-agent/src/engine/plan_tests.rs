use std::collections::BTreeMap;
use std::time::Duration;

use berth_proto::{DesiredStatus, DesiredTask, HealthStatus, StopCode, TaskStatus};
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::engine::model::{Defaults, Outcome, STOPPED_BY_USER};
use crate::runtime::{ContainerState, RuntimeError, Status};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn task(definition: serde_json::Value) -> Result<TaskModel, serde_json::Error> {
    let desired = DesiredTask {
        task_arn: "arn:aws:ecs:us-east-1:123456789012:task/default/t1".to_owned(),
        cluster_arn: "arn:aws:ecs:us-east-1:123456789012:cluster/default".to_owned(),
        desired_status: DesiredStatus::Running,
        task_definition: serde_json::from_value(definition)?,
        stopped_reason: None,
        effective_network_mode: None,
        known_status: None,
    };
    Ok(TaskModel::from_desired(
        &desired,
        "instance",
        &Defaults::default(),
    ))
}

fn containers(list: serde_json::Value) -> serde_json::Value {
    json!({"family": "f", "containerDefinitions": list})
}

fn at(start: Instant, seconds: u64) -> Now {
    Now {
        at: start + Duration::from_secs(seconds),
        epoch: 1_000_000.0 + seconds as f64,
    }
}

fn state(id: &str, status: Status, exit_code: Option<i64>, now: Now) -> ContainerState {
    ContainerState {
        id: id.to_owned(),
        name: id.to_owned(),
        image: "img".to_owned(),
        labels: BTreeMap::new(),
        status,
        exit_code,
        oom_killed: false,
        error: None,
        started_at: Some(now.epoch),
        finished_at: None,
        health: None,
        ports: Vec::new(),
    }
}

fn id(container: &str) -> String {
    format!("id-{container}")
}

/// The runtime doing what it is asked, successfully.
fn succeed(task: &mut TaskModel, actions: Vec<Action>, now: Now) {
    for action in actions {
        let outcome = match action {
            Action::CreateVolumes(_) => Outcome::VolumesCreated(Ok(())),
            Action::CreateTaskCgroup { task_id, .. } => {
                Outcome::TaskCgroupCreated(Ok(Some(format!("/berth/{task_id}"))))
            }
            Action::Pull { container, .. } => Outcome::Pulled {
                container,
                result: Ok(()),
            },
            Action::Create { container, .. } => Outcome::Created {
                result: Ok(id(&container)),
                container,
            },
            Action::Start { container, id } => Outcome::Started {
                container,
                result: Ok(()),
                state: Some(state(&id, Status::Running, None, now)),
            },
            Action::Stop { container, id, .. } => Outcome::Stopped {
                container,
                result: Ok(()),
                state: Some(state(&id, Status::Exited, Some(143), now)),
            },
            Action::Cleanup { .. } => Outcome::CleanedUp,
        };
        task.apply(outcome, now);
    }
}

/// Plans once, and the runtime does it all.
fn step(task: &mut TaskModel, now: Now) -> Vec<String> {
    let actions = next_actions(task, now);
    let done = kinds(&actions);
    succeed(task, actions, now);
    done
}

/// Plans and succeeds until nothing more is asked.
fn run_quietly(task: &mut TaskModel, now: Now) {
    for _ in 0..20 {
        let actions = next_actions(task, now);
        if actions.is_empty() {
            return;
        }
        succeed(task, actions, now);
    }
}

fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::CreateVolumes(v) => format!("volumes {}", v.len()),
            Action::CreateTaskCgroup { task_id, .. } => format!("cgroup {task_id}"),
            Action::Pull { container, .. } => format!("pull {container}"),
            Action::Create { container, .. } => format!("create {container}"),
            Action::Start { container, .. } => format!("start {container}"),
            Action::Stop {
                container, timeout, ..
            } => format!("stop {container} {}", timeout.as_secs()),
            Action::Cleanup {
                containers,
                volumes,
                ..
            } => format!("cleanup {} {}", containers.len(), volumes.len()),
        })
        .collect()
}

fn phase(task: &TaskModel, name: &str) -> Option<Phase> {
    task.container(name).map(|c| c.phase)
}

fn exit(task: &mut TaskModel, name: &str, code: i64, now: Now) {
    task.apply(
        Outcome::Inspected {
            container: name.to_owned(),
            result: Ok(state(&id(name), Status::Exited, Some(code), now)),
        },
        now,
    );
}

fn set_health(task: &mut TaskModel, name: &str, health: Health, now: Now) {
    task.apply(
        Outcome::Health {
            container: name.to_owned(),
            health,
        },
        now,
    );
}

// --- dependency_state, one condition at a time ---

fn dependency() -> Result<ContainerModel, Box<dyn std::error::Error>> {
    let model = task(containers(json!([{
        "name": "dep", "image": "x", "startTimeout": 10,
        "healthCheck": {"command": ["CMD", "true"]}
    }])))?;
    Ok(model.containers[0].clone())
}

#[test]
fn created_is_met_once_the_container_exists() -> TestResult {
    let start = Instant::now();
    let mut dep = dependency()?;
    assert_eq!(
        dependency_state(&dep, Condition::Created, start),
        DependencyState::Waiting
    );
    dep.runtime_id = Some("x".to_owned());
    dep.phase = Phase::Created;
    assert_eq!(
        dependency_state(&dep, Condition::Created, start),
        DependencyState::Satisfied
    );
    let mut failed = dependency()?;
    failed.fail("CannotPullContainerError: x");
    assert!(matches!(
        dependency_state(&failed, Condition::Created, start),
        DependencyState::Impossible(_)
    ));
    Ok(())
}

#[test]
fn start_is_met_once_it_ran_even_if_it_exited() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut dep = dependency()?;
    assert_eq!(
        dependency_state(&dep, Condition::Start, now.at),
        DependencyState::Waiting
    );
    dep.apply_state(&state("x", Status::Running, None, now), now);
    assert_eq!(
        dependency_state(&dep, Condition::Start, now.at),
        DependencyState::Satisfied
    );
    dep.apply_state(&state("x", Status::Exited, Some(1), now), now);
    assert_eq!(
        dependency_state(&dep, Condition::Start, now.at),
        DependencyState::Satisfied
    );
    let mut failed = dependency()?;
    failed.fail("CannotStartContainerError: x");
    assert!(matches!(
        dependency_state(&failed, Condition::Start, now.at),
        DependencyState::Impossible(_)
    ));
    Ok(())
}

#[test]
fn complete_is_met_by_any_exit_within_the_start_timeout() -> TestResult {
    let start = Instant::now();
    let now = at(start, 0);
    let mut dep = dependency()?;
    assert_eq!(
        dependency_state(&dep, Condition::Complete, now.at),
        DependencyState::Waiting
    );
    dep.apply_state(&state("x", Status::Running, None, now), now);
    assert_eq!(
        dependency_state(&dep, Condition::Complete, at(start, 9).at),
        DependencyState::Waiting
    );
    let late = dependency_state(&dep, Condition::Complete, at(start, 10).at);
    assert_eq!(
        late,
        DependencyState::Impossible("did not reach COMPLETE within 10s of starting".to_owned())
    );
    dep.apply_state(&state("x", Status::Exited, Some(3), now), now);
    assert_eq!(
        dependency_state(&dep, Condition::Complete, at(start, 60).at),
        DependencyState::Satisfied
    );
    Ok(())
}

#[test]
fn success_needs_exit_code_zero() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut dep = dependency()?;
    dep.apply_state(&state("x", Status::Running, None, now), now);
    assert_eq!(
        dependency_state(&dep, Condition::Success, now.at),
        DependencyState::Waiting
    );
    let mut zero = dep.clone();
    zero.apply_state(&state("x", Status::Exited, Some(0), now), now);
    assert_eq!(
        dependency_state(&zero, Condition::Success, now.at),
        DependencyState::Satisfied
    );
    dep.apply_state(&state("x", Status::Exited, Some(2), now), now);
    assert_eq!(
        dependency_state(&dep, Condition::Success, now.at),
        DependencyState::Impossible("exited with code 2".to_owned())
    );
    Ok(())
}

#[test]
fn healthy_needs_a_passing_health_check() -> TestResult {
    let start = Instant::now();
    let now = at(start, 0);
    let mut dep = dependency()?;
    dep.apply_state(&state("x", Status::Running, None, now), now);
    dep.health = Some(Health::Starting);
    assert_eq!(
        dependency_state(&dep, Condition::Healthy, now.at),
        DependencyState::Waiting
    );
    assert!(matches!(
        dependency_state(&dep, Condition::Healthy, at(start, 10).at),
        DependencyState::Impossible(_)
    ));
    let mut healthy = dep.clone();
    healthy.health = Some(Health::Healthy);
    assert_eq!(
        dependency_state(&healthy, Condition::Healthy, now.at),
        DependencyState::Satisfied
    );
    let mut unhealthy = dep.clone();
    unhealthy.health = Some(Health::Unhealthy);
    assert_eq!(
        dependency_state(&unhealthy, Condition::Healthy, now.at),
        DependencyState::Impossible("is unhealthy".to_owned())
    );
    let mut exited = healthy.clone();
    exited.apply_state(&state("x", Status::Exited, Some(0), now), now);
    assert!(matches!(
        dependency_state(&exited, Condition::Healthy, now.at),
        DependencyState::Impossible(_)
    ));
    let mut unchecked = dep;
    unchecked.has_health_check = false;
    assert_eq!(
        dependency_state(&unchecked, Condition::Healthy, now.at),
        DependencyState::Impossible("has no health check".to_owned())
    );
    Ok(())
}

// --- the lifecycle ---

#[test]
fn pulls_go_first_and_in_parallel_then_independent_containers_start_together() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([
        {"name": "app", "image": "app", "dependsOn": [{"containerName": "db", "condition": "START"}]},
        {"name": "db", "image": "db"},
        {"name": "cache", "image": "cache"}
    ])))?;
    let actions = next_actions(&mut t, now);
    assert_eq!(kinds(&actions), ["pull app", "pull db", "pull cache"]);
    assert_eq!(t.pull_started_at, Some(now.epoch));
    assert!(next_actions(&mut t, now).is_empty(), "nothing twice");
    succeed(&mut t, actions, now);
    let actions = next_actions(&mut t, now);
    assert_eq!(kinds(&actions), ["create db", "create cache"]);
    succeed(&mut t, actions, now);
    let actions = next_actions(&mut t, now);
    assert_eq!(kinds(&actions), ["start db", "start cache"]);
    assert_eq!(t.status, TaskStatus::Pending);
    succeed(&mut t, actions, now);
    let actions = next_actions(&mut t, now);
    assert_eq!(kinds(&actions), ["create app"]);
    succeed(&mut t, actions, now);
    let actions = next_actions(&mut t, now);
    assert_eq!(kinds(&actions), ["start app"]);
    assert_eq!(t.status, TaskStatus::Pending);
    succeed(&mut t, actions, now);
    assert!(next_actions(&mut t, now).is_empty());
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.started_at, Some(now.epoch));
    Ok(())
}

#[test]
fn complete_dependencies_count_as_started_for_running() -> TestResult {
    let start = Instant::now();
    let mut t = task(containers(json!([
        {"name": "init", "image": "init", "essential": false},
        {"name": "app", "image": "app", "dependsOn": [{"containerName": "init", "condition": "COMPLETE"}]}
    ])))?;
    run_quietly(&mut t, at(start, 0));
    assert_eq!(phase(&t, "init"), Some(Phase::Running));
    assert_eq!(phase(&t, "app"), Some(Phase::Pulled));
    exit(&mut t, "init", 5, at(start, 3));
    assert_eq!(step(&mut t, at(start, 3)), ["create app"]);
    run_quietly(&mut t, at(start, 3));
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(t.stop, None);
    Ok(())
}

#[test]
fn a_success_dependency_failing_fails_the_task() -> TestResult {
    let start = Instant::now();
    let mut t = task(containers(json!([
        {"name": "init", "image": "init", "essential": false},
        {"name": "app", "image": "app", "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}
    ])))?;
    run_quietly(&mut t, at(start, 0));
    exit(&mut t, "init", 1, at(start, 1));
    let actions = next_actions(&mut t, at(start, 1));
    assert!(
        actions.iter().all(|a| matches!(a, Action::Cleanup { .. })),
        "{actions:?}"
    );
    assert_eq!(t.status, TaskStatus::Stopped);
    let stop = t.stop.clone().ok_or("not stopping")?;
    assert_eq!(stop.code, Some(StopCode::TaskFailedToStart));
    assert_eq!(
        stop.reason,
        "DependencyError: container app depends on container init (SUCCESS), which exited with code 1"
    );
    assert_eq!(
        t.container("app").and_then(|c| c.reason.clone()),
        Some(stop.reason)
    );
    Ok(())
}

#[test]
fn healthy_dependencies_wait_for_health_and_time_out() -> TestResult {
    let start = Instant::now();
    let definition = containers(json!([
        {"name": "db", "image": "db", "startTimeout": 20, "healthCheck": {"command": ["CMD", "true"]}},
        {"name": "app", "image": "app", "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}
    ]));
    let mut t = task(definition.clone())?;
    run_quietly(&mut t, at(start, 0));
    assert_eq!(phase(&t, "app"), Some(Phase::Pulled));
    assert_eq!(next_deadline(&t), Some(start + Duration::from_secs(20)));
    set_health(&mut t, "db", Health::Healthy, at(start, 5));
    assert_eq!(kinds(&next_actions(&mut t, at(start, 5))), ["create app"]);

    let mut late = task(definition)?;
    run_quietly(&mut late, at(start, 0));
    assert!(next_actions(&mut late, at(start, 19)).is_empty());
    let actions = next_actions(&mut late, at(start, 20));
    assert_eq!(kinds(&actions), ["stop db 30"]);
    let stop = late.stop.clone().ok_or("not stopping")?;
    assert_eq!(stop.code, Some(StopCode::TaskFailedToStart));
    assert!(stop.reason.contains("within 20s"), "{}", stop.reason);
    assert_eq!(late.status, TaskStatus::Stopping);
    Ok(())
}

#[test]
fn an_essential_exit_stops_the_others_dependents_first() -> TestResult {
    let start = Instant::now();
    let mut t = task(containers(json!([
        {"name": "db", "image": "db", "essential": false},
        {"name": "app", "image": "app", "stopTimeout": 5, "dependsOn": [{"containerName": "db", "condition": "START"}]},
        {"name": "proxy", "image": "proxy", "links": ["app"]},
        {"name": "worker", "image": "worker", "dependsOn": [{"containerName": "db", "condition": "START"}]}
    ])))?;
    run_quietly(&mut t, at(start, 0));
    assert_eq!(t.status, TaskStatus::Running);
    exit(&mut t, "worker", 0, at(start, 1));
    let actions = next_actions(&mut t, at(start, 1));
    let stop = t.stop.clone().ok_or("not stopping")?;
    assert_eq!(stop.reason, ESSENTIAL_EXITED);
    assert_eq!(stop.code, Some(StopCode::EssentialContainerExited));
    // proxy links to app: it goes first; db waits for app.
    assert_eq!(kinds(&actions), ["stop proxy 30"]);
    succeed(&mut t, actions, at(start, 2));
    let actions = next_actions(&mut t, at(start, 2));
    assert_eq!(kinds(&actions), ["stop app 5"]);
    succeed(&mut t, actions, at(start, 3));
    let actions = next_actions(&mut t, at(start, 3));
    assert_eq!(kinds(&actions), ["stop db 30"]);
    assert_eq!(t.status, TaskStatus::Stopping);
    succeed(&mut t, actions, at(start, 4));
    let actions = next_actions(&mut t, at(start, 4));
    assert_eq!(kinds(&actions), ["cleanup 4 0"]);
    assert_eq!(t.status, TaskStatus::Stopped);
    assert_eq!(t.execution_stopped_at, Some(at(start, 4).epoch));
    succeed(&mut t, actions, at(start, 4));
    assert!(t.cleanup_done);
    assert!(next_actions(&mut t, at(start, 5)).is_empty());
    Ok(())
}

#[test]
fn a_non_essential_exit_or_failure_does_not_stop_the_task() -> TestResult {
    let start = Instant::now();
    let mut t = task(containers(json!([
        {"name": "app", "image": "app"},
        {"name": "side", "image": "side", "essential": false},
        {"name": "broken", "image": "broken", "essential": false}
    ])))?;
    let actions = next_actions(&mut t, at(start, 0));
    for action in actions {
        match action {
            Action::Pull { container, .. } if container == "broken" => t.apply(
                Outcome::Pulled {
                    container,
                    result: Err(RuntimeError::Pull("denied".to_owned())),
                },
                at(start, 0),
            ),
            other => succeed(&mut t, vec![other], at(start, 0)),
        }
    }
    run_quietly(&mut t, at(start, 0));
    assert_eq!(t.status, TaskStatus::Running);
    assert_eq!(
        t.container("broken")
            .and_then(|c| c.reason.clone())
            .as_deref(),
        Some("CannotPullContainerError: denied")
    );
    exit(&mut t, "side", 1, at(start, 1));
    assert!(next_actions(&mut t, at(start, 1)).is_empty());
    assert_eq!((t.status, t.stop.clone()), (TaskStatus::Running, None));
    Ok(())
}

#[test]
fn an_essential_container_that_cannot_be_pulled_fails_the_task() -> TestResult {
    let start = Instant::now();
    let mut t = task(containers(json!([
        {"name": "app", "image": "app"},
        {"name": "side", "image": "side", "essential": false}
    ])))?;
    let _ = next_actions(&mut t, at(start, 0));
    t.apply(
        Outcome::Pulled {
            container: "app".to_owned(),
            result: Err(RuntimeError::Pull("manifest unknown".to_owned())),
        },
        at(start, 1),
    );
    let actions = next_actions(&mut t, at(start, 1));
    let stop = t.stop.clone().ok_or("not stopping")?;
    assert_eq!(stop.reason, "CannotPullContainerError: manifest unknown");
    assert_eq!(stop.code, Some(StopCode::TaskFailedToStart));
    // side was still pulling: it is abandoned, and the task is stopped at once.
    assert_eq!(phase(&t, "side"), Some(Phase::Stopped));
    assert_eq!(t.status, TaskStatus::Stopped);
    assert_eq!(kinds(&actions), ["cleanup 0 0"]);
    // The late pull result changes nothing.
    t.apply(
        Outcome::Pulled {
            container: "side".to_owned(),
            result: Ok(()),
        },
        at(start, 2),
    );
    assert_eq!(phase(&t, "side"), Some(Phase::Stopped));
    Ok(())
}

#[test]
fn create_and_start_failures_are_worded_as_ecs_words_them() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([{"name": "app", "image": "app"}])))?;
    step(&mut t, now);
    let _ = next_actions(&mut t, now);
    t.apply(
        Outcome::Created {
            container: "app".to_owned(),
            result: Err(RuntimeError::Create("name in use".to_owned())),
        },
        now,
    );
    let _ = next_actions(&mut t, now);
    assert_eq!(
        t.stop.clone().map(|s| s.reason),
        Some("CannotCreateContainerError: name in use".to_owned())
    );

    let mut t = task(containers(json!([{"name": "app", "image": "app"}])))?;
    step(&mut t, now);
    step(&mut t, now);
    let _ = next_actions(&mut t, now);
    t.apply(
        Outcome::Started {
            container: "app".to_owned(),
            result: Err(RuntimeError::Engine("daemon down".to_owned())),
            state: None,
        },
        now,
    );
    let actions = next_actions(&mut t, now);
    assert_eq!(
        t.stop.clone().map(|s| s.reason),
        Some("CannotStartContainerError: container runtime failure: daemon down".to_owned())
    );
    // It was created: cleanup removes it.
    assert_eq!(
        actions,
        vec![Action::Cleanup {
            containers: vec![id("app")],
            volumes: vec![],
            task_id: "t1".to_owned(),
        }]
    );
    Ok(())
}

#[test]
fn a_spec_that_cannot_be_made_fails_at_creation() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([
        {"name": "app", "image": "app", "mountPoints": [{"sourceVolume": "missing", "containerPath": "/x"}]}
    ])))?;
    step(&mut t, now);
    let _ = next_actions(&mut t, now);
    let stop = t.stop.clone().ok_or("not stopping")?;
    assert!(
        stop.reason.starts_with(
            "CannotCreateContainerError: container app: mount point refers to unknown volume"
        ),
        "{}",
        stop.reason
    );
    assert_eq!(t.status, TaskStatus::Stopped);
    Ok(())
}

#[test]
fn a_task_that_cannot_be_run_fails_at_once() -> TestResult {
    let now = at(Instant::now(), 0);
    for (definition, expected) in [
        (
            containers(json!([
                {"name": "a", "image": "x", "dependsOn": [{"containerName": "b", "condition": "START"}]},
                {"name": "b", "image": "x", "volumesFrom": [{"sourceContainer": "a"}]}
            ])),
            "form a cycle",
        ),
        (
            containers(json!([
                {"name": "a", "image": "x", "dependsOn": [{"containerName": "ghost", "condition": "START"}]}
            ])),
            "unknown container ghost",
        ),
        (
            json!({"family": "f", "volumes": [{"name": "v", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}],
                   "containerDefinitions": [{"name": "a", "image": "x"}]}),
            "efs volumes are not supported",
        ),
    ] {
        let mut t = task(definition)?;
        let actions = next_actions(&mut t, now);
        assert_eq!(kinds(&actions), ["cleanup 0 0"]);
        let stop = t.stop.clone().ok_or("not stopping")?;
        assert!(stop.reason.contains(expected), "{}", stop.reason);
        assert_eq!(stop.code, Some(StopCode::TaskFailedToStart));
        assert_eq!(t.status, TaskStatus::Stopped);
        assert!(
            t.containers
                .iter()
                .all(|c| c.reason.as_deref() == Some(stop.reason.as_str()))
        );
    }
    Ok(())
}

#[test]
fn volumes_come_before_containers_and_their_failure_fails_the_task() -> TestResult {
    let now = at(Instant::now(), 0);
    let definition = json!({"family": "f", "volumes": [{"name": "v"}],
                            "containerDefinitions": [{"name": "a", "image": "x",
                              "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}]}]});
    let mut t = task(definition.clone())?;
    let actions = next_actions(&mut t, now);
    assert_eq!(kinds(&actions), ["volumes 1", "pull a"]);
    t.apply(
        Outcome::Pulled {
            container: "a".to_owned(),
            result: Ok(()),
        },
        now,
    );
    assert!(
        next_actions(&mut t, now).is_empty(),
        "no creation before the volumes"
    );
    t.apply(Outcome::VolumesCreated(Ok(())), now);
    assert_eq!(kinds(&next_actions(&mut t, now)), ["create a"]);

    let mut t = task(definition)?;
    let _ = next_actions(&mut t, now);
    t.apply(
        Outcome::VolumesCreated(Err(RuntimeError::Engine("disk full".to_owned()))),
        now,
    );
    let actions = next_actions(&mut t, now);
    let stop = t.stop.clone().ok_or("not stopping")?;
    assert_eq!(
        stop.reason,
        "CannotCreateVolumeError: container runtime failure: disk full"
    );
    assert_eq!(kinds(&actions), ["cleanup 0 1"]);
    Ok(())
}

#[test]
fn a_stop_waits_for_requests_in_flight() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([{"name": "a", "image": "x"}])))?;
    step(&mut t, now);
    let creating = next_actions(&mut t, now);
    assert_eq!(kinds(&creating), ["create a"]);
    t.request_stop(StopCause::new(
        STOPPED_BY_USER,
        Some(StopCode::UserInitiated),
    ));
    assert!(next_actions(&mut t, now).is_empty());
    assert_eq!(t.status, TaskStatus::Stopping);
    // Created, never started: nothing to stop, but something to remove.
    succeed(&mut t, creating, now);
    let actions = next_actions(&mut t, now);
    assert_eq!(
        actions,
        vec![Action::Cleanup {
            containers: vec![id("a")],
            volumes: vec![],
            task_id: "t1".to_owned(),
        }]
    );
    assert_eq!(t.status, TaskStatus::Stopped);
    assert_eq!(
        t.stop.clone().map(|s| s.reason).as_deref(),
        Some(STOPPED_BY_USER)
    );
    Ok(())
}

#[test]
fn the_first_stop_cause_is_kept() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([{"name": "a", "image": "x"}])))?;
    run_quietly(&mut t, now);
    exit(&mut t, "a", 1, now);
    let _ = next_actions(&mut t, now);
    t.request_stop(StopCause::new("later", Some(StopCode::UserInitiated)));
    let _ = next_actions(&mut t, now);
    assert_eq!(
        t.stop,
        Some(StopCause::new(
            ESSENTIAL_EXITED,
            Some(StopCode::EssentialContainerExited)
        ))
    );
    Ok(())
}

#[test]
fn a_failed_stop_is_tried_again_later() -> TestResult {
    let start = Instant::now();
    let mut t = task(containers(json!([{"name": "a", "image": "x"}])))?;
    run_quietly(&mut t, at(start, 0));
    t.request_stop(StopCause::new("bye", None));
    let actions = next_actions(&mut t, at(start, 0));
    assert_eq!(kinds(&actions), ["stop a 30"]);
    t.apply(
        Outcome::Stopped {
            container: "a".to_owned(),
            result: Err(RuntimeError::Engine("timeout".to_owned())),
            state: None,
        },
        at(start, 1),
    );
    assert!(next_actions(&mut t, at(start, 1)).is_empty());
    assert_eq!(next_deadline(&t), Some(start + Duration::from_secs(6)));
    assert_eq!(kinds(&next_actions(&mut t, at(start, 6))), ["stop a 30"]);
    Ok(())
}

#[test]
fn the_status_only_moves_forward() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([{"name": "a", "image": "x"}])))?;
    run_quietly(&mut t, now);
    assert_eq!(t.status, TaskStatus::Running);
    // A stale inspection saying "created" does not take it back.
    t.apply(
        Outcome::Inspected {
            container: "a".to_owned(),
            result: Ok(state(&id("a"), Status::Created, None, now)),
        },
        now,
    );
    let _ = next_actions(&mut t, now);
    assert_eq!(phase(&t, "a"), Some(Phase::Running));
    assert_eq!(t.status, TaskStatus::Running);
    Ok(())
}

#[test]
fn task_health_is_that_of_the_essential_containers_with_checks() -> TestResult {
    let now = at(Instant::now(), 0);
    let check = json!({"command": ["CMD", "true"]});
    let mut t = task(containers(json!([
        {"name": "a", "image": "x", "healthCheck": check},
        {"name": "b", "image": "x", "healthCheck": check},
        {"name": "c", "image": "x"},
        {"name": "d", "image": "x", "essential": false, "healthCheck": check}
    ])))?;
    assert_eq!(task_health(&t), HealthStatus::Unknown);
    set_health(&mut t, "a", Health::Healthy, now);
    assert_eq!(task_health(&t), HealthStatus::Unknown);
    set_health(&mut t, "b", Health::Healthy, now);
    assert_eq!(task_health(&t), HealthStatus::Healthy);
    set_health(&mut t, "d", Health::Unhealthy, now);
    assert_eq!(task_health(&t), HealthStatus::Healthy, "d is not essential");
    set_health(&mut t, "a", Health::Unhealthy, now);
    assert_eq!(task_health(&t), HealthStatus::Unhealthy);
    set_health(&mut t, "b", Health::Starting, now);
    assert_eq!(task_health(&t), HealthStatus::Unhealthy);
    // Containers without a check report no health, and record none.
    set_health(&mut t, "c", Health::Healthy, now);
    let c = t.container("c").ok_or("no c")?;
    assert_eq!((c.health, container_health(c)), (None, None));
    let b = t.container("b").ok_or("no b")?;
    assert_eq!(container_health(b), Some(HealthStatus::Unknown));

    let unchecked = task(containers(json!([{"name": "a", "image": "x"}])))?;
    assert_eq!(task_health(&unchecked), HealthStatus::Unknown);
    Ok(())
}

#[test]
fn an_adopted_task_is_only_watched_until_its_definition_comes() -> TestResult {
    let now = at(Instant::now(), 0);
    let running = state("id-app", Status::Running, None, now);
    let exited = state("id-init", Status::Exited, Some(0), now);
    let mut t = TaskModel::adopted(
        "arn:aws:ecs:us-east-1:123456789012:task/default/t1",
        "cluster",
        vec![("app".to_owned(), running), ("init".to_owned(), exited)],
        &Defaults::default(),
        now,
    );
    assert!(next_actions(&mut t, now).is_empty());
    // Until its definition comes, which containers are still to start is unknown.
    assert_eq!(t.status, TaskStatus::Pending);
    assert_eq!(t.started_at, None);
    // Without the definition, the last exit ends it, but nothing is removed yet.
    exit(&mut t, "app", 2, now);
    assert!(next_actions(&mut t, now).is_empty());
    assert_eq!(t.status, TaskStatus::Stopped);
    assert_eq!(
        t.stop.clone().map(|s| s.code),
        Some(Some(StopCode::EssentialContainerExited))
    );
    t.request_stop(StopCause::new("gone", None));
    assert_eq!(kinds(&next_actions(&mut t, now)), ["cleanup 2 0"]);
    Ok(())
}

#[test]
fn an_adopted_task_given_its_definition_goes_on() -> TestResult {
    let now = at(Instant::now(), 0);
    let definition = containers(json!([
        {"name": "init", "image": "init", "essential": false},
        {"name": "app", "image": "app", "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]},
        {"name": "late", "image": "late", "dependsOn": [{"containerName": "app", "condition": "START"}]}
    ]));
    let desired = DesiredTask {
        task_arn: "arn:aws:ecs:us-east-1:123456789012:task/default/t1".to_owned(),
        cluster_arn: "cluster".to_owned(),
        desired_status: DesiredStatus::Running,
        task_definition: serde_json::from_value(definition)?,
        stopped_reason: None,
        effective_network_mode: None,
        known_status: None,
    };
    let mut t = TaskModel::adopted(
        &desired.task_arn,
        "cluster",
        vec![
            (
                "app".to_owned(),
                state("id-app", Status::Running, None, now),
            ),
            (
                "init".to_owned(),
                state("id-init", Status::Exited, Some(0), now),
            ),
        ],
        &Defaults::default(),
        now,
    );
    let _ = next_actions(&mut t, now);
    t.attach_definition(&desired, "instance", &Defaults::default());
    assert!(t.definition_known && t.cleanup_allowed);
    assert_eq!(t.status, TaskStatus::Pending);
    // The container the agent had not created yet is pulled, created and started; the
    // others are left alone.
    assert_eq!(step(&mut t, now), ["pull late"]);
    run_quietly(&mut t, now);
    assert_eq!(phase(&t, "late"), Some(Phase::Running));
    assert_eq!(
        t.container("app").and_then(|c| c.runtime_id.clone()),
        Some(id("app"))
    );
    assert_eq!(t.stop, None);
    Ok(())
}

#[test]
fn task_limits_make_a_cgroup_before_any_container_is_created() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(json!({
        "family": "f", "cpu": "0.5 vCPU", "memory": "1 GB",
        "containerDefinitions": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]
    }))?;
    assert_eq!(t.limits, TaskLimits::new(Some(512), Some(1024)));
    let first = next_actions(&mut t, now);
    assert_eq!(
        first.first(),
        Some(&Action::CreateTaskCgroup {
            task_id: "t1".to_owned(),
            limits: TaskLimits::new(Some(512), Some(1024)),
        })
    );
    assert_eq!(kinds(&first)[1..], ["pull a", "pull b"]);
    // Pulled, but the cgroup is not there yet: nothing is created.
    for container in ["a", "b"] {
        t.apply(
            Outcome::Pulled {
                container: container.to_owned(),
                result: Ok(()),
            },
            now,
        );
    }
    assert!(next_actions(&mut t, now).is_empty());
    t.apply(
        Outcome::TaskCgroupCreated(Ok(Some("/berth/t1".to_owned()))),
        now,
    );
    let creates = next_actions(&mut t, now);
    assert_eq!(kinds(&creates), ["create a", "create b"]);
    for action in &creates {
        let Action::Create { spec, .. } = action else {
            return Err(format!("not a create: {action:?}").into());
        };
        assert_eq!(spec.cgroup_parent.as_deref(), Some("/berth/t1"));
    }
    Ok(())
}

#[test]
fn a_host_without_task_cgroups_still_runs_the_task() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(json!({
        "family": "f", "memory": "64",
        "containerDefinitions": [{"name": "a", "image": "a"}]
    }))?;
    assert_eq!(kinds(&next_actions(&mut t, now)), ["cgroup t1", "pull a"]);
    t.apply(
        Outcome::TaskCgroupCreated(Err(RuntimeError::TaskCgroup("read-only".to_owned()))),
        now,
    );
    t.apply(
        Outcome::Pulled {
            container: "a".to_owned(),
            result: Ok(()),
        },
        now,
    );
    let creates = next_actions(&mut t, now);
    let [Action::Create { spec, .. }] = creates.as_slice() else {
        return Err(format!("{creates:?}").into());
    };
    assert_eq!(spec.cgroup_parent, None);
    succeed(&mut t, creates, now);
    run_quietly(&mut t, now);
    assert_eq!(t.status, TaskStatus::Running);
    Ok(())
}

#[test]
fn without_task_limits_there_is_no_cgroup_to_make() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(containers(json!([{"name": "a", "image": "a"}])))?;
    assert_eq!(t.cgroup, CgroupPhase::Ready(None));
    assert_eq!(kinds(&next_actions(&mut t, now)), ["pull a"]);
    Ok(())
}

#[test]
fn a_stop_while_the_cgroup_is_made_waits_for_it_before_cleanup() -> TestResult {
    let now = at(Instant::now(), 0);
    let mut t = task(json!({
        "family": "f", "cpu": "256",
        "containerDefinitions": [{"name": "a", "image": "a"}]
    }))?;
    assert_eq!(kinds(&next_actions(&mut t, now)), ["cgroup t1", "pull a"]);
    t.request_stop(StopCause::new(STOPPED_BY_USER, None));
    assert!(next_actions(&mut t, now).is_empty());
    assert_eq!(t.status, TaskStatus::Stopping);
    t.apply(
        Outcome::TaskCgroupCreated(Ok(Some("/berth/t1".to_owned()))),
        now,
    );
    assert_eq!(kinds(&next_actions(&mut t, now)), ["cleanup 0 0"]);
    assert_eq!(t.status, TaskStatus::Stopped);
    Ok(())
}

//! The engine against the fake runtime, in paused tokio time: every wait is for a
//! condition, with a deadline in virtual time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_proto::{
    ContainerStateChange, ContainerStatus, DesiredStatus, DesiredTask, HealthStatus, StopCode,
    TaskStateChange, TaskStatus, labels,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{ESSENTIAL_EXITED, EngineIdentity, NOT_DESIRED, OOM_REASON, TaskEngine};
use crate::runtime::fake::{Behaviour, FakeRuntime, HealthScript};
use crate::runtime::{
    ContainerSpec, ContainerState, Health, HostInfo, PullPolicy, Runtime, RuntimeError,
    RuntimeEvent, TaskLimits,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLUSTER: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/default";
const INSTANCE: &str = "arn:aws:ecs:us-east-1:123456789012:container-instance/default/i-1";
const OTHER_INSTANCE: &str = "arn:aws:ecs:us-east-1:123456789012:container-instance/default/i-2";
/// Long enough for any test's virtual time; reached only when a test is stuck.
const DEADLINE: Duration = Duration::from_secs(3600);

fn task_arn(id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/default/{id}")
}

fn name(task: &str, container: &str) -> String {
    format!("berth-{task}-{container}")
}

fn desired(task: &str, definition: serde_json::Value) -> Result<DesiredTask, serde_json::Error> {
    Ok(DesiredTask {
        task_arn: task_arn(task),
        cluster_arn: CLUSTER.to_owned(),
        desired_status: DesiredStatus::Running,
        task_definition: serde_json::from_value(definition)?,
        stopped_reason: None,
        effective_network_mode: None,
        known_status: None,
    })
}

fn stopping(mut task: DesiredTask, reason: &str) -> DesiredTask {
    task.desired_status = DesiredStatus::Stopped;
    task.stopped_reason = Some(reason.to_owned());
    task
}

/// One call to the runtime, with container names rather than ids.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Pull(String),
    Create(String),
    Start(String),
    Stop(String, Duration),
    Remove(String),
    EnsureVolume(String),
    RemoveVolume(String),
    EnsureTaskCgroup(String),
    RemoveTaskCgroup(String),
}

/// The fake runtime, recording the calls made to it, and able to lose events (as a
/// broken engine stream does).
struct Recording {
    fake: FakeRuntime,
    calls: Mutex<Vec<(Instant, Call)>>,
    deaf: Arc<AtomicBool>,
}

impl Recording {
    fn new(fake: FakeRuntime) -> Arc<Self> {
        Arc::new(Self {
            fake,
            calls: Mutex::new(Vec::new()),
            deaf: Arc::new(AtomicBool::new(false)),
        })
    }

    fn record(&self, call: Call) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((Instant::now(), call));
        }
    }

    fn name_of(&self, id: &str) -> String {
        self.fake.spec(id).map_or_else(|| id.to_owned(), |s| s.name)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .map(|c| c.iter().map(|(_, call)| call.clone()).collect())
            .unwrap_or_default()
    }

    fn when(&self, wanted: &Call) -> Option<Instant> {
        self.calls
            .lock()
            .ok()?
            .iter()
            .find(|(_, call)| call == wanted)
            .map(|(at, _)| *at)
    }

    fn position(&self, wanted: &Call) -> Option<usize> {
        self.calls().iter().position(|call| call == wanted)
    }

    fn stops(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Stop(..)))
            .collect()
    }
}

#[async_trait::async_trait]
impl Runtime for Recording {
    async fn host_info(&self) -> Result<HostInfo, RuntimeError> {
        self.fake.host_info().await
    }

    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        self.record(Call::Pull(image.to_owned()));
        self.fake.ensure_image(image, policy).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.record(Call::Create(spec.name.clone()));
        self.fake.create(spec).await
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(Call::Start(self.name_of(id)));
        self.fake.start(id).await
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.record(Call::Stop(self.name_of(id), timeout));
        self.fake.stop(id, timeout).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.record(Call::Remove(self.name_of(id)));
        self.fake.remove(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        self.fake.inspect(id).await
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerState>, RuntimeError> {
        self.fake.list(labels).await
    }

    async fn ensure_volume(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        self.record(Call::EnsureVolume(name.to_owned()));
        self.fake.ensure_volume(name, driver, labels).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.record(Call::RemoveVolume(name.to_owned()));
        self.fake.remove_volume(name).await
    }

    async fn ensure_task_cgroup(
        &self,
        task_id: &str,
        limits: &TaskLimits,
    ) -> Result<Option<String>, RuntimeError> {
        self.record(Call::EnsureTaskCgroup(task_id.to_owned()));
        self.fake.ensure_task_cgroup(task_id, limits).await
    }

    async fn remove_task_cgroup(&self, task_id: &str) -> Result<(), RuntimeError> {
        self.record(Call::RemoveTaskCgroup(task_id.to_owned()));
        self.fake.remove_task_cgroup(task_id).await
    }

    fn events(&self) -> BoxStream<'static, RuntimeEvent> {
        let deaf = self.deaf.clone();
        self.fake
            .events()
            .filter(move |event| {
                let lost = deaf.load(Ordering::SeqCst) && !matches!(event, RuntimeEvent::Resync);
                futures::future::ready(!lost)
            })
            .boxed()
    }
}

/// An engine on a fake host, and the reports it sends.
struct Harness {
    fake: FakeRuntime,
    runtime: Arc<Recording>,
    engine: TaskEngine,
    reports: mpsc::Receiver<TaskStateChange>,
    seen: Vec<TaskStateChange>,
}

impl Harness {
    fn new() -> Self {
        let fake = FakeRuntime::new();
        fake.set_auto_pull(true);
        Self::on(fake)
    }

    /// An engine of instance [`INSTANCE`] on `fake`'s host.
    fn on(fake: FakeRuntime) -> Self {
        let runtime = Recording::new(fake.clone());
        let (sender, reports) = mpsc::channel(1024);
        let engine = TaskEngine::new(
            runtime.clone(),
            EngineIdentity {
                cluster_arn: CLUSTER.to_owned(),
                instance_arn: INSTANCE.to_owned(),
            },
            sender,
        );
        Self {
            fake,
            runtime,
            engine,
            reports,
            seen: Vec::new(),
        }
    }

    /// The first report of `task` (from those not yet waited past) that satisfies `check`.
    async fn wait_for(
        &mut self,
        task: &str,
        what: &str,
        check: impl Fn(&TaskStateChange) -> bool,
    ) -> Result<TaskStateChange, String> {
        let arn = task_arn(task);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let report = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .map_err(|_| format!("{task}: no report with {what}; seen: {:#?}", self.seen))?
                .ok_or("the engine is gone")?;
            self.seen.push(report.clone());
            if report.task_arn == arn && check(&report) {
                return Ok(report);
            }
        }
    }

    async fn wait_status(
        &mut self,
        task: &str,
        status: TaskStatus,
    ) -> Result<TaskStateChange, String> {
        self.wait_for(task, status.as_str(), |r| r.status == status)
            .await
    }

    /// Lets every runnable task run (the engine settles) without moving the clock.
    async fn settle(&self) {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }
}

fn container<'a>(
    report: &'a TaskStateChange,
    name: &str,
) -> Result<&'a ContainerStateChange, String> {
    report
        .containers
        .iter()
        .find(|c| c.container_name == name)
        .ok_or_else(|| format!("no container {name} in {report:#?}"))
}

fn two_containers() -> serde_json::Value {
    json!({
        "family": "web", "revision": 3,
        "containerDefinitions": [
            {"name": "app", "image": "app"},
            {"name": "sidecar", "image": "sidecar", "essential": false}
        ]
    })
}

#[tokio::test(start_paused = true)]
async fn a_task_runs_and_reports_bindings_labels_and_times() -> TestResult {
    let mut h = Harness::new();
    let definition = json!({
        "family": "web", "revision": 3,
        "containerDefinitions": [{
            "name": "app", "image": "nginx",
            "portMappings": [{"containerPort": 80, "hostPort": 0}],
            "dockerLabels": {"team": "blue"}
        }]
    });
    h.engine.apply(vec![desired("t1", definition)?], false);
    // The steps of the start (pulled, created) are not reports of their own: the
    // control plane has the task PENDING from the start, and the first report is the
    // task RUNNING, with everything the start went through.
    let running = h.wait_for("t1", "a first report", |_| true).await?;
    assert_eq!(running.status, TaskStatus::Running);
    assert_eq!(running.cluster, CLUSTER);
    assert_eq!(h.seen.len(), 1, "{:?}", h.seen);
    let app = container(&running, "app")?;
    assert_eq!(app.status, ContainerStatus::Running);
    assert!(app.runtime_id.is_some());
    assert_eq!(app.network_bindings.len(), 1);
    assert_eq!(app.network_bindings[0].container_port, 80);
    assert_ne!(app.network_bindings[0].host_port, 0);
    assert_eq!(app.network_bindings[0].protocol, "tcp");
    assert!(running.pull_started_at.is_some() && running.pull_stopped_at.is_some());
    assert!(running.started_at.is_some());
    assert_eq!(running.health_status, Some(HealthStatus::Unknown));
    let spec = h.fake.spec(&name("t1", "app")).ok_or("no container")?;
    assert_eq!(spec.labels.get(labels::TASK_ARN), Some(&task_arn("t1")));
    assert_eq!(
        spec.labels.get(labels::INSTANCE_ARN).map(String::as_str),
        Some(INSTANCE)
    );
    assert_eq!(
        spec.labels.get(labels::TASK_VERSION).map(String::as_str),
        Some("3")
    );
    assert_eq!(spec.labels.get("team").map(String::as_str), Some("blue"));
    // Message ids are unique; known_states has the newest report.
    let mut ids: Vec<&str> = h.seen.iter().map(|r| r.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), h.seen.len());
    assert_eq!(h.engine.known_states(), vec![running]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn start_dependency_waits_for_the_dependency_to_start() -> TestResult {
    let mut h = Harness::new();
    h.fake.set_pull_delay(Duration::from_secs(1));
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "app", "image": "app", "dependsOn": [{"containerName": "db", "condition": "START"}]},
            {"name": "db", "image": "db"},
            {"name": "cache", "image": "cache"}
        ]
    });
    h.engine.apply(vec![desired("t1", definition)?], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    let r = &h.runtime;
    let db_started = r
        .position(&Call::Start(name("t1", "db")))
        .ok_or("db not started")?;
    let app_created = r
        .position(&Call::Create(name("t1", "app")))
        .ok_or("app not created")?;
    assert!(db_started < app_created, "{:#?}", r.calls());
    // Pulls and containers without dependencies go in parallel.
    let pulls: Vec<Instant> = ["app", "db", "cache"]
        .iter()
        .filter_map(|image| r.when(&Call::Pull((*image).to_owned())))
        .collect();
    assert_eq!(pulls.len(), 3);
    assert!(pulls.iter().all(|t| *t == pulls[0]));
    assert_eq!(
        r.when(&Call::Create(name("t1", "db"))),
        r.when(&Call::Create(name("t1", "cache")))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn complete_dependency_waits_for_the_exit_whatever_the_code() -> TestResult {
    let mut h = Harness::new();
    h.fake
        .on_image("init", Behaviour::exits_after(Duration::from_secs(5), 3));
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "init", "image": "init", "essential": false},
            {"name": "app", "image": "app", "dependsOn": [{"containerName": "init", "condition": "COMPLETE"}]}
        ]
    });
    let begin = Instant::now();
    h.engine.apply(vec![desired("t1", definition)?], false);
    let running = h.wait_status("t1", TaskStatus::Running).await?;
    let init = container(&running, "init")?;
    assert_eq!(
        (init.status, init.exit_code),
        (ContainerStatus::Stopped, Some(3))
    );
    assert_eq!(container(&running, "app")?.status, ContainerStatus::Running);
    let created = h
        .runtime
        .when(&Call::Create(name("t1", "app")))
        .ok_or("app not created")?;
    assert!(created >= begin + Duration::from_secs(5));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn success_dependency_starts_after_exit_zero() -> TestResult {
    let mut h = Harness::new();
    h.fake
        .on_image("migrate", Behaviour::exits_after(Duration::from_secs(2), 0));
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "migrate", "image": "migrate", "essential": false},
            {"name": "app", "image": "app", "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]}
        ]
    });
    h.engine.apply(vec![desired("t1", definition)?], false);
    let running = h.wait_status("t1", TaskStatus::Running).await?;
    assert_eq!(container(&running, "migrate")?.exit_code, Some(0));
    assert_eq!(container(&running, "app")?.status, ContainerStatus::Running);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn success_dependency_exiting_non_zero_fails_the_task() -> TestResult {
    let mut h = Harness::new();
    h.fake
        .on_image("migrate", Behaviour::exits_after(Duration::from_secs(2), 1));
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "migrate", "image": "migrate", "essential": false},
            {"name": "app", "image": "app", "dependsOn": [{"containerName": "migrate", "condition": "SUCCESS"}]}
        ]
    });
    h.engine.apply(vec![desired("t1", definition)?], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.stop_code, Some(StopCode::TaskFailedToStart));
    let reason = stopped.reason.clone().unwrap_or_default();
    assert!(reason.contains("exited with code 1"), "{reason}");
    let app = container(&stopped, "app")?;
    assert_eq!(app.status, ContainerStatus::Stopped);
    assert_eq!(app.reason.as_deref(), Some(reason.as_str()));
    assert_eq!(h.runtime.position(&Call::Create(name("t1", "app"))), None);
    Ok(())
}

fn healthy_dependency(start_timeout: Option<i32>) -> serde_json::Value {
    let mut db = json!({
        "name": "db", "image": "db",
        "healthCheck": {"command": ["CMD-SHELL", "pg_isready"], "interval": 5}
    });
    if let Some(timeout) = start_timeout {
        db["startTimeout"] = json!(timeout);
    }
    json!({
        "family": "web",
        "containerDefinitions": [
            db,
            {"name": "app", "image": "app", "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}
        ]
    })
}

#[tokio::test(start_paused = true)]
async fn healthy_dependency_waits_for_the_health_check() -> TestResult {
    let mut h = Harness::new();
    h.fake
        .on_image("db", Behaviour::default().with_health(HealthScript::Manual));
    h.engine
        .apply(vec![desired("t1", healthy_dependency(None))?], false);
    h.wait_for("t1", "db running", |r| {
        r.containers
            .iter()
            .any(|c| c.container_name == "db" && c.status == ContainerStatus::Running)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    h.settle().await;
    assert_eq!(h.runtime.position(&Call::Create(name("t1", "app"))), None);
    let pending = h
        .engine
        .known_state(&task_arn("t1"))
        .ok_or("unknown task")?;
    assert_eq!(pending.status, TaskStatus::Pending);
    assert_eq!(
        container(&pending, "db")?.health_status,
        Some(HealthStatus::Unknown)
    );

    h.fake.set_health(&name("t1", "db"), Health::Healthy)?;
    let running = h.wait_status("t1", TaskStatus::Running).await?;
    assert_eq!(
        container(&running, "db")?.health_status,
        Some(HealthStatus::Healthy)
    );
    assert_eq!(running.health_status, Some(HealthStatus::Healthy));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn healthy_dependency_turning_unhealthy_fails_the_task() -> TestResult {
    let mut h = Harness::new();
    h.fake.on_image(
        "db",
        Behaviour::default().with_health(HealthScript::After(
            Duration::from_secs(3),
            Health::Unhealthy,
        )),
    );
    h.engine
        .apply(vec![desired("t1", healthy_dependency(None))?], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.stop_code, Some(StopCode::TaskFailedToStart));
    assert!(
        stopped
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("unhealthy")
    );
    assert_eq!(h.runtime.position(&Call::Create(name("t1", "app"))), None);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_misses_its_start_timeout_fails_the_task() -> TestResult {
    let mut h = Harness::new();
    h.fake
        .on_image("db", Behaviour::default().with_health(HealthScript::Manual));
    // Measured from before the task is given: the timeout starts when db starts,
    // which may be a (virtual) moment before the test sees it running.
    let begin = Instant::now();
    h.engine
        .apply(vec![desired("t1", healthy_dependency(Some(10)))?], false);
    let running = h
        .wait_for("t1", "db running", |r| {
            r.containers
                .iter()
                .any(|c| c.container_name == "db" && c.status == ContainerStatus::Running)
        })
        .await?;
    let _ = running;
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    let waited = Instant::now() - begin;
    // The dependency had its whole start timeout (virtual time: the clock is paused).
    // The engine dates db's start from the runtime's wall-clock timestamp, mapped onto
    // the monotonic clock; with the monotonic clock paused, that start may land before
    // `begin` by the real time the machine took between db starting and the engine
    // seeing it (milliseconds on a busy machine), hence the margin.
    assert!(waited >= Duration::from_millis(9_900), "{waited:?}");
    assert_eq!(stopped.stop_code, Some(StopCode::TaskFailedToStart));
    let reason = stopped.reason.unwrap_or_default();
    assert!(reason.contains("within 10s"), "{reason}");
    // db ran, so it was stopped.
    assert!(
        h.runtime
            .stops()
            .contains(&Call::Stop(name("t1", "db"), Duration::from_secs(30)))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_essential_exit_stops_the_task() -> TestResult {
    let mut h = Harness::new();
    h.engine
        .apply(vec![desired("t1", two_containers())?], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    h.fake.exit(&name("t1", "app"), 2)?;
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.reason.as_deref(), Some(ESSENTIAL_EXITED));
    assert_eq!(stopped.stop_code, Some(StopCode::EssentialContainerExited));
    assert!(stopped.execution_stopped_at.is_some());
    let app = container(&stopped, "app")?;
    assert_eq!(
        (app.status, app.exit_code),
        (ContainerStatus::Stopped, Some(2))
    );
    let sidecar = container(&stopped, "sidecar")?;
    assert_eq!(
        (sidecar.status, sidecar.exit_code),
        (ContainerStatus::Stopped, Some(143))
    );
    // The containers are removed once the task is reported STOPPED.
    let deadline = Instant::now() + DEADLINE;
    while h.fake.container_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.fake.container_count(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_finished_task_is_forgotten_by_the_first_delta_that_does_not_list_it() -> TestResult {
    let mut h = Harness::new();
    let t1 = desired("t1", two_containers())?;
    h.engine.apply(vec![t1.clone()], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    h.engine.apply(vec![stopping(t1.clone(), "done")], false);
    h.wait_status("t1", TaskStatus::Stopped).await?;
    // Its runner says it finished once the containers are cleaned up.
    let deadline = Instant::now() + DEADLINE;
    while h.engine.shared.finished().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.engine.shared.finished().len(), 1);
    assert_eq!(h.fake.container_count(), 0);
    // A delta that lists it again keeps it (its definition goes to the finished
    // runner and is ignored; nothing starts again).
    h.engine.apply(vec![stopping(t1, "done")], false);
    assert!(h.engine.known_state(&task_arn("t1")).is_some());
    assert_eq!(h.engine.shared.finished().len(), 1);
    // The next delta that does not list it forgets it, and the notice with it.
    h.engine
        .apply(vec![desired("t2", two_containers())?], false);
    assert!(h.engine.known_state(&task_arn("t1")).is_none());
    assert!(h.engine.known_state(&task_arn("t2")).is_some());
    assert!(h.engine.shared.finished().is_empty());
    h.wait_status("t2", TaskStatus::Running).await?;
    assert_eq!(
        h.runtime
            .calls()
            .iter()
            .filter(|call| **call == Call::Start(name("t1", "app")))
            .count(),
        1
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_non_essential_exit_does_not_stop_the_task() -> TestResult {
    let mut h = Harness::new();
    h.engine
        .apply(vec![desired("t1", two_containers())?], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    h.fake.exit(&name("t1", "sidecar"), 0)?;
    let report = h
        .wait_for("t1", "sidecar stopped", |r| {
            r.containers
                .iter()
                .any(|c| c.container_name == "sidecar" && c.status == ContainerStatus::Stopped)
        })
        .await?;
    assert_eq!(report.status, TaskStatus::Running);
    assert_eq!(report.reason, None);
    tokio::time::sleep(Duration::from_secs(60)).await;
    h.settle().await;
    let known = h
        .engine
        .known_state(&task_arn("t1"))
        .ok_or("unknown task")?;
    assert_eq!(known.status, TaskStatus::Running);
    assert_eq!(h.fake.running_count(), 1);
    assert!(h.runtime.stops().is_empty());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_stop_goes_dependents_first_with_each_stop_timeout() -> TestResult {
    let mut h = Harness::new();
    // app takes its whole stop timeout: db must wait for it.
    h.fake.on_image("app", Behaviour::ignores_sigterm());
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "db", "image": "db"},
            {"name": "app", "image": "app", "stopTimeout": 7,
             "dependsOn": [{"containerName": "db", "condition": "START"}]},
            {"name": "proxy", "image": "proxy", "stopTimeout": 12,
             "dependsOn": [{"containerName": "app", "condition": "START"}]},
            {"name": "logs", "image": "logs", "essential": false}
        ]
    });
    let task = desired("t1", definition)?;
    h.engine.apply(vec![task.clone()], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    h.engine.apply(vec![stopping(task, "Scaling down")], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.reason.as_deref(), Some("Scaling down"));
    assert_eq!(stopped.stop_code, Some(StopCode::UserInitiated));
    assert_eq!(container(&stopped, "app")?.exit_code, Some(137));
    let stops = h.runtime.stops();
    let position = |c: &str, timeout: u64| {
        stops
            .iter()
            .position(|s| *s == Call::Stop(name("t1", c), Duration::from_secs(timeout)))
    };
    let (proxy, app, db) = (
        position("proxy", 12),
        position("app", 7),
        position("db", 30),
    );
    assert!(
        proxy.is_some() && app.is_some() && db.is_some(),
        "{stops:#?}"
    );
    assert!(proxy < app && app < db, "{stops:#?}");
    assert!(position("logs", 30).is_some());
    let app_stop = h
        .runtime
        .when(&Call::Stop(name("t1", "app"), Duration::from_secs(7)));
    let db_stop = h
        .runtime
        .when(&Call::Stop(name("t1", "db"), Duration::from_secs(30)));
    let (Some(app_stop), Some(db_stop)) = (app_stop, db_stop) else {
        return Err("missing stops".into());
    };
    assert!(db_stop >= app_stop + Duration::from_secs(7));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_image_that_cannot_be_pulled_fails_the_task() -> TestResult {
    let mut h = Harness::on(FakeRuntime::new());
    h.fake.add_image("sidecar");
    h.engine
        .apply(vec![desired("t1", two_containers())?], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.stop_code, Some(StopCode::TaskFailedToStart));
    let app = container(&stopped, "app")?;
    let reason = app.reason.clone().unwrap_or_default();
    assert!(reason.starts_with("CannotPullContainerError: "), "{reason}");
    assert!(
        !reason.contains("CannotPullContainerError: CannotPull"),
        "{reason}"
    );
    assert_eq!(stopped.reason, Some(reason));
    assert_eq!(app.runtime_id, None);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_container_that_cannot_start_fails_the_task() -> TestResult {
    let mut h = Harness::new();
    h.fake.on_image(
        "app",
        Behaviour::fails_to_start("exec: \"nope\": executable file not found"),
    );
    h.engine
        .apply(vec![desired("t1", two_containers())?], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.stop_code, Some(StopCode::TaskFailedToStart));
    let reason = container(&stopped, "app")?
        .reason
        .clone()
        .unwrap_or_default();
    assert!(
        reason.starts_with("CannotStartContainerError: exec"),
        "{reason}"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_oom_kill_is_reported_with_its_reason_and_137() -> TestResult {
    let mut h = Harness::new();
    h.fake
        .on_image("app", Behaviour::oom_after(Duration::from_secs(5)));
    h.engine
        .apply(vec![desired("t1", two_containers())?], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    let app = container(&stopped, "app")?;
    assert_eq!(app.reason.as_deref(), Some(OOM_REASON));
    assert_eq!(app.exit_code, Some(137));
    assert_eq!(stopped.stop_code, Some(StopCode::EssentialContainerExited));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn task_health_follows_its_essential_containers() -> TestResult {
    let mut h = Harness::new();
    let check = json!({"command": ["CMD", "true"], "interval": 10});
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "app", "image": "app", "healthCheck": check},
            {"name": "sidecar", "image": "sidecar", "essential": false, "healthCheck": check}
        ]
    });
    h.fake.on_image(
        "sidecar",
        Behaviour::default().with_health(HealthScript::Manual),
    );
    h.engine.apply(vec![desired("t1", definition)?], false);
    let healthy = h
        .wait_for("t1", "HEALTHY", |r| {
            r.health_status == Some(HealthStatus::Healthy)
        })
        .await?;
    // The non-essential container's health does not count.
    assert_eq!(
        container(&healthy, "sidecar")?.health_status,
        Some(HealthStatus::Unknown)
    );
    h.fake.set_health(&name("t1", "app"), Health::Unhealthy)?;
    let unhealthy = h
        .wait_for("t1", "UNHEALTHY", |r| {
            r.health_status == Some(HealthStatus::Unhealthy)
        })
        .await?;
    assert_eq!(unhealthy.status, TaskStatus::Running);
    assert_eq!(
        container(&unhealthy, "app")?.health_status,
        Some(HealthStatus::Unhealthy)
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn task_scoped_volumes_live_as_long_as_the_task() -> TestResult {
    let mut h = Harness::new();
    let definition = json!({
        "family": "web",
        "volumes": [{"name": "scratch"}],
        "containerDefinitions": [
            {"name": "app", "image": "app", "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/data"}]},
            {"name": "reader", "image": "reader", "volumesFrom": [{"sourceContainer": "app", "readOnly": true}]}
        ]
    });
    let task = desired("t1", definition)?;
    h.engine.apply(vec![task.clone()], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    assert!(h.fake.has_volume("berth-t1-scratch"));
    let volume_at = h
        .runtime
        .position(&Call::EnsureVolume("berth-t1-scratch".to_owned()));
    let create_at = h.runtime.position(&Call::Create(name("t1", "app")));
    assert!(volume_at.is_some() && volume_at < create_at);
    h.engine.apply(vec![stopping(task, "done")], false);
    h.wait_status("t1", TaskStatus::Stopped).await?;
    let deadline = Instant::now() + DEADLINE;
    while h.fake.has_volume("berth-t1-scratch") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!h.fake.has_volume("berth-t1-scratch"));
    assert_eq!(h.fake.container_count(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_full_state_stops_the_tasks_it_leaves_out() -> TestResult {
    let mut h = Harness::new();
    let t1 = desired("t1", two_containers())?;
    let t2 = desired("t2", two_containers())?;
    h.engine.apply(vec![t1.clone(), t2], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    h.wait_status("t2", TaskStatus::Running).await?;
    h.engine.apply(vec![t1], true);
    let stopped = h.wait_status("t2", TaskStatus::Stopped).await?;
    assert_eq!(stopped.reason.as_deref(), Some(NOT_DESIRED));
    h.settle().await;
    let states = h.engine.known_states();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].status, TaskStatus::Running);
    // Once stopped and left out again, the task is forgotten.
    let deadline = Instant::now() + DEADLINE;
    while h.fake.container_count() > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.settle().await;
    h.engine.apply(vec![desired("t1", two_containers())?], true);
    assert_eq!(h.engine.known_states().len(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_task_desired_stopped_that_never_ran_is_reported_stopped() -> TestResult {
    let mut h = Harness::new();
    let task = stopping(desired("t1", two_containers())?, "Cancelled");
    h.engine.apply(vec![task], false);
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.reason.as_deref(), Some("Cancelled"));
    assert!(
        stopped
            .containers
            .iter()
            .all(|c| c.status == ContainerStatus::Stopped)
    );
    assert!(
        h.runtime
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Create(_)))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_resync_finds_what_the_lost_events_said() -> TestResult {
    let mut h = Harness::new();
    h.engine
        .apply(vec![desired("t1", two_containers())?], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    h.runtime.deaf.store(true, Ordering::SeqCst);
    h.fake.exit(&name("t1", "app"), 9)?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.settle().await;
    let known = h
        .engine
        .known_state(&task_arn("t1"))
        .ok_or("unknown task")?;
    assert_eq!(known.status, TaskStatus::Running, "the exit was not heard");
    h.runtime.deaf.store(false, Ordering::SeqCst);
    h.fake.resync();
    let stopped = h.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(container(&stopped, "app")?.exit_code, Some(9));
    Ok(())
}

/// Creates (and starts, unless `exit` says it already exited) a container of another
/// instance on the fake host.
async fn foreign_container(fake: &FakeRuntime) -> Result<String, RuntimeError> {
    fake.cache_image("foreign");
    let spec = ContainerSpec {
        name: "berth-other-app".to_owned(),
        image: "foreign".to_owned(),
        labels: BTreeMap::from([
            (labels::INSTANCE_ARN.to_owned(), OTHER_INSTANCE.to_owned()),
            (labels::TASK_ARN.to_owned(), task_arn("other")),
            (labels::CONTAINER_NAME.to_owned(), "app".to_owned()),
        ]),
        ..ContainerSpec::default()
    };
    let id = fake.create(&spec).await?;
    fake.start(&id).await?;
    Ok(id)
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_adopts_its_tasks_without_restarting_them() -> TestResult {
    let fake = FakeRuntime::new();
    fake.set_auto_pull(true);
    fake.on_image("init", Behaviour::exits(0));
    let foreign = foreign_container(&fake).await?;
    let definition = json!({
        "family": "web",
        "containerDefinitions": [
            {"name": "init", "image": "init", "essential": false},
            {"name": "app", "image": "app", "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}
        ]
    });
    let task = desired("t1", definition)?;
    let mut first = Harness::on(fake.clone());
    first.engine.apply(vec![task.clone()], false);
    let before = first.wait_status("t1", TaskStatus::Running).await?;
    first.engine.shutdown().await;
    assert_eq!(
        fake.running_count(),
        2,
        "shutdown leaves containers running"
    );

    let mut second = Harness::on(fake.clone());
    let adopted = second.engine.adopt().await?;
    assert_eq!(adopted, vec![task_arn("t1")]);
    let report = second.wait_for("t1", "the adopted state", |_| true).await?;
    // Not RUNNING before the definition says which containers are still to start.
    assert_eq!(report.status, TaskStatus::Pending);
    let app = container(&report, "app")?;
    assert_eq!(app.status, ContainerStatus::Running);
    assert_eq!(app.runtime_id, container(&before, "app")?.runtime_id);
    let init = container(&report, "init")?;
    assert_eq!(
        (init.status, init.exit_code),
        (ContainerStatus::Stopped, Some(0))
    );

    // The payload comes: the task goes on as it was.
    second.engine.apply(vec![task], true);
    second.settle().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.settle().await;
    let known = second
        .engine
        .known_state(&task_arn("t1"))
        .ok_or("unknown task")?;
    assert_eq!(known.status, TaskStatus::Running);
    assert!(
        second
            .runtime
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Create(_) | Call::Start(_) | Call::Stop(..))),
        "{:#?}",
        second.runtime.calls()
    );

    // And it is followed: the essential container's exit stops it.
    fake.exit(&name("t1", "app"), 4)?;
    let stopped = second.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(container(&stopped, "app")?.exit_code, Some(4));
    // Another instance's container is never touched.
    let foreign_state = fake.inspect(&foreign).await?;
    assert_eq!(foreign_state.status, crate::runtime::Status::Running);
    assert!(
        second
            .runtime
            .calls()
            .iter()
            .all(|c| !format!("{c:?}").contains("berth-other-app"))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_adopted_task_whose_containers_exited_is_reported_stopped() -> TestResult {
    let fake = FakeRuntime::new();
    fake.set_auto_pull(true);
    let task = desired("t1", two_containers())?;
    let mut first = Harness::on(fake.clone());
    first.engine.apply(vec![task.clone()], false);
    first.wait_status("t1", TaskStatus::Running).await?;
    first.engine.shutdown().await;
    // The host rebooted, say.
    fake.exit(&name("t1", "app"), 137)?;
    fake.exit(&name("t1", "sidecar"), 137)?;

    let mut second = Harness::on(fake.clone());
    second.engine.adopt().await?;
    let stopped = second.wait_status("t1", TaskStatus::Stopped).await?;
    assert_eq!(stopped.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(container(&stopped, "app")?.exit_code, Some(137));
    // Kept until the control plane has had its say (the definition may name volumes).
    second.settle().await;
    assert_eq!(fake.container_count(), 2);
    second.engine.apply(vec![], true);
    let deadline = Instant::now() + DEADLINE;
    while fake.container_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.container_count(), 0);
    Ok(())
}

fn limited_task() -> serde_json::Value {
    json!({
        "family": "web", "cpu": "256", "memory": "64",
        "containerDefinitions": [
            {"name": "app", "image": "app"},
            {"name": "sidecar", "image": "sidecar", "essential": false}
        ]
    })
}

/// Waits (in virtual time) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("never: {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn task_limits_put_every_container_in_the_task_cgroup_until_it_stops() -> TestResult {
    let mut h = Harness::new();
    let task = desired("t1", limited_task())?;
    h.engine.apply(vec![task.clone()], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    assert_eq!(
        h.fake.task_cgroup("t1"),
        Some(TaskLimits::new(Some(256), Some(64)))
    );
    for container in ["app", "sidecar"] {
        let spec = h.fake.spec(&name("t1", container)).ok_or("no container")?;
        assert_eq!(
            spec.cgroup_parent.as_deref(),
            Some("/berth/t1"),
            "{container}"
        );
    }
    let made = h.runtime.position(&Call::EnsureTaskCgroup("t1".to_owned()));
    let created = h.runtime.position(&Call::Create(name("t1", "app")));
    assert!(made.is_some() && made < created, "{:#?}", h.runtime.calls());

    h.engine.apply(vec![stopping(task, "done")], false);
    h.wait_status("t1", TaskStatus::Stopped).await?;
    let fake = h.fake.clone();
    eventually("the task cgroup is removed", || {
        fake.task_cgroup_count() == 0
    })
    .await?;
    let removed = h.runtime.position(&Call::RemoveTaskCgroup("t1".to_owned()));
    let last_container = h.runtime.position(&Call::Remove(name("t1", "sidecar")));
    assert!(
        removed.is_some() && removed > last_container,
        "{:#?}",
        h.runtime.calls()
    );
    assert_eq!(h.fake.container_count(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_host_without_task_cgroups_runs_the_task_with_container_limits_only() -> TestResult {
    let fake = FakeRuntime::new();
    fake.set_auto_pull(true);
    fake.set_task_cgroups_supported(false);
    let mut h = Harness::on(fake);
    h.engine.apply(vec![desired("t1", limited_task())?], false);
    h.wait_status("t1", TaskStatus::Running).await?;
    let spec = h.fake.spec(&name("t1", "app")).ok_or("no container")?;
    assert_eq!(spec.cgroup_parent, None);
    assert_eq!(h.fake.task_cgroup_count(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_adopted_task_keeps_its_cgroup_and_removes_it_when_it_stops() -> TestResult {
    let fake = FakeRuntime::new();
    fake.set_auto_pull(true);
    let task = desired("t1", limited_task())?;
    let mut first = Harness::on(fake.clone());
    first.engine.apply(vec![task.clone()], false);
    first.wait_status("t1", TaskStatus::Running).await?;
    first.engine.shutdown().await;
    assert!(
        fake.task_cgroup("t1").is_some(),
        "the cgroup outlives the agent"
    );

    let mut second = Harness::on(fake.clone());
    assert_eq!(second.engine.adopt().await?, vec![task_arn("t1")]);
    second.engine.apply(vec![task.clone()], true);
    second.settle().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.settle().await;
    assert_eq!(
        fake.task_cgroup("t1"),
        Some(TaskLimits::new(Some(256), Some(64)))
    );
    let spec = fake.spec(&name("t1", "app")).ok_or("no container")?;
    assert_eq!(spec.cgroup_parent.as_deref(), Some("/berth/t1"));
    assert!(
        second
            .runtime
            .calls()
            .iter()
            .all(|c| !matches!(c, Call::Create(_) | Call::Start(_))),
        "{:#?}",
        second.runtime.calls()
    );

    fake.exit(&name("t1", "app"), 0)?;
    second.wait_status("t1", TaskStatus::Stopped).await?;
    eventually("the task cgroup is removed", || {
        fake.task_cgroup_count() == 0
    })
    .await?;
    Ok(())
}

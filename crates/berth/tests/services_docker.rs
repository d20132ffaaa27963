//! Services of real Docker tasks, driven through the AWS SDK: steady state, the
//! replacement of a task that died, rolling updates that keep within
//! minimumHealthyPercent and maximumPercent (with and without health checks), the
//! deployment circuit breaker and its rollback, scaling, deletion, forced new
//! deployments, and a control plane killed in the middle of a rollout.
//!
//! The rollouts are watched as they happen: a [`Watcher`] samples the service and its
//! tasks every [`SAMPLE_EVERY`] and checks the bounds at every sample, not only at the
//! end. Each test has its own control plane and removes its containers when it ends,
//! pass or fail (see `common::docker::Stack`).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, Deployment, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentRolloutState, DesiredStatus, HealthCheck, HealthStatus, KeyValuePair,
    LinuxParameters, NetworkMode, PortMapping, Service, Task, TaskStopCode, TransportProtocol,
};
use common::docker::{
    CLUSTER, HELLO, POLL, Stack, TEST_IMAGE, container_of, docker, http_get, runtime_name, task_id,
    wait_stopped,
};
use common::{
    Require, TaskFilter, TestResult, describe_service, describe_task_arns, list_task_arns,
    service_error,
};

/// The task count of the services under test.
const DESIRED: usize = 3;
/// How long a service may take to reach what a test waits for.
const SERVICE_DEADLINE: Duration = Duration::from_secs(60);
/// How often a [`Watcher`] samples a rollout.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// The family of every task definition of these tests (one per control plane).
const FAMILY: &str = "svc-web";
const HTTP_DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// Task definitions and services
// ---------------------------------------------------------------------------------

/// The `web` container: busybox httpd on port 80, published on a dynamic host port,
/// under an init process (which passes SIGTERM on, so stops are quick). `marker` (an
/// environment variable) tells revisions apart; `health` adds a health check that
/// always passes, every 5 s.
fn web_container(marker: &str, health: bool) -> TestResult<ContainerDefinition> {
    let mut builder = ContainerDefinition::builder()
        .name("web")
        .image(TEST_IMAGE)
        .memory(16)
        .essential(true)
        .set_command(Some(
            ["httpd", "-f", "-p", "80", "-h", "/www"]
                .map(str::to_string)
                .to_vec(),
        ))
        .port_mappings(
            PortMapping::builder()
                .container_port(80)
                .host_port(0)
                .protocol(TransportProtocol::Tcp)
                .build(),
        )
        .linux_parameters(
            LinuxParameters::builder()
                .init_process_enabled(true)
                .build(),
        )
        .environment(KeyValuePair::builder().name("MARKER").value(marker).build());
    if health {
        builder = builder.health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("true")
                .interval(5)
                .build()?,
        );
    }
    Ok(builder.build())
}

/// A `web` container whose only process exits 1 at once.
fn crashing_container() -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("web")
        .image(TEST_IMAGE)
        .memory(16)
        .essential(true)
        .set_command(Some(["sh", "-c", "exit 1"].map(str::to_string).to_vec()))
        .linux_parameters(
            LinuxParameters::builder()
                .init_process_enabled(true)
                .build(),
        )
        .build()
}

/// Registers the next revision of [`FAMILY`] (bridge networking); returns its ARN.
async fn register_revision(client: &Client, container: ContainerDefinition) -> TestResult<String> {
    let out = client
        .register_task_definition()
        .family(FAMILY)
        .network_mode(NetworkMode::Bridge)
        .container_definitions(container)
        .send()
        .await?;
    out.task_definition()
        .and_then(|td| td.task_definition_arn())
        .map(str::to_string)
        .req("the task definition ARN")
}

fn rolling(minimum_healthy_percent: i32, maximum_percent: i32) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .minimum_healthy_percent(minimum_healthy_percent)
        .maximum_percent(maximum_percent)
        .build()
}

async fn create_service(
    client: &Client,
    name: &str,
    task_definition: &str,
    desired: usize,
    config: DeploymentConfiguration,
) -> TestResult<Service> {
    let out = client
        .create_service()
        .cluster(CLUSTER)
        .service_name(name)
        .task_definition(task_definition)
        .desired_count(i32::try_from(desired)?)
        .deployment_configuration(config)
        .send()
        .await?;
    out.service().cloned().req("the created service")
}

/// Creates a service and waits for its steady state: `desired` tasks RUNNING (and
/// HEALTHY with `health`), its deployment COMPLETED.
async fn start_service(
    client: &Client,
    name: &str,
    task_definition: &str,
    desired: usize,
    config: DeploymentConfiguration,
    health: bool,
) -> TestResult<Sample> {
    create_service(client, name, task_definition, desired, config).await?;
    wait_sample(client, name, "the service's steady state", |s| {
        rolled_out(s, task_definition, desired, health).map(|()| s.clone())
    })
    .await
}

async fn update_task_definition(
    client: &Client,
    name: &str,
    task_definition: &str,
) -> TestResult<Service> {
    let out = client
        .update_service()
        .cluster(CLUSTER)
        .service(name)
        .task_definition(task_definition)
        .send()
        .await?;
    out.service().cloned().req("the updated service")
}

fn primary_of(service: &Service) -> Option<&Deployment> {
    service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
}

/// The revision part (`N`) of a task definition ARN (`...:N`).
fn revision(arn: Option<&str>) -> &str {
    arn.and_then(|a| a.rsplit(':').next()).unwrap_or("?")
}

// ---------------------------------------------------------------------------------
// Samples of a service and its tasks
// ---------------------------------------------------------------------------------

/// ListTasks of the service's tasks of one desired status, every page.
async fn list_service_tasks(
    client: &Client,
    name: &str,
    desired: DesiredStatus,
) -> TestResult<Vec<String>> {
    let filter = TaskFilter {
        service: Some(name),
        desired: Some(desired),
        ..TaskFilter::default()
    };
    list_task_arns(client, CLUSTER, &filter).await
}

/// Every task of the service ever started (the desired RUNNING list first: a task
/// whose desired status turns STOPPED in between is then in one of the two lists).
async fn listed_tasks(client: &Client, name: &str) -> TestResult<BTreeSet<String>> {
    let mut all: BTreeSet<String> = list_service_tasks(client, name, DesiredStatus::Running)
        .await?
        .into_iter()
        .collect();
    all.extend(list_service_tasks(client, name, DesiredStatus::Stopped).await?);
    Ok(all)
}

async fn describe_tasks(client: &Client, arns: &BTreeSet<String>) -> TestResult<Vec<Task>> {
    let arns: Vec<String> = arns.iter().cloned().collect();
    describe_task_arns(client, CLUSTER, &arns).await
}

/// Every task of the service, as one DescribeTasks saw them. Listing and describing
/// are separate calls, so the list is taken again afterwards: when it holds no task
/// the first did not, no task started in between was missed (tasks are never
/// forgotten during a test), and the description is the whole service at one time.
async fn service_tasks(client: &Client, name: &str) -> TestResult<Vec<Task>> {
    for _ in 0..50 {
        let before = listed_tasks(client, name).await?;
        let tasks = if before.is_empty() {
            Vec::new()
        } else {
            describe_tasks(client, &before).await?
        };
        let after = listed_tasks(client, name).await?;
        if after.is_subset(&before) {
            return Ok(tasks);
        }
    }
    Err(format!("the tasks of service {name} kept changing while they were listed").into())
}

/// A service and all its tasks at (about) one time.
#[derive(Debug, Clone)]
struct Sample {
    service: Service,
    tasks: Vec<Task>,
}

async fn sample(client: &Client, name: &str) -> TestResult<Sample> {
    let tasks = service_tasks(client, name).await?;
    let service = describe_service(client, CLUSTER, name).await?;
    Ok(Sample { service, tasks })
}

fn is_live(task: &Task) -> bool {
    task.last_status() != Some("STOPPED")
}

/// RUNNING and meant to stay so (and HEALTHY, with `health`): a task that serves.
fn is_serving(task: &Task, health: bool) -> bool {
    task.last_status() == Some("RUNNING")
        && task.desired_status() == Some("RUNNING")
        && (!health || task.health_status() == Some(&HealthStatus::Healthy))
}

impl Sample {
    /// The tasks not STOPPED (those being stopped included).
    fn live(&self) -> Vec<&Task> {
        self.tasks.iter().filter(|t| is_live(t)).collect()
    }

    fn serving(&self, health: bool) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| is_serving(t, health))
            .collect()
    }

    fn primary(&self) -> Option<&Deployment> {
        primary_of(&self.service)
    }

    fn deployment(&self, id: &str) -> Option<&Deployment> {
        self.service
            .deployments()
            .iter()
            .find(|d| d.id() == Some(id))
    }

    fn task(&self, arn: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.task_arn() == Some(arn))
    }

    /// One line per deployment and per task not stopped, for failure messages.
    fn summary(&self) -> String {
        let s = &self.service;
        let mut text = format!(
            "service {} td :{} desired {} running {} pending {}",
            s.status().unwrap_or("?"),
            revision(s.task_definition()),
            s.desired_count(),
            s.running_count(),
            s.pending_count()
        );
        for d in s.deployments() {
            text.push_str(&format!(
                "\n  deployment {} {} td :{} {:?} desired {} running {} pending {} failed {}",
                d.id().unwrap_or("?"),
                d.status().unwrap_or("?"),
                revision(d.task_definition()),
                d.rollout_state(),
                d.desired_count(),
                d.running_count(),
                d.pending_count(),
                d.failed_tasks()
            ));
        }
        let stopped = self.tasks.len() - self.live().len();
        for t in self.live() {
            text.push_str(&format!(
                "\n  task {} td :{} {} -> {} health {:?} by {}",
                task_id(t.task_arn().unwrap_or("?")),
                revision(t.task_definition_arn()),
                t.last_status().unwrap_or("?"),
                t.desired_status().unwrap_or("?"),
                t.health_status().map(HealthStatus::as_str),
                t.started_by().unwrap_or("?")
            ));
        }
        text.push_str(&format!("\n  ({stopped} stopped tasks)"));
        text
    }
}

/// Samples the service until `done` gives a value, for up to [`SERVICE_DEADLINE`];
/// the error says why the last sample did not do.
async fn wait_sample<T>(
    client: &Client,
    name: &str,
    what: &str,
    mut done: impl FnMut(&Sample) -> Result<T, String>,
) -> TestResult<T> {
    let deadline = Instant::now() + SERVICE_DEADLINE;
    loop {
        let sample = sample(client, name).await?;
        let why = match done(&sample) {
            Ok(value) => return Ok(value),
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {SERVICE_DEADLINE:?} waiting for {what}: {why}\n{}",
                sample.summary()
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a rollout to `task_definition` is over: the service's task definition,
/// its PRIMARY deployment of it COMPLETED with `count` tasks, every other deployment
/// INACTIVE (or gone), and exactly `count` tasks left, all of that revision and
/// serving.
fn rolled_out(
    sample: &Sample,
    task_definition: &str,
    count: usize,
    health: bool,
) -> Result<(), String> {
    let service = &sample.service;
    let count_i32 = i32::try_from(count).map_err(|e| e.to_string())?;
    if service.task_definition() != Some(task_definition) {
        return Err(format!(
            "the service's task definition is {:?}",
            service.task_definition()
        ));
    }
    let primary = sample.primary().ok_or("no PRIMARY deployment")?;
    if primary.task_definition() != Some(task_definition)
        || primary.rollout_state() != Some(&DeploymentRolloutState::Completed)
        || primary.running_count() != count_i32
    {
        return Err("the PRIMARY deployment is not COMPLETED".to_string());
    }
    if let Some(other) = service
        .deployments()
        .iter()
        .find(|d| d.status() != Some("PRIMARY") && d.status() != Some("INACTIVE"))
    {
        return Err(format!(
            "deployment {:?} is {:?}",
            other.id(),
            other.status()
        ));
    }
    let live = sample.live();
    let serving = sample.serving(health);
    if live.len() != count || serving.len() != count {
        return Err(format!(
            "{} tasks live, {} serving",
            live.len(),
            serving.len()
        ));
    }
    if let Some(other) = live
        .iter()
        .find(|t| t.task_definition_arn() != Some(task_definition))
    {
        return Err(format!(
            "task {:?} is of another revision",
            other.task_arn()
        ));
    }
    if service.running_count() != count_i32 || service.pending_count() != 0 {
        return Err("the service's counts are not settled".to_string());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Watching a rollout
// ---------------------------------------------------------------------------------

type Check = Box<dyn FnMut(&Sample) -> Vec<String> + Send>;

/// What a [`Watcher`] saw.
#[derive(Debug, Default)]
struct WatchReport {
    samples: usize,
    /// The first violations (with the sample they were seen in).
    violations: Vec<String>,
    violation_count: usize,
    /// Calls that failed (the control plane was down).
    errors: Vec<String>,
}

/// Samples a service every [`SAMPLE_EVERY`] in the background and checks every sample.
struct Watcher {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<WatchReport>,
}

impl Watcher {
    fn start(client: Client, name: &str, mut check: Check) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let name = name.to_string();
        let handle = tokio::spawn(async move {
            let mut report = WatchReport::default();
            let started = Instant::now();
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stopping.load(Ordering::SeqCst) {
                ticks.tick().await;
                match sample(&client, &name).await {
                    Ok(sample) => {
                        report.samples += 1;
                        for violation in check(&sample) {
                            report.violation_count += 1;
                            if report.violations.len() < 10 {
                                report.violations.push(format!(
                                    "at {:?}: {violation}\n{}",
                                    started.elapsed(),
                                    sample.summary()
                                ));
                            }
                        }
                    }
                    Err(err) => {
                        if report.errors.len() < 10 {
                            report
                                .errors
                                .push(format!("at {:?}: {err}", started.elapsed()));
                        }
                    }
                }
            }
            report
        });
        Self { stop, handle }
    }

    async fn finish(self) -> TestResult<WatchReport> {
        self.stop.store(true, Ordering::SeqCst);
        Ok(self.handle.await?)
    }
}

/// The bounds of a rolling update of [`DESIRED`] tasks at minimumHealthyPercent 100 /
/// maximumPercent 200: never fewer than 3 tasks serving (RUNNING, not being stopped,
/// and HEALTHY with `health`) nor a runningCount below 3; never more than 6 tasks not
/// STOPPED. `most_live` keeps the largest number of live tasks seen.
fn rolling_bounds(health: bool, most_live: Arc<AtomicUsize>) -> Check {
    Box::new(move |sample| {
        let mut violations = Vec::new();
        let serving = sample.serving(health).len();
        let live = sample.live().len();
        most_live.fetch_max(live, Ordering::SeqCst);
        if serving < DESIRED {
            violations.push(format!("only {serving} tasks serving"));
        }
        if live > 2 * DESIRED {
            violations.push(format!("{live} tasks not STOPPED"));
        }
        if usize::try_from(sample.service.running_count()).unwrap_or(0) < DESIRED {
            violations.push(format!("runningCount {}", sample.service.running_count()));
        }
        violations
    })
}

#[track_caller]
fn assert_clean(report: &WatchReport, allow_errors: bool) {
    eprintln!(
        "watched: {} samples, {} failed calls",
        report.samples,
        report.errors.len()
    );
    assert!(
        report.violations.is_empty(),
        "{} violations in {} samples; the first:\n{}",
        report.violation_count,
        report.samples,
        report.violations.join("\n")
    );
    assert!(
        allow_errors || report.errors.is_empty(),
        "sampling failed: {:?}",
        report.errors
    );
    assert!(report.samples >= 5, "too few samples to judge: {report:?}");
}

// ---------------------------------------------------------------------------------
// Other helpers
// ---------------------------------------------------------------------------------

fn task_arns<'t>(tasks: impl IntoIterator<Item = &'t Task>) -> BTreeSet<String> {
    tasks
        .into_iter()
        .filter_map(|t| t.task_arn().map(str::to_string))
        .collect()
}

fn event_messages(service: &Service) -> Vec<&str> {
    service
        .events()
        .iter()
        .map(|e| e.message().unwrap_or_default())
        .collect()
}

/// The task's `web` host port (dynamic: picked by Docker).
fn host_port(task: &Task) -> TestResult<u16> {
    let port = container_of(task, "web")?
        .network_bindings()
        .iter()
        .find(|b| b.container_port() == Some(80))
        .and_then(|b| b.host_port())
        .req("a host port bound to port 80")?;
    Ok(u16::try_from(port)?)
}

/// Asserts a task was stopped by the service scheduler for a deployment or a scale-in.
#[track_caller]
fn assert_scheduler_stopped(task: &Task, deployment_id: &str) {
    assert_eq!(task.last_status(), Some("STOPPED"), "{task:#?}");
    assert_eq!(
        task.stop_code(),
        Some(&TaskStopCode::ServiceSchedulerInitiated),
        "{task:#?}"
    );
    assert_eq!(
        task.stopped_reason(),
        Some(format!("Scaling activity initiated by (deployment {deployment_id})").as_str()),
        "{task:#?}"
    );
}

// ---------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_of_three_web_tasks_reaches_a_steady_state() -> TestResult {
    let stack = Stack::up(&["--task-running-grace", "3"]).await?;
    let client = stack.client();
    let definition = register_revision(&client, web_container("one", false)?).await?;
    let created = create_service(&client, "web", &definition, DESIRED, rolling(100, 200)).await?;
    assert_eq!(created.status(), Some("ACTIVE"), "{created:#?}");
    assert_eq!(created.desired_count(), 3);
    assert_eq!(created.task_definition(), Some(definition.as_str()));
    let [deployment] = created.deployments() else {
        panic!("one deployment expected: {created:#?}");
    };
    assert_eq!(deployment.status(), Some("PRIMARY"));
    assert_eq!(
        deployment.rollout_state(),
        Some(&DeploymentRolloutState::InProgress)
    );
    let deployment_id = deployment.id().req("deployment id")?.to_string();
    assert!(deployment_id.starts_with("ecs-svc/"), "{deployment_id}");

    let steady = "(service web) has reached a steady state.";
    let sample = wait_sample(&client, "web", "the steady-state event", |s| {
        rolled_out(s, &definition, DESIRED, false)?;
        if event_messages(&s.service).contains(&steady) {
            Ok(s.clone())
        } else {
            Err("no steady-state event yet".to_string())
        }
    })
    .await?;
    let service = &sample.service;
    assert_eq!(service.running_count(), 3, "{}", sample.summary());
    let primary = sample.primary().req("the PRIMARY deployment")?;
    assert_eq!(primary.id(), Some(deployment_id.as_str()));
    assert_eq!(primary.running_count(), 3);

    // Events, newest first: the steady state after the start of the 3 tasks.
    let messages = event_messages(service);
    let steady_at = messages.iter().position(|m| *m == steady);
    let started_at = messages
        .iter()
        .position(|m| m.starts_with("(service web) has started 3 tasks: (task "));
    assert!(
        matches!((steady_at, started_at), (Some(s), Some(t)) if s < t),
        "{messages:#?}"
    );
    let times: Vec<f64> = service
        .events()
        .iter()
        .map(|e| e.created_at().map_or(0.0, |t| t.as_secs_f64()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // The started event names the service's 3 tasks.
    let started = messages[started_at.req("the started event")?];
    let live = sample.live();
    for task in &live {
        let id = task_id(task.task_arn().req("task ARN")?);
        assert!(started.contains(&format!("(task {id})")), "{started}");
    }

    // The tasks: the service's group, started by its deployment, on distinct dynamic
    // host ports that serve.
    let mut ports = BTreeSet::new();
    for task in &live {
        assert_eq!(task.group(), Some("service:web"), "{task:#?}");
        assert_eq!(task.started_by(), Some(deployment_id.as_str()), "{task:#?}");
        assert_eq!(task.task_definition_arn(), Some(definition.as_str()));
        let port = host_port(task)?;
        assert!(port > 0);
        ports.insert(port);
    }
    assert_eq!(ports.len(), 3, "{}", sample.summary());
    for port in ports {
        let response = http_get(port, HTTP_DEADLINE).await?;
        assert!(
            response.contains(" 200 ") && response.contains(HELLO),
            "port {port}: {response}"
        );
    }

    let listed = client.list_services().cluster(CLUSTER).send().await?;
    assert_eq!(
        listed.service_arns(),
        [service.service_arn().req("service ARN")?.to_string()]
    );
    let running = list_service_tasks(&client, "web", DesiredStatus::Running).await?;
    assert_eq!(
        running.into_iter().collect::<BTreeSet<_>>(),
        task_arns(live)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_task_is_reported_stopped_and_replaced() -> TestResult {
    let stack = Stack::up(&["--task-running-grace", "3"]).await?;
    let client = stack.client();
    let definition = register_revision(&client, web_container("one", false)?).await?;
    let before = start_service(
        &client,
        "web",
        &definition,
        DESIRED,
        rolling(100, 200),
        false,
    )
    .await?;
    let originals = task_arns(before.live());
    let victim = originals.first().req("a task")?.clone();

    docker(&["kill", &runtime_name(&victim, "web")]).await?;
    let stopped = wait_stopped(&client, &victim).await?;
    assert_eq!(stopped.desired_status(), Some("STOPPED"), "{stopped:#?}");
    assert_eq!(
        stopped.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{stopped:#?}"
    );
    assert_eq!(container_of(&stopped, "web")?.exit_code(), Some(137));

    let after = wait_sample(&client, "web", "a replacement task", |s| {
        rolled_out(s, &definition, DESIRED, false)?;
        let live = task_arns(s.live());
        if live.contains(&victim) || live.intersection(&originals).count() != DESIRED - 1 {
            return Err("the killed task is not replaced yet".to_string());
        }
        Ok(s.clone())
    })
    .await?;
    assert_eq!(after.service.running_count(), 3);
    let live = task_arns(after.live());
    let replacement = live.difference(&originals).next().req("the replacement")?;
    let task = after.task(replacement).req("the replacement task")?;
    assert_eq!(task.last_status(), Some("RUNNING"));
    assert_eq!(
        task.started_by(),
        before.primary().and_then(|d| d.id()),
        "the same deployment replaces it"
    );
    let started = format!(
        "(service web) has started 1 tasks: (task {}).",
        task_id(replacement)
    );
    let messages = event_messages(&after.service);
    assert!(messages.contains(&started.as_str()), "{messages:#?}");
    Ok(())
}

/// A rolling update of a steady service from revision 1 to 2 at 100/200, watched
/// throughout.
async fn rolling_update(health: bool) -> TestResult {
    let stack = Stack::up(&["--task-running-grace", "3"]).await?;
    let client = stack.client();
    let first = register_revision(&client, web_container("one", health)?).await?;
    let second = register_revision(&client, web_container("two", health)?).await?;
    let before = start_service(&client, "web", &first, DESIRED, rolling(100, 200), health).await?;
    let old_id = before
        .primary()
        .and_then(|d| d.id())
        .req("the first deployment")?
        .to_string();
    let originals = task_arns(before.live());

    let most_live = Arc::new(AtomicUsize::new(0));
    let watcher = Watcher::start(
        client.clone(),
        "web",
        rolling_bounds(health, Arc::clone(&most_live)),
    );
    let updated = update_task_definition(&client, "web", &second).await?;
    let new_id = primary_of(&updated)
        .filter(|d| d.task_definition() == Some(second.as_str()))
        .and_then(|d| d.id())
        .req("a PRIMARY deployment of revision 2")?
        .to_string();
    assert_ne!(new_id, old_id);
    assert!(
        updated
            .deployments()
            .iter()
            .any(|d| d.id() == Some(old_id.as_str()) && d.status() == Some("ACTIVE")),
        "{updated:#?}"
    );

    let after = wait_sample(&client, "web", "the rollout to revision 2", |s| {
        rolled_out(s, &second, DESIRED, health).map(|()| s.clone())
    })
    .await?;
    let report = watcher.finish().await?;
    assert_clean(&report, false);
    assert!(
        most_live.load(Ordering::SeqCst) > DESIRED,
        "no sample caught the rollout under way: {report:?}"
    );

    let primary = after.primary().req("PRIMARY")?;
    assert_eq!(primary.id(), Some(new_id.as_str()));
    if let Some(old) = after.deployment(&old_id) {
        assert_eq!(old.status(), Some("INACTIVE"), "{}", after.summary());
    }
    for task in after.live() {
        assert_eq!(task.started_by(), Some(new_id.as_str()), "{task:#?}");
        assert!(!originals.contains(task.task_arn().unwrap_or_default()));
    }
    for arn in &originals {
        assert_scheduler_stopped(after.task(arn).req("an old task")?, &new_id);
    }
    let completed = format!("(service web) (deployment {new_id}) deployment completed.");
    let messages = event_messages(&after.service);
    assert!(messages.contains(&completed.as_str()), "{messages:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_three_tasks_running_and_at_most_six() -> TestResult {
    rolling_update(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_with_health_checks_keeps_three_healthy_tasks() -> TestResult {
    rolling_update(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_deployment_trips_the_circuit_breaker_and_rolls_back() -> TestResult {
    let stack = Stack::up(&["--task-running-grace", "3"]).await?;
    let client = stack.client();
    let first = register_revision(&client, web_container("one", false)?).await?;
    let second = register_revision(&client, crashing_container()).await?;
    let config = DeploymentConfiguration::builder()
        .minimum_healthy_percent(100)
        .maximum_percent(200)
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .build();
    let before = start_service(&client, "web", &first, DESIRED, config, false).await?;
    let old_id = before
        .primary()
        .and_then(|d| d.id())
        .req("the first deployment")?
        .to_string();
    let originals = task_arns(before.live());

    // Throughout: the 3 revision-1 tasks keep running, and nothing exceeds the maximum.
    let first_for_check = first.clone();
    let check: Check = Box::new(move |sample| {
        let mut violations = Vec::new();
        let serving = sample
            .serving(false)
            .into_iter()
            .filter(|t| t.task_definition_arn() == Some(first_for_check.as_str()))
            .count();
        if serving < DESIRED {
            violations.push(format!("only {serving} revision-1 tasks serving"));
        }
        let live = sample.live().len();
        if live > 2 * DESIRED {
            violations.push(format!("{live} tasks not STOPPED"));
        }
        violations
    });
    let watcher = Watcher::start(client.clone(), "web", check);
    let updated = update_task_definition(&client, "web", &second).await?;
    let new_id = primary_of(&updated)
        .filter(|d| d.task_definition() == Some(second.as_str()))
        .and_then(|d| d.id())
        .req("a PRIMARY deployment of revision 2")?
        .to_string();

    let after = wait_sample(&client, "web", "the rollback to revision 1", |s| {
        let failed = s
            .deployment(&new_id)
            .ok_or("the failed deployment is gone")?;
        if failed.rollout_state() != Some(&DeploymentRolloutState::Failed) {
            return Err("the new deployment has not FAILED".to_string());
        }
        if failed.status() != Some("INACTIVE") {
            return Err("the failed deployment still has tasks".to_string());
        }
        rolled_out(s, &first, DESIRED, false)?;
        Ok(s.clone())
    })
    .await?;
    let report = watcher.finish().await?;
    assert_clean(&report, false);

    // The failed deployment, as ECS describes one.
    let failed = after.deployment(&new_id).req("the failed deployment")?;
    assert_eq!(
        failed.rollout_state_reason(),
        Some("ECS deployment circuit breaker: tasks failed to start."),
        "{}",
        after.summary()
    );
    assert!(failed.failed_tasks() >= 3, "{}", after.summary());
    // Rolled back to the deployment that had completed, whose tasks never stopped.
    assert_eq!(after.service.task_definition(), Some(first.as_str()));
    let primary = after.primary().req("PRIMARY")?;
    assert_eq!(primary.id(), Some(old_id.as_str()), "{}", after.summary());
    assert_eq!(primary.task_definition(), Some(first.as_str()));
    assert_eq!(task_arns(after.live()), originals, "{}", after.summary());
    let crashed: Vec<&Task> = after
        .tasks
        .iter()
        .filter(|t| t.task_definition_arn() == Some(second.as_str()))
        .collect();
    assert!(crashed.len() >= 3, "{}", after.summary());
    for task in crashed {
        assert_eq!(task.last_status(), Some("STOPPED"), "{task:#?}");
        assert_eq!(task.started_by(), Some(new_id.as_str()), "{task:#?}");
    }
    let messages = event_messages(&after.service);
    for expected in [
        format!("(service web) (deployment {new_id}) deployment failed: tasks failed to start."),
        format!("(service web) rolling back to deployment {old_id}."),
    ] {
        assert!(messages.contains(&expected.as_str()), "{messages:#?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_and_in_then_deleting_the_service() -> TestResult {
    let stack = Stack::up(&["--task-running-grace", "3"]).await?;
    let client = stack.client();
    let definition = register_revision(&client, web_container("one", false)?).await?;
    let first = start_service(&client, "web", &definition, 1, rolling(100, 200), false).await?;
    let deployment_id = first
        .primary()
        .and_then(|d| d.id())
        .req("the deployment")?
        .to_string();
    let service_arn = first.service.service_arn().req("service ARN")?.to_string();

    // Out to 5.
    let out = client
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(5)
        .send()
        .await?;
    assert_eq!(out.service().map(|s| s.desired_count()), Some(5));
    let five = wait_sample(&client, "web", "5 tasks", |s| {
        rolled_out(s, &definition, 5, false).map(|()| s.clone())
    })
    .await?;
    assert_eq!(five.service.desired_count(), 5);
    assert!(task_arns(first.live()).is_subset(&task_arns(five.live())));
    // In to 1.
    client
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(1)
        .send()
        .await?;
    let one = wait_sample(&client, "web", "1 task", |s| {
        rolled_out(s, &definition, 1, false).map(|()| s.clone())
    })
    .await?;
    let survivor = task_arns(one.live());
    assert!(survivor.is_subset(&task_arns(five.live())));
    for arn in task_arns(five.live()).difference(&survivor) {
        assert_scheduler_stopped(one.task(arn).req("a task scaled in")?, &deployment_id);
    }
    assert_eq!(one.tasks.len(), 5, "no task but the 5: {}", one.summary());

    // Not deleted while scaled above 0...
    let refused = service_error(
        client
            .delete_service()
            .cluster(CLUSTER)
            .service("web")
            .send()
            .await,
    )?;
    refused.assert_code(&["InvalidParameterException"]);
    let still = describe_service(&client, CLUSTER, "web").await?;
    assert_eq!(still.status(), Some("ACTIVE"));
    assert_eq!(still.desired_count(), 1);

    // ...unless forced: DRAINING, then INACTIVE once its tasks are stopped.
    let deleted = client
        .delete_service()
        .cluster(CLUSTER)
        .service("web")
        .force(true)
        .send()
        .await?;
    let deleted = deleted.service().req("the deleted service")?;
    assert_eq!(deleted.status(), Some("DRAINING"), "{deleted:#?}");
    assert_eq!(deleted.desired_count(), 0);
    let gone = wait_sample(&client, "web", "the service to be INACTIVE", |s| {
        if s.service.status() == Some("INACTIVE") && s.live().is_empty() {
            Ok(s.clone())
        } else {
            Err("not INACTIVE with every task stopped".to_string())
        }
    })
    .await?;
    for arn in &survivor {
        let task = gone.task(arn).req("the last task")?;
        assert_eq!(task.last_status(), Some("STOPPED"), "{task:#?}");
        assert_eq!(
            task.stop_code(),
            Some(&TaskStopCode::ServiceSchedulerInitiated),
            "{task:#?}"
        );
    }
    assert!(
        list_service_tasks(&client, "web", DesiredStatus::Running)
            .await?
            .is_empty()
    );
    let listed = client.list_services().cluster(CLUSTER).send().await?;
    assert!(!listed.service_arns().contains(&service_arn), "{listed:?}");
    let described = describe_service(&client, CLUSTER, "web").await?;
    assert_eq!(described.status(), Some("INACTIVE"), "{described:#?}");
    assert_eq!(described.running_count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_deployment_replaces_every_task() -> TestResult {
    let stack = Stack::up(&["--task-running-grace", "3"]).await?;
    let client = stack.client();
    let definition = register_revision(&client, web_container("one", false)?).await?;
    let before = start_service(
        &client,
        "web",
        &definition,
        DESIRED,
        rolling(100, 200),
        false,
    )
    .await?;
    let old_id = before
        .primary()
        .and_then(|d| d.id())
        .req("the first deployment")?
        .to_string();
    let originals = task_arns(before.live());

    let most_live = Arc::new(AtomicUsize::new(0));
    let watcher = Watcher::start(
        client.clone(),
        "web",
        rolling_bounds(false, Arc::clone(&most_live)),
    );
    let updated = client
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .force_new_deployment(true)
        .send()
        .await?;
    let updated = updated.service().req("the updated service")?;
    let new_id = primary_of(updated)
        .and_then(|d| d.id())
        .req("the new deployment")?
        .to_string();
    assert_ne!(new_id, old_id, "{updated:#?}");
    assert_eq!(
        primary_of(updated).and_then(|d| d.task_definition()),
        Some(definition.as_str())
    );

    let after = wait_sample(&client, "web", "the forced deployment", |s| {
        rolled_out(s, &definition, DESIRED, false)?;
        if s.primary().and_then(|d| d.id()) != Some(new_id.as_str()) {
            return Err("another deployment is PRIMARY".to_string());
        }
        Ok(s.clone())
    })
    .await?;
    let report = watcher.finish().await?;
    assert_clean(&report, false);
    assert!(most_live.load(Ordering::SeqCst) > DESIRED, "{report:?}");

    let now = task_arns(after.live());
    assert!(
        now.is_disjoint(&originals),
        "every task is replaced: {now:?} vs {originals:?}"
    );
    for task in after.live() {
        assert_eq!(task.started_by(), Some(new_id.as_str()), "{task:#?}");
    }
    for arn in &originals {
        assert_scheduler_stopped(after.task(arn).req("an old task")?, &new_id);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_completes_after_the_control_plane_is_killed() -> TestResult {
    let mut stack = Stack::server_and_agent(&[]).await?;
    let agent_arn = stack.instance_arn(0)?;
    let client = stack.client();
    // Health checks make the rollout last (the new tasks are healthy after ~5 s), so
    // the kill lands in its middle.
    let first = register_revision(&client, web_container("one", true)?).await?;
    let second = register_revision(&client, web_container("two", true)?).await?;
    let before = start_service(&client, "web", &first, DESIRED, rolling(100, 200), true).await?;
    let originals = task_arns(before.live());

    let most_live = Arc::new(AtomicUsize::new(0));
    let watcher = Watcher::start(
        client.clone(),
        "web",
        rolling_bounds(true, Arc::clone(&most_live)),
    );
    let updated = update_task_definition(&client, "web", &second).await?;
    let new_id = primary_of(&updated)
        .and_then(|d| d.id())
        .req("the new deployment")?
        .to_string();
    // Kill once the new deployment's tasks exist and before they are healthy.
    let started = wait_sample(&client, "web", "the new deployment's tasks", |s| {
        let new: Vec<&Task> = s
            .live()
            .into_iter()
            .filter(|t| t.started_by() == Some(new_id.as_str()))
            .collect();
        if new.is_empty() {
            return Err("no task of the new deployment yet".to_string());
        }
        Ok(task_arns(new))
    })
    .await?;
    let mid = describe_service(&client, CLUSTER, "web").await?;
    assert_eq!(
        mid.deployments()
            .iter()
            .find(|d| d.id() == Some(new_id.as_str()))
            .and_then(|d| d.rollout_state()),
        Some(&DeploymentRolloutState::InProgress),
        "the kill must land during the rollout: {mid:#?}"
    );
    stack.server.kill9()?;
    stack.server.restart()?;
    stack.wait_connected(&agent_arn, true).await?;

    let after = wait_sample(&client, "web", "the rollout to revision 2", |s| {
        rolled_out(s, &second, DESIRED, true).map(|()| s.clone())
    })
    .await?;
    let report = watcher.finish().await?;
    // Calls fail while the control plane is down; the bounds hold at every sample.
    assert_clean(&report, true);
    assert!(most_live.load(Ordering::SeqCst) > DESIRED, "{report:?}");

    assert_eq!(after.primary().and_then(|d| d.id()), Some(new_id.as_str()));
    // Nothing was started twice nor stopped but the old tasks: the tasks started
    // before the kill are among the 3 that run.
    let now = task_arns(after.live());
    assert!(
        started.is_subset(&now),
        "{started:?} vs {}",
        after.summary()
    );
    assert_eq!(
        after.tasks.len(),
        2 * DESIRED,
        "3 old tasks and 3 new ones, no more: {}",
        after.summary()
    );
    for arn in &originals {
        assert_scheduler_stopped(after.task(arn).req("an old task")?, &new_id);
    }
    for task in after.live() {
        assert_eq!(task.task_definition_arn(), Some(second.as_str()));
        assert_eq!(task.started_by(), Some(new_id.as_str()));
    }
    Ok(())
}

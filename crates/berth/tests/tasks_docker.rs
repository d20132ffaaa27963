//! Tasks run as real Docker containers, driven through the AWS SDK: ports, exits,
//! dependencies, stop timeouts, OOM kills, pull failures, the `berth up` quickstart
//! and Fargate-shaped work.
//!
//! Each test starts its own `berth up` (control plane and agent in one process) and
//! removes its containers when it ends, pass or fail (see `common::docker::Stack`).

mod common;

use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, CapacityProviderStrategyItem, Compatibility, ContainerCondition,
    ContainerDependency, ContainerOverride, DesiredStatus, HealthCheck, HealthStatus,
    HostVolumeProperties, KeyValuePair, LaunchType, MountPoint, NetworkConfiguration, NetworkMode,
    PortMapping, TaskOverride, TaskStopCode, TransportProtocol, Volume,
};
use common::docker::{
    CLUSTER, HELLO, INSTANCE_LABEL, Stack, TASK_DEADLINE, UNTIL_TERM, cgroup_hierarchies,
    container, container_builder, container_of, docker, epoch_of, field, free_port, http_get,
    inspect_existing, register, remove_task_cgroup, run_task, runtime_name, task_id, wait_for,
    wait_running, wait_stopped, wait_task,
};
use common::{Require, TestResult};
use serde_json::Value;

const ESSENTIAL_EXITED: &str = "Essential container in task exited";
const HTTP_DEADLINE: Duration = Duration::from_secs(20);

/// busybox httpd serving /www on `port` in the foreground, as PID 1 of its container.
fn httpd(port: u16) -> Vec<String> {
    ["httpd", "-f", "-p", &port.to_string(), "-h", "/www"]
        .map(str::to_string)
        .to_vec()
}

/// httpd under a shell that exits at SIGTERM (httpd as PID 1 ignores it, so a stop
/// would wait for the whole stop timeout).
fn stoppable_httpd(port: u16) -> Vec<String> {
    vec![
        "sh".to_string(),
        "-c".to_string(),
        format!("trap 'exit 0' TERM; httpd -f -p {port} -h /www & wait"),
    ]
}

fn tcp_mapping(container_port: i32, host_port: Option<i32>) -> PortMapping {
    PortMapping::builder()
        .container_port(container_port)
        .set_host_port(host_port)
        .protocol(TransportProtocol::Tcp)
        .build()
}

/// The distinct (container port, host port) pairs a container reports. Docker
/// publishes a port on IPv4 and IPv6 (bindIP 0.0.0.0 and ::), as ECS reports it.
fn bindings(task: &aws_sdk_ecs::types::Task, name: &str) -> TestResult<Vec<(i32, i32)>> {
    let mut pairs = Vec::new();
    for binding in container_of(task, name)?.network_bindings() {
        assert!(
            matches!(binding.bind_ip(), Some("0.0.0.0" | "::")),
            "{binding:?}"
        );
        let pair = (
            binding.container_port().unwrap_or(0),
            binding.host_port().unwrap_or(0),
        );
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    Ok(pairs)
}

async fn assert_hello(port: u16) -> TestResult {
    let response = http_get(port, HTTP_DEADLINE).await?;
    assert!(
        response.starts_with("HTTP/1.") && response.contains(" 200 ") && response.contains(HELLO),
        "port {port} answered: {response}"
    );
    Ok(())
}

async fn stop_task(client: &Client, task_arn: &str, reason: &str) -> TestResult {
    client
        .stop_task()
        .cluster(CLUSTER)
        .task(task_arn)
        .reason(reason)
        .send()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpd_answers_on_a_static_and_on_a_dynamic_host_port() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let static_port = free_port()?;
    let mut arns = Vec::new();
    for (family, host_port) in [
        ("httpd-static", i32::from(static_port)),
        ("httpd-dynamic", 0),
    ] {
        let web = container_builder("web", &[])
            .set_command(Some(httpd(80)))
            .port_mappings(tcp_mapping(80, Some(host_port)))
            .build();
        let definition = client
            .register_task_definition()
            .family(family)
            .network_mode(NetworkMode::Bridge)
            .container_definitions(web)
            .send()
            .await?;
        let arn = definition
            .task_definition()
            .and_then(|td| td.task_definition_arn())
            .req("task definition ARN")?;
        arns.push(
            run_task(&client, arn)
                .await?
                .task_arn()
                .req("task ARN")?
                .to_string(),
        );
    }

    let fixed = wait_running(&client, &arns[0]).await?;
    assert_eq!(
        bindings(&fixed, "web")?,
        vec![(80, i32::from(static_port))],
        "{fixed:#?}"
    );
    assert_hello(static_port).await?;

    let dynamic = wait_running(&client, &arns[1]).await?;
    let dynamic_bindings = bindings(&dynamic, "web")?;
    let [(80, host_port)] = dynamic_bindings[..] else {
        panic!("expected one binding of port 80, got {dynamic_bindings:?}");
    };
    assert!(host_port > 0, "no host port was picked: {dynamic:#?}");
    assert_ne!(host_port, i32::from(static_port));
    assert_hello(u16::try_from(host_port)?).await?;

    // What Docker published is what berth reported.
    let inspection = inspect_existing(&runtime_name(&arns[1], "web")).await?;
    let published = field(&inspection, "/NetworkSettings/Ports/80~1tcp/0/HostPort")?;
    assert_eq!(published, host_port.to_string());

    // The container says whose it is.
    let label = |name: &str| {
        inspection
            .pointer("/Config/Labels")
            .and_then(|labels| labels.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    assert_eq!(label(INSTANCE_LABEL), Some(stack.instance_arn(0)?));
    assert_eq!(label("com.amazonaws.ecs.task-arn"), Some(arns[1].clone()));
    assert_eq!(
        label("com.amazonaws.ecs.cluster"),
        dynamic.cluster_arn().map(str::to_string)
    );
    assert_eq!(
        label("com.amazonaws.ecs.container-name").as_deref(),
        Some("web")
    );
    assert_eq!(
        label("com.amazonaws.ecs.task-definition-family").as_deref(),
        Some("httpd-dynamic")
    );
    assert_eq!(
        label("com.amazonaws.ecs.task-definition-version").as_deref(),
        Some("1")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_essential_container_exit_stops_the_task() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let definition = register(
        &client,
        "essential-exit",
        vec![container("main", &["sh", "-c", "exit 3"])],
    )
    .await?;
    let arn = run_task(&client, &definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let task = wait_stopped(&client, &arn).await?;
    let main = container_of(&task, "main")?;
    assert_eq!(main.last_status(), Some("STOPPED"), "{task:#?}");
    assert_eq!(main.exit_code(), Some(3), "{task:#?}");
    assert_eq!(task.stopped_reason(), Some(ESSENTIAL_EXITED), "{task:#?}");
    assert_eq!(
        task.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{task:#?}"
    );
    assert_eq!(task.desired_status(), Some("STOPPED"));
    let (created, stopped) = (
        task.created_at().req("createdAt")?.as_secs_f64(),
        task.stopped_at().req("stoppedAt")?.as_secs_f64(),
    );
    assert!(created <= stopped, "{task:#?}");
    assert!(task.execution_stopped_at().is_some(), "{task:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_task_overrides_change_what_runs() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let main = container_builder("main", &["sh", "-c", "exit $CODE"])
        .environment(KeyValuePair::builder().name("CODE").value("4").build())
        .build();
    let definition = register(&client, "overridden", vec![main]).await?;
    let overrides = TaskOverride::builder()
        .container_overrides(
            ContainerOverride::builder()
                .name("main")
                .environment(KeyValuePair::builder().name("CODE").value("9").build())
                .build(),
        )
        .build();
    let out = client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .overrides(overrides.clone())
        .send()
        .await?;
    let arn = out
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .req("task ARN")?
        .to_string();
    let task = wait_stopped(&client, &arn).await?;
    assert_eq!(
        container_of(&task, "main")?.exit_code(),
        Some(9),
        "{task:#?}"
    );
    assert_eq!(
        task.overrides()
            .map(|o| o.container_overrides().to_vec())
            .unwrap_or_default(),
        overrides.container_overrides()
    );

    // A command override replaces the definition's command.
    let out = client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .overrides(
            TaskOverride::builder()
                .container_overrides(
                    ContainerOverride::builder()
                        .name("main")
                        .command("sh")
                        .command("-c")
                        .command("exit 11")
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    let arn = out
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .req("task ARN")?
        .to_string();
    let task = wait_stopped(&client, &arn).await?;
    assert_eq!(
        container_of(&task, "main")?.exit_code(),
        Some(11),
        "{task:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_essential_container_exit_leaves_the_task_running() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let definition = register(
        &client,
        "sidecar-exit",
        vec![
            container("main", UNTIL_TERM),
            container_builder("sidecar", &["sh", "-c", "sleep 1; exit 5"])
                .essential(false)
                .build(),
        ],
    )
    .await?;
    let arn = run_task(&client, &definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    wait_running(&client, &arn).await?;
    let task = wait_task(
        &client,
        &arn,
        "with its sidecar stopped",
        TASK_DEADLINE,
        |t| {
            t.containers()
                .iter()
                .any(|c| c.name() == Some("sidecar") && c.last_status() == Some("STOPPED"))
                || t.last_status() == Some("STOPPED")
        },
    )
    .await?;
    // The report that says the sidecar stopped also says what became of the task.
    assert_eq!(task.last_status(), Some("RUNNING"), "{task:#?}");
    assert_eq!(task.desired_status(), Some("RUNNING"), "{task:#?}");
    let sidecar = container_of(&task, "sidecar")?;
    assert_eq!(sidecar.exit_code(), Some(5), "{task:#?}");
    assert_eq!(
        container_of(&task, "main")?.last_status(),
        Some("RUNNING"),
        "{task:#?}"
    );
    let main = inspect_existing(&runtime_name(&arn, "main")).await?;
    assert_eq!(main.pointer("/State/Running"), Some(&Value::Bool(true)));

    stop_task(&client, &arn, "done").await?;
    let stopped = wait_stopped(&client, &arn).await?;
    assert_eq!(stopped.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(container_of(&stopped, "main")?.exit_code(), Some(0));
    assert_eq!(container_of(&stopped, "sidecar")?.exit_code(), Some(5));
    Ok(())
}

/// A container's command: log `<name>-start` (or `<name>-start-ready` if the ready
/// file exists by then) to the shared log, run until SIGTERM, then log `<name>-stop`.
fn logging(name: &str, before: &str) -> Vec<String> {
    let script = format!(
        "trap 'echo {name}-stop >> /out/log; exit 0' TERM; \
         if [ -f /out/ready ]; then echo {name}-start-ready >> /out/log; \
         else echo {name}-start >> /out/log; fi; \
         {before} sleep 600 & wait"
    );
    vec!["sh".to_string(), "-c".to_string(), script]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_orders_start_and_reverse_stop() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let shared = tempfile::Builder::new()
        .prefix("berth-e2e-shared-")
        .tempdir()?;
    let mount = || {
        MountPoint::builder()
            .source_volume("shared")
            .container_path("/out")
            .build()
    };
    // db becomes healthy once it has made /out/ready, 2 s after it starts (and its
    // first health check runs 5 s after it starts).
    let db = container_builder("db", &[])
        .set_command(Some(logging("db", "sleep 2; touch /out/ready;")))
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("test -f /out/ready")
                .interval(5)
                .timeout(2)
                .retries(3)
                .build()?,
        )
        .mount_points(mount())
        .build();
    let app = container_builder("app", &[])
        .set_command(Some(logging("app", "")))
        .depends_on(
            ContainerDependency::builder()
                .container_name("db")
                .condition(ContainerCondition::Healthy)
                .build()?,
        )
        .mount_points(mount())
        .build();
    let web = container_builder("web", &[])
        .set_command(Some(logging("web", "")))
        .depends_on(
            ContainerDependency::builder()
                .container_name("app")
                .condition(ContainerCondition::Start)
                .build()?,
        )
        .mount_points(mount())
        .build();
    let out = client
        .register_task_definition()
        .family("depends-on")
        // Definition order is not start order.
        .container_definitions(web)
        .container_definitions(app)
        .container_definitions(db)
        .volumes(
            Volume::builder()
                .name("shared")
                .host(
                    HostVolumeProperties::builder()
                        .source_path(shared.path().display().to_string())
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    let definition = out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .req("task definition ARN")?;
    let arn = run_task(&client, definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let running = wait_running(&client, &arn).await?;
    assert_eq!(
        container_of(&running, "db")?.health_status(),
        Some(&HealthStatus::Healthy),
        "{running:#?}"
    );
    // db is the one essential container with a health check.
    assert_eq!(
        running.health_status(),
        Some(&HealthStatus::Healthy),
        "{running:#?}"
    );

    // app started only after db's first passing health check had ended.
    let db = inspect_existing(&runtime_name(&arn, "db")).await?;
    let app = inspect_existing(&runtime_name(&arn, "app")).await?;
    let web = inspect_existing(&runtime_name(&arn, "web")).await?;
    let healthy_at = db
        .pointer("/State/Health/Log")
        .and_then(Value::as_array)
        .req("db's health log")?
        .iter()
        .filter(|probe| probe.get("ExitCode").and_then(Value::as_i64) == Some(0))
        .filter_map(|probe| probe.get("End").and_then(Value::as_str))
        .map(epoch_of)
        .collect::<TestResult<Vec<f64>>>()?
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let db_started = epoch_of(field(&db, "/State/StartedAt")?)?;
    let app_started = epoch_of(field(&app, "/State/StartedAt")?)?;
    let web_started = epoch_of(field(&web, "/State/StartedAt")?)?;
    assert!(
        healthy_at.is_finite() && db_started < healthy_at && healthy_at <= app_started,
        "db started {db_started}, healthy {healthy_at}; app started {app_started}"
    );
    assert!(
        app_started <= web_started,
        "app started {app_started}, web {web_started}"
    );

    stop_task(&client, &arn, "e2e: stop in order").await?;
    let stopped = wait_stopped(&client, &arn).await?;
    for name in ["db", "app", "web"] {
        assert_eq!(
            container_of(&stopped, name)?.exit_code(),
            Some(0),
            "{stopped:#?}"
        );
    }
    let log = std::fs::read_to_string(shared.path().join("log"))?;
    let mut lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 6, "{log}");
    // app and web (started in that order, as their StartedAt say) may run their
    // first command in either order; both found db ready.
    lines[1..3].sort_unstable();
    assert_eq!(
        lines,
        [
            "db-start",
            "app-start-ready",
            "web-start-ready",
            "web-stop",
            "app-stop",
            "db-stop"
        ],
        "start in dependency order, stop in reverse: {log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_dependency_runs_first_and_shares_a_task_volume() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let mount = || {
        MountPoint::builder()
            .source_volume("scratch")
            .container_path("/data")
            .build()
    };
    let init = container_builder("init", &["sh", "-c", "echo 6 > /data/code"])
        .essential(false)
        .mount_points(mount())
        .build();
    let main = container_builder("main", &["sh", "-c", "exit $(cat /data/code)"])
        .depends_on(
            ContainerDependency::builder()
                .container_name("init")
                .condition(ContainerCondition::Success)
                .build()?,
        )
        .mount_points(mount())
        .build();
    let out = client
        .register_task_definition()
        .family("init-then-main")
        .container_definitions(main)
        .container_definitions(init)
        // Neither a host path nor a Docker configuration: a volume of the task's own.
        .volumes(Volume::builder().name("scratch").build())
        .send()
        .await?;
    let definition = out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .req("task definition ARN")?;
    let arn = run_task(&client, definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let task = wait_stopped(&client, &arn).await?;
    assert_eq!(
        container_of(&task, "init")?.exit_code(),
        Some(0),
        "{task:#?}"
    );
    assert_eq!(
        container_of(&task, "main")?.exit_code(),
        Some(6),
        "main ran after init, and saw what init wrote: {task:#?}"
    );
    assert_eq!(
        task.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited)
    );
    // The task's own volume goes with it.
    let volume = format!("berth-{}-scratch", task_id(&arn));
    wait_for("the task volume to be removed", TASK_DEADLINE, || async {
        let listed = docker(&["volume", "ls", "-q", "--filter", &format!("name={volume}")]).await?;
        Ok(listed.trim().is_empty().then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_task_kills_a_container_ignoring_sigterm_after_its_stop_timeout() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    // busybox sleep as PID 1 ignores SIGTERM.
    let sleeper = container_builder("sleeper", &["sleep", "600"])
        .stop_timeout(3)
        .build();
    let definition = register(&client, "stop-timeout", vec![sleeper]).await?;
    let arn = run_task(&client, &definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    wait_running(&client, &arn).await?;
    let reason = "e2e: stopping a stubborn container";
    let asked = Instant::now();
    stop_task(&client, &arn, reason).await?;
    // The agent is at it: SIGTERM sent, waiting out the stop timeout.
    let stopping = wait_task(&client, &arn, "past RUNNING", TASK_DEADLINE, |t| {
        t.last_status() != Some("RUNNING")
    })
    .await?;
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "took the stop timeout to leave RUNNING"
    );
    assert!(
        matches!(stopping.last_status(), Some("DEACTIVATING" | "STOPPING")),
        "{stopping:#?}"
    );
    assert_eq!(stopping.desired_status(), Some("STOPPED"));
    let task = wait_stopped(&client, &arn).await?;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "stopped after {took:?}, before the 3 s stop timeout"
    );
    assert!(
        took < Duration::from_secs(20),
        "stopped after {took:?}, long after the 3 s stop timeout"
    );
    assert_eq!(
        container_of(&task, "sleeper")?.exit_code(),
        Some(137),
        "{task:#?}"
    );
    assert_eq!(task.stopped_reason(), Some(reason), "{task:#?}");
    assert_eq!(task.stop_code(), Some(&TaskStopCode::UserInitiated));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_over_its_memory_limit_is_reported_oom_killed() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let hog = container_builder("hog", &["sh", "-c", "x=a; while true; do x=$x$x; done"])
        .memory(32)
        .build();
    let definition = register(&client, "oom", vec![hog]).await?;
    let arn = run_task(&client, &definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let task = wait_stopped(&client, &arn).await?;
    let hog = container_of(&task, "hog")?;
    assert!(
        hog.reason()
            .is_some_and(|r| r.starts_with("OutOfMemoryError")),
        "{task:#?}"
    );
    assert_eq!(hog.exit_code(), Some(137), "{task:#?}");
    assert_eq!(
        task.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{task:#?}"
    );
    assert_eq!(task.stopped_reason(), Some(ESSENTIAL_EXITED), "{task:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_task() -> TestResult {
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let ghost = container_builder("ghost", &["true"])
        .image("doesnotexist/image:1")
        .build();
    let definition = register(&client, "missing-image", vec![ghost]).await?;
    let arn = run_task(&client, &definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let task = wait_stopped(&client, &arn).await?;
    assert_eq!(
        task.stop_code(),
        Some(&TaskStopCode::TaskFailedToStart),
        "{task:#?}"
    );
    let ghost = container_of(&task, "ghost")?;
    assert!(
        ghost
            .reason()
            .is_some_and(|r| r.starts_with("CannotPullContainerError")),
        "{task:#?}"
    );
    assert!(
        task.stopped_reason()
            .is_some_and(|r| r.starts_with("CannotPullContainerError")),
        "{task:#?}"
    );
    assert_eq!(ghost.exit_code(), None, "it never ran: {task:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_up_quickstart_runs_curls_and_stops_an_httpd_task() -> TestResult {
    let stack = Stack::up_quickstart().await?;
    let client = stack.client();
    let port = free_port()?;
    let web = container_builder("web", &[])
        .set_command(Some(stoppable_httpd(80)))
        .port_mappings(tcp_mapping(80, Some(i32::from(port))))
        .build();
    let definition = register(&client, "quickstart-web", vec![web]).await?;
    // The default cluster exists: `berth up` registered its instance there.
    let clusters = client.list_clusters().send().await?;
    assert!(
        clusters
            .cluster_arns()
            .iter()
            .any(|arn| arn.ends_with(":cluster/default")),
        "{clusters:?}"
    );
    let out = client
        .run_task()
        .task_definition(&definition)
        .send()
        .await?;
    assert!(out.failures().is_empty(), "{out:?}");
    let arn = out
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .req("task ARN")?
        .to_string();
    wait_running(&client, &arn).await?;
    assert_hello(port).await?;
    let listed = client.list_tasks().send().await?;
    assert_eq!(listed.task_arns(), std::slice::from_ref(&arn));
    // berth's own API port is kept from tasks.
    let instances = client.list_container_instances().send().await?;
    let described = client
        .describe_container_instances()
        .set_container_instances(Some(instances.container_instance_arns().to_vec()))
        .send()
        .await?;
    let [instance] = described.container_instances() else {
        panic!("one instance expected: {described:?}");
    };
    let api_port = stack.server.addr().port().to_string();
    assert!(
        instance
            .registered_resources()
            .iter()
            .any(|r| r.name() == Some("PORTS") && r.string_set_value().contains(&api_port)),
        "{instance:#?}"
    );

    client.stop_task().task(&arn).send().await?;
    let task = wait_stopped(&client, &arn).await?;
    assert_eq!(task.stop_code(), Some(&TaskStopCode::UserInitiated));
    let running = client.list_tasks().send().await?;
    assert!(running.task_arns().is_empty(), "{running:?}");
    let stopped = client
        .list_tasks()
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await?;
    assert_eq!(stopped.task_arns(), std::slice::from_ref(&arn));
    assert!(
        http_get(port, Duration::ZERO).await.is_err(),
        "port {port} still answers after the task stopped"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fargate_shaped_work_runs_with_its_container_port_published() -> TestResult {
    const PORT: u16 = 8080;
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    let web = container_builder("web", &[])
        .set_memory(None)
        .set_command(Some(stoppable_httpd(PORT)))
        .port_mappings(
            PortMapping::builder()
                .container_port(i32::from(PORT))
                .protocol(TransportProtocol::Tcp)
                .build(),
        )
        .build();
    let out = client
        .register_task_definition()
        .family("fargate-web")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(web)
        .send()
        .await?;
    let definition = out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .req("task definition ARN")?
        .to_string();
    let network = NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets("subnet-0123456789abcdef0")
                .build()?,
        )
        .build();

    for by_capacity_provider in [false, true] {
        let mut run = client
            .run_task()
            .cluster(CLUSTER)
            .task_definition(&definition)
            .network_configuration(network.clone());
        run = if by_capacity_provider {
            run.capacity_provider_strategy(
                CapacityProviderStrategyItem::builder()
                    .capacity_provider("FARGATE")
                    .weight(1)
                    .build()?,
            )
        } else {
            run.launch_type(LaunchType::Fargate)
        };
        let out = run.send().await?;
        assert!(out.failures().is_empty(), "{out:?}");
        let arn = out
            .tasks()
            .first()
            .and_then(|t| t.task_arn())
            .req("task ARN")?
            .to_string();
        let task = wait_running(&client, &arn).await?;
        assert_eq!(task.launch_type(), Some(&LaunchType::Fargate), "{task:#?}");
        if by_capacity_provider {
            assert_eq!(task.capacity_provider_name(), Some("FARGATE"), "{task:#?}");
        }
        assert_eq!(task.cpu(), Some("256"));
        assert_eq!(task.memory(), Some("512"));
        assert_eq!(
            bindings(&task, "web")?,
            vec![(i32::from(PORT), i32::from(PORT))],
            "{task:#?}"
        );
        assert_hello(PORT).await?;
        // The next run needs the port back.
        stop_task(&client, &arn, "e2e: next").await?;
        wait_stopped(&client, &arn).await?;
    }
    Ok(())
}

/// The task cgroups (`/berth/<task id>`) of a test's tasks, as berth's agent makes
/// them; removed when dropped (the [`Stack`] removes those of its containers' tasks
/// too), so a failing test leaves no cgroup behind.
struct TaskCgroups {
    /// Mount points of the cgroup hierarchies.
    hierarchies: Vec<std::path::PathBuf>,
    task_ids: Vec<String>,
}

impl TaskCgroups {
    fn new() -> Self {
        Self {
            hierarchies: cgroup_hierarchies(),
            task_ids: Vec::new(),
        }
    }

    /// The hierarchy of a cgroup v1 `controller`, or the unified one on a v2 host.
    fn hierarchy(&self, controller: &str) -> TestResult<std::path::PathBuf> {
        if cgroup_v2() {
            return Ok("/sys/fs/cgroup".into());
        }
        self.hierarchies
            .iter()
            .find(|h| {
                h.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.split(',').any(|c| c == controller))
            })
            .cloned()
            .req(&format!("the {controller} cgroup hierarchy"))
    }

    /// A file of the cgroup at `path` (as Docker names cgroup parents) of `controller`.
    fn read(&self, controller: &str, path: &str, file: &str) -> TestResult<String> {
        let dir = self
            .hierarchy(controller)?
            .join(path.trim_start_matches('/'));
        Ok(std::fs::read_to_string(dir.join(file))?.trim().to_string())
    }

    /// Whether a task cgroup directory is left in any hierarchy.
    fn any_left(&self, task_id: &str) -> bool {
        self.hierarchies
            .iter()
            .any(|h| h.join("berth").join(task_id).exists())
    }
}

impl Drop for TaskCgroups {
    fn drop(&mut self) {
        for id in &self.task_ids {
            remove_task_cgroup(id);
        }
    }
}

fn cgroup_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_cpu_and_memory_limit_all_containers_together_in_a_task_cgroup() -> TestResult {
    // Declared first, dropped last: after the stack has removed the containers.
    let mut cgroups = TaskCgroups::new();
    let stack = Stack::up(&[]).await?;
    let client = stack.client();
    // Neither container has a memory limit of its own: only the task's 64 MiB bounds
    // them. The hog allocates without end once told to.
    let hog = container_builder(
        "hog",
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.1; done; x=a; while true; do x=$x$x; done",
        ],
    )
    .set_memory(None)
    .build();
    let sidecar = container_builder("sidecar", UNTIL_TERM)
        .set_memory(None)
        .essential(false)
        .build();
    let out = client
        .register_task_definition()
        .family("task-limits")
        .cpu("256")
        .memory("64")
        .container_definitions(hog)
        .container_definitions(sidecar)
        .send()
        .await?;
    let definition = out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .req("task definition ARN")?;
    let arn = run_task(&client, definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let id = task_id(&arn).to_string();
    cgroups.task_ids.push(id.clone());
    wait_running(&client, &arn).await?;

    let parent = format!("/berth/{id}");
    for name in ["hog", "sidecar"] {
        let inspection = inspect_existing(&runtime_name(&arn, name)).await?;
        assert_eq!(
            field(&inspection, "/HostConfig/CgroupParent")?,
            parent,
            "{name}"
        );
        assert_eq!(
            inspection
                .pointer("/HostConfig/Memory")
                .and_then(Value::as_i64),
            Some(0),
            "{name} has no memory limit of its own"
        );
        // The container's own cgroup is inside the task's.
        let container_id = field(&inspection, "/Id")?;
        let own = cgroups
            .hierarchy("memory")?
            .join(parent.trim_start_matches('/'))
            .join(container_id);
        assert!(own.is_dir(), "{} is not a directory", own.display());
    }
    if cgroup_v2() {
        assert_eq!(cgroups.read("memory", &parent, "memory.max")?, "67108864");
        assert_eq!(cgroups.read("cpu", &parent, "cpu.max")?, "25000 100000");
    } else {
        assert_eq!(
            cgroups.read("memory", &parent, "memory.limit_in_bytes")?,
            "67108864"
        );
        // 256 CPU units: a quarter of a CPU.
        assert_eq!(cgroups.read("cpu", &parent, "cpu.cfs_period_us")?, "100000");
        assert_eq!(cgroups.read("cpu", &parent, "cpu.cfs_quota_us")?, "25000");
    }

    // Over the task's memory, the hog is killed by the kernel.
    docker(&["exec", &runtime_name(&arn, "hog"), "touch", "/tmp/go"]).await?;
    let task = wait_stopped(&client, &arn).await?;
    let hog = container_of(&task, "hog")?;
    assert_eq!(hog.exit_code(), Some(137), "{task:#?}");
    assert!(
        hog.reason()
            .is_some_and(|r| r.starts_with("OutOfMemoryError")),
        "{task:#?}"
    );
    assert_eq!(
        task.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{task:#?}"
    );

    // The cgroup goes with the task's containers.
    wait_for("the task cgroup to be removed", TASK_DEADLINE, || async {
        Ok((!cgroups.any_left(&id)).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readopted_task_keeps_its_cgroup_until_it_stops() -> TestResult {
    let mut cgroups = TaskCgroups::new();
    let mut stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let instance = stack.instance_arn(0)?;
    let main = container_builder("main", UNTIL_TERM)
        .set_memory(None)
        .build();
    let out = client
        .register_task_definition()
        .family("task-limits-readopted")
        .cpu("512")
        .memory("96")
        .container_definitions(main)
        .send()
        .await?;
    let definition = out
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .req("task definition ARN")?;
    let arn = run_task(&client, definition)
        .await?
        .task_arn()
        .req("task ARN")?
        .to_string();
    let id = task_id(&arn).to_string();
    cgroups.task_ids.push(id.clone());
    wait_running(&client, &arn).await?;
    let parent = format!("/berth/{id}");
    let before = inspect_existing(&runtime_name(&arn, "main")).await?;
    assert_eq!(field(&before, "/HostConfig/CgroupParent")?, parent);

    stack.agents[0].kill9()?;
    stack.wait_connected(&instance, false).await?;
    stack.agents[0].restart()?;
    stack.wait_connected(&instance, true).await?;

    // Same container, same cgroup, same limits.
    let running = wait_running(&client, &arn).await?;
    assert_eq!(running.last_status(), Some("RUNNING"));
    let after = inspect_existing(&runtime_name(&arn, "main")).await?;
    assert_eq!(field(&after, "/Id")?, field(&before, "/Id")?);
    assert_eq!(
        field(&after, "/State/StartedAt")?,
        field(&before, "/State/StartedAt")?
    );
    let memory = if cgroup_v2() {
        cgroups.read("memory", &parent, "memory.max")?
    } else {
        cgroups.read("memory", &parent, "memory.limit_in_bytes")?
    };
    assert_eq!(memory, (96u64 << 20).to_string());

    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&arn)
        .reason("e2e: done")
        .send()
        .await?;
    wait_stopped(&client, &arn).await?;
    wait_for("the task cgroup to be removed", TASK_DEADLINE, || async {
        Ok((!cgroups.any_left(&id)).then_some(()))
    })
    .await?;
    Ok(())
}

//! Placement against a real agent's capacity, and container instance states:
//! RunTask beyond what an instance has left fails with ECS's RESOURCE:* reasons,
//! concurrent RunTask calls never over-commit an instance, and deregistered or
//! draining instances take no tasks.
//!
//! Each test runs `berth server` and a separate `berth agent` process of its own and
//! removes its containers when it ends (see `common::docker::Stack`).

mod common;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerInstance, ContainerInstanceStatus, Failure, PortMapping, Resource, TransportProtocol,
};
use common::docker::{
    CLUSTER, INSTANCE_LABEL, Stack, UNTIL_TERM, container, container_builder, describe_instance,
    docker, free_port, register, run_task, wait_running, wait_stopped,
};
use common::{Require, TestResult, service_error};
use tokio::task::JoinSet;

/// MiB one test task reserves.
const TASK_MEMORY: i32 = 64;
/// How many of them the agent of the memory test has room for.
const FITS: i32 = 3;
/// Concurrent RunTask calls racing for that room.
const RACERS: usize = 8;

fn integer(resources: &[Resource], name: &str) -> TestResult<i32> {
    resources
        .iter()
        .find(|r| r.name() == Some(name))
        .map(|r| r.integer_value())
        .req(name)
}

fn ports(resources: &[Resource]) -> Vec<String> {
    resources
        .iter()
        .find(|r| r.name() == Some("PORTS"))
        .map(|r| r.string_set_value().to_vec())
        .unwrap_or_default()
}

/// The reasons of the failures, each checked to name `instance_arn`.
fn reasons(failures: &[Failure], instance_arn: &str) -> Vec<String> {
    for failure in failures {
        assert_eq!(failure.arn(), Some(instance_arn), "{failure:?}");
    }
    failures
        .iter()
        .filter_map(|f| f.reason().map(str::to_string))
        .collect()
}

/// MiB of memory the Docker engine reports for the host, as the agent counts it.
async fn host_memory_mib() -> TestResult<i64> {
    let bytes: i64 = docker(&["info", "--format", "{{.MemTotal}}"])
        .await?
        .trim()
        .parse()?;
    Ok(bytes / (1024 * 1024))
}

async fn run_one(client: &Client, definition: &str) -> TestResult<(Vec<String>, Vec<Failure>)> {
    let out = client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(definition)
        .send()
        .await?;
    let tasks = out
        .tasks()
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_string))
        .collect();
    Ok((tasks, out.failures().to_vec()))
}

async fn instance(client: &Client, arn: &str) -> TestResult<ContainerInstance> {
    describe_instance(client, arn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_run_tasks_never_overcommit_memory() -> TestResult {
    // Room for FITS tasks and a little more, never for one more.
    let capacity = i64::from(FITS * TASK_MEMORY + TASK_MEMORY / 2);
    let reserved = (host_memory_mib().await? - capacity).to_string();
    let stack = Stack::server_and_agent(&["--reserved-memory", &reserved]).await?;
    let client = stack.client();
    let arn = stack.instance_arn(0)?;
    let registered = instance(&client, &arn).await?;
    assert_eq!(
        integer(registered.registered_resources(), "MEMORY")?,
        i32::try_from(capacity)?,
        "--reserved-memory {reserved} leaves the rest of the host's memory: {registered:#?}"
    );
    let definition = register(&client, "fits-thrice", vec![container("main", UNTIL_TERM)]).await?;

    let mut calls = JoinSet::new();
    for _ in 0..RACERS {
        let client = client.clone();
        let definition = definition.clone();
        calls.spawn(async move { run_one(&client, &definition).await });
    }
    let mut placed = Vec::new();
    let mut refused = 0;
    while let Some(joined) = calls.join_next().await {
        let (tasks, failures) = joined??;
        match tasks.len() {
            1 => assert!(failures.is_empty(), "{failures:?}"),
            0 => {
                assert_eq!(
                    reasons(&failures, &arn),
                    ["RESOURCE:MEMORY"],
                    "{failures:?}"
                );
                refused += 1;
            }
            n => panic!("one RunTask placed {n} tasks"),
        }
        placed.extend(tasks);
    }
    assert_eq!(
        placed.len(),
        usize::try_from(FITS)?,
        "{RACERS} concurrent RunTask calls for an instance with room for {FITS}: {placed:?}"
    );
    assert_eq!(refused, RACERS - placed.len());

    let now = instance(&client, &arn).await?;
    assert_eq!(
        integer(now.remaining_resources(), "MEMORY")?,
        i32::try_from(capacity)? - FITS * TASK_MEMORY,
        "{now:#?}"
    );
    assert_eq!(
        now.running_tasks_count() + now.pending_tasks_count(),
        FITS,
        "{now:#?}"
    );
    // One more is refused, naming the instance and the resource.
    let (tasks, failures) = run_one(&client, &definition).await?;
    assert!(tasks.is_empty());
    assert_eq!(reasons(&failures, &arn), ["RESOURCE:MEMORY"]);

    for task in &placed {
        wait_running(&client, task).await?;
    }
    let containers = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label={INSTANCE_LABEL}={arn}"),
    ])
    .await?;
    assert_eq!(
        containers.lines().count(),
        placed.len(),
        "one running container per placed task"
    );
    let running = instance(&client, &arn).await?;
    assert_eq!(running.running_tasks_count(), FITS, "{running:#?}");

    // A stopped task gives its memory back: there is room for one again.
    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&placed[0])
        .send()
        .await?;
    wait_stopped(&client, &placed[0]).await?;
    let after = instance(&client, &arn).await?;
    assert_eq!(
        integer(after.remaining_resources(), "MEMORY")?,
        i32::try_from(capacity)? - (FITS - 1) * TASK_MEMORY,
        "{after:#?}"
    );
    // Asked for more than fit, RunTask places what fits and says why not the rest.
    let out = client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .count(3)
        .send()
        .await?;
    assert_eq!(out.tasks().len(), 1, "{out:?}");
    assert_eq!(reasons(out.failures(), &arn), ["RESOURCE:MEMORY"]);
    let last = out.tasks()[0].task_arn().req("task ARN")?;
    wait_running(&client, last).await?;
    let full = instance(&client, &arn).await?;
    assert_eq!(
        integer(full.remaining_resources(), "MEMORY")?,
        i32::try_from(capacity)? - FITS * TASK_MEMORY,
        "{full:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_task_runs_on_the_named_instance() -> TestResult {
    let stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let arn = stack.instance_arn(0)?;
    let definition = register(&client, "started", vec![container("main", UNTIL_TERM)]).await?;
    let missing = "0123456789abcdef0123456789abcdef";
    let out = client
        .start_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .container_instances(&arn)
        .container_instances(missing)
        .started_by("e2e")
        .send()
        .await?;
    assert_eq!(out.tasks().len(), 1, "{out:?}");
    let failures = out.failures();
    assert_eq!(failures.len(), 1, "{out:?}");
    assert_eq!(failures[0].reason(), Some("MISSING"));
    assert!(
        failures[0].arn().is_some_and(|a| a.ends_with(missing)),
        "{failures:?}"
    );
    let task = &out.tasks()[0];
    assert_eq!(task.container_instance_arn(), Some(arn.as_str()));
    assert_eq!(task.started_by(), Some("e2e"));
    let task_arn = task.task_arn().req("task ARN")?;
    wait_running(&client, task_arn).await?;
    let listed = client
        .list_tasks()
        .cluster(CLUSTER)
        .container_instance(&arn)
        .started_by("e2e")
        .send()
        .await?;
    assert_eq!(listed.task_arns(), [task_arn.to_string()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_task_beyond_cpu_or_ports_reports_the_missing_resource() -> TestResult {
    let stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let arn = stack.instance_arn(0)?;
    let registered = instance(&client, &arn).await?;
    let cpu = integer(registered.registered_resources(), "CPU")?;
    assert!(cpu >= 1024, "{registered:#?}");
    let reserved_ports = ports(registered.registered_resources());
    assert!(
        reserved_ports.iter().any(|p| p == "22"),
        "ECS's agent keeps port 22 from tasks: {reserved_ports:?}"
    );

    // More CPU units than the instance has.
    let greedy = container_builder("main", UNTIL_TERM).cpu(cpu + 1).build();
    let greedy = register(&client, "too-much-cpu", vec![greedy]).await?;
    let (tasks, failures) = run_one(&client, &greedy).await?;
    assert!(tasks.is_empty());
    assert_eq!(reasons(&failures, &arn), ["RESOURCE:CPU"]);

    // A static host port: the first task takes it, the second finds it taken.
    let port = i32::from(free_port()?);
    let web = |host_port: i32| {
        container_builder("main", UNTIL_TERM)
            .port_mappings(
                PortMapping::builder()
                    .container_port(80)
                    .host_port(host_port)
                    .protocol(TransportProtocol::Tcp)
                    .build(),
            )
            .build()
    };
    let fixed = register(&client, "fixed-port", vec![web(port)]).await?;
    let first = run_task(&client, &fixed).await?;
    let (tasks, failures) = run_one(&client, &fixed).await?;
    assert!(tasks.is_empty());
    assert_eq!(reasons(&failures, &arn), ["RESOURCE:PORTS"]);
    let remaining = instance(&client, &arn).await?;
    assert!(
        ports(remaining.remaining_resources()).contains(&port.to_string()),
        "the port is taken: {remaining:#?}"
    );
    // A port the instance keeps for the host is never given to a task.
    let ssh = register(&client, "wants-ssh-port", vec![web(22)]).await?;
    let (tasks, failures) = run_one(&client, &ssh).await?;
    assert!(tasks.is_empty());
    assert_eq!(reasons(&failures, &arn), ["RESOURCE:PORTS"]);

    wait_running(&client, first.task_arn().req("task ARN")?).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistering_an_instance_with_a_running_task_needs_force() -> TestResult {
    let stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let arn = stack.instance_arn(0)?;
    let definition = register(&client, "busy", vec![container("main", UNTIL_TERM)]).await?;
    let task = run_task(&client, &definition).await?;
    let task_arn = task.task_arn().req("task ARN")?.to_string();
    wait_running(&client, &task_arn).await?;

    let refused = client
        .deregister_container_instance()
        .cluster(CLUSTER)
        .container_instance(&arn)
        .send()
        .await;
    service_error(refused)?.assert_code(&["InvalidParameterException", "ClientException"]);
    let still = instance(&client, &arn).await?;
    assert_eq!(still.status(), Some("ACTIVE"), "{still:#?}");

    let out = client
        .deregister_container_instance()
        .cluster(CLUSTER)
        .container_instance(&arn)
        .force(true)
        .send()
        .await?;
    let gone = out.container_instance().req("the deregistered instance")?;
    assert_eq!(gone.container_instance_arn(), Some(arn.as_str()));
    assert_eq!(gone.status(), Some("INACTIVE"), "{gone:#?}");

    let listed = client
        .list_container_instances()
        .cluster(CLUSTER)
        .send()
        .await?;
    assert!(
        !listed.container_instance_arns().contains(&arn),
        "{listed:?}"
    );
    let described = instance(&client, &arn).await?;
    assert_eq!(described.status(), Some("INACTIVE"), "{described:#?}");
    // Nothing is left to place tasks on.
    let (tasks, _) = match client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .send()
        .await
    {
        Ok(out) => (out.tasks().to_vec(), out.failures().to_vec()),
        Err(_) => (Vec::new(), Vec::new()),
    };
    assert!(tasks.is_empty(), "{tasks:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_instance_takes_no_new_tasks() -> TestResult {
    let stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let arn = stack.instance_arn(0)?;
    let definition = register(&client, "drained", vec![container("main", UNTIL_TERM)]).await?;
    // A task placed just before the drain: the placement right after it may sample
    // the instances as that one read them (still ACTIVE), and must still not place
    // there (its write is conditional on the instance record it read).
    let before = run_task(&client, &definition).await?;

    let out = client
        .update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(&arn)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await?;
    assert!(out.failures().is_empty(), "{out:?}");
    assert_eq!(
        out.container_instances().first().and_then(|i| i.status()),
        Some("DRAINING")
    );
    match client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .send()
        .await
    {
        Ok(out) => assert!(
            out.tasks().is_empty() && !out.failures().is_empty(),
            "a task was placed on a draining instance: {out:?}"
        ),
        Err(err) => {
            let error = service_error::<(), _>(Err(err))?;
            error.assert_code(&["InvalidParameterException"]);
        }
    }
    let listed = client
        .list_container_instances()
        .cluster(CLUSTER)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await?;
    assert_eq!(listed.container_instance_arns(), std::slice::from_ref(&arn));

    // Active again, it takes tasks again.
    client
        .update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(&arn)
        .status(ContainerInstanceStatus::Active)
        .send()
        .await?;
    let task = run_task(&client, &definition).await?;
    wait_running(&client, task.task_arn().req("task ARN")?).await?;
    wait_running(&client, before.task_arn().req("task ARN")?).await?;
    Ok(())
}

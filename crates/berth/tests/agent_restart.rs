//! Crashes: `kill -9` of the agent, and of the control plane, while tasks run as real
//! Docker containers. Containers outlive both; a restarted agent re-adopts them (same
//! container instance, same containers, not restarted) and catches up with what
//! happened while it was away; agents reconnect to a restarted control plane by
//! themselves.
//!
//! Each test runs `berth server` and a separate `berth agent` process (each with its
//! own data directory) and removes its containers when it ends (see
//! `common::docker::Stack`).

mod common;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerCondition, ContainerDependency, HealthCheck, Resource, TaskStopCode,
};
use common::docker::{
    CLUSTER, Stack, TASK_DEADLINE, UNTIL_TERM, container, container_builder, container_of,
    describe_instance, describe_task, docker, field, inspect, inspect_existing, register, run_task,
    runtime_name, saved_instance_arn, wait_for, wait_running, wait_stopped, wait_task,
};
use common::{Require, TestResult};
use serde_json::Value;

/// A container's identity on the engine: its id and when it (last) started.
#[derive(Debug, PartialEq)]
struct Incarnation {
    id: String,
    started_at: String,
    running: bool,
}

async fn incarnation(task_arn: &str, container: &str) -> TestResult<Incarnation> {
    let inspection = inspect_existing(&runtime_name(task_arn, container)).await?;
    Ok(Incarnation {
        id: field(&inspection, "/Id")?.to_string(),
        started_at: field(&inspection, "/State/StartedAt")?.to_string(),
        running: inspection.pointer("/State/Running") == Some(&Value::Bool(true)),
    })
}

/// Exits 7 once told to by [`exit_now`].
const EXIT_7_ON_REQUEST: &[&str] = &[
    "sh",
    "-c",
    "while [ ! -f /tmp/exit ]; do sleep 0.1; done; exit 7",
];

/// Makes the task's [`EXIT_7_ON_REQUEST`] container exit (behind berth's back), and
/// waits until it has.
async fn exit_now(task_arn: &str) -> TestResult {
    let name = runtime_name(task_arn, "main");
    docker(&["exec", &name, "touch", "/tmp/exit"]).await?;
    // A connected agent removes the container as soon as it has reported the task
    // stopped, so the container may be gone before this sees it exited.
    let exited = wait_for("the container to exit", TASK_DEADLINE, || async {
        Ok(match inspect(&name).await? {
            None => Some(None),
            Some(inspection) => (inspection.pointer("/State/Running") == Some(&Value::Bool(false)))
                .then_some(Some(inspection)),
        })
    })
    .await?;
    if let Some(exited) = exited {
        assert_eq!(exited.pointer("/State/ExitCode"), Some(&Value::from(7)));
    }
    Ok(())
}

async fn start(client: &Client, family: &str, command: &[&str]) -> TestResult<String> {
    let definition = register(client, family, vec![container("main", command)]).await?;
    let task = run_task(client, &definition).await?;
    Ok(task.task_arn().req("task ARN")?.to_string())
}

async fn instance_arns(client: &Client) -> TestResult<Vec<String>> {
    let listed = client
        .list_container_instances()
        .cluster(CLUSTER)
        .send()
        .await?;
    Ok(listed.container_instance_arns().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_readopts_its_containers_and_catches_up() -> TestResult {
    let mut stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let instance = stack.instance_arn(0)?;
    let keeper = start(&client, "keeper", UNTIL_TERM).await?;
    let stopper = start(&client, "stopper", UNTIL_TERM).await?;
    let exiter = start(&client, "exiter", EXIT_7_ON_REQUEST).await?;
    for task in [&keeper, &stopper, &exiter] {
        wait_running(&client, task).await?;
    }
    let keeper_before = incarnation(&keeper, "main").await?;
    let stopper_before = incarnation(&stopper, "main").await?;
    assert!(keeper_before.running && stopper_before.running);

    stack.agents[0].kill9()?;
    stack.wait_connected(&instance, false).await?;

    // While the agent is away: a StopTask, and a container exiting by itself.
    let reason = "e2e: stopped while the agent was away";
    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&stopper)
        .reason(reason)
        .send()
        .await?;
    exit_now(&exiter).await?;
    // Nobody acted on either yet: the agent is the one that does.
    let waiting = describe_task(&client, &stopper).await?;
    assert_eq!(waiting.desired_status(), Some("STOPPED"));
    assert_eq!(waiting.last_status(), Some("RUNNING"), "{waiting:#?}");
    assert_eq!(incarnation(&stopper, "main").await?, stopper_before);
    let unnoticed = describe_task(&client, &exiter).await?;
    assert_eq!(unnoticed.last_status(), Some("RUNNING"), "{unnoticed:#?}");
    // No new work goes to an instance whose agent is away.
    let definition = register(&client, "late", vec![container("main", UNTIL_TERM)]).await?;
    let out = client
        .start_task()
        .cluster(CLUSTER)
        .task_definition(&definition)
        .container_instances(&instance)
        .send()
        .await?;
    assert!(out.tasks().is_empty(), "{out:?}");
    assert_eq!(
        out.failures().first().and_then(|f| f.reason()),
        Some("AGENT"),
        "{out:?}"
    );

    stack.agents[0].restart()?;
    let back = stack.wait_connected(&instance, true).await?;
    assert_eq!(back.status(), Some("ACTIVE"));
    assert_eq!(
        saved_instance_arn(&stack.agents[0].data_dir()).as_deref(),
        Some(instance.as_str()),
        "the agent kept its identity"
    );
    assert_eq!(
        instance_arns(&client).await?,
        std::slice::from_ref(&instance),
        "the restarted agent is the same container instance, not a new one"
    );

    // The StopTask issued while it was away takes effect.
    let stopped = wait_stopped(&client, &stopper).await?;
    assert_eq!(stopped.stopped_reason(), Some(reason), "{stopped:#?}");
    assert_eq!(stopped.stop_code(), Some(&TaskStopCode::UserInitiated));
    assert_eq!(container_of(&stopped, "main")?.exit_code(), Some(0));

    // The exit it missed is reported, with its code.
    let exited = wait_stopped(&client, &exiter).await?;
    let main = container_of(&exited, "main")?;
    assert_eq!(main.exit_code(), Some(7), "{exited:#?}");
    assert_eq!(
        exited.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited),
        "{exited:#?}"
    );
    assert_eq!(
        exited.stopped_reason(),
        Some("Essential container in task exited")
    );

    // The keeper ran on, untouched: same container, never restarted.
    let still = describe_task(&client, &keeper).await?;
    assert_eq!(still.last_status(), Some("RUNNING"), "{still:#?}");
    assert_eq!(incarnation(&keeper, "main").await?, keeper_before);
    let main = container_of(&still, "main")?;
    assert_eq!(main.runtime_id(), Some(keeper_before.id.as_str()));

    let listed = client
        .list_tasks()
        .cluster(CLUSTER)
        .container_instance(&instance)
        .send()
        .await?;
    assert_eq!(listed.task_arns(), std::slice::from_ref(&keeper));

    // And the agent still manages it.
    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&keeper)
        .send()
        .await?;
    let done = wait_stopped(&client, &keeper).await?;
    assert_eq!(container_of(&done, "main")?.exit_code(), Some(0));
    // Every reservation was given back, across the restart.
    let idle = describe_instance(&client, &instance).await?;
    let memory = |resources: &[Resource]| {
        resources
            .iter()
            .find(|r| r.name() == Some("MEMORY"))
            .map(|r| r.integer_value())
    };
    assert_eq!(
        memory(idle.remaining_resources()),
        memory(idle.registered_resources()),
        "{idle:#?}"
    );
    assert_eq!(idle.running_tasks_count(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_interrupted_while_starting_finishes_starting_after_an_agent_restart() -> TestResult
{
    let mut stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let instance = stack.instance_arn(0)?;
    // app waits for db to be healthy: 5 s at least (its first health check).
    let db = container_builder(
        "db",
        &[
            "sh",
            "-c",
            "trap 'exit 0' TERM; touch /tmp/ready; sleep 600 & wait",
        ],
    )
    .health_check(
        HealthCheck::builder()
            .command("CMD-SHELL")
            .command("test -f /tmp/ready")
            .interval(5)
            .timeout(2)
            .retries(3)
            .build()?,
    )
    .build();
    let app = container_builder("app", UNTIL_TERM)
        .depends_on(
            ContainerDependency::builder()
                .container_name("db")
                .condition(ContainerCondition::Healthy)
                .build()?,
        )
        .build();
    let definition = register(&client, "interrupted", vec![db, app]).await?;
    let task = run_task(&client, &definition).await?;
    let arn = task.task_arn().req("task ARN")?.to_string();
    let db_name = runtime_name(&arn, "db");
    wait_for("db to run", TASK_DEADLINE, || async {
        let found = inspect(&db_name).await?;
        Ok(found.filter(|i| i.pointer("/State/Running") == Some(&Value::Bool(true))))
    })
    .await?;
    let db_before = incarnation(&arn, "db").await?;

    stack.agents[0].kill9()?;
    stack.wait_connected(&instance, false).await?;
    stack.agents[0].restart()?;
    stack.wait_connected(&instance, true).await?;

    // RUNNING means every container runs, after a restart too.
    let running = wait_task(&client, &arn, "RUNNING", TASK_DEADLINE, |t| {
        matches!(t.last_status(), Some("RUNNING" | "STOPPED"))
    })
    .await?;
    assert_eq!(running.last_status(), Some("RUNNING"), "{running:#?}");
    for name in ["db", "app"] {
        assert_eq!(
            container_of(&running, name)?.last_status(),
            Some("RUNNING"),
            "the task is RUNNING while {name} is not: {running:#?}"
        );
    }
    assert_eq!(incarnation(&arn, "db").await?, db_before);
    assert!(incarnation(&arn, "app").await?.running);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reconnect_to_a_restarted_control_plane() -> TestResult {
    let mut stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let instance = stack.instance_arn(0)?;
    let keeper = start(&client, "keeper", UNTIL_TERM).await?;
    let exiter = start(&client, "exiter", EXIT_7_ON_REQUEST).await?;
    wait_running(&client, &keeper).await?;
    wait_running(&client, &exiter).await?;
    let before = incarnation(&keeper, "main").await?;

    stack.server.kill9()?;
    let during = incarnation(&keeper, "main").await?;
    assert_eq!(
        during, before,
        "the container runs on without a control plane"
    );
    // A container exits while there is no control plane to tell.
    exit_now(&exiter).await?;

    // Same data directory, same (pinned) port: the agent finds it again by itself.
    stack.server.restart()?;
    let client = stack.client();
    stack.wait_connected(&instance, true).await?;
    assert_eq!(
        instance_arns(&client).await?,
        std::slice::from_ref(&instance)
    );
    let task = describe_task(&client, &keeper).await?;
    assert_eq!(task.last_status(), Some("RUNNING"), "{task:#?}");
    assert_eq!(incarnation(&keeper, "main").await?, before);
    // What happened while it was down reaches it.
    let exited = wait_stopped(&client, &exiter).await?;
    assert_eq!(
        container_of(&exited, "main")?.exit_code(),
        Some(7),
        "{exited:#?}"
    );
    assert_eq!(
        exited.stop_code(),
        Some(&TaskStopCode::EssentialContainerExited)
    );

    // New work runs, and changes reach the agent.
    let fresh = start(&client, "fresh", UNTIL_TERM).await?;
    let running = wait_running(&client, &fresh).await?;
    assert_eq!(running.container_instance_arn(), Some(instance.as_str()));
    assert!(incarnation(&fresh, "main").await?.running);
    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&keeper)
        .send()
        .await?;
    let stopped = wait_stopped(&client, &keeper).await?;
    assert_eq!(stopped.stop_code(), Some(&TaskStopCode::UserInitiated));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_container_vanished_while_the_agent_was_away_is_not_run_again() -> TestResult {
    let mut stack = Stack::server_and_agent(&[]).await?;
    let client = stack.client();
    let instance = stack.instance_arn(0)?;
    let arn = start(&client, "vanishing", UNTIL_TERM).await?;
    let running = wait_running(&client, &arn).await?;
    let first_id = container_of(&running, "main")?
        .runtime_id()
        .req("the container's runtime id")?
        .to_string();

    stack.agents[0].kill9()?;
    stack.wait_connected(&instance, false).await?;
    // Someone removes the container behind berth's back.
    docker(&["rm", "-f", &runtime_name(&arn, "main")]).await?;
    stack.agents[0].restart()?;
    stack.wait_connected(&instance, true).await?;

    // A task runs once: its container is gone, so the task has stopped; it is not
    // started again with a new container under the same task ARN.
    let task = wait_task(&client, &arn, "STOPPED or rerun", TASK_DEADLINE, |t| {
        t.last_status() == Some("STOPPED")
            || t.containers()
                .iter()
                .any(|c| c.runtime_id().is_some_and(|id| id != first_id))
    })
    .await?;
    assert_eq!(
        task.last_status(),
        Some("STOPPED"),
        "the task was started again with a new container: {task:#?}"
    );
    assert!(
        inspect(&runtime_name(&arn, "main")).await?.is_none(),
        "a new container was made for the task"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_berth_up_takes_its_tasks_back() -> TestResult {
    let mut stack = Stack::up(&[]).await?;
    let client = stack.client();
    let instance = stack.instance_arn(0)?;
    let arn = start(&client, "kept", UNTIL_TERM).await?;
    wait_running(&client, &arn).await?;
    let before = incarnation(&arn, "main").await?;

    // Ctrl-C: berth stops, its task containers do not.
    let status = stack.server.stop()?;
    assert!(status.success(), "berth up exited with {status}");
    assert_eq!(incarnation(&arn, "main").await?, before);

    stack.server.restart()?;
    let client = stack.client();
    let back = stack.wait_connected(&instance, true).await?;
    assert_eq!(back.container_instance_arn(), Some(instance.as_str()));
    assert_eq!(
        instance_arns(&client).await?,
        std::slice::from_ref(&instance)
    );
    let task = describe_task(&client, &arn).await?;
    assert_eq!(task.last_status(), Some("RUNNING"), "{task:#?}");
    assert_eq!(incarnation(&arn, "main").await?, before);

    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&arn)
        .send()
        .await?;
    let stopped = wait_stopped(&client, &arn).await?;
    assert_eq!(container_of(&stopped, "main")?.exit_code(), Some(0));
    Ok(())
}

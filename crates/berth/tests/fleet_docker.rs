//! Several agents on one Docker engine (each owning only its own containers), driven
//! through the AWS SDK: DAEMON services (one task on every instance, one that joins
//! included, and the last task to stop on a draining instance), draining an instance
//! (its service tasks move elsewhere, standalone tasks stay), and an agent lost for
//! longer than the grace period (its tasks are stopped and replaced, and when it
//! returns it stops the copies it still runs).
//!
//! Each test has its own control plane and removes its containers when it ends, pass
//! or fail (see `common::docker::Stack`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, ContainerInstanceStatus, DeploymentConfiguration, DesiredStatus,
    LinuxParameters, NetworkMode, SchedulingStrategy, Task,
};
use common::docker::{CLUSTER, Stack, TEST_IMAGE, inspect, runtime_name, wait_for};
use common::{Require, TaskFilter, TestResult, describe_task_arns, list_task_arns};

/// How long the fleet may take to reach what a test waits for.
const DEADLINE: Duration = Duration::from_secs(90);

/// A container that sleeps until stopped; with an init process, so SIGTERM stops it
/// at once.
fn sleeper() -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("app")
        .image(TEST_IMAGE)
        .memory(8)
        .essential(true)
        .set_command(Some(["sleep", "3600"].map(str::to_string).to_vec()))
        .linux_parameters(
            LinuxParameters::builder()
                .init_process_enabled(true)
                .build(),
        )
        .build()
}

async fn register(client: &Client, family: &str) -> TestResult<String> {
    let out = client
        .register_task_definition()
        .family(family)
        .network_mode(NetworkMode::Bridge)
        .container_definitions(sleeper())
        .send()
        .await?;
    out.task_definition()
        .and_then(|td| td.task_definition_arn())
        .map(str::to_string)
        .req("the task definition ARN")
}

/// Every task of the cluster with the given desired status (all pages), described.
async fn tasks(client: &Client, desired: DesiredStatus) -> TestResult<Vec<Task>> {
    let filter = TaskFilter {
        desired: Some(desired),
        ..TaskFilter::default()
    };
    let arns = list_task_arns(client, CLUSTER, &filter).await?;
    describe_task_arns(client, CLUSTER, &arns).await
}

fn group_of(service: &str) -> String {
    format!("service:{service}")
}

fn in_group<'t>(tasks: &'t [Task], group: &str) -> Vec<&'t Task> {
    tasks.iter().filter(|t| t.group() == Some(group)).collect()
}

fn is_running(task: &Task) -> bool {
    task.last_status() == Some("RUNNING") && task.desired_status() == Some("RUNNING")
}

/// The RUNNING tasks of `group`, counted per instance ARN.
fn running_per_instance(tasks: &[Task], group: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for task in in_group(tasks, group).into_iter().filter(|t| is_running(t)) {
        *counts
            .entry(
                task.container_instance_arn()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    counts
}

async fn service_desired_count(client: &Client, name: &str) -> TestResult<i32> {
    let out = client
        .describe_services()
        .cluster(CLUSTER)
        .services(name)
        .send()
        .await?;
    Ok(out
        .services()
        .first()
        .req("the described service")?
        .desired_count())
}

async fn drain(client: &Client, instance: &str) -> TestResult {
    let out = client
        .update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(instance)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await?;
    if !out.failures().is_empty() {
        return Err(format!("draining failed: {:?}", out.failures()).into());
    }
    Ok(())
}

/// StartTask of a standalone task on one instance; returns its ARN.
async fn start_on(client: &Client, task_definition: &str, instance: &str) -> TestResult<String> {
    let out = client
        .start_task()
        .cluster(CLUSTER)
        .task_definition(task_definition)
        .container_instances(instance)
        .send()
        .await?;
    out.tasks()
        .first()
        .and_then(|t| t.task_arn())
        .map(str::to_string)
        .req("the started task")
}

async fn task_by_arn(client: &Client, arn: &str) -> TestResult<Task> {
    let out = client
        .describe_tasks()
        .cluster(CLUSTER)
        .tasks(arn)
        .send()
        .await?;
    out.tasks().first().cloned().req("the described task")
}

/// Whether the task's `app` container is running on the engine now.
async fn container_running(task_arn: &str) -> TestResult<bool> {
    let inspection = inspect(&runtime_name(task_arn, "app")).await?;
    Ok(inspection.is_some_and(|i| i.pointer("/State/Running") == Some(&serde_json::json!(true))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_runs_one_task_on_every_instance_and_stops_last_when_one_drains() -> TestResult {
    let mut stack = Stack::server_and_agent(&[]).await?;
    stack.add_agent(&[]).await?;
    let client = stack.client();
    let daemon_td = register(&client, "fleet-daemon").await?;
    let other_td = register(&client, "fleet-other").await?;
    client
        .create_service()
        .cluster(CLUSTER)
        .service_name("logs")
        .task_definition(&daemon_td)
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .send()
        .await?;
    let group = group_of("logs");
    let one_each = |want: usize| {
        let client = client.clone();
        let group = group.clone();
        move || {
            let client = client.clone();
            let group = group.clone();
            async move {
                let all = tasks(&client, DesiredStatus::Running).await?;
                let counts = running_per_instance(&all, &group);
                Ok((counts.len() == want && counts.values().all(|&n| n == 1)).then_some(counts))
            }
        }
    };
    wait_for(
        "a daemon task on each of 2 instances",
        DEADLINE,
        one_each(2),
    )
    .await?;
    assert_eq!(service_desired_count(&client, "logs").await?, 2);

    // A third instance joins: it gets the daemon's task too.
    let third = stack.add_agent(&[]).await?;
    let counts = wait_for(
        "a daemon task on each of 3 instances",
        DEADLINE,
        one_each(3),
    )
    .await?;
    assert!(
        counts.contains_key(&third),
        "the new instance runs the daemon"
    );
    wait_for("desiredCount 3", DEADLINE, || async {
        Ok((service_desired_count(&client, "logs").await? == 3).then_some(()))
    })
    .await?;

    // Drain it while a standalone task runs there: the daemon's task stays until the
    // other task has stopped.
    let standalone = start_on(&client, &other_td, &third).await?;
    wait_for("the standalone task to run", DEADLINE, || async {
        Ok(is_running(&task_by_arn(&client, &standalone).await?).then_some(()))
    })
    .await?;
    drain(&client, &third).await?;
    // The controller has seen the drain once the daemon no longer counts the instance.
    wait_for("desiredCount 2 after the drain", DEADLINE, || async {
        Ok((service_desired_count(&client, "logs").await? == 2).then_some(()))
    })
    .await?;
    let all = tasks(&client, DesiredStatus::Running).await?;
    let counts = running_per_instance(&all, &group);
    assert_eq!(
        counts.get(&third),
        Some(&1),
        "the daemon's task on the draining instance stays while another task runs there: {counts:?}"
    );
    assert!(
        is_running(&task_by_arn(&client, &standalone).await?),
        "draining leaves standalone tasks alone"
    );

    client
        .stop_task()
        .cluster(CLUSTER)
        .task(&standalone)
        .send()
        .await?;
    wait_for(
        "the daemon's task on the drained instance to stop",
        DEADLINE,
        || async {
            let all = tasks(&client, DesiredStatus::Running).await?;
            let counts = running_per_instance(&all, &group);
            Ok((!counts.contains_key(&third) && counts.len() == 2).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// Registers `family` and creates the service `web` of 2 tasks (minimum 100%,
/// maximum 200%) while `instance` is the only one; returns the task definition and
/// the service's task ARNs once both run there.
async fn web_service_on(
    client: &Client,
    instance: &str,
    family: &str,
) -> TestResult<(String, BTreeSet<String>)> {
    let td = register(client, family).await?;
    client
        .create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition(&td)
        .desired_count(2)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(100)
                .maximum_percent(200)
                .build(),
        )
        .send()
        .await?;
    let group = group_of("web");
    let arns = wait_for(
        "2 service tasks on the first instance",
        DEADLINE,
        || async {
            let all = tasks(client, DesiredStatus::Running).await?;
            let on_it = running_per_instance(&all, &group).get(instance) == Some(&2);
            Ok(on_it.then(|| {
                in_group(&all, &group)
                    .iter()
                    .filter_map(|t| t.task_arn().map(str::to_string))
                    .collect::<BTreeSet<String>>()
            }))
        },
    )
    .await?;
    Ok((td, arns))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_an_instance_moves_its_service_tasks_and_keeps_standalone_ones() -> TestResult {
    let mut stack = Stack::server_and_agent(&[]).await?;
    let first = stack.instance_arn(0)?;
    let client = stack.client();
    let (td, moved) = web_service_on(&client, &first, "fleet-web").await?;
    let group = group_of("web");
    let standalone = start_on(&client, &td, &first).await?;
    let second = stack.add_agent(&[]).await?;

    drain(&client, &first).await?;
    // Sampled until the move is over: never fewer than 2 service tasks RUNNING.
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    wait_for(
        "the service's tasks to move to the second instance",
        DEADLINE,
        || {
            let client = client.clone();
            let group = group.clone();
            let second = second.clone();
            let first = first.clone();
            let fewest = Arc::clone(&fewest);
            async move {
                let all = tasks(&client, DesiredStatus::Running).await?;
                let counts = running_per_instance(&all, &group);
                fewest.fetch_min(counts.values().sum(), Ordering::Relaxed);
                Ok((counts.get(&second) == Some(&2) && !counts.contains_key(&first)).then_some(()))
            }
        },
    )
    .await?;
    let fewest = fewest.load(Ordering::Relaxed);
    assert!(
        fewest >= 2,
        "minimumHealthyPercent 100 keeps 2 tasks running, saw {fewest}"
    );
    for arn in &moved {
        let task = task_by_arn(&client, arn).await?;
        assert_eq!(
            task.desired_status(),
            Some("STOPPED"),
            "the drained instance's service task {arn} is stopped"
        );
    }
    let standalone_now = task_by_arn(&client, &standalone).await?;
    assert!(
        is_running(&standalone_now),
        "standalone tasks are left alone"
    );
    assert!(container_running(&standalone).await?);

    // Nothing new goes to a draining instance.
    let out = client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(&td)
        .count(1)
        .send()
        .await?;
    for task in out.tasks() {
        assert_eq!(task.container_instance_arn(), Some(second.as_str()));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_s_tasks_are_replaced_and_stopped_when_it_returns() -> TestResult {
    let mut stack = Stack::server_and_agent_with(&["--lost-agent-grace", "3"], &[]).await?;
    let first = stack.instance_arn(0)?;
    let client = stack.client();
    let (td, lost) = web_service_on(&client, &first, "fleet-lost").await?;
    let group = group_of("web");
    let standalone = start_on(&client, &td, &first).await?;
    wait_for("the standalone task to run", DEADLINE, || async {
        Ok(is_running(&task_by_arn(&client, &standalone).await?).then_some(()))
    })
    .await?;
    let second = stack.add_agent(&[]).await?;

    // The first agent dies; its containers keep running.
    stack.agents[0].kill9()?;
    stack.wait_connected(&first, false).await?;
    for arn in lost.iter().chain([&standalone]) {
        let task = wait_for("the lost agent's task to be STOPPED", DEADLINE, || async {
            let task = task_by_arn(&client, arn).await?;
            Ok((task.last_status() == Some("STOPPED")).then_some(task))
        })
        .await?;
        let reason = task.stopped_reason().unwrap_or_default();
        assert!(
            reason.contains(&first) && reason.contains("disconnected"),
            "the reason names the lost instance: {reason:?}"
        );
        assert!(
            container_running(arn).await?,
            "the container of {arn} still runs while its agent is away"
        );
    }
    wait_for(
        "2 replacements on the second instance",
        DEADLINE,
        || async {
            let all = tasks(&client, DesiredStatus::Running).await?;
            Ok((running_per_instance(&all, &group).get(&second) == Some(&2)).then_some(()))
        },
    )
    .await?;

    // It comes back: what it still runs was replaced, so it stops it.
    stack.agents[0].restart()?;
    stack.wait_connected(&first, true).await?;
    for arn in lost.iter().chain([&standalone]) {
        wait_for(
            "the returned agent to stop a replaced task's container",
            DEADLINE,
            || async { Ok((!container_running(arn).await?).then_some(())) },
        )
        .await?;
    }
    let all = tasks(&client, DesiredStatus::Running).await?;
    let counts = running_per_instance(&all, &group);
    assert_eq!(
        counts.values().sum::<usize>(),
        2,
        "never two copies of a replaced task: {counts:?}"
    );
    for arn in &lost {
        assert_eq!(
            task_by_arn(&client, arn).await?.last_status(),
            Some("STOPPED")
        );
    }
    Ok(())
}

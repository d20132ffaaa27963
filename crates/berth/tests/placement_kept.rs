//! Placement with constraints on a cluster large enough for the control plane to
//! keep its placement engine between decisions (`state/placers.rs`): a real
//! `berth server`, 80 simulated instances in this process, the AWS SDK.
//!
//! `distinctInstance` puts each task of a group on its own instance across many
//! RunTask calls (the kept engine follows the tasks each call placed); once every
//! instance holds one, the next task fails on every instance with the constraint's
//! reason; when one task stops, the next goes to the instance it left (the kept
//! engine follows a change to the tasks that touched no instance record).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::types::{
    ContainerDefinition, NetworkMode, PlacementConstraint, PlacementConstraintType,
};
use berth_agent::sim::{SimConfig, Simulation};
use common::{ACCESS_KEY_ID, BerthServer, Require, SECRET_ACCESS_KEY, TestResult};

const CLUSTER: &str = "kept";
/// More than the control plane's threshold for keeping an engine (64 candidates).
const INSTANCES: usize = 80;
const GROUP: &str = "one-each";
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

async fn run_distinct(client: &Client, definition: &str, count: i32) -> TestResult<RunTaskOutput> {
    Ok(client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(definition)
        .count(count)
        .group(GROUP)
        .placement_constraints(
            PlacementConstraint::builder()
                .r#type(PlacementConstraintType::DistinctInstance)
                .build(),
        )
        .send()
        .await?)
}

fn instances_of(out: &RunTaskOutput) -> Vec<String> {
    out.tasks()
        .iter()
        .filter_map(|t| t.container_instance_arn().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_instance_holds_across_calls_and_follows_a_stopped_task() -> TestResult {
    let server = BerthServer::start()?;
    let client = server.client();
    client.create_cluster().cluster_name(CLUSTER).send().await?;
    let config = SimConfig::new(
        &server.endpoint(),
        CLUSTER,
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
    );
    let mut sim = Simulation::new(config)?;
    sim.start_agents(INSTANCES);
    let arns = sim.wait_connected(DEADLINE).await?;
    assert_eq!(arns.len(), INSTANCES);
    let definition = client
        .register_task_definition()
        .family("kept-app")
        .network_mode(NetworkMode::Bridge)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("sim/app:1")
                .memory(16)
                .cpu(8)
                .essential(true)
                .build(),
        )
        .send()
        .await?
        .task_definition()
        .and_then(|td| td.task_definition_arn())
        .map(str::to_string)
        .req("the task definition ARN")?;

    // Every instance connected as the control plane sees it, before placing.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let listed = client
            .list_container_instances()
            .cluster(CLUSTER)
            .filter("agentConnected == true")
            .max_results(100)
            .send()
            .await?;
        if listed.container_instance_arns().len() == INSTANCES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances not connected in time"
        );
        tokio::time::sleep(POLL).await;
    }

    // Eight calls of ten: each task on an instance of its own.
    let mut used = BTreeSet::new();
    let mut tasks = Vec::new();
    for _ in 0..INSTANCES / 10 {
        let out = run_distinct(&client, &definition, 10).await?;
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        for instance in instances_of(&out) {
            assert!(
                used.insert(instance.clone()),
                "a second task of the group on {instance}"
            );
        }
        tasks.extend(
            out.tasks()
                .iter()
                .filter_map(|t| t.task_arn().map(str::to_string)),
        );
    }
    assert_eq!(used.len(), INSTANCES);

    // No instance is left for the group: the task fails on each, with the reason.
    let out = run_distinct(&client, &definition, 1).await?;
    assert!(out.tasks().is_empty());
    assert_eq!(out.failures().len(), INSTANCES, "{:?}", out.failures());
    assert!(
        out.failures()
            .iter()
            .all(|f| f.reason() == Some("DistinctInstance placement constraint unsatisfied.")),
        "{:?}",
        out.failures()
    );

    // One task is stopped; the next goes where it was, at once: the task no longer
    // counts for the group from the moment it is desired STOPPED (most likely before
    // its agent reports it stopped and its resources come back, so the kept engine
    // learns of it from the task view, not from the instance's records).
    let stopped = tasks.first().req("a task")?;
    let freed = client
        .stop_task()
        .cluster(CLUSTER)
        .task(stopped)
        .reason("making room")
        .send()
        .await?
        .task()
        .and_then(|t| t.container_instance_arn())
        .map(str::to_string)
        .req("the stopped task's instance")?;
    let out = run_distinct(&client, &definition, 1).await?;
    assert_eq!(instances_of(&out), vec![freed], "{:?}", out.failures());

    sim.shutdown().await;
    Ok(())
}

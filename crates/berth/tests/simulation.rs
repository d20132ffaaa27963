//! The scheduler's behaviours at scale, with simulated container instances: a real
//! `berth server` process (real SQLite store) and 1,000 agents in this process, each
//! the real agent (`berth_agent::agent`) on the fake runtime, each its own container
//! instance with its own session (`berth_agent::sim`). Driven through the AWS SDK.
//!
//! One test walks through the whole story on one control plane, so the suite pays
//! for 1,000 agents once: the instances register and connect; a REPLICA service of
//! thousands of tasks reaches its steady state, every task running on its agent and
//! no instance over-committed; a rolling update to a new revision completes within
//! the service's minimumHealthyPercent and maximumPercent (watched at every sample,
//! from the agents' side as well as through the API); RunTask batches are placed and
//! run; an agent killed abruptly is seen disconnected; another is lost in the middle
//! of a rolling update, and the update completes with the lost instances' tasks
//! stopped and replaced on live agents.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    ContainerDefinition, ContainerInstance, DeploymentConfiguration, DeploymentRolloutState,
    DesiredStatus, NetworkMode, PlacementStrategy, PlacementStrategyType, Task,
};
use berth_agent::sim::{SimConfig, Simulation};
use common::{
    ACCESS_KEY_ID, BerthServer, Require, SECRET_ACCESS_KEY, TaskFilter, TestResult,
    describe_service, describe_task_arns, list_task_arns,
};

const CLUSTER: &str = "sim";
const INSTANCES: usize = 1_000;
/// Each simulated host: 4 CPUs, 2 GiB; each task takes 256 MiB, so 8 fit on a host.
const HOST_MEMORY_MIB: u64 = 2048;
const TASK_MEMORY_MIB: i32 = 256;
const TASKS_PER_HOST: usize = 8;
const SERVICE: &str = "fleet";
const DESIRED: usize = 2_000;
const MIN_HEALTHY_PERCENT: usize = 50;
const MAX_PERCENT: usize = 200;
/// RunTask calls of 10 tasks each.
const BATCHES: usize = 30;
const FAMILY: &str = "sim-app";
/// Seconds a simulated agent may be gone before its tasks are replaced.
const LOST_AGENT_GRACE: &str = "5";

/// The bound on reaching any state the test waits for.
const DEADLINE: Duration = Duration::from_secs(240);
const POLL: Duration = Duration::from_millis(200);

fn container(image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("app")
        .image(image)
        .memory(TASK_MEMORY_MIB)
        .cpu(64)
        .essential(true)
        .build()
}

async fn register(client: &Client, image: &str) -> TestResult<String> {
    let out = client
        .register_task_definition()
        .family(FAMILY)
        .network_mode(NetworkMode::Bridge)
        .container_definitions(container(image))
        .send()
        .await?;
    out.task_definition()
        .and_then(|td| td.task_definition_arn())
        .map(str::to_string)
        .req("the task definition ARN")
}

async fn all_instances(client: &Client) -> TestResult<Vec<ContainerInstance>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_container_instances()
            .cluster(CLUSTER)
            .set_next_token(token)
            .send()
            .await?;
        arns.extend(out.container_instance_arns().iter().cloned());
        match out.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    let mut instances = Vec::new();
    for chunk in arns.chunks(100) {
        let out = client
            .describe_container_instances()
            .cluster(CLUSTER)
            .set_container_instances(Some(chunk.to_vec()))
            .send()
            .await?;
        if !out.failures().is_empty() {
            return Err(format!("DescribeContainerInstances: {:?}", out.failures()).into());
        }
        instances.extend(out.container_instances().iter().cloned());
    }
    Ok(instances)
}

/// Every task ARN ListTasks gives for one filter, every page.
async fn list_tasks(
    client: &Client,
    service: Option<&str>,
    started_by: Option<&str>,
    desired: DesiredStatus,
) -> TestResult<Vec<String>> {
    let filter = TaskFilter {
        service,
        started_by,
        desired: Some(desired),
    };
    list_task_arns(client, CLUSTER, &filter).await
}

async fn describe_tasks(client: &Client, arns: &[String]) -> TestResult<Vec<Task>> {
    describe_task_arns(client, CLUSTER, arns).await
}

/// Every task of the cluster not yet STOPPED (desired RUNNING, and desired STOPPED
/// but still stopping).
///
/// The reads are not one snapshot, but every task returned was listed (so existed)
/// when the last list call ended and was not STOPPED when described after it, so
/// all of them were live together at that moment: counts of these tasks are safe
/// upper bounds. (A task is listed once even when its desired status changed between
/// the two list calls.)
async fn live_tasks(client: &Client) -> TestResult<Vec<Task>> {
    let mut arns = list_tasks(client, None, None, DesiredStatus::Running).await?;
    arns.extend(list_tasks(client, None, None, DesiredStatus::Stopped).await?);
    let arns: Vec<String> = arns
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let tasks = describe_tasks(client, &arns).await?;
    Ok(tasks
        .into_iter()
        .filter(|t| t.last_status() != Some("STOPPED"))
        .collect())
}

/// Waits (up to [`DEADLINE`]) until `check` returns `Some`; `what` names the wait.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = TestResult<Result<T, String>>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let last = match check().await? {
            Ok(found) => return Ok(found),
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{what}: not within {DEADLINE:?}; last: {last}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn revision_of(task: &Task) -> &str {
    task.task_definition_arn()
        .and_then(|arn| arn.rsplit(':').next())
        .unwrap_or_default()
}

/// The running containers of every simulated host whose agent runs (a killed
/// agent's host is cut off: what it still runs is not the fleet's): (agent index,
/// task ARN, image).
fn agent_side(sim: &Simulation) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    for agent in sim.agents().iter().filter(|a| a.is_running()) {
        for container in agent.runtime().running_containers() {
            let task = container
                .labels
                .get(berth_proto::labels::TASK_ARN)
                .cloned()
                .unwrap_or_default();
            found.push((agent.index(), task, container.image));
        }
    }
    found
}

/// Waits until the control plane's and the agents' views agree: every task RUNNING
/// in the control plane runs on the agent of its instance (and vice versa), and each
/// instance's remaining memory is what its live tasks leave. Those converge (a task
/// stopping when a service reaches its steady state still holds its container and
/// its reservation for a moment), so they are waited for; what must hold at every
/// moment (no instance holds more live tasks than fit, no remaining memory below
/// zero) is asserted on every look.
async fn check_placement(client: &Client, sim: &Simulation) -> TestResult<Vec<Task>> {
    wait_for("the control plane and the agents agree", || {
        placement_agrees(client, sim)
    })
    .await
}

/// One look for [`check_placement`]: `Err` says what does not agree yet.
async fn placement_agrees(
    client: &Client,
    sim: &Simulation,
) -> TestResult<Result<Vec<Task>, String>> {
    let live = live_tasks(client).await?;
    let instances = all_instances(client).await?;
    let index_of: HashMap<String, usize> = sim
        .agents()
        .iter()
        .filter_map(|a| Some((a.instance_arn()?, a.index())))
        .collect();
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for task in &live {
        let instance = task.container_instance_arn().req("the task's instance")?;
        *per_instance.entry(instance.to_string()).or_default() += 1;
    }
    for (instance, count) in &per_instance {
        assert!(
            *count <= TASKS_PER_HOST,
            "instance {instance} holds {count} live tasks; {TASKS_PER_HOST} fit"
        );
    }
    for instance in &instances {
        let arn = instance.container_instance_arn().unwrap_or_default();
        let memory = |resources: &[aws_sdk_ecs::types::Resource]| {
            resources
                .iter()
                .find(|r| r.name() == Some("MEMORY"))
                .map(|r| r.integer_value())
                .unwrap_or_default()
        };
        let registered = memory(instance.registered_resources());
        let remaining = memory(instance.remaining_resources());
        let held = per_instance.get(arn).copied().unwrap_or(0) as i32 * TASK_MEMORY_MIB;
        assert!(remaining >= 0, "instance {arn} over-committed: {remaining}");
        if registered - remaining != held {
            return Ok(Err(format!(
                "instance {arn}: registered {registered} MiB, remaining {remaining} MiB, its live tasks hold {held} MiB"
            )));
        }
    }
    let running: BTreeSet<(usize, String)> = live
        .iter()
        .filter(|t| t.last_status() == Some("RUNNING") && t.desired_status() == Some("RUNNING"))
        .map(|t| {
            let instance = t.container_instance_arn().unwrap_or_default();
            (
                index_of.get(instance).copied().unwrap_or(usize::MAX),
                t.task_arn().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let on_agents: BTreeSet<(usize, String)> = agent_side(sim)
        .into_iter()
        .map(|(index, task, _)| (index, task))
        .collect();
    let missing: Vec<_> = running.difference(&on_agents).take(5).collect();
    if !missing.is_empty() {
        return Ok(Err(format!(
            "tasks RUNNING in the control plane but not on their agent: {missing:?}"
        )));
    }
    let extra: Vec<_> = on_agents.difference(&running).take(5).collect();
    if !extra.is_empty() {
        return Ok(Err(format!(
            "containers running on agents whose tasks are not RUNNING in the control plane: {extra:?}"
        )));
    }
    Ok(Ok(live))
}

/// Samples the agents' side of a rollout every few milliseconds: the running
/// containers of the service, in total and per host.
struct AgentWatch {
    stop: Arc<AtomicBool>,
    fewest: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    most_on_a_host: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
}

impl AgentWatch {
    fn start(sim: Arc<Simulation>, image_prefix: &'static str) -> Self {
        let watch = AgentWatch {
            stop: Arc::new(AtomicBool::new(false)),
            fewest: Arc::new(AtomicUsize::new(usize::MAX)),
            most: Arc::new(AtomicUsize::new(0)),
            most_on_a_host: Arc::new(AtomicUsize::new(0)),
            samples: Arc::new(AtomicUsize::new(0)),
        };
        let (stop, fewest, most, on_host, samples) = (
            watch.stop.clone(),
            watch.fewest.clone(),
            watch.most.clone(),
            watch.most_on_a_host.clone(),
            watch.samples.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut total = 0;
                for agent in sim.agents() {
                    let here = agent
                        .runtime()
                        .running_containers()
                        .iter()
                        .filter(|c| c.image.starts_with(image_prefix))
                        .count();
                    on_host.fetch_max(here, Ordering::Relaxed);
                    total += here;
                }
                fewest.fetch_min(total, Ordering::Relaxed);
                most.fetch_max(total, Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        watch
    }

    fn finish(&self) -> (usize, usize, usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        (
            self.fewest.load(Ordering::Relaxed),
            self.most.load(Ordering::Relaxed),
            self.most_on_a_host.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

/// Says how far the test got (for the log of a failing run; nothing is asserted on time).
fn progress(started: &std::time::Instant, step: &str) {
    eprintln!("[{:>6.1}s] {step}", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_simulated_instances_run_a_service_a_rolling_update_and_run_task_batches()
-> TestResult {
    let started = std::time::Instant::now();
    let server = BerthServer::start_with(&[
        "--task-running-grace",
        "0",
        "--lost-agent-grace",
        LOST_AGENT_GRACE,
    ])?;
    let client = server.client();
    client.create_cluster().cluster_name(CLUSTER).send().await?;

    progress(&started, "1. A thousand");
    // 1. A thousand instances register and connect.
    let mut config = SimConfig::new(
        &server.endpoint(),
        CLUSTER,
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
    );
    config.memory_mib = HOST_MEMORY_MIB;
    let mut sim = Simulation::new(config)?;
    sim.start_agents(INSTANCES);
    let arns = sim.wait_connected(DEADLINE).await?;
    let distinct: BTreeSet<&String> = arns.iter().collect();
    assert_eq!(distinct.len(), INSTANCES, "each agent is its own instance");
    progress(&started, "agents connected");
    let instances = wait_for("every instance ACTIVE and connected", || async {
        let instances = all_instances(&client).await?;
        let ready = instances
            .iter()
            .filter(|i| i.status() == Some("ACTIVE") && i.agent_connected())
            .count();
        Ok(if ready == INSTANCES {
            Ok(instances)
        } else {
            Err(format!("{ready} of {} ready", instances.len()))
        })
    })
    .await?;
    let registered: BTreeSet<&str> = instances
        .iter()
        .filter_map(|i| i.container_instance_arn())
        .collect();
    let ours: BTreeSet<&str> = arns.iter().map(String::as_str).collect();
    assert_eq!(registered, ours, "the cluster's instances are the agents'");

    progress(&started, "2. A REPLICA");
    // 2. A REPLICA service of thousands of tasks, bin-packed by memory so that
    // instances fill up: its steady state, every task on its agent.
    let v1 = register(&client, "sim/app:1").await?;
    client
        .create_service()
        .cluster(CLUSTER)
        .service_name(SERVICE)
        .task_definition(&v1)
        .desired_count(i32::try_from(DESIRED)?)
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Binpack)
                .field("memory")
                .build(),
        )
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(i32::try_from(MIN_HEALTHY_PERCENT)?)
                .maximum_percent(i32::try_from(MAX_PERCENT)?)
                .build(),
        )
        .send()
        .await?;
    let steady = |revision: &'static str| {
        let client = client.clone();
        move || {
            let client = client.clone();
            async move {
                let service = describe_service(&client, CLUSTER, SERVICE).await?;
                // The PRIMARY deployment completed, and no other still ACTIVE.
                let primary_done = service.deployments().iter().any(|d| {
                    d.status() == Some("PRIMARY")
                        && d.rollout_state() == Some(&DeploymentRolloutState::Completed)
                        && d.task_definition().and_then(|arn| arn.rsplit(':').next())
                            == Some(revision)
                }) && !service
                    .deployments()
                    .iter()
                    .any(|d| d.status() == Some("ACTIVE"));
                let running = service.running_count() as usize;
                if !primary_done || running != DESIRED {
                    return Ok(Err(format!(
                        "runningCount {running}, deployments {:?}",
                        service
                            .deployments()
                            .iter()
                            .map(|d| (
                                d.status(),
                                d.running_count(),
                                d.rollout_state(),
                                d.task_definition()
                            ))
                            .collect::<Vec<_>>()
                    )));
                }
                let arns = list_tasks(&client, Some(SERVICE), None, DesiredStatus::Running).await?;
                let tasks = describe_tasks(&client, &arns).await?;
                let ready = tasks
                    .iter()
                    .filter(|t| t.last_status() == Some("RUNNING") && revision_of(t) == revision)
                    .count();
                Ok(if ready == DESIRED && tasks.len() == DESIRED {
                    Ok(tasks)
                } else {
                    Err(format!(
                        "{ready} of {} listed tasks RUNNING at revision {revision}",
                        tasks.len()
                    ))
                })
            }
        }
    };
    wait_for("the service's steady state", steady("1")).await?;
    let live = check_placement(&client, &sim).await?;
    assert_eq!(live.len(), DESIRED, "only the service's tasks are live");
    let on_agents = agent_side(&sim);
    assert_eq!(on_agents.len(), DESIRED);
    assert!(on_agents.iter().all(|(_, _, image)| image == "sim/app:1"));

    progress(&started, "3. A rolling");
    // 3. A rolling update to revision 2, watched from the agents every few
    // milliseconds and through the API at every poll.
    let sim = Arc::new(sim);
    let watch = AgentWatch::start(Arc::clone(&sim), "sim/app:");
    let v2 = register(&client, "sim/app:2").await?;
    client
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&v2)
        .send()
        .await?;
    let min_healthy = DESIRED * MIN_HEALTHY_PERCENT / 100;
    let max_live = DESIRED * MAX_PERCENT / 100;
    let api_samples = AtomicUsize::new(0);
    let rolled = steady("2");
    wait_for("the rolling update's completion", || {
        let client = client.clone();
        let api_samples = &api_samples;
        let fut = rolled();
        async move {
            // The bounds, through the API: live tasks at most maxPercent (listing
            // and describing gives a safe upper bound, see live_tasks), and the
            // service's runningCount (one record, so one moment) at least
            // minimumHealthyPercent. A lower bound cannot be read from ListTasks and
            // DescribeTasks, which are not one moment: the agents' side is sampled
            // for that too.
            let live = live_tasks(&client).await?;
            assert!(
                live.len() <= max_live,
                "{} live tasks, more than {MAX_PERCENT}% of {DESIRED}",
                live.len()
            );
            let service = describe_service(&client, CLUSTER, SERVICE).await?;
            let serving = usize::try_from(service.running_count())?;
            assert!(
                serving >= min_healthy,
                "runningCount {serving}, fewer than {MIN_HEALTHY_PERCENT}% of {DESIRED}"
            );
            api_samples.fetch_add(1, Ordering::Relaxed);
            fut.await
        }
    })
    .await?;
    let (fewest, most, most_on_a_host, samples) = watch.finish();
    eprintln!(
        "rolling update: {samples} agent-side samples (running containers between {fewest} and {most}, at most {most_on_a_host} on a host), {} API samples",
        api_samples.load(Ordering::Relaxed)
    );
    assert!(
        fewest >= min_healthy,
        "the agents ran {fewest} of the service's containers at one time, fewer than {MIN_HEALTHY_PERCENT}%"
    );
    assert!(
        most <= max_live,
        "the agents ran {most} of the service's containers at one time, more than {MAX_PERCENT}%"
    );
    assert!(
        most_on_a_host <= TASKS_PER_HOST,
        "a host ran {most_on_a_host} containers; {TASKS_PER_HOST} fit"
    );
    let live = check_placement(&client, &sim).await?;
    assert_eq!(live.len(), DESIRED);
    assert!(live.iter().all(|t| revision_of(t) == "2"));
    let on_agents = agent_side(&sim);
    assert_eq!(on_agents.len(), DESIRED);
    assert!(on_agents.iter().all(|(_, _, image)| image == "sim/app:2"));

    progress(&started, "4. RunTask");
    // 4. RunTask batches of 10.
    let batch_definition = register(&client, "sim/batch:1").await?;
    let mut placed = 0;
    for _ in 0..BATCHES {
        let out = client
            .run_task()
            .cluster(CLUSTER)
            .task_definition(&batch_definition)
            .count(10)
            .started_by("sim-batch")
            .send()
            .await?;
        assert!(out.failures().is_empty(), "RunTask: {:?}", out.failures());
        placed += out.tasks().len();
    }
    assert_eq!(placed, BATCHES * 10);
    wait_for("every RunTask task RUNNING", || {
        let client = client.clone();
        async move {
            let arns = list_tasks(&client, None, Some("sim-batch"), DesiredStatus::Running).await?;
            let tasks = describe_tasks(&client, &arns).await?;
            let running = tasks
                .iter()
                .filter(|t| t.last_status() == Some("RUNNING"))
                .count();
            Ok(if running == BATCHES * 10 {
                Ok(())
            } else {
                Err(format!("{running} of {} RUNNING", tasks.len()))
            })
        }
    })
    .await?;
    let live = check_placement(&client, &sim).await?;
    assert_eq!(live.len(), DESIRED + BATCHES * 10);

    progress(&started, "5. An agent");
    // 5. An agent killed abruptly (no deregistration, its session just drops) is
    // seen disconnected; its instance stays registered.
    let mut sim = Arc::try_unwrap(sim).map_err(|_| "the watch still holds the simulation")?;
    // An instance with a RunTask task: nothing but the lost-agent controller stops
    // that one, so it must end with the lost agent's reason (the service's tasks
    // there may have been stopped by a deployment first, keeping that reason).
    let victim = live
        .iter()
        .find(|t| t.started_by() == Some("sim-batch"))
        .and_then(|t| t.container_instance_arn())
        .req("an instance with a RunTask task")?
        .to_string();
    let index = sim.agent_of(&victim).req("the victim's agent")?.index();
    sim.kill(index);
    wait_for("the killed agent seen disconnected", || {
        let client = client.clone();
        let victim = victim.clone();
        async move {
            let out = client
                .describe_container_instances()
                .cluster(CLUSTER)
                .container_instances(&victim)
                .send()
                .await?;
            let instance = out
                .container_instances()
                .first()
                .cloned()
                .req("the victim")?;
            Ok(
                if !instance.agent_connected() && instance.status() == Some("ACTIVE") {
                    Ok(())
                } else {
                    Err(format!(
                        "agentConnected {}, status {:?}",
                        instance.agent_connected(),
                        instance.status()
                    ))
                },
            )
        }
    })
    .await?;

    progress(&started, "6. An instance lost mid-deployment");
    // 6. A rolling update to a new revision, and in the middle of it another agent is
    // lost. After the grace period the lost instances' tasks are STOPPED with a
    // reason naming their instance, the service replaces them elsewhere, and the
    // deployment completes with every task at the new revision on a live agent.
    let v3 = register(&client, "sim/app:3").await?;
    client
        .update_service()
        .cluster(CLUSTER)
        .service(SERVICE)
        .task_definition(&v3)
        .send()
        .await?;
    // The family's fourth revision: the RunTask batches registered the third.
    assert!(v3.ends_with(":4"), "{v3}");
    // Mid-deployment (a task of the new revision placed), an instance with a RunTask
    // task (the batches' task definition is the family's third revision) is lost.
    let second_victim = wait_for("a task of the new revision placed", || {
        let client = client.clone();
        let victim = victim.clone();
        async move {
            let live = live_tasks(&client).await?;
            if !live.iter().any(|t| revision_of(t) == "4") {
                return Ok(Err("no revision 4 task yet".to_string()));
            }
            Ok(live
                .iter()
                .find(|t| {
                    revision_of(t) == "3" && t.container_instance_arn() != Some(victim.as_str())
                })
                .and_then(|t| t.container_instance_arn())
                .map(str::to_string)
                .ok_or_else(|| "no live RunTask task on another instance".to_string()))
        }
    })
    .await?;
    let index = sim
        .agent_of(&second_victim)
        .req("the second victim's agent")?
        .index();
    sim.kill(index);
    let lost: BTreeSet<String> = [victim.clone(), second_victim.clone()].into();
    let sim = Arc::new(sim);
    wait_for(
        "the rolling update's completion despite the lost instance",
        steady("4"),
    )
    .await?;
    let live = check_placement(&client, &sim).await?;
    let service_tasks: Vec<&Task> = live
        .iter()
        .filter(|t| t.group() == Some(&format!("service:{SERVICE}")))
        .collect();
    assert_eq!(service_tasks.len(), DESIRED);
    for task in &service_tasks {
        assert_eq!(revision_of(task), "4");
        let instance = task.container_instance_arn().unwrap_or_default();
        assert!(
            !lost.contains(instance),
            "a live task is on lost instance {instance}"
        );
    }
    // The deployment may complete before the second victim's grace period ends
    // (its service tasks are replaced once desired STOPPED); its RunTask task is
    // stopped for the lost agent when the grace period ends.
    for instance in &lost {
        wait_for("the lost instance's tasks STOPPED for its lost agent", || {
            let client = client.clone();
            let instance = instance.clone();
            async move {
                let stopped = list_tasks(&client, None, None, DesiredStatus::Stopped).await?;
                let stopped = describe_tasks(&client, &stopped).await?;
                let running = list_tasks(&client, None, None, DesiredStatus::Running).await?;
                let running = describe_tasks(&client, &running).await?;
                let still_running = running
                    .iter()
                    .filter(|t| t.container_instance_arn() == Some(instance.as_str()))
                    .count();
                let on_it: Vec<&Task> = stopped
                    .iter()
                    .filter(|t| t.container_instance_arn() == Some(instance.as_str()))
                    .collect();
                let lost_reasons = on_it
                    .iter()
                    .filter(|t| {
                        let reason = t.stopped_reason().unwrap_or_default();
                        t.last_status() == Some("STOPPED")
                            && reason.contains(instance.as_str())
                            && reason.contains("disconnected")
                    })
                    .count();
                let not_stopped = on_it
                    .iter()
                    .filter(|t| t.last_status() != Some("STOPPED"))
                    .count();
                Ok(if still_running == 0 && not_stopped == 0 && lost_reasons > 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "{instance}: {still_running} tasks desired RUNNING, {not_stopped} stopping, {lost_reasons} of {} STOPPED for the lost agent",
                        on_it.len()
                    ))
                })
            }
        })
        .await?;
    }
    drop(live);
    let sim = Arc::try_unwrap(sim).map_err(|_| "the simulation is still shared")?;
    sim.shutdown().await;
    Ok(())
}

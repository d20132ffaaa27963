//! `berth-bench scale`: tasks placed and started end to end through the control
//! plane, on simulated container instances (`berth_agent::sim`: the real agent on the
//! fake runtime, thousands in this process), at several sizes.
//!
//! For each size (INSTANCES x TASKS): a fresh `berth server` (real SQLite store),
//! INSTANCES simulated agents registered and connected, then TASKS tasks asked for at
//! once: half by services (`--services` of them), half by RunTask calls of 10 from
//! `--clients` concurrent connections. The clock runs from the first request until
//! the instances' runningTasksCount (RUNNING as the agents reported it, recorded in
//! the store) adds up to TASKS. Reported: tasks/s, the control plane's peak RSS
//! (VmHWM) and CPU time, and where the machine's CPU went.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_agent::sim::{SimConfig, Simulation};
use clap::Args;
use serde_json::{Value, json};

use crate::ecs::{Client, strings};
use crate::memory;
use crate::report::{self, Machine};
use crate::server::ServerProcess;
use crate::signer::{AccessKey, Endpoint, Signer};

const CLUSTER: &str = "scale";

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Sizes to run, INSTANCESxTASKS, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000x10000,2000x50000,5000x100000"
    )]
    sizes: Vec<String>,

    /// Services that start half of the tasks (the other half is RunTask batches).
    #[arg(long, default_value_t = 10)]
    services: usize,

    /// Concurrent RunTask clients, each on its own connection.
    #[arg(long, default_value_t = 4)]
    clients: usize,

    /// The longest a size may take, from the first request; then it is reported as
    /// unfinished and the next size runs.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,

    /// The berth binary to start [default: `berth` next to this executable].
    #[arg(long, value_name = "PATH")]
    berth: Option<PathBuf>,

    /// Where the server's data directory is created [default: the temporary directory].
    #[arg(long, value_name = "DIR")]
    data_parent: Option<PathBuf>,

    /// The placement strategy of the services and the RunTask calls: none (ECS then
    /// places at random), `binpack` (memory) or `spread` (availability zone, then
    /// instance).
    #[arg(long, value_enum, default_value_t = Strategy::None)]
    strategy: Strategy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Strategy {
    None,
    Binpack,
    Spread,
}

impl Strategy {
    /// The `placementStrategy` member of a request.
    fn placement(self) -> serde_json::Value {
        match self {
            Strategy::None => json!([]),
            Strategy::Binpack => json!([{"type": "binpack", "field": "memory"}]),
            Strategy::Spread => json!([
                {"type": "spread", "field": "attribute:ecs.availability-zone"},
                {"type": "spread", "field": "instanceId"}
            ]),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Strategy::None => "no placement strategy (random placement)",
            Strategy::Binpack => "placement strategy binpack(memory)",
            Strategy::Spread => "placement strategy spread(availability zone), spread(instanceId)",
        }
    }
}

struct Size {
    instances: usize,
    tasks: usize,
}

fn parse_size(text: &str) -> anyhow::Result<Size> {
    let (instances, tasks) = text
        .split_once('x')
        .with_context(|| format!("a size is INSTANCESxTASKS, got {text}"))?;
    let size = Size {
        instances: instances.trim().parse()?,
        tasks: tasks.trim().parse()?,
    };
    if size.instances == 0 || size.tasks < 20 {
        bail!("a size needs at least one instance and 20 tasks, got {text}");
    }
    Ok(size)
}

struct Outcome {
    instances: usize,
    tasks: usize,
    connect: Duration,
    requested: Duration,
    elapsed: Duration,
    running: usize,
    finished: bool,
    hwm_kib: u64,
    rss_kib: u64,
    server_cpu: Option<f64>,
    bench_cpu: f64,
    other_cpu: f64,
    run_task_failures: u64,
}

pub fn run(args: ScaleArgs) -> anyhow::Result<bool> {
    let sizes: Vec<Size> = args
        .sizes
        .iter()
        .map(|s| parse_size(s))
        .collect::<anyhow::Result<_>>()?;
    if args.services == 0 || args.clients == 0 {
        bail!("--services and --clients must be at least 1");
    }
    let binary = crate::berth_binary(args.berth.as_deref())?;
    let version = crate::berth_version(&binary);
    let machine = Machine::detect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut outcomes = Vec::new();
    for size in &sizes {
        eprintln!(
            "berth-bench: {} instances, {} tasks",
            size.instances, size.tasks
        );
        let outcome = runtime.block_on(one_size(&args, &binary, size))?;
        eprintln!(
            "berth-bench: {} of {} RUNNING in {:.1} s",
            outcome.running,
            outcome.tasks,
            outcome.elapsed.as_secs_f64()
        );
        outcomes.push(outcome);
    }
    println!(
        "### `berth-bench scale` ({}; {})\n",
        report::now_utc(),
        machine.describe()
    );
    println!(
        "`berth server` ({version}), fresh SQLite store per size; simulated instances in the benchmark's process (4 CPUs, 16 GiB each); half the tasks by {} services, half by RunTask count 10 from {} clients; {}; one-container tasks (cpu 8, memory 8 MiB).\n",
        args.services,
        args.clients,
        args.strategy.describe()
    );
    println!(
        "| instances | tasks | agents connected in | requests sent in | all RUNNING in | tasks/s | server peak RSS | server RSS at end | server CPU (cores) | simulation CPU (cores) | other CPU | server CPU per task | simulation CPU per task | RunTask retries |"
    );
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut all_done = true;
    for o in &outcomes {
        all_done &= o.finished;
        let rate = o.running as f64 / o.elapsed.as_secs_f64().max(1e-9);
        // CPU time per task RUNNING: steadier than the rate on a shared machine,
        // where the rate moves with what else runs.
        let per_task = |cores: f64| {
            format!(
                "{:.3} ms",
                cores * o.elapsed.as_secs_f64() * 1e3 / (o.running.max(1) as f64)
            )
        };
        println!(
            "| {} | {} | {:.1} s | {:.1} s | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} |",
            report::thousands(o.instances as u64),
            report::thousands(o.tasks as u64),
            o.connect.as_secs_f64(),
            o.requested.as_secs_f64(),
            if o.finished {
                format!("{:.1} s", o.elapsed.as_secs_f64())
            } else {
                format!(
                    "not in {:.0} s ({} RUNNING)",
                    o.elapsed.as_secs_f64(),
                    report::thousands(o.running as u64)
                )
            },
            report::thousands(rate as u64),
            memory::mib(o.hwm_kib),
            memory::mib(o.rss_kib),
            o.server_cpu.map_or("?".into(), |c| format!("{c:.2}")),
            o.bench_cpu,
            o.other_cpu,
            o.server_cpu.map_or("?".into(), per_task),
            per_task(o.bench_cpu),
            o.run_task_failures,
        );
    }
    Ok(all_done)
}

async fn one_size(
    args: &ScaleArgs,
    binary: &std::path::Path,
    size: &Size,
) -> anyhow::Result<Outcome> {
    let key = AccessKey::generate();
    let server = ServerProcess::start(binary, args.data_parent.as_deref(), &key)?;
    let signer = Signer::new(&key, "us-east-1", Endpoint::local(server.address()));
    let mut client = Client::new(&signer);
    client
        .call("CreateCluster", &json!({ "clusterName": CLUSTER }))
        .await?;
    let definition = client
        .call(
            "RegisterTaskDefinition",
            &json!({
                "family": "scale",
                "networkMode": "bridge",
                "containerDefinitions": [{
                    "name": "app", "image": "sim/app:1", "cpu": 8, "memory": 8, "essential": true
                }]
            }),
        )
        .await?;
    let definition_arn = definition["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .context("RegisterTaskDefinition answered no ARN")?
        .to_string();

    let started = Instant::now();
    let mut config = SimConfig::new(
        &format!("http://{}", server.address()),
        CLUSTER,
        &key.id,
        &key.secret,
    );
    config.cpus = 4;
    config.memory_mib = 16 * 1024;
    let mut sim = Simulation::new(config)?;
    sim.start_agents(size.instances);
    let arns = sim
        .wait_connected(Duration::from_secs(args.max_seconds))
        .await?;
    let connect = started.elapsed();

    let cpu_before = crate::cpu::Snapshot::take(Some(server.pid()));
    let clock = Instant::now();
    let deadline = clock + Duration::from_secs(args.max_seconds);
    let service_tasks = size.tasks / 2;
    let per_service = service_tasks / args.services;
    let service_total = per_service * args.services;
    let batch_total = size.tasks - service_total;
    for index in 0..args.services {
        client
            .call(
                "CreateService",
                &json!({
                    "cluster": CLUSTER,
                    "serviceName": format!("svc-{index}"),
                    "taskDefinition": definition_arn,
                    "desiredCount": per_service,
                    "placementStrategy": args.strategy.placement(),
                }),
            )
            .await?;
    }
    // RunTask batches of 10 from concurrent clients, each taking the next batch.
    let next = AtomicUsize::new(0);
    let retries = AtomicU64::new(0);
    let batches = batch_total.div_ceil(10);
    let worker = |_: usize| {
        let signer = &signer;
        let next = &next;
        let retries = &retries;
        let definition_arn = &definition_arn;
        let placement = args.strategy.placement();
        async move {
            let mut client = Client::new(signer);
            loop {
                let batch = next.fetch_add(1, Ordering::Relaxed);
                if batch >= batches {
                    return anyhow::Ok(());
                }
                let count = (batch_total - batch * 10).min(10);
                let mut placed = 0;
                while placed < count {
                    if Instant::now() >= deadline {
                        return Ok(());
                    }
                    let body = json!({
                        "cluster": CLUSTER,
                        "taskDefinition": definition_arn,
                        "count": count - placed,
                        "startedBy": "scale-batch",
                        "placementStrategy": placement,
                    });
                    match client.call("RunTask", &body).await {
                        Ok(answer) => {
                            let n = answer["tasks"].as_array().map_or(0, Vec::len);
                            placed += n;
                            if n == 0 {
                                retries.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        Err(_) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }
    };
    let results = futures::future::join_all((0..args.clients).map(worker)).await;
    for result in results {
        result?;
    }
    let requested = clock.elapsed();

    // Until the instances' RUNNING counts add up.
    let mut peak = memory::Status::default();
    let (running, finished) = loop {
        let running = running_tasks(&mut client, &arns).await?;
        if let Some(status) = memory::Status::of(server.pid()) {
            peak.hwm_kib = peak.hwm_kib.max(status.hwm_kib);
        }
        if running >= size.tasks {
            break (running, true);
        }
        if Instant::now() >= deadline {
            break (running, false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let elapsed = clock.elapsed();
    let cpu_after = crate::cpu::Snapshot::take(Some(server.pid()));
    let usage = cpu_before
        .zip(cpu_after)
        .and_then(|(before, after)| before.usage_until(&after));
    let end = memory::Status::of(server.pid()).unwrap_or_default();
    sim.shutdown().await;
    drop(server);
    Ok(Outcome {
        instances: size.instances,
        tasks: size.tasks,
        connect,
        requested,
        elapsed,
        running,
        finished,
        hwm_kib: peak.hwm_kib.max(end.hwm_kib),
        rss_kib: end.rss_kib,
        server_cpu: usage.and_then(|u| u.server),
        bench_cpu: usage.map_or(0.0, |u| u.bench),
        other_cpu: usage.map_or(0.0, |u| u.other),
        run_task_failures: retries.load(Ordering::Relaxed),
    })
}

/// The sum of the instances' runningTasksCount.
async fn running_tasks(client: &mut Client<'_>, arns: &[String]) -> anyhow::Result<usize> {
    let mut total = 0;
    for chunk in arns.chunks(100) {
        let answer: Value = client
            .call(
                "DescribeContainerInstances",
                &json!({ "cluster": CLUSTER, "containerInstances": chunk }),
            )
            .await?;
        total += answer["containerInstances"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["runningTasksCount"].as_u64().unwrap_or(0) as usize)
            .sum::<usize>();
    }
    let _ = strings;
    Ok(total)
}

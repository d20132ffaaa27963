//! `berth-bench agent-memory`: the resident memory of a `berth agent` process, idle
//! and with many running tasks. The control plane runs as a separate `berth server`
//! so that the agent's figures are its own.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;

use crate::docker::{Cleanup, Engine};
use crate::ecs::{Client, strings};
use crate::memory::{self, Status};
use crate::report;
use crate::server::{AgentProcess, ServerProcess};
use crate::signer::{AccessKey, Endpoint, Signer};

const INSTANCE_LABEL: &str = "dev.berth.container-instance-arn";
/// The target for an idle agent: 20 MB (decimal), compared strictly.
const TARGET_IDLE_BYTES: u64 = 20_000_000;
/// RunTask places at most this many tasks per call.
const RUN_TASK_MAX: usize = 10;
/// Host memory assumed per running container besides its limit (containerd shim,
/// kernel objects), for the check that the machine can take the tasks.
const PER_CONTAINER_OVERHEAD_MIB: u64 = 24;

#[derive(Debug, Args)]
pub struct AgentMemoryArgs {
    /// The berth binary to start [default: `berth` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub berth: Option<PathBuf>,

    /// Tasks to run at once.
    #[arg(long, default_value_t = 100)]
    pub tasks: usize,

    /// MiB of memory each task's container is given (its hard limit).
    #[arg(long, default_value_t = 8)]
    pub task_memory: u64,

    /// Seconds to let the agent settle before each reading.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,

    /// The image to run; it must be on the engine.
    #[arg(long, default_value = "berth-test/busybox:latest")]
    pub image: String,

    /// How many times to start the tasks and stop them again (memory that grows from
    /// one cycle to the next is kept per task that has ended).
    #[arg(long, default_value_t = 1)]
    pub cycles: usize,
}

/// Memory of the agent and the server at one moment.
struct Reading {
    what: String,
    agent: Status,
    server: Option<Status>,
}

/// MemAvailable of the machine, KiB.
fn mem_available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn run(args: AgentMemoryArgs) -> anyhow::Result<bool> {
    if args.tasks == 0 || args.tasks > 1000 {
        bail!("--tasks must be between 1 and 1000");
    }
    if args.cycles == 0 || args.cycles > 100 {
        bail!("--cycles must be between 1 and 100");
    }
    if args.task_memory < 6 {
        bail!("--task-memory must be at least 6 MiB (Docker's minimum)");
    }
    if !(0.0..=600.0).contains(&args.settle) {
        bail!("--settle must be between 0 and 600 seconds");
    }
    let need_mib = args.tasks as u64 * (args.task_memory + PER_CONTAINER_OVERHEAD_MIB) + 1024;
    let available_mib = mem_available_kib().map(|k| k / 1024);
    if let Some(available) = available_mib
        && available < need_mib
    {
        bail!(
            "{} tasks of {} MiB need about {need_mib} MiB free; the machine has {available} MiB",
            args.tasks,
            args.task_memory
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args, need_mib, available_mib))
}

async fn run_async(
    args: AgentMemoryArgs,
    need_mib: u64,
    available_mib: Option<u64>,
) -> anyhow::Result<bool> {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let cleanup = Cleanup::default();
    let mut engine = Engine::connect_with_image(&args.image).await?;
    let engine_note = engine.describe().await?;
    let quiet = crate::cpu::quiet_check(Duration::from_secs(2)).await;

    let binary = crate::berth_binary(args.berth.as_deref())?;
    let version = crate::berth_version(&binary);
    let key = AccessKey::generate();
    eprintln!("berth-bench: starting {} server", binary.display());
    let server = ServerProcess::start(&binary, None, &key)?;
    let endpoint = format!("http://{}", server.address());
    let signer = Signer::new(&key, "us-east-1", Endpoint::local(server.address()));
    let mut client = Client::new(&signer);
    let cluster = format!("bench-mem-{run_id}");
    client
        .call("CreateCluster", &json!({ "clusterName": cluster }))
        .await?;

    eprintln!("berth-bench: starting {} agent", binary.display());
    let mut agent = AgentProcess::start(
        &binary,
        &endpoint,
        &cluster,
        &key,
        &["--pull-behavior", "prefer-cached"],
    )?;
    let outcome = measure(
        &args,
        &cluster,
        &cleanup,
        &mut client,
        &mut engine,
        &agent,
        &server,
    )
    .await;
    let (readings, notes) = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            let state = if agent.running() { "running" } else { "exited" };
            eprintln!(
                "berth-bench: agent ({state}), last log lines:\n{}",
                agent.log_tail(30)
            );
            // Stop what runs before the containers are removed.
            drop(agent);
            drop(server);
            cleanup.run();
            return Err(err);
        }
    };
    let agent_exited = !agent.running();
    drop(agent);
    drop(server);
    let leftovers = cleanup.run();

    let machine = report::Machine::detect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### berth-bench agent-memory, {} on {}\n",
        report::now_utc(),
        machine.describe()
    );
    let _ = writeln!(
        out,
        "`berth server` and `berth agent` ({version}) as separate processes started by the \
         benchmark; {engine_note}. {} tasks of one container (`{}`, `sleep 3600`, memory \
         {} MiB), started with RunTask count {RUN_TASK_MAX}; each reading after {} s of \
         settling. VmRSS from /proc/PID/status; RssAnon is heap and stacks, RssFile the \
         mapped binary. {}\n",
        args.tasks,
        args.image,
        args.task_memory,
        args.settle,
        match quiet {
            Some(busy) if busy > 0.2 =>
                format!("**Other work kept {busy:.2} cores busy before the run.**"),
            Some(busy) => format!("Machine quiet before the run ({busy:.2} cores busy)."),
            None => String::new(),
        }
    );
    let _ = writeln!(out, "Command: `{}`\n", crate::command_line());
    out.push_str(
        "| agent state | agent VmRSS (MiB) | RssAnon (MiB) | RssFile (MiB) | threads | server VmRSS (MiB) |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for r in &readings {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.what,
            memory::mib(r.agent.rss_kib),
            memory::mib(r.agent.anon_kib),
            memory::mib(r.agent.file_kib),
            r.agent.threads,
            r.server.map_or("-".to_string(), |s| memory::mib(s.rss_kib))
        );
    }
    if let Some(last) = readings.last() {
        let _ = writeln!(
            out,
            "| agent peak (VmHWM) over the whole run | {} | | | | {} |",
            memory::mib(last.agent.hwm_kib),
            last.server
                .map_or("-".to_string(), |s| memory::mib(s.hwm_kib))
        );
    }
    out.push('\n');
    if let Some(idle) = readings.first() {
        let bytes = idle.agent.rss_kib * 1024;
        let verdict = if bytes < TARGET_IDLE_BYTES {
            "met"
        } else {
            "**not met**"
        };
        let _ = writeln!(
            out,
            "- Target: agent under 20 MB idle: {verdict} ({:.1} MB = {} MiB).",
            bytes as f64 / 1e6,
            memory::mib(idle.agent.rss_kib)
        );
    }
    if let (Some(idle), Some(busy)) = (readings.first(), readings.get(1)) {
        let per_task = (busy.agent.rss_kib as f64 - idle.agent.rss_kib as f64) / args.tasks as f64;
        let _ = writeln!(
            out,
            "- The agent's RSS grows by {per_task:.0} KiB per running task."
        );
    }
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- Memory check: {} tasks need about {need_mib} MiB free (limit plus {} MiB \
         assumed per container); MemAvailable was {} MiB.",
        args.tasks,
        PER_CONTAINER_OVERHEAD_MIB,
        available_mib.map_or("?".to_string(), |m| m.to_string())
    );
    let mut clean = true;
    if leftovers > 0 {
        let _ = writeln!(
            out,
            "- **{leftovers} containers were still on the engine at the end; removed**"
        );
    }
    if agent_exited {
        out.push_str("- **the agent exited during the run**\n");
        clean = false;
    }
    print!("{out}");
    Ok(clean)
}

/// Reads both processes' memory `samples` times, 0.5 s apart; keeps the last reading
/// (the figures of a settled process hardly move; the last one is the most settled).
async fn read(what: String, agent: u32, server: u32) -> anyhow::Result<Reading> {
    let mut last = None;
    for _ in 0..4 {
        let status =
            Status::of(agent).context("the agent is gone: cannot read /proc/PID/status")?;
        last = Some(status);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let agent = last.context("no reading")?;
    Ok(Reading {
        what,
        agent,
        server: Status::of(server),
    })
}

async fn settle(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &AgentMemoryArgs,
    cluster: &str,
    cleanup: &Cleanup,
    client: &mut Client<'_>,
    engine: &mut Engine,
    agent: &AgentProcess,
    server: &ServerProcess,
) -> anyhow::Result<(Vec<Reading>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut readings = Vec::new();
    let instances = client
        .wait_for_instances(cluster, 1, Duration::from_secs(60))
        .await?;
    for arn in &instances {
        cleanup.own(INSTANCE_LABEL, arn);
    }
    eprintln!("berth-bench: agent registered; settling {} s", args.settle);
    settle(args.settle).await;
    readings.push(
        read(
            "idle: registered, connected, no tasks".into(),
            agent.pid(),
            server.pid(),
        )
        .await?,
    );

    let registered = client
        .call(
            "RegisterTaskDefinition",
            &json!({
                "family": format!("{cluster}-sleep"),
                "networkMode": "bridge",
                "containerDefinitions": [{
                    "name": "app",
                    "image": args.image,
                    "command": ["sleep", "3600"],
                    "memory": args.task_memory,
                    "essential": true,
                    "stopTimeout": 2
                }]
            }),
        )
        .await?;
    let definition = registered["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .context("RegisterTaskDefinition answered no ARN")?
        .to_string();

    for cycle in 1..=args.cycles {
        let tag = if args.cycles > 1 {
            format!(" (cycle {cycle})")
        } else {
            String::new()
        };
        run_cycle(
            args,
            cluster,
            &definition,
            &instances,
            &tag,
            client,
            engine,
            &mut notes,
        )
        .await?;
        settle(args.settle).await;
        readings.push(
            read(
                format!("{} tasks running{tag}", args.tasks),
                agent.pid(),
                server.pid(),
            )
            .await?,
        );
        stop_cycle(args, cluster, &instances, &tag, client, engine, &mut notes).await?;
        settle(args.settle).await;
        readings.push(
            read(
                format!("after stopping the {} tasks{tag}", args.tasks),
                agent.pid(),
                server.pid(),
            )
            .await?,
        );
    }
    Ok((readings, notes))
}

/// Starts `args.tasks` tasks and waits until they are all RUNNING.
#[allow(clippy::too_many_arguments)]
async fn run_cycle(
    args: &AgentMemoryArgs,
    cluster: &str,
    definition: &str,
    instances: &[String],
    tag: &str,
    client: &mut Client<'_>,
    engine: &mut Engine,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut arns = Vec::with_capacity(args.tasks);
    let start = Instant::now();
    while arns.len() < args.tasks {
        let count = (args.tasks - arns.len()).min(RUN_TASK_MAX);
        let answer = client
            .call(
                "RunTask",
                &json!({
                    "cluster": cluster,
                    "taskDefinition": definition,
                    "count": count,
                    "startedBy": "berth-bench"
                }),
            )
            .await?;
        if let Some(failure) = answer["failures"].as_array().and_then(|f| f.first()) {
            bail!("RunTask could not place every task: {failure}");
        }
        let placed = answer["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["taskArn"].as_str().map(str::to_string));
        let before = arns.len();
        arns.extend(placed);
        if arns.len() - before != count {
            bail!("RunTask placed {} of {count} tasks", arns.len() - before);
        }
    }
    eprintln!(
        "berth-bench: {} tasks placed{tag}; waiting for RUNNING",
        arns.len()
    );
    client
        .wait_for_status(cluster, &arns, "RUNNING", Duration::from_secs(600))
        .await?;
    let elapsed = start.elapsed();
    let listed = client
        .call(
            "ListTasks",
            &json!({ "cluster": cluster, "desiredStatus": "RUNNING", "maxResults": 100 }),
        )
        .await?;
    let mut containers = 0;
    for arn in instances {
        containers += engine.list(INSTANCE_LABEL, arn).await?.len();
    }
    notes.push(format!(
        "{} tasks{tag} went from the first RunTask to all RUNNING in {:.1} s; the engine \
         then held {containers} containers of this instance and ListTasks showed {}{} \
         running tasks.",
        arns.len(),
        elapsed.as_secs_f64(),
        strings(&listed["taskArns"]).len(),
        if listed["nextToken"].is_string() {
            "+"
        } else {
            ""
        }
    ));
    Ok(())
}

/// Stops every running task of the cluster and waits until the agent has removed their
/// containers.
async fn stop_cycle(
    args: &AgentMemoryArgs,
    cluster: &str,
    instances: &[String],
    tag: &str,
    client: &mut Client<'_>,
    engine: &mut Engine,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    eprintln!("berth-bench: stopping the tasks{tag}");
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = json!({ "cluster": cluster, "desiredStatus": "RUNNING" });
        if let Some(token) = &token {
            request["nextToken"] = json!(token);
        }
        let listed = client.call("ListTasks", &request).await?;
        arns.extend(strings(&listed["taskArns"]));
        token = listed["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    if arns.len() != args.tasks {
        bail!(
            "ListTasks shows {} running tasks, not {}",
            arns.len(),
            args.tasks
        );
    }
    let start = Instant::now();
    client.stop_tasks(cluster, &arns).await?;
    client
        .wait_for_status(cluster, &arns, "STOPPED", Duration::from_secs(600))
        .await?;
    // The agent removes a stopped task's containers itself.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut left = 0;
    for arn in instances {
        loop {
            left = engine.list(INSTANCE_LABEL, arn).await?.len();
            if left == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    notes.push(format!(
        "StopTask of all {}{tag} to all STOPPED and their containers removed by the agent: \
         {:.1} s (stopTimeout 2 s: busybox `sleep` as PID 1 ignores SIGTERM){}.",
        arns.len(),
        start.elapsed().as_secs_f64(),
        if left == 0 {
            String::new()
        } else {
            format!("; **{left} containers were still there after 120 s**")
        }
    ));
    Ok(())
}

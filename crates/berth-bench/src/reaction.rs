//! `berth-bench reaction`: how fast a service replaces a task whose container dies.
//!
//! It starts `berth up`, creates a REPLICA service of `--tasks` one-container tasks
//! and waits for all of them to be RUNNING. Then, `--kills` times: it picks a RUNNING
//! task of the service, kills its container through the Engine API (the clock starts
//! right before the kill request), and polls ListTasks of the service every
//! `--poll-ms` until a task it has not seen before appears, then DescribeTasks of that
//! task until it is RUNNING. The time to that answer is the client-observed reaction
//! time. Afterwards (outside the timed part) it reads the records of the old and the
//! new task and the engine's times of both containers, which split the reaction into
//! stages: the engine's kill, the agent noticing, the control plane recording STOPPED,
//! the controller creating the replacement, the agent creating and starting its
//! container, the report back.
//!
//! Between kills it waits for the service to be back at its desired count and for
//! `--gap-ms`. Every container is labelled with the benchmark's container instance
//! and removed at the end and on an error.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::cpu;
use crate::docker::{self, Cleanup, Engine};
use crate::ecs::{Client, strings};
use crate::report;
use crate::server::ServerProcess;
use crate::signer::{AccessKey, Endpoint, Signer};
use crate::stats::Series;
use crate::tasks::{INSTANCE_LABEL, quiet_note, row};

/// The target: the replacement is RUNNING within this long of the death.
const TARGET_MS: f64 = 1000.0;
/// How long the service may take to replace a task or settle before the run is
/// abandoned.
const TIMEOUT: Duration = Duration::from_secs(60);
const CLUSTER: &str = "default";

#[derive(Debug, Args)]
pub struct ReactionArgs {
    /// The berth binary to start [default: `berth` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub berth: Option<PathBuf>,

    /// Where `berth up`'s data directory is created [default: the system's temporary
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub data_parent: Option<PathBuf>,

    /// Containers killed (measured), at least 5.
    #[arg(long, default_value_t = 20)]
    pub kills: usize,

    /// Kills first, not counted.
    #[arg(long, default_value_t = 1)]
    pub warmup_kills: usize,

    /// The service's desired count.
    #[arg(long, default_value_t = 3)]
    pub tasks: usize,

    /// Milliseconds between polls (the start of one to the next).
    #[arg(long, default_value_t = 5.0)]
    pub poll_ms: f64,

    /// Milliseconds of pause once the service is back at its desired count, before
    /// the next kill.
    #[arg(long, default_value_t = 500)]
    pub gap_ms: u64,

    /// The image to run; it must be on the engine (no registry is needed).
    #[arg(long, default_value = "berth-test/busybox:latest")]
    pub image: String,
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Every series, in milliseconds from the kill request (epoch `kill`) unless noted.
#[derive(Default)]
struct Results {
    /// The Engine API's kill call itself.
    kill_call: Series,
    /// The old task's executionStoppedAt: the agent's clock when it saw the task stop.
    agent_stopped: Series,
    /// The old task's stoppedAt: the control plane's clock when it recorded STOPPED.
    stopped_recorded: Series,
    /// The replacement's createdAt: the controller created it.
    replacement_created: Series,
    /// The replacement container's Created (engine).
    container_created: Series,
    /// The replacement's startedAt: the engine's StartedAt of its container.
    replacement_started: Series,
    /// The first DescribeTasks answer with the replacement RUNNING.
    observed_running: Series,
    /// Stages between consecutive points, for "where the time goes".
    stage_kill: Series,
    stage_agent: Series,
    stage_record: Series,
    stage_controller: Series,
    stage_dispatch: Series,
    stage_engine_start: Series,
    stage_report: Series,
    /// Polls per kill and their mean spacing.
    polls: Series,
    poll_spacing: Series,
    /// Kills after which more than one new task appeared.
    extra_tasks: usize,
}

pub fn run(args: ReactionArgs) -> anyhow::Result<bool> {
    if args.kills < 5 || args.kills > 10_000 {
        bail!("--kills must be between 5 and 10000");
    }
    if args.tasks == 0 || args.tasks > 100 {
        bail!("--tasks must be between 1 and 100");
    }
    if !(0.1..=1000.0).contains(&args.poll_ms) {
        bail!("--poll-ms must be between 0.1 and 1000");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ReactionArgs) -> anyhow::Result<bool> {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let cleanup = Cleanup::default();

    let mut engine = Engine::connect_with_image(&args.image).await?;
    let engine_note = engine.describe().await?;
    let others_running = engine.running_count().await?;

    eprintln!("berth-bench: checking the machine is quiet (3 s)");
    let quiet = cpu::quiet_check(Duration::from_secs(3)).await;

    let binary = crate::berth_binary(args.berth.as_deref())?;
    let version = crate::berth_version(&binary);
    let key = AccessKey::generate();
    eprintln!("berth-bench: starting {} up", binary.display());
    // Declared after `cleanup`, so dropped (killed) before it removes the containers.
    let mut server = ServerProcess::start_as(
        &binary,
        "up",
        &[
            "--pull-behavior",
            "prefer-cached",
            "--task-running-grace",
            "0",
        ],
        args.data_parent.as_deref(),
        &key,
    )?;
    let data_fs = report::filesystem_of(server.data_dir()).unwrap_or_else(|| "?".into());
    let signer = Signer::new(&key, "us-east-1", Endpoint::local(server.address()));
    let mut client = Client::new(&signer);

    let service = format!("bench-reaction-{run_id}");
    let outcome = measure(
        &args,
        &run_id,
        &service,
        &cleanup,
        &mut client,
        &mut engine,
        &server,
    )
    .await;
    let (results, usage, instances) = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            let state = if server.running() {
                "running"
            } else {
                "exited"
            };
            eprintln!(
                "berth-bench: berth up ({state}), last log lines:\n{}",
                server.log_tail(30)
            );
            return Err(err);
        }
    };
    // Scale the service to zero and delete it; whatever is left is removed below.
    if let Err(err) = wind_down(&mut client, &mut engine, &instances, &service).await {
        eprintln!("berth-bench: could not wind the service down: {err:#}");
    }
    let exited = !server.running();
    drop(server);
    let leftovers = cleanup.run();

    let machine = report::Machine::detect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### berth-bench reaction, {} on {}\n",
        report::now_utc(),
        machine.describe()
    );
    let _ = writeln!(
        out,
        "`berth up` ({version}) started by the benchmark (control plane and agent in one \
         process, fresh SQLite store on {data_fs}, `--pull-behavior prefer-cached \
         --task-running-grace 0`); {engine_note}. A REPLICA service of {} tasks of image \
         `{}`, command `sleep 3600`, initProcessEnabled, memory 16 MiB, bridge network. \
         {} measured kills after {} warm-up kills: each kills the container of one \
         RUNNING task with the Engine API (`POST /containers/ID/kill`, SIGKILL; the clock \
         starts right before the request), then polls ListTasks of the service and \
         DescribeTasks of the new task every {} ms until the new task is RUNNING; the \
         service is back at {} RUNNING tasks and {} ms have passed before the next kill. \
         {}\n",
        args.tasks,
        args.image,
        args.kills,
        args.warmup_kills,
        args.poll_ms,
        args.tasks,
        args.gap_ms,
        quiet_note(quiet, others_running),
    );
    let _ = writeln!(out, "Command: `{}`\n", crate::command_line());

    out.push_str("| from the kill to | kills | median (ms) | p90 (ms) | min (ms) | max (ms) |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    let rows: [(&str, &Series); 7] = [
        ("the Engine API's kill call returned", &results.kill_call),
        (
            "the agent saw the task stop (old task's executionStoppedAt, agent clock)",
            &results.agent_stopped,
        ),
        (
            "**old task STOPPED recorded** (its stoppedAt, control plane clock)",
            &results.stopped_recorded,
        ),
        (
            "**replacement task created** (its createdAt, control plane clock)",
            &results.replacement_created,
        ),
        (
            "the replacement's container created (engine Created)",
            &results.container_created,
        ),
        (
            "the replacement's container started (its startedAt = engine StartedAt)",
            &results.replacement_started,
        ),
        (
            "**replacement RUNNING seen by the client** (first DescribeTasks saying RUNNING)",
            &results.observed_running,
        ),
    ];
    for (what, series) in rows {
        out.push_str(&row(what, series));
    }
    if let Some(observed) = results.observed_running.summary() {
        let verdict = if observed.median <= TARGET_MS {
            "met"
        } else {
            "**not met**"
        };
        let _ = writeln!(
            out,
            "\nTarget: the replacement RUNNING within 1 s of the death, median of the \
             kills: {verdict} ({:.0} ms client-observed, which includes the engine's kill \
             and up to one poll interval; p90 {:.0} ms).",
            observed.median, observed.p90
        );
    }

    out.push_str(
        "\nWhere the time goes (medians of each stage, ms; one machine, one clock; medians \
         of stages do not add up to the median of the whole):\n\n",
    );
    out.push_str("| stage | median (ms) | p90 (ms) |\n| --- | ---: | ---: |\n");
    let stages: [(&str, &Series); 7] = [
        (
            "kill request → the engine answered it (it answers once the container is dead)",
            &results.stage_kill,
        ),
        (
            "kill answered → agent saw the stop (die event, agent's stop handling)",
            &results.stage_agent,
        ),
        (
            "agent saw the stop → STOPPED recorded (report over the session, store commit)",
            &results.stage_record,
        ),
        (
            "STOPPED recorded → replacement created (controller: change feed, plan, placement, commit)",
            &results.stage_controller,
        ),
        (
            "replacement created → its container created (dispatch to the agent, engine create)",
            &results.stage_dispatch,
        ),
        (
            "container created → started (engine start)",
            &results.stage_engine_start,
        ),
        (
            "started → client sees RUNNING (agent's report, store commit, next poll)",
            &results.stage_report,
        ),
    ];
    for (what, series) in stages {
        match series.summary() {
            Some(s) => {
                let _ = writeln!(out, "| {what} | {:.1} | {:.1} |", s.median, s.p90);
            }
            None => {
                let _ = writeln!(out, "| {what} | - | - |");
            }
        }
    }
    out.push('\n');
    if let (Some(polls), Some(spacing)) = (results.polls.summary(), results.poll_spacing.summary())
    {
        let _ = writeln!(
            out,
            "- Polls per kill: median {:.0} (max {:.0}), {:.2} ms apart on average (asked: \
             {} ms).",
            polls.median, polls.max, spacing.median, args.poll_ms
        );
    }
    if let Some(usage) = usage {
        let _ = writeln!(
            out,
            "- CPU during the measured kills: berth up {:.2} cores, berth-bench {:.2}, \
             other {:.2} (the Docker engine, containerd and runc are in \"other\").",
            usage.server.unwrap_or(0.0),
            usage.bench,
            usage.other
        );
    }
    let mut clean = true;
    if results.extra_tasks > 0 {
        let _ = writeln!(
            out,
            "- **after {} kills more than one new task appeared**",
            results.extra_tasks
        );
        clean = false;
    }
    if leftovers > 0 {
        let _ = writeln!(
            out,
            "- {leftovers} containers were left at the end and removed"
        );
    }
    if exited {
        out.push_str("- **berth up exited during the run**\n");
        clean = false;
    }
    print!("{out}");
    Ok(clean)
}

/// The results, the CPU used, the container instances.
type Measured = (Results, Option<cpu::Usage>, Vec<String>);

async fn measure(
    args: &ReactionArgs,
    run_id: &str,
    service: &str,
    cleanup: &Cleanup,
    client: &mut Client<'_>,
    engine: &mut Engine,
    server: &ServerProcess,
) -> anyhow::Result<Measured> {
    eprintln!("berth-bench: waiting for the agent to register");
    let instances = client
        .wait_for_instances(CLUSTER, 1, Duration::from_secs(60))
        .await?;
    for arn in &instances {
        cleanup.own(INSTANCE_LABEL, arn);
    }

    let registered = client
        .call(
            "RegisterTaskDefinition",
            &json!({
                "family": format!("bench-reaction-{run_id}"),
                "networkMode": "bridge",
                "containerDefinitions": [{
                    "name": "app",
                    "image": args.image,
                    "command": ["sleep", "3600"],
                    "memory": 16,
                    "essential": true,
                    "linuxParameters": { "initProcessEnabled": true },
                    "stopTimeout": 2
                }]
            }),
        )
        .await?;
    let definition = registered["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .context("RegisterTaskDefinition answered no ARN")?
        .to_string();
    client
        .call(
            "CreateService",
            &json!({
                "cluster": CLUSTER,
                "serviceName": service,
                "taskDefinition": definition,
                "desiredCount": args.tasks,
                "launchType": "EC2",
                "schedulingStrategy": "REPLICA"
            }),
        )
        .await?;
    eprintln!("berth-bench: waiting for {} RUNNING tasks", args.tasks);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut running = steady(client, service, args.tasks, &mut seen).await?;

    let mut results = Results::default();
    let total = args.warmup_kills + args.kills;
    let mut cpu_before = None;
    for round in 0..total {
        let measured = round >= args.warmup_kills;
        if round == args.warmup_kills {
            cpu_before = cpu::Snapshot::take(Some(server.pid()));
        }
        let victim = running[round % running.len()].clone();
        let sink = measured.then_some(&mut results);
        kill_one(args, client, engine, service, &victim, &mut seen, sink).await?;
        running = steady(client, service, args.tasks, &mut seen).await?;
        eprintln!(
            "berth-bench: kill {}/{total}{}",
            round + 1,
            if measured { "" } else { " (warm-up)" }
        );
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let cpu_after = cpu::Snapshot::take(Some(server.pid()));
    let usage = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => a.usage_until(&b),
        _ => None,
    };
    Ok((results, usage, instances))
}

/// A RUNNING task of the service and its container.
#[derive(Clone)]
struct Victim {
    arn: String,
    container: String,
}

/// Waits until the service has `count` tasks that should run and all of them are
/// RUNNING; returns them. Every task listed is added to `seen`.
async fn steady(
    client: &mut Client<'_>,
    service: &str,
    count: usize,
    seen: &mut BTreeSet<String>,
) -> anyhow::Result<Vec<Victim>> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let listed = client
            .call(
                "ListTasks",
                &json!({ "cluster": CLUSTER, "serviceName": service }),
            )
            .await?;
        let arns = strings(&listed["taskArns"]);
        seen.extend(arns.iter().cloned());
        if arns.len() == count {
            let tasks = client.describe_tasks(CLUSTER, &arns).await?;
            let running: Vec<Victim> = tasks
                .iter()
                .filter(|t| t["lastStatus"].as_str() == Some("RUNNING"))
                .filter_map(|t| {
                    Some(Victim {
                        arn: t["taskArn"].as_str()?.to_string(),
                        container: t["containers"][0]["runtimeId"].as_str()?.to_string(),
                    })
                })
                .collect();
            if running.len() == count {
                return Ok(running);
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "service {service}: not {count} RUNNING tasks after {TIMEOUT:?} ({} listed)",
                arns.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Kills the victim's container and measures until its replacement is RUNNING.
async fn kill_one(
    args: &ReactionArgs,
    client: &mut Client<'_>,
    engine: &mut Engine,
    service: &str,
    victim: &Victim,
    seen: &mut BTreeSet<String>,
    sink: Option<&mut Results>,
) -> anyhow::Result<()> {
    let list = client.sign(
        "ListTasks",
        &json!({ "cluster": CLUSTER, "serviceName": service }),
    )?;
    client.warm().await?;
    engine.warm().await?;
    let poll = Duration::from_secs_f64(args.poll_ms / 1000.0);

    let kill_at = epoch_now();
    let t0 = Instant::now();
    engine.kill(&victim.container).await?;
    let kill_call = t0.elapsed();

    let mut polls = 0u32;
    let mut describe: Option<(String, Vec<u8>)> = None;
    let mut new_tasks: BTreeSet<String> = BTreeSet::new();
    let (observed, replacement) = loop {
        let next = Instant::now() + poll;
        polls += 1;
        match &describe {
            None => {
                let (status, answer) = client.send(&list).await?;
                if status != 200 {
                    bail!("ListTasks answered {}", answer.as_str().unwrap_or_default());
                }
                for arn in strings(&answer["taskArns"]) {
                    if !seen.contains(&arn) {
                        new_tasks.insert(arn);
                    }
                }
                if let Some(arn) = new_tasks.first() {
                    let request = client.sign(
                        "DescribeTasks",
                        &json!({ "cluster": CLUSTER, "tasks": [arn] }),
                    )?;
                    describe = Some((arn.clone(), request));
                    // Ask about it at once: it may already be RUNNING.
                    continue;
                }
            }
            Some((arn, request)) => {
                let (status, answer) = client.send(request).await?;
                if status != 200 {
                    bail!(
                        "DescribeTasks answered {}",
                        answer.as_str().unwrap_or_default()
                    );
                }
                let task = &answer["tasks"][0];
                match task["lastStatus"].as_str() {
                    Some("RUNNING") => break (t0.elapsed(), task.clone()),
                    Some("STOPPED" | "DEPROVISIONING" | "DEACTIVATING" | "STOPPING") => bail!(
                        "the replacement {arn} stopped instead of running: {}",
                        task["stoppedReason"]
                    ),
                    _ => {}
                }
            }
        }
        if t0.elapsed() > TIMEOUT {
            bail!(
                "no replacement of {} RUNNING {TIMEOUT:?} after its container was killed",
                victim.arn
            );
        }
        // tokio's timer rounds up to whole milliseconds; a thread sleep keeps the
        // interval asked for. Nothing else runs on this (current-thread) runtime.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };

    // Outside the timed part: where the time went.
    // (The killed container's own FinishedAt is not used: the agent has usually
    // removed the container by now.)
    let old = client
        .wait_for_status(
            CLUSTER,
            std::slice::from_ref(&victim.arn),
            "STOPPED",
            TIMEOUT,
        )
        .await?;
    let old = old.first().cloned().unwrap_or(Value::Null);
    let new_container = replacement["containers"][0]["runtimeId"]
        .as_str()
        .map(str::to_string);
    let created = match &new_container {
        Some(id) => docker::epoch_seconds(&engine.inspect(id).await?["Created"]),
        None => None,
    };
    // A second replacement would show up as another unseen task once the service is
    // steady again; count what appeared so far.
    let listed = client
        .call(
            "ListTasks",
            &json!({ "cluster": CLUSTER, "serviceName": service }),
        )
        .await?;
    for arn in strings(&listed["taskArns"]) {
        if !seen.contains(&arn) {
            new_tasks.insert(arn);
        }
    }
    seen.extend(new_tasks.iter().cloned());

    let Some(results) = sink else {
        return Ok(());
    };
    let since = |t: Option<f64>| t.map(|t| (t - kill_at) * 1000.0);
    let between = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some((b - a) * 1000.0),
        _ => None,
    };
    let push = |series: &mut Series, value: Option<f64>| {
        if let Some(value) = value {
            series.push(value);
        }
    };
    let agent_stopped = old["executionStoppedAt"].as_f64();
    let stopped = old["stoppedAt"].as_f64();
    let new_created = replacement["createdAt"].as_f64();
    let started = replacement["startedAt"].as_f64();
    let seen_running = Some(kill_at + observed.as_secs_f64());
    results.kill_call.push(ms(kill_call));
    push(&mut results.agent_stopped, since(agent_stopped));
    push(&mut results.stopped_recorded, since(stopped));
    push(&mut results.replacement_created, since(new_created));
    push(&mut results.container_created, since(created));
    push(&mut results.replacement_started, since(started));
    results.observed_running.push(ms(observed));
    results.stage_kill.push(ms(kill_call));
    push(
        &mut results.stage_agent,
        between(Some(kill_at + kill_call.as_secs_f64()), agent_stopped),
    );
    push(&mut results.stage_record, between(agent_stopped, stopped));
    push(&mut results.stage_controller, between(stopped, new_created));
    push(&mut results.stage_dispatch, between(new_created, created));
    push(&mut results.stage_engine_start, between(created, started));
    push(&mut results.stage_report, between(started, seen_running));
    results.polls.push(f64::from(polls));
    if polls > 1 {
        results
            .poll_spacing
            .push(ms(observed) / f64::from(polls - 1).max(1.0));
    }
    if new_tasks.len() > 1 {
        results.extra_tasks += 1;
    }
    Ok(())
}

/// Scales the service to zero, waits for its tasks to stop, deletes it.
async fn wind_down(
    client: &mut Client<'_>,
    engine: &mut Engine,
    instances: &[String],
    service: &str,
) -> anyhow::Result<()> {
    client
        .call(
            "UpdateService",
            &json!({ "cluster": CLUSTER, "service": service, "desiredCount": 0 }),
        )
        .await?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let listed = client
            .call(
                "ListTasks",
                &json!({ "cluster": CLUSTER, "serviceName": service }),
            )
            .await?;
        let arns = strings(&listed["taskArns"]);
        let live = if arns.is_empty() {
            0
        } else {
            client
                .describe_tasks(CLUSTER, &arns)
                .await?
                .iter()
                .filter(|t| t["lastStatus"].as_str() != Some("STOPPED"))
                .count()
        };
        if live == 0 {
            break;
        }
        if Instant::now() >= deadline {
            bail!("{live} tasks of {service} still not STOPPED after {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .call(
            "DeleteService",
            &json!({ "cluster": CLUSTER, "service": service }),
        )
        .await?;
    // The agent removes a stopped task's containers itself; give it the time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut left = 0;
        for arn in instances {
            left += engine.list(INSTANCE_LABEL, arn).await?.len();
        }
        if left == 0 || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

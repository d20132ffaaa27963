//! `berth-bench tasks`: how long berth takes to start a one-container task, next to
//! the Docker engine starting the same container without berth.
//!
//! One round runs each of three methods once, in a rotating order so that machine
//! noise (and whatever the previous run's clean-up leaves behind) falls on all of
//! them alike:
//!
//! - berth: RunTask, then DescribeTasks every `--poll-ms` on a keep-alive connection
//!   until lastStatus is RUNNING; the time to that answer, and the task record's
//!   `startedAt - createdAt`.
//! - `docker run -d`: the CLI as a process, start to exit.
//! - The Engine API: create and start on a warm keep-alive connection to the socket,
//!   with no client to speak of: the engine's own cost.
//!
//! Each container is stopped and removed after its run, outside the timed part.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::cpu;
use crate::docker::{self, Cleanup, Engine, RUN_LABEL};
use crate::ecs::Client;
use crate::report;
use crate::server::ServerProcess;
use crate::signer::{AccessKey, Endpoint, Signer};
use crate::stats::{Series, Summary};

/// The label berth puts on a task's containers, naming the container instance.
pub const INSTANCE_LABEL: &str = "dev.berth.container-instance-arn";
/// The label berth puts on a task's containers, naming the task.
const TASK_LABEL: &str = "com.amazonaws.ecs.task-arn";
/// What the target allows berth to add to the engine's own start time.
const TARGET_ADDED_MS: f64 = 50.0;
/// How long a task may take to start or stop before the run is abandoned.
const TASK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// The berth binary to start [default: `berth` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub berth: Option<PathBuf>,

    /// Where `berth up`'s data directory is created [default: the system's temporary
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub data_parent: Option<PathBuf>,

    /// Measured runs of each method (at least 20).
    #[arg(long, default_value_t = 25)]
    pub runs: usize,

    /// Rounds run first and not counted (first starts warm caches).
    #[arg(long, default_value_t = 2)]
    pub warmup_runs: usize,

    /// Milliseconds between DescribeTasks polls (the start of one to the next).
    #[arg(long, default_value_t = 2.0)]
    pub poll_ms: f64,

    /// Milliseconds of pause after each run's clean-up.
    #[arg(long, default_value_t = 100)]
    pub gap_ms: u64,

    /// The image to run; it must be on the engine (no registry is needed).
    #[arg(long, default_value = "berth-test/busybox:latest")]
    pub image: String,

    /// The agent's image pull behaviour: prefer-cached starts from the local image as
    /// `docker run` does; `default` tries a pull first.
    #[arg(long, default_value = "prefer-cached")]
    pub pull_behavior: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Berth,
    Cli,
    Api,
}

const METHODS: [Method; 3] = [Method::Berth, Method::Cli, Method::Api];

/// Epoch seconds now.
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Every series the benchmark collects, in milliseconds.
#[derive(Default)]
struct Results {
    /// RunTask sent -> first DescribeTasks answer with lastStatus RUNNING.
    berth_observed: Series,
    /// The task record's startedAt - createdAt.
    berth_record: Series,
    /// RunTask's own answer time.
    berth_run_task: Series,
    /// RunTask sent -> createdAt.
    berth_to_record: Series,
    /// createdAt -> the container's Created (engine time).
    berth_dispatch: Series,
    /// Created -> StartedAt, berth's containers.
    berth_engine_start: Series,
    /// StartedAt -> RUNNING seen by the client.
    berth_report: Series,
    /// DescribeTasks polls per run, and their mean spacing.
    polls: Series,
    poll_spacing: Series,
    cli: Series,
    cli_created: Series,
    cli_engine_start: Series,
    cli_after_start: Series,
    api: Series,
    api_created: Series,
    api_engine_start: Series,
    api_after_start: Series,
    /// Each run's time outside the engine's own create-to-start (the run's total minus
    /// its container's StartedAt - Created): what the method adds around the engine,
    /// without the engine's large run-to-run variance.
    berth_outside: Series,
    cli_outside: Series,
    api_outside: Series,
    /// Containers the agent had not removed 30 s after their task stopped.
    agent_left: usize,
}

pub fn run(args: TasksArgs) -> anyhow::Result<bool> {
    if args.runs < 20 || args.runs > 10_000 {
        bail!("--runs must be between 20 and 10000");
    }
    if !(0.1..=1000.0).contains(&args.poll_ms) {
        bail!("--poll-ms must be between 0.1 and 1000");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: TasksArgs) -> anyhow::Result<bool> {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let cleanup = Cleanup::default();
    cleanup.own(RUN_LABEL, &run_id);

    let mut engine = Engine::connect_with_image(&args.image).await?;
    let engine_note = engine.describe().await?;
    let others_running = engine.running_count().await?;

    eprintln!("berth-bench: checking the machine is quiet (3 s)");
    let quiet = cpu::quiet_check(Duration::from_secs(3)).await;

    let binary = crate::berth_binary(args.berth.as_deref())?;
    let version = crate::berth_version(&binary);
    let key = AccessKey::generate();
    eprintln!("berth-bench: starting {} up", binary.display());
    let mut server = ServerProcess::start_as(
        &binary,
        "up",
        &["--pull-behavior", &args.pull_behavior],
        args.data_parent.as_deref(),
        &key,
    )?;
    let data_fs = report::filesystem_of(server.data_dir()).unwrap_or_else(|| "?".into());
    let signer = Signer::new(&key, "us-east-1", Endpoint::local(server.address()));
    let mut client = Client::new(&signer);

    let outcome = measure(&args, &run_id, &cleanup, &mut client, &mut engine, &server).await;
    let (results, cpu_usage) = match outcome {
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
    let exited = !server.running();
    drop(server);
    let leftovers = cleanup.run();

    let machine = report::Machine::detect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### berth-bench tasks, {} on {}\n",
        report::now_utc(),
        machine.describe()
    );
    let _ = writeln!(
        out,
        "`berth up` ({version}) started by the benchmark (control plane and agent in one \
         process, fresh SQLite store on {data_fs}, agent pull behaviour {}); {engine_note}, \
         `docker` CLI {}. Image `{}`, command `sleep 3600`, memory 16 MiB, bridge network, \
         no ports. {} measured rounds after {} warm-up rounds; each round runs berth, \
         `docker run -d` and the Engine API once, in rotating order; every container is \
         stopped and removed between runs, outside the timed part. DescribeTasks polled \
         every {} ms on a keep-alive connection. {}\n",
        args.pull_behavior,
        docker::cli_version().unwrap_or_else(|| "?".into()),
        args.image,
        args.runs,
        args.warmup_runs,
        args.poll_ms,
        quiet_note(quiet, others_running),
    );
    let _ = writeln!(out, "Command: `{}`\n", crate::command_line());

    out.push_str("| what | runs | median (ms) | p90 (ms) | min (ms) | max (ms) |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    let rows: [(&str, &Series); 5] = [
        (
            "berth: RunTask → first DescribeTasks with lastStatus RUNNING (client-observed)",
            &results.berth_observed,
        ),
        (
            "berth: `startedAt − createdAt` of the task record",
            &results.berth_record,
        ),
        ("berth: the RunTask call alone", &results.berth_run_task),
        ("`docker run -d` (CLI process)", &results.cli),
        (
            "Docker Engine API create + start (keep-alive socket)",
            &results.api,
        ),
    ];
    for (what, series) in rows {
        out.push_str(&row(what, series));
    }

    out.push_str("\n| berth, compared with | difference of medians (ms) | ratio of medians | target: berth adds ≤ 50 ms |\n");
    out.push_str("| --- | ---: | ---: | --- |\n");
    let compare = [
        (
            "client-observed vs Engine API create + start",
            &results.berth_observed,
            &results.api,
        ),
        (
            "client-observed vs `docker run -d`",
            &results.berth_observed,
            &results.cli,
        ),
        (
            "`startedAt − createdAt` vs Engine API create + start",
            &results.berth_record,
            &results.api,
        ),
        (
            "time outside the engine's create → start: client-observed vs Engine API",
            &results.berth_outside,
            &results.api_outside,
        ),
        (
            "time outside the engine's create → start: client-observed vs `docker run -d`",
            &results.berth_outside,
            &results.cli_outside,
        ),
    ];
    for (what, berth, docker) in compare {
        if let (Some(b), Some(d)) = (berth.summary(), docker.summary()) {
            let added = b.median - d.median;
            let verdict = if added <= TARGET_ADDED_MS {
                "met"
            } else {
                "**not met**"
            };
            let _ = writeln!(
                out,
                "| {what} | {added:+.1} | {:.2} | {verdict} |",
                b.median / d.median
            );
        }
    }

    out.push_str(
        "\nThe engine's own create → start varies by tens to hundreds of ms from run to \
         run, more than berth adds, so the difference of the totals' medians is noisy; \
         the last two rows subtract each run's own engine time (its container's \
         StartedAt − Created) and compare what is left.\n",
    );
    out.push_str(
        "\nWhere the time goes (medians of each stage over the runs, in ms, from the \
         client's clock, berth's createdAt and the engine's Created and StartedAt of each \
         container; one clock, one machine. Medians of stages do not add up to the median \
         of the whole.)\n\n",
    );
    out.push_str("| stage | berth | Engine API | `docker run -d` |\n");
    out.push_str("| --- | ---: | ---: | ---: |\n");
    let med = |s: &Series| {
        s.summary()
            .map_or("-".to_string(), |s| format!("{:.1}", s.median))
    };
    let _ = writeln!(
        out,
        "| request sent → task record created (createdAt) | {} | | |",
        med(&results.berth_to_record)
    );
    let _ = writeln!(
        out,
        "| … → container created (berth: dispatch to the agent, agent's create call) | {} | {} | {} |",
        med(&results.berth_dispatch),
        med(&results.api_created),
        med(&results.cli_created)
    );
    let _ = writeln!(
        out,
        "| Created → StartedAt (engine starts the container) | {} | {} | {} |",
        med(&results.berth_engine_start),
        med(&results.api_engine_start),
        med(&results.cli_engine_start)
    );
    let _ = writeln!(
        out,
        "| StartedAt → client knows (berth: agent reports, store commit, next poll) | {} | {} | {} |",
        med(&results.berth_report),
        med(&results.api_after_start),
        med(&results.cli_after_start)
    );
    let _ = writeln!(
        out,
        "| whole run minus Created → StartedAt (each run's time outside the engine's start) | {} | {} | {} |",
        med(&results.berth_outside),
        med(&results.api_outside),
        med(&results.cli_outside)
    );
    out.push('\n');
    if let (Some(polls), Some(spacing)) = (results.polls.summary(), results.poll_spacing.summary())
    {
        let _ = writeln!(
            out,
            "- DescribeTasks polls per berth run: median {:.0} (max {:.0}), {:.2} ms apart on \
             average (asked: {} ms): the client-observed time overstates by up to one \
             interval.",
            polls.median, polls.max, spacing.median, args.poll_ms
        );
    }
    out.push_str(
        "- `startedAt` is not stamped by the control plane: the agent reports the engine's \
         StartedAt of the container, and berth records it; `createdAt` is the control \
         plane's clock when it handled RunTask. So `startedAt − createdAt` is RunTask → \
         container process started, without the report back.\n",
    );
    if let Some(usage) = cpu_usage {
        let mut note = format!(
            "- CPU during the measured rounds (clean-up included): berth up {:.2} cores, \
             berth-bench {:.2}, other {:.2} (the Docker engine, containerd, runc and the \
             `docker` CLI are in \"other\")",
            usage.server.unwrap_or(0.0),
            usage.bench,
            usage.other
        );
        note.push('\n');
        out.push_str(&note);
    }
    let mut clean = true;
    if results.agent_left > 0 {
        let _ = writeln!(
            out,
            "- **{} task containers were still on the engine 30 s after their task \
             stopped; the benchmark removed them**",
            results.agent_left
        );
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

pub fn quiet_note(quiet: Option<f64>, others_running: usize) -> String {
    let mut note = match quiet {
        Some(busy) if busy > 0.2 => format!(
            "**Before the run, other work kept {busy:.2} cores busy: the machine was not \
             quiet and the figures are high.**"
        ),
        Some(busy) => format!("Before the run the machine was quiet ({busy:.2} cores busy)."),
        None => String::new(),
    };
    if others_running > 0 {
        let _ = write!(
            note,
            " {others_running} other containers were running on the engine."
        );
    }
    note
}

pub fn row(what: &str, series: &Series) -> String {
    match series.summary() {
        Some(Summary {
            n,
            median,
            p90,
            min,
            max,
        }) => format!("| {what} | {n} | {median:.1} | {p90:.1} | {min:.1} | {max:.1} |\n"),
        None => format!("| {what} | 0 | - | - | - | - |\n"),
    }
}

type Measured = (Results, Option<cpu::Usage>);

async fn measure(
    args: &TasksArgs,
    run_id: &str,
    cleanup: &Cleanup,
    client: &mut Client<'_>,
    engine: &mut Engine,
    server: &ServerProcess,
) -> anyhow::Result<Measured> {
    eprintln!("berth-bench: waiting for the agent to register");
    let instances = client
        .wait_for_instances("default", 1, Duration::from_secs(60))
        .await?;
    for arn in &instances {
        cleanup.own(INSTANCE_LABEL, arn);
    }

    let family = format!("bench-tasks-{run_id}");
    let registered = client
        .call(
            "RegisterTaskDefinition",
            &json!({
                "family": family,
                "networkMode": "bridge",
                "containerDefinitions": [{
                    "name": "app",
                    "image": args.image,
                    "command": ["sleep", "3600"],
                    "memory": 16,
                    "essential": true,
                    // busybox sleep as PID 1 ignores SIGTERM: do not wait 30 s for it.
                    "stopTimeout": 2
                }]
            }),
        )
        .await?;
    let definition = registered["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .context("RegisterTaskDefinition answered no ARN")?
        .to_string();

    let mut results = Results::default();
    let rounds = args.warmup_runs + args.runs;
    let mut cpu_before = None;
    for round in 0..rounds {
        let measured = round >= args.warmup_runs;
        if round == args.warmup_runs {
            cpu_before = cpu::Snapshot::take(Some(server.pid()));
        }
        for k in 0..METHODS.len() {
            let method = METHODS[(round + k) % METHODS.len()];
            let sink = if measured { Some(&mut results) } else { None };
            match method {
                Method::Berth => berth_run(args, client, engine, &definition, sink).await?,
                Method::Cli => cli_run(args, run_id, round, engine, sink).await?,
                Method::Api => api_run(args, run_id, round, engine, sink).await?,
            }
            tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        }
        eprintln!(
            "berth-bench: round {}/{rounds}{}",
            round + 1,
            if measured { "" } else { " (warm-up)" }
        );
    }
    let cpu_after = cpu::Snapshot::take(Some(server.pid()));
    let usage = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => a.usage_until(&b),
        _ => None,
    };
    Ok((results, usage))
}

/// The engine's Created and StartedAt of a container, epoch seconds.
async fn engine_times(engine: &mut Engine, id: &str) -> anyhow::Result<(f64, f64)> {
    let inspected = engine.inspect(id).await?;
    let created = docker::epoch_seconds(&inspected["Created"])
        .context("the engine gives no creation time")?;
    let started = docker::epoch_seconds(&inspected["State"]["StartedAt"])
        .context("the engine gives no start time")?;
    Ok((created, started))
}

async fn berth_run(
    args: &TasksArgs,
    client: &mut Client<'_>,
    engine: &mut Engine,
    definition: &str,
    mut sink: Option<&mut Results>,
) -> anyhow::Result<()> {
    let run_task = client.sign(
        "RunTask",
        &json!({
            "cluster": "default",
            "taskDefinition": definition,
            "count": 1,
            "launchType": "EC2",
            "startedBy": "berth-bench"
        }),
    )?;
    client.warm().await?;
    let poll = Duration::from_secs_f64(args.poll_ms / 1000.0);

    let sent_at = epoch_now();
    let t0 = Instant::now();
    let (status, answer) = client.send(&run_task).await?;
    let run_task_time = t0.elapsed();
    if status != 200 {
        bail!("RunTask answered {}", answer.as_str().unwrap_or_default());
    }
    let Some(task_arn) = answer["tasks"][0]["taskArn"].as_str().map(str::to_string) else {
        bail!("RunTask placed no task: {}", answer["failures"]);
    };
    let describe = client.sign(
        "DescribeTasks",
        &json!({ "cluster": "default", "tasks": [task_arn] }),
    )?;
    let mut polls = 0u32;
    let first_poll = Instant::now();
    let (observed, task) = loop {
        let next = Instant::now() + poll;
        let (status, answer) = client.send(&describe).await?;
        polls += 1;
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
                "task {task_arn} stopped instead of running: {}",
                task["stoppedReason"]
            ),
            _ => {}
        }
        if t0.elapsed() > TASK_TIMEOUT {
            bail!("task {task_arn} is not RUNNING after {TASK_TIMEOUT:?}: {task}");
        }
        // tokio's timer rounds up to whole milliseconds; a thread sleep keeps the
        // interval asked for. Nothing else runs on this (current-thread) runtime.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };
    let polling = first_poll.elapsed();

    // Outside the timed part: where the time went, then stop and remove.
    let created_at = task["createdAt"].as_f64();
    let started_at = task["startedAt"].as_f64();
    let container_id = task["containers"][0]["runtimeId"]
        .as_str()
        .map(str::to_string);
    let times = match &container_id {
        Some(id) => Some(engine_times(engine, id).await?),
        None => None,
    };
    if let Some(results) = sink.as_deref_mut() {
        results.berth_observed.push(ms(observed));
        results.berth_run_task.push(ms(run_task_time));
        results.polls.push(f64::from(polls));
        if polls > 1 {
            results
                .poll_spacing
                .push(ms(polling) / f64::from(polls - 1).max(1.0));
        }
        if let (Some(created_at), Some(started_at)) = (created_at, started_at) {
            results
                .berth_record
                .push((started_at - created_at) * 1000.0);
        }
        if let Some(created_at) = created_at {
            results
                .berth_to_record
                .push((created_at - sent_at) * 1000.0);
            if let Some((created, started)) = times {
                results.berth_dispatch.push((created - created_at) * 1000.0);
                results
                    .berth_engine_start
                    .push((started - created) * 1000.0);
                let seen = sent_at + observed.as_secs_f64();
                results.berth_report.push((seen - started) * 1000.0);
                results
                    .berth_outside
                    .push(ms(observed) - (started - created) * 1000.0);
            }
        }
    }

    client
        .stop_tasks("default", std::slice::from_ref(&task_arn))
        .await?;
    client
        .wait_for_status(
            "default",
            std::slice::from_ref(&task_arn),
            "STOPPED",
            TASK_TIMEOUT,
        )
        .await?;
    // The agent removes a stopped task's containers itself; wait for that.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = engine.list(TASK_LABEL, &task_arn).await?;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for id in &left {
                engine.remove(id).await?;
            }
            if let Some(results) = sink {
                results.agent_left += left.len();
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn create_body(args: &TasksArgs, run_id: &str) -> Value {
    json!({
        "Image": args.image,
        "Cmd": ["sleep", "3600"],
        "Labels": { RUN_LABEL: run_id },
        "HostConfig": { "Memory": 16 * 1024 * 1024, "NetworkMode": "bridge" }
    })
}

async fn cli_run(
    args: &TasksArgs,
    run_id: &str,
    round: usize,
    engine: &mut Engine,
    sink: Option<&mut Results>,
) -> anyhow::Result<()> {
    let name = format!("berth-bench-{run_id}-cli-{round}");
    let command: Vec<String> = [
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &format!("{RUN_LABEL}={run_id}"),
        "--memory",
        "16m",
        "--network",
        "bridge",
        &args.image,
        "sleep",
        "3600",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sent_at = epoch_now();
    let t0 = Instant::now();
    let id = docker::cli(&command).await?;
    let elapsed = t0.elapsed();
    let (created, started) = engine_times(engine, &id).await?;
    if let Some(results) = sink {
        results.cli.push(ms(elapsed));
        results.cli_created.push((created - sent_at) * 1000.0);
        results.cli_engine_start.push((started - created) * 1000.0);
        results
            .cli_outside
            .push(ms(elapsed) - (started - created) * 1000.0);
        results
            .cli_after_start
            .push((sent_at + elapsed.as_secs_f64() - started) * 1000.0);
    }
    engine.remove(&id).await
}

async fn api_run(
    args: &TasksArgs,
    run_id: &str,
    round: usize,
    engine: &mut Engine,
    sink: Option<&mut Results>,
) -> anyhow::Result<()> {
    let name = format!("berth-bench-{run_id}-api-{round}");
    let body = create_body(args, run_id);
    engine.warm().await?;
    let sent_at = epoch_now();
    let t0 = Instant::now();
    let id = engine.create(&name, &body).await?;
    engine.start(&id).await?;
    let elapsed = t0.elapsed();
    let (created, started) = engine_times(engine, &id).await?;
    if let Some(results) = sink {
        results.api.push(ms(elapsed));
        results.api_created.push((created - sent_at) * 1000.0);
        results.api_engine_start.push((started - created) * 1000.0);
        results
            .api_outside
            .push(ms(elapsed) - (started - created) * 1000.0);
        results
            .api_after_start
            .push((sent_at + elapsed.as_secs_f64() - started) * 1000.0);
    }
    engine.remove(&id).await
}

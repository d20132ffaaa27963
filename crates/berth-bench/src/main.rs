//! `berth-bench`: benchmarks of berth, printed as Markdown for BENCHMARKS.md.
//!
//! - `berth-bench api` measures the control plane's ECS API: it starts a fresh
//!   `berth server` (or uses `--endpoint`), then drives each operation at each
//!   concurrency level with SigV4-signed requests over keep-alive connections.
//! - `berth-bench tasks` measures RunTask to RUNNING against `berth up`, next to
//!   `docker run -d` and the Docker Engine API on the same engine.
//! - `berth-bench agent-memory` measures a `berth agent`'s resident memory, idle and
//!   with many running tasks.
//! - `berth-bench reaction` measures how fast a service replaces a task whose
//!   container died, on `berth up`.
//! - `berth-bench scale` places and starts many tasks on thousands of simulated
//!   instances (`berth_agent::sim`) through a real control plane.
//! - `berth-bench sim` runs simulated instances against a control plane until stopped.

/// mimalloc, as the `berth` binary uses: the simulated instances of `scale` and `sim`
/// run the real agent in this process, and with glibc's malloc they spent a fifth of
/// their CPU growing and faulting in its heap, on the cores the server is measured on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod agent_memory;
mod cpu;
mod docker;
mod ecs;
mod http1;
mod load;
mod memory;
mod reaction;
mod report;
mod scale;
mod server;
mod signer;
mod sim;
mod stats;
mod tasks;
mod workload;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::http1::Connection;
use crate::load::{Phase, PhaseResult};
use crate::server::ServerProcess;
use crate::signer::{AccessKey, Endpoint, Signer};
use crate::workload::{Names, OWN_FAMILIES, Operation, SHARED_FAMILY};

/// Request bodies (and pre-signed requests) per worker, used round-robin.
const POOL_SIZE: usize = 8;

/// Benchmarks of berth, printed as Markdown ready for BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "berth-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the control plane's ECS API: DescribeClusters and RegisterTaskDefinition
    /// at each concurrency level, every request SigV4-signed.
    Api(ApiArgs),
    /// Time from RunTask to RUNNING of a one-container task on `berth up`, next to
    /// `docker run -d` and the Docker Engine API starting the same container.
    Tasks(tasks::TasksArgs),
    /// Resident memory of a `berth agent` process, idle and with many running tasks.
    AgentMemory(agent_memory::AgentMemoryArgs),
    /// Time from killing a service task's container to its replacement RUNNING, on
    /// `berth up`.
    Reaction(reaction::ReactionArgs),
    /// Tasks placed and started end to end on thousands of simulated instances, at
    /// several sizes: tasks/s and the control plane's memory.
    Scale(scale::ScaleArgs),
    /// Runs simulated container instances (the agent on a fake runtime) against a
    /// control plane until interrupted.
    Sim(sim::SimArgs),
}

#[derive(Debug, Args)]
struct ApiArgs {
    /// The berth binary to start [default: `berth` next to this executable].
    #[arg(long, value_name = "PATH")]
    berth: Option<PathBuf>,

    /// Where the started server's data directory is created [default: the system's
    /// temporary directory]. Its filesystem decides what a durable write costs.
    #[arg(long, value_name = "DIR")]
    data_parent: Option<PathBuf>,

    /// Measured seconds per operation and concurrency level.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Warm-up seconds before each measurement (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,

    /// Concurrency levels: workers, each on its own keep-alive connection.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,

    /// Operations to load.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "DescribeClusters,RegisterTaskDefinition"
    )]
    operations: Vec<Operation>,

    /// Most requests measured per operation and concurrency level.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,

    /// Load a running server at this URL (http://HOST:PORT) instead of starting one.
    #[arg(long, value_name = "URL", requires = "access_key")]
    endpoint: Option<String>,

    /// The access key to sign with, for --endpoint.
    #[arg(long, value_name = "ID:SECRET", requires = "endpoint")]
    access_key: Option<AccessKey>,

    /// The region requests are signed for.
    #[arg(long, default_value = "us-east-1")]
    region: String,

    /// Threads of the load generator. It shares the machine with the server, so the
    /// default is one.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Api(args) => api(args),
        Command::Tasks(args) => tasks::run(args),
        Command::AgentMemory(args) => agent_memory::run(args),
        Command::Reaction(args) => reaction::run(args),
        Command::Scale(args) => scale::run(args),
        Command::Sim(args) => sim::run(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("berth-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn seconds(name: &str, value: f64, min: f64) -> anyhow::Result<Duration> {
    if !value.is_finite() || value < min || value > 3600.0 {
        bail!("--{name} must be between {min} and 3600 seconds, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// Runs `berth-bench api`; true if every request succeeded and every check held.
fn api(args: ApiArgs) -> anyhow::Result<bool> {
    let measure = seconds("seconds", args.seconds, 0.1)?;
    let warmup = seconds("warmup", args.warmup, 0.0)?;
    if args.concurrency.is_empty() || args.concurrency.iter().any(|&c| c == 0 || c > 4096) {
        bail!("--concurrency levels must be between 1 and 4096");
    }
    if args.client_threads == 0 {
        bail!("--client-threads must be at least 1");
    }
    if args.max_requests == 0 {
        bail!("--max-requests must be at least 1");
    }

    let mut server = None;
    let (endpoint, key, server_note) = match (&args.endpoint, &args.access_key) {
        (Some(url), Some(key)) => (
            Endpoint::parse(url)?,
            key.clone(),
            format!("server at {url} (not started by the benchmark)"),
        ),
        _ => {
            let binary = berth_binary(args.berth.as_deref())?;
            let version = berth_version(&binary);
            let key = AccessKey::generate();
            eprintln!("berth-bench: starting {} server", binary.display());
            let started = ServerProcess::start(&binary, args.data_parent.as_deref(), &key)?;
            let fs = report::filesystem_of(started.data_dir())
                .map(|fs| format!(" on {fs}"))
                .unwrap_or_default();
            let note = format!(
                "`berth server` ({version}) started by the benchmark, fresh SQLite store{fs}"
            );
            let endpoint = Endpoint::local(started.address());
            server = Some(started);
            (endpoint, key, note)
        }
    };
    eprintln!("berth-bench: loading http://{}", endpoint.authority);

    let runtime = if args.client_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()?
    };
    let signer = Arc::new(Signer::new(&key, &args.region, endpoint));
    let plan = Plan {
        operations: args.operations.clone(),
        concurrency: args.concurrency.clone(),
        warmup,
        measure,
        max_requests: args.max_requests,
        server_pid: server.as_ref().map(ServerProcess::pid),
    };
    let outcome = runtime.block_on(run(&signer, &plan));
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            if let Some(server) = &mut server {
                let state = if server.running() {
                    "running"
                } else {
                    "exited"
                };
                eprintln!(
                    "berth-bench: server ({state}), last log lines:\n{}",
                    server.log_tail(30)
                );
            }
            return Err(err);
        }
    };

    let machine = report::Machine::detect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### berth-bench api, {} on {}\n",
        report::now_utc(),
        machine.describe()
    );
    let _ = writeln!(
        out,
        "{server_note}; load generator on the same machine ({} thread{}, one keep-alive \
         HTTP/1.1 connection per worker). Each row: {} s warm-up, then {} s or {} requests; \
         every request SigV4-signed and verified by the server.\n",
        args.client_threads,
        if args.client_threads == 1 { "" } else { "s" },
        warmup.as_secs_f64(),
        measure.as_secs_f64(),
        report::thousands(args.max_requests),
    );
    let _ = writeln!(out, "Command: `{}`\n", command_line());
    out.push_str(&report::table(&outcome.results));
    out.push('\n');
    for note in &outcome.notes {
        let _ = writeln!(out, "- {note}");
    }
    for result in &outcome.results {
        if let Some(cpu) = result.cpu {
            let _ = writeln!(out, "- {}", report::cpu_note(result, &cpu));
        }
    }
    let mut clean = outcome.problems.is_empty();
    for problem in &outcome.problems {
        let _ = writeln!(out, "- **{problem}**");
    }
    for result in &outcome.results {
        if result.clean() {
            continue;
        }
        clean = false;
        let _ = writeln!(
            out,
            "- **{} x{}: {} errors ({} in warm-up)**",
            result.op.name(),
            result.concurrency,
            result.errors + result.warmup_errors,
            result.warmup_errors
        );
        let mut kinds: Vec<_> = result.error_kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        for (kind, n) in kinds {
            let _ = writeln!(out, "  - {n} x `{kind}`");
        }
        if result.stuck_workers > 0 {
            let _ = writeln!(
                out,
                "  - {} workers got no answer and were abandoned",
                result.stuck_workers
            );
        }
    }
    print!("{out}");

    if let Some(server) = &mut server {
        if !server.running() {
            eprintln!(
                "berth-bench: the server exited during the run; last log lines:\n{}",
                server.log_tail(30)
            );
            clean = false;
        } else if !clean {
            eprintln!(
                "berth-bench: last server log lines:\n{}",
                server.log_tail(30)
            );
        }
    }
    Ok(clean)
}

/// The berth binary: `path`, or `berth` next to this executable.
fn berth_binary(path: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    match path {
        Some(path) => Ok(path.to_path_buf()),
        None => Ok(std::env::current_exe()
            .context("cannot find this executable")?
            .with_file_name("berth")),
    }
}

/// "berth 0.1.0", from `berth --version`.
fn berth_version(binary: &std::path::Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown version".to_string())
}

/// This process's command line, without the secret of an access key.
fn command_line() -> String {
    let mut words = Vec::new();
    let mut secret_next = false;
    for (i, arg) in std::env::args().enumerate() {
        let word = if i == 0 {
            std::path::Path::new(&arg)
                .file_name()
                .map_or(arg.clone(), |n| n.to_string_lossy().into_owned())
        } else if secret_next {
            redact(&arg)
        } else if let Some(value) = arg.strip_prefix("--access-key=") {
            format!("--access-key={}", redact(value))
        } else {
            arg.clone()
        };
        secret_next = arg == "--access-key";
        words.push(word);
    }
    words.join(" ")
}

fn redact(key: &str) -> String {
    match key.split_once(':') {
        Some((id, _)) => format!("{id}:***"),
        None => "***".to_string(),
    }
}

struct Plan {
    operations: Vec<Operation>,
    concurrency: Vec<usize>,
    warmup: Duration,
    measure: Duration,
    max_requests: u64,
    server_pid: Option<u32>,
}

struct Outcome {
    results: Vec<PhaseResult>,
    /// Checks that held, worth a line in the report.
    notes: Vec<String>,
    /// Checks that failed and operations that could not run.
    problems: Vec<String>,
}

/// One request outside the load (setup and checks), on its own connection.
async fn call(
    signer: &Signer,
    operation: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Value, String)> {
    let request = signer.request(operation, body, SystemTime::now())?;
    let mut conn = Connection::open(signer.endpoint().address)
        .await
        .with_context(|| format!("cannot connect to {}", signer.endpoint().authority))?;
    let response = conn
        .round_trip(&request)
        .await
        .with_context(|| format!("{operation}: no answer"))?;
    let text = String::from_utf8_lossy(response.body).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((response.status, json, text))
}

/// Creates the cluster and checks each operation once; then runs every phase.
async fn run(signer: &Arc<Signer>, plan: &Plan) -> anyhow::Result<Outcome> {
    let run_id = format!("{:08x}", rand::random::<u32>());
    let names = Names::new(run_id);
    let mut outcome = Outcome {
        results: Vec::new(),
        notes: Vec::new(),
        problems: Vec::new(),
    };

    let cluster = names.cluster();
    let (status, _, text) =
        call(signer, "CreateCluster", &workload::create_cluster(&cluster)).await?;
    if status != 200 {
        bail!(
            "CreateCluster {cluster} answered {}",
            load::describe_error(status, text.as_bytes())
        );
    }

    for &op in &plan.operations {
        if let Err(problem) = probe(signer, &names, op).await? {
            eprintln!("berth-bench: {} not run: {problem}", op.name());
            outcome
                .problems
                .push(format!("{} not run: {problem}", op.name()));
            continue;
        }
        for (index, &concurrency) in plan.concurrency.iter().enumerate() {
            let phase_tag = format!("p{index}c{concurrency}");
            let bodies = (0..concurrency)
                .map(|worker| names.bodies(op, &phase_tag, worker, POOL_SIZE))
                .collect();
            let phase = Phase {
                op,
                concurrency,
                warmup: plan.warmup,
                measure: plan.measure,
                max_requests: plan.max_requests,
                server_pid: plan.server_pid,
            };
            eprintln!(
                "berth-bench: {} x{concurrency}: {:.1} s warm-up, {:.1} s measured",
                op.name(),
                plan.warmup.as_secs_f64(),
                plan.measure.as_secs_f64()
            );
            let result = load::run(signer, &phase, bodies).await?;
            eprintln!(
                "berth-bench: {} x{concurrency}: {} requests, {:.0}/s, {} errors",
                op.name(),
                result.requests,
                result.rate(),
                result.errors + result.warmup_errors
            );
            if op == Operation::RegisterTaskDefinition {
                check_revisions(signer, &names, &phase_tag, &result, &mut outcome).await?;
            }
            outcome.results.push(result);
        }
    }
    Ok(outcome)
}

/// One request of `op`, checked in depth: the load itself only looks at the status.
async fn probe(
    signer: &Signer,
    names: &Names,
    op: Operation,
) -> anyhow::Result<Result<(), String>> {
    match op {
        Operation::DescribeClusters => {
            let cluster = names.cluster();
            let (status, json, text) =
                call(signer, op.name(), &workload::describe_clusters(&cluster)).await?;
            if status != 200 {
                return Ok(Err(format!(
                    "answered {}",
                    load::describe_error(status, text.as_bytes())
                )));
            }
            let found = json["clusters"][0]["clusterName"].as_str() == Some(cluster.as_str())
                && json["failures"].as_array().is_none_or(Vec::is_empty);
            if !found {
                return Ok(Err(format!("did not return cluster {cluster}: {text}")));
            }
        }
        Operation::RegisterTaskDefinition => {
            let family = names.probe_family();
            let body = workload::task_definition(&family, "probe").to_string();
            let (status, json, text) = call(signer, op.name(), body.as_bytes()).await?;
            if status != 200 {
                return Ok(Err(format!(
                    "answered {} to a {}-byte task definition",
                    load::describe_error(status, text.as_bytes()),
                    body.len()
                )));
            }
            let revision = &json["taskDefinition"]["revision"];
            if revision.as_u64() != Some(1) {
                return Ok(Err(format!(
                    "the first revision of {family} is {revision}, not 1: {text}"
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// Every successful registration must have taken the next revision of its family: the
/// latest revision equals the number of 200s for that family.
async fn check_revisions(
    signer: &Signer,
    names: &Names,
    phase_tag: &str,
    result: &PhaseResult,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let used = (0..result.concurrency.min(OWN_FAMILIES)).chain([SHARED_FAMILY]);
    for family in used {
        let name = names.family(phase_tag, family);
        let expected = result.family_ok[family];
        let (status, json, text) = call(
            signer,
            "DescribeTaskDefinition",
            &workload::describe_task_definition(&name),
        )
        .await?;
        if expected == 0 && status != 200 {
            continue;
        }
        let latest = json["taskDefinition"]["revision"].as_u64();
        if status != 200 || latest != Some(expected) {
            outcome.problems.push(format!(
                "RegisterTaskDefinition x{}: family {name} got {expected} successful registrations \
                 but DescribeTaskDefinition answered {}",
                result.concurrency,
                load::describe_error(status, text.as_bytes())
            ));
            return Ok(());
        }
    }
    outcome.notes.push(format!(
        "RegisterTaskDefinition x{}: latest revisions match the successful registrations \
         (warm-up included: {} into the shared family, {} into {} per-worker families)",
        result.concurrency,
        report::thousands(result.family_ok[SHARED_FAMILY]),
        report::thousands(result.family_ok[..OWN_FAMILIES].iter().sum::<u64>()),
        result.concurrency.min(OWN_FAMILIES),
    ));
    Ok(())
}

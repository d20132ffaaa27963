//! `berth`: a self-hosted container service that speaks the Amazon ECS API.

mod commands;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a request allocates and frees hundreds of
/// small objects (decoded JSON, records, headers), and glibc's malloc and free were
/// ~15% of the server's CPU under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// berth runs containers the way Amazon ECS does, on your own machines, and speaks the
/// ECS API: the AWS CLI, boto3 and the AWS SDKs work against it with only the endpoint
/// URL changed.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane and an agent for the local Docker engine, in one process:
    /// the whole of berth on one machine.
    Up(commands::up::UpArgs),
    /// Run the control plane: the ECS API on an embedded store.
    Server(commands::server::ServerArgs),
    /// Run an agent: make this host a container instance of a cluster.
    Agent(commands::agent::AgentArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    commands::init_logging();
    let result = match cli.command {
        Command::Up(args) => commands::up::run(args),
        Command::Server(args) => commands::server::run(args),
        Command::Agent(args) => commands::agent::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("berth: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `berth-bench sim`: simulated container instances (`berth_agent::sim`: the real
//! agent on the fake runtime) against a control plane, until interrupted.

use std::time::Duration;

use anyhow::Context;
use berth_agent::sim::{SimConfig, Simulation};
use clap::Args;

use crate::signer::AccessKey;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The control plane, http://HOST:PORT.
    #[arg(long, default_value = "http://127.0.0.1:7474")]
    endpoint: String,
    /// The access key the agents sign with, ID:SECRET.
    #[arg(long, value_name = "ID:SECRET")]
    access_key: AccessKey,
    #[arg(long, default_value = "default")]
    cluster: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// How many instances to simulate.
    #[arg(long, default_value_t = 1000)]
    instances: usize,
    /// CPUs and memory (MiB) each simulated host reports.
    #[arg(long, default_value_t = 4)]
    cpus: u32,
    #[arg(long, default_value_t = 16384)]
    memory_mib: u64,
    /// Worker threads of the simulation's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

pub fn run(args: SimArgs) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut config = SimConfig::new(
            &args.endpoint,
            &args.cluster,
            &args.access_key.id,
            &args.access_key.secret,
        );
        config.region = args.region.clone();
        config.cpus = args.cpus;
        config.memory_mib = args.memory_mib;
        let mut sim = Simulation::new(config)?;
        sim.start_agents(args.instances);
        sim.wait_connected(Duration::from_secs(600))
            .await
            .context("the simulated agents did not all connect")?;
        eprintln!(
            "berth-bench: {} simulated instances connected to {}; Ctrl-C stops them",
            args.instances, args.endpoint
        );
        tokio::signal::ctrl_c().await?;
        sim.shutdown().await;
        anyhow::Ok(true)
    })
}

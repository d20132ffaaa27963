//! `berth up`: the whole of berth on one machine, in one process: the control plane
//! and an agent for the local Docker engine, registered in the `default` cluster.

use std::sync::Arc;

use anyhow::Context;
use berth_agent::agent::run as run_agent;
use berth_agent::runtime::docker::DockerRuntime;
use berth_server::auth::AccessKey;
use berth_server::serve;
use clap::Args;

use super::agent::{AgentOptions, config};
use super::server::{ServerArgs, prepare};

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    #[command(flatten)]
    pub agent: AgentOptions,
}

pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let docker = DockerRuntime::connect()
            .await
            .context("cannot reach the Docker engine")?;
        let region = args.server.region.clone();
        let prepared = prepare(args.server).await?;
        let endpoint = format!("http://{}", prepared.address);
        // Without authentication the agent's signature is not checked; any key will do.
        let key = prepared.key.clone().unwrap_or_else(|| AccessKey {
            id: "berth-up".to_string(),
            secret: "unchecked".to_string(),
        });
        println!(
            "berth: endpoint {endpoint}, region {region}, access key {}",
            key.id
        );
        let agent_config = config(
            endpoint,
            "default".to_string(),
            prepared.data_dir.join("agent"),
            key,
            region,
            args.agent,
            vec![prepared.address.port()],
        );
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let mut server_shutdown = shutdown.clone();
        let server = tokio::spawn(serve(
            prepared.listener,
            prepared.store,
            prepared.config,
            async move {
                let _ = server_shutdown.changed().await;
            },
        ));
        let agent = tokio::spawn(run_agent(agent_config, Arc::new(docker), shutdown));
        super::shutdown_signal().await;
        let _ = stop.send(true);
        agent.await.context("the agent panicked")??;
        server.await.context("the server panicked")??;
        tracing::info!(
            "berth stopped; task containers keep running and are re-adopted at the next start"
        );
        Ok(())
    })
}

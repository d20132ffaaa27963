//! `berth agent`: make this host a container instance of a cluster.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_agent::agent::{AgentConfig, run as run_agent};
use berth_agent::runtime::PullPolicy;
use berth_agent::runtime::docker::DockerRuntime;
use berth_server::auth::{AccessKey, CredentialsFile};
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PullBehavior {
    Default,
    Always,
    Once,
    PreferCached,
}

impl From<PullBehavior> for PullPolicy {
    fn from(value: PullBehavior) -> Self {
        match value {
            PullBehavior::Default => PullPolicy::Default,
            PullBehavior::Always => PullPolicy::Always,
            PullBehavior::Once => PullPolicy::Once,
            PullBehavior::PreferCached => PullPolicy::PreferCached,
        }
    }
}

/// Options of the agent that `berth up` shares.
#[derive(Debug, Clone, Args)]
pub struct AgentOptions {
    /// A custom attribute of this container instance, NAME=VALUE (repeatable).
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,

    /// MiB of memory kept from tasks (ECS_RESERVED_MEMORY).
    #[arg(long, default_value_t = 0)]
    pub reserved_memory: u64,

    /// When to pull images (ECS_IMAGE_PULL_BEHAVIOR).
    #[arg(long, value_enum, default_value = "default")]
    pub pull_behavior: PullBehavior,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The control plane's endpoint, e.g. http://127.0.0.1:7474.
    #[arg(long, env = "BERTH_ENDPOINT")]
    pub endpoint: String,

    /// The cluster to join.
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    pub cluster: String,

    /// Where the agent keeps its identity [default: $HOME/.local/share/berth/agent].
    #[arg(long, env = "BERTH_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The key to sign with, ID:SECRET [default: AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, else --credentials-file].
    #[arg(long, value_name = "ID:SECRET")]
    pub access_key: Option<AccessKey>,

    /// An AWS credentials file whose first profile's key to sign with.
    #[arg(long, value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,

    /// The region to sign for.
    #[arg(long, default_value = "us-east-1", env = "BERTH_REGION")]
    pub region: String,

    #[command(flatten)]
    pub options: AgentOptions,
}

fn parse_attribute(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    if name.is_empty() {
        return Err(format!("the attribute {text:?} has no name"));
    }
    Ok((name.to_string(), value.to_string()))
}

fn signing_key(args: &AgentArgs) -> anyhow::Result<AccessKey> {
    if let Some(key) = &args.access_key {
        return Ok(key.clone());
    }
    if let (Ok(id), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(AccessKey { id, secret });
    }
    let path = args
        .credentials_file
        .as_ref()
        .context("no key to sign with: pass --access-key, --credentials-file or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")?;
    let credentials = CredentialsFile::load(path)?;
    let id = credentials
        .ids()
        .first()
        .map(|id| id.to_string())
        .context("the credentials file holds no key")?;
    let secret = credentials
        .secret(&id)
        .map(str::to_string)
        .context("the credentials file holds no secret")?;
    Ok(AccessKey { id, secret })
}

pub fn config(
    endpoint: String,
    cluster: String,
    data_dir: PathBuf,
    key: AccessKey,
    region: String,
    options: AgentOptions,
    reserved_ports: Vec<u16>,
) -> AgentConfig {
    AgentConfig {
        endpoint,
        cluster,
        data_dir,
        access_key_id: key.id,
        secret_access_key: key.secret,
        region,
        attributes: options.attributes,
        reserved_memory_mib: options.reserved_memory,
        reserved_ports,
        pull_policy: options.pull_behavior.into(),
    }
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let key = signing_key(&args)?;
    let data_dir = match args.data_dir.clone() {
        Some(dir) => dir,
        None => super::server::default_data_dir()?.join("agent"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let docker = DockerRuntime::connect()
            .await
            .context("cannot reach the Docker engine")?;
        let config = config(
            args.endpoint,
            args.cluster,
            data_dir,
            key,
            args.region,
            args.options,
            Vec::new(),
        );
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            super::shutdown_signal().await;
            let _ = stop.send(true);
        });
        run_agent(config, Arc::new(docker), shutdown).await?;
        tracing::info!("berth agent stopped; its containers keep running");
        Ok(())
    })
}

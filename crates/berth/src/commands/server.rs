//! `berth server`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use berth_server::auth::{AccessKey, CredentialsFile, SigV4Verifier};
use berth_server::{ServerConfig, serve};
use berth_store::sqlite::SqliteStore;
use clap::Args;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to serve the ECS API on.
    #[arg(long, default_value = "127.0.0.1:7474", env = "BERTH_LISTEN")]
    pub listen: SocketAddr,

    /// Where berth keeps its store and credentials [default: $HOME/.local/share/berth].
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// An access key to accept, as ACCESS_KEY_ID:SECRET_ACCESS_KEY (repeatable), in
    /// addition to those in the data directory's credentials file.
    #[arg(long = "access-key", value_name = "ID:SECRET")]
    pub access_keys: Vec<AccessKey>,

    /// Accept unsigned requests. For throwaway local use only.
    #[arg(long)]
    pub no_auth: bool,

    /// The region of requests that name none.
    #[arg(long, default_value = "us-east-1", env = "BERTH_REGION")]
    pub region: String,

    /// Seconds a service task without health checks must have been RUNNING before it
    /// counts as healthy during a deployment (ECS waits 40).
    #[arg(long, default_value_t = 40, value_name = "SECONDS")]
    pub task_running_grace: u64,

    /// Seconds an instance's agent may stay disconnected before the tasks on the
    /// instance are marked STOPPED and services replace them on other instances. The
    /// agent stops them when it comes back.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub lost_agent_grace: u64,

    /// The account id in every ARN.
    #[arg(long, default_value = "123456789012", env = "BERTH_ACCOUNT_ID")]
    pub account_id: String,
}

/// `$HOME/.local/share/berth`, the default data directory.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/berth"))
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let prepared = prepare(args).await?;
        serve(
            prepared.listener,
            prepared.store,
            prepared.config,
            super::shutdown_signal(),
        )
        .await?;
        tracing::info!("berth server stopped");
        Ok(())
    })
}

/// A control plane ready to serve: listening, with its store open and its keys loaded.
pub struct Prepared {
    pub listener: tokio::net::TcpListener,
    pub store: Arc<dyn berth_store::Store>,
    pub config: ServerConfig,
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    /// A key this server accepts (the credentials file's first, or the first given),
    /// for an in-process agent; None without authentication.
    pub key: Option<AccessKey>,
}

pub async fn prepare(args: ServerArgs) -> anyhow::Result<Prepared> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    if !args.account_id.bytes().all(|b| b.is_ascii_digit()) || args.account_id.len() != 12 {
        anyhow::bail!("--account-id must be 12 digits, got {:?}", args.account_id);
    }

    let mut key = None;
    let verifier = if args.no_auth {
        tracing::warn!(
            "authentication is OFF (--no-auth): anyone who can reach {} controls berth",
            args.listen
        );
        None
    } else {
        let (mut credentials, created) = CredentialsFile::load_or_create(&data_dir)?;
        if let Some(created) = created {
            println!(
                "berth: created access key {} (secret in {})",
                created.access_key_id,
                created.path.display()
            );
        }
        key = args.access_keys.first().cloned().or_else(|| {
            let id = credentials.ids().first()?.to_string();
            let secret = credentials.secret(&id)?.to_string();
            Some(AccessKey { id, secret })
        });
        for key in args.access_keys {
            credentials.insert(key)?;
        }
        tracing::info!(keys = credentials.len(), "authentication on (SigV4)");
        Some(SigV4Verifier::new(credentials))
    };

    let store = SqliteStore::open(&data_dir.join("berth.db"))
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!(
        "berth: ECS API on http://{address} (data in {})",
        data_dir.display()
    );
    tracing::info!(%address, data_dir = %data_dir.display(), "berth server started");

    let config = ServerConfig {
        account_id: args.account_id,
        default_region: args.region,
        verifier,
        task_running_grace: std::time::Duration::from_secs(args.task_running_grace),
        lost_agent_grace: std::time::Duration::from_secs(args.lost_agent_grace),
    };
    Ok(Prepared {
        listener,
        store: store as _,
        config,
        address,
        data_dir,
        key,
    })
}

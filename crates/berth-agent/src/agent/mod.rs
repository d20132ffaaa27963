//! The agent process: register the host (or re-register it as the same instance),
//! re-adopt the containers it already runs, then keep the session with the control
//! plane until told to stop. Stopping the agent leaves the containers running.

pub mod identity;
pub mod registration;
pub mod session_loop;
pub mod unacknowledged;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_model::container_instance::{
    RegisterContainerInstanceRequest, RegisterContainerInstanceResponse,
};
use tokio::sync::{mpsc, watch};

use crate::client::{ApiClient, ClientError, HttpClient, Signer};
use crate::engine::{EngineConfig, EngineIdentity, TaskEngine};
use crate::runtime::{PullPolicy, Runtime, RuntimeError};
use identity::InstanceIdentity;
use session_loop::{Backoff, SessionLoop};

/// How an agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The control plane, e.g. `http://127.0.0.1:7474`.
    pub endpoint: String,
    pub cluster: String,
    pub data_dir: PathBuf,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// Custom attributes, `name=value`.
    pub attributes: Vec<(String, String)>,
    /// MiB of the host's memory not offered to tasks (ECS_RESERVED_MEMORY).
    pub reserved_memory_mib: u64,
    /// More host ports to keep from tasks.
    pub reserved_ports: Vec<u16>,
    pub pull_policy: PullPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the container runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("the control plane: {0}")]
    Client(#[from] ClientError),
    #[error("the data directory: {0}")]
    DataDir(#[from] std::io::Error),
    #[error("RegisterContainerInstance answered no container instance")]
    NoInstance,
}

/// Registers the host, retrying while the control plane is unreachable; returns the
/// instance's identity (saved in the data directory).
async fn register(
    config: &AgentConfig,
    client: &ApiClient,
    runtime: &dyn Runtime,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<InstanceIdentity>, AgentError> {
    let host = runtime.host_info().await?;
    let previous = identity::load(&config.data_dir)?.filter(|saved| {
        saved
            .cluster_arn
            .ends_with(&format!(":cluster/{}", config.cluster))
            || saved.cluster_arn == config.cluster
    });
    let request = RegisterContainerInstanceRequest {
        cluster: Some(config.cluster.clone()),
        total_resources: Some(registration::resources(
            &host,
            config.reserved_memory_mib,
            &config.reserved_ports,
        )),
        version_info: Some(registration::version_info(&host)),
        container_instance_arn: previous
            .as_ref()
            .map(|saved| saved.container_instance_arn.clone()),
        attributes: Some(registration::attributes(&host, &config.attributes)),
        ..RegisterContainerInstanceRequest::default()
    };
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        match client
            .call::<_, RegisterContainerInstanceResponse>("RegisterContainerInstance", &request)
            .await
        {
            Ok(response) => {
                let instance = response.container_instance.ok_or(AgentError::NoInstance)?;
                let arn = instance
                    .container_instance_arn
                    .ok_or(AgentError::NoInstance)?;
                let cluster_arn = arn
                    .split_once(":container-instance/")
                    .and_then(|(prefix, rest)| {
                        Some(format!("{prefix}:cluster/{}", rest.split_once('/')?.0))
                    })
                    .ok_or(AgentError::NoInstance)?;
                let identity = InstanceIdentity {
                    cluster_arn,
                    container_instance_arn: arn,
                };
                identity::save(&config.data_dir, &identity)?;
                if previous.as_ref().is_some_and(|saved| saved != &identity) {
                    tracing::warn!(instance = %identity.container_instance_arn, "registered as a new container instance");
                }
                return Ok(Some(identity));
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(%err, "cannot register yet; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.changed() => return Ok(None),
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Where an agent is in its life, for whoever runs it (the simulation waits on it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// The instance this agent registered as, once it has.
    pub identity: Option<InstanceIdentity>,
    /// Sessions opened with the control plane so far (reconnections included).
    pub sessions_opened: u64,
    /// Whether a session is open now.
    pub connected: bool,
}

/// How [`run_with`] runs an agent, besides its configuration.
#[derive(Default)]
pub struct RunOptions {
    /// An HTTP client to share with other agents in this process (one per agent if
    /// `None`).
    pub http: Option<HttpClient>,
    /// Told of registration and of every session opened and lost.
    pub status: Option<watch::Sender<AgentStatus>>,
}

/// Runs the agent until `shutdown` turns true.
pub async fn run(
    config: AgentConfig,
    runtime: Arc<dyn Runtime>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    run_with(config, runtime, RunOptions::default(), shutdown).await
}

/// [`run`], with an HTTP client shared with other agents and a status channel.
pub async fn run_with(
    config: AgentConfig,
    runtime: Arc<dyn Runtime>,
    options: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let signer = Signer::new(
        &config.access_key_id,
        &config.secret_access_key,
        &config.region,
    );
    let client = match options.http {
        Some(http) => ApiClient::with_http(&config.endpoint, signer, http)?,
        None => ApiClient::new(&config.endpoint, signer)?,
    };
    let Some(identity) = register(&config, &client, runtime.as_ref(), &mut shutdown).await? else {
        return Ok(());
    };
    tracing::info!(instance = %identity.container_instance_arn, cluster = %identity.cluster_arn, "registered");
    if let Some(status) = &options.status {
        status.send_modify(|status| status.identity = Some(identity.clone()));
    }
    let (reports, reports_rx) = mpsc::channel(4096);
    let engine = Arc::new(TaskEngine::with_config(
        runtime,
        EngineIdentity {
            cluster_arn: identity.cluster_arn.clone(),
            instance_arn: identity.container_instance_arn.clone(),
        },
        EngineConfig {
            pull_policy: config.pull_policy,
            ..EngineConfig::default()
        },
        reports,
    ));
    match engine.adopt().await {
        Ok(adopted) if !adopted.is_empty() => {
            tracing::info!(tasks = adopted.len(), "re-adopted running tasks")
        }
        Ok(_) => {}
        Err(err) => tracing::error!(%err, "cannot list the containers this instance owns"),
    }
    let session = SessionLoop {
        client,
        engine: Arc::clone(&engine),
        cluster_arn: identity.cluster_arn,
        instance_arn: identity.container_instance_arn,
        reports: reports_rx,
        status: options.status,
    };
    session.run(shutdown).await;
    engine.shutdown().await;
    Ok(())
}

//! Simulated container instances: many agents in one process, each the real agent
//! ([`crate::agent::run_with`]: registration, its own identity and data directory, its
//! own session, its task engine and state reports) on a [`FakeRuntime`] instead of
//! Docker, against a real control plane. For tests and benchmarks at scale.
//!
//! All agents share the caller's tokio runtime and one HTTP client (a small pool of
//! keep-alive connections for the API calls); each keeps its own session WebSocket.
//! An idle simulated agent costs a few tens of kilobytes.
//!
//! ```no_run
//! # async fn example() -> Result<(), berth_agent::sim::SimError> {
//! use berth_agent::sim::{SimConfig, Simulation};
//! let mut sim = Simulation::new(SimConfig::new("http://127.0.0.1:7474", "default", "AKIA...", "SECRET"))?;
//! sim.start_agents(1000);
//! let arns = sim.wait_connected(std::time::Duration::from_secs(60)).await?;
//! sim.kill(0); // drops its session abruptly, without deregistering
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::agent::{self, AgentConfig, AgentError, AgentStatus, RunOptions};
use crate::client::{HttpClient, http_client};
use crate::runtime::fake::FakeRuntime;
use crate::runtime::{HostInfo, PullPolicy};

/// Runtime events buffered per simulated host (a lagging engine resyncs).
const EVENT_CAPACITY: usize = 64;

/// How the simulated instances are set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The control plane, `http://HOST:PORT`.
    pub endpoint: String,
    pub cluster: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    /// Each agent's data directory is `data_root/agent-N`. On tmpfs by default
    /// (`/dev/shm` when there is one): an identity saved durably costs an fsync.
    pub data_root: PathBuf,
    /// CPUs and memory each simulated host reports.
    pub cpus: u32,
    pub memory_mib: u64,
    /// Custom attributes of every instance.
    pub attributes: Vec<(String, String)>,
    /// How many agents may be registering or opening their first session at once.
    pub start_concurrency: usize,
    /// Idle keep-alive connections kept by the shared HTTP client.
    pub max_idle_connections: usize,
}

impl SimConfig {
    pub fn new(endpoint: &str, cluster: &str, access_key_id: &str, secret: &str) -> Self {
        let shm = PathBuf::from("/dev/shm");
        let parent = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        Self {
            endpoint: endpoint.to_owned(),
            cluster: cluster.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret.to_owned(),
            region: "us-east-1".to_owned(),
            data_root: parent.join(format!("berth-sim-{}", uuid::Uuid::new_v4().simple())),
            cpus: 4,
            memory_mib: 16 * 1024,
            attributes: Vec::new(),
            start_concurrency: 64,
            max_idle_connections: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Agent(#[from] AgentError),
    #[error("the data directory: {0}")]
    DataDir(#[from] std::io::Error),
    #[error("{pending} of {total} simulated agents not connected within {within:?}{detail}")]
    NotConnected {
        pending: usize,
        total: usize,
        within: Duration,
        detail: String,
    },
}

/// One simulated container instance.
pub struct SimAgent {
    index: usize,
    runtime: FakeRuntime,
    status: watch::Receiver<AgentStatus>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), AgentError>>>,
}

impl SimAgent {
    pub fn index(&self) -> usize {
        self.index
    }

    /// The simulated host: its containers, and the means to make them exit.
    pub fn runtime(&self) -> &FakeRuntime {
        &self.runtime
    }

    pub fn status(&self) -> AgentStatus {
        self.status.borrow().clone()
    }

    /// The container instance ARN, once registered.
    pub fn instance_arn(&self) -> Option<String> {
        self.status
            .borrow()
            .identity
            .as_ref()
            .map(|identity| identity.container_instance_arn.clone())
    }

    /// Whether the agent still runs (it was neither killed nor stopped, and did not fail).
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|task| !task.is_finished())
    }
}

/// Many simulated agents in this process.
pub struct Simulation {
    config: SimConfig,
    http: HttpClient,
    gate: Arc<Semaphore>,
    agents: Vec<SimAgent>,
}

impl Simulation {
    pub fn new(config: SimConfig) -> Result<Self, SimError> {
        std::fs::create_dir_all(&config.data_root)?;
        Ok(Self {
            http: http_client(config.max_idle_connections),
            gate: Arc::new(Semaphore::new(config.start_concurrency.max(1))),
            config,
            agents: Vec::new(),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn agent(&self, index: usize) -> Option<&SimAgent> {
        self.agents.get(index)
    }

    pub fn agents(&self) -> &[SimAgent] {
        &self.agents
    }

    /// The simulated agent that registered as `instance_arn`.
    pub fn agent_of(&self, instance_arn: &str) -> Option<&SimAgent> {
        self.agents
            .iter()
            .find(|agent| agent.instance_arn().as_deref() == Some(instance_arn))
    }

    /// Starts `count` more agents (each a new container instance); returns the
    /// indices of the new ones. Must be called within a tokio runtime.
    pub fn start_agents(&mut self, count: usize) -> std::ops::Range<usize> {
        let first = self.agents.len();
        for index in first..first + count {
            let agent = self.spawn(index);
            self.agents.push(agent);
        }
        first..first + count
    }

    fn spawn(&self, index: usize) -> SimAgent {
        let hostname = format!("sim-{index:05}");
        let runtime = FakeRuntime::with_event_capacity(
            HostInfo {
                cpus: self.config.cpus,
                memory_bytes: self.config.memory_mib << 20,
                hostname,
                ..FakeRuntime::default_host_info()
            },
            EVENT_CAPACITY,
        );
        runtime.set_auto_pull(true);
        let config = AgentConfig {
            endpoint: self.config.endpoint.clone(),
            cluster: self.config.cluster.clone(),
            data_dir: self.config.data_root.join(format!("agent-{index}")),
            access_key_id: self.config.access_key_id.clone(),
            secret_access_key: self.config.secret_access_key.clone(),
            region: self.config.region.clone(),
            attributes: self.config.attributes.clone(),
            reserved_memory_mib: 0,
            reserved_ports: Vec::new(),
            pull_policy: PullPolicy::Once,
        };
        let (status_tx, status) = watch::channel(AgentStatus::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let options = RunOptions {
            http: Some(self.http.clone()),
            status: Some(status_tx),
        };
        let gate = Arc::clone(&self.gate);
        let mut started = status.clone();
        let agent_runtime: Arc<dyn crate::runtime::Runtime> = Arc::new(runtime.clone());
        let task = tokio::spawn(async move {
            // Hold a permit until the first session is open, so that thousands of
            // agents starting at once come up in waves rather than all together.
            let permit = gate.acquire_owned().await;
            let run = agent::run_with(config, agent_runtime, options, shutdown_rx);
            tokio::pin!(run);
            tokio::select! {
                result = &mut run => return result,
                _ = started.wait_for(|s| s.sessions_opened > 0) => {}
            }
            drop(permit);
            run.await
        });
        SimAgent {
            index,
            runtime,
            status,
            shutdown,
            task: Some(task),
        }
    }

    /// Waits until every running agent has registered and has a session open; returns
    /// the instance ARNs of all agents (killed ones included), in agent order.
    pub async fn wait_connected(&self, within: Duration) -> Result<Vec<String>, SimError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let pending: Vec<&SimAgent> = self
                .agents
                .iter()
                .filter(|agent| agent.is_running() && !agent.status().connected)
                .collect();
            if pending.is_empty() {
                return Ok(self
                    .agents
                    .iter()
                    .map(|agent| agent.instance_arn().unwrap_or_default())
                    .collect());
            }
            if tokio::time::Instant::now() >= deadline {
                let failed: Vec<String> = self
                    .agents
                    .iter()
                    .filter(|agent| agent.task.as_ref().is_some_and(|t| t.is_finished()))
                    .map(|agent| agent.index.to_string())
                    .take(5)
                    .collect();
                return Err(SimError::NotConnected {
                    pending: pending.len(),
                    total: self.agents.len(),
                    within,
                    detail: if failed.is_empty() {
                        String::new()
                    } else {
                        format!("; agents that ended: {}", failed.join(", "))
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills agent `index` abruptly, as a host that lost power: its session is
    /// dropped without a close (the TCP connection just ends), it does not
    /// deregister, and its simulated containers stay as they were.
    pub fn kill(&mut self, index: usize) {
        if let Some(task) = self.agents.get_mut(index).and_then(|a| a.task.take()) {
            task.abort();
        }
    }

    /// Stops agent `index` as `berth agent` stops on SIGTERM: closes its session,
    /// leaves its containers running.
    pub async fn stop(&mut self, index: usize) -> Result<(), SimError> {
        let Some(agent) = self.agents.get_mut(index) else {
            return Ok(());
        };
        let _ = agent.shutdown.send(true);
        match agent.task.take() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(SimError::from),
                Err(_) => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Stops every agent and removes the data directories.
    pub async fn shutdown(mut self) {
        for agent in &self.agents {
            let _ = agent.shutdown.send(true);
        }
        for agent in &mut self.agents {
            if let Some(task) = agent.task.take() {
                let _ = task.await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.config.data_root);
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            if let Some(task) = agent.task.take() {
                task.abort();
            }
        }
        let _ = std::fs::remove_dir_all(&self.config.data_root);
    }
}

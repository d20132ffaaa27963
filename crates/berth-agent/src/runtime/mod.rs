//! The container runtime the agent drives. `docker` is the real one (the Docker
//! Engine API through bollard); `fake` keeps containers in memory, for tests and for
//! simulating thousands of hosts in one process.
//!
//! The trait speaks in terms of one host's containers; of tasks it knows only their
//! ids, for the cgroup that holds a task's containers ([`Runtime::ensure_task_cgroup`]).
//! Translating a task's container definitions into [`ContainerSpec`]s is `spec.rs`'s job.

pub mod cgroup;
pub mod docker;
pub mod fake;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::BoxStream;

/// What can go wrong talking to the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The image is not on the host and could not be pulled.
    #[error("CannotPullContainerError: {0}")]
    Pull(String),
    /// The engine refused to create the container (bad configuration, name taken...).
    #[error("CannotCreateContainerError: {0}")]
    Create(String),
    /// The engine refused to start the container.
    #[error("CannotStartContainerError: {0}")]
    Start(String),
    #[error("no such container: {0}")]
    NotFound(String),
    /// The engine cannot be reached or failed.
    #[error("container runtime failure: {0}")]
    Engine(String),
    /// The task's cgroup cannot be made or removed.
    #[error("task cgroup: {0}")]
    TaskCgroup(String),
}

/// ECS's image pull behaviours (ECS_IMAGE_PULL_BEHAVIOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull; if the pull fails, use a cached image if there is one.
    #[default]
    Default,
    /// Always pull; fail if the pull fails.
    Always,
    /// Pull only if the image is not cached.
    Once,
    /// Use the cached image if there is one; pull otherwise.
    PreferCached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPublish {
    pub container_port: u16,
    /// `None`: the engine picks a free host port (ECS's hostPort 0 / dynamic).
    pub host_port: Option<u16>,
    pub protocol: Protocol,
    /// Host address to bind; `None` means all addresses.
    pub host_ip: Option<String>,
}

/// A port as actually bound on the host (ECS's NetworkBinding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBound {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
    pub bind_ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Docker's default bridge network.
    Bridge,
    Host,
    None,
    /// Share another container's network namespace (`container:<id or name>`).
    Container(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// A path on the host (ECS `host.sourcePath`).
    HostPath(String),
    /// A named Docker volume (ECS dockerVolumeConfiguration, or a task-scoped volume).
    Volume(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: MountSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// ECS's healthCheck, in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// As ECS gives it: `["CMD-SHELL", "..."]` or `["CMD", ...]`.
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    /// The container's name on the host (unique; berth derives it from the task id).
    pub name: String,
    pub image: String,
    /// Labels identifying the owner (cluster, task, container, instance) and dockerLabels.
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub command: Option<Vec<String>>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `host:ip`.
    pub extra_hosts: Vec<String>,
    pub network_mode: Option<NetworkMode>,
    pub ports: Vec<PortPublish>,
    /// Docker links, `name:alias`.
    pub links: Vec<String>,
    pub dns_servers: Vec<String>,
    pub dns_search: Vec<String>,
    /// CPU shares (ECS container cpu units; Docker's minimum is 2).
    pub cpu_shares: Option<i64>,
    /// Hard limit, bytes.
    pub memory: Option<i64>,
    /// Soft limit, bytes.
    pub memory_reservation: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    pub mounts: Vec<Mount>,
    /// Containers whose volumes this one mounts (`name[:ro]`).
    pub volumes_from: Vec<String>,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    /// Run an init process as PID 1 (ECS linuxParameters.initProcessEnabled).
    pub init: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    /// Bytes of /dev/shm.
    pub shm_size: Option<i64>,
    pub tty: bool,
    pub open_stdin: bool,
    pub security_opt: Vec<String>,
    pub health_check: Option<HealthCheckSpec>,
    /// Disable networking entirely.
    pub network_disabled: bool,
    /// PID namespace: `host`, or `container:<id>`.
    pub pid_mode: Option<String>,
    pub ipc_mode: Option<String>,
    /// The cgroup the container's own cgroup is created under: its task's, which
    /// carries the task-level limits ([`Runtime::ensure_task_cgroup`]).
    pub cgroup_parent: Option<String>,
}

/// A task's task-level `cpu` and `memory`, enforced as one limit on all of its
/// containers together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskLimits {
    /// CPU units (1024 to a vCPU): a CFS quota of `cpu_units / 1024` CPUs.
    pub cpu_units: Option<u32>,
    /// A hard memory limit, MiB.
    pub memory_mib: Option<u32>,
}

impl TaskLimits {
    /// Zero means no limit, as it does for ECS.
    pub fn new(cpu_units: Option<u32>, memory_mib: Option<u32>) -> Self {
        Self {
            cpu_units: cpu_units.filter(|u| *u > 0),
            memory_mib: memory_mib.filter(|m| *m > 0),
        }
    }

    /// Whether the task sets no limit (and needs no cgroup of its own).
    pub fn is_none(&self) -> bool {
        self.cpu_units.is_none() && self.memory_mib.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    /// Exited, dead or removed-while-watching: it will not run again by itself.
    Exited,
}

/// What the runtime knows of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub status: Status,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The engine's error, if the container failed to run.
    pub error: Option<String>,
    /// Epoch seconds.
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub health: Option<Health>,
    pub ports: Vec<PortBound>,
}

/// A change the runtime saw, delivered as it happens (the agent does not poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    Started {
        id: String,
    },
    /// The container stopped running (exit, kill, OOM); inspect for the details.
    Died {
        id: String,
    },
    Health {
        id: String,
        health: Health,
    },
    /// The engine's event stream broke and was re-established: some events may have
    /// been missed, so the agent re-inspects what it owns.
    Resync,
}

/// Facts about the host, for registering it as a container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub cpus: u32,
    pub memory_bytes: u64,
    /// e.g. "linux".
    pub os_type: String,
    /// e.g. "x86_64".
    pub architecture: String,
    pub hostname: String,
    /// The engine's version, e.g. "20.10.24".
    pub engine_version: String,
    pub kernel_version: String,
}

/// A container runtime on one host.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    async fn host_info(&self) -> Result<HostInfo, RuntimeError>;

    /// Makes `image` available locally, following `policy`.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError>;

    /// Creates a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    async fn start(&self, id: &str) -> Result<(), RuntimeError>;

    /// Sends SIGTERM (or the image's stop signal), then SIGKILL after `timeout`, and
    /// returns once the container has stopped. Stopping a stopped container is fine.
    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;

    /// Removes a stopped container (and its anonymous volumes).
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError>;

    /// Every container (running or not) carrying all of `labels`.
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerState>, RuntimeError>;

    /// Creates a named volume if it does not exist (task-scoped and docker volumes).
    async fn ensure_volume(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError>;

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;

    /// Creates the cgroup of task `task_id` with `limits` (or finds it, setting the
    /// limits again) and returns the cgroup parent to create the task's containers
    /// with. `None` when this host cannot give tasks cgroups of their own: the
    /// containers then have their own limits only (the implementation says why, once).
    async fn ensure_task_cgroup(
        &self,
        task_id: &str,
        limits: &TaskLimits,
    ) -> Result<Option<String>, RuntimeError>;

    /// Removes the cgroup of task `task_id`, once its containers are removed.
    /// Removing one that does not exist is fine.
    async fn remove_task_cgroup(&self, task_id: &str) -> Result<(), RuntimeError>;

    /// Events about containers, from the time of the call on.
    fn events(&self) -> BoxStream<'static, RuntimeEvent>;
}

//! The real runtime: the Docker Engine API through bollard.
//!
//! The engines berth meets may be as old as API 1.41 (Docker 20.10), older than the
//! version bollard asks for by default, so [`DockerRuntime::connect`] negotiates.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, EventMessage,
    EventMessageTypeEnum, HealthConfig, HealthStatusEnum, HostConfig, PortBinding, PortMap,
    ResourcesUlimits, VolumeCreateOptions,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, InspectContainerOptions,
    ListContainersOptions, RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
    WaitContainerOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::cgroup::{self, CgroupError, CgroupValues, Layout, mountinfo};
use super::{
    ContainerSpec, ContainerState, Health, HealthCheckSpec, HostInfo, MountSource, NetworkMode,
    PortBound, Protocol, PullPolicy, Runtime, RuntimeError, RuntimeEvent, Status, TaskLimits,
};

/// Docker's smallest accepted CPU shares value.
const MIN_CPU_SHARES: i64 = 2;

/// How long a stop call may take beyond the stop timeout before the client gives up.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// Delays between attempts to re-establish a broken event stream.
const EVENTS_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const EVENTS_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Attempts at removing a task cgroup whose last process is still leaving, and the
/// first delay between them (doubling).
const CGROUP_REMOVE_ATTEMPTS: u32 = 6;
const CGROUP_REMOVE_BACKOFF: Duration = Duration::from_millis(50);

/// The Docker engine of this host.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    /// How this host makes task cgroups (`None`: it cannot), found out on first use.
    cgroups: Arc<tokio::sync::OnceCell<Option<Arc<Layout>>>>,
}

impl DockerRuntime {
    /// Connects to the engine named by `DOCKER_HOST` (the local socket when unset) and
    /// settles on an API version both sides speak.
    pub async fn connect() -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_defaults().map_err(engine)?;
        Self::with_client(docker).await
    }

    /// Uses an already configured client, negotiating the API version.
    pub async fn with_client(docker: Docker) -> Result<Self, RuntimeError> {
        let docker = docker.negotiate_version().await.map_err(engine)?;
        tracing::debug!(api_version = %docker.client_version(), "connected to the Docker engine");
        Ok(Self {
            docker,
            cgroups: Arc::default(),
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn image_cached(&self, reference: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(engine(e)),
        }
    }

    /// The host's task cgroup layout, found out once: from the engine's cgroup driver
    /// and version and the hierarchies mounted here. A host that cannot have task
    /// cgroups is said so once, as a warning.
    pub async fn task_cgroup_layout(&self) -> Result<Option<Arc<Layout>>, RuntimeError> {
        let layout = self
            .cgroups
            .get_or_try_init(|| async {
                let info = self.docker.info().await.map_err(engine)?;
                let driver = info
                    .cgroup_driver
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                let version = info
                    .cgroup_version
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                Ok::<_, RuntimeError>(match detect_layout(&driver, &version) {
                    Ok(layout) => {
                        tracing::info!(
                            ?layout,
                            "task-level cpu and memory are enforced by a cgroup per task under /{}",
                            cgroup::PARENT
                        );
                        Some(Arc::new(layout))
                    }
                    Err(reason) => {
                        tracing::warn!(
                            %reason,
                            "task-level cpu and memory cannot be enforced on this host: a task's \
                             containers are limited by their own cpu and memory only"
                        );
                        None
                    }
                })
            })
            .await?;
        Ok(layout.clone())
    }

    async fn pull(&self, reference: &str) -> Result<(), RuntimeError> {
        tracing::info!(image = reference, "pulling image");
        let options = CreateImageOptions {
            from_image: Some(reference.to_owned()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            if let Err(e) = item {
                return Err(RuntimeError::Pull(format!(
                    "{reference}: {}",
                    message_of(&e)
                )));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    async fn host_info(&self) -> Result<HostInfo, RuntimeError> {
        let info = self.docker.info().await.map_err(engine)?;
        Ok(HostInfo {
            cpus: info
                .ncpu
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            memory_bytes: info
                .mem_total
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or_default(),
            os_type: info.os_type.unwrap_or_default(),
            architecture: info.architecture.unwrap_or_default(),
            hostname: info.name.unwrap_or_default(),
            engine_version: info.server_version.unwrap_or_default(),
            kernel_version: info.kernel_version.unwrap_or_default(),
        })
    }

    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        let reference = with_default_tag(image);
        let cached = self.image_cached(&reference).await?;
        match policy {
            PullPolicy::Once | PullPolicy::PreferCached if cached => Ok(()),
            PullPolicy::Once | PullPolicy::PreferCached | PullPolicy::Always => {
                self.pull(&reference).await
            }
            PullPolicy::Default => match self.pull(&reference).await {
                Err(e) if cached => {
                    tracing::warn!(image = %reference, error = %e, "pull failed; using the cached image");
                    Ok(())
                }
                result => result,
            },
        }
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), create_body(spec))
            .await
            .map_err(|e| match e {
                DockerError::DockerResponseServerError { message, .. } => {
                    RuntimeError::Create(message)
                }
                e => engine(e),
            })?;
        for warning in &created.warnings {
            tracing::warn!(container = %spec.name, warning = %warning, "engine warning on create");
        }
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| match e {
                e if status_of(&e) == Some(404) => RuntimeError::NotFound(id.to_owned()),
                DockerError::DockerResponseServerError { message, .. } => {
                    RuntimeError::Start(message)
                }
                e => engine(e),
            })
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let options = StopContainerOptions {
            t: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        // The engine answers once the container has stopped, which may take the whole
        // timeout: give the call more than the client's default.
        let client = self.docker.clone().with_timeout(timeout + STOP_GRACE);
        client
            .stop_container(id, Some(options))
            .await
            .map_err(|e| not_found_or_engine(e, id))?;
        // Docker's stop has already waited; this makes the contract explicit and cheap.
        let wait = WaitContainerOptions {
            condition: "not-running".to_owned(),
        };
        match client.wait_container(id, Some(wait)).next().await {
            None
            | Some(Ok(_))
            | Some(Err(DockerError::DockerContainerWaitError { .. }))
            | Some(Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(()),
            Some(Err(e)) => Err(engine(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            v: true,
            ..Default::default()
        };
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| not_found_or_engine(e, id))
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let found = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| not_found_or_engine(e, id))?;
        Ok(state_from_inspect(found))
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerState>, RuntimeError> {
        let filters = (!labels.is_empty()).then(|| {
            HashMap::from([(
                "label".to_owned(),
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            )])
        });
        let options = ListContainersOptions {
            all: true,
            filters,
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine)?;
        // The summaries lack exit codes, OOM and health: inspect each one.
        let mut states = Vec::with_capacity(summaries.len());
        for id in summaries.into_iter().filter_map(|s| s.id) {
            match self.inspect(&id).await {
                Ok(state) => states.push(state),
                // Removed between the list and the inspect.
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(states)
    }

    async fn ensure_volume(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(engine(e)),
        }
        // Creating an existing volume with the same driver is a no-op for the engine,
        // so a concurrent creator is harmless.
        let options = VolumeCreateOptions {
            name: Some(name.to_owned()),
            driver: driver.map(str::to_owned),
            labels: Some(to_hash_map(labels)),
            ..Default::default()
        };
        self.docker
            .create_volume(options)
            .await
            .map(drop)
            .map_err(engine)
    }

    /// Removing a volume that does not exist is fine.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn ensure_task_cgroup(
        &self,
        task_id: &str,
        limits: &TaskLimits,
    ) -> Result<Option<String>, RuntimeError> {
        if limits.is_none() {
            return Ok(None);
        }
        let Some(layout) = self.task_cgroup_layout().await? else {
            return Ok(None);
        };
        let path = cgroup::task_cgroup_path(task_id).ok_or_else(|| {
            RuntimeError::TaskCgroup(CgroupError::InvalidTaskId(task_id.to_owned()).to_string())
        })?;
        layout
            .create(task_id, &CgroupValues::of(limits))
            .map_err(|e| RuntimeError::TaskCgroup(e.to_string()))?;
        Ok(Some(path))
    }

    /// A process may still be leaving the cgroup when the container is removed: a busy
    /// cgroup is tried again a few times.
    async fn remove_task_cgroup(&self, task_id: &str) -> Result<(), RuntimeError> {
        let Some(layout) = self.task_cgroup_layout().await? else {
            return Ok(());
        };
        let mut delay = CGROUP_REMOVE_BACKOFF;
        let mut attempt = 1;
        loop {
            match layout.remove(task_id) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_busy() && attempt < CGROUP_REMOVE_ATTEMPTS => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(RuntimeError::TaskCgroup(e.to_string())),
            }
        }
    }

    fn events(&self) -> BoxStream<'static, RuntimeEvent> {
        let state = EventsState {
            docker: self.docker.clone(),
            since_nanos: now_nanos(),
            stream: None,
            failures: 0,
            broken: false,
        };
        futures::stream::unfold(state, next_event).boxed()
    }
}

/// The task cgroup layout of this host, or why it has none.
fn detect_layout(driver: &str, version: &str) -> Result<Layout, String> {
    if let Ok(host) = std::env::var("DOCKER_HOST")
        && !host.is_empty()
        && !host.starts_with("unix://")
    {
        return Err(format!(
            "the Docker engine ({host}) may be on another host, whose cgroups are not the agent's"
        ));
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    let layout = Layout::detect(driver, version, &mountinfo::cgroup_mounts(&text))
        .map_err(|e| e.to_string())?;
    layout
        .prepare()
        .map_err(|e| format!("cannot create the /{} cgroup: {e}", cgroup::PARENT))?;
    Ok(layout)
}

/// The engine's event stream, re-established when it breaks. Each (re)subscription
/// asks for the events since the last one seen, so the engine replays from its buffer
/// what happened in between; a `Resync` still tells the agent to re-inspect, since the
/// buffer is bounded.
struct EventsState {
    docker: Docker,
    /// Subscribe from this time on (nanoseconds since the epoch).
    since_nanos: i64,
    stream: Option<BoxStream<'static, Result<EventMessage, DockerError>>>,
    /// Consecutive failed attempts, for the backoff.
    failures: u32,
    /// The stream broke: a `Resync` is owed once it is back.
    broken: bool,
}

async fn next_event(mut st: EventsState) -> Option<(RuntimeEvent, EventsState)> {
    loop {
        let Some(stream) = st.stream.as_mut() else {
            if st.failures > 0 {
                tokio::time::sleep(backoff(st.failures)).await;
            }
            if st.broken {
                // Make sure the engine answers before claiming the stream is back.
                if let Err(e) = st.docker.ping().await {
                    tracing::warn!(error = %e, "Docker engine unreachable; retrying the event stream");
                    st.failures = st.failures.saturating_add(1);
                    continue;
                }
            }
            st.stream = Some(subscribe(&st.docker, st.since_nanos));
            if st.broken {
                st.broken = false;
                return Some((RuntimeEvent::Resync, st));
            }
            continue;
        };
        match stream.next().await {
            Some(Ok(message)) => {
                st.failures = 0;
                if let Some(t) = message.time_nano {
                    st.since_nanos = st.since_nanos.max(t.saturating_add(1));
                }
                if let Some(event) = runtime_event(&message) {
                    return Some((event, st));
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Docker event stream broke; reconnecting");
                if matches!(
                    e,
                    DockerError::JsonSerdeError { .. } | DockerError::JsonDataError { .. }
                ) {
                    // Replaying would meet the same unreadable event again: skip past it.
                    st.since_nanos = st.since_nanos.max(now_nanos());
                }
                st.stream = None;
                st.failures = st.failures.saturating_add(1);
                st.broken = true;
            }
            None => {
                tracing::warn!("Docker event stream ended; reconnecting");
                st.stream = None;
                st.failures = st.failures.saturating_add(1);
                st.broken = true;
            }
        }
    }
}

fn subscribe(
    docker: &Docker,
    since_nanos: i64,
) -> BoxStream<'static, Result<EventMessage, DockerError>> {
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        (
            "event".to_owned(),
            ["start", "die", "oom", "health_status"]
                .map(str::to_owned)
                .to_vec(),
        ),
    ]);
    let options = EventsOptions {
        since: Some(format!(
            "{}.{:09}",
            since_nanos.div_euclid(1_000_000_000),
            since_nanos.rem_euclid(1_000_000_000)
        )),
        until: None,
        filters: Some(filters),
    };
    docker.events(Some(options)).boxed()
}

fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    EVENTS_BACKOFF_FIRST
        .saturating_mul(factor)
        .min(EVENTS_BACKOFF_MAX)
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Translates one of the engine's events; `None` for those the agent does not need.
fn runtime_event(message: &EventMessage) -> Option<RuntimeEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let id = message.actor.as_ref()?.id.clone()?;
    let action = message.action.as_deref()?;
    match action {
        "start" => Some(RuntimeEvent::Started { id }),
        "die" => Some(RuntimeEvent::Died { id }),
        // A `die` follows when the killed process was the container's main one; an
        // OOM kill of a child leaves the container running.
        "oom" => {
            tracing::debug!(container = %id, "OOM kill in container");
            None
        }
        _ => {
            let status = action.strip_prefix("health_status:")?.trim();
            let health = match status {
                "healthy" => Health::Healthy,
                "unhealthy" => Health::Unhealthy,
                "starting" => Health::Starting,
                _ => return None,
            };
            Some(RuntimeEvent::Health { id, health })
        }
    }
}

/// Adds `:latest` to a reference with neither tag nor digest: given only a name, the
/// engine would pull every tag of the repository.
fn with_default_tag(image: &str) -> String {
    if image.contains('@') {
        return image.to_owned();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn network_mode_name(mode: &NetworkMode) -> String {
    match mode {
        NetworkMode::Bridge => "bridge".to_owned(),
        NetworkMode::Host => "host".to_owned(),
        NetworkMode::None => "none".to_owned(),
        NetworkMode::Container(other) => format!("container:{other}"),
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn health_config(check: &HealthCheckSpec) -> HealthConfig {
    HealthConfig {
        test: Some(check.test.clone()),
        interval: Some(nanos(check.interval)),
        timeout: Some(nanos(check.timeout)),
        retries: Some(i64::from(check.retries)),
        start_period: Some(nanos(check.start_period)),
        start_interval: None,
    }
}

fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn non_empty<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

/// The Engine API's create body for `spec`.
fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mut exposed_ports: HashMap<String, HashMap<(), ()>> = HashMap::new();
    let mut port_bindings: PortMap = HashMap::new();
    for publish in &spec.ports {
        let key = format!(
            "{}/{}",
            publish.container_port,
            protocol_name(publish.protocol)
        );
        exposed_ports.insert(key.clone(), HashMap::new());
        port_bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: publish.host_ip.clone(),
                // An empty host port asks the engine for a free one.
                host_port: Some(publish.host_port.map(|p| p.to_string()).unwrap_or_default()),
            });
    }

    let binds: Vec<String> = spec
        .mounts
        .iter()
        .map(|mount| {
            let source = match &mount.source {
                MountSource::HostPath(path) => path,
                MountSource::Volume(name) => name,
            };
            let mode = if mount.read_only { ":ro" } else { "" };
            format!("{source}:{}{mode}", mount.target)
        })
        .collect();

    let ulimits: Vec<ResourcesUlimits> = spec
        .ulimits
        .iter()
        .map(|u| ResourcesUlimits {
            name: Some(u.name.clone()),
            soft: Some(u.soft),
            hard: Some(u.hard),
        })
        .collect();

    let host_config = HostConfig {
        cpu_shares: spec.cpu_shares.map(|s| s.max(MIN_CPU_SHARES)),
        memory: spec.memory,
        memory_reservation: spec.memory_reservation,
        ulimits: non_empty(&ulimits),
        binds: non_empty(&binds),
        volumes_from: non_empty(&spec.volumes_from),
        readonly_rootfs: spec.readonly_rootfs.then_some(true),
        privileged: spec.privileged.then_some(true),
        init: spec.init.then_some(true),
        cap_add: non_empty(&spec.cap_add),
        cap_drop: non_empty(&spec.cap_drop),
        sysctls: (!spec.sysctls.is_empty()).then(|| to_hash_map(&spec.sysctls)),
        shm_size: spec.shm_size,
        network_mode: spec.network_mode.as_ref().map(network_mode_name),
        port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
        links: non_empty(&spec.links),
        dns: non_empty(&spec.dns_servers),
        dns_search: non_empty(&spec.dns_search),
        extra_hosts: non_empty(&spec.extra_hosts),
        security_opt: non_empty(&spec.security_opt),
        pid_mode: spec.pid_mode.clone(),
        ipc_mode: spec.ipc_mode.clone(),
        cgroup_parent: spec.cgroup_parent.clone(),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: non_empty(&spec.env),
        working_dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        hostname: spec.hostname.clone(),
        labels: Some(to_hash_map(&spec.labels)),
        tty: spec.tty.then_some(true),
        open_stdin: spec.open_stdin.then_some(true),
        network_disabled: spec.network_disabled.then_some(true),
        healthcheck: spec.health_check.as_ref().map(health_config),
        exposed_ports: (!exposed_ports.is_empty()).then_some(exposed_ports),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// Docker's times are RFC 3339; its zero time ("0001-01-01T00:00:00Z") means never.
fn epoch_seconds(time: Option<&str>) -> Option<f64> {
    let time = time?;
    if time.is_empty() || time.starts_with("0001-01-01") {
        return None;
    }
    let parsed = OffsetDateTime::parse(time, &Rfc3339).ok()?;
    Some(parsed.unix_timestamp_nanos() as f64 / 1e9)
}

fn bound_ports(ports: Option<PortMap>) -> Vec<PortBound> {
    let mut bound = Vec::new();
    for (key, bindings) in ports.unwrap_or_default() {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            // sctp: not something ECS publishes.
            _ => continue,
        };
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        for binding in bindings.unwrap_or_default() {
            let Some(host_port) = binding.host_port.and_then(|p| p.parse::<u16>().ok()) else {
                continue;
            };
            bound.push(PortBound {
                container_port,
                host_port,
                protocol,
                bind_ip: binding.host_ip.unwrap_or_default(),
            });
        }
    }
    bound.sort_by(|a, b| {
        (a.container_port, a.protocol, a.host_port, &a.bind_ip).cmp(&(
            b.container_port,
            b.protocol,
            b.host_port,
            &b.bind_ip,
        ))
    });
    bound
}

fn state_from_inspect(found: ContainerInspectResponse) -> ContainerState {
    let state = found.state.unwrap_or_default();
    let status = match state.status {
        Some(ContainerStateStatusEnum::CREATED) | Some(ContainerStateStatusEnum::EMPTY) | None => {
            Status::Created
        }
        Some(ContainerStateStatusEnum::RUNNING)
        | Some(ContainerStateStatusEnum::PAUSED)
        | Some(ContainerStateStatusEnum::RESTARTING) => Status::Running,
        Some(ContainerStateStatusEnum::REMOVING)
        | Some(ContainerStateStatusEnum::EXITED)
        | Some(ContainerStateStatusEnum::DEAD) => Status::Exited,
    };
    let health = state
        .health
        .and_then(|h| h.status)
        .and_then(|status| match status {
            HealthStatusEnum::STARTING => Some(Health::Starting),
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
        });
    let config = found.config.unwrap_or_default();
    ContainerState {
        id: found.id.unwrap_or_default(),
        name: found
            .name
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        image: config.image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        status,
        exit_code: (status == Status::Exited).then(|| state.exit_code.unwrap_or_default()),
        oom_killed: state.oom_killed.unwrap_or_default(),
        error: state.error.filter(|e| !e.is_empty()),
        started_at: epoch_seconds(state.started_at.as_deref()),
        finished_at: epoch_seconds(state.finished_at.as_deref()),
        health,
        ports: bound_ports(found.network_settings.and_then(|n| n.ports)),
    }
}

fn status_of(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own words when it gave any.
fn message_of(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        e => e.to_string(),
    }
}

fn engine(e: DockerError) -> RuntimeError {
    RuntimeError::Engine(message_of(&e))
}

fn not_found_or_engine(e: DockerError, id: &str) -> RuntimeError {
    if status_of(&e) == Some(404) {
        RuntimeError::NotFound(id.to_owned())
    } else {
        engine(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Mount, PortPublish, Ulimit};
    use bollard::models::{ContainerConfig, ContainerState as DockerState, EventActor};

    #[test]
    fn default_tag_is_added_only_when_missing() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("a/b:1"), "a/b:1");
        assert_eq!(
            with_default_tag("registry:5000/team/app"),
            "registry:5000/team/app:latest"
        );
        assert_eq!(
            with_default_tag("registry:5000/app:2"),
            "registry:5000/app:2"
        );
        assert_eq!(with_default_tag("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn spec_maps_onto_the_create_body() {
        let spec = ContainerSpec {
            name: "c".into(),
            image: "img:1".into(),
            labels: BTreeMap::from([("k".into(), "v".into())]),
            command: Some(vec!["sleep".into(), "5".into()]),
            ports: vec![
                PortPublish {
                    container_port: 80,
                    host_port: None,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                },
                PortPublish {
                    container_port: 80,
                    host_port: Some(8080),
                    protocol: Protocol::Tcp,
                    host_ip: Some("127.0.0.1".into()),
                },
                PortPublish {
                    container_port: 53,
                    host_port: Some(5353),
                    protocol: Protocol::Udp,
                    host_ip: None,
                },
            ],
            cpu_shares: Some(0),
            memory: Some(32 << 20),
            mounts: vec![
                Mount {
                    source: MountSource::HostPath("/data".into()),
                    target: "/d".into(),
                    read_only: true,
                },
                Mount {
                    source: MountSource::Volume("vol".into()),
                    target: "/v".into(),
                    read_only: false,
                },
            ],
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048,
            }],
            network_mode: Some(NetworkMode::Container("other".into())),
            init: true,
            cgroup_parent: Some("/berth/t1".into()),
            health_check: Some(HealthCheckSpec {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Duration::from_secs(2),
                timeout: Duration::from_millis(1500),
                retries: 3,
                start_period: Duration::ZERO,
            }),
            ..Default::default()
        };
        let body = create_body(&spec);
        assert_eq!(body.image.as_deref(), Some("img:1"));
        assert_eq!(body.cmd, spec.command);
        assert_eq!(body.env, None);
        let exposed = body.exposed_ports.unwrap_or_default();
        assert!(exposed.contains_key("80/tcp") && exposed.contains_key("53/udp"));
        let health = body.healthcheck.unwrap_or_default();
        assert_eq!(health.interval, Some(2_000_000_000));
        assert_eq!(health.timeout, Some(1_500_000_000));
        assert_eq!(health.retries, Some(3));
        assert_eq!(
            health.test,
            Some(vec!["CMD-SHELL".to_owned(), "true".to_owned()])
        );

        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.cpu_shares, Some(MIN_CPU_SHARES));
        assert_eq!(host.memory, Some(32 << 20));
        assert_eq!(host.init, Some(true));
        assert_eq!(host.cgroup_parent.as_deref(), Some("/berth/t1"));
        assert_eq!(host.privileged, None);
        assert_eq!(host.network_mode.as_deref(), Some("container:other"));
        assert_eq!(
            host.binds,
            Some(vec!["/data:/d:ro".to_owned(), "vol:/v".to_owned()])
        );
        let ports = host.port_bindings.unwrap_or_default();
        let http = ports.get("80/tcp").cloned().flatten().unwrap_or_default();
        assert_eq!(http.len(), 2);
        assert_eq!(http[0].host_port.as_deref(), Some(""));
        assert_eq!(http[1].host_port.as_deref(), Some("8080"));
        assert_eq!(http[1].host_ip.as_deref(), Some("127.0.0.1"));
        let ulimits = host.ulimits.unwrap_or_default();
        assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
        assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(2048)));
    }

    #[test]
    fn inspect_maps_onto_the_state() {
        let found = ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some("/web".into()),
            config: Some(ContainerConfig {
                image: Some("img:1".into()),
                labels: Some(HashMap::from([("k".into(), "v".into())])),
                ..Default::default()
            }),
            state: Some(DockerState {
                status: Some(ContainerStateStatusEnum::EXITED),
                exit_code: Some(137),
                oom_killed: Some(true),
                error: Some(String::new()),
                started_at: Some("2024-05-07T21:09:36.5Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            network_settings: Some(bollard::models::NetworkSettings {
                ports: Some(HashMap::from([
                    (
                        "80/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("0.0.0.0".into()),
                            host_port: Some("32768".into()),
                        }]),
                    ),
                    ("81/tcp".to_owned(), None),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let state = state_from_inspect(found);
        assert_eq!(state.name, "web");
        assert_eq!(state.image, "img:1");
        assert_eq!(state.status, Status::Exited);
        assert_eq!(state.exit_code, Some(137));
        assert!(state.oom_killed);
        assert_eq!(state.error, None);
        assert_eq!(state.started_at, Some(1_715_116_176.5));
        assert_eq!(state.finished_at, None);
        assert_eq!(
            state.ports,
            vec![PortBound {
                container_port: 80,
                host_port: 32768,
                protocol: Protocol::Tcp,
                bind_ip: "0.0.0.0".into(),
            }]
        );
    }

    #[test]
    fn events_translate() {
        let event = |action: &str| EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: None,
            }),
            ..Default::default()
        };
        let id = || "abc".to_owned();
        assert_eq!(
            runtime_event(&event("start")),
            Some(RuntimeEvent::Started { id: id() })
        );
        assert_eq!(
            runtime_event(&event("die")),
            Some(RuntimeEvent::Died { id: id() })
        );
        assert_eq!(
            runtime_event(&event("health_status: healthy")),
            Some(RuntimeEvent::Health {
                id: id(),
                health: Health::Healthy
            })
        );
        assert_eq!(
            runtime_event(&event("health_status: unhealthy")),
            Some(RuntimeEvent::Health {
                id: id(),
                health: Health::Unhealthy
            })
        );
        assert_eq!(runtime_event(&event("oom")), None);
        assert_eq!(runtime_event(&event("exec_start: sh")), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), EVENTS_BACKOFF_FIRST);
        assert_eq!(backoff(2), EVENTS_BACKOFF_FIRST * 2);
        assert_eq!(backoff(100), EVENTS_BACKOFF_MAX);
    }
}

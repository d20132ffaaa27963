//! An in-memory runtime with Docker's semantics, for unit tests of the task engine and
//! for simulating many hosts in one process.
//!
//! A started container "runs" until it is stopped or a test ends it
//! ([`FakeRuntime::exit`], [`FakeRuntime::oom`]). What a container does by itself is
//! declared with [`Behaviour`]s matched per image, per command or by any predicate on
//! its spec. Delays use tokio's clock, so tests can run with paused time.
//!
//! It differs from Docker where that keeps it simple and cheap: containers are found by
//! full id or name (not by id prefix), and every image is one reference with `:latest`
//! added when untagged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{Notify, broadcast};

use super::cgroup::task_cgroup_path;
use super::{
    ContainerSpec, ContainerState, Health, HostInfo, MountSource, NetworkMode, PortBound, Protocol,
    PullPolicy, Runtime, RuntimeError, RuntimeEvent, Status, TaskLimits,
};

/// Exit code of a process killed by SIGKILL (stop timeout, OOM).
pub const SIGKILL_EXIT_CODE: i64 = 137;
/// Exit code of a process that dies of SIGTERM.
pub const SIGTERM_EXIT_CODE: i64 = 143;

/// Docker's health check interval when the spec gives none.
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_EVENT_CAPACITY: usize = 1024;
/// Linux's default ephemeral port range, which Docker allocates from.
const DEFAULT_PORT_RANGE: RangeInclusive<u16> = 32768..=60999;

/// What a started container does by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// Runs until stopped or ended by the test.
    UntilStopped,
    /// Exits with `code` this long after start (immediately for zero).
    Exit { after: Duration, code: i64 },
    /// Is OOM-killed this long after start.
    Oom { after: Duration },
    /// The engine cannot start it (a missing executable, say): `start` fails with this.
    FailToStart(String),
}

/// What a running container does when sent SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSigterm {
    /// Exits with `code` this long after the signal; if that is longer than the stop
    /// timeout, it is killed at the timeout instead.
    Exit { after: Duration, code: i64 },
    /// Ignores it, so stop waits the whole timeout and kills it.
    Ignore,
}

/// What the health checks of a container with a health check report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthScript {
    /// Stays `Starting` until the test calls [`FakeRuntime::set_health`].
    Manual,
    /// Becomes `health` one check interval after start, when the first probe would run.
    FirstProbe(Health),
    /// Becomes `health` this long after start.
    After(Duration, Health),
}

/// How a container behaves once started. The default runs until stopped, dies of
/// SIGTERM at once, and turns healthy at its first health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    pub run: Run,
    pub on_sigterm: OnSigterm,
    pub health: HealthScript,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            run: Run::UntilStopped,
            on_sigterm: OnSigterm::Exit {
                after: Duration::ZERO,
                code: SIGTERM_EXIT_CODE,
            },
            health: HealthScript::FirstProbe(Health::Healthy),
        }
    }
}

impl Behaviour {
    /// Exits with `code` as soon as it starts.
    pub fn exits(code: i64) -> Self {
        Self::exits_after(Duration::ZERO, code)
    }

    pub fn exits_after(after: Duration, code: i64) -> Self {
        Self {
            run: Run::Exit { after, code },
            ..Self::default()
        }
    }

    pub fn oom_after(after: Duration) -> Self {
        Self {
            run: Run::Oom { after },
            ..Self::default()
        }
    }

    pub fn fails_to_start(message: impl Into<String>) -> Self {
        Self {
            run: Run::FailToStart(message.into()),
            ..Self::default()
        }
    }

    /// Runs until killed: stop takes the whole timeout.
    pub fn ignores_sigterm() -> Self {
        Self::default().with_sigterm(OnSigterm::Ignore)
    }

    pub fn with_sigterm(mut self, on_sigterm: OnSigterm) -> Self {
        self.on_sigterm = on_sigterm;
        self
    }

    pub fn with_health(mut self, health: HealthScript) -> Self {
        self.health = health;
        self
    }
}

type SpecPredicate = Arc<dyn Fn(&ContainerSpec) -> bool + Send + Sync>;

enum Matcher {
    Image(String),
    Command(Vec<String>),
    Predicate(SpecPredicate),
}

impl Matcher {
    fn matches(&self, spec: &ContainerSpec) -> bool {
        match self {
            Matcher::Image(image) => normalize_image(&spec.image) == *image,
            Matcher::Command(command) => spec.command.as_ref() == Some(command),
            Matcher::Predicate(predicate) => predicate(spec),
        }
    }
}

/// An in-memory container runtime. Cloning gives another handle on the same host.
#[derive(Clone)]
pub struct FakeRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    world: Mutex<World>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let world = lock(&self.inner);
        f.debug_struct("FakeRuntime")
            .field("host", &world.host.hostname)
            .field("containers", &world.containers.len())
            .finish_non_exhaustive()
    }
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// A host with 2 CPUs and 4 GiB, no images, dynamic ports from 32768-60999.
    pub fn new() -> Self {
        Self::with_host_info(Self::default_host_info())
    }

    /// What [`FakeRuntime::new`] reports.
    pub fn default_host_info() -> HostInfo {
        HostInfo {
            cpus: 2,
            memory_bytes: 4 << 30,
            os_type: "linux".to_owned(),
            architecture: "x86_64".to_owned(),
            hostname: "fake-host".to_owned(),
            engine_version: "20.10.24-fake".to_owned(),
            kernel_version: "6.1.0-fake".to_owned(),
        }
    }

    pub fn with_host_info(host: HostInfo) -> Self {
        Self::with_event_capacity(host, DEFAULT_EVENT_CAPACITY)
    }

    /// `capacity` events are buffered per subscriber; one that falls further behind
    /// gets a [`RuntimeEvent::Resync`]. Small values keep thousands of hosts cheap.
    pub fn with_event_capacity(host: HostInfo, capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        let world = World {
            host,
            registry: HashSet::new(),
            cached: HashSet::new(),
            auto_pull: false,
            pull_delay: Duration::ZERO,
            pulls: HashMap::new(),
            containers: HashMap::new(),
            names: HashMap::new(),
            next_seq: 0,
            ports: PortPool::new(DEFAULT_PORT_RANGE),
            volumes: HashMap::new(),
            task_cgroups: HashMap::new(),
            task_cgroups_supported: true,
            rules: Vec::new(),
            unreachable: false,
            events,
            clock: Clock::new(),
        };
        Self {
            inner: Arc::new(Inner {
                world: Mutex::new(world),
            }),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.inner)
    }

    /// The world, unless the engine is made unreachable.
    fn reachable(&self) -> Result<MutexGuard<'_, World>, RuntimeError> {
        let world = self.world();
        if world.unreachable {
            return Err(RuntimeError::Engine(
                "Cannot connect to the Docker daemon (fake engine unreachable)".to_owned(),
            ));
        }
        Ok(world)
    }

    pub fn set_host_info(&self, host: HostInfo) {
        self.world().host = host;
    }

    /// Makes `image` pullable (as if present in its registry).
    pub fn add_image(&self, image: &str) {
        self.world().registry.insert(normalize_image(image));
    }

    /// Puts `image` in the local cache, as if pulled before.
    pub fn cache_image(&self, image: &str) {
        self.world().cached.insert(normalize_image(image));
    }

    /// Whether `image` is in the local cache.
    pub fn is_cached(&self, image: &str) -> bool {
        self.world().cached.contains(&normalize_image(image))
    }

    /// With `true`, every image can be pulled.
    pub fn set_auto_pull(&self, auto_pull: bool) {
        self.world().auto_pull = auto_pull;
    }

    /// How long each pull takes (tokio time).
    pub fn set_pull_delay(&self, delay: Duration) {
        self.world().pull_delay = delay;
    }

    /// How many times `image` was pulled, successfully or not.
    pub fn pull_count(&self, image: &str) -> usize {
        self.world()
            .pulls
            .get(&normalize_image(image))
            .copied()
            .unwrap_or_default()
    }

    /// The range dynamic host ports are taken from. Ports in use stay in use.
    pub fn set_port_range(&self, range: RangeInclusive<u16>) {
        self.world().ports.set_range(range);
    }

    /// Containers of `image` behave so (the most recently added matching rule wins).
    pub fn on_image(&self, image: &str, behaviour: Behaviour) {
        let matcher = Matcher::Image(normalize_image(image));
        self.world().rules.push((matcher, behaviour));
    }

    /// Containers whose command is exactly `command` behave so.
    pub fn on_command<S: AsRef<str>>(&self, command: &[S], behaviour: Behaviour) {
        let command = command.iter().map(|s| s.as_ref().to_owned()).collect();
        self.world()
            .rules
            .push((Matcher::Command(command), behaviour));
    }

    /// Containers whose spec satisfies `predicate` behave so.
    pub fn on_spec(
        &self,
        predicate: impl Fn(&ContainerSpec) -> bool + Send + Sync + 'static,
        behaviour: Behaviour,
    ) {
        self.world()
            .rules
            .push((Matcher::Predicate(Arc::new(predicate)), behaviour));
    }

    pub fn clear_behaviours(&self) {
        self.world().rules.clear();
    }

    /// The running container `id` (or name) exits with `code`.
    pub fn exit(&self, id: &str, code: i64) -> Result<(), RuntimeError> {
        self.end(id, code, false)
    }

    /// The running container `id` (or name) is OOM-killed.
    pub fn oom(&self, id: &str) -> Result<(), RuntimeError> {
        self.end(id, SIGKILL_EXIT_CODE, true)
    }

    fn end(&self, id: &str, code: i64, oom: bool) -> Result<(), RuntimeError> {
        let mut world = self.world();
        let id = world.resolve(id)?;
        world.running(&id)?;
        world.finish(&id, code, oom);
        Ok(())
    }

    /// The health checks of running container `id` (or name) now report `health`.
    pub fn set_health(&self, id: &str, health: Health) -> Result<(), RuntimeError> {
        let mut world = self.world();
        let id = world.resolve(id)?;
        world.running(&id)?;
        world.set_health(&id, health);
        Ok(())
    }

    /// The spec container `id` (or name) was created from.
    pub fn spec(&self, id: &str) -> Option<ContainerSpec> {
        let world = self.world();
        let id = world.resolve(id).ok()?;
        world.containers.get(&id).map(|c| (*c.spec).clone())
    }

    /// Containers on the host, in any state.
    pub fn container_count(&self) -> usize {
        self.world().containers.len()
    }

    pub fn running_count(&self) -> usize {
        self.world()
            .containers
            .values()
            .filter(|c| c.status == Status::Running)
            .count()
    }

    /// The containers running now, as `inspect` would show them.
    pub fn running_containers(&self) -> Vec<ContainerState> {
        self.world()
            .containers
            .iter()
            .filter(|(_, c)| c.status == Status::Running)
            .map(|(id, c)| c.state(id))
            .collect()
    }

    pub fn has_volume(&self, name: &str) -> bool {
        self.world().volumes.contains_key(name)
    }

    /// The labels volume `name` was created with, if it exists.
    pub fn volume_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.world().volumes.get(name).map(|v| v.labels.clone())
    }

    /// The limits of task `task_id`'s cgroup, if it has one.
    pub fn task_cgroup(&self, task_id: &str) -> Option<TaskLimits> {
        self.world().task_cgroups.get(task_id).copied()
    }

    /// How many task cgroups exist.
    pub fn task_cgroup_count(&self) -> usize {
        self.world().task_cgroups.len()
    }

    /// With `false`, the host cannot give tasks cgroups (as with Docker's systemd
    /// driver): [`Runtime::ensure_task_cgroup`] says `None`.
    pub fn set_task_cgroups_supported(&self, supported: bool) {
        self.world().task_cgroups_supported = supported;
    }

    /// While `true`, every call fails as if the engine were down.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.world().unreachable = unreachable;
    }

    /// Every subscriber gets a [`RuntimeEvent::Resync`], as after a broken stream.
    pub fn resync(&self) {
        self.world().emit(RuntimeEvent::Resync);
    }

    /// Runs `f` on the world after `after` (tokio time), unless the fake is gone.
    fn schedule(&self, after: Duration, f: impl FnOnce(&mut World) + Send + 'static) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(inner) = Weak::upgrade(&inner) {
                f(&mut lock(&inner));
            }
        });
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, World> {
    // A panicking test thread must not take the other tests' fake down with it.
    inner.world.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    async fn host_info(&self) -> Result<HostInfo, RuntimeError> {
        Ok(self.reachable()?.host.clone())
    }

    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError> {
        let reference = normalize_image(image);
        let (cached, delay) = {
            let world = self.reachable()?;
            (world.cached.contains(&reference), world.pull_delay)
        };
        let must_pull = match policy {
            PullPolicy::Default | PullPolicy::Always => true,
            PullPolicy::Once | PullPolicy::PreferCached => !cached,
        };
        if !must_pull {
            return Ok(());
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut world = self.reachable()?;
        *world.pulls.entry(reference.clone()).or_default() += 1;
        if world.auto_pull || world.registry.contains(&reference) {
            world.cached.insert(reference);
            return Ok(());
        }
        if policy == PullPolicy::Default && cached {
            return Ok(());
        }
        Err(RuntimeError::Pull(format!(
            "{reference}: pull access denied for {}, repository does not exist or may require 'docker login'",
            reference
                .rsplit_once(':')
                .map_or(reference.as_str(), |(name, _)| name)
        )))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.reachable()?.create(spec)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let (id, run, behaviour, health_interval) = {
            let mut world = self.reachable()?;
            let id = world.resolve(id)?;
            let Some((run, behaviour)) = world.start(&id)? else {
                return Ok(());
            };
            let interval = world.containers.get(&id).and_then(|c| {
                let check = c.spec.health_check.as_ref()?;
                Some(if check.interval.is_zero() {
                    DEFAULT_HEALTH_INTERVAL
                } else {
                    check.interval
                })
            });
            (id, run, behaviour, interval)
        };

        if let Some(interval) = health_interval {
            let change = match behaviour.health {
                HealthScript::Manual => None,
                HealthScript::FirstProbe(health) => Some((interval, health)),
                HealthScript::After(after, health) => Some((after, health)),
            };
            if let Some((after, health)) = change {
                let id = id.clone();
                let set = move |world: &mut World| {
                    if world.is_run(&id, run) {
                        world.set_health(&id, health);
                    }
                };
                if after.is_zero() {
                    set(&mut self.world());
                } else {
                    self.schedule(after, set);
                }
            }
        }

        let end = match behaviour.run {
            Run::UntilStopped | Run::FailToStart(_) => None,
            Run::Exit { after, code } => Some((after, code, false)),
            Run::Oom { after } => Some((after, SIGKILL_EXIT_CODE, true)),
        };
        if let Some((after, code, oom)) = end {
            let end = move |world: &mut World| {
                if world.is_run(&id, run) {
                    world.finish(&id, code, oom);
                }
            };
            if after.is_zero() {
                end(&mut self.world());
            } else {
                self.schedule(after, end);
            }
        }
        Ok(())
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let Some(wait) = self.reachable()?.begin_stop(id, timeout)? else {
            return Ok(());
        };
        let notified = wait.exited.notified();
        tokio::pin!(notified);
        // Registered first, then checked: an exit in between is not missed.
        notified.as_mut().enable();
        if !self.world().is_run(&wait.id, wait.run) {
            return Ok(());
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(wait.wait) => {
                let mut world = self.world();
                if world.is_run(&wait.id, wait.run) {
                    world.finish(&wait.id, wait.code, false);
                }
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut world = self.reachable()?;
        let id = world.resolve(id)?;
        world.remove(&id)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        let world = self.reachable()?;
        let id = world.resolve(id)?;
        world
            .containers
            .get(&id)
            .map(|c| c.state(&id))
            .ok_or(RuntimeError::NotFound(id))
    }

    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerState>, RuntimeError> {
        let world = self.reachable()?;
        let mut found: Vec<(u64, ContainerState)> = world
            .containers
            .iter()
            .filter(|(_, c)| {
                labels
                    .iter()
                    .all(|(k, v)| c.spec.labels.get(k).is_some_and(|have| have == v))
            })
            .map(|(id, c)| (c.seq, c.state(id)))
            .collect();
        // Newest first, as Docker lists them.
        found.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        Ok(found.into_iter().map(|(_, state)| state).collect())
    }

    async fn ensure_volume(
        &self,
        name: &str,
        driver: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let mut world = self.reachable()?;
        let driver = driver.unwrap_or("local");
        match world.volumes.get(name) {
            Some(volume) if volume.driver != driver => Err(RuntimeError::Engine(format!(
                "create {name}: volume name must be unique: a volume with driver {} exists",
                volume.driver
            ))),
            Some(_) => Ok(()),
            None => {
                world.volumes.insert(
                    name.to_owned(),
                    Volume {
                        driver: driver.to_owned(),
                        labels: labels.clone(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Removing a volume that does not exist is fine, as with Docker.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let mut world = self.reachable()?;
        let users: Vec<&str> = world
            .containers
            .iter()
            .filter(|(_, c)| {
                c.spec
                    .mounts
                    .iter()
                    .any(|m| matches!(&m.source, MountSource::Volume(v) if v == name))
            })
            .map(|(id, _)| id.as_str())
            .collect();
        if !users.is_empty() {
            return Err(RuntimeError::Engine(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        world.volumes.remove(name);
        Ok(())
    }

    /// Like the cgroupfs driver: the cgroup is `/berth/<task id>`.
    async fn ensure_task_cgroup(
        &self,
        task_id: &str,
        limits: &TaskLimits,
    ) -> Result<Option<String>, RuntimeError> {
        let mut world = self.reachable()?;
        if limits.is_none() || !world.task_cgroups_supported {
            return Ok(None);
        }
        let path = task_cgroup_path(task_id)
            .ok_or_else(|| RuntimeError::TaskCgroup(format!("{task_id:?} cannot name a cgroup")))?;
        world.task_cgroups.insert(task_id.to_owned(), *limits);
        Ok(Some(path))
    }

    /// Like the kernel, refuses while a container of the cgroup runs.
    async fn remove_task_cgroup(&self, task_id: &str) -> Result<(), RuntimeError> {
        let mut world = self.reachable()?;
        let path = task_cgroup_path(task_id);
        let busy = world
            .containers
            .values()
            .any(|c| c.status == Status::Running && path.is_some() && c.spec.cgroup_parent == path);
        if busy {
            return Err(RuntimeError::TaskCgroup(format!(
                "{}: Device or resource busy",
                path.unwrap_or_default()
            )));
        }
        world.task_cgroups.remove(task_id);
        Ok(())
    }

    fn events(&self) -> BoxStream<'static, RuntimeEvent> {
        let receiver = self.world().events.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                // Fell behind: like a broken engine stream, some events are lost.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((RuntimeEvent::Resync, receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

/// Everything the fake host holds, behind one lock.
struct World {
    host: HostInfo,
    /// Images that can be pulled.
    registry: HashSet<String>,
    /// Images on the host.
    cached: HashSet<String>,
    auto_pull: bool,
    pull_delay: Duration,
    pulls: HashMap<String, usize>,
    containers: HashMap<String, Container>,
    /// Container name -> id.
    names: HashMap<String, String>,
    next_seq: u64,
    ports: PortPool,
    volumes: HashMap<String, Volume>,
    /// Task cgroups by task id.
    task_cgroups: HashMap<String, TaskLimits>,
    task_cgroups_supported: bool,
    rules: Vec<(Matcher, Behaviour)>,
    unreachable: bool,
    events: broadcast::Sender<RuntimeEvent>,
    clock: Clock,
}

struct Container {
    spec: Arc<ContainerSpec>,
    /// Creation order.
    seq: u64,
    /// Counts starts, so a timer set for one run does not end the next.
    run: u64,
    behaviour: Behaviour,
    status: Status,
    exit_code: Option<i64>,
    oom_killed: bool,
    error: Option<String>,
    started_at: Option<f64>,
    finished_at: Option<f64>,
    health: Option<Health>,
    ports: Vec<PortBound>,
    /// Woken when the current run ends; created only when someone waits.
    exited: Option<Arc<Notify>>,
}

impl Container {
    fn state(&self, id: &str) -> ContainerState {
        ContainerState {
            id: id.to_owned(),
            name: self.spec.name.clone(),
            image: self.spec.image.clone(),
            labels: self.spec.labels.clone(),
            status: self.status,
            exit_code: self.exit_code,
            oom_killed: self.oom_killed,
            error: self.error.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            health: self.health,
            ports: self.ports.clone(),
        }
    }
}

struct Volume {
    driver: String,
    labels: BTreeMap<String, String>,
}

impl World {
    fn emit(&self, event: RuntimeEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// The id of the container named or identified by `key`.
    fn resolve(&self, key: &str) -> Result<String, RuntimeError> {
        if self.containers.contains_key(key) {
            return Ok(key.to_owned());
        }
        self.names
            .get(key.trim_start_matches('/'))
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(key.to_owned()))
    }

    fn exists(&self, key: &str) -> bool {
        self.resolve(key).is_ok()
    }

    fn running(&self, id: &str) -> Result<(), RuntimeError> {
        match self.containers.get(id) {
            Some(c) if c.status == Status::Running => Ok(()),
            Some(_) => Err(RuntimeError::Engine(format!(
                "container {id} is not running"
            ))),
            None => Err(RuntimeError::NotFound(id.to_owned())),
        }
    }

    fn is_run(&self, id: &str, run: u64) -> bool {
        self.containers
            .get(id)
            .is_some_and(|c| c.run == run && c.status == Status::Running)
    }

    fn behaviour_for(&self, spec: &ContainerSpec) -> Behaviour {
        self.rules
            .iter()
            .rev()
            .find(|(matcher, _)| matcher.matches(spec))
            .map(|(_, behaviour)| behaviour.clone())
            .unwrap_or_default()
    }

    fn create(&mut self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let seq = self.next_seq;
        let name = if spec.name.is_empty() {
            format!("fake_{seq}")
        } else {
            spec.name.trim_start_matches('/').to_owned()
        };
        if let Some(other) = self.names.get(&name) {
            return Err(RuntimeError::Create(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". \
                 You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        if !self.cached.contains(&normalize_image(&spec.image)) {
            return Err(RuntimeError::Create(format!(
                "No such image: {}",
                spec.image
            )));
        }
        let referenced = spec
            .volumes_from
            .iter()
            .map(|v| v.split(':').next().unwrap_or(v))
            .chain(spec.links.iter().map(|l| l.split(':').next().unwrap_or(l)))
            .chain(match &spec.network_mode {
                Some(NetworkMode::Container(other)) => Some(other.as_str()),
                _ => None,
            });
        for other in referenced {
            if !self.exists(other) {
                return Err(RuntimeError::Create(format!("No such container: {other}")));
            }
        }
        for mount in &spec.mounts {
            if let MountSource::Volume(volume) = &mount.source {
                self.volumes
                    .entry(volume.clone())
                    .or_insert_with(|| Volume {
                        driver: "local".to_owned(),
                        labels: BTreeMap::new(),
                    });
            }
        }

        self.next_seq += 1;
        let id = container_id(seq);
        let mut spec = spec.clone();
        spec.name = name.clone();
        self.names.insert(name, id.clone());
        self.containers.insert(
            id.clone(),
            Container {
                spec: Arc::new(spec),
                seq,
                run: 0,
                behaviour: Behaviour::default(),
                status: Status::Created,
                exit_code: None,
                oom_killed: false,
                error: None,
                started_at: None,
                finished_at: None,
                health: None,
                ports: Vec::new(),
                exited: None,
            },
        );
        Ok(id)
    }

    /// Starts `id`; `None` if it was running already, else its run and behaviour.
    fn start(&mut self, id: &str) -> Result<Option<(u64, Behaviour)>, RuntimeError> {
        let Some(container) = self.containers.get(id) else {
            return Err(RuntimeError::NotFound(id.to_owned()));
        };
        if container.status == Status::Running {
            return Ok(None);
        }
        let spec = Arc::clone(&container.spec);
        let behaviour = self.behaviour_for(&spec);
        if let Run::FailToStart(message) = &behaviour.run {
            let message = message.clone();
            if let Some(container) = self.containers.get_mut(id) {
                container.error = Some(message.clone());
            }
            return Err(RuntimeError::Start(message));
        }
        if let Some(NetworkMode::Container(other)) = &spec.network_mode {
            let other_running = self
                .resolve(other)
                .ok()
                .and_then(|other| self.containers.get(&other))
                .is_some_and(|c| c.status == Status::Running);
            if !other_running {
                return Err(RuntimeError::Start(format!(
                    "cannot join network of a non running container: {other}"
                )));
            }
        }
        let ports = match spec.network_mode {
            None | Some(NetworkMode::Bridge) => self.ports.bind(&spec.ports)?,
            // Publishing means nothing without a network namespace of its own.
            Some(_) => Vec::new(),
        };

        let now = self.clock.now();
        let Some(container) = self.containers.get_mut(id) else {
            return Err(RuntimeError::NotFound(id.to_owned()));
        };
        container.run += 1;
        container.behaviour = behaviour.clone();
        container.status = Status::Running;
        container.exit_code = None;
        container.oom_killed = false;
        container.error = None;
        container.started_at = Some(now);
        container.health = spec.health_check.as_ref().map(|_| Health::Starting);
        container.ports = ports;
        let run = container.run;
        self.emit(RuntimeEvent::Started { id: id.to_owned() });
        Ok(Some((run, behaviour)))
    }

    /// The current run of running container `id` ends.
    fn finish(&mut self, id: &str, code: i64, oom: bool) {
        let now = self.clock.now();
        let Some(container) = self.containers.get_mut(id) else {
            return;
        };
        if container.status != Status::Running {
            return;
        }
        container.status = Status::Exited;
        container.exit_code = Some(code);
        container.oom_killed = oom;
        container.finished_at = Some(now);
        let ports = std::mem::take(&mut container.ports);
        if let Some(exited) = container.exited.take() {
            exited.notify_waiters();
        }
        self.ports.release(&ports);
        self.emit(RuntimeEvent::Died { id: id.to_owned() });
    }

    /// Sends SIGTERM to `key`; `None` once it has stopped, else what to wait for.
    fn begin_stop(
        &mut self,
        key: &str,
        timeout: Duration,
    ) -> Result<Option<StopWait>, RuntimeError> {
        let id = self.resolve(key)?;
        let Some(container) = self.containers.get_mut(&id) else {
            return Err(RuntimeError::NotFound(id));
        };
        if container.status != Status::Running {
            return Ok(None);
        }
        let (wait, code) = match container.behaviour.on_sigterm {
            OnSigterm::Exit { after, code } if after <= timeout => (after, code),
            OnSigterm::Exit { .. } | OnSigterm::Ignore => (timeout, SIGKILL_EXIT_CODE),
        };
        if wait.is_zero() {
            self.finish(&id, code, false);
            return Ok(None);
        }
        let run = container.run;
        let exited = Arc::clone(container.exited.get_or_insert_with(Default::default));
        Ok(Some(StopWait {
            id,
            run,
            wait,
            code,
            exited,
        }))
    }

    fn set_health(&mut self, id: &str, health: Health) {
        let Some(container) = self.containers.get_mut(id) else {
            return;
        };
        if container.health != Some(health) {
            container.health = Some(health);
            self.emit(RuntimeEvent::Health {
                id: id.to_owned(),
                health,
            });
        }
    }

    fn remove(&mut self, id: &str) -> Result<(), RuntimeError> {
        let Some(container) = self.containers.get(id) else {
            return Err(RuntimeError::NotFound(id.to_owned()));
        };
        if container.status == Status::Running {
            return Err(RuntimeError::Engine(format!(
                "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
            )));
        }
        let name = container.spec.name.clone();
        self.containers.remove(id);
        self.names.remove(&name);
        Ok(())
    }
}

/// A stop waiting for the container to exit, or for the timeout.
struct StopWait {
    id: String,
    run: u64,
    wait: Duration,
    /// The exit code if it ends at `wait`.
    code: i64,
    exited: Arc<Notify>,
}

/// Host ports in use, and the range dynamic ones come from.
struct PortPool {
    first: u16,
    last: u16,
    next: u16,
    used: HashSet<(Protocol, u16)>,
}

impl PortPool {
    fn new(range: RangeInclusive<u16>) -> Self {
        let mut pool = Self {
            first: 0,
            last: 0,
            next: 0,
            used: HashSet::new(),
        };
        pool.set_range(range);
        pool
    }

    fn set_range(&mut self, range: RangeInclusive<u16>) {
        let (first, last) = range.into_inner();
        self.first = first.max(1);
        self.last = last.max(self.first);
        self.next = self.first;
    }

    fn allocate(&mut self, protocol: Protocol) -> Option<u16> {
        let size = u32::from(self.last - self.first) + 1;
        for _ in 0..size {
            let port = self.next;
            self.next = if port >= self.last {
                self.first
            } else {
                port + 1
            };
            if self.used.insert((protocol, port)) {
                return Some(port);
            }
        }
        None
    }

    /// Binds every publish, or none of them.
    fn bind(&mut self, publishes: &[super::PortPublish]) -> Result<Vec<PortBound>, RuntimeError> {
        let mut bound: Vec<PortBound> = Vec::with_capacity(publishes.len());
        for publish in publishes {
            let bind_ip = publish
                .host_ip
                .clone()
                .unwrap_or_else(|| "0.0.0.0".to_owned());
            let host_port = match publish.host_port {
                Some(port) if self.used.insert((publish.protocol, port)) => Some(port),
                Some(port) => {
                    self.release(&bound);
                    return Err(RuntimeError::Start(format!(
                        "driver failed programming external connectivity: Bind for {bind_ip}:{port} failed: port is already allocated"
                    )));
                }
                None => self.allocate(publish.protocol),
            };
            let Some(host_port) = host_port else {
                self.release(&bound);
                return Err(RuntimeError::Start(
                    "no free host port in the dynamic range".to_owned(),
                ));
            };
            bound.push(PortBound {
                container_port: publish.container_port,
                host_port,
                protocol: publish.protocol,
                bind_ip,
            });
        }
        Ok(bound)
    }

    fn release(&mut self, ports: &[PortBound]) {
        for port in ports {
            self.used.remove(&(port.protocol, port.host_port));
        }
    }
}

/// Wall-clock epoch seconds that advance with tokio's clock, so timestamps agree with
/// paused-time tests.
struct Clock {
    epoch: f64,
    base: tokio::time::Instant,
}

impl Clock {
    fn new() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        Self {
            epoch,
            base: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> f64 {
        self.epoch + self.base.elapsed().as_secs_f64()
    }
}

/// A 64-hex-digit id, unique per sequence number and random-looking.
fn container_id(seq: u64) -> String {
    let mut id = String::with_capacity(64);
    for i in 0..4 {
        id.push_str(&format!(
            "{:016x}",
            splitmix64(seq.wrapping_mul(4).wrapping_add(i))
        ));
    }
    id
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `name` -> `name:latest`; references with a tag or digest are unchanged.
fn normalize_image(image: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{HealthCheckSpec, Mount, PortPublish};

    const IMAGE: &str = "app:1";

    fn fake() -> FakeRuntime {
        let fake = FakeRuntime::new();
        fake.cache_image(IMAGE);
        fake
    }

    fn spec(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.to_owned(),
            image: IMAGE.to_owned(),
            labels: BTreeMap::from([("owner".to_owned(), "test".to_owned())]),
            ..Default::default()
        }
    }

    fn with_health(mut spec: ContainerSpec, interval: Duration) -> ContainerSpec {
        spec.health_check = Some(HealthCheckSpec {
            test: vec!["CMD-SHELL".to_owned(), "true".to_owned()],
            interval,
            timeout: Duration::from_secs(1),
            retries: 3,
            start_period: Duration::ZERO,
        });
        spec
    }

    fn publish(container_port: u16, host_port: Option<u16>) -> PortPublish {
        PortPublish {
            container_port,
            host_port,
            protocol: Protocol::Tcp,
            host_ip: None,
        }
    }

    /// The next event. Under paused time the deadline is virtual, so it is long enough
    /// for any timer of a test.
    async fn next(events: &mut BoxStream<'static, RuntimeEvent>) -> Option<RuntimeEvent> {
        tokio::time::timeout(Duration::from_secs(3600), events.next())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn lifecycle_follows_docker() -> Result<(), RuntimeError> {
        let fake = fake();
        let id = fake.create(&spec("web")).await?;
        assert_eq!(id.len(), 64);
        assert!(matches!(
            fake.create(&spec("web")).await,
            Err(RuntimeError::Create(_))
        ));
        assert_eq!(fake.inspect(&id).await?.status, Status::Created);
        assert_eq!(fake.inspect("web").await?.id, id);

        fake.start(&id).await?;
        fake.start(&id).await?; // already running: fine
        let running = fake.inspect(&id).await?;
        assert_eq!(running.status, Status::Running);
        assert_eq!(running.exit_code, None);
        assert!(running.started_at.is_some());
        assert!(matches!(
            fake.remove(&id).await,
            Err(RuntimeError::Engine(_))
        ));

        fake.stop(&id, Duration::from_secs(10)).await?;
        let stopped = fake.inspect(&id).await?;
        assert_eq!(stopped.status, Status::Exited);
        assert_eq!(stopped.exit_code, Some(SIGTERM_EXIT_CODE));
        assert!(stopped.finished_at.is_some());
        fake.stop(&id, Duration::from_secs(10)).await?; // stopped: fine

        fake.remove(&id).await?;
        assert!(matches!(
            fake.inspect(&id).await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            fake.start(&id).await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            fake.stop("nope", Duration::ZERO).await,
            Err(RuntimeError::NotFound(_))
        ));
        // The name is free again.
        fake.create(&spec("web")).await?;
        Ok(())
    }

    #[tokio::test]
    async fn create_checks_image_and_references() -> Result<(), RuntimeError> {
        let fake = fake();
        let mut missing = spec("a");
        missing.image = "other:2".to_owned();
        assert!(matches!(
            fake.create(&missing).await,
            Err(RuntimeError::Create(_))
        ));
        let mut linked = spec("b");
        linked.links = vec!["db:db".to_owned()];
        assert!(matches!(
            fake.create(&linked).await,
            Err(RuntimeError::Create(_))
        ));
        fake.create(&spec("db")).await?;
        fake.create(&linked).await?;
        Ok(())
    }

    #[tokio::test]
    async fn pull_policies() -> Result<(), RuntimeError> {
        let fake = FakeRuntime::new();
        assert!(matches!(
            fake.ensure_image("missing:1", PullPolicy::Default).await,
            Err(RuntimeError::Pull(_))
        ));

        fake.add_image("busybox");
        fake.ensure_image("busybox:latest", PullPolicy::Once)
            .await?;
        fake.ensure_image("busybox", PullPolicy::Once).await?;
        fake.ensure_image("busybox", PullPolicy::PreferCached)
            .await?;
        assert_eq!(fake.pull_count("busybox"), 1);
        fake.ensure_image("busybox", PullPolicy::Default).await?;
        fake.ensure_image("busybox", PullPolicy::Always).await?;
        assert_eq!(fake.pull_count("busybox"), 3);

        // Cached but not pullable: Default falls back to the cache, Always fails.
        fake.cache_image("local:1");
        fake.ensure_image("local:1", PullPolicy::Default).await?;
        fake.ensure_image("local:1", PullPolicy::PreferCached)
            .await?;
        assert!(matches!(
            fake.ensure_image("local:1", PullPolicy::Always).await,
            Err(RuntimeError::Pull(_))
        ));

        fake.set_auto_pull(true);
        fake.ensure_image("anything/else:3", PullPolicy::Always)
            .await?;
        assert!(fake.is_cached("anything/else:3"));
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn pulls_take_the_configured_time() -> Result<(), RuntimeError> {
        let fake = FakeRuntime::new();
        fake.set_auto_pull(true);
        fake.set_pull_delay(Duration::from_secs(7));
        let began = tokio::time::Instant::now();
        fake.ensure_image("x:1", PullPolicy::Default).await?;
        assert_eq!(began.elapsed(), Duration::from_secs(7));
        Ok(())
    }

    #[tokio::test]
    async fn ports_are_allocated_and_released() -> Result<(), RuntimeError> {
        let fake = fake();
        fake.set_port_range(40000..=40001);
        let mut a = spec("a");
        a.ports = vec![publish(80, None), publish(81, Some(8080))];
        let a = fake.create(&a).await?;
        fake.start(&a).await?;
        let ports = fake.inspect(&a).await?.ports;
        assert_eq!(ports.len(), 2);
        assert_eq!((ports[0].container_port, ports[0].host_port), (80, 40000));
        assert_eq!((ports[1].container_port, ports[1].host_port), (81, 8080));
        assert_eq!(ports[0].bind_ip, "0.0.0.0");

        let mut b = spec("b");
        b.ports = vec![publish(80, Some(8080))];
        let b = fake.create(&b).await?;
        assert!(matches!(fake.start(&b).await, Err(RuntimeError::Start(_))));

        let mut c = spec("c");
        c.ports = vec![publish(80, None), publish(80, None)];
        let c = fake.create(&c).await?;
        // One dynamic port left in the range: all-or-nothing.
        assert!(matches!(fake.start(&c).await, Err(RuntimeError::Start(_))));

        fake.exit(&a, 0)?;
        assert!(fake.inspect(&a).await?.ports.is_empty());
        fake.start(&b).await?;
        fake.start(&c).await?;
        let mut dynamic: Vec<u16> = fake
            .inspect(&c)
            .await?
            .ports
            .iter()
            .map(|p| p.host_port)
            .collect();
        dynamic.sort_unstable();
        assert_eq!(dynamic, vec![40000, 40001]);
        Ok(())
    }

    #[tokio::test]
    async fn test_driven_exits_and_events() -> Result<(), RuntimeError> {
        let fake = fake();
        let mut events = fake.events();
        let id = fake
            .create(&with_health(spec("a"), Duration::from_secs(3600)))
            .await?;
        fake.on_image(
            IMAGE,
            Behaviour::default().with_health(HealthScript::Manual),
        );
        fake.start(&id).await?;
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Started { id: id.clone() })
        );
        assert_eq!(fake.inspect(&id).await?.health, Some(Health::Starting));

        fake.set_health(&id, Health::Unhealthy)?;
        fake.set_health(&id, Health::Unhealthy)?; // no change, no event
        fake.set_health(&id, Health::Healthy)?;
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Health {
                id: id.clone(),
                health: Health::Unhealthy
            })
        );
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Health {
                id: id.clone(),
                health: Health::Healthy
            })
        );

        fake.oom(&id)?;
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Died { id: id.clone() })
        );
        let state = fake.inspect(&id).await?;
        assert!(state.oom_killed);
        assert_eq!(state.exit_code, Some(SIGKILL_EXIT_CODE));
        assert!(fake.exit(&id, 1).is_err());

        // A restart is a new run.
        fake.start(&id).await?;
        fake.exit(&id, 42)?;
        let state = fake.inspect(&id).await?;
        assert!(!state.oom_killed);
        assert_eq!(state.exit_code, Some(42));
        Ok(())
    }

    #[tokio::test]
    async fn behaviours_per_image_command_and_spec() -> Result<(), RuntimeError> {
        let fake = fake();
        fake.cache_image("crash:1");
        fake.on_image("crash:1", Behaviour::exits(3));
        fake.on_command(&["sh", "-c", "exit 42"], Behaviour::exits(42));
        fake.on_spec(
            |s| s.name == "broken",
            Behaviour::fails_to_start("exec: \"nope\": not found"),
        );

        let mut crash = spec("crash");
        crash.image = "crash:1".to_owned();
        let crash = fake.create(&crash).await?;
        let mut events = fake.events();
        fake.start(&crash).await?;
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Started { id: crash.clone() })
        );
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Died { id: crash.clone() })
        );
        assert_eq!(fake.inspect(&crash).await?.exit_code, Some(3));

        let mut shell = spec("shell");
        shell.command = Some(vec!["sh".into(), "-c".into(), "exit 42".into()]);
        let shell = fake.create(&shell).await?;
        fake.start(&shell).await?;
        assert_eq!(fake.inspect(&shell).await?.exit_code, Some(42));

        let broken = fake.create(&spec("broken")).await?;
        assert!(matches!(
            fake.start(&broken).await,
            Err(RuntimeError::Start(_))
        ));
        let state = fake.inspect(&broken).await?;
        assert_eq!(state.status, Status::Created);
        assert!(state.error.is_some());

        let plain = fake.create(&spec("plain")).await?;
        fake.start(&plain).await?;
        assert_eq!(fake.inspect(&plain).await?.status, Status::Running);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn timed_behaviours_use_tokio_time() -> Result<(), RuntimeError> {
        let fake = fake();
        fake.on_command(
            &["work"],
            Behaviour::exits_after(Duration::from_secs(30), 0),
        );
        fake.on_command(&["hog"], Behaviour::oom_after(Duration::from_secs(5)));
        let mut events = fake.events();

        let mut work = with_health(spec("work"), Duration::from_secs(10));
        work.command = Some(vec!["work".into()]);
        let work = fake.create(&work).await?;
        let mut hog = spec("hog");
        hog.command = Some(vec!["hog".into()]);
        let hog = fake.create(&hog).await?;

        let began = tokio::time::Instant::now();
        fake.start(&work).await?;
        fake.start(&hog).await?;
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Started { id: work.clone() })
        );
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Started { id: hog.clone() })
        );
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Died { id: hog.clone() })
        );
        assert_eq!(began.elapsed(), Duration::from_secs(5));
        assert!(fake.inspect(&hog).await?.oom_killed);
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Health {
                id: work.clone(),
                health: Health::Healthy
            })
        );
        assert_eq!(began.elapsed(), Duration::from_secs(10));
        assert_eq!(
            next(&mut events).await,
            Some(RuntimeEvent::Died { id: work.clone() })
        );
        assert_eq!(began.elapsed(), Duration::from_secs(30));
        let state = fake.inspect(&work).await?;
        assert_eq!(state.exit_code, Some(0));
        let (started, finished) = (
            state.started_at.unwrap_or_default(),
            state.finished_at.unwrap_or_default(),
        );
        assert!(
            (finished - started - 30.0).abs() < 0.01,
            "{started} {finished}"
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn stale_timers_do_not_end_a_later_run() -> Result<(), RuntimeError> {
        let fake = fake();
        fake.on_image(IMAGE, Behaviour::exits_after(Duration::from_secs(10), 1));
        let id = fake.create(&spec("a")).await?;
        fake.start(&id).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        fake.exit(&id, 0)?;
        fake.clear_behaviours();
        fake.start(&id).await?;
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(fake.inspect(&id).await?.status, Status::Running);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn stop_honours_sigterm_behaviour() -> Result<(), RuntimeError> {
        let fake = fake();
        fake.on_command(&["stubborn"], Behaviour::ignores_sigterm());
        fake.on_command(
            &["graceful"],
            Behaviour::default().with_sigterm(OnSigterm::Exit {
                after: Duration::from_secs(3),
                code: 0,
            }),
        );
        let mut stubborn = spec("stubborn");
        stubborn.command = Some(vec!["stubborn".into()]);
        let stubborn = fake.create(&stubborn).await?;
        let mut graceful = spec("graceful");
        graceful.command = Some(vec!["graceful".into()]);
        let graceful = fake.create(&graceful).await?;
        fake.start(&stubborn).await?;
        fake.start(&graceful).await?;

        let began = tokio::time::Instant::now();
        fake.stop(&stubborn, Duration::from_secs(30)).await?;
        assert_eq!(began.elapsed(), Duration::from_secs(30));
        assert_eq!(
            fake.inspect(&stubborn).await?.exit_code,
            Some(SIGKILL_EXIT_CODE)
        );

        let began = tokio::time::Instant::now();
        fake.stop(&graceful, Duration::from_secs(30)).await?;
        assert_eq!(began.elapsed(), Duration::from_secs(3));
        assert_eq!(fake.inspect(&graceful).await?.exit_code, Some(0));

        // Graceful but slower than the timeout: killed at the timeout.
        fake.start(&graceful).await?;
        let began = tokio::time::Instant::now();
        fake.stop(&graceful, Duration::from_secs(1)).await?;
        assert_eq!(began.elapsed(), Duration::from_secs(1));
        assert_eq!(
            fake.inspect(&graceful).await?.exit_code,
            Some(SIGKILL_EXIT_CODE)
        );

        // A container that exits by itself during the stop ends the stop early.
        fake.start(&stubborn).await?;
        let stopping = {
            let fake = fake.clone();
            let id = stubborn.clone();
            tokio::spawn(async move { fake.stop(&id, Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let began = tokio::time::Instant::now();
        fake.exit(&stubborn, 5)?;
        stopping
            .await
            .map_err(|e| RuntimeError::Engine(e.to_string()))??;
        assert_eq!(began.elapsed(), Duration::ZERO);
        assert_eq!(fake.inspect(&stubborn).await?.exit_code, Some(5));
        Ok(())
    }

    #[tokio::test]
    async fn list_filters_by_labels() -> Result<(), RuntimeError> {
        let fake = fake();
        let mut a = spec("a");
        a.labels.insert("task".into(), "1".into());
        let mut b = spec("b");
        b.labels.insert("task".into(), "2".into());
        let a = fake.create(&a).await?;
        let b = fake.create(&b).await?;
        fake.start(&b).await?;

        let all = fake.list(&BTreeMap::new()).await?;
        assert_eq!(
            all.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            vec![b.clone(), a.clone()]
        );
        let owner = BTreeMap::from([("owner".to_owned(), "test".to_owned())]);
        assert_eq!(fake.list(&owner).await?.len(), 2);
        let one = BTreeMap::from([
            ("owner".to_owned(), "test".to_owned()),
            ("task".to_owned(), "1".to_owned()),
        ]);
        let found = fake.list(&one).await?;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, a);
        assert_eq!(found[0].labels.get("task").map(String::as_str), Some("1"));
        let none = BTreeMap::from([("owner".to_owned(), "else".to_owned())]);
        assert!(fake.list(&none).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn task_cgroups_hold_limits_until_their_containers_stop() -> Result<(), RuntimeError> {
        let fake = fake();
        let limits = TaskLimits::new(Some(256), Some(64));
        assert_eq!(
            fake.ensure_task_cgroup("t1", &limits).await?.as_deref(),
            Some("/berth/t1")
        );
        assert_eq!(fake.task_cgroup("t1"), Some(limits));
        // No limits, no cgroup.
        assert_eq!(
            fake.ensure_task_cgroup("t2", &TaskLimits::default())
                .await?,
            None
        );
        assert!(matches!(
            fake.ensure_task_cgroup("a/b", &limits).await,
            Err(RuntimeError::TaskCgroup(_))
        ));

        let mut member = spec("member");
        member.cgroup_parent = Some("/berth/t1".into());
        let id = fake.create(&member).await?;
        fake.start(&id).await?;
        assert!(matches!(
            fake.remove_task_cgroup("t1").await,
            Err(RuntimeError::TaskCgroup(_))
        ));
        fake.stop(&id, Duration::from_secs(1)).await?;
        fake.remove_task_cgroup("t1").await?;
        assert_eq!(fake.task_cgroup("t1"), None);
        fake.remove_task_cgroup("t1").await?;

        fake.set_task_cgroups_supported(false);
        assert_eq!(fake.ensure_task_cgroup("t3", &limits).await?, None);
        assert_eq!(fake.task_cgroup_count(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn volumes() -> Result<(), RuntimeError> {
        let fake = fake();
        let labels = BTreeMap::from([("task".to_owned(), "t1".to_owned())]);
        fake.ensure_volume("data", None, &labels).await?;
        assert_eq!(fake.volume_labels("data"), Some(labels.clone()));
        fake.ensure_volume("data", Some("local"), &labels).await?;
        assert!(matches!(
            fake.ensure_volume("data", Some("nfs"), &labels).await,
            Err(RuntimeError::Engine(_))
        ));
        let mut user = spec("user");
        user.mounts = vec![Mount {
            source: MountSource::Volume("data".into()),
            target: "/data".into(),
            read_only: false,
        }];
        let user = fake.create(&user).await?;
        assert!(matches!(
            fake.remove_volume("data").await,
            Err(RuntimeError::Engine(_))
        ));
        fake.remove(&user).await?;
        fake.remove_volume("data").await?;
        assert!(!fake.has_volume("data"));
        fake.remove_volume("data").await?;
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_engine_and_resync() -> Result<(), RuntimeError> {
        let fake = fake();
        let mut events = fake.events();
        fake.set_unreachable(true);
        assert!(matches!(
            fake.host_info().await,
            Err(RuntimeError::Engine(_))
        ));
        fake.set_unreachable(false);
        assert_eq!(fake.host_info().await?.cpus, 2);
        fake.resync();
        assert_eq!(next(&mut events).await, Some(RuntimeEvent::Resync));
        Ok(())
    }

    #[tokio::test]
    async fn a_lagging_subscriber_gets_a_resync() -> Result<(), RuntimeError> {
        let fake = FakeRuntime::with_event_capacity(FakeRuntime::default_host_info(), 2);
        fake.cache_image(IMAGE);
        let mut events = fake.events();
        for i in 0..5 {
            let id = fake.create(&spec(&format!("c{i}"))).await?;
            fake.start(&id).await?;
        }
        assert_eq!(next(&mut events).await, Some(RuntimeEvent::Resync));
        Ok(())
    }

    #[tokio::test]
    async fn a_hundred_thousand_containers() -> Result<(), RuntimeError> {
        let fake = fake();
        let mut ids = Vec::with_capacity(100_000);
        for i in 0..100_000u32 {
            let mut s = spec(&format!("c{i}"));
            s.labels.insert("shard".into(), (i % 100).to_string());
            let id = fake.create(&s).await?;
            fake.start(&id).await?;
            ids.push(id);
        }
        assert_eq!(fake.running_count(), 100_000);
        let shard = BTreeMap::from([("shard".to_owned(), "7".to_owned())]);
        assert_eq!(fake.list(&shard).await?.len(), 1000);
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        Ok(())
    }
}

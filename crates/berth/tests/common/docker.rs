//! The harness of the tests that run tasks as real Docker containers: the test image,
//! `berth agent` processes, a [`Stack`] (a control plane and its agents) that cleans up
//! after itself, and helpers to run tasks and wait on them through the AWS SDK.
//!
//! Every container an agent runs carries the label `dev.berth.container-instance-arn`.
//! Dropping a [`Stack`] kills its processes, then removes (`docker rm -f`) every
//! container labelled with one of its instances' ARNs, so a failing test leaves
//! neither processes nor containers behind. Each test has its own control plane, so
//! its instances (and their ARNs) are its own, and container names (`berth-<task
//! id>-<container>`) are unique by task id: tests run in parallel.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{Container, ContainerDefinition, ContainerInstance, Task};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ACCESS_KEY_ID, BerthServer, REGION, Require, SECRET_ACCESS_KEY, TestResult};

/// The image every task of these tests runs: busybox (sh, sleep, httpd, nc, wget...)
/// with `/www/index.html` saying [`HELLO`]. Built by `scripts/build-test-image.sh`.
pub const TEST_IMAGE: &str = "berth-test/busybox:latest";
/// What the test image's httpd serves.
pub const HELLO: &str = "hello from berth";
/// The label naming the container instance that owns a container.
pub const INSTANCE_LABEL: &str = "dev.berth.container-instance-arn";
/// The label naming the task a container belongs to.
pub const TASK_ARN_LABEL: &str = "com.amazonaws.ecs.task-arn";
/// The cluster agents join.
pub const CLUSTER: &str = "default";

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(100);
/// How long an agent may take to register and connect its session.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// How long a task may take to reach a status it is expected to reach soon.
pub const TASK_DEADLINE: Duration = Duration::from_secs(60);

/// Builds the test image (if missing) once per test process.
pub fn ensure_test_image() -> TestResult {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image.sh");
        let output = Command::new("bash")
            .arg(&script)
            .env("BERTH_TEST_IMAGE", TEST_IMAGE)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("cannot run {}: {err}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}): {}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    result.clone().map_err(Into::into)
}

/// A TCP port free on every address of the host, for a server or a static host port.
/// Taken from 20000-29999, away from the kernel's and Docker's ephemeral ranges (where
/// dynamic host ports come from), and never the same twice in one test process.
pub fn free_port() -> TestResult<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (std::process::id() % 100) * 100;
    for _ in 0..10_000 {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % 10_000;
        let port = u16::try_from(20_000 + offset)?;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free TCP port in 20000-29999".into())
}

/// The container instance ARN an agent saved in its data directory, once registered.
pub fn saved_instance_arn(agent_data_dir: &Path) -> Option<String> {
    let bytes = std::fs::read(agent_data_dir.join("instance.json")).ok()?;
    let saved: Value = serde_json::from_slice(&bytes).ok()?;
    saved
        .get("containerInstanceArn")?
        .as_str()
        .map(str::to_string)
}

/// A `berth agent` process for the local Docker engine, on its own data directory.
pub struct BerthAgent {
    child: Option<Child>,
    /// Holds `data/` (the agent's data directory) and `agent.log` (its stderr).
    work: TempDir,
    /// Everything after `agent`.
    args: Vec<String>,
}

impl BerthAgent {
    /// Starts an agent of `server` in the default cluster, signing with the test key,
    /// with `extra` arguments (e.g. `--reserved-memory`). Does not wait for it to
    /// register: see [`Stack::add_agent`].
    pub fn start(server: &BerthServer, extra: &[&str]) -> TestResult<Self> {
        let work = tempfile::Builder::new()
            .prefix("berth-e2e-agent-")
            .tempdir()?;
        let mut args = vec![
            "--endpoint".to_string(),
            server.endpoint(),
            "--cluster".to_string(),
            CLUSTER.to_string(),
            "--data-dir".to_string(),
            work.path().join("data").display().to_string(),
            "--access-key".to_string(),
            format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}"),
            "--region".to_string(),
            REGION.to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut agent = Self {
            child: None,
            work,
            args,
        };
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> TestResult {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("agent")
            .args(&self.args)
            .env_remove("BERTH_ENDPOINT")
            .env_remove("BERTH_CLUSTER")
            .env_remove("BERTH_AGENT_DATA_DIR")
            .env_remove("BERTH_REGION")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.work.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.work.path().join("agent.log")
    }

    /// What the agent wrote to stderr, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the agent with SIGKILL (it cannot say goodbye) and reaps it.
    pub fn kill9(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the agent again on the same data directory with the same arguments.
    pub fn restart(&mut self) -> TestResult {
        if self.child.is_some() {
            return Err("the agent still runs; kill it first".into());
        }
        self.spawn()
    }
}

impl Drop for BerthAgent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- berth agent log ({}) ---\n{}",
                self.work.path().display(),
                self.log()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A control plane and the agents of its `default` cluster, for one test. Dropping it
/// kills the processes, then removes every container of its instances.
pub struct Stack {
    pub server: BerthServer,
    pub agents: Vec<BerthAgent>,
    key_id: String,
    secret: String,
    /// Agent data directories: each one's saved instance ARN is cleaned up.
    agent_dirs: Vec<PathBuf>,
    /// Every instance ARN seen, in registration order.
    instances: Vec<String>,
}

impl Stack {
    /// `berth server` and one separate `berth agent` process (with `agent_args`),
    /// once the agent's session is up.
    pub async fn server_and_agent(agent_args: &[&str]) -> TestResult<Self> {
        Self::server_and_agent_with(&[], agent_args).await
    }

    /// [`Stack::server_and_agent`] with more arguments for the server.
    pub async fn server_and_agent_with(
        server_args: &[&str],
        agent_args: &[&str],
    ) -> TestResult<Self> {
        ensure_test_image()?;
        // Pinned: a restarted control plane is found again by its agents.
        // A short running grace keeps service rollouts in tests quick.
        let mut args = vec!["--task-running-grace", "3"];
        args.extend_from_slice(server_args);
        let server = BerthServer::start_pinned(&args)?;
        let mut stack = Self::around(server, ACCESS_KEY_ID, SECRET_ACCESS_KEY);
        stack.add_agent(agent_args).await?;
        Ok(stack)
    }

    /// `berth up` with the test key (and `args`), once its agent's session is up.
    pub async fn up(args: &[&str]) -> TestResult<Self> {
        ensure_test_image()?;
        let key = format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}");
        let mut all = vec!["--access-key", key.as_str()];
        all.extend_from_slice(args);
        let server = BerthServer::start_up(&all)?;
        Self::up_around(server, ACCESS_KEY_ID, SECRET_ACCESS_KEY).await
    }

    /// `berth up` as a new user runs it: no key given, so berth creates one in its
    /// data directory's credentials file, which the client then uses.
    pub async fn up_quickstart() -> TestResult<Self> {
        ensure_test_image()?;
        let server = BerthServer::start_up(&[])?;
        let credentials = std::fs::read_to_string(server.data_dir().join("credentials"))?;
        let value = |name: &str| {
            credentials.lines().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let key_id = value("aws_access_key_id").req("aws_access_key_id in the credentials file")?;
        let secret =
            value("aws_secret_access_key").req("aws_secret_access_key in the credentials file")?;
        Self::up_around(server, &key_id, &secret).await
    }

    fn around(server: BerthServer, key_id: &str, secret: &str) -> Self {
        Self {
            server,
            agents: Vec::new(),
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            agent_dirs: Vec::new(),
            instances: Vec::new(),
        }
    }

    async fn up_around(server: BerthServer, key_id: &str, secret: &str) -> TestResult<Self> {
        let agent_dir = server.data_dir().join("agent");
        let mut stack = Self::around(server, key_id, secret);
        stack.agent_dirs.push(agent_dir.clone());
        let arn = stack.wait_registered(&agent_dir).await?;
        stack.wait_connected(&arn, true).await?;
        Ok(stack)
    }

    /// Starts one more agent process; returns its instance ARN once it is connected.
    pub async fn add_agent(&mut self, args: &[&str]) -> TestResult<String> {
        let agent = BerthAgent::start(&self.server, args)?;
        let dir = agent.data_dir();
        self.agent_dirs.push(dir.clone());
        self.agents.push(agent);
        let arn = self.wait_registered(&dir).await?;
        self.wait_connected(&arn, true).await?;
        Ok(arn)
    }

    async fn wait_registered(&mut self, agent_dir: &Path) -> TestResult<String> {
        let arn = wait_for("the agent to register", CONNECT_DEADLINE, || async {
            Ok(saved_instance_arn(agent_dir))
        })
        .await?;
        if !self.instances.contains(&arn) {
            self.instances.push(arn.clone());
        }
        Ok(arn)
    }

    /// The ARN of the `index`th instance registered.
    pub fn instance_arn(&self, index: usize) -> TestResult<String> {
        self.instances
            .get(index)
            .cloned()
            .req("a registered container instance")
    }

    /// An SDK client of the control plane (make a new one after a restart unless the
    /// port is pinned).
    pub fn client(&self) -> Client {
        self.server
            .client_with_key(REGION, &self.key_id, &self.secret)
    }

    /// Waits until DescribeContainerInstances says `agentConnected` is `connected`.
    pub async fn wait_connected(
        &self,
        arn: &str,
        connected: bool,
    ) -> TestResult<ContainerInstance> {
        let client = self.client();
        let what = format!("instance {arn} to have agentConnected {connected}");
        wait_for(&what, CONNECT_DEADLINE, || async {
            let instance = describe_instance(&client, arn).await.ok();
            Ok(instance.filter(|i| i.agent_connected() == connected))
        })
        .await
    }

    /// Every instance ARN of this stack: those seen and those saved by its agents now.
    fn all_instances(&self) -> Vec<String> {
        let mut all = self.instances.clone();
        for dir in &self.agent_dirs {
            if let Some(arn) = saved_instance_arn(dir)
                && !all.contains(&arn)
            {
                all.push(arn);
            }
        }
        all
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Processes first, so no agent starts a container after the sweep.
        for agent in &mut self.agents {
            let _ = agent.kill9();
        }
        let _ = self.server.kill9();
        for arn in self.all_instances() {
            if let Err(err) = remove_containers_of(&arn) {
                eprintln!("cannot remove the containers of {arn}: {err}");
            }
        }
    }
}

/// `docker rm -f -v` of every container labelled as `instance_arn`'s, then removal of
/// their tasks' cgroups (the agent, killed first, did not get to remove them).
pub fn remove_containers_of(instance_arn: &str) -> TestResult {
    let tasks = Command::new("docker")
        .args(["ps", "-a", "--filter"])
        .arg(format!("label={INSTANCE_LABEL}={instance_arn}"))
        .arg("--format")
        .arg(format!("{{{{index .Labels \"{TASK_ARN_LABEL}\"}}}}"))
        .stdin(Stdio::null())
        .output()?;
    let task_ids: Vec<String> = String::from_utf8_lossy(&tasks.stdout)
        .split_whitespace()
        .map(|arn| task_id(arn).to_string())
        .collect();
    let removed = remove_containers_labelled(instance_arn);
    for id in task_ids {
        remove_task_cgroup(&id);
    }
    removed
}

/// Removes the task cgroup `/berth/<task_id>` (and what is left below it) from every
/// cgroup hierarchy mounted here; what does not exist is fine.
pub fn remove_task_cgroup(task_id: &str) {
    fn remove_tree(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    if task_id.is_empty() || task_id.contains('/') || task_id.starts_with('.') {
        return;
    }
    for hierarchy in cgroup_hierarchies() {
        remove_tree(&hierarchy.join("berth").join(task_id));
    }
}

/// The mount points of the cgroup hierarchies (v1 and v2) from /proc/self/mountinfo.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fs_type = after.split(' ').next()?;
            let mount_point = before.split(' ').nth(4)?;
            matches!(fs_type, "cgroup" | "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .collect()
}

fn remove_containers_labelled(instance_arn: &str) -> TestResult {
    let listed = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label={INSTANCE_LABEL}={instance_arn}"))
        .stdin(Stdio::null())
        .output()?;
    if !listed.status.success() {
        return Err(format!(
            "docker ps failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        )
        .into());
    }
    let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let removed = Command::new("docker")
        .args(["rm", "-f", "-v"])
        .args(&ids)
        .stdin(Stdio::null())
        .output()?;
    if !removed.status.success() {
        return Err(format!(
            "docker rm failed: {}",
            String::from_utf8_lossy(&removed.stderr)
        )
        .into());
    }
    Ok(())
}

/// Polls `probe` every [`POLL`] until it gives a value, for up to `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A container definition of the test image running `command` (`sh -c` style
/// commands as `["sh", "-c", "..."]`), essential, with a 64 MiB memory limit.
pub fn container(name: &str, command: &[&str]) -> ContainerDefinition {
    container_builder(name, command).build()
}

/// [`container`] as a builder, to set more.
pub fn container_builder(
    name: &str,
    command: &[&str],
) -> aws_sdk_ecs::types::builders::ContainerDefinitionBuilder {
    ContainerDefinition::builder()
        .name(name)
        .image(TEST_IMAGE)
        .memory(64)
        .essential(true)
        .set_command(Some(command.iter().map(|c| c.to_string()).collect()))
}

/// A shell command that runs until SIGTERM, then exits 0 at once.
pub const UNTIL_TERM: &[&str] = &["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"];

/// Registers a task definition of `containers`; returns its ARN.
pub async fn register(
    client: &Client,
    family: &str,
    containers: Vec<ContainerDefinition>,
) -> TestResult<String> {
    let out = client
        .register_task_definition()
        .family(family)
        .set_container_definitions(Some(containers))
        .send()
        .await?;
    out.task_definition()
        .and_then(|td| td.task_definition_arn())
        .map(str::to_string)
        .req("the task definition ARN")
}

/// RunTask of one task of `task_definition` in the default cluster; fails on any
/// failure.
pub async fn run_task(client: &Client, task_definition: &str) -> TestResult<Task> {
    let out = client
        .run_task()
        .cluster(CLUSTER)
        .task_definition(task_definition)
        .send()
        .await?;
    if !out.failures().is_empty() || out.tasks().len() != 1 {
        return Err(format!(
            "RunTask placed {} task(s), failures {:?}",
            out.tasks().len(),
            out.failures()
        )
        .into());
    }
    out.tasks().first().cloned().req("the task")
}

pub async fn describe_task(client: &Client, task_arn: &str) -> TestResult<Task> {
    let out = client
        .describe_tasks()
        .cluster(CLUSTER)
        .tasks(task_arn)
        .send()
        .await?;
    out.tasks().first().cloned().req("the described task")
}

pub async fn describe_instance(client: &Client, arn: &str) -> TestResult<ContainerInstance> {
    let out = client
        .describe_container_instances()
        .cluster(CLUSTER)
        .container_instances(arn)
        .send()
        .await?;
    out.container_instances()
        .first()
        .cloned()
        .req("the described container instance")
}

/// Polls DescribeTasks until `done` holds for the task, for up to `limit`; the error
/// shows the task as last seen.
pub async fn wait_task(
    client: &Client,
    task_arn: &str,
    what: &str,
    limit: Duration,
    done: impl Fn(&Task) -> bool,
) -> TestResult<Task> {
    let deadline = Instant::now() + limit;
    loop {
        let task = describe_task(client, task_arn).await?;
        if done(&task) {
            return Ok(task);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {limit:?} waiting for task {task_arn} to be {what}; last seen: {task:#?}"
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for lastStatus RUNNING; fails at once if the task stops instead.
pub async fn wait_running(client: &Client, task_arn: &str) -> TestResult<Task> {
    let task = wait_task(client, task_arn, "RUNNING", TASK_DEADLINE, |t| {
        matches!(t.last_status(), Some("RUNNING" | "STOPPED"))
    })
    .await?;
    if task.last_status() != Some("RUNNING") {
        return Err(format!("the task stopped instead of running: {task:#?}").into());
    }
    Ok(task)
}

/// Waits for lastStatus STOPPED.
pub async fn wait_stopped(client: &Client, task_arn: &str) -> TestResult<Task> {
    wait_task(client, task_arn, "STOPPED", TASK_DEADLINE, |t| {
        t.last_status() == Some("STOPPED")
    })
    .await
}

/// The task's container named `name`.
pub fn container_of<'t>(task: &'t Task, name: &str) -> TestResult<&'t Container> {
    task.containers()
        .iter()
        .find(|c| c.name() == Some(name))
        .req(&format!("container {name} in the task"))
}

/// The id part of a task ARN.
pub fn task_id(task_arn: &str) -> &str {
    task_arn.rsplit('/').next().unwrap_or(task_arn)
}

/// The Docker name of a task's container: `berth-<task id>-<container>`.
pub fn runtime_name(task_arn: &str, container: &str) -> String {
    format!("berth-{}-{container}", task_id(task_arn))
}

/// Runs `docker ARGS`; its stdout, or an error with its stderr.
pub async fn docker(args: &[&str]) -> TestResult<String> {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!(
            "docker {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `docker inspect` of a container, or `None` if there is no such container.
pub async fn inspect(container: &str) -> TestResult<Option<Value>> {
    let output = tokio::process::Command::new("docker")
        .args(["container", "inspect", container])
        .stdin(Stdio::null())
        .output()
        .await?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such") {
            return Ok(None);
        }
        return Err(format!("docker inspect {container} failed: {stderr}").into());
    }
    let parsed: Value = serde_json::from_slice(&output.stdout)?;
    Ok(parsed.get(0).cloned())
}

/// `docker inspect` of a container that must exist.
pub async fn inspect_existing(container: &str) -> TestResult<Value> {
    inspect(container)
        .await?
        .req(&format!("container {container} on the Docker engine"))
}

/// A string member at `pointer` (e.g. `/State/StartedAt`) of an inspection.
pub fn field<'v>(inspection: &'v Value, pointer: &str) -> TestResult<&'v str> {
    inspection
        .pointer(pointer)
        .and_then(Value::as_str)
        .req(pointer)
}

/// Sends `GET /` to 127.0.0.1:`port` until a whole response comes back (the server
/// may still be starting), for up to `limit`; returns the response.
pub async fn http_get(port: u16, limit: Duration) -> TestResult<String> {
    let deadline = Instant::now() + limit;
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream
                .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            TestResult::Ok(String::from_utf8_lossy(&response).into_owned())
        };
        let last_error = match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(response)) if response.starts_with("HTTP/") => return Ok(response),
            Ok(Ok(response)) => format!("incomplete response {response:?}"),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "no response within 5s".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "GET http://127.0.0.1:{port}/ got no response within {limit:?}: {last_error}"
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Seconds since the epoch of an RFC 3339 time as Docker writes them
/// (`2024-05-07T21:09:36.123456789Z`, or with a `+HH:MM` offset).
pub fn epoch_of(time: &str) -> TestResult<f64> {
    let bad = || format!("not an RFC 3339 time: {time:?}");
    let (date, rest) = time.split_once('T').ok_or_else(bad)?;
    let mut parts = date.split('-');
    let mut next = || -> TestResult<i64> { Ok(parts.next().ok_or_else(bad)?.parse()?) };
    let (year, month, day) = (next()?, next()?, next()?);
    let zone_at = rest.find(['Z', '+', '-']).ok_or_else(bad)?;
    let (clock, zone) = rest.split_at(zone_at);
    let offset = match zone {
        "Z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone[1..].split_once(':').ok_or_else(bad)?;
            sign * (hours.parse::<i64>()? * 3600 + minutes.parse::<i64>()? * 60)
        }
    };
    let mut fields = clock.split(':');
    let hours: i64 = fields.next().ok_or_else(bad)?.parse()?;
    let minutes: i64 = fields.next().ok_or_else(bad)?.parse()?;
    let seconds: f64 = fields.next().ok_or_else(bad)?.parse()?;
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let whole = days * 86_400 + hours * 3600 + minutes * 60 - offset;
    Ok(whole as f64 + seconds)
}

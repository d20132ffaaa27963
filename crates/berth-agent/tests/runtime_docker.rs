//! The Docker runtime against this machine's real engine, with the test image built by
//! `scripts/build-test-image.sh` (no registry is reachable).
//!
//! Every container and volume a test makes carries that test's own `berth.test` label;
//! a guard removes them when the test ends, even when it fails. Nothing without the
//! label is touched. Tests wait for conditions with deadlines.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_agent::runtime::docker::DockerRuntime;
use berth_agent::runtime::{
    ContainerSpec, ContainerState, Health, HealthCheckSpec, Mount, MountSource, PortPublish,
    Protocol, PullPolicy, Runtime, RuntimeError, RuntimeEvent, Status,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

const IMAGE: &str = "berth-test/busybox:latest";
const TEST_LABEL: &str = "berth.test";
/// Generous: the machines are small and run tests in parallel.
const DEADLINE: Duration = Duration::from_secs(60);

/// Builds the test image once per test process.
fn test_image() -> TestResult {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image.sh");
        let output = Command::new(&script)
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    });
    match built {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone().into()),
    }
}

/// Owns what one test creates: everything labelled `berth.test=<run>`.
struct Cleanup {
    run: String,
}

impl Cleanup {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Self {
            run: format!("{test}-{}-{nanos}", std::process::id()),
        }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TEST_LABEL.to_owned(), self.run.clone())])
    }

    fn name(&self, suffix: &str) -> String {
        format!("berth-test-{}-{suffix}", self.run)
    }

    fn spec(&self, suffix: &str, command: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: self.name(suffix),
            image: IMAGE.to_owned(),
            labels: self.labels(),
            command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
            ..Default::default()
        }
    }

    fn docker_lines(args: &[&str]) -> Vec<String> {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={TEST_LABEL}={}", self.run);
        let containers = Self::docker_lines(&["ps", "-aq", "--filter", &filter]);
        if !containers.is_empty() {
            let mut args = vec!["rm", "-fv"];
            args.extend(containers.iter().map(String::as_str));
            Self::docker_lines(&args);
        }
        let volumes = Self::docker_lines(&["volume", "ls", "-q", "--filter", &filter]);
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(volumes.iter().map(String::as_str));
            Self::docker_lines(&args);
        }
    }
}

async fn setup(test: &str) -> TestResult<(DockerRuntime, Cleanup)> {
    test_image()?;
    let runtime = DockerRuntime::connect().await?;
    Ok((runtime, Cleanup::new(test)))
}

/// Polls `inspect` until `done` holds.
async fn wait_state(
    runtime: &impl Runtime,
    id: &str,
    what: &str,
    done: impl Fn(&ContainerState) -> bool,
) -> TestResult<ContainerState> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let state = runtime.inspect(id).await?;
        if done(&state) {
            return Ok(state);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}: {state:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads events until one satisfies `wanted`.
async fn wait_event(
    events: &mut BoxStream<'static, RuntimeEvent>,
    what: &str,
    wanted: impl Fn(&RuntimeEvent) -> bool,
) -> TestResult<RuntimeEvent> {
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(event) = events.next().await {
            if wanted(&event) {
                return Some(event);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => Ok(event),
        Ok(None) => Err(format!("event stream ended waiting for {what}").into()),
        Err(_) => Err(format!("timed out waiting for {what}").into()),
    }
}

fn died(id: &str) -> impl Fn(&RuntimeEvent) -> bool + '_ {
    move |e| matches!(e, RuntimeEvent::Died { id: got } if got == id)
}

async fn http_get(port: u16) -> TestResult<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream
                .write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        match attempt.await {
            Ok(response) if !response.is_empty() => return Ok(response),
            Ok(_) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(_) => return Err("empty response".into()),
            Err(e) => return Err(e.into()),
        }
    }
}

#[tokio::test]
async fn host_info_describes_the_engine() -> TestResult {
    let runtime = DockerRuntime::connect().await?;
    let info = runtime.host_info().await?;
    assert!(info.cpus >= 1, "{info:?}");
    assert!(info.memory_bytes > 0, "{info:?}");
    assert_eq!(info.os_type, "linux");
    assert!(!info.architecture.is_empty());
    assert!(!info.hostname.is_empty());
    assert!(!info.engine_version.is_empty());
    assert!(!info.kernel_version.is_empty());
    Ok(())
}

#[tokio::test]
async fn httpd_on_a_dynamic_port_serves() -> TestResult {
    let (runtime, cleanup) = setup("httpd").await?;
    let mut spec = cleanup.spec("web", &["httpd", "-f", "-p", "80", "-h", "/www"]);
    // On IPv4 only, as the engine publishes dynamic ports: Docker 20.10 may bind
    // different host ports for IPv4 and IPv6 otherwise.
    spec.ports = vec![PortPublish {
        container_port: 80,
        host_port: None,
        protocol: Protocol::Tcp,
        host_ip: Some("0.0.0.0".to_owned()),
    }];
    spec.cpu_shares = Some(1);
    spec.memory = Some(64 << 20);
    spec.memory_reservation = Some(32 << 20);
    spec.env = vec!["GREETING=hello".to_owned()];
    let id = runtime.create(&spec).await?;
    assert_eq!(runtime.inspect(&id).await?.status, Status::Created);
    runtime.start(&id).await?;

    let state = runtime.inspect(&id).await?;
    assert_eq!(state.status, Status::Running);
    assert_eq!(state.name, spec.name);
    assert_eq!(state.image, IMAGE);
    assert_eq!(state.exit_code, None);
    assert!(state.started_at.is_some());
    assert_eq!(state.finished_at, None, "Docker's zero time is no time");
    let bound = state
        .ports
        .iter()
        .find(|p| p.container_port == 80 && p.protocol == Protocol::Tcp)
        .ok_or("port 80 not bound")?;
    assert_ne!(bound.host_port, 0);

    let response = http_get(bound.host_port).await?;
    assert!(response.contains("hello from berth"), "{response}");

    runtime.stop(&id, Duration::from_secs(10)).await?;
    runtime.remove(&id).await?;
    assert!(matches!(
        runtime.inspect(&id).await,
        Err(RuntimeError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn exit_code_is_reported() -> TestResult {
    let (runtime, cleanup) = setup("exit42").await?;
    let mut events = runtime.events();
    let id = runtime
        .create(&cleanup.spec("exit", &["sh", "-c", "exit 42"]))
        .await?;
    runtime.start(&id).await?;
    wait_event(
        &mut events,
        "start",
        |e| matches!(e, RuntimeEvent::Started { id: got } if *got == id),
    )
    .await?;
    wait_event(&mut events, "die", died(&id)).await?;
    let state = runtime.inspect(&id).await?;
    assert_eq!(state.status, Status::Exited);
    assert_eq!(state.exit_code, Some(42));
    assert!(!state.oom_killed);
    // Both times are reported (Docker's own clock may put them a hair out of order).
    state.started_at.ok_or("no start time")?;
    state.finished_at.ok_or("no finish time")?;

    // Starting a missing container, and removing a stopped one.
    assert!(matches!(
        runtime.start("berth-test-no-such-container").await,
        Err(RuntimeError::NotFound(_))
    ));
    runtime.stop(&id, Duration::from_secs(1)).await?;
    runtime.remove(&id).await?;
    Ok(())
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed() -> TestResult {
    let (runtime, cleanup) = setup("oom").await?;
    let mut spec = cleanup.spec("hog", &["sh", "-c", "x=a; while true; do x=$x$x; done"]);
    spec.memory = Some(32 << 20);
    let mut events = runtime.events();
    let id = runtime.create(&spec).await?;
    runtime.start(&id).await?;
    wait_event(&mut events, "die", died(&id)).await?;
    let state = runtime.inspect(&id).await?;
    assert!(state.oom_killed, "{state:?}");
    assert_eq!(state.exit_code, Some(137));
    Ok(())
}

#[tokio::test]
async fn stop_waits_the_timeout_for_a_process_ignoring_sigterm() -> TestResult {
    let (runtime, cleanup) = setup("stopslow").await?;
    // busybox sleep as PID 1 has no SIGTERM handler, so the kernel ignores the signal.
    let id = runtime
        .create(&cleanup.spec("sleep", &["sleep", "3600"]))
        .await?;
    runtime.start(&id).await?;
    wait_state(&runtime, &id, "running", |s| s.status == Status::Running).await?;

    let began = Instant::now();
    runtime.stop(&id, Duration::from_secs(2)).await?;
    let took = began.elapsed();
    assert!(took >= Duration::from_secs(2), "stop took {took:?}");
    let state = runtime.inspect(&id).await?;
    assert_eq!(state.status, Status::Exited);
    assert_eq!(state.exit_code, Some(137));

    // Stopping a stopped container is fine.
    runtime.stop(&id, Duration::from_secs(2)).await?;
    Ok(())
}

#[tokio::test]
async fn stop_with_an_init_process_is_prompt() -> TestResult {
    let (runtime, cleanup) = setup("stopinit").await?;
    let mut spec = cleanup.spec("sleep", &["sleep", "3600"]);
    spec.init = true;
    let id = runtime.create(&spec).await?;
    runtime.start(&id).await?;
    wait_state(&runtime, &id, "running", |s| s.status == Status::Running).await?;

    let timeout = Duration::from_secs(30);
    let began = Instant::now();
    runtime.stop(&id, timeout).await?;
    let took = began.elapsed();
    // Well below the timeout: the signal reached sleep through the init process.
    assert!(took < timeout / 2, "stop took {took:?}");
    let state = runtime.inspect(&id).await?;
    assert_eq!(state.status, Status::Exited);
    assert_ne!(state.exit_code, Some(137));
    Ok(())
}

#[tokio::test]
async fn health_checks_are_reported_as_events() -> TestResult {
    let (runtime, cleanup) = setup("health").await?;
    let check = |test: &[&str]| HealthCheckSpec {
        test: test.iter().map(|s| (*s).to_owned()).collect(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        retries: 1,
        start_period: Duration::ZERO,
    };
    let mut good = cleanup.spec("good", &["sleep", "3600"]);
    good.health_check = Some(check(&["CMD-SHELL", "test -f /www/index.html"]));
    let mut bad = cleanup.spec("bad", &["sleep", "3600"]);
    bad.health_check = Some(check(&["CMD", "false"]));

    let mut events = runtime.events();
    let good = runtime.create(&good).await?;
    let bad = runtime.create(&bad).await?;
    runtime.start(&good).await?;
    runtime.start(&bad).await?;
    assert_eq!(runtime.inspect(&good).await?.health, Some(Health::Starting));

    let (mut healthy, mut unhealthy) = (false, false);
    while !(healthy && unhealthy) {
        match wait_event(&mut events, "health events", |e| {
            matches!(e, RuntimeEvent::Health { .. })
        })
        .await?
        {
            RuntimeEvent::Health { id, health } if id == good => {
                assert_eq!(health, Health::Healthy);
                healthy = true;
            }
            RuntimeEvent::Health { id, health } if id == bad => {
                assert_eq!(health, Health::Unhealthy);
                unhealthy = true;
            }
            _ => {}
        }
    }
    assert_eq!(runtime.inspect(&good).await?.health, Some(Health::Healthy));
    assert_eq!(runtime.inspect(&bad).await?.health, Some(Health::Unhealthy));
    Ok(())
}

#[tokio::test]
async fn list_filters_by_labels_and_labels_round_trip() -> TestResult {
    let (runtime, cleanup) = setup("list").await?;
    let mut ids = BTreeMap::new();
    for (suffix, role) in [("a1", "a"), ("a2", "a"), ("b1", "b")] {
        let mut spec = cleanup.spec(suffix, &["sleep", "3600"]);
        spec.labels.insert("role".to_owned(), role.to_owned());
        spec.labels
            .insert("com.example/odd key".to_owned(), "a=b, c ✓".to_owned());
        ids.insert(runtime.create(&spec).await?, spec.labels);
    }
    // One running, the others only created: list covers both.
    let first = ids.keys().next().cloned().ok_or("no container")?;
    runtime.start(&first).await?;

    let all = runtime.list(&cleanup.labels()).await?;
    assert_eq!(all.len(), 3);
    for state in &all {
        let wanted = ids.get(&state.id).ok_or("unexpected container")?;
        for (k, v) in wanted {
            assert_eq!(state.labels.get(k), Some(v), "label {k}");
        }
    }

    let mut role_a = cleanup.labels();
    role_a.insert("role".to_owned(), "a".to_owned());
    let found = runtime.list(&role_a).await?;
    assert_eq!(found.len(), 2);
    assert!(
        found
            .iter()
            .all(|s| s.labels.get("role").map(String::as_str) == Some("a"))
    );

    let mut nobody = cleanup.labels();
    nobody.insert("role".to_owned(), "c".to_owned());
    assert!(runtime.list(&nobody).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn pull_policies_without_a_registry() -> TestResult {
    let (runtime, cleanup) = setup("pull").await?;
    let missing = tokio::time::timeout(
        DEADLINE,
        runtime.ensure_image("doesnotexist/image:1", PullPolicy::Default),
    )
    .await?;
    match missing {
        Err(RuntimeError::Pull(message)) => {
            assert!(message.contains("doesnotexist/image"), "{message}");
        }
        other => return Err(format!("expected a pull error, got {other:?}").into()),
    }
    assert!(matches!(
        runtime
            .ensure_image("doesnotexist/image:1", PullPolicy::PreferCached)
            .await,
        Err(RuntimeError::Pull(_))
    ));

    // The test image is cached and cannot be pulled.
    runtime
        .ensure_image(IMAGE, PullPolicy::PreferCached)
        .await?;
    runtime.ensure_image(IMAGE, PullPolicy::Once).await?;
    runtime.ensure_image(IMAGE, PullPolicy::Default).await?;
    assert!(matches!(
        runtime.ensure_image(IMAGE, PullPolicy::Always).await,
        Err(RuntimeError::Pull(_))
    ));

    let mut spec = cleanup.spec("missing", &["true"]);
    spec.image = "doesnotexist/image:1".to_owned();
    assert!(matches!(
        runtime.create(&spec).await,
        Err(RuntimeError::Create(_))
    ));
    Ok(())
}

#[tokio::test]
async fn names_are_unique_and_running_containers_are_not_removed() -> TestResult {
    let (runtime, cleanup) = setup("names").await?;
    let spec = cleanup.spec("only", &["sleep", "3600"]);
    let id = runtime.create(&spec).await?;
    assert!(matches!(
        runtime.create(&spec).await,
        Err(RuntimeError::Create(_))
    ));
    runtime.start(&id).await?;
    assert!(matches!(
        runtime.remove(&id).await,
        Err(RuntimeError::Engine(_))
    ));
    Ok(())
}

#[tokio::test]
async fn named_volumes_are_created_mounted_and_removed() -> TestResult {
    let (runtime, cleanup) = setup("volume").await?;
    let volume = cleanup.name("data");
    runtime
        .ensure_volume(&volume, None, &cleanup.labels())
        .await?;
    runtime
        .ensure_volume(&volume, Some("local"), &cleanup.labels())
        .await?;

    let mut writer = cleanup.spec("writer", &["sh", "-c", "echo kept > /data/file"]);
    writer.mounts = vec![Mount {
        source: MountSource::Volume(volume.clone()),
        target: "/data".to_owned(),
        read_only: false,
    }];
    let mut reader = cleanup.spec("reader", &["sh", "-c", "test \"$(cat /data/file)\" = kept"]);
    reader.mounts = vec![Mount {
        source: MountSource::Volume(volume.clone()),
        target: "/data".to_owned(),
        read_only: true,
    }];
    reader.readonly_rootfs = true;

    let mut events = runtime.events();
    let writer = runtime.create(&writer).await?;
    runtime.start(&writer).await?;
    wait_event(&mut events, "writer exit", died(&writer)).await?;
    assert_eq!(runtime.inspect(&writer).await?.exit_code, Some(0));
    let reader = runtime.create(&reader).await?;
    runtime.start(&reader).await?;
    wait_event(&mut events, "reader exit", died(&reader)).await?;
    assert_eq!(runtime.inspect(&reader).await?.exit_code, Some(0));

    assert!(matches!(
        runtime.remove_volume(&volume).await,
        Err(RuntimeError::Engine(_))
    ));
    runtime.remove(&writer).await?;
    runtime.remove(&reader).await?;
    runtime.remove_volume(&volume).await?;
    runtime.remove_volume(&volume).await?;
    Ok(())
}

/// Forwards a unix socket to the engine's, and can cut every open connection.
struct Proxy {
    path: PathBuf,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start(engine: PathBuf) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path)?;
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let tracked = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let engine = engine.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::UnixStream::connect(&engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                if let Ok(mut list) = tracked.lock() {
                    list.push(task.abort_handle());
                }
            }
        });
        Ok(Self {
            path,
            connections,
            accept,
            _dir: dir,
        })
    }

    fn cut(&self) {
        if let Ok(mut list) = self.connections.lock() {
            for connection in list.drain(..) {
                connection.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn a_broken_event_stream_reconnects_and_resyncs() -> TestResult {
    let engine = match std::env::var("DOCKER_HOST") {
        Ok(host) => match host.strip_prefix("unix://") {
            Some(path) => PathBuf::from(path),
            // The proxy speaks unix sockets only.
            None => return Ok(()),
        },
        Err(_) => PathBuf::from("/var/run/docker.sock"),
    };
    let (_, cleanup) = setup("resync").await?;
    let proxy = Proxy::start(engine)?;
    let client = bollard::Docker::connect_with_unix(
        &proxy.path.to_string_lossy(),
        120,
        bollard::API_DEFAULT_VERSION,
    )?;
    let runtime = DockerRuntime::with_client(client).await?;

    let mut events = runtime.events();
    let first = runtime.create(&cleanup.spec("first", &["true"])).await?;
    runtime.start(&first).await?;
    wait_event(&mut events, "first exit", died(&first)).await?;

    proxy.cut();
    wait_event(&mut events, "resync", |e| *e == RuntimeEvent::Resync).await?;

    // Events flow again after the resync.
    let second = runtime.create(&cleanup.spec("second", &["true"])).await?;
    runtime.start(&second).await?;
    wait_event(&mut events, "second exit", died(&second)).await?;
    Ok(())
}

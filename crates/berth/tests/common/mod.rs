//! The harness of berth's end-to-end tests: a real `berth server` process on a
//! temporary data directory, an AWS SDK client pointed at it, and a raw HTTP client
//! for the requests an SDK will not send (malformed, unsigned, tampered).
//!
//! Every test starts its own server, so tests run in parallel and share nothing.
//! Dropping a [`BerthServer`] kills its process, so a failing test leaves none behind.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

pub mod docker;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::config::http::HttpResponse as SdkHttpResponse;
use aws_sdk_ecs::config::timeout::TimeoutConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub type TestError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult<T = ()> = Result<T, TestError>;

/// The access key every test server accepts (`--access-key ID:SECRET`).
pub const ACCESS_KEY_ID: &str = "AKIAE2ETESTKEY000001";
pub const SECRET_ACCESS_KEY: &str = "e2e/Secret+Access+Key/0123456789abcdefghij";
/// berth's defaults, which ECS ARNs carry.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// The awsJson1_1 target prefix of every ECS operation.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// How long a server may take to print its listen line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// The bound on any single API call of a test.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

const LISTEN_PREFIX: &str = "berth: ECS API on http://";

/// Turns an `Option` into a test error that says what was missing.
pub trait Require<T> {
    fn req(self, what: &str) -> TestResult<T>;
}

impl<T> Require<T> for Option<T> {
    fn req(self, what: &str) -> TestResult<T> {
        self.ok_or_else(|| format!("missing: {what}").into())
    }
}

/// A running `berth server` (or `berth up`) on its own temporary data directory.
pub struct BerthServer {
    child: Option<Child>,
    /// Holds `data/` (the server's data directory) and `server.log` (its stderr).
    work: TempDir,
    /// `server`, or `up` (the control plane with an agent in the same process).
    subcommand: &'static str,
    /// `--listen`: `127.0.0.1:0` (a new port at every start), or a pinned port that
    /// restarts keep (so that agents find the control plane again).
    listen: String,
    /// The arguments after `SUBCOMMAND --listen ADDR --data-dir DIR`.
    args: Vec<String>,
    addr: SocketAddr,
    /// The stdout lines printed before the listen line, of the latest start.
    startup_lines: Vec<String>,
}

impl BerthServer {
    /// Starts a server that accepts the test access key.
    pub fn start() -> TestResult<Self> {
        Self::start_with(&[])
    }

    /// Starts a server that accepts the test access key, with extra arguments.
    pub fn start_with(args: &[&str]) -> TestResult<Self> {
        Self::launch(with_test_key(args))
    }

    /// Starts a server with exactly these extra arguments (no test access key).
    pub fn start_without_test_key(args: &[&str]) -> TestResult<Self> {
        Self::launch(args.iter().map(|a| a.to_string()).collect())
    }

    /// Starts a server that accepts the test access key on a port of its own that
    /// [`BerthServer::restart`] keeps, so that agents reconnect to the restarted server.
    pub fn start_pinned(args: &[&str]) -> TestResult<Self> {
        let listen = format!("127.0.0.1:{}", docker::free_port()?);
        Self::launch_as("server", listen, with_test_key(args))
    }

    /// Starts `berth up` (control plane and an agent for the local Docker engine, in
    /// one process) with exactly these extra arguments.
    pub fn start_up(args: &[&str]) -> TestResult<Self> {
        let listen = format!("127.0.0.1:{}", docker::free_port()?);
        Self::launch_as("up", listen, args.iter().map(|a| a.to_string()).collect())
    }

    fn launch(args: Vec<String>) -> TestResult<Self> {
        Self::launch_as("server", "127.0.0.1:0".to_string(), args)
    }

    fn launch_as(subcommand: &'static str, listen: String, args: Vec<String>) -> TestResult<Self> {
        let work = tempfile::Builder::new().prefix("berth-e2e-").tempdir()?;
        let mut server = Self {
            child: None,
            work,
            subcommand,
            listen,
            args,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            startup_lines: Vec::new(),
        };
        server.spawn()?;
        Ok(server)
    }

    /// Spawns the process and waits (up to a deadline) for its listen line.
    fn spawn(&mut self) -> TestResult {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg(self.subcommand)
            .args(["--listen", &self.listen, "--data-dir"])
            .arg(self.data_dir())
            .args(&self.args)
            .env_remove("BERTH_LISTEN")
            .env_remove("BERTH_DATA_DIR")
            .env_remove("BERTH_REGION")
            .env_remove("BERTH_ACCOUNT_ID")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child.stdout.take().req("the server's stdout")?;
        self.child = Some(child);
        let lines = forward_lines(stdout);

        let deadline = Instant::now() + START_DEADLINE;
        self.startup_lines.clear();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(LISTEN_PREFIX) {
                        let address = rest.split_whitespace().next().unwrap_or_default();
                        self.addr = address.parse().map_err(|err| {
                            format!("cannot parse the listen address in {line:?}: {err}")
                        })?;
                        return Ok(());
                    }
                    self.startup_lines.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill9()?;
                    return Err(format!(
                        "berth printed no listen line within {START_DEADLINE:?}; stdout {:?}; log:\n{}",
                        self.startup_lines,
                        self.log()
                    )
                    .into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(STOP_DEADLINE)?;
                    return Err(format!(
                        "berth exited ({status}) before listening; stdout {:?}; log:\n{}",
                        self.startup_lines,
                        self.log()
                    )
                    .into());
                }
            }
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.work.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.work.path().join("server.log")
    }

    /// What the server wrote to stderr, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The stdout lines printed before the listen line (e.g. "created access key").
    pub fn startup_lines(&self) -> &[String] {
        &self.startup_lines
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`. The port changes on every (re)start.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// An SDK client for us-east-1 with the test access key.
    pub fn client(&self) -> Client {
        self.client_in(REGION)
    }

    /// An SDK client signing for `region` with the test access key.
    pub fn client_in(&self, region: &str) -> Client {
        self.client_with_key(region, ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    /// An SDK client signing with any key (right, wrong or unknown).
    pub fn client_with_key(&self, region: &str, key_id: &str, secret: &str) -> Client {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(CALL_DEADLINE)
            .build();
        let config = aws_sdk_ecs::Config::builder()
            .endpoint_url(self.endpoint())
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new(key_id, secret, None, None, "test"))
            .behavior_version(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .build();
        Client::from_conf(config)
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and reaps it.
    pub fn kill9(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Sends SIGTERM and waits (up to a deadline) for the server to exit.
    pub fn stop(&mut self) -> TestResult<ExitStatus> {
        let pid = self.pid().req("a running server")?;
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        if !sent.success() {
            return Err(format!("kill -TERM {pid} failed: {sent}").into());
        }
        self.wait_exit(STOP_DEADLINE)
    }

    /// Waits for the child to exit; kills it when the deadline passes.
    fn wait_exit(&mut self, limit: Duration) -> TestResult<ExitStatus> {
        let mut child = self.child.take().req("a server process")?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                child.kill()?;
                child.wait()?;
                return Err(format!("berth did not exit within {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again on the same data directory with the same arguments
    /// (stopping it with SIGTERM first if it still runs). The port changes (unless it
    /// is pinned): make new clients afterwards.
    pub fn restart(&mut self) -> TestResult {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn()
    }

    /// Sends `request` as it is (adding Host and Content-Length when missing).
    pub async fn send(&self, request: &RawRequest) -> TestResult<RawResponse> {
        let mut head = String::from("POST / HTTP/1.1\r\n");
        let has = |name: &str| {
            request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            head.push_str(&format!("Host: {}\r\n", self.addr));
        }
        if !has("content-length") {
            head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
        }
        for (name, value) in &request.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&request.body);
        self.send_bytes(bytes).await
    }

    /// Writes `bytes` on a fresh connection and reads the response. The write runs
    /// beside the read, so a server that answers before reading the whole body (a 413)
    /// is heard even if it then closes the connection.
    async fn send_bytes(&self, bytes: Vec<u8>) -> TestResult<RawResponse> {
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            let (mut reader, mut writer) = stream.into_split();
            // The task hands the write half back instead of dropping it: dropping it
            // would half-close the connection, and a server may take that EOF as the
            // client going away before it answers.
            let write = tokio::spawn(async move {
                let result = writer.write_all(&bytes).await;
                let _ = writer.flush().await;
                (result, writer)
            });
            let mut received = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let read_error = loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break None,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(err) => break Some(err),
                }
            };
            write.abort();
            match RawResponse::parse(&received) {
                Some(response) => Ok(response),
                None => Err(match read_error {
                    Some(err) => format!("connection failed before a whole response: {err}").into(),
                    None => format!(
                        "incomplete HTTP response: {:?}",
                        String::from_utf8_lossy(&received[..received.len().min(500)])
                    )
                    .into(),
                }),
            }
        };
        tokio::time::timeout(CALL_DEADLINE, exchange)
            .await
            .map_err(|_| format!("no response within {CALL_DEADLINE:?}"))?
    }

    /// Calls `op` with a JSON body, signed with the test key for us-east-1, now.
    pub async fn call(&self, op: &str, body: &Value) -> TestResult<RawResponse> {
        let request = RawRequest::ecs(op, body.to_string()).signed(self, &Signer::test_key())?;
        self.send(&request).await
    }

    /// Calls `op` and returns the JSON answer, failing on anything but HTTP 200.
    pub async fn call_ok(&self, op: &str, body: &Value) -> TestResult<Value> {
        let response = self.call(op, body).await?;
        if response.status != 200 {
            return Err(format!("{op} answered {}: {}", response.status, response.text()).into());
        }
        response.json()
    }
}

impl Drop for BerthServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- berth server log ({}) ---\n{}",
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

/// `--access-key` with the test key, then `args`.
fn with_test_key(args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--access-key".to_string(),
        format!("{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}"),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// Forwards the child's stdout line by line, and keeps draining it after the
/// receiver is gone so the child never blocks on a full pipe.
fn forward_lines(stdout: std::process::ChildStdout) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = sender.send(line);
        }
    });
    receiver
}

/// An HTTP request to the ECS endpoint: headers and body, exactly as they will be sent.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// An awsJson1_1 request for `op` (X-Amz-Target and Content-Type set), unsigned.
    pub fn ecs(op: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            headers: vec![
                ("X-Amz-Target".to_string(), format!("{TARGET_PREFIX}{op}")),
                (
                    "Content-Type".to_string(),
                    "application/x-amz-json-1.1".to_string(),
                ),
            ],
            body: body.into(),
        }
    }

    /// Sets a header (replacing one of the same name).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Signs the request (headers and body as they are now) for `server`.
    pub fn signed(mut self, server: &BerthServer, signer: &Signer) -> TestResult<Self> {
        let host = server.addr().to_string();
        self = self.header("Host", &host);
        let identity = Credentials::new(&signer.key_id, &signer.secret, None, None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&signer.region)
            .name("ecs")
            .time(signer.time)
            .settings(aws_sigv4::http_request::SigningSettings::default())
            .build()?
            .into();
        let headers = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let signable = aws_sigv4::http_request::SignableRequest::new(
            "POST",
            format!("http://{host}/"),
            headers,
            aws_sigv4::http_request::SignableBody::Bytes(&self.body),
        )?;
        let (instructions, _signature) =
            aws_sigv4::http_request::sign(signable, &params)?.into_parts();
        let (new_headers, _query) = instructions.into_parts();
        let new_headers: Vec<(String, String)> = new_headers
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        for (name, value) in new_headers {
            self = self.header(&name, &value);
        }
        Ok(self)
    }
}

/// Who signs a raw request, for which region, at what time.
#[derive(Debug, Clone)]
pub struct Signer {
    pub key_id: String,
    pub secret: String,
    pub region: String,
    pub time: SystemTime,
}

impl Signer {
    /// The test access key, us-east-1, now.
    pub fn test_key() -> Self {
        Self::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    pub fn new(key_id: &str, secret: &str) -> Self {
        Self {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            region: REGION.to_string(),
            time: SystemTime::now(),
        }
    }

    pub fn at(mut self, time: SystemTime) -> Self {
        self.time = time;
        self
    }
}

/// An HTTP response as read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Parses a whole HTTP/1.1 response (Content-Length, chunked, or up to EOF).
    fn parse(bytes: &[u8]) -> Option<Self> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let rest = &bytes[end + 4..];
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let body = if let Some(length) = find("content-length") {
            let length: usize = length.parse().ok()?;
            rest.get(..length)?.to_vec()
        } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            dechunk(rest)?
        } else {
            rest.to_vec()
        };
        Some(Self {
            status,
            headers,
            body,
        })
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> TestResult<Value> {
        serde_json::from_slice(&self.body)
            .map_err(|err| format!("response body is not JSON ({err}): {}", self.text()).into())
    }

    /// The error code of an error response: `__type` without any `namespace#` prefix.
    pub fn error_code(&self) -> Option<String> {
        let body = self.json().ok()?;
        let code = body.get("__type")?.as_str()?;
        Some(code.rsplit('#').next().unwrap_or(code).to_string())
    }

    /// The `message` (or `Message`) of an error response.
    pub fn error_message(&self) -> String {
        let body = self.json().unwrap_or_default();
        body.get("message")
            .or_else(|| body.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// The code in `X-Amzn-Errortype` (which may carry a `:namespace` suffix).
    pub fn error_type_header(&self) -> Option<&str> {
        self.header("x-amzn-errortype")
            .map(|v| v.split(':').next().unwrap_or(v))
    }

    /// Asserts an error response: status, code in the body and in X-Amzn-Errortype.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "expected HTTP {status} {code}; got: {}",
            self.text()
        );
        assert_eq!(
            self.error_code().as_deref(),
            Some(code),
            "body: {}",
            self.text()
        );
        assert_eq!(
            self.error_type_header(),
            Some(code),
            "headers: {:?}",
            self.headers
        );
    }
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// What an SDK call failed with.
#[derive(Debug, Clone)]
pub struct ServiceError {
    pub code: String,
    pub message: String,
    pub status: Option<u16>,
}

/// The error of an SDK call that must fail; a test error if it succeeded.
pub fn service_error<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E, SdkHttpResponse>>,
) -> TestResult<ServiceError> {
    match result {
        Ok(output) => Err(format!("the call succeeded but must fail: {output:?}").into()),
        Err(err) => {
            let status = err.raw_response().map(|r| r.status().as_u16());
            let code = err.code().map(str::to_string);
            let message = err.message().unwrap_or_default().to_string();
            match code {
                Some(code) => Ok(ServiceError {
                    code,
                    message,
                    status,
                }),
                None => Err(format!("the call failed without a service error: {err:?}").into()),
            }
        }
    }
}

impl ServiceError {
    /// Asserts the code is one of `codes`.
    #[track_caller]
    pub fn assert_code(&self, codes: &[&str]) {
        assert!(
            codes.contains(&self.code.as_str()),
            "expected one of {codes:?}, got {self:?}"
        );
    }
}

/// The ARN of a cluster, as ECS writes it.
pub fn cluster_arn(region: &str, name: &str) -> String {
    format!("arn:aws:ecs:{region}:{ACCOUNT}:cluster/{name}")
}

/// The ARN of a task definition revision, as ECS writes it.
pub fn task_definition_arn(region: &str, family: &str, revision: i32) -> String {
    format!("arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{family}:{revision}")
}

/// The directory of real-world task definitions: `BERTH_CORPUS_DIR`, or the shared
/// corpus beside the repository.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("BERTH_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/taskdefs"),
    }
}

/// Every `*.json` file of the corpus, sorted by name. Fails (never skips) when the
/// corpus is missing.
pub fn corpus_files() -> TestResult<Vec<PathBuf>> {
    let dir = corpus_dir();
    let entries = std::fs::read_dir(&dir).map_err(|err| {
        format!(
            "cannot read the task definition corpus {}: {err}",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.json in the corpus {}", dir.display()).into());
    }
    Ok(files)
}

/// A corpus file as a RegisterTaskDefinition body: the `{"taskDefinition": {...}}`
/// wrapper of describe-style files removed.
pub fn corpus_request(path: &Path) -> TestResult<Value> {
    let text = std::fs::read_to_string(path)?;
    let mut value: Value = serde_json::from_str(&text)?;
    if let Some(inner) = value.get_mut("taskDefinition").map(Value::take) {
        value = inner;
    }
    Ok(value)
}

/// Collects where `got` does not carry what `sent` said: every member of `sent`
/// must come back with the same value. `got` may hold more (ECS fills in defaults);
/// an empty list or map sent may come back absent.
pub fn differences(sent: &Value, got: Option<&Value>, path: &str, out: &mut Vec<String>) {
    match (sent, got) {
        (Value::Null, _) => {}
        (Value::Array(items), None) if items.is_empty() => {}
        (Value::Object(members), None) if members.is_empty() => {}
        (_, None) => out.push(format!("{path}: sent {sent}, missing in the answer")),
        (Value::Object(members), Some(Value::Object(got_members))) => {
            for (name, value) in members {
                differences(value, got_members.get(name), &format!("{path}.{name}"), out);
            }
        }
        (Value::Array(items), Some(Value::Array(got_items))) => {
            if items.len() != got_items.len() {
                out.push(format!(
                    "{path}: sent {} items, got {}",
                    items.len(),
                    got_items.len()
                ));
                return;
            }
            for (i, (item, got_item)) in items.iter().zip(got_items).enumerate() {
                differences(item, Some(got_item), &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Some(Value::Number(b))) if a.as_f64() == b.as_f64() => {}
        (_, Some(other)) if sent == other => {}
        (_, Some(other)) => out.push(format!("{path}: sent {sent}, got {other}")),
    }
}

/// The ListTasks filters a test asks with.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter<'a> {
    pub service: Option<&'a str>,
    pub started_by: Option<&'a str>,
    pub desired: Option<aws_sdk_ecs::types::DesiredStatus>,
}

/// Every task ARN ListTasks gives in `cluster` for `filter`, every page.
pub async fn list_task_arns(
    client: &Client,
    cluster: &str,
    filter: &TaskFilter<'_>,
) -> TestResult<Vec<String>> {
    let mut arns = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_tasks()
            .cluster(cluster)
            .set_service_name(filter.service.map(str::to_string))
            .set_started_by(filter.started_by.map(str::to_string))
            .set_desired_status(filter.desired.clone())
            .set_next_token(token)
            .send()
            .await?;
        arns.extend(out.task_arns().iter().cloned());
        match out.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(arns),
        }
    }
}

/// DescribeServices of one service in `cluster`; a failure is an error.
pub async fn describe_service(
    client: &Client,
    cluster: &str,
    name: &str,
) -> TestResult<aws_sdk_ecs::types::Service> {
    let out = client
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await?;
    if !out.failures().is_empty() {
        return Err(format!("DescribeServices failed: {:?}", out.failures()).into());
    }
    out.services().first().cloned().req("the described service")
}

/// DescribeTasks of `arns` in `cluster`, 100 at a time; any failure is an error.
pub async fn describe_task_arns(
    client: &Client,
    cluster: &str,
    arns: &[String],
) -> TestResult<Vec<aws_sdk_ecs::types::Task>> {
    let mut tasks = Vec::new();
    for chunk in arns.chunks(100) {
        let out = client
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await?;
        if !out.failures().is_empty() {
            return Err(format!("DescribeTasks failed: {:?}", out.failures()).into());
        }
        tasks.extend(out.tasks().iter().cloned());
    }
    Ok(tasks)
}

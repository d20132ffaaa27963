//! berth processes started for a benchmark. A control plane (`berth server`, or
//! `berth up` with its in-process agent): a fresh data directory, a generated access
//! key, an ephemeral port read from its stdout. A separate `berth agent`. Each is
//! killed when dropped (the containers of its tasks keep running: the benchmarks
//! remove those themselves).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::signer::AccessKey;

/// How long the server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The line the server prints once it listens.
const READY_PREFIX: &str = "berth: ECS API on http://";

pub struct ServerProcess {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    /// Dropped after the child is killed (field order), deleting the store.
    dir: TempDir,
}

impl ServerProcess {
    /// Starts `berth server` from `binary` with its data under a new directory in
    /// `parent` (the system's temporary directory if `None`).
    pub fn start(binary: &Path, parent: Option<&Path>, key: &AccessKey) -> anyhow::Result<Self> {
        Self::start_as(binary, "server", &[], parent, key)
    }

    /// Starts `berth SUBCOMMAND` (`server` or `up`) with `extra` arguments.
    pub fn start_as(
        binary: &Path,
        subcommand: &str,
        extra: &[&str],
        parent: Option<&Path>,
        key: &AccessKey,
    ) -> anyhow::Result<Self> {
        let dir = temp_dir(parent)?;
        let data_dir = dir.path().join("data");
        let log = dir.path().join("server.log");
        let stderr = File::create(&log).context("cannot create the server log")?;

        let mut child = Command::new(binary)
            .arg(subcommand)
            .args(extra)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--access-key")
            .arg(key.to_string())
            .env_remove("BERTH_LISTEN")
            .env_remove("BERTH_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;

        // Read stdout on a thread, which keeps draining it after the address is known
        // so the server never blocks on a full pipe.
        let (lines, ready) = mpsc::channel::<String>();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = lines.send(line);
                }
            });
        }
        let mut server = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            dir,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ready.recv_timeout(left) {
                Ok(line) => {
                    if let Some(address) = parse_ready_line(&line) {
                        server.address = address;
                        return Ok(server);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "berth {subcommand} printed no address within {}s; its log:\n{}",
                        START_TIMEOUT.as_secs(),
                        server.log_tail(40)
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().context("cannot wait for berth")?;
                    bail!(
                        "berth {subcommand} exited ({status}) before it listened; its log:\n{}",
                        server.log_tail(40)
                    );
                }
            }
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of the server's stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(parent: Option<&Path>) -> anyhow::Result<TempDir> {
    match parent {
        Some(parent) => tempfile::Builder::new()
            .prefix("berth-bench-")
            .tempdir_in(parent),
        None => tempfile::Builder::new().prefix("berth-bench-").tempdir(),
    }
    .context("cannot create a data directory")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A `berth agent` process with its own data directory.
pub struct AgentProcess {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl AgentProcess {
    /// Starts `berth agent` joining `cluster` at `endpoint`, with `extra` arguments.
    pub fn start(
        binary: &Path,
        endpoint: &str,
        cluster: &str,
        key: &AccessKey,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = temp_dir(None)?;
        let log = dir.path().join("agent.log");
        let stderr = File::create(&log).context("cannot create the agent log")?;
        let child = Command::new(binary)
            .arg("agent")
            .arg("--endpoint")
            .arg(endpoint)
            .arg("--cluster")
            .arg(cluster)
            .arg("--data-dir")
            .arg(dir.path().join("agent"))
            .arg("--access-key")
            .arg(key.to_string())
            .args(extra)
            .env_remove("BERTH_ENDPOINT")
            .env_remove("BERTH_CLUSTER")
            .env_remove("BERTH_AGENT_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {} agent", binary.display()))?;
        Ok(Self {
            child,
            log,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in `berth: ECS API on http://127.0.0.1:PORT (data in DIR)`.
fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix(READY_PREFIX)?;
    let authority = rest.split_whitespace().next()?.trim_end_matches('/');
    authority.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(
            parse_ready_line("berth: ECS API on http://127.0.0.1:40123 (data in /tmp/x y)"),
            Some(SocketAddr::from(([127, 0, 0, 1], 40123)))
        );
        assert_eq!(
            parse_ready_line("berth: created access key AKIA (secret in x)"),
            None
        );
        assert_eq!(
            parse_ready_line("berth: ECS API on http://nonsense (data in x)"),
            None
        );
    }
}

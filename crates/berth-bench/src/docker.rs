//! The local Docker engine, two ways: its Engine API spoken directly over the Unix
//! socket (a keep-alive connection, requests written by hand: the engine's own cost
//! with next to no client overhead), and the `docker` CLI, as people run containers.
//!
//! Also the clean-up guard: every container a benchmark makes carries a label naming
//! it, and [`Cleanup`] removes what carries those labels, at the end and on any early
//! return. Nothing without one of its labels is touched (other people's containers
//! may share the engine).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::net::UnixStream;

use crate::http1::Connection;

/// The label every container `docker run`/the Engine API makes here carries, with the
/// benchmark run's id as its value.
pub const RUN_LABEL: &str = "berth-bench.run";
/// How long one Engine API call or CLI command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the engine listens: `DOCKER_HOST` if it names a Unix socket, else the default.
pub fn socket_path() -> anyhow::Result<PathBuf> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
            Some(path) => Ok(PathBuf::from(path)),
            None => bail!("DOCKER_HOST={host}: only unix:// engines are supported"),
        },
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

/// A keep-alive connection to the Engine API.
pub struct Engine {
    path: PathBuf,
    conn: Option<Connection<UnixStream>>,
    /// `/v1.41`: the engine's own API version, asked once.
    prefix: String,
}

/// An Engine API answer.
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl Engine {
    /// Connects and asks the engine for its version.
    /// Connects to the engine and checks that `image` is on it (the benchmarks run
    /// a local image; no registry is reachable).
    pub async fn connect_with_image(image: &str) -> anyhow::Result<Self> {
        let mut engine = Self::connect()
            .await
            .context("cannot reach the Docker engine")?;
        if !engine.has_image(image).await? {
            bail!("the image {image} is not on the engine: run scripts/build-test-image.sh");
        }
        Ok(engine)
    }

    pub async fn connect() -> anyhow::Result<Self> {
        let path = socket_path()?;
        let mut engine = Self {
            path,
            conn: None,
            prefix: String::new(),
        };
        let answer = engine.call("GET", "/version", None).await?;
        if answer.status != 200 {
            bail!("the Docker engine answered {} to /version", answer.status);
        }
        let version = answer.json["ApiVersion"]
            .as_str()
            .context("the Docker engine names no API version")?;
        engine.prefix = format!("/v{version}");
        Ok(engine)
    }

    /// The engine's version ("20.10.24"), API version and storage driver, for reports.
    pub async fn describe(&mut self) -> anyhow::Result<String> {
        let version = self.call("GET", "/version", None).await?.json;
        let info = self.call("GET", "/info", None).await?.json;
        Ok(format!(
            "Docker Engine {} (API {}, storage driver {}, cgroup {} v{})",
            version["Version"].as_str().unwrap_or("?"),
            version["ApiVersion"].as_str().unwrap_or("?"),
            info["Driver"].as_str().unwrap_or("?"),
            info["CgroupDriver"].as_str().unwrap_or("?"),
            info["CgroupVersion"].as_str().unwrap_or("?"),
        ))
    }

    /// Opens the connection now if it is not open, so a timed call does not connect.
    pub async fn warm(&mut self) -> anyhow::Result<()> {
        self.connection().await.map(|_| ())
    }

    async fn connection(&mut self) -> anyhow::Result<&mut Connection<UnixStream>> {
        match &mut self.conn {
            Some(conn) => Ok(conn),
            slot @ None => {
                let stream = UnixStream::connect(&self.path)
                    .await
                    .with_context(|| format!("cannot connect to {}", self.path.display()))?;
                Ok(slot.insert(Connection::over(stream)))
            }
        }
    }

    /// One request; `path` is without the version prefix.
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {}{path} HTTP/1.1\r\nhost: docker\r\nuser-agent: berth-bench\r\n",
            self.prefix
        );
        if !body.is_empty() {
            request.push_str("content-type: application/json\r\n");
        }
        request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        let conn = self.connection().await?;
        let result = tokio::time::timeout(CALL_TIMEOUT, conn.round_trip(request.as_bytes())).await;
        let response = match result {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                self.conn = None;
                return Err(err).with_context(|| format!("Docker {method} {path}"));
            }
            Err(_) => {
                self.conn = None;
                bail!("Docker {method} {path}: no answer in {CALL_TIMEOUT:?}");
            }
        };
        let status = response.status;
        let text = String::from_utf8_lossy(response.body).into_owned();
        if response.close {
            self.conn = None;
        }
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, json, text })
    }

    /// Creates a container; returns its id.
    pub async fn create(&mut self, name: &str, body: &Value) -> anyhow::Result<String> {
        let answer = self
            .call(
                "POST",
                &format!("/containers/create?name={name}"),
                Some(body),
            )
            .await?;
        if answer.status != 201 {
            bail!("Docker create answered {}: {}", answer.status, answer.text);
        }
        answer.json["Id"]
            .as_str()
            .map(str::to_string)
            .context("Docker create answered no id")
    }

    pub async fn start(&mut self, id: &str) -> anyhow::Result<()> {
        let answer = self
            .call("POST", &format!("/containers/{id}/start"), None)
            .await?;
        if answer.status != 204 {
            bail!("Docker start answered {}: {}", answer.status, answer.text);
        }
        Ok(())
    }

    /// Sends SIGKILL to a running container.
    pub async fn kill(&mut self, id: &str) -> anyhow::Result<()> {
        let answer = self
            .call("POST", &format!("/containers/{id}/kill"), None)
            .await?;
        if answer.status != 204 {
            bail!("Docker kill answered {}: {}", answer.status, answer.text);
        }
        Ok(())
    }

    pub async fn inspect(&mut self, id: &str) -> anyhow::Result<Value> {
        let answer = self
            .call("GET", &format!("/containers/{id}/json"), None)
            .await?;
        if answer.status != 200 {
            bail!("Docker inspect answered {}: {}", answer.status, answer.text);
        }
        Ok(answer.json)
    }

    /// Kills and removes a container; one already gone is fine.
    pub async fn remove(&mut self, id: &str) -> anyhow::Result<()> {
        let answer = self
            .call(
                "DELETE",
                &format!("/containers/{id}?force=true&v=true"),
                None,
            )
            .await?;
        if answer.status != 204 && answer.status != 404 {
            bail!("Docker remove answered {}: {}", answer.status, answer.text);
        }
        Ok(())
    }

    /// The ids of every container (running or not) with label `key=value`.
    pub async fn list(&mut self, key: &str, value: &str) -> anyhow::Result<Vec<String>> {
        let filters = json!({ "label": [format!("{key}={value}")] }).to_string();
        let path = format!(
            "/containers/json?all=true&filters={}",
            percent_encode(&filters)
        );
        let answer = self.call("GET", &path, None).await?;
        if answer.status != 200 {
            bail!("Docker list answered {}: {}", answer.status, answer.text);
        }
        Ok(answer
            .json
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(str::to_string))
            .collect())
    }

    /// How many containers run on the engine now (anyone's).
    pub async fn running_count(&mut self) -> anyhow::Result<usize> {
        let answer = self.call("GET", "/containers/json", None).await?;
        Ok(answer.json.as_array().map_or(0, Vec::len))
    }

    /// Whether the image is on the engine.
    pub async fn has_image(&mut self, image: &str) -> anyhow::Result<bool> {
        let answer = self
            .call("GET", &format!("/images/{image}/json"), None)
            .await?;
        Ok(answer.status == 200)
    }
}

/// Query-string encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Docker's RFC 3339 time (nanoseconds) as epoch seconds; `None` for its zero time.
pub fn epoch_seconds(time: &Value) -> Option<f64> {
    let text = time.as_str()?;
    if text.starts_with("0001-01-01") {
        return None;
    }
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some(parsed.unix_timestamp_nanos() as f64 / 1e9)
}

/// The `docker` CLI's client and server versions.
pub fn cli_version() -> Option<String> {
    let output = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Client.Version}}"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Runs `docker ARGS...`; returns its trimmed stdout, or the error it printed.
pub async fn cli(args: &[String]) -> anyhow::Result<String> {
    let child = tokio::process::Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run docker")?;
    let output = tokio::time::timeout(CALL_TIMEOUT, child.wait_with_output())
        .await
        .with_context(|| format!("docker {} did not finish", args.join(" ")))??;
    if !output.status.success() {
        bail!(
            "docker {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Removes, when asked and when dropped, every container carrying one of its labels.
/// Uses the CLI, which works from `Drop` without a runtime.
#[derive(Clone, Default)]
pub struct Cleanup {
    labels: Arc<Mutex<Vec<String>>>,
}

impl Cleanup {
    /// Containers labelled `key=value` are the benchmark's.
    pub fn own(&self, key: &str, value: &str) {
        let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        labels.push(format!("{key}={value}"));
    }

    /// Removes the containers now; returns how many there were.
    pub fn run(&self) -> usize {
        let labels = self
            .labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut removed = 0;
        for label in labels {
            let Ok(output) = std::process::Command::new("docker")
                .args(["ps", "-aq", "--no-trunc", "--filter"])
                .arg(format!("label={label}"))
                .output()
            else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect();
            for chunk in ids.chunks(50) {
                let status = std::process::Command::new("docker")
                    .args(["rm", "-f", "-v"])
                    .args(chunk)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if status.is_ok_and(|s| s.success()) {
                    removed += chunk.len();
                }
            }
        }
        removed
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Only the last clone cleans up on drop.
        if Arc::strong_count(&self.labels) == 1 {
            let removed = self.run();
            if removed > 0 {
                eprintln!("berth-bench: removed {removed} leftover containers");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_times() {
        let t = epoch_seconds(&json!("2024-05-01T10:00:00.123456789Z"));
        assert!(t.is_some_and(|t| (t - 1_714_557_600.123_456_8).abs() < 1e-6));
        assert_eq!(epoch_seconds(&json!("0001-01-01T00:00:00Z")), None);
        assert_eq!(epoch_seconds(&Value::Null), None);
    }

    #[test]
    fn filters_are_encoded() {
        assert_eq!(
            percent_encode(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }
}

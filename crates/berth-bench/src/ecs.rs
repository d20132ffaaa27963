//! An ECS client on one keep-alive connection, for the benchmarks that drive berth
//! step by step (run a task, watch it start) rather than load it.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http1::Connection;
use crate::load::describe_error;
use crate::signer::Signer;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Client<'s> {
    signer: &'s Signer,
    conn: Option<Connection>,
}

impl<'s> Client<'s> {
    pub fn new(signer: &'s Signer) -> Self {
        Self { signer, conn: None }
    }

    /// Signs `operation` with `body` now, for [`Client::send`] (possibly many times:
    /// the server accepts a signature for 15 minutes).
    pub fn sign(&self, operation: &str, body: &Value) -> anyhow::Result<Vec<u8>> {
        self.signer
            .request(operation, body.to_string().as_bytes(), SystemTime::now())
    }

    /// Opens the connection if it is not open, so a timed call does not connect.
    pub async fn warm(&mut self) -> anyhow::Result<()> {
        if self.conn.is_none() {
            let address = self.signer.endpoint().address;
            let conn = Connection::open(address)
                .await
                .with_context(|| format!("cannot connect to {address}"))?;
            self.conn = Some(conn);
        }
        Ok(())
    }

    /// Sends a signed request; returns the status and the parsed body.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<(u16, Value)> {
        self.warm().await?;
        let Some(conn) = self.conn.as_mut() else {
            bail!("no connection");
        };
        let result = tokio::time::timeout(CALL_TIMEOUT, conn.round_trip(request)).await;
        let response = match result {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                self.conn = None;
                return Err(err).context("no answer from berth");
            }
            Err(_) => {
                self.conn = None;
                bail!("no answer from berth in {CALL_TIMEOUT:?}");
            }
        };
        let status = response.status;
        let json = if status == 200 {
            serde_json::from_slice(response.body).context("berth answered malformed JSON")?
        } else {
            Value::String(describe_error(status, response.body))
        };
        if response.close {
            self.conn = None;
        }
        Ok((status, json))
    }

    /// Calls `operation`; an answer other than 200 is an error.
    pub async fn call(&mut self, operation: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.sign(operation, body)?;
        let (status, json) = self.send(&request).await?;
        if status != 200 {
            bail!("{operation} answered {}", json.as_str().unwrap_or_default());
        }
        Ok(json)
    }

    /// Waits until the cluster has `count` registered container instances whose agents
    /// are connected; returns their ARNs.
    pub async fn wait_for_instances(
        &mut self,
        cluster: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            // `default` is created when the first agent registers into it.
            let request = self.sign("ListContainerInstances", &json!({ "cluster": cluster }))?;
            let (status, listed) = self.send(&request).await?;
            let missing = status == 400
                && listed
                    .as_str()
                    .is_some_and(|e| e.contains("ClusterNotFoundException"));
            if status != 200 && !missing {
                bail!(
                    "ListContainerInstances answered {}",
                    listed.as_str().unwrap_or_default()
                );
            }
            let arns: Vec<String> = strings(&listed["containerInstanceArns"]);
            if arns.len() >= count {
                let described = self
                    .call(
                        "DescribeContainerInstances",
                        &json!({ "cluster": cluster, "containerInstances": arns }),
                    )
                    .await?;
                let connected = described["containerInstances"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|i| i["agentConnected"].as_bool() == Some(true))
                    .count();
                if connected >= count {
                    return Ok(arns);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "cluster {cluster}: {} of {count} container instances registered and \
                     connected after {timeout:?}",
                    arns.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// DescribeTasks of up to 100 tasks: the task objects.
    pub async fn describe_tasks(
        &mut self,
        cluster: &str,
        arns: &[String],
    ) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(100) {
            let answer = self
                .call(
                    "DescribeTasks",
                    &json!({ "cluster": cluster, "tasks": chunk }),
                )
                .await?;
            if let Some(failure) = answer["failures"].as_array().and_then(|f| f.first()) {
                bail!("DescribeTasks failed: {failure}");
            }
            out.extend(answer["tasks"].as_array().into_iter().flatten().cloned());
        }
        Ok(out)
    }

    /// Waits until every task in `arns` has lastStatus `status`.
    pub async fn wait_for_status(
        &mut self,
        cluster: &str,
        arns: &[String],
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let tasks = self.describe_tasks(cluster, arns).await?;
            let done = tasks
                .iter()
                .filter(|t| t["lastStatus"].as_str() == Some(status))
                .count();
            if done == arns.len() {
                return Ok(tasks);
            }
            if status != "STOPPED"
                && let Some(stopped) = tasks
                    .iter()
                    .find(|t| t["lastStatus"].as_str() == Some("STOPPED"))
            {
                bail!(
                    "task {} stopped instead of becoming {status}: {}",
                    stopped["taskArn"],
                    stopped["stoppedReason"]
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{done} of {} tasks are {status} after {timeout:?}",
                    arns.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every task in `arns`.
    pub async fn stop_tasks(&mut self, cluster: &str, arns: &[String]) -> anyhow::Result<()> {
        for arn in arns {
            self.call(
                "StopTask",
                &json!({ "cluster": cluster, "task": arn, "reason": "berth-bench" }),
            )
            .await?;
        }
        Ok(())
    }
}

/// The strings of a JSON array.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

//! The agent's half of the session: find the endpoint, connect, apply the desired
//! tasks the control plane pushes, report task state until each report is
//! acknowledged, send heartbeats, and reconnect with exponential backoff and jitter
//! whenever the session is lost. Tasks keep running while the control plane is away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::{
    AckRequest, AgentMessage, HEARTBEAT_INTERVAL_SECS, HeartbeatMessage, SESSION_TIMEOUT_SECS,
    ServerMessage, TaskStateChange,
};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::session::{self, SessionStream};
use crate::client::{ApiClient, ClientError};
use crate::engine::TaskEngine;

/// The most reports written to the session before one flush.
const MAX_REPORT_BURST: usize = 64;

/// Exponential backoff with full jitter, as the ECS agent reconnects.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: min,
        }
    }

    /// The next delay: uniformly random up to the current bound, which then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let bound = self.current;
        self.current = (self.current * 2).min(self.max);
        let millis = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiscoverPollEndpointRequest<'a> {
    container_instance: &'a str,
    cluster: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiscoverPollEndpointResponse {
    endpoint: Option<String>,
}

/// Why a session ended.
enum Ended {
    Shutdown,
    Lost(String),
}

pub struct SessionLoop {
    pub client: ApiClient,
    pub engine: Arc<TaskEngine>,
    pub cluster_arn: String,
    pub instance_arn: String,
    pub reports: mpsc::Receiver<TaskStateChange>,
    /// Told of every session opened and lost.
    pub status: Option<watch::Sender<super::AgentStatus>>,
}

impl SessionLoop {
    /// Runs until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // The newest unacknowledged report of each task: reports carry a task's full
        // state, so only the newest one matters.
        let mut pending: HashMap<String, TaskStateChange> = HashMap::new();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            match self.connect().await {
                Ok(stream) => {
                    backoff.reset();
                    for state in self.engine.known_states() {
                        pending.insert(state.task_arn.clone(), state);
                    }
                    self.set_connected(true);
                    let ended = self.serve(stream, &mut pending, &mut shutdown).await;
                    self.set_connected(false);
                    match ended {
                        Ended::Shutdown => return,
                        Ended::Lost(why) => tracing::warn!(%why, "session lost; reconnecting"),
                    }
                }
                Err(err) => tracing::warn!(%err, "cannot open a session with the control plane"),
            }
            let delay = backoff.next_delay();
            let wake = tokio::time::sleep(delay);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    _ = shutdown.changed() => return,
                    report = self.reports.recv() => match report {
                        Some(report) => { pending.insert(report.task_arn.clone(), report); }
                        None => return,
                    },
                }
            }
        }
    }

    fn set_connected(&self, connected: bool) {
        if let Some(status) = &self.status {
            status.send_modify(|status| {
                status.connected = connected;
                if connected {
                    status.sessions_opened += 1;
                }
            });
        }
    }

    async fn connect(&self) -> Result<SessionStream, ClientError> {
        let request = DiscoverPollEndpointRequest {
            container_instance: &self.instance_arn,
            cluster: &self.cluster_arn,
        };
        let answer: DiscoverPollEndpointResponse =
            self.client.call("DiscoverPollEndpoint", &request).await?;
        let endpoint = answer
            .endpoint
            .unwrap_or_else(|| self.client.endpoint().to_string());
        session::connect(
            &endpoint,
            self.client.signer(),
            &self.cluster_arn,
            &self.instance_arn,
        )
        .await
    }

    async fn serve(
        &mut self,
        mut stream: SessionStream,
        pending: &mut HashMap<String, TaskStateChange>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        tracing::info!(instance = %self.instance_arn, "session open");
        for report in pending.values() {
            if let Err(why) =
                send(&mut stream, &AgentMessage::TaskStateChange(report.clone())).await
            {
                return Ended::Lost(why);
            }
        }
        let mut heartbeat = tokio::time::interval(Duration::from_secs(HEARTBEAT_INTERVAL_SECS));
        heartbeat.tick().await;
        let timeout = Duration::from_secs(SESSION_TIMEOUT_SECS);
        let mut deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    let _ = stream.close(None).await;
                    return Ended::Shutdown;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Ended::Lost("no message from the control plane within the session timeout".into());
                }
                _ = heartbeat.tick() => {
                    if let Err(why) = send(&mut stream, &AgentMessage::HeartbeatMessage(HeartbeatMessage { healthy: true })).await {
                        return Ended::Lost(why);
                    }
                    // Re-send what is still unacknowledged (the control plane may have
                    // lost it, e.g. across its own restart).
                    for report in pending.values() {
                        if let Err(why) = send(&mut stream, &AgentMessage::TaskStateChange(report.clone())).await {
                            return Ended::Lost(why);
                        }
                    }
                }
                report = self.reports.recv() => {
                    let Some(report) = report else { return Ended::Shutdown };
                    // This report and every one already waiting, written as one burst
                    // and flushed once (a write to the socket each was most of a
                    // simulated agent's time).
                    let mut burst = vec![report];
                    while burst.len() < MAX_REPORT_BURST
                        && let Ok(more) = self.reports.try_recv()
                    {
                        burst.push(more);
                    }
                    for report in burst {
                        pending.insert(report.task_arn.clone(), report.clone());
                        if let Err(why) = queue(&mut stream, &AgentMessage::TaskStateChange(report)).await {
                            return Ended::Lost(why);
                        }
                    }
                    if let Err(why) = stream.flush().await {
                        return Ended::Lost(why.to_string());
                    }
                }
                frame = stream.next() => {
                    deadline = tokio::time::Instant::now() + timeout;
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) | None => return Ended::Lost("the control plane closed the session".into()),
                        Some(Ok(_)) => continue,
                        Some(Err(err)) => return Ended::Lost(err.to_string()),
                    };
                    let message: ServerMessage = match serde_json::from_str(text.as_str()) {
                        Ok(message) => message,
                        Err(err) => {
                            tracing::warn!(%err, "undecodable message from the control plane; ignored");
                            continue;
                        }
                    };
                    match message {
                        ServerMessage::PayloadMessage(payload) => {
                            tracing::debug!(seq = payload.seq_num, tasks = payload.tasks.len(), full = payload.full_state, "payload");
                            self.engine.apply(payload.tasks, payload.full_state);
                            let ack = AgentMessage::AckRequest(AckRequest {
                                cluster: payload.cluster_arn,
                                container_instance: payload.container_instance_arn,
                                message_id: payload.message_id,
                                seq_num: payload.seq_num,
                            });
                            if let Err(why) = send(&mut stream, &ack).await {
                                return Ended::Lost(why);
                            }
                        }
                        ServerMessage::StateChangeAck(ack) => {
                            pending.retain(|_, report| report.message_id != ack.message_id);
                        }
                        ServerMessage::HeartbeatMessage(_) => {}
                        ServerMessage::CloseMessage(close) => return Ended::Lost(format!("closed by the control plane: {}", close.message)),
                        ServerMessage::ErrorMessage(error) => tracing::warn!(message = %error.message, "the control plane refused a message"),
                    }
                }
            }
        }
    }
}

/// Writes `message` to the stream's buffer without flushing it (see `send`).
async fn queue(stream: &mut SessionStream, message: &AgentMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|err| err.to_string())?;
    stream
        .feed(Message::text(text))
        .await
        .map_err(|err| err.to_string())
}

/// Writes `message` and flushes it.
async fn send(stream: &mut SessionStream, message: &AgentMessage) -> Result<(), String> {
    queue(stream, message).await?;
    stream.flush().await.map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(
            delays[5] >= Duration::from_millis(500) && delays[5] <= Duration::from_millis(1000)
        );
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}

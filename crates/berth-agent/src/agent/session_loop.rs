//! The agent's half of the session: find the endpoint, connect, apply the desired
//! tasks the control plane pushes, report task state until each report is
//! acknowledged, send heartbeats, and reconnect with exponential backoff and jitter
//! whenever the session is lost. Tasks keep running while the control plane is away.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use berth_proto::{
    AckRequest, AgentMessage, HEARTBEAT_INTERVAL_SECS, HeartbeatMessage, SESSION_TIMEOUT_SECS,
    ServerMessage, TaskStateChange, heartbeat_due,
};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::unacknowledged::Unacknowledged;
use crate::client::session::{self, SessionStream};
use crate::client::{ApiClient, ClientError};
use crate::engine::TaskEngine;

/// The most reports held for one write: more are written at once.
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
        let mut pending = Unacknowledged::default();
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            match self.connect().await {
                Ok(stream) => {
                    backoff.reset();
                    let now = tokio::time::Instant::now();
                    for state in self.engine.known_states() {
                        pending.insert(state, now);
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
                        Some(report) => pending.insert(report, tokio::time::Instant::now()),
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
        pending: &mut Unacknowledged,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        tracing::info!(instance = %self.instance_arn, "session open");
        if let Err(why) = write_reports(
            &mut stream,
            &mut pending.resend_all(tokio::time::Instant::now()),
        )
        .await
        {
            return Ended::Lost(why);
        }
        // When this side last wrote: a heartbeat is sent only after a quiet spell.
        let mut written_at = tokio::time::Instant::now();
        let mut heartbeat = tokio::time::interval(Duration::from_secs(HEARTBEAT_INTERVAL_SECS));
        heartbeat.tick().await;
        let timeout = Duration::from_secs(SESSION_TIMEOUT_SECS);
        // One timer for the session's silence, moved on only when it fires: a frame
        // just notes when it came.
        let mut heard_at = tokio::time::Instant::now();
        let silence = tokio::time::sleep(timeout);
        tokio::pin!(silence);
        // Whether an acknowledgement is queued but not yet written, and the timer
        // (set when it was queued) by which it must go out.
        let mut ack_waiting = false;
        let ack_timer = tokio::time::sleep(timeout);
        tokio::pin!(ack_timer);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    let _ = stream.close(None).await;
                    return Ended::Shutdown;
                }
                () = &mut silence => {
                    let due = heard_at + timeout;
                    if due <= tokio::time::Instant::now() {
                        return Ended::Lost("no message from the control plane within the session timeout".into());
                    }
                    silence.as_mut().reset(due);
                }
                () = &mut ack_timer, if ack_waiting => {
                    ack_waiting = false;
                    if let Err(why) = flush(&mut stream).await {
                        return Ended::Lost(why);
                    }
                    written_at = tokio::time::Instant::now();
                }
                _ = heartbeat.tick() => {
                    let now = tokio::time::Instant::now();
                    // A waiting acknowledgement goes now, with reports still
                    // unacknowledged long after they were sent (the control plane may
                    // have lost them, e.g. across its own restart).
                    let mut due = pending.overdue(now);
                    if std::mem::take(&mut ack_waiting) || !due.is_empty() {
                        if let Err(why) = write_reports(&mut stream, &mut due).await {
                            return Ended::Lost(why);
                        }
                        written_at = now;
                    }
                    if heartbeat_due(now.saturating_duration_since(written_at)) {
                        if let Err(why) = send(&mut stream, &AgentMessage::HeartbeatMessage(HeartbeatMessage { healthy: true })).await {
                            return Ended::Lost(why);
                        }
                        written_at = now;
                    }
                }
                report = self.reports.recv() => {
                    let Some(report) = report else { return Ended::Shutdown };
                    // This report and every one already waiting, written together (a
                    // write to the socket each was most of a simulated agent's time).
                    let now = tokio::time::Instant::now();
                    pending.insert(report.clone(), now);
                    let mut outbox = vec![report];
                    while outbox.len() < MAX_REPORT_BURST
                        && let Ok(more) = self.reports.try_recv()
                    {
                        pending.insert(more.clone(), now);
                        outbox.push(more);
                    }
                    // Written at once, with any acknowledgement waiting.
                    ack_waiting = false;
                    if let Err(why) = write_reports(&mut stream, &mut outbox).await {
                        return Ended::Lost(why);
                    }
                    written_at = now;
                }
                frame = stream.next() => {
                    heard_at = tokio::time::Instant::now();
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
                            if let Err(why) = queue(&mut stream, &ack).await {
                                return Ended::Lost(why);
                            }
                            // The acknowledgement waits (up to berth_proto::ACK_DELAY; the
                            // control plane needs it only to know the payload arrived) for
                            // the first report the payload causes, RUNNING or STOPPED, to
                            // go out in one write with it. Reports never wait.
                            if !ack_waiting {
                                ack_waiting = true;
                                ack_timer.as_mut().reset(tokio::time::Instant::now() + berth_proto::ACK_DELAY);
                            }
                        }
                        ServerMessage::StateChangeAck(ack) => {
                            pending.acknowledge(&ack.message_id);
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

/// Writes the newest report of each task in `outbox` (emptied) and flushes them with
/// whatever else was written.
async fn write_reports(
    stream: &mut SessionStream,
    outbox: &mut Vec<TaskStateChange>,
) -> Result<(), String> {
    for report in newest_of_each_task(std::mem::take(outbox)) {
        queue(stream, &AgentMessage::TaskStateChange(report)).await?;
    }
    flush(stream).await
}

/// Writes whatever was queued.
async fn flush(stream: &mut SessionStream) -> Result<(), String> {
    stream.flush().await.map_err(|err| err.to_string())
}

/// Of reports in the order they were made, the newest of each task, in the order of
/// those: a report carries its task's whole known state, so one a later report of
/// the same task replaced need not be sent.
fn newest_of_each_task(reports: Vec<TaskStateChange>) -> Vec<TaskStateChange> {
    // From the newest back: whether each is the first seen of its task.
    let mut seen = HashSet::new();
    let newest_first: Vec<bool> = reports
        .iter()
        .rev()
        .map(|report| seen.insert(report.task_arn.as_str()))
        .collect();
    reports
        .into_iter()
        .zip(newest_first.into_iter().rev())
        .filter_map(|(report, newest)| newest.then_some(report))
        .collect()
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
    flush(stream).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, task: &str, status: berth_proto::TaskStatus) -> TaskStateChange {
        TaskStateChange::of_status(id, "c", task, status)
    }

    #[test]
    fn of_a_tasks_reports_only_the_newest_is_sent() {
        use berth_proto::TaskStatus::{Pending, Running, Stopped};
        let reports = vec![
            report("1", "t1", Pending),
            report("2", "t2", Pending),
            report("3", "t1", Running),
            report("4", "t3", Stopped),
        ];
        let sent: Vec<(String, String)> = newest_of_each_task(reports)
            .into_iter()
            .map(|r| (r.message_id, r.task_arn))
            .collect();
        let expected = [("2", "t2"), ("3", "t1"), ("4", "t3")];
        assert_eq!(
            sent,
            expected.map(|(id, task)| (id.to_string(), task.to_string()))
        );
    }

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

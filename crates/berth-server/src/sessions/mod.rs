//! The control plane's half of the agent sessions (see `berth_proto`): one WebSocket
//! per container instance. On connect the instance is marked `agentConnected` and
//! sent its whole desired task set; from then on every change to one of its tasks'
//! desired state, read from the store's change feed, is pushed as it commits. The
//! agent's task reports are recorded (`api::task_state`) and acknowledged.

mod acks;
mod hub;
mod payload;

pub use hub::{Push, SessionHub};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use berth_model::arn::{Scope, cluster_name};
use berth_model::{ApiError, ErrorCode};
use berth_proto::{
    AgentMessage, ErrorMessage, HEARTBEAT_INTERVAL_SECS, HeartbeatMessage, SESSION_TIMEOUT_SECS,
    ServerMessage, StateChangeAck, heartbeat_due,
};
use berth_store::Store;
use futures::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;

use crate::api::clusters::INACTIVE;
use crate::api::container_instances::{instance_id, read_instance};
use crate::api::epoch_now as now;
use crate::api::task_state::{self, HeldRecord, KnownState};
use crate::auth::RequestParts;
use crate::http::App;
use crate::protocol;
use crate::state::records::InstanceRecord;
use crate::state::{self, keys};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionQuery {
    cluster: String,
    container_instance: String,
}

/// Who a session is for, once the upgrade request has been authenticated.
#[derive(Debug, Clone)]
struct Peer {
    scope: Scope,
    cluster: String,
    instance_id: String,
    instance_arn: String,
    cluster_arn: String,
    access_key_id: Option<String>,
}

/// The size a session's socket reads in, and buffers writes up to. The library's
/// 128 KiB default, for each of thousands of sessions, was most of the control
/// plane's memory with a large fleet (~170 KB per connected instance); messages
/// larger than this still arrive whole, read in several steps.
const SOCKET_BUFFER: usize = 8 * 1024;

/// `GET /v1/session`: authenticates the upgrade request like any other request, checks
/// the instance is registered and owned by the signing key, then upgrades.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<SessionQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    match authorize(&app, &method, &uri, &headers, &query).await {
        Ok(peer) => ws
            .read_buffer_size(SOCKET_BUFFER)
            .write_buffer_size(SOCKET_BUFFER)
            .on_upgrade(move |socket| async move { run(app, peer, socket).await }),
        Err(error) => protocol::failure(&error, &request_id).into_response(),
    }
}

async fn authorize(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &SessionQuery,
) -> Result<Peer, ApiError> {
    let (region, access_key_id) = match app.verifier() {
        Some(verifier) => {
            let parts = RequestParts::new(
                method.as_str(),
                uri.path(),
                uri.query().unwrap_or(""),
                headers,
            );
            let caller = verifier.verify(&parts, b"", SystemTime::now())?;
            (caller.region, Some(caller.access_key_id))
        }
        None => (app.default_region().to_string(), None),
    };
    let scope = Scope::new(region, app.account_id());
    let cluster = cluster_name(Some(&query.cluster))?;
    let instance_id = instance_id(&cluster, &query.container_instance)?.to_string();
    let snapshot = app.store().snapshot().await.map_err(state::store_error)?;
    let found = read_instance(&snapshot, &scope.region, &cluster, &instance_id)?
        .filter(|found| found.value.instance.status.as_deref() != Some(INACTIVE))
        .ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Container instance {} is not registered.",
                query.container_instance
            ))
        })?;
    if let (Some(caller), Some(owner)) = (access_key_id.as_deref(), found.value.owner.as_deref())
        && caller != owner
    {
        return Err(ApiError::new(
            ErrorCode::AccessDeniedException,
            "Only the key that registered a container instance may open its session.",
        ));
    }
    Ok(Peer {
        instance_arn: scope.container_instance_arn(&cluster, &instance_id),
        cluster_arn: scope.cluster_arn(&cluster),
        scope,
        cluster,
        instance_id,
        access_key_id,
    })
}

/// Sets the instance's `agentConnected`.
pub async fn set_connected(
    store: &dyn Store,
    region: &str,
    cluster: &str,
    instance_id: &str,
    connected: bool,
) -> Result<(), ApiError> {
    let key = keys::container_instance(region, cluster, instance_id);
    state::write(store, |snapshot| {
        let Some(found) = state::read::<InstanceRecord>(snapshot, &key)? else {
            return Ok((None, ()));
        };
        let mut record = found.value;
        let disconnected_at = if connected {
            None
        } else {
            record.disconnected_at.or(Some(now()))
        };
        if record.instance.agent_connected == Some(connected)
            && record.disconnected_at == disconnected_at
        {
            return Ok((None, ()));
        }
        record.instance.agent_connected = Some(connected);
        record.disconnected_at = disconnected_at;
        record.instance.version = Some(record.instance.version.unwrap_or(0) + 1);
        let txn = berth_store::Txn::new()
            .when(berth_store::Compare::unchanged(&key, found.mod_revision))
            .put(&key, state::encode_record(&record)?);
        Ok((Some(txn), ()))
    })
    .await
}

/// What a session writes to its agent: its messages, and with them the
/// acknowledgements it holds (`acks.rs`); and when it last wrote, for the heartbeat.
struct Outgoing {
    acks: acks::Acks,
    written_at: tokio::time::Instant,
}

impl Outgoing {
    fn new() -> Self {
        Self {
            acks: acks::Acks::default(),
            written_at: tokio::time::Instant::now(),
        }
    }

    /// Writes `message` and every acknowledgement held, in one write.
    async fn send(
        &mut self,
        socket: &mut WebSocket,
        message: &ServerMessage,
    ) -> Result<(), String> {
        self.queue_acks(socket).await?;
        queue(socket, message).await?;
        self.flush(socket).await
    }

    /// Writes every acknowledgement held, with whatever else was queued.
    async fn send_acks(&mut self, socket: &mut WebSocket) -> Result<(), String> {
        self.queue_acks(socket).await?;
        self.flush(socket).await
    }

    /// Queues every acknowledgement held.
    async fn queue_acks(&mut self, socket: &mut WebSocket) -> Result<(), String> {
        for message_id in self.acks.take() {
            queue(
                socket,
                &ServerMessage::StateChangeAck(StateChangeAck { message_id }),
            )
            .await?;
        }
        Ok(())
    }

    /// Writes what was queued.
    async fn flush(&mut self, socket: &mut WebSocket) -> Result<(), String> {
        socket.flush().await.map_err(|err| err.to_string())?;
        self.written_at = tokio::time::Instant::now();
        Ok(())
    }
}

/// Queues a message without flushing it: the answers to one burst of reports
/// (acknowledgements, errors) go out in one write, not one system call each.
async fn queue(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|err| err.to_string())?;
    socket
        .feed(Message::Text(text.into()))
        .await
        .map_err(|err| err.to_string())
}

async fn run(app: Arc<App>, peer: Peer, mut socket: WebSocket) {
    let store = app.store();
    // Take the instance's task changes from before the first read, so that nothing
    // between the full payload and the first delta is missed.
    let hub::Opened {
        id: session,
        mut replaced,
        pushes: mut feed,
    } = app.sessions().open(store.as_ref(), &peer.instance_arn);
    if let Err(err) = set_connected(
        store.as_ref(),
        &peer.scope.region,
        &peer.cluster,
        &peer.instance_id,
        true,
    )
    .await
    {
        tracing::error!(instance = %peer.instance_arn, %err, "cannot mark the agent connected");
    }
    tracing::info!(instance = %peer.instance_arn, "agent session open");
    let mut payloads = payload::Payloads::new(&peer.cluster_arn, &peer.instance_arn);
    let outcome = serve(
        &app,
        &peer,
        &mut socket,
        &mut feed,
        &mut payloads,
        &mut replaced,
    )
    .await;
    match &outcome {
        Ok(()) => tracing::info!(instance = %peer.instance_arn, "agent session closed"),
        Err(why) => tracing::warn!(instance = %peer.instance_arn, %why, "agent session lost"),
    }
    if app.sessions().close(&peer.instance_arn, session)
        && let Err(err) = set_connected(
            store.as_ref(),
            &peer.scope.region,
            &peer.cluster,
            &peer.instance_id,
            false,
        )
        .await
    {
        tracing::error!(instance = %peer.instance_arn, %err, "cannot mark the agent disconnected");
    }
}

async fn serve(
    app: &App,
    peer: &Peer,
    socket: &mut WebSocket,
    feed: &mut tokio::sync::mpsc::UnboundedReceiver<Push>,
    payloads: &mut payload::Payloads,
    replaced: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let store = app.store();
    let region = peer.scope.region.as_str();
    let views = &app.shared().views;
    let definitions = &app.shared().definitions;
    // Who owns the instance, as its record last said: read once per version of it.
    let mut owners = task_state::Owners::new();
    let full = payloads
        .full(store.as_ref(), views, definitions, region, &peer.cluster)
        .await
        .map_err(|e| e.message)?;
    let mut out = Outgoing::new();
    out.send(socket, &ServerMessage::PayloadMessage(full))
        .await?;
    // Set when acknowledgements are first held, to when they must be written.
    let ack_timer = tokio::time::sleep(NO_DEADLINE);
    tokio::pin!(ack_timer);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(HEARTBEAT_INTERVAL_SECS));
    let timeout = Duration::from_secs(SESSION_TIMEOUT_SECS);
    // One timer for the session's silence, moved on only when it fires: a frame just
    // notes when it came (a timer set again per frame was a timer-wheel insertion and
    // removal per frame, over thousands of sessions).
    let mut heard_at = tokio::time::Instant::now();
    let silence = tokio::time::sleep(timeout);
    tokio::pin!(silence);
    loop {
        tokio::select! {
            _ = replaced.changed() => {
                let close = berth_proto::CloseMessage { message: "a newer session of this instance replaced this one".into() };
                let _ = out.send(socket, &ServerMessage::CloseMessage(close)).await;
                return Ok(());
            }
            () = &mut silence => {
                let due = heard_at + timeout;
                if due <= tokio::time::Instant::now() {
                    return Err("no message from the agent within the session timeout".into());
                }
                silence.as_mut().reset(due);
            }
            () = &mut ack_timer, if out.acks.due().is_some() => out.send_acks(socket).await?,
            _ = heartbeat.tick() => {
                // Only a quiet session needs one: any message is a sign of life.
                if heartbeat_due(out.written_at.elapsed()) {
                    out.send(socket, &ServerMessage::HeartbeatMessage(HeartbeatMessage { healthy: true })).await?;
                }
            }
            push = feed.recv() => {
                let Some(push) = push else { return Err("the session dispatcher stopped".into()) };
                let mut pushes = vec![push];
                while let Ok(more) = feed.try_recv() {
                    pushes.push(more);
                }
                let mut changed: Vec<HeldRecord> = Vec::new();
                let mut resync = false;
                for push in pushes {
                    match push {
                        Push::Task { kv, record, id, stopped, desired } => {
                            // Most changes are the agent's own reports, already known to it:
                            // only a task with something to send is read (decoded, unless
                            // its writer handed the record over).
                            if payloads.has_news(&id, stopped, desired) {
                                if let Some(record) = record.or_else(|| state::decode_record(&kv).ok().map(Arc::new)) {
                                    changed.push(HeldRecord { mod_revision: kv.mod_revision, record });
                                }
                            } else if let Some(record) = record {
                                // Most often the agent's own report, recorded: a task
                                // still starting will be reported on again soon.
                                payloads.hold_reported(&id, HeldRecord { mod_revision: kv.mod_revision, record });
                            }
                        }
                        Push::Resync => resync = true,
                    }
                }
                if resync {
                    // Missed changes: send the whole desired set again.
                    let full = payloads.full(store.as_ref(), views, definitions, region, &peer.cluster).await.map_err(|e| e.message)?;
                    out.send(socket, &ServerMessage::PayloadMessage(full)).await?;
                    continue;
                }
                let snapshot = store.snapshot().await.map_err(|e| e.to_string())?;
                if let Some(delta) = payloads.delta(&snapshot, definitions, region, &changed).map_err(|e| e.message)? {
                    out.send(socket, &ServerMessage::PayloadMessage(delta)).await?;
                }
            }
            frame = socket.next() => {
                heard_at = tokio::time::Instant::now();
                // This frame and every one already waiting: an agent sends a report
                // per state change, often several of one task back to back.
                // The burst stops at the first frame that ends the session.
                let ends = |frame: &Option<Result<Message, axum::Error>>| {
                    matches!(frame, None | Some(Err(_)) | Some(Ok(Message::Close(_))))
                };
                let mut ended_here = ends(&frame);
                let mut frames = vec![frame];
                while !ended_here && frames.len() < MAX_BURST {
                    match socket.next().now_or_never() {
                        Some(frame) => {
                            ended_here = ends(&frame);
                            frames.push(frame);
                        }
                        None => break,
                    }
                }
                let mut texts = Vec::with_capacity(frames.len());
                let mut ended: Option<Result<(), String>> = None;
                for frame in frames {
                    match frame {
                        Some(Ok(Message::Text(text))) => texts.push(text),
                        Some(Ok(Message::Close(_))) | None => { ended = Some(Ok(())); break; }
                        Some(Ok(_)) => {}
                        Some(Err(err)) => { ended = Some(Err(err.to_string())); break; }
                    }
                }
                let mut reports = Reports::default();
                // Whether an answer was queued that should go out now.
                let mut answered = false;
                for text in texts {
                    match serde_json::from_str::<AgentMessage>(text.as_str()) {
                        Ok(AgentMessage::AckRequest(ack)) => payloads.acknowledged(ack.seq_num),
                        Ok(AgentMessage::HeartbeatMessage(_)) => {}
                        Ok(AgentMessage::TaskStateChange(change)) => reports.add(change),
                        Err(err) => {
                            let error = ErrorMessage { message: format!("undecodable message: {err}") };
                            queue(socket, &ServerMessage::ErrorMessage(error)).await?;
                            answered = true;
                        }
                    }
                }
                let newest = reports.newest();
                let held: Vec<Option<HeldRecord>> = newest
                    .iter()
                    .map(|(change, _)| payloads.take_held(task_id_of(change)))
                    .collect();
                let results = apply_reports(app, peer, &newest, &held, &mut owners).await;
                let recorded_at = tokio::time::Instant::now();
                for ((change, message_ids), result) in newest.into_iter().zip(results) {
                    if let Err(error) = result {
                        tracing::warn!(task = %change.task_arn, message = %error.message, "task report refused");
                        let transient = error.code == ErrorCode::ServerException;
                        queue(socket, &ServerMessage::ErrorMessage(ErrorMessage { message: error.message })).await?;
                        answered = true;
                        // A store failure is worth retrying: leave it unacknowledged.
                        if transient {
                            continue;
                        }
                    }
                    // Held for the next message written (acks.rs).
                    if let Some(due) = out.acks.hold(message_ids, recorded_at) {
                        ack_timer.as_mut().reset(due);
                    }
                }
                if answered || out.acks.full() {
                    out.send_acks(socket).await?;
                }
                if let Some(ended) = ended {
                    return ended;
                }
            }
        }
    }
}

/// A deadline no session reaches: the acknowledgement timer's while none are held.
const NO_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// The most frames a session takes in one go before it answers them.
const MAX_BURST: usize = 256;

/// The task reports of one burst of frames. A report carries the task's full known
/// state, so of several reports of one task only the newest needs recording; once it
/// is recorded, every one of them is acknowledged.
#[derive(Default)]
struct Reports {
    /// Per task, in the order tasks first appeared: its newest report and the message
    /// ids of all of its reports.
    tasks: Vec<(berth_proto::TaskStateChange, Vec<String>)>,
    at: HashMap<String, usize>,
}

impl Reports {
    fn add(&mut self, change: berth_proto::TaskStateChange) {
        let id = change.message_id.clone();
        match self.at.get(&change.task_arn) {
            Some(&i) => {
                if let Some((newest, ids)) = self.tasks.get_mut(i) {
                    *newest = change;
                    ids.push(id);
                }
            }
            None => {
                self.at.insert(change.task_arn.clone(), self.tasks.len());
                self.tasks.push((change, vec![id]));
            }
        }
    }

    fn newest(self) -> Vec<(berth_proto::TaskStateChange, Vec<String>)> {
        self.tasks
    }
}

/// The id of the task a report is about: the last segment of its ARN.
fn task_id_of(change: &berth_proto::TaskStateChange) -> &str {
    change.task_arn.rsplit('/').next().unwrap_or_default()
}

/// Records the newest report of each task of a burst, in as few transactions as it
/// can; each report's result, in order (a store failure fails them all).
async fn apply_reports(
    app: &App,
    peer: &Peer,
    reports: &[(berth_proto::TaskStateChange, Vec<String>)],
    held: &[Option<HeldRecord>],
    owners: &mut task_state::Owners,
) -> Vec<Result<(), ApiError>> {
    let known: Vec<(&str, KnownState)> = reports
        .iter()
        .map(|(change, _)| (task_id_of(change), KnownState::from(change)))
        .collect();
    let each: Vec<task_state::Report<'_>> = known
        .iter()
        .zip(
            held.iter()
                .map(Option::as_ref)
                .chain(std::iter::repeat(None)),
        )
        .map(|((id, known), held)| (*id, known, held))
        .collect();
    match task_state::apply_all(
        app.store().as_ref(),
        &peer.scope,
        &peer.cluster,
        &each,
        peer.access_key_id.as_deref(),
        Some(&peer.instance_arn),
        now(),
        owners,
    )
    .await
    {
        Ok(results) => results,
        Err(error) => reports.iter().map(|_| Err(error.clone())).collect(),
    }
}

/// After a restart no agent is connected yet: clears every instance's
/// `agentConnected` left over from the previous run and starts the lost-agent grace
/// period of every instance without a session.
pub async fn reset_connections(store: &dyn Store) -> Result<(), ApiError> {
    let snapshot = store.snapshot().await.map_err(state::store_error)?;
    let mut stale = Vec::new();
    for kv in snapshot.iter_prefix("/") {
        if !kv.key.contains("/instance/") {
            continue;
        }
        let record: InstanceRecord = state::decode_record(kv)?;
        // Connected in the last run, or never seen to disconnect: the lost-agent
        // grace period starts now for every agent that is not back.
        let active = record.instance.status.as_deref() != Some(INACTIVE);
        if record.instance.agent_connected == Some(true)
            || (active && record.disconnected_at.is_none())
        {
            // /{region}/instance/{cluster}/{id}
            let mut parts = kv.key.trim_start_matches('/').splitn(4, '/');
            if let (Some(region), Some(_), Some(cluster), Some(id)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            {
                stale.push((region.to_string(), cluster.to_string(), id.to_string()));
            }
        }
    }
    let mut by_region: HashMap<String, usize> = HashMap::new();
    for (region, cluster, id) in stale {
        set_connected(store, &region, &cluster, &id, false).await?;
        *by_region.entry(region).or_default() += 1;
    }
    for (region, count) in by_region {
        tracing::info!(%region, count, "marked agents disconnected until they reconnect");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(
        id: &str,
        task: &str,
        status: berth_proto::TaskStatus,
    ) -> berth_proto::TaskStateChange {
        berth_proto::TaskStateChange::of_status(id, "c", task, status)
    }

    #[test]
    fn a_burst_keeps_each_tasks_newest_report_and_every_message_id() {
        use berth_proto::TaskStatus::{Pending, Running};
        let mut reports = Reports::default();
        reports.add(report("1", "t1", Pending));
        reports.add(report("2", "t2", Pending));
        reports.add(report("3", "t1", Running));
        let newest = reports.newest();
        let seen: Vec<(&str, berth_proto::TaskStatus, Vec<&str>)> = newest
            .iter()
            .map(|(change, ids)| {
                (
                    change.task_arn.as_str(),
                    change.status,
                    ids.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![("t1", Running, vec!["1", "3"]), ("t2", Pending, vec!["2"])]
        );
    }
}

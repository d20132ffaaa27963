//! The lost-agent controller: when an instance's agent has been disconnected for
//! longer than the grace period (`--lost-agent-grace`), the tasks on the instance are
//! marked STOPPED, their reservations given back, and the services they belong to
//! replace them on other instances (the service controller sees them stop). When the
//! agent comes back, its session's full desired set no longer lists those tasks, so
//! the agent stops whatever it still runs of them: a replaced task never runs twice.
//!
//! It is level-triggered: the instances to watch are those whose record says
//! disconnected (`berthDisconnectedAt`), read from the store at start and kept up to
//! date from the change feed (read again in full if the feed lags). Stopping an
//! instance's tasks is one compare-and-swap transaction, so a crash half-way leaves
//! nothing half done, and after a restart the grace period of every agent that is not
//! back starts again (`sessions::reset_connections`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_model::ApiResult;
use berth_model::task::{TaskStatus, TaskStopCode};
use berth_store::{Change, Compare, KeyValue, Snapshot, Store, Txn};
use tokio::sync::broadcast::error::RecvError;

use crate::api::clusters::INACTIVE;
use crate::api::epoch_now as now;
use crate::http::App;
use crate::state::records::{InstanceRecord, TaskRecord, release};
use crate::state::usage::Usage;
use crate::state::{self, keys};

/// The longest time between two looks at the disconnected instances.
const MAX_TICK: Duration = Duration::from_secs(1);

/// A disconnected instance, by its key.
#[derive(Debug, Clone, PartialEq)]
struct Lost {
    disconnected_at: f64,
    /// Whether its tasks were already stopped for this disconnection.
    handled: bool,
}

/// `/{region}/instance/{cluster}/{id}` -> (region, cluster, id).
fn instance_key_parts(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.trim_start_matches('/').splitn(4, '/');
    let region = parts.next()?;
    if parts.next()? != "instance" {
        return None;
    }
    Some((region, parts.next()?, parts.next()?))
}

/// Whether the record is of a registered instance whose agent is disconnected, and
/// since when.
fn disconnected_since(kv: &KeyValue) -> Option<f64> {
    /// The members of an instance record read here (an instance record changes
    /// with every task placed on it; the rest of it is skipped).
    #[derive(serde::Deserialize)]
    struct Head {
        status: Option<String>,
        #[serde(rename = "agentConnected")]
        agent_connected: Option<bool>,
        #[serde(rename = "berthDisconnectedAt")]
        disconnected_at: Option<f64>,
    }
    instance_key_parts(&kv.key)?;
    let record: Head = crate::state::codec::decode(&kv.value).ok()?;
    if record.status.as_deref() == Some(INACTIVE) || record.agent_connected == Some(true) {
        return None;
    }
    record.disconnected_at
}

/// Keeps `watched` in step with one changed record.
fn observe(watched: &mut HashMap<String, Lost>, key: &str, kv: Option<&KeyValue>) {
    match kv.and_then(disconnected_since) {
        Some(at) => {
            let entry = watched.entry(key.to_string()).or_insert(Lost {
                disconnected_at: at,
                handled: false,
            });
            if entry.disconnected_at != at {
                *entry = Lost {
                    disconnected_at: at,
                    handled: false,
                };
            }
        }
        None => {
            watched.remove(key);
        }
    }
}

fn scan(snapshot: &Snapshot) -> HashMap<String, Lost> {
    let mut watched = HashMap::new();
    for kv in snapshot.iter_prefix("/") {
        if kv.key.contains("/instance/") {
            observe(&mut watched, &kv.key, Some(kv));
        }
    }
    watched
}

/// Runs the controller until the store's change feed closes.
pub async fn run(app: Arc<App>) {
    let store = Arc::clone(app.store());
    let grace = app.lost_agent_grace();
    let mut feed = store.watch();
    let mut watched = match store.snapshot().await {
        Ok(snapshot) => scan(&snapshot),
        Err(err) => {
            tracing::error!(%err, "lost-agent controller cannot read the store");
            HashMap::new()
        }
    };
    let mut tick = tokio::time::interval(MAX_TICK.min(grace.max(Duration::from_millis(100))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            batch = feed.recv() => {
                match batch {
                    Ok(batch) => {
                        for change in &batch.changes {
                            match change {
                                Change::Put { kv, .. } if kv.key.contains("/instance/") => observe(&mut watched, &kv.key, Some(kv)),
                                Change::Delete { key } if key.contains("/instance/") => observe(&mut watched, key, None),
                                _ => {}
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => match store.snapshot().await {
                        Ok(snapshot) => watched = scan(&snapshot),
                        Err(err) => tracing::error!(%err, "lost-agent controller cannot read the store"),
                    },
                    Err(RecvError::Closed) => return,
                }
                continue;
            }
        }
        let now = now();
        let due: Vec<String> = watched
            .iter()
            .filter(|(_, lost)| !lost.handled && now - lost.disconnected_at >= grace.as_secs_f64())
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            match stop_tasks_of(store.as_ref(), &key, grace, now).await {
                Ok(stopped) => {
                    if stopped > 0 {
                        tracing::warn!(instance = %key, stopped, "agent lost: its tasks are marked STOPPED");
                    }
                    if let Some(lost) = watched.get_mut(&key) {
                        lost.handled = true;
                    }
                }
                Err(err) => {
                    tracing::warn!(instance = %key, message = %err.message, "cannot stop the tasks of a lost agent");
                }
            }
        }
    }
}

/// The reason a lost agent's task is given.
pub fn lost_reason(instance_arn: &str, grace: Duration) -> String {
    format!(
        "Task stopped because the agent of container instance {instance_arn} was disconnected for more than {} seconds.",
        grace.as_secs()
    )
}

/// Marks every task of the instance at `instance_key` that has not stopped as
/// STOPPED and gives its reservation back, if the instance is still disconnected
/// since long enough. Returns how many tasks it stopped.
async fn stop_tasks_of(
    store: &dyn Store,
    instance_key: &str,
    grace: Duration,
    now: f64,
) -> ApiResult<usize> {
    let Some((region, cluster, _)) = instance_key_parts(instance_key) else {
        return Ok(0);
    };
    let (region, cluster) = (region.to_string(), cluster.to_string());
    state::write(store, |snapshot| {
        let Some(found) = state::read::<InstanceRecord>(snapshot, instance_key)? else {
            return Ok((None, 0));
        };
        let instance = found.value;
        let still_lost = instance.instance.agent_connected != Some(true)
            && instance.instance.status.as_deref() != Some(INACTIVE)
            && instance
                .disconnected_at
                .is_some_and(|at| now - at >= grace.as_secs_f64());
        if !still_lost {
            return Ok((None, 0));
        }
        let arn = instance
            .instance
            .container_instance_arn
            .clone()
            .unwrap_or_default();
        let reason = lost_reason(&arn, grace);
        let registered = instance
            .instance
            .registered_resources
            .clone()
            .unwrap_or_default();
        let mut usage = Usage::read(snapshot, instance_key, &instance)?;
        let mut left = usage.record.remaining_resources.clone();
        let mut txn = Txn::new();
        let mut stopped = 0;
        for kv in snapshot.iter_prefix(&keys::tasks(&region, &cluster)) {
            let mut task: TaskRecord = state::decode_record(kv)?;
            if task.task.container_instance_arn.as_deref() != Some(arn.as_str())
                || task.is_stopped()
            {
                continue;
            }
            mark_stopped(&mut task, &reason, now);
            if !task.released {
                task.released = true;
                release(&mut left, &registered, &task.reserved);
            }
            txn = state::put_task(
                txn.when(Compare::unchanged(&*kv.key, kv.mod_revision)),
                &*kv.key,
                task,
            )?;
            stopped += 1;
        }
        if stopped == 0 {
            return Ok((None, 0));
        }
        usage.set(left);
        let txn = usage.write(txn.when(Compare::unchanged(instance_key, found.mod_revision)))?;
        Ok((Some(txn), stopped))
    })
    .await
}

/// A task whose agent is lost: STOPPED now, as are its containers.
fn mark_stopped(record: &mut TaskRecord, reason: &str, now: f64) {
    let task = &mut record.task;
    task.desired_status = Some(TaskStatus::Stopped.as_str().to_string());
    task.last_status = Some(TaskStatus::Stopped.as_str().to_string());
    task.stopping_at.get_or_insert(now);
    task.stopped_at = Some(now);
    task.execution_stopped_at.get_or_insert(now);
    if task.stopped_reason.is_none() {
        task.stopped_reason = Some(reason.to_string());
    }
    if task.stop_code.is_none() {
        task.stop_code = Some(TaskStopCode::InfrastructureHealth);
    }
    for container in task.containers.iter_mut().flatten() {
        if container.last_status.as_deref() != Some("STOPPED") {
            container.last_status = Some("STOPPED".to_string());
            container.reason.get_or_insert_with(|| reason.to_string());
        }
    }
    task.version = Some(task.version.unwrap_or(0) + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_keys_are_parsed_and_others_refused() {
        assert_eq!(
            instance_key_parts("/us-east-1/instance/default/abc"),
            Some(("us-east-1", "default", "abc"))
        );
        assert_eq!(instance_key_parts("/us-east-1/task/default/abc"), None);
        assert_eq!(instance_key_parts("/us-east-1/instance"), None);
    }

    #[test]
    fn a_lost_task_keeps_the_reason_it_already_had() -> Result<(), Box<dyn std::error::Error>> {
        let mut record: TaskRecord = serde_json::from_value(serde_json::json!({
            "taskArn": "arn:aws:ecs:us-east-1:123456789012:task/default/t1",
            "lastStatus": "RUNNING",
            "desiredStatus": "STOPPED",
            "stoppedReason": "Task stopped by user",
            "containers": [{"name": "web", "lastStatus": "RUNNING"}],
        }))?;
        mark_stopped(&mut record, "lost", 10.0);
        assert_eq!(record.task.last_status.as_deref(), Some("STOPPED"));
        assert_eq!(
            record.task.stopped_reason.as_deref(),
            Some("Task stopped by user")
        );
        assert_eq!(
            record.task.stop_code,
            Some(TaskStopCode::InfrastructureHealth)
        );
        let containers = record.task.containers.unwrap_or_default();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers[0].last_status.as_deref(), Some("STOPPED"));
        assert_eq!(containers[0].reason.as_deref(), Some("lost"));
        Ok(())
    }
}

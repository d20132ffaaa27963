//! Which session is current for each container instance, and the routing of task
//! changes to it. A new session of an instance replaces the old one (the old one is
//! told to close), and only the current session may mark its instance disconnected
//! when it ends.
//!
//! One dispatcher follows the store's change feed for all sessions: it reads the
//! instance of each changed task once and hands the change to that instance's
//! session, so a change costs the same with ten sessions or ten thousand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use berth_proto::DesiredStatus;
use berth_store::{Change, Decoded, KeyValue, Store};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use super::payload::desired_status_of;
use crate::state::records::TaskRecord;
use crate::state::views::{TaskSummary, is_task_key};

/// What the dispatcher hands a session.
#[derive(Debug)]
pub enum Push {
    /// A task of the session's instance changed: its record as committed, and what
    /// the dispatcher read of it (so that a session can tell that it has nothing to
    /// send without decoding the whole record).
    Task {
        kv: Arc<KeyValue>,
        /// The record itself, when its writer handed it to the feed.
        record: Option<Arc<TaskRecord>>,
        id: Box<str>,
        stopped: bool,
        desired: DesiredStatus,
    },
    /// Changes were missed: the session must send the whole desired set again.
    Resync,
}

struct Current {
    id: u64,
    replaced: watch::Sender<bool>,
    push: mpsc::UnboundedSender<Push>,
}

type Routes = Mutex<HashMap<String, Current>>;

#[derive(Default)]
pub struct SessionHub {
    next: AtomicU64,
    current: Arc<Routes>,
    dispatching: AtomicBool,
}

/// A session's registration: its number, a receiver that changes when a newer
/// session replaces it, and the changes of its instance's tasks.
pub struct Opened {
    pub id: u64,
    pub replaced: watch::Receiver<bool>,
    pub pushes: mpsc::UnboundedReceiver<Push>,
}

fn lock(routes: &Routes) -> std::sync::MutexGuard<'_, HashMap<String, Current>> {
    routes.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionHub {
    /// Registers a new session of `instance_arn`. Changes committed from now on
    /// reach it; the first session starts the dispatcher on `store`'s change feed.
    pub fn open(&self, store: &dyn Store, instance_arn: &str) -> Opened {
        if !self.dispatching.swap(true, Ordering::AcqRel) {
            let feed = store.watch();
            tokio::spawn(dispatch(Arc::downgrade(&self.current), feed));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (replaced_tx, replaced) = watch::channel(false);
        let (push, pushes) = mpsc::unbounded_channel();
        let session = Current {
            id,
            replaced: replaced_tx,
            push,
        };
        if let Some(previous) = lock(&self.current).insert(instance_arn.to_string(), session) {
            let _ = previous.replaced.send(true);
        }
        Opened {
            id,
            replaced,
            pushes,
        }
    }

    /// Ends session `id` of `instance_arn`; true if it was still the current one.
    pub fn close(&self, instance_arn: &str, id: u64) -> bool {
        let mut current = lock(&self.current);
        match current.get(instance_arn) {
            Some(session) if session.id == id => {
                current.remove(instance_arn);
                true
            }
            _ => false,
        }
    }

    /// Whether `instance_arn` has a session on this server now.
    pub fn is_connected(&self, instance_arn: &str) -> bool {
        lock(&self.current).contains_key(instance_arn)
    }
}

/// Hands each task change to the session of the task's instance, until the hub or
/// the feed is gone.
async fn dispatch(
    routes: Weak<Routes>,
    mut feed: tokio::sync::broadcast::Receiver<Arc<berth_store::ChangeBatch>>,
) {
    loop {
        let first = feed.recv().await;
        let Some(routes) = routes.upgrade() else {
            return;
        };
        let mut batches = match first {
            Ok(batch) => vec![batch],
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the session dispatcher fell behind; every session resyncs"
                );
                for session in lock(&routes).values() {
                    let _ = session.push.send(Push::Resync);
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        while let Ok(batch) = feed.try_recv() {
            batches.push(batch);
        }
        let mut routed: Vec<(String, Push)> = Vec::new();
        for batch in &batches {
            for change in &batch.changes {
                let Change::Put { kv, decoded } = change else {
                    continue;
                };
                if !is_task_key(&kv.key) {
                    continue;
                }
                let record = decoded.as_ref().and_then(Decoded::get::<TaskRecord>);
                let routing = TaskSummary::with_change(kv, decoded.as_ref(), |summary| {
                    let instance = summary.container_instance_arn.as_deref()?;
                    Some((
                        instance.to_string(),
                        summary.is_stopped(),
                        summary.desired(),
                    ))
                });
                if let Some(Some((instance, stopped, desired))) = routing {
                    let push = Push::Task {
                        kv: Arc::clone(kv),
                        record,
                        id: kv.key.rsplit('/').next().unwrap_or_default().into(),
                        stopped,
                        desired: desired_status_of(desired),
                    };
                    routed.push((instance, push));
                }
            }
        }
        if routed.is_empty() {
            continue;
        }
        let current = lock(&routes);
        for (instance, push) in routed {
            if let Some(session) = current.get(&instance) {
                let _ = session.push.send(push);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newer_session_replaces_the_old_one() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let hub = SessionHub::default();
        let first = hub.open(store.as_ref(), "i");
        let second = hub.open(store.as_ref(), "i");
        assert!(*first.replaced.borrow());
        assert!(
            !hub.close("i", first.id),
            "the replaced session must not mark the instance disconnected"
        );
        assert!(hub.is_connected("i"));
        assert!(hub.close("i", second.id));
        assert!(!hub.is_connected("i"));
        Ok(())
    }
}

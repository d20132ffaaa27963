//! Views of the tasks kept up to date from the store's change feed, so that questions
//! about one instance or one group ("which tasks are live on this instance?", "how
//! many tasks of this group does each instance hold?") cost what their answer costs,
//! not a scan of every task of the cluster.
//!
//! A view is derived state, never the truth: it is built from a snapshot, then
//! follows the change feed batch by batch, and knows the store revision it reflects.
//! A reader that needs it to include a snapshot waits for it to reach that revision
//! ([`Views::caught_up`]); it may then be newer than the snapshot, so readers take
//! the view's answer as a list of keys to read from their snapshot (or as a hint,
//! for placement spread). If the view falls behind the feed (the feed dropped
//! batches for it), it is rebuilt by the next reader that has a store at hand.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_model::task::TaskStatus;
use berth_store::{Change, ChangeBatch, Decoded, KeyValue, Snapshot, Store};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::interner::Interner;
use super::records::TaskRecord;

/// How long a reader waits for the view to catch up before it scans instead.
const CATCH_UP: Duration = Duration::from_secs(5);

/// The members of a task record the views need: decoded without the rest, or
/// borrowed from a whole record.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary<'a> {
    #[serde(default)]
    pub task_arn: Option<Cow<'a, str>>,
    #[serde(default)]
    pub container_instance_arn: Option<Cow<'a, str>>,
    #[serde(default)]
    pub group: Option<Cow<'a, str>>,
    #[serde(default)]
    pub last_status: Option<Cow<'a, str>>,
    #[serde(default)]
    pub desired_status: Option<Cow<'a, str>>,
    #[serde(default)]
    pub started_by: Option<Cow<'a, str>>,
    #[serde(default)]
    pub task_definition_arn: Option<Cow<'a, str>>,
}

impl<'a> TaskSummary<'a> {
    /// Decodes the summary of a task record; `None` if it is not one.
    pub fn of(kv: &KeyValue) -> Option<TaskSummary<'static>> {
        crate::state::codec::decode(&kv.value).ok()
    }

    /// The summary of a whole record, borrowing from it.
    pub fn from_record(record: &'a TaskRecord) -> TaskSummary<'a> {
        let task = &record.task;
        let borrow = |member: &'a Option<String>| member.as_deref().map(Cow::Borrowed);
        TaskSummary {
            task_arn: borrow(&task.task_arn),
            container_instance_arn: borrow(&task.container_instance_arn),
            group: borrow(&task.group),
            last_status: borrow(&task.last_status),
            desired_status: borrow(&task.desired_status),
            started_by: borrow(&task.started_by),
            task_definition_arn: borrow(&task.task_definition_arn),
        }
    }

    /// `f` of the summary of the task record a put of the change feed wrote (from the
    /// writer's own record when it handed it over); `None` if it is not a task record.
    pub fn with_change<R>(
        kv: &KeyValue,
        decoded: Option<&Decoded>,
        f: impl FnOnce(&TaskSummary<'_>) -> R,
    ) -> Option<R> {
        match decoded.and_then(Decoded::get::<TaskRecord>) {
            Some(record) => Some(f(&TaskSummary::from_record(&record))),
            None => TaskSummary::of(kv).map(|summary| f(&summary)),
        }
    }
    pub fn last(&self) -> Option<TaskStatus> {
        self.last_status.as_deref().and_then(TaskStatus::parse)
    }
    pub fn desired(&self) -> Option<TaskStatus> {
        self.desired_status.as_deref().and_then(TaskStatus::parse)
    }
    pub fn is_stopped(&self) -> bool {
        self.last() == Some(TaskStatus::Stopped)
    }
}

/// Whether `key` is a task's: `/{region}/task/{cluster}/{id}`.
pub fn is_task_key(key: &str) -> bool {
    let mut parts = key.trim_start_matches('/').splitn(3, '/');
    parts.next();
    parts.next() == Some("task")
}

/// What the view keeps of one task.
#[derive(Debug, Clone)]
struct Entry {
    instance: Arc<str>,
    group: Arc<str>,
    running: bool,
    stopped: bool,
    desired_stopped: bool,
}

/// One instance's tasks.
#[derive(Debug, Default, Clone)]
pub struct InstanceTasks {
    /// Tasks RUNNING.
    pub running: i32,
    /// Tasks neither RUNNING nor STOPPED.
    pub pending: i32,
    /// Tasks not desired STOPPED, by group.
    pub groups: BTreeMap<String, u32>,
    /// RUNNING tasks not desired STOPPED.
    pub running_desired: i64,
    /// The keys of the tasks not STOPPED.
    pub live: BTreeSet<Arc<str>>,
}

/// The tasks of every cluster, by instance, at one store revision.
#[derive(Debug, Default)]
pub struct TaskView {
    revision: i64,
    tasks: HashMap<Arc<str>, Entry>,
    instances: HashMap<Arc<str>, InstanceTasks>,
    /// The tasks' groups, one copy of each.
    groups: Interner,
    /// Which view this is: a view built again (after it fell behind) starts a new log.
    id: u64,
    /// The instances whose counts changed, in order, for readers that follow them
    /// (the kept placement engines); `log[0]` is change number `log_base`.
    log: Vec<Arc<str>>,
    log_base: u64,
}

/// Changes the log keeps at least; a reader further behind reads everything again.
const LOG_KEPT: usize = 1 << 16;

/// Distinguishes the views built by one process.
static VIEW_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl TaskView {
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The tasks of the instance with this ARN.
    pub fn instance(&self, instance_arn: &str) -> Option<&InstanceTasks> {
        self.instances.get(instance_arn)
    }

    /// Where the log of changed instances ends: (this view's id, number of changes).
    pub fn log_position(&self) -> (u64, u64) {
        (self.id, self.log_base + self.log.len() as u64)
    }

    /// The instances (ARNs) whose counts changed since `position` of this view's log;
    /// `None` when that is not this view or no longer kept.
    pub fn changed_since(&self, position: (u64, u64)) -> Option<&[Arc<str>]> {
        let (id, at) = position;
        if id != self.id || at < self.log_base {
            return None;
        }
        let from = usize::try_from(at - self.log_base).ok()?;
        self.log.get(from..)
    }

    fn logged(&mut self, instance: &Arc<str>) {
        if self.log.len() >= LOG_KEPT {
            self.log_base += self.log.len() as u64;
            self.log.clear();
        }
        self.log.push(Arc::clone(instance));
    }

    fn build(snapshot: &Snapshot) -> TaskView {
        let mut view = TaskView {
            revision: snapshot.revision(),
            id: VIEW_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..TaskView::default()
        };
        for kv in snapshot.iter_prefix("/") {
            if is_task_key(&kv.key) {
                view.put(kv, None);
            }
        }
        // Nothing before the build is news to anyone.
        view.log_base += view.log.len() as u64;
        view.log = Vec::new();
        view
    }

    fn apply(&mut self, batch: &ChangeBatch) {
        for change in &batch.changes {
            match change {
                Change::Put { kv, decoded } if is_task_key(&kv.key) => {
                    self.put(kv, decoded.as_ref())
                }
                Change::Delete { key } if is_task_key(key) => self.remove(key),
                _ => {}
            }
        }
        self.revision = self.revision.max(batch.revision);
    }

    fn put(&mut self, kv: &KeyValue, decoded: Option<&Decoded>) {
        TaskSummary::with_change(kv, decoded, |summary| self.put_summary(kv, summary));
    }

    fn put_summary(&mut self, kv: &KeyValue, summary: &TaskSummary<'_>) {
        // The key is the store's own allocation, shared.
        let key: Arc<str> = Arc::clone(&kv.key);
        self.remove(&key);
        let instance_arn = summary
            .container_instance_arn
            .as_deref()
            .unwrap_or_default();
        let instance: Arc<str> = match self.instances.get_key_value(instance_arn) {
            Some((arn, _)) => Arc::clone(arn),
            None => Arc::from(instance_arn),
        };
        let entry = Entry {
            instance: Arc::clone(&instance),
            group: self
                .groups
                .intern(summary.group.as_deref().unwrap_or_default()),
            running: summary.last() == Some(TaskStatus::Running),
            stopped: summary.is_stopped(),
            desired_stopped: summary.desired() == Some(TaskStatus::Stopped),
        };
        self.logged(&instance);
        let tasks = self.instances.entry(instance).or_default();
        count(tasks, &key, &entry, 1);
        self.tasks.insert(key, entry);
    }

    fn remove(&mut self, key: &str) {
        let Some((key, entry)) = self.tasks.remove_entry(key) else {
            return;
        };
        self.logged(&entry.instance);
        if let Some(tasks) = self.instances.get_mut(&entry.instance) {
            count(tasks, &key, &entry, -1);
            if tasks.live.is_empty() && tasks.groups.is_empty() {
                self.instances.remove(&entry.instance);
            }
        }
        self.groups.release(entry.group);
    }
}

/// Adds (`sign` 1) or removes (-1) one task's share of its instance's counts.
fn count(tasks: &mut InstanceTasks, key: &Arc<str>, entry: &Entry, sign: i32) {
    if entry.stopped {
        // A STOPPED task holds nothing; only its group count may remain if it was
        // never desired STOPPED (it is not live either way).
    } else if entry.running {
        tasks.running += sign;
    } else {
        tasks.pending += sign;
    }
    if !entry.stopped {
        if sign > 0 {
            tasks.live.insert(Arc::clone(key));
        } else {
            tasks.live.remove(key);
        }
    }
    if !entry.desired_stopped {
        if entry.running {
            tasks.running_desired += i64::from(sign);
        }
        let group = tasks.groups.entry(entry.group.to_string()).or_default();
        if sign > 0 {
            *group += 1;
        } else {
            *group = group.saturating_sub(1);
            if *group == 0 {
                tasks.groups.remove(&*entry.group);
            }
        }
    }
}

struct Shared {
    view: RwLock<TaskView>,
    revision: watch::Sender<i64>,
    /// Set when the view fell behind the feed and is no longer followed.
    broken: std::sync::atomic::AtomicBool,
}

/// The views of one control plane, started by the first reader that has a store.
#[derive(Default)]
pub struct Views {
    current: Mutex<Option<Arc<Shared>>>,
}

impl Views {
    fn current(&self) -> Option<Arc<Shared>> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|shared| !shared.broken.load(std::sync::atomic::Ordering::Relaxed))
            .cloned()
    }

    /// Starts following the store if no one does (or the view broke).
    async fn ensure(&self, store: &dyn Store) -> Option<Arc<Shared>> {
        if let Some(shared) = self.current() {
            return Some(shared);
        }
        // Subscribe first, then read: every batch after the snapshot is in the feed.
        let mut feed = store.watch();
        let snapshot = store.snapshot().await.ok()?;
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = current
            .as_ref()
            .filter(|s| !s.broken.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Some(Arc::clone(shared));
        }
        let view = TaskView::build(&snapshot);
        let (revision, _) = watch::channel(view.revision);
        let shared = Arc::new(Shared {
            view: RwLock::new(view),
            revision,
            broken: std::sync::atomic::AtomicBool::new(false),
        });
        *current = Some(Arc::clone(&shared));
        drop(current);
        let follower = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                let batch = feed.recv().await;
                let Some(shared) = follower.upgrade() else {
                    return;
                };
                match batch {
                    Ok(batch) => {
                        let mut batches = vec![batch];
                        while let Ok(next) = feed.try_recv() {
                            batches.push(next);
                        }
                        let revision = {
                            let mut view = shared.view.write().unwrap_or_else(|e| e.into_inner());
                            for batch in &batches {
                                if batch.revision > view.revision {
                                    view.apply(batch);
                                }
                            }
                            view.revision
                        };
                        shared.revision.send_replace(revision);
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "the task view fell behind the change feed; it will be rebuilt"
                        );
                        shared
                            .broken
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Some(shared)
    }

    /// Runs `f` on the view once it includes everything up to `revision` (the
    /// revision of the caller's snapshot); `None` if the view cannot be had (then the
    /// caller scans).
    pub async fn caught_up<R>(
        &self,
        store: &dyn Store,
        revision: i64,
        f: impl FnOnce(&TaskView) -> R,
    ) -> Option<R> {
        let shared = self.ensure(store).await?;
        let mut seen = shared.revision.subscribe();
        let reached = tokio::time::timeout(CATCH_UP, seen.wait_for(|r| *r >= revision)).await;
        if !matches!(reached, Ok(Ok(_))) {
            return None;
        }
        let view = shared.view.read().unwrap_or_else(|e| e.into_inner());
        Some(f(&view))
    }

    /// Runs `f` on the view as it is now, whatever its revision (for hints), if one
    /// is followed.
    pub fn now<R>(&self, f: impl FnOnce(&TaskView) -> R) -> Option<R> {
        let shared = self.current()?;
        let view = shared.view.read().unwrap_or_else(|e| e.into_inner());
        Some(f(&view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_of_the_writers_record_is_the_summary_decoded_from_its_bytes()
    -> Result<(), Box<dyn std::error::Error>> {
        let json = serde_json::json!({
            "taskArn": "arn:aws:ecs:r:1:task/c/t1",
            "containerInstanceArn": "arn:aws:ecs:r:1:container-instance/c/i1",
            "group": "service:web",
            "lastStatus": "RUNNING",
            "desiredStatus": "STOPPED",
            "startedBy": "ecs-svc/1",
            "taskDefinitionArn": "arn:aws:ecs:r:1:task-definition/web:3",
            "containers": [{"name": "app"}],
        });
        let record: TaskRecord = serde_json::from_value(json.clone())?;
        let kv = KeyValue {
            key: Arc::from("/r/task/c/t1"),
            value: serde_json::to_vec(&json)?.into(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
        };
        let show = |summary: &TaskSummary<'_>| format!("{summary:?}");
        let decoded = TaskSummary::with_change(&kv, None, show);
        let handed = TaskSummary::with_change(&kv, Some(&Decoded::new(record)), show);
        assert!(
            decoded
                .as_deref()
                .is_some_and(|s| s.contains("service:web"))
        );
        assert_eq!(decoded, handed);
        Ok(())
    }
}

//! Building the payloads of a session: the instance's desired tasks, each with its
//! task definition and overrides applied, numbered in sequence.

use std::collections::HashMap;

use berth_model::ApiResult;
use berth_model::task::{TaskStatus, apply_overrides};
use berth_model::task_definition::NetworkMode;
use berth_proto::{DesiredStatus, DesiredTask, PayloadMessage};
use std::sync::Arc;

use berth_store::{KeyValue, Snapshot, Store};

use crate::api::task_state::HeldRecord;
use crate::state::definition_cache::DefinitionCache;
use crate::state::records::TaskRecord;
use crate::state::views::{TaskSummary, Views};
use crate::state::{self, keys};

pub struct Payloads {
    cluster_arn: String,
    instance_arn: String,
    seq_num: u64,
    /// The desired status last sent for each task, by task id, so a change of known
    /// state alone (which the agent itself reported) is not echoed back.
    sent: HashMap<Box<str>, DesiredStatus>,
    /// The records sent (by task id) that the agent has not reported on since: its
    /// report will most often be about that very version, which is then not decoded
    /// again. At most [`MAX_HELD`]; the rest are read from the store as usual.
    held: HashMap<Box<str>, HeldRecord>,
    acknowledged: u64,
}

/// The most sent records a session holds for its agent's reports.
const MAX_HELD: usize = 1024;

impl Payloads {
    pub fn new(cluster_arn: &str, instance_arn: &str) -> Self {
        Self {
            cluster_arn: cluster_arn.to_string(),
            instance_arn: instance_arn.to_string(),
            seq_num: 0,
            sent: HashMap::new(),
            held: HashMap::new(),
            acknowledged: 0,
        }
    }

    pub fn acknowledged(&mut self, seq_num: u64) {
        self.acknowledged = self.acknowledged.max(seq_num);
    }

    fn message(&mut self, tasks: Vec<DesiredTask>, full_state: bool) -> PayloadMessage {
        self.seq_num += 1;
        PayloadMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            seq_num: self.seq_num,
            cluster_arn: self.cluster_arn.clone(),
            container_instance_arn: self.instance_arn.clone(),
            full_state,
            tasks,
            generated_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }

    /// Every task of the instance the agent should know about: those desired RUNNING
    /// and those desired STOPPED that have not stopped yet.
    pub async fn full(
        &mut self,
        store: &dyn Store,
        views: &Views,
        definitions: &DefinitionCache,
        region: &str,
        cluster: &str,
    ) -> ApiResult<PayloadMessage> {
        let snapshot = store.snapshot().await.map_err(state::store_error)?;
        // The instance's live tasks from the task view (which may be newer than the
        // snapshot: the keys are read from the snapshot); a scan if there is no view.
        let listed: Option<Vec<Arc<str>>> = views
            .caught_up(store, snapshot.revision(), |view| {
                view.instance(&self.instance_arn)
                    .map(|tasks| tasks.live.iter().cloned().collect())
                    .unwrap_or_default()
            })
            .await;
        let found: Vec<&KeyValue> = match &listed {
            Some(keys) => keys.iter().filter_map(|key| snapshot.get(key)).collect(),
            None => snapshot
                .iter_prefix(&keys::tasks(region, cluster))
                .filter(|kv| {
                    TaskSummary::of(kv).is_some_and(|t| {
                        t.container_instance_arn.as_deref() == Some(&self.instance_arn)
                    })
                })
                .collect(),
        };
        let mut tasks = Vec::new();
        self.sent.clear();
        self.held.clear();
        for kv in found {
            let record: TaskRecord = state::decode_record(kv)?;
            if record.task.container_instance_arn.as_deref() != Some(&self.instance_arn)
                || record.is_stopped()
            {
                continue;
            }
            if let Some(task) = desired(&snapshot, definitions, region, &record)? {
                self.sent.insert(record.id().into(), task.desired_status);
                tasks.push(task);
            }
        }
        Ok(self.message(tasks, true))
    }

    /// Whether a changed task (its id, whether it is STOPPED, the desired status to
    /// send) may have something to tell the agent; a STOPPED one is forgotten here,
    /// as [`Payloads::delta`] would.
    pub fn has_news(&mut self, id: &str, stopped: bool, desired: DesiredStatus) -> bool {
        if stopped {
            self.sent.remove(id);
            self.held.remove(id);
            return false;
        }
        self.sent.get(id) != Some(&desired)
    }

    /// The tasks among `changed` whose desired state the agent has not been sent yet.
    pub fn delta(
        &mut self,
        snapshot: &Snapshot,
        definitions: &DefinitionCache,
        region: &str,
        changed: &[HeldRecord],
    ) -> ApiResult<Option<PayloadMessage>> {
        let mut tasks = Vec::new();
        for held in changed {
            let record = &*held.record;
            if record.task.container_instance_arn.as_deref() != Some(&self.instance_arn) {
                continue;
            }
            let id = record.id();
            if record.is_stopped() {
                // The agent reported it stopped: there is nothing left to tell it.
                self.sent.remove(id);
                self.held.remove(id);
                continue;
            }
            let status = desired_status(record);
            if self.sent.get(id) == Some(&status) {
                continue;
            }
            if let Some(task) = desired(snapshot, definitions, region, record)? {
                self.sent.insert(id.into(), status);
                self.hold(id, held.clone());
                tasks.push(task);
            }
        }
        Ok((!tasks.is_empty()).then(|| self.message(tasks, false)))
    }

    /// Holds `held`, a version of task `id` that its agent's own report just wrote,
    /// when the agent will soon report on it again (the task has not reached RUNNING:
    /// its start is under way), so that report too finds its record decoded. A task
    /// further along has nothing imminent to report: whatever is held of it goes.
    /// Only tasks sent to this agent, and within [`MAX_HELD`].
    pub fn hold_reported(&mut self, id: &str, held: HeldRecord) {
        let starting = held
            .record
            .last_status()
            .is_none_or(|status| status < TaskStatus::Running);
        if starting && self.sent.contains_key(id) {
            self.hold(id, held);
        } else {
            self.held.remove(id);
        }
    }

    /// Holds `held` for task `id`'s next report, in place of any older version, within
    /// [`MAX_HELD`].
    fn hold(&mut self, id: &str, held: HeldRecord) {
        if self.held.len() < MAX_HELD || self.held.contains_key(id) {
            self.held.insert(id.into(), held);
        }
    }

    /// The record last sent of task `id`, if the agent has not reported on it since;
    /// it is given once (the report about to be recorded writes a newer version).
    pub fn take_held(&mut self, id: &str) -> Option<HeldRecord> {
        self.held.remove(id)
    }
}

/// What the agent is told of a task whose desired status is `status`.
pub fn desired_status_of(status: Option<TaskStatus>) -> DesiredStatus {
    if status == Some(TaskStatus::Stopped) {
        DesiredStatus::Stopped
    } else {
        DesiredStatus::Running
    }
}

fn desired_status(record: &TaskRecord) -> DesiredStatus {
    desired_status_of(record.desired_status())
}

/// The desired task for the agent, or None if its task definition is gone.
fn desired(
    snapshot: &Snapshot,
    definitions: &DefinitionCache,
    region: &str,
    record: &TaskRecord,
) -> ApiResult<Option<DesiredTask>> {
    let definition_arn = record
        .task
        .task_definition_arn
        .as_deref()
        .unwrap_or_default();
    let Some((family, revision)) = definition_arn
        .rsplit_once("task-definition/")
        .and_then(|(_, rest)| rest.rsplit_once(':'))
        .and_then(|(family, revision)| Some((family, revision.parse::<i32>().ok()?)))
    else {
        return Ok(None);
    };
    let Some(found) =
        definitions.read(snapshot, &keys::task_definition(region, family, revision))?
    else {
        tracing::error!(task = ?record.task.task_arn, definition = definition_arn, "the task's definition is missing");
        return Ok(None);
    };
    let definition = apply_overrides(&found.value.task_definition, record.task.overrides.as_ref())?;
    // awsvpc runs as bridge (ports published at the container port) until tasks get
    // their own network namespace.
    let effective_network_mode = match definition.network_mode {
        Some(NetworkMode::Awsvpc) => Some("bridge".to_string()),
        other => other.map(|mode| mode.as_str().to_string()),
    };
    Ok(Some(DesiredTask {
        task_arn: record.task.task_arn.clone().unwrap_or_default(),
        cluster_arn: record.task.cluster_arn.clone().unwrap_or_default(),
        desired_status: desired_status(record),
        task_definition: definition,
        stopped_reason: record.task.stopped_reason.clone(),
        effective_network_mode,
        known_status: record.task.last_status.as_deref().and_then(known_status),
    }))
}

fn known_status(text: &str) -> Option<berth_proto::TaskStatus> {
    use berth_proto::TaskStatus::*;
    Some(match TaskStatus::parse(text)? {
        TaskStatus::Provisioning => Provisioning,
        TaskStatus::Pending => Pending,
        TaskStatus::Activating => Activating,
        TaskStatus::Running => Running,
        TaskStatus::Deactivating => Deactivating,
        TaskStatus::Stopping => Stopping,
        TaskStatus::Deprovisioning => Deprovisioning,
        TaskStatus::Stopped | TaskStatus::Deleted => Stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tasks_with_a_desired_status_not_yet_sent_have_news() {
        let mut payloads = Payloads::new("arn:cluster", "arn:instance");
        assert!(
            payloads.has_news("t1", false, DesiredStatus::Running),
            "never sent"
        );
        payloads.sent.insert("t1".into(), DesiredStatus::Running);
        assert!(
            !payloads.has_news("t1", false, DesiredStatus::Running),
            "the agent's own report of a task it was sent"
        );
        assert!(
            payloads.has_news("t1", false, DesiredStatus::Stopped),
            "now to stop"
        );
        assert!(
            !payloads.has_news("t1", true, DesiredStatus::Stopped),
            "stopped"
        );
        assert!(payloads.sent.is_empty(), "a stopped task is forgotten");
    }

    fn held(status: TaskStatus, mod_revision: i64) -> HeldRecord {
        let task = berth_model::task::Task {
            last_status: Some(status.as_str().to_string()),
            ..Default::default()
        };
        HeldRecord {
            mod_revision,
            record: Arc::new(TaskRecord {
                task,
                reserved: Default::default(),
                released: false,
                accounted: false,
            }),
        }
    }

    #[test]
    fn a_reported_version_is_held_while_its_task_is_still_starting() {
        let mut payloads = Payloads::new("arn:cluster", "arn:instance");
        payloads.sent.insert("t1".into(), DesiredStatus::Running);
        payloads.hold_reported("t1", held(TaskStatus::Pending, 5));
        let taken = payloads.take_held("t1").map(|h| h.mod_revision);
        assert_eq!(taken, Some(5), "a PENDING task's RUNNING report follows");
        assert!(payloads.take_held("t1").is_none(), "given once");

        payloads.hold_reported("t1", held(TaskStatus::Pending, 6));
        payloads.hold_reported("t1", held(TaskStatus::Running, 7));
        assert!(
            payloads.take_held("t1").is_none(),
            "RUNNING: nothing imminent, and the older version is not kept"
        );

        payloads.hold_reported("t2", held(TaskStatus::Pending, 8));
        assert!(
            payloads.take_held("t2").is_none(),
            "never sent to this agent"
        );
    }
}

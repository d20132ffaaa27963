//! What the service controller needs to find fast, derived from the store: the
//! services that are not INACTIVE, and for each service the keys of its tasks that
//! still matter to it (those not both STOPPED and accounted for). Without it every
//! pass would scan the whole key space for services and every task of a cluster for
//! each service's tasks.
//!
//! The index is built from a snapshot and kept up to date from the change feed; it is
//! a cache of the store, never a source of truth. It knows the store revision it is
//! at, and the controller brings it up to the revision of the snapshot it works on
//! before using it, so it never misses a task that snapshot holds (it may list a key
//! the snapshot does not have yet, which the reader skips).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use berth_model::service::{SchedulingStrategy, ServiceStatus};
use berth_model::task::{HealthStatus, TaskStatus, TaskStopCode};
use berth_store::{Change, ChangeBatch, Decoded, KeyValue, Snapshot};
use serde::Deserialize;

use super::plan::{ServiceTask, TaskList};
use crate::api::services::ServiceRecord;
use crate::state::codec;
use crate::state::interner::Interner;
use crate::state::records::TaskRecord;

/// A service, by where it lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceId {
    pub region: String,
    pub cluster: String,
    /// DAEMON services are looked at first (`false` sorts first): their tasks start
    /// before other services' on an instance that joins.
    pub replica: bool,
    pub name: String,
}

/// Where a task's service is: (region, cluster, service name).
type Owner = (String, String, String);

/// The members of a task record that the index and the service planner read, as
/// the JSON has them, borrowing their strings from the record (the rest is skipped
/// when decoding): the index makes of them the planner's [`ServiceTask`], once per
/// version of the record, and a pass reads the whole record only of the tasks it
/// changes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHead<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed")]
    task_arn: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    group: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    last_status: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    desired_status: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    started_by: Option<Cow<'a, str>>,
    #[serde(default)]
    health_status: Option<HealthStatus>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    container_instance_arn: Option<Cow<'a, str>>,
    #[serde(default)]
    started_at: Option<f64>,
    #[serde(default)]
    stop_code: Option<TaskStopCode>,
    #[serde(rename = "berthAccounted", default)]
    accounted: bool,
}

/// An optional string, borrowed from the input unless it has escapes.
fn borrowed<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'a>>::deserialize(deserializer)?.map(|text| text.0))
}

impl RawHead<'_> {
    /// The service the task belongs to, if it is a service's task that still
    /// matters to it (not both STOPPED and accounted for).
    fn service(&self) -> Option<&str> {
        let service = self.group.as_deref()?.strip_prefix("service:")?;
        let done =
            self.last_status.as_deref() == Some(TaskStatus::Stopped.as_str()) && self.accounted;
        (!done).then_some(service)
    }

    /// The planner's view of the task. The strings that many tasks repeat
    /// (deployment, instance id: the last part of the instance's ARN) are one shared
    /// copy each, from `strings`; the facts of the task's instance are left for the
    /// controller to answer ([`super::plan::InstanceFacts`]).
    fn service_task(&self, strings: &mut Interner) -> ServiceTask {
        let status = |text: &Option<Cow<'_, str>>| text.as_deref().and_then(TaskStatus::parse);
        ServiceTask {
            task_arn: self.task_arn.as_deref().map(Arc::from).unwrap_or_default(),
            deployment_id: (self.started_by.as_deref())
                .map(|by| strings.intern(by))
                .unwrap_or_default(),
            last_status: status(&self.last_status).unwrap_or(TaskStatus::Pending),
            desired_status: status(&self.desired_status).unwrap_or(TaskStatus::Pending),
            health: self.health_status.unwrap_or(HealthStatus::Unknown),
            instance_id: (self.container_instance_arn.as_deref())
                .map(|arn| strings.intern(arn.rsplit('/').next().unwrap_or_default())),
            zone: None,
            instance_available: None,
            started_at: self.started_at,
            stop_code: self.stop_code,
            accounted: self.accounted,
            instance_draining: false,
        }
    }
}

/// What a put of the change feed (or a record of a snapshot) means to the index:
/// the task's service and the planner's view of it, or `None` if it is not a task
/// record of a service's that still matters to it. The record is the writer's own
/// when it handed it over, else decoded from the bytes.
fn service_task_of(
    kv: &KeyValue,
    decoded: Option<&Decoded>,
    strings: &mut Interner,
) -> Option<(String, ServiceTask)> {
    fn made(raw: &RawHead<'_>, strings: &mut Interner) -> Option<(String, ServiceTask)> {
        let service = raw.service()?.to_string();
        Some((service, raw.service_task(strings)))
    }
    let Some(record) = decoded.and_then(Decoded::get::<TaskRecord>) else {
        let json = codec::json(&kv.value).ok()?;
        let raw: RawHead = serde_json::from_slice(&json).ok()?;
        return made(&raw, strings);
    };
    fn borrow(member: &Option<String>) -> Option<Cow<'_, str>> {
        member.as_deref().map(Cow::Borrowed)
    }
    let task = &record.task;
    let raw = RawHead {
        task_arn: borrow(&task.task_arn),
        group: borrow(&task.group),
        last_status: borrow(&task.last_status),
        desired_status: borrow(&task.desired_status),
        started_by: borrow(&task.started_by),
        health_status: task.health_status,
        container_instance_arn: borrow(&task.container_instance_arn),
        started_at: task.started_at,
        stop_code: task.stop_code,
        accounted: record.accounted,
    };
    made(&raw, strings)
}

/// Gives a task's shared strings back to the interner they came from (if a pass
/// still holds a list with the task, the interner's sweep takes them once it is
/// done).
fn release(task: ServiceTask, strings: &mut Interner) {
    strings.release(task.deployment_id);
    if let Some(instance) = task.instance_id {
        strings.release(instance);
    }
}

/// A service's tasks in the index: the planner's view of each, in a persistent
/// vector (a pass takes it whole as an O(1) clone; a change replaces, adds or
/// removes one entry in O(log n)), and each entry's task key by position.
#[derive(Debug, Default)]
struct ServiceTasks {
    list: TaskList,
    keys: Vec<Arc<str>>,
}

/// Where a task is in the index: its service, and its position in the service's
/// [`ServiceTasks`].
#[derive(Debug)]
struct Placed {
    owner: Arc<Owner>,
    at: usize,
}

/// `/{region}/{kind}/{cluster}/{rest}` -> (region, kind, cluster, rest).
pub fn key_parts(key: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = key.trim_start_matches('/').splitn(4, '/');
    Some((parts.next()?, parts.next()?, parts.next()?, parts.next()?))
}

/// What changes mean to the services: per cluster, every service of it (an instance
/// came or went, or changed its status or its agent's connection) or only the named
/// ones (their records or their tasks changed). An instance whose remaining resources
/// alone changed (a task placed or stopped on it) makes no service dirty: the services
/// whose tasks those are are dirty already, and a service waiting for room is looked
/// at again on the next tick.
#[derive(Debug, Default, Clone)]
pub struct Dirty {
    clusters: BTreeMap<(String, String), Option<BTreeSet<String>>>,
}

impl Dirty {
    /// Every service of the cluster.
    pub fn cluster(&mut self, region: &str, cluster: &str) {
        self.clusters
            .insert((region.to_string(), cluster.to_string()), None);
    }

    pub fn service(&mut self, region: &str, cluster: &str, name: &str) {
        let names = self
            .clusters
            .entry((region.to_string(), cluster.to_string()))
            .or_insert_with(|| Some(BTreeSet::new()));
        if let Some(names) = names {
            names.insert(name.to_string());
        }
    }

    pub fn contains(&self, service: &ServiceId) -> bool {
        match self
            .clusters
            .get(&(service.region.clone(), service.cluster.clone()))
        {
            Some(None) => true,
            Some(Some(names)) => names.contains(&service.name),
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    pub fn extend(&mut self, other: Dirty) {
        for ((region, cluster), names) in other.clusters {
            match names {
                None => self.cluster(&region, &cluster),
                Some(names) => {
                    for name in names {
                        self.service(&region, &cluster, &name);
                    }
                }
            }
        }
    }
}

/// The members of an instance record whose change matters to every service of the
/// cluster.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceHead {
    status: Option<String>,
    agent_connected: Option<bool>,
}

#[derive(Debug, Default)]
pub struct ServiceIndex {
    revision: i64,
    /// Service key -> the service, for those not INACTIVE.
    services: HashMap<String, ServiceId>,
    /// (region, cluster, service name) -> its tasks. A task's key and its owner are
    /// shared (`Arc`) between this map and `owners` (and the key with the store), so
    /// a million tasks hold one copy of each key and one owner per service.
    tasks: HashMap<Arc<Owner>, ServiceTasks>,
    /// Task key -> its service and its position there, to replace, move or drop it
    /// when it changes.
    owners: HashMap<Arc<str>, Placed>,
    /// Instance key -> its status and connection, to tell which changes matter.
    instances: HashMap<String, InstanceHead>,
    /// The strings the tasks' heads share.
    strings: Interner,
}

impl ServiceIndex {
    /// The index of everything in `snapshot`.
    pub fn build(snapshot: &Snapshot) -> Self {
        let mut index = Self {
            revision: snapshot.revision(),
            ..Self::default()
        };
        let mut dirty = Dirty::default();
        for kv in snapshot.iter_prefix("/") {
            index.put(kv, None, &mut dirty);
        }
        index
    }

    /// The store revision the index reflects.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Applies one committed batch of the change feed, noting in `dirty` the
    /// services it concerns.
    pub fn apply(&mut self, batch: &ChangeBatch, dirty: &mut Dirty) {
        for change in &batch.changes {
            match change {
                Change::Put { kv, decoded } => self.put(kv, decoded.as_ref(), dirty),
                Change::Delete { key } => self.remove(key, dirty),
            }
        }
        self.revision = self.revision.max(batch.revision);
    }

    /// Every service that is not INACTIVE, DAEMON services of a cluster first.
    pub fn services(&self) -> Vec<ServiceId> {
        let mut all: Vec<ServiceId> = self.services.values().cloned().collect();
        all.sort();
        all
    }

    /// The service's tasks that still matter to it (in no particular order): the
    /// index's own list, shared (an O(1) clone), not a copy.
    pub fn tasks_of(&self, region: &str, cluster: &str, name: &str) -> TaskList {
        self.tasks
            .get(&(region.to_string(), cluster.to_string(), name.to_string()))
            .map(|tasks| tasks.list.clone())
            .unwrap_or_default()
    }

    fn put(&mut self, kv: &KeyValue, decoded: Option<&Decoded>, dirty: &mut Dirty) {
        let Some((region, kind, cluster, rest)) = key_parts(&kv.key) else {
            return;
        };
        match kind {
            "cluster" => dirty.cluster(region, cluster),
            "instance" => {
                let head = codec::decode::<InstanceHead>(&kv.value).ok();
                let Some(head) = head else {
                    dirty.cluster(region, cluster);
                    return;
                };
                if self.instances.get(&*kv.key) != Some(&head) {
                    dirty.cluster(region, cluster);
                    self.instances.insert(kv.key.to_string(), head);
                }
            }
            "service" => {
                dirty.service(region, cluster, rest);
                let record: Option<ServiceRecord> = codec::decode(&kv.value).ok();
                match record.filter(|r| {
                    r.service.status.as_deref() != Some(ServiceStatus::Inactive.as_str())
                }) {
                    Some(record) => {
                        let id = ServiceId {
                            region: region.to_string(),
                            cluster: cluster.to_string(),
                            replica: record.service.scheduling() != SchedulingStrategy::Daemon,
                            name: record.service.service_name.unwrap_or_default(),
                        };
                        self.services.insert(kv.key.to_string(), id);
                    }
                    None => {
                        self.services.remove(&*kv.key);
                    }
                }
            }
            "task" => {
                let Some((service, task)) = service_task_of(kv, decoded, &mut self.strings) else {
                    self.remove(&kv.key, dirty);
                    return;
                };
                dirty.service(region, cluster, &service);
                if let Some(placed) = self.owners.get(&*kv.key)
                    && (placed.owner.0 == region && placed.owner.1 == cluster)
                    && placed.owner.2 == service
                    && let Some(tasks) = self.tasks.get_mut(&placed.owner)
                    && placed.at < tasks.list.len()
                {
                    let replaced = tasks.list.set(placed.at, task);
                    release(replaced, &mut self.strings);
                    return;
                }
                self.remove(&kv.key, dirty);
                let owner = (region.to_string(), cluster.to_string(), service);
                // The key is the store's own allocation, shared.
                let key = Arc::clone(&kv.key);
                let owner = match self.tasks.get_key_value(&owner) {
                    Some((shared, _)) => Arc::clone(shared),
                    None => Arc::new(owner),
                };
                let tasks = self.tasks.entry(Arc::clone(&owner)).or_default();
                let at = tasks.list.len();
                tasks.list.push_back(task);
                tasks.keys.push(Arc::clone(&key));
                self.owners.insert(key, Placed { owner, at });
            }
            _ => {}
        }
    }

    fn remove(&mut self, key: &str, dirty: &mut Dirty) {
        if let Some(service) = self.services.remove(key) {
            dirty.service(&service.region, &service.cluster, &service.name);
        }
        if self.instances.remove(key).is_some()
            && let Some((region, _, cluster, _)) = key_parts(key)
        {
            dirty.cluster(region, cluster);
        }
        if let Some(Placed { owner, at }) = self.owners.remove(key) {
            dirty.service(&owner.0, &owner.1, &owner.2);
            let Some(tasks) = self.tasks.get_mut(&owner) else {
                return;
            };
            // The last entry fills the hole.
            let last = tasks.list.len().saturating_sub(1);
            let removed = if at < last {
                let moved = tasks.list.pop_back();
                moved.map(|moved| tasks.list.set(at, moved))
            } else {
                tasks.list.pop_back()
            };
            if at < tasks.keys.len() {
                tasks.keys.swap_remove(at);
                if let Some(placed) = tasks.keys.get(at).and_then(|k| self.owners.get_mut(k)) {
                    placed.at = at;
                }
            }
            if let Some(removed) = removed {
                release(removed, &mut self.strings);
            }
            if tasks.keys.is_empty() {
                self.tasks.remove(&owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn kv(key: &str, value: serde_json::Value, revision: i64) -> Arc<KeyValue> {
        Arc::new(KeyValue {
            key: Arc::from(key),
            value: Bytes::from(value.to_string()),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        })
    }

    fn batch(revision: i64, changes: Vec<Change>) -> ChangeBatch {
        ChangeBatch { revision, changes }
    }

    impl ServiceIndex {
        fn apply_for_test(&mut self, batch: &ChangeBatch) -> Dirty {
            let mut dirty = Dirty::default();
            self.apply(batch, &mut dirty);
            dirty
        }

        /// The service's task keys, sorted, after checking that every key's
        /// position in `owners` is where its task is.
        fn keys_of(&self, name: &str) -> Vec<String> {
            let owner = ("r".to_string(), "c".to_string(), name.to_string());
            let Some(tasks) = self.tasks.get(&owner) else {
                return Vec::new();
            };
            assert_eq!(tasks.keys.len(), tasks.list.len());
            for (at, key) in tasks.keys.iter().enumerate() {
                let Some((held, placed)) = self.owners.get_key_value(key) else {
                    panic!("{key} has an owner");
                };
                assert!(placed.at == at && *placed.owner == owner);
                assert!(Arc::ptr_eq(held, key), "one copy of the key");
            }
            let mut keys: Vec<String> = tasks.keys.iter().map(|k| k.to_string()).collect();
            keys.sort();
            keys
        }
    }

    #[test]
    fn tasks_follow_their_service_until_stopped_and_accounted() {
        let mut index = ServiceIndex::default();
        let key = "/r/task/c/t1";
        index.apply_for_test(&batch(
            1,
            vec![Change::put(kv(
                key,
                serde_json::json!({"group": "service:web", "lastStatus": "RUNNING"}),
                1,
            ))],
        ));
        assert_eq!(index.keys_of("web"), vec![key.to_string()]);
        assert_eq!(index.revision(), 1);
        index.apply_for_test(&batch(
            2,
            vec![Change::put(kv(
                key,
                serde_json::json!({"group": "service:web", "lastStatus": "STOPPED"}),
                2,
            ))],
        ));
        assert_eq!(
            index.tasks_of("r", "c", "web").len(),
            1,
            "not yet accounted"
        );
        index.apply_for_test(&batch(
            3,
            vec![Change::put(kv(
                key,
                serde_json::json!({"group": "service:web", "lastStatus": "STOPPED", "berthAccounted": true}),
                3,
            ))],
        ));
        assert!(index.tasks_of("r", "c", "web").is_empty());
        let standalone = "/r/task/c/t2";
        index.apply_for_test(&batch(
            4,
            vec![Change::put(kv(
                standalone,
                serde_json::json!({"group": "family:web", "lastStatus": "RUNNING"}),
                4,
            ))],
        ));
        assert!(index.tasks_of("r", "c", "web").is_empty());
        assert!(index.owners.is_empty());
    }

    #[test]
    fn a_task_from_the_writers_record_is_the_task_decoded_from_its_bytes()
    -> Result<(), Box<dyn std::error::Error>> {
        let json = serde_json::json!({
            "taskArn": "arn:aws:ecs:r:1:task/c/t1",
            "group": "service:web",
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "startedBy": "ecs-svc/1",
            "healthStatus": "UNHEALTHY",
            "containerInstanceArn": "arn:aws:ecs:r:1:container-instance/c/i1",
            "startedAt": 1700000000.5,
            "stopCode": "EssentialContainerExited",
            "berthAccounted": false,
        });
        let record: TaskRecord = serde_json::from_value(json.clone())?;
        let stored = kv("/r/task/c/t1", json, 1);
        let mut strings = Interner::default();
        let decoded = service_task_of(&stored, None, &mut strings);
        let handed = service_task_of(&stored, Some(&Decoded::new(record)), &mut strings);
        let Some((service, task)) = &decoded else {
            panic!("a service's task");
        };
        assert_eq!(service, "web");
        assert_eq!(task.id(), "t1");
        assert_eq!(task.last_status, TaskStatus::Stopped);
        assert_eq!(task.health, HealthStatus::Unhealthy);
        assert_eq!(task.instance_id.as_deref(), Some("i1"));
        assert_eq!(decoded, handed);
        // A decoded form that is not a task record is not trusted: the bytes are read.
        let other = service_task_of(&stored, Some(&Decoded::new(7_u8)), &mut strings);
        assert_eq!(decoded, other);
        Ok(())
    }

    #[test]
    fn a_task_keeps_its_latest_version_and_holes_are_filled() {
        let mut index = ServiceIndex::default();
        let key = "/r/task/c/t1";
        let task = |id: &str, status: &str| {
            serde_json::json!({
                "taskArn": format!("arn:aws:ecs:r:1:task/c/{id}"),
                "group": "service:web",
                "lastStatus": status,
                "desiredStatus": "RUNNING",
                "startedBy": "ecs-svc/1",
                "healthStatus": "HEALTHY",
                "containerInstanceArn": "arn:aws:ecs:r:1:container-instance/c/i1",
                "startedAt": 1700000000.5,
                "containers": [{"name": "skipped"}],
            })
        };
        index.apply_for_test(&batch(
            1,
            vec![Change::put(kv(key, task("t1", "PENDING"), 1))],
        ));
        let before = index.tasks_of("r", "c", "web");
        index.apply_for_test(&batch(
            2,
            vec![Change::put(kv(key, task("t1", "RUNNING"), 2))],
        ));
        let tasks = index.tasks_of("r", "c", "web");
        assert_eq!(tasks.len(), 1);
        let found = &tasks[0];
        assert_eq!(found.id(), "t1");
        assert_eq!(found.last_status, TaskStatus::Running);
        assert_eq!(&*found.deployment_id, "ecs-svc/1");
        assert_eq!(found.health, HealthStatus::Healthy);
        assert_eq!(found.started_at, Some(1700000000.5));
        // A list a pass took is its own: later changes do not show in it.
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].last_status, TaskStatus::Pending);
        drop(before);

        // More tasks of the service share its owner and the strings they repeat.
        for (revision, id) in [(5, "t2"), (6, "t3"), (7, "t4")] {
            let other = format!("/r/task/c/{id}");
            index.apply_for_test(&batch(
                revision,
                vec![Change::put(kv(&other, task(id, "RUNNING"), revision))],
            ));
        }
        let (Some(first), Some(second)) = (index.owners.get(key), index.owners.get("/r/task/c/t2"))
        else {
            panic!("both tasks have an owner");
        };
        assert!(Arc::ptr_eq(&first.owner, &second.owner));
        let all = index.tasks_of("r", "c", "web");
        for pair in all.iter().collect::<Vec<_>>().windows(2) {
            let (Some(x), Some(y)) = (&pair[0].instance_id, &pair[1].instance_id) else {
                panic!("both set");
            };
            assert!(Arc::ptr_eq(x, y));
            assert!(Arc::ptr_eq(&pair[0].deployment_id, &pair[1].deployment_id));
        }
        drop(all);
        drop(tasks);
        // A task from the middle goes: the last one takes its place.
        index.apply_for_test(&batch(
            8,
            vec![Change::Delete {
                key: "/r/task/c/t2".to_string(),
            }],
        ));
        assert_eq!(
            index.keys_of("web"),
            vec![key, "/r/task/c/t3", "/r/task/c/t4"]
        );
        let mut ids: Vec<String> = index
            .tasks_of("r", "c", "web")
            .iter()
            .map(|t| t.id().to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, vec!["t1", "t3", "t4"]);
        // The last one goes.
        let last = index
            .tasks
            .values()
            .next()
            .and_then(|t| t.keys.last().cloned());
        if let Some(last) = last {
            index.apply_for_test(&batch(
                9,
                vec![Change::Delete {
                    key: last.to_string(),
                }],
            ));
        }
        assert_eq!(index.keys_of("web").len(), 2);
        for other in ["/r/task/c/t3", "/r/task/c/t4"] {
            index.apply_for_test(&batch(
                10,
                vec![Change::Delete {
                    key: other.to_string(),
                }],
            ));
        }
        assert_eq!(index.keys_of("web"), vec![key]);

        // Moved to another group (a service's), then deleted: gone everywhere.
        index.apply_for_test(&batch(
            11,
            vec![Change::put(kv(
                key,
                serde_json::json!({"group": "service:api", "lastStatus": "RUNNING"}),
                11,
            ))],
        ));
        assert!(index.tasks_of("r", "c", "web").is_empty());
        assert_eq!(index.keys_of("api"), vec![key]);
        index.apply_for_test(&batch(
            12,
            vec![Change::Delete {
                key: key.to_string(),
            }],
        ));
        assert!(index.tasks_of("r", "c", "api").is_empty());
        assert!(index.owners.is_empty() && index.tasks.is_empty());
        assert!(index.strings.is_empty(), "every shared string given back");
    }

    #[test]
    fn changes_make_dirty_only_the_services_they_concern() {
        let mut index = ServiceIndex::default();
        let id = |name: &str| ServiceId {
            region: "r".into(),
            cluster: "c".into(),
            replica: true,
            name: name.into(),
        };
        let instance = |status: &str, cpu: i64| {
            serde_json::json!({"status": status, "agentConnected": true,
                "remainingResources": [{"name": "CPU", "integerValue": cpu}]})
        };
        let dirty = index.apply_for_test(&batch(
            1,
            vec![Change::put(kv(
                "/r/instance/c/i1",
                instance("ACTIVE", 100),
                1,
            ))],
        ));
        assert!(
            dirty.contains(&id("web")) && dirty.contains(&id("api")),
            "a new instance"
        );
        let dirty = index.apply_for_test(&batch(
            2,
            vec![Change::put(kv(
                "/r/instance/c/i1",
                instance("ACTIVE", 50),
                2,
            ))],
        ));
        assert!(dirty.is_empty(), "only its resources changed");
        let dirty = index.apply_for_test(&batch(
            3,
            vec![Change::put(kv(
                "/r/instance/c/i1",
                instance("DRAINING", 50),
                3,
            ))],
        ));
        assert!(dirty.contains(&id("web")), "its status changed");
        let dirty = index.apply_for_test(&batch(
            4,
            vec![Change::put(kv(
                "/r/task/c/t1",
                serde_json::json!({"group": "service:web", "lastStatus": "RUNNING"}),
                4,
            ))],
        ));
        assert!(dirty.contains(&id("web")) && !dirty.contains(&id("api")));
        let mut other = id("web");
        other.cluster = "d".into();
        assert!(!dirty.contains(&other));
        let dirty = index.apply_for_test(&batch(
            5,
            vec![Change::Delete {
                key: "/r/task/c/t1".into(),
            }],
        ));
        assert!(dirty.contains(&id("web")) && !dirty.contains(&id("api")));
        let dirty = index.apply_for_test(&batch(
            6,
            vec![Change::Delete {
                key: "/r/instance/c/i1".into(),
            }],
        ));
        assert!(dirty.contains(&id("api")), "an instance went");
    }

    #[test]
    fn services_are_listed_daemons_first_and_inactive_ones_dropped() {
        let mut index = ServiceIndex::default();
        let service = |name: &str, strategy: &str, status: &str| {
            serde_json::json!({
                "serviceName": name,
                "schedulingStrategy": strategy,
                "status": status,
            })
        };
        index.apply_for_test(&batch(
            1,
            vec![
                Change::put(kv(
                    "/r/service/c/web",
                    service("web", "REPLICA", "ACTIVE"),
                    1,
                )),
                Change::put(kv(
                    "/r/service/c/logs",
                    service("logs", "DAEMON", "ACTIVE"),
                    1,
                )),
            ],
        ));
        let names: Vec<String> = index.services().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["logs", "web"]);
        index.apply_for_test(&batch(
            2,
            vec![Change::put(kv(
                "/r/service/c/web",
                service("web", "REPLICA", "INACTIVE"),
                2,
            ))],
        ));
        let names: Vec<String> = index.services().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["logs"]);
    }
}

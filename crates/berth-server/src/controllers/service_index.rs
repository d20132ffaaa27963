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

/// The members of a task record that the index and the service planner read (the
/// rest is skipped when decoding): a pass over a service reads these for each of its
/// tasks, and the whole record only of those it changes. The strings that many tasks
/// repeat (group, deployment, instance ARN) are one shared copy each, from the
/// index's [`Interner`]; statuses are decoded to their enums, and the instance's ARN
/// to its id, which is what a pass looks instances up by.
#[derive(Debug)]
pub struct TaskHead {
    pub task_arn: Option<Arc<str>>,
    pub group: Option<Arc<str>>,
    pub last_status: Option<TaskStatus>,
    pub desired_status: Option<TaskStatus>,
    pub started_by: Option<Arc<str>>,
    pub health_status: Option<HealthStatus>,
    /// The id of the task's container instance (the last part of its ARN).
    pub instance_id: Option<Arc<str>>,
    pub started_at: Option<f64>,
    pub stop_code: Option<TaskStopCode>,
    pub accounted: bool,
}

/// [`TaskHead`] as the JSON has it, borrowing its strings from the record.
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

impl TaskHead {
    /// The head of a task record; `None` if the value is not one.
    pub fn decode(kv: &KeyValue, strings: &mut Interner) -> Option<TaskHead> {
        let json = codec::json(&kv.value).ok()?;
        let raw: RawHead = serde_json::from_slice(&json).ok()?;
        Some(TaskHead::of_raw(raw, strings))
    }

    /// The head of the task record a put of the change feed wrote: from the writer's
    /// own record when it handed it over, else decoded.
    pub fn of_change(
        kv: &KeyValue,
        decoded: Option<&Decoded>,
        strings: &mut Interner,
    ) -> Option<TaskHead> {
        let Some(record) = decoded.and_then(Decoded::get::<TaskRecord>) else {
            return TaskHead::decode(kv, strings);
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
        Some(TaskHead::of_raw(raw, strings))
    }

    fn of_raw(raw: RawHead<'_>, strings: &mut Interner) -> TaskHead {
        TaskHead {
            task_arn: raw.task_arn.map(|arn| Arc::from(&*arn)),
            group: raw.group.map(|group| strings.intern(&group)),
            last_status: raw.last_status.as_deref().and_then(TaskStatus::parse),
            desired_status: raw.desired_status.as_deref().and_then(TaskStatus::parse),
            started_by: raw.started_by.map(|by| strings.intern(&by)),
            health_status: raw.health_status,
            instance_id: (raw.container_instance_arn)
                .map(|arn| strings.intern(arn.rsplit('/').next().unwrap_or_default())),
            started_at: raw.started_at,
            stop_code: raw.stop_code,
            accounted: raw.accounted,
        }
    }

    /// Gives the head's shared strings back to the interner they came from.
    fn release(self, strings: &mut Interner) {
        for shared in [self.group, self.started_by, self.instance_id]
            .into_iter()
            .flatten()
        {
            strings.release(shared);
        }
    }

    /// The service the task belongs to, if it is a service's task that still
    /// matters to it (not both STOPPED and accounted for).
    pub fn service(&self) -> Option<&str> {
        let service = self.group.as_deref()?.strip_prefix("service:")?;
        let done = self.last_status == Some(TaskStatus::Stopped) && self.accounted;
        (!done).then_some(service)
    }
}

/// A task as the index last saw it: its head at the revision it was decoded from.
#[derive(Debug, Clone)]
pub struct IndexedTask {
    pub mod_revision: i64,
    pub head: Arc<TaskHead>,
}

impl IndexedTask {
    /// Gives the head's shared strings back (if a pass still holds the head, the
    /// interner's sweep takes them once it is done).
    fn release(self, strings: &mut Interner) {
        if let Ok(head) = Arc::try_unwrap(self.head) {
            head.release(strings);
        }
    }
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
    /// (region, cluster, service name) -> its tasks, by key. A task's key and its
    /// owner are shared (`Arc`) between this map and `owners`, so a million tasks
    /// hold one copy of each key and one owner per service.
    tasks: HashMap<Arc<Owner>, BTreeMap<Arc<str>, IndexedTask>>,
    /// Task key -> its service, to move or drop it when it changes.
    owners: HashMap<Arc<str>, Arc<Owner>>,
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

    /// The service's tasks that still matter to it, by key.
    pub fn tasks_of(
        &self,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Vec<(Arc<str>, IndexedTask)> {
        self.tasks
            .get(&(region.to_string(), cluster.to_string(), name.to_string()))
            .map(|tasks| {
                tasks
                    .iter()
                    .map(|(key, task)| (Arc::clone(key), task.clone()))
                    .collect()
            })
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
                let head = TaskHead::of_change(kv, decoded, &mut self.strings);
                let owner = head.as_ref().and_then(|head| {
                    let service = head.service()?;
                    Some((region.to_string(), cluster.to_string(), service.to_string()))
                });
                match (owner, head) {
                    (Some(owner), Some(head)) => {
                        let task = IndexedTask {
                            mod_revision: kv.mod_revision,
                            head: Arc::new(head),
                        };
                        dirty.service(&owner.0, &owner.1, &owner.2);
                        let (key, owner) = match self.owners.get_key_value(&*kv.key) {
                            Some((key, known)) if **known == owner => {
                                (Arc::clone(key), Arc::clone(known))
                            }
                            _ => {
                                self.remove(&kv.key, dirty);
                                // The key is the store's own allocation, shared.
                                let key = Arc::clone(&kv.key);
                                let owner = match self.tasks.get_key_value(&owner) {
                                    Some((shared, _)) => Arc::clone(shared),
                                    None => Arc::new(owner),
                                };
                                self.owners.insert(Arc::clone(&key), Arc::clone(&owner));
                                (key, owner)
                            }
                        };
                        let replaced = self.tasks.entry(owner).or_default().insert(key, task);
                        if let Some(replaced) = replaced {
                            replaced.release(&mut self.strings);
                        }
                    }
                    (_, head) => {
                        if let Some(head) = head {
                            head.release(&mut self.strings);
                        }
                        self.remove(&kv.key, dirty);
                    }
                }
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
        if let Some(owner) = self.owners.remove(key) {
            dirty.service(&owner.0, &owner.1, &owner.2);
            if let Some(keys) = self.tasks.get_mut(&owner) {
                if let Some(removed) = keys.remove(key) {
                    removed.release(&mut self.strings);
                }
                if keys.is_empty() {
                    self.tasks.remove(&owner);
                }
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
        let keys = |index: &ServiceIndex| -> Vec<String> {
            index
                .tasks_of("r", "c", "web")
                .into_iter()
                .map(|(key, _)| key.to_string())
                .collect()
        };
        assert_eq!(keys(&index), vec![key.to_string()]);
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
    fn a_head_from_the_writers_record_is_the_head_decoded_from_its_bytes()
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
        let decoded = TaskHead::of_change(&stored, None, &mut strings);
        let handed = TaskHead::of_change(&stored, Some(&Decoded::new(record)), &mut strings);
        assert!(decoded.is_some());
        assert_eq!(format!("{decoded:?}"), format!("{handed:?}"));
        // A decoded form that is not a task record is not trusted: the bytes are read.
        let other = TaskHead::of_change(&stored, Some(&Decoded::new(7_u8)), &mut strings);
        assert_eq!(format!("{decoded:?}"), format!("{other:?}"));
        Ok(())
    }

    #[test]
    fn a_task_keeps_the_head_of_its_latest_version() {
        let mut index = ServiceIndex::default();
        let key = "/r/task/c/t1";
        let task = |status: &str| {
            serde_json::json!({
                "taskArn": "arn:aws:ecs:r:1:task/c/t1",
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
        index.apply_for_test(&batch(1, vec![Change::put(kv(key, task("PENDING"), 1))]));
        index.apply_for_test(&batch(2, vec![Change::put(kv(key, task("RUNNING"), 2))]));
        let tasks = index.tasks_of("r", "c", "web");
        assert_eq!(tasks.len(), 1);
        let (found, indexed) = &tasks[0];
        assert_eq!(&**found, key);
        assert_eq!(indexed.mod_revision, 2);
        let head = &indexed.head;
        assert_eq!(head.last_status, Some(TaskStatus::Running));
        assert_eq!(head.started_by.as_deref(), Some("ecs-svc/1"));
        assert_eq!(head.health_status, Some(HealthStatus::Healthy));
        assert_eq!(head.started_at, Some(1700000000.5));
        assert_eq!(head.service(), Some("web"));

        // A second task of the service shares its owner; each key is held once.
        let other = "/r/task/c/t2";
        index.apply_for_test(&batch(5, vec![Change::put(kv(other, task("RUNNING"), 5))]));
        let (Some(first), Some(second)) = (index.owners.get(key), index.owners.get(other)) else {
            panic!("both tasks have an owner");
        };
        assert!(Arc::ptr_eq(first, second));
        for (task_key, _) in index.tasks_of("r", "c", "web") {
            let Some((owned, _)) = index.owners.get_key_value(&*task_key) else {
                panic!("{task_key} has an owner");
            };
            assert!(Arc::ptr_eq(owned, &task_key));
        }
        // The strings tasks repeat are one copy each.
        let both = index.tasks_of("r", "c", "web");
        let [(_, a), (_, b)] = both.as_slice() else {
            panic!("two tasks");
        };
        for (x, y) in [
            (&a.head.instance_id, &b.head.instance_id),
            (&a.head.started_by, &b.head.started_by),
            (&a.head.group, &b.head.group),
        ] {
            let (Some(x), Some(y)) = (x, y) else {
                panic!("both set");
            };
            assert!(Arc::ptr_eq(x, y));
        }
        drop(both);
        drop(tasks);
        index.apply_for_test(&batch(
            6,
            vec![Change::Delete {
                key: other.to_string(),
            }],
        ));

        // Moved to another group (not a service's), then deleted: gone everywhere.
        index.apply_for_test(&batch(
            3,
            vec![Change::put(kv(
                key,
                serde_json::json!({"group": "service:api", "lastStatus": "RUNNING"}),
                3,
            ))],
        ));
        assert!(index.tasks_of("r", "c", "web").is_empty());
        assert_eq!(index.tasks_of("r", "c", "api").len(), 1);
        index.apply_for_test(&batch(
            4,
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

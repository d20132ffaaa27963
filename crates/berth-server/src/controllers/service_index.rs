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

use std::collections::{BTreeSet, HashMap};

use berth_model::service::{SchedulingStrategy, ServiceStatus};
use berth_store::{Change, ChangeBatch, KeyValue, Snapshot};
use serde::Deserialize;

use crate::api::services::ServiceRecord;

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

/// The members of a task record the index reads (the rest is skipped).
#[derive(Deserialize)]
struct TaskHead {
    group: Option<String>,
    #[serde(rename = "lastStatus")]
    last_status: Option<String>,
    #[serde(rename = "berthAccounted", default)]
    accounted: bool,
}

/// `/{region}/{kind}/{cluster}/{rest}` -> (region, kind, cluster, rest).
pub fn key_parts(key: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = key.trim_start_matches('/').splitn(4, '/');
    Some((parts.next()?, parts.next()?, parts.next()?, parts.next()?))
}

#[derive(Debug, Default)]
pub struct ServiceIndex {
    revision: i64,
    /// Service key -> the service, for those not INACTIVE.
    services: HashMap<String, ServiceId>,
    /// (region, cluster, service name) -> its tasks' keys.
    tasks: HashMap<Owner, BTreeSet<String>>,
    /// Task key -> its service, to move or drop it when it changes.
    owners: HashMap<String, Owner>,
}

impl ServiceIndex {
    /// The index of everything in `snapshot`.
    pub fn build(snapshot: &Snapshot) -> Self {
        let mut index = Self {
            revision: snapshot.revision(),
            ..Self::default()
        };
        for kv in snapshot.iter_prefix("/") {
            index.put(kv);
        }
        index
    }

    /// The store revision the index reflects.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Applies one committed batch of the change feed.
    pub fn apply(&mut self, batch: &ChangeBatch) {
        for change in &batch.changes {
            match change {
                Change::Put(kv) => self.put(kv),
                Change::Delete { key } => self.remove(key),
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

    /// The keys of the service's tasks that still matter to it.
    pub fn tasks_of(&self, region: &str, cluster: &str, name: &str) -> Vec<String> {
        self.tasks
            .get(&(region.to_string(), cluster.to_string(), name.to_string()))
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn put(&mut self, kv: &KeyValue) {
        let Some((region, kind, cluster, _)) = key_parts(&kv.key) else {
            return;
        };
        match kind {
            "service" => {
                let record: Option<ServiceRecord> = serde_json::from_slice(&kv.value).ok();
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
                        self.services.insert(kv.key.clone(), id);
                    }
                    None => {
                        self.services.remove(&kv.key);
                    }
                }
            }
            "task" => {
                let head: Option<TaskHead> = serde_json::from_slice(&kv.value).ok();
                let owner = head.and_then(|head| {
                    let service = head.group.as_deref()?.strip_prefix("service:")?;
                    let done = head.last_status.as_deref() == Some("STOPPED") && head.accounted;
                    (!done).then(|| (region.to_string(), cluster.to_string(), service.to_string()))
                });
                self.remove(&kv.key);
                if let Some(owner) = owner {
                    self.tasks
                        .entry(owner.clone())
                        .or_default()
                        .insert(kv.key.clone());
                    self.owners.insert(kv.key.clone(), owner);
                }
            }
            _ => {}
        }
    }

    fn remove(&mut self, key: &str) {
        self.services.remove(key);
        if let Some(owner) = self.owners.remove(key)
            && let Some(keys) = self.tasks.get_mut(&owner)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.tasks.remove(&owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn kv(key: &str, value: serde_json::Value, revision: i64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Bytes::from(value.to_string()),
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        }
    }

    fn batch(revision: i64, changes: Vec<Change>) -> ChangeBatch {
        ChangeBatch { revision, changes }
    }

    #[test]
    fn tasks_follow_their_service_until_stopped_and_accounted() {
        let mut index = ServiceIndex::default();
        let key = "/r/task/c/t1";
        index.apply(&batch(
            1,
            vec![Change::Put(kv(
                key,
                serde_json::json!({"group": "service:web", "lastStatus": "RUNNING"}),
                1,
            ))],
        ));
        assert_eq!(index.tasks_of("r", "c", "web"), vec![key.to_string()]);
        assert_eq!(index.revision(), 1);
        index.apply(&batch(
            2,
            vec![Change::Put(kv(
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
        index.apply(&batch(
            3,
            vec![Change::Put(kv(
                key,
                serde_json::json!({"group": "service:web", "lastStatus": "STOPPED", "berthAccounted": true}),
                3,
            ))],
        ));
        assert!(index.tasks_of("r", "c", "web").is_empty());
        let standalone = "/r/task/c/t2";
        index.apply(&batch(
            4,
            vec![Change::Put(kv(
                standalone,
                serde_json::json!({"group": "family:web", "lastStatus": "RUNNING"}),
                4,
            ))],
        ));
        assert!(index.tasks_of("r", "c", "web").is_empty());
        assert!(index.owners.is_empty());
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
        index.apply(&batch(
            1,
            vec![
                Change::Put(kv(
                    "/r/service/c/web",
                    service("web", "REPLICA", "ACTIVE"),
                    1,
                )),
                Change::Put(kv(
                    "/r/service/c/logs",
                    service("logs", "DAEMON", "ACTIVE"),
                    1,
                )),
            ],
        ));
        let names: Vec<String> = index.services().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["logs", "web"]);
        index.apply(&batch(
            2,
            vec![Change::Put(kv(
                "/r/service/c/web",
                service("web", "REPLICA", "INACTIVE"),
                2,
            ))],
        ));
        let names: Vec<String> = index.services().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["logs"]);
    }
}

//! The cluster's container instance records, decoded once per version.
//!
//! Placement reads every instance of a cluster for each decision (a RunTask, a
//! pass of the service controller); an instance record carries its attributes and
//! resources (~35 attributes), and decoding all of them each time was most of the
//! control plane's CPU under load. This cache keeps, per instance key, the record
//! decoded at one `mod_revision` together with the view placement builds from it;
//! a decision takes the entry whose revision matches its snapshot's and decodes only
//! what changed since. It is a cache, never a source of truth: an entry is used only
//! when its revision is the snapshot's, so any snapshot, old or new, reads exactly
//! its own records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_model::ApiResult;
use berth_sched::InstanceView;
use berth_store::{KeyValue, Snapshot};

use super::records::InstanceRecord;

/// The attribute naming an instance's availability zone.
pub const ZONE_ATTRIBUTE: &str = "ecs.availability-zone";

/// One instance record at one revision, decoded, with its placement view.
#[derive(Debug)]
pub struct CachedInstance {
    pub key: String,
    pub mod_revision: i64,
    pub record: InstanceRecord,
    /// [`instance_view`](crate::api::tasks::instance_view) of the record.
    pub view: InstanceView,
    /// The instance's id, shared by whatever refers to the instance by id.
    pub shared_id: Arc<str>,
    /// The instance's availability zone (its `ecs.availability-zone` attribute).
    pub zone: Option<Arc<str>>,
    /// Where the id starts in the key.
    id_at: usize,
    /// The snapshot entry this was decoded from, when it was: a later snapshot
    /// holding the very same entry (same allocation) holds the same record.
    source: Option<Arc<KeyValue>>,
}

impl CachedInstance {
    pub fn new(key: String, mod_revision: i64, record: InstanceRecord) -> CachedInstance {
        let view = crate::api::tasks::instance_view(&record);
        let id_at = key.rfind('/').map_or(0, |at| at + 1);
        let zone = view
            .attributes
            .get(ZONE_ATTRIBUTE)
            .and_then(|value| value.as_deref())
            .map(Arc::from);
        CachedInstance {
            shared_id: Arc::from(key.get(id_at..).unwrap_or_default()),
            zone,
            key,
            mod_revision,
            record,
            view,
            id_at,
            source: None,
        }
    }

    /// The instance's id, the last segment of its key.
    pub fn id(&self) -> &str {
        self.key.get(self.id_at..).unwrap_or_default()
    }

    /// Whether this was decoded from exactly this snapshot entry.
    fn is_from(&self, kv: &Arc<KeyValue>) -> bool {
        self.source
            .as_ref()
            .is_some_and(|source| Arc::ptr_eq(source, kv))
    }
}

/// A cluster's instances as one snapshot has them, in key order (so by id), with
/// each one's position by id.
#[derive(Debug, Default)]
pub struct ClusterInstances {
    list: Vec<Arc<CachedInstance>>,
    /// Id to position in `list`; shared by every version with the same keys (a
    /// version differing only in records' values keeps it).
    positions: Arc<HashMap<Box<str>, usize>>,
}

impl ClusterInstances {
    /// Every instance, in key order.
    pub fn list(&self) -> &[Arc<CachedInstance>] {
        &self.list
    }

    /// The instance with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<CachedInstance>> {
        self.list.get(*self.positions.get(id)?)
    }

    fn new(list: Vec<Arc<CachedInstance>>, same_keys_as: Option<&ClusterInstances>) -> Self {
        let positions = match same_keys_as {
            Some(old) => Arc::clone(&old.positions),
            None => Arc::new(
                list.iter()
                    .enumerate()
                    .map(|(at, cached)| (Box::from(cached.id()), at))
                    .collect(),
            ),
        };
        ClusterInstances { list, positions }
    }
}

/// Per cluster prefix, the instances as last read.
#[derive(Default)]
pub struct InstanceCache {
    clusters: Mutex<HashMap<String, Arc<ClusterInstances>>>,
}

impl InstanceCache {
    /// Every instance record under `prefix` in `snapshot`, decoded (from the cache
    /// when it holds the same revision), in key order. The snapshot's keys and the
    /// cache are both in key order, so they are walked side by side; an entry the
    /// snapshot shares with the cached version (the same allocation: the same key at
    /// the same revision) is recognised without comparing keys, and a walk that finds
    /// nothing changed returns the cached version itself, allocating nothing.
    pub fn instances(&self, snapshot: &Snapshot, prefix: &str) -> ApiResult<Arc<ClusterInstances>> {
        let cached = self.lock().get(prefix).cloned().unwrap_or_default();
        let old = cached.list();
        // The entries found, once one differs from the cached version's.
        let mut found: Option<Vec<Arc<CachedInstance>>> = None;
        let mut keys_changed = false;
        let mut at = 0;
        for kv in snapshot.iter_prefix_shared(prefix) {
            if let Some(entry) = old.get(at)
                && entry.is_from(kv)
            {
                if let Some(found) = found.as_mut() {
                    found.push(Arc::clone(entry));
                }
                at += 1;
                continue;
            }
            let found = found.get_or_insert_with(|| {
                let mut list = Vec::with_capacity(old.len() + 1);
                list.extend(old.iter().take(at).cloned());
                list
            });
            while old
                .get(at)
                .is_some_and(|e| e.key.as_str() < kv.key.as_str())
            {
                at += 1;
                keys_changed = true;
            }
            match old.get(at) {
                Some(entry) if entry.key == kv.key => {
                    at += 1;
                    if entry.mod_revision == kv.mod_revision {
                        found.push(Arc::clone(entry));
                    } else {
                        found.push(Arc::new(decode(kv)?));
                    }
                }
                _ => {
                    keys_changed = true;
                    found.push(Arc::new(decode(kv)?));
                }
            }
        }
        if at < old.len() {
            keys_changed = true;
            found.get_or_insert_with(|| old.iter().take(at).cloned().collect());
        }
        let Some(found) = found else {
            return Ok(cached);
        };
        let fresh = Arc::new(ClusterInstances::new(
            found,
            (!keys_changed).then_some(&*cached),
        ));
        let mut clusters = self.lock();
        if fresh.list.is_empty() {
            clusters.remove(prefix);
        } else {
            clusters.insert(prefix.to_string(), Arc::clone(&fresh));
        }
        Ok(fresh)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ClusterInstances>>> {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn decode(kv: &Arc<KeyValue>) -> ApiResult<CachedInstance> {
    let record: InstanceRecord = super::decode_record(kv)?;
    let mut cached = CachedInstance::new(kv.key.clone(), kv.mod_revision, record);
    cached.source = Some(Arc::clone(kv));
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{Store, Txn};

    fn record(id: &str, cpu: i64) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&serde_json::json!({
            "containerInstanceArn": format!("arn:aws:ecs:r:1:container-instance/c/{id}"),
            "status": "ACTIVE",
            "agentConnected": true,
            "remainingResources": [{"name": "CPU", "type": "INTEGER", "integerValue": cpu}],
            "attributes": [{"name": "zone", "value": "a"}],
        }))
    }

    #[tokio::test]
    async fn entries_are_reused_until_their_record_changes()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let prefix = "/r/instance/c/";
        let put = |id: &str, cpu: i64| -> Result<Txn, serde_json::Error> {
            Ok(Txn::new().put(format!("{prefix}{id}"), record(id, cpu)?))
        };
        store
            .commit(put("a", 1024)?.put(format!("{prefix}b"), record("b", 512)?))
            .await?;
        let cache = InstanceCache::default();
        let first_version = cache.instances(&store.snapshot().await?, prefix)?;
        let first = first_version.list();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].view.remaining.cpu, 1024);
        let again = cache.instances(&store.snapshot().await?, prefix)?;
        // Nothing changed: the very same version, found by identity.
        assert!(Arc::ptr_eq(&first_version, &again));
        assert_eq!(again.get("b").map(|e| e.view.remaining.cpu), Some(512));
        assert!(again.get("c").is_none());

        // A changed record is decoded again; the others are kept.
        store.commit(put("b", 256)?).await?;
        let old = store.snapshot().await?;
        let changed_version = cache.instances(&old, prefix)?;
        let changed = changed_version.list();
        assert!(Arc::ptr_eq(&first[0], &changed[0]));
        assert_eq!(changed[1].view.remaining.cpu, 256);
        // Same keys: the positions are shared, and still right.
        assert!(Arc::ptr_eq(
            &first_version.positions,
            &changed_version.positions
        ));
        assert_eq!(
            changed_version.get("b").map(|e| e.view.remaining.cpu),
            Some(256)
        );

        // A new instance between two others, and a deleted one.
        store.commit(put("aa", 64)?).await?;
        store
            .commit(Txn::new().delete(format!("{prefix}b")))
            .await?;
        let now_version = cache.instances(&store.snapshot().await?, prefix)?;
        let now = now_version.list();
        let ids: Vec<&str> = now.iter().map(|e| e.id()).collect();
        assert_eq!(ids, vec!["a", "aa"]);
        assert!(Arc::ptr_eq(&first[0], &now[0]));
        assert_eq!(now_version.get("aa").map(|e| e.id()), Some("aa"));
        assert!(now_version.get("b").is_none());

        // An older snapshot still reads exactly its own records.
        let then = cache.instances(&old, prefix)?;
        let ids: Vec<(&str, i64)> = then
            .list()
            .iter()
            .map(|e| (e.id(), e.view.remaining.cpu))
            .collect();
        assert_eq!(ids, vec![("a", 1024), ("b", 256)]);

        // The last instance deleted, the others unchanged.
        store
            .commit(Txn::new().delete(format!("{prefix}aa")))
            .await?;
        let last = cache.instances(&store.snapshot().await?, prefix)?;
        let ids: Vec<&str> = last.list().iter().map(|e| e.id()).collect();
        assert_eq!(ids, vec!["a"]);
        assert!(last.get("aa").is_none() && last.get("a").is_some());
        Ok(())
    }
}

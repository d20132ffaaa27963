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

/// One instance record at one revision, decoded, with its placement view.
#[derive(Debug)]
pub struct CachedInstance {
    pub key: String,
    pub mod_revision: i64,
    pub record: InstanceRecord,
    /// [`instance_view`](crate::api::tasks::instance_view) of the record.
    pub view: InstanceView,
    /// Where the id starts in the key.
    id_at: usize,
}

impl CachedInstance {
    pub fn new(key: String, mod_revision: i64, record: InstanceRecord) -> CachedInstance {
        let view = crate::api::tasks::instance_view(&record);
        let id_at = key.rfind('/').map_or(0, |at| at + 1);
        CachedInstance {
            key,
            mod_revision,
            record,
            view,
            id_at,
        }
    }

    /// The instance's id, the last segment of its key.
    pub fn id(&self) -> &str {
        self.key.get(self.id_at..).unwrap_or_default()
    }
}

/// Per cluster prefix, the instances as last read, in key order.
#[derive(Default)]
pub struct InstanceCache {
    clusters: Mutex<HashMap<String, Arc<Vec<Arc<CachedInstance>>>>>,
}

impl InstanceCache {
    /// Every instance record under `prefix` in `snapshot`, decoded (from the cache
    /// when it holds the same revision), in key order. The snapshot's keys and the
    /// cache are both in key order, so they are walked side by side.
    pub fn instances(
        &self,
        snapshot: &Snapshot,
        prefix: &str,
    ) -> ApiResult<Vec<Arc<CachedInstance>>> {
        let cached = self.lock().get(prefix).cloned().unwrap_or_default();
        let mut found = Vec::with_capacity(cached.len());
        let mut old = cached.iter().peekable();
        let mut changed = false;
        for kv in snapshot.iter_prefix(prefix) {
            while old.next_if(|e| e.key.as_str() < kv.key.as_str()).is_some() {
                changed = true;
            }
            match old.next_if(|e| e.key == kv.key) {
                Some(entry) if entry.mod_revision == kv.mod_revision => {
                    found.push(Arc::clone(entry));
                }
                _ => {
                    found.push(Arc::new(decode(kv)?));
                    changed = true;
                }
            }
        }
        if changed || old.next().is_some() {
            let mut clusters = self.lock();
            if found.is_empty() {
                clusters.remove(prefix);
            } else {
                clusters.insert(prefix.to_string(), Arc::new(found.clone()));
            }
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<Arc<CachedInstance>>>>> {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn decode(kv: &KeyValue) -> ApiResult<CachedInstance> {
    let record: InstanceRecord = super::decode_record(kv)?;
    Ok(CachedInstance::new(kv.key.clone(), kv.mod_revision, record))
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
        let first = cache.instances(&store.snapshot().await?, prefix)?;
        assert_eq!(first.len(), 2);
        assert_eq!(first[0].view.remaining.cpu, 1024);
        let again = cache.instances(&store.snapshot().await?, prefix)?;
        assert!(Arc::ptr_eq(&first[0], &again[0]) && Arc::ptr_eq(&first[1], &again[1]));

        // A changed record is decoded again; the others are kept.
        store.commit(put("b", 256)?).await?;
        let old = store.snapshot().await?;
        let changed = cache.instances(&old, prefix)?;
        assert!(Arc::ptr_eq(&first[0], &changed[0]));
        assert_eq!(changed[1].view.remaining.cpu, 256);

        // A new instance between two others, and a deleted one.
        store.commit(put("aa", 64)?).await?;
        store
            .commit(Txn::new().delete(format!("{prefix}b")))
            .await?;
        let now = cache.instances(&store.snapshot().await?, prefix)?;
        let ids: Vec<&str> = now.iter().map(|e| e.id()).collect();
        assert_eq!(ids, vec!["a", "aa"]);
        assert!(Arc::ptr_eq(&first[0], &now[0]));

        // An older snapshot still reads exactly its own records.
        let then = cache.instances(&old, prefix)?;
        let ids: Vec<(&str, i64)> = then
            .iter()
            .map(|e| (e.id(), e.view.remaining.cpu))
            .collect();
        assert_eq!(ids, vec![("a", 1024), ("b", 256)]);
        Ok(())
    }
}

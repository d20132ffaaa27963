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
}

impl CachedInstance {
    pub fn new(key: String, mod_revision: i64, record: InstanceRecord) -> CachedInstance {
        let view = crate::api::tasks::instance_view(&record);
        CachedInstance {
            key,
            mod_revision,
            record,
            view,
        }
    }

    /// The instance's id, the last segment of its key.
    pub fn id(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }
}

/// Per cluster prefix, per instance key, the last decoded version.
#[derive(Default)]
pub struct InstanceCache {
    clusters: Mutex<HashMap<String, HashMap<String, Arc<CachedInstance>>>>,
}

impl InstanceCache {
    /// Every instance record under `prefix` in `snapshot`, decoded (from the cache
    /// when it holds the same revision), in key order. Keys the snapshot no longer
    /// has leave the cache.
    pub fn instances(
        &self,
        snapshot: &Snapshot,
        prefix: &str,
    ) -> ApiResult<Vec<Arc<CachedInstance>>> {
        let mut clusters = self
            .clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !clusters.contains_key(prefix) {
            clusters.insert(prefix.to_string(), HashMap::new());
        }
        let Some(cached) = clusters.get_mut(prefix) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::with_capacity(cached.len());
        for kv in snapshot.iter_prefix(prefix) {
            match cached.get(kv.key.as_str()) {
                Some(entry) if entry.mod_revision == kv.mod_revision => {
                    found.push(Arc::clone(entry));
                }
                _ => {
                    let entry = Arc::new(decode(kv)?);
                    cached.insert(kv.key.clone(), Arc::clone(&entry));
                    found.push(entry);
                }
            }
        }
        if cached.len() > found.len() {
            // Deregistered (or, for an older snapshot, not yet registered)
            // instances: keep only what this snapshot has.
            let keep: std::collections::HashSet<&str> =
                found.iter().map(|e| e.key.as_str()).collect();
            cached.retain(|key, _| keep.contains(key.as_str()));
        }
        if found.is_empty() {
            clusters.remove(prefix);
        }
        Ok(found)
    }
}

fn decode(kv: &KeyValue) -> ApiResult<CachedInstance> {
    let record: InstanceRecord = super::decode_record(kv)?;
    Ok(CachedInstance::new(kv.key.clone(), kv.mod_revision, record))
}

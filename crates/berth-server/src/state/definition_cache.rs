//! Task definitions decoded once per version.
//!
//! A task definition is read for every task a session sends its agent and on every
//! pass of a service, and a definition record is large (containers, environment,
//! tags); a handful of them serve a whole cluster. This keeps each definition
//! decoded, by key, at the revision it was decoded from: a read takes it only if the
//! snapshot holds that very revision, so it never gives anything but the snapshot's
//! own record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_model::ApiResult;
use berth_store::Snapshot;

use super::Versioned;
use crate::api::task_definitions::TaskDefinitionRecord;

/// The most definitions kept; past it the cache starts over (they are decoded again
/// as they are read).
const MAX_DEFINITIONS: usize = 1024;

/// Decoded task definitions by key, each with the revision it was decoded from.
type Decoded = HashMap<Arc<str>, (i64, Arc<TaskDefinitionRecord>)>;

/// Task definitions decoded once per version, shared by the sessions and the service
/// controller.
#[derive(Default)]
pub struct DefinitionCache {
    decoded: Mutex<Decoded>,
}

impl DefinitionCache {
    /// The definition stored at `key` in `snapshot`, decoded, with its revision;
    /// `None` if there is none.
    pub fn read(
        &self,
        snapshot: &Snapshot,
        key: &str,
    ) -> ApiResult<Option<Versioned<Arc<TaskDefinitionRecord>>>> {
        let Some(kv) = snapshot.get(key) else {
            return Ok(None);
        };
        let versioned = |value| Versioned {
            value,
            mod_revision: kv.mod_revision,
        };
        if let Some((revision, record)) = self.lock().get(key)
            && *revision == kv.mod_revision
        {
            return Ok(Some(versioned(Arc::clone(record))));
        }
        let record: Arc<TaskDefinitionRecord> = Arc::new(super::decode_record(kv)?);
        let mut decoded = self.lock();
        if decoded.len() >= MAX_DEFINITIONS && !decoded.contains_key(key) {
            decoded.clear();
        }
        decoded.insert(Arc::clone(&kv.key), (kv.mod_revision, Arc::clone(&record)));
        Ok(Some(versioned(record)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Decoded> {
        self.decoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{Store, Txn};

    #[tokio::test]
    async fn a_definition_is_decoded_once_per_revision_and_read_as_the_snapshot_has_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let key = "/r/taskdef/web/0000000001";
        let definition = |status: &str| {
            serde_json::to_vec(&serde_json::json!({
                "taskDefinition": {
                    "taskDefinitionArn": "arn:aws:ecs:r:1:task-definition/web:1",
                    "family": "web",
                    "revision": 1,
                    "status": status,
                    "containerDefinitions": [{"name": "app", "image": "busybox"}],
                },
                "tags": [],
            }))
        };
        store
            .commit(Txn::new().put(key, definition("ACTIVE")?))
            .await?;
        let cache = DefinitionCache::default();
        let active = store.snapshot().await?;
        let first = cache.read(&active, key)?.ok_or("stored")?.value;
        let again = cache.read(&active, key)?.ok_or("stored")?.value;
        assert!(Arc::ptr_eq(&first, &again), "decoded once");
        assert!(cache.read(&active, "/r/taskdef/web/0000000002")?.is_none());

        store
            .commit(Txn::new().put(key, definition("INACTIVE")?))
            .await?;
        let inactive = store.snapshot().await?;
        let status = |record: &TaskDefinitionRecord| {
            serde_json::to_value(&record.task_definition)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_string))
        };
        let changed = cache.read(&inactive, key)?.ok_or("stored")?.value;
        assert_eq!(status(&changed).as_deref(), Some("INACTIVE"));
        // The older snapshot still reads its own version.
        let old = cache.read(&active, key)?.ok_or("stored")?.value;
        assert_eq!(status(&old).as_deref(), Some("ACTIVE"));
        Ok(())
    }
}

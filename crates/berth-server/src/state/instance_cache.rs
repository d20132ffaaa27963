//! The cluster's container instances, decoded once per version.
//!
//! Placement reads every instance of a cluster for each decision (a RunTask, a
//! pass of the service controller); an instance record carries its attributes and
//! resources (~35 attributes), and decoding all of them each time was most of the
//! control plane's CPU under load. This cache keeps, per instance, its record and
//! its usage (remaining resources, [`super::usage`]) decoded at one revision each,
//! together with the view placement builds from them; a decision takes the entry
//! whose revisions match its snapshot's and decodes only what changed since (most
//! often only a usage record: a few hundred bytes). It is a cache, never a source
//! of truth: an entry is used only when its revisions are the snapshot's, so any
//! snapshot, old or new, reads exactly its own records.

use std::collections::HashMap;
use std::iter::Peekable;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_model::ApiResult;
use berth_sched::{InstanceView, Remaining};
use berth_store::{KeyValue, Snapshot};
use imbl::Vector;

use super::keys;
use super::records::InstanceRecord;
use super::usage::{self, UsageRecord};

/// The attribute naming an instance's availability zone.
pub const ZONE_ATTRIBUTE: &str = "ecs.availability-zone";

/// One instance at one revision of its record and of its usage, decoded, with its
/// placement view.
#[derive(Debug)]
pub struct CachedInstance {
    pub key: String,
    pub mod_revision: i64,
    /// The record as stored: its `remainingResources` are those of `usage`.
    pub record: Arc<InstanceRecord>,
    /// What the instance has left.
    pub usage: UsageRecord,
    /// The usage record's revision; 0 when there is none.
    pub usage_revision: i64,
    /// [`instance_view`](crate::api::tasks::instance_view) of the record, with the
    /// usage's remaining resources.
    pub view: InstanceView,
    /// The instance's id, shared by whatever refers to the instance by id.
    pub shared_id: Arc<str>,
    /// The instance's availability zone (its `ecs.availability-zone` attribute).
    pub zone: Option<Arc<str>>,
    /// Whether tasks may be placed on it ([`placeable`](crate::api::tasks::placeable)).
    pub placeable: bool,
    /// The snapshot entries this was decoded from, when it was: a later snapshot
    /// holding the very same entries (same allocations) holds the same records.
    source: Option<Arc<KeyValue>>,
    usage_source: Option<Arc<KeyValue>>,
}

impl CachedInstance {
    /// The instance stored at `key` with its usage as `snapshot` holds it.
    pub fn load(
        snapshot: &Snapshot,
        key: String,
        mod_revision: i64,
        record: InstanceRecord,
    ) -> ApiResult<CachedInstance> {
        let usage = usage::Usage::read(snapshot, &key, &record)?;
        Ok(CachedInstance::with(
            key,
            mod_revision,
            Arc::new(record),
            usage.record,
            usage.mod_revision,
        ))
    }

    fn with(
        key: String,
        mod_revision: i64,
        record: Arc<InstanceRecord>,
        usage: UsageRecord,
        usage_revision: i64,
    ) -> CachedInstance {
        let mut view = crate::api::tasks::instance_view(&record);
        view.remaining = Remaining::from_resources(&usage.remaining_resources);
        let id = key.rsplit('/').next().unwrap_or_default();
        let zone = view
            .attributes
            .get(ZONE_ATTRIBUTE)
            .and_then(|value| value.as_deref())
            .map(Arc::from);
        CachedInstance {
            shared_id: Arc::from(id),
            zone,
            placeable: crate::api::tasks::placeable(&record),
            key,
            mod_revision,
            record,
            usage,
            usage_revision,
            view,
            source: None,
            usage_source: None,
        }
    }

    /// The same instance record with another usage: shares the record, copies the
    /// view with the usage's remaining resources.
    fn with_usage(&self, usage: UsageRecord, usage_revision: i64) -> CachedInstance {
        let mut view = self.view.clone();
        view.remaining = Remaining::from_resources(&usage.remaining_resources);
        CachedInstance {
            key: self.key.clone(),
            mod_revision: self.mod_revision,
            record: Arc::clone(&self.record),
            usage,
            usage_revision,
            view,
            shared_id: Arc::clone(&self.shared_id),
            zone: self.zone.clone(),
            placeable: self.placeable,
            source: self.source.clone(),
            usage_source: None,
        }
    }

    /// The instance's id, the last segment of its key.
    pub fn id(&self) -> &str {
        &self.shared_id
    }

    /// Whether this was decoded from exactly these snapshot entries.
    fn is_from(&self, kv: &Arc<KeyValue>, usage: Option<&Arc<KeyValue>>) -> bool {
        self.source
            .as_ref()
            .is_some_and(|source| Arc::ptr_eq(source, kv))
            && match (&self.usage_source, usage) {
                (Some(mine), Some(theirs)) => Arc::ptr_eq(mine, theirs),
                _ => false,
            }
    }
}

/// The last segment of a key.
fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

/// A cluster's instances as one snapshot has them, in key order (so by id), with
/// each one's position by id.
///
/// The list is a persistent vector: the version of the next revision shares all but
/// the entries that changed (a placement changes one or a few instances' usage), so
/// making it costs the changes, not the size of the cluster.
#[derive(Debug, Default)]
pub struct ClusterInstances {
    list: Vector<Arc<CachedInstance>>,
    /// Id to position in `list`; shared by every version with the same keys (a
    /// version differing only in records' values keeps it). A service pass looks up
    /// each of its tasks' instances here, so it hashes with foldhash, not SipHash.
    positions: Arc<HashMap<Box<str>, usize, foldhash::fast::RandomState>>,
    /// The positions of the instances tasks may be placed on, worked out the first
    /// time they are asked for (RunTask's sampling draws among them), and handed on
    /// to the next version when no instance came or went or changed placeability.
    placeable: OnceLock<Arc<Vec<usize>>>,
    /// Whether any instance is DRAINING, worked out the first time it is asked for
    /// and handed on like `placeable` while no instance's status changed: a service
    /// pass looks its tasks' instances up only when one is.
    any_draining: OnceLock<bool>,
}

impl ClusterInstances {
    /// Every instance, in key order.
    pub fn list(&self) -> &Vector<Arc<CachedInstance>> {
        &self.list
    }

    /// The instance with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<CachedInstance>> {
        self.list.get(*self.positions.get(id)?)
    }

    /// The positions in [`list`](Self::list) of the instances tasks may be placed on
    /// ([`CachedInstance::placeable`]), in order.
    pub fn placeable(&self) -> &[usize] {
        self.placeable.get_or_init(|| {
            Arc::new(
                (self.list.iter().enumerate())
                    .filter(|(_, cached)| cached.placeable)
                    .map(|(at, _)| at)
                    .collect(),
            )
        })
    }

    /// Whether any of the instances is DRAINING.
    pub fn any_draining(&self) -> bool {
        *self.any_draining.get_or_init(|| {
            self.list
                .iter()
                .any(|cached| cached.view.status == crate::api::container_instances::DRAINING)
        })
    }

    fn new(list: Vector<Arc<CachedInstance>>, same_keys_as: Option<&ClusterInstances>) -> Self {
        let positions = match same_keys_as {
            Some(old) => Arc::clone(&old.positions),
            None => Arc::new(
                list.iter()
                    .enumerate()
                    .map(|(at, cached)| (Box::from(cached.id()), at))
                    .collect(),
            ),
        };
        ClusterInstances {
            list,
            positions,
            placeable: OnceLock::new(),
            any_draining: OnceLock::new(),
        }
    }
}

/// A cluster's instances as last read.
struct Held {
    instances: Arc<ClusterInstances>,
    /// The latest store revision they are known to be those of.
    revision: i64,
    /// When they were last found current.
    checked_at: Instant,
}

/// Per cluster, the instances as last read.
#[derive(Default)]
pub struct InstanceCache {
    clusters: Mutex<HashMap<String, Held>>,
}

impl InstanceCache {
    /// Every instance of the cluster in `snapshot`, with its usage, decoded (from
    /// the cache when it holds the same revisions), in key order.
    ///
    /// When the snapshot is later than the version last read and still knows the
    /// keys changed since ([`Snapshot::changed_since`]), only the instances whose
    /// record or usage changed are looked at: O(changes), however large the
    /// cluster. Otherwise (an older snapshot, an instance registered or
    /// deregistered, the change log not reaching back) the cluster is walked: the
    /// snapshot's instance keys, its usage keys and the cache are all in id order,
    /// so they are walked side by side, and entries the snapshot shares with the
    /// cached version (the same allocations: the same keys at the same revisions)
    /// are recognised without comparing keys.
    pub fn instances(
        &self,
        snapshot: &Snapshot,
        region: &str,
        cluster: &str,
    ) -> ApiResult<Arc<ClusterInstances>> {
        let prefix = keys::container_instances(region, cluster);
        let held = self
            .lock()
            .get(&prefix)
            .map(|held| (Arc::clone(&held.instances), held.revision));
        let (cached, since) = held.unwrap_or_default();
        let update = match since.cmp(&snapshot.revision()) {
            std::cmp::Ordering::Equal if !cached.list.is_empty() => Update::Unchanged,
            std::cmp::Ordering::Less if !cached.list.is_empty() => {
                match changes_since(&cached, since, snapshot, region, cluster)? {
                    Some(update) => update,
                    None => walk(&cached, snapshot, &prefix, region, cluster)?,
                }
            }
            _ => walk(&cached, snapshot, &prefix, region, cluster)?,
        };
        let now = Instant::now();
        let mut clusters = self.lock();
        match update {
            Update::Unchanged => {
                if let Some(held) = clusters.get_mut(&prefix)
                    && Arc::ptr_eq(&held.instances, &cached)
                {
                    held.revision = held.revision.max(snapshot.revision());
                    held.checked_at = now;
                }
                Ok(cached)
            }
            Update::To(fresh) => {
                let fresh = Arc::new(fresh);
                if fresh.list.is_empty() {
                    clusters.remove(&prefix);
                } else {
                    let held = Held {
                        instances: Arc::clone(&fresh),
                        revision: snapshot.revision(),
                        checked_at: now,
                    };
                    clusters.insert(prefix, held);
                }
                Ok(fresh)
            }
        }
    }

    /// The cluster's instances as last read, if they were found current within
    /// `max_age`, without reading the store. They may be behind it: a decision made on
    /// them must be conditional on the revisions it read (as every placement is, on
    /// each instance's record and usage), and is then correct or fails to commit.
    pub fn recent(
        &self,
        region: &str,
        cluster: &str,
        max_age: Duration,
    ) -> Option<Arc<ClusterInstances>> {
        let prefix = keys::container_instances(region, cluster);
        let clusters = self.lock();
        let held = clusters.get(&prefix)?;
        (held.checked_at.elapsed() <= max_age).then(|| Arc::clone(&held.instances))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.clusters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a snapshot holds against the version last read.
enum Update {
    /// The same instances, records and usage.
    Unchanged,
    To(ClusterInstances),
}

/// `cached` (the instances at revision `since`) brought to `snapshot` by looking
/// only at the instances whose keys changed since; `None` when the snapshot no
/// longer knows what changed, or when an instance came or went (then the whole
/// cluster is walked).
fn changes_since(
    cached: &ClusterInstances,
    since: i64,
    snapshot: &Snapshot,
    region: &str,
    cluster: &str,
) -> ApiResult<Option<Update>> {
    let Some(changed) = snapshot.changed_since(since) else {
        return Ok(None);
    };
    let instance_prefix = keys::container_instances(region, cluster);
    let usage_prefix = keys::instance_usages(region, cluster);
    let mut ids: Vec<&str> = changed
        .filter_map(|key| {
            key.strip_prefix(instance_prefix.as_str())
                .or_else(|| key.strip_prefix(usage_prefix.as_str()))
        })
        .collect();
    if ids.is_empty() {
        return Ok(Some(Update::Unchanged));
    }
    ids.sort_unstable();
    ids.dedup();
    let mut list = cached.list.clone();
    let mut placeability_changed = false;
    let mut status_changed = false;
    let mut changed_any = false;
    for id in ids {
        let Some(&at) = cached.positions.get(id) else {
            return Ok(None);
        };
        let Some(kv) = snapshot.get_shared(&format!("{instance_prefix}{id}")) else {
            return Ok(None);
        };
        let usage = snapshot.get_shared(&format!("{usage_prefix}{id}"));
        let Some(entry) = list.get(at) else {
            return Ok(None);
        };
        let Some(fresh) = refreshed(entry, kv, usage)? else {
            continue;
        };
        placeability_changed |= fresh.placeable != entry.placeable;
        status_changed |= fresh.view.status != entry.view.status;
        changed_any = true;
        list.set(at, Arc::new(fresh));
    }
    if !changed_any {
        return Ok(Some(Update::Unchanged));
    }
    let fresh = ClusterInstances::new(list, Some(cached));
    if !placeability_changed && let Some(placeable) = cached.placeable.get() {
        let _ = fresh.placeable.set(Arc::clone(placeable));
    }
    if !status_changed && let Some(&any) = cached.any_draining.get() {
        let _ = fresh.any_draining.set(any);
    }
    Ok(Some(Update::To(fresh)))
}

/// The instance `entry` is cached as, as the snapshot entries `kv` (its record)
/// and `usage` have it, if that differs: decoded again, or only its usage when the
/// record is the one cached.
fn refreshed(
    entry: &CachedInstance,
    kv: &Arc<KeyValue>,
    usage: Option<&Arc<KeyValue>>,
) -> ApiResult<Option<CachedInstance>> {
    let usage_revision = usage.map_or(0, |u| u.mod_revision);
    if entry.is_from(kv, usage)
        || (entry.mod_revision == kv.mod_revision && entry.usage_revision == usage_revision)
    {
        return Ok(None);
    }
    if entry.mod_revision == kv.mod_revision {
        let (record, _) = usage::stored_or_implied(usage.map(|u| &**u), &entry.record)?;
        let mut fresh = entry.with_usage(record, usage_revision);
        fresh.usage_source = usage.cloned();
        return Ok(Some(fresh));
    }
    decode(kv, usage).map(Some)
}

/// The cluster's instances in `snapshot`, found by walking its instance and usage
/// keys beside `cached`: entries that did not change are kept, and a walk that
/// finds nothing changed makes no new version.
fn walk(
    cached: &ClusterInstances,
    snapshot: &Snapshot,
    prefix: &str,
    region: &str,
    cluster: &str,
) -> ApiResult<Update> {
    let old = &cached.list;
    let mut focus = old.focus();
    let mut usages = snapshot
        .iter_prefix_shared(&keys::instance_usages(region, cluster))
        .peekable();
    // The entries found, once one differs from the cached version's.
    let mut found: Option<Vector<Arc<CachedInstance>>> = None;
    let mut keys_changed = false;
    let mut at = 0;
    for kv in snapshot.iter_prefix_shared(prefix) {
        if let Some(entry) = focus.get(at)
            && entry.is_from(kv, usages.peek().copied())
        {
            usages.next();
            if let Some(found) = found.as_mut() {
                found.push_back(Arc::clone(entry));
            }
            at += 1;
            continue;
        }
        let usage = usage_of(&mut usages, id_of(&kv.key));
        let start = at;
        while focus.get(at).is_some_and(|e| e.key.as_str() < &*kv.key) {
            at += 1;
        }
        if at > start {
            keys_changed = true;
            materialize(&mut found, old, start);
        }
        match focus.get(at) {
            Some(entry) if *entry.key == *kv.key => {
                at += 1;
                match refreshed(entry, kv, usage)? {
                    None => {
                        if let Some(found) = found.as_mut() {
                            found.push_back(Arc::clone(entry));
                        }
                    }
                    Some(fresh) => materialize(&mut found, old, at - 1).push_back(Arc::new(fresh)),
                }
            }
            _ => {
                keys_changed = true;
                materialize(&mut found, old, at).push_back(Arc::new(decode(kv, usage)?));
            }
        }
    }
    if at < old.len() {
        keys_changed = true;
        materialize(&mut found, old, at);
    }
    Ok(match found {
        None => Update::Unchanged,
        Some(found) => Update::To(ClusterInstances::new(
            found,
            (!keys_changed).then_some(cached),
        )),
    })
}

/// The entries found so far: the first `upto` of the cached version's, the first
/// time one differs.
fn materialize<'v>(
    found: &'v mut Option<Vector<Arc<CachedInstance>>>,
    old: &Vector<Arc<CachedInstance>>,
    upto: usize,
) -> &'v mut Vector<Arc<CachedInstance>> {
    found.get_or_insert_with(|| old.take(upto))
}

/// The usage entry of the instance `id`, skipping those of instances before it
/// (usage left by an instance no longer stored).
fn usage_of<'a, I>(usages: &mut Peekable<I>, id: &str) -> Option<&'a Arc<KeyValue>>
where
    I: Iterator<Item = &'a Arc<KeyValue>>,
{
    while usages.next_if(|u| id_of(&u.key) < id).is_some() {}
    usages.next_if(|u| id_of(&u.key) == id)
}

fn decode(kv: &Arc<KeyValue>, usage: Option<&Arc<KeyValue>>) -> ApiResult<CachedInstance> {
    let record: InstanceRecord = super::decode_record(kv)?;
    let (usage_record, usage_revision) = usage::stored_or_implied(usage.map(|u| &**u), &record)?;
    let mut cached = CachedInstance::with(
        kv.key.to_string(),
        kv.mod_revision,
        Arc::new(record),
        usage_record,
        usage_revision,
    );
    cached.source = Some(Arc::clone(kv));
    cached.usage_source = usage.cloned();
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

    /// A usage record leaving `cpu` units of CPU.
    fn usage(cpu: i64) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&serde_json::json!({
            "remainingResources": [{"name": "CPU", "type": "INTEGER", "integerValue": cpu}],
            "changes": 1,
        }))
    }

    /// The CPU each instance of `v` has left, in order.
    fn cpu(v: &ClusterInstances) -> Vec<i64> {
        v.list().iter().map(|e| e.view.remaining.cpu).collect()
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
        let hour = Duration::from_secs(3600);
        assert!(cache.recent("r", "c", hour).is_none(), "never read");
        let first_version = cache.instances(&store.snapshot().await?, "r", "c")?;
        let first = first_version.list();
        assert_eq!(first.len(), 2);
        // The version last read is what `recent` gives, without a snapshot.
        assert!(
            cache
                .recent("r", "c", hour)
                .is_some_and(|r| Arc::ptr_eq(&r, &first_version))
        );
        assert!(cache.recent("r", "other", hour).is_none());
        assert_eq!(first[0].view.remaining.cpu, 1024);
        let again = cache.instances(&store.snapshot().await?, "r", "c")?;
        // Nothing changed: the very same version, found by identity.
        assert!(Arc::ptr_eq(&first_version, &again));
        assert_eq!(again.get("b").map(|e| e.view.remaining.cpu), Some(512));
        assert!(again.get("c").is_none());

        // A changed record is decoded again; the others are kept.
        store.commit(put("b", 256)?).await?;
        let old = store.snapshot().await?;
        assert!(
            cache
                .recent("r", "c", hour)
                .is_some_and(|r| Arc::ptr_eq(&r, &first_version)),
            "recent gives what was last read, even if the store has moved on"
        );
        let changed_version = cache.instances(&old, "r", "c")?;
        let changed = changed_version.list();
        assert!(
            cache
                .recent("r", "c", hour)
                .is_some_and(|r| Arc::ptr_eq(&r, &changed_version))
        );
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
        let now_version = cache.instances(&store.snapshot().await?, "r", "c")?;
        let now = now_version.list();
        let ids: Vec<&str> = now.iter().map(|e| e.id()).collect();
        assert_eq!(ids, vec!["a", "aa"]);
        assert!(Arc::ptr_eq(&first[0], &now[0]));
        assert_eq!(now_version.get("aa").map(|e| e.id()), Some("aa"));
        assert!(now_version.get("b").is_none());

        // An older snapshot still reads exactly its own records.
        let then = cache.instances(&old, "r", "c")?;
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
        let last = cache.instances(&store.snapshot().await?, "r", "c")?;
        let ids: Vec<&str> = last.list().iter().map(|e| e.id()).collect();
        assert_eq!(ids, vec!["a"]);
        assert!(last.get("aa").is_none() && last.get("a").is_some());
        Ok(())
    }

    #[tokio::test]
    async fn a_usage_change_keeps_the_record_and_changes_the_view()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        // "a" has a usage record, "b" has none (its record's resources hold), and a
        // usage is left by an instance no longer stored ("0" sorts first).
        store
            .commit(
                Txn::new()
                    .put("/r/instance/c/a", record("a", 1024)?)
                    .put("/r/instance/c/b", record("b", 512)?)
                    .put("/r/usage/c/0", usage(1)?)
                    .put("/r/usage/c/a", usage(1000)?),
            )
            .await?;
        let cache = InstanceCache::default();
        let first = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert_eq!(cpu(&first), vec![1000, 512]);
        let again = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert!(Arc::ptr_eq(&first, &again), "nothing changed");

        // Only a's usage changes: its record is shared, its view has the new usage.
        store
            .commit(Txn::new().put("/r/usage/c/a", usage(900)?))
            .await?;
        let changed = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert_eq!(cpu(&changed), vec![900, 512]);
        assert!(Arc::ptr_eq(
            &first.list()[0].record,
            &changed.list()[0].record
        ));
        assert!(Arc::ptr_eq(&first.list()[1], &changed.list()[1]));
        assert!(changed.list()[0].usage_revision > first.list()[0].usage_revision);

        // b gets a usage record.
        store
            .commit(Txn::new().put("/r/usage/c/b", usage(500)?))
            .await?;
        let both = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert_eq!(cpu(&both), vec![900, 500]);
        assert_eq!(both.placeable(), [0, 1]);
        Ok(())
    }

    #[tokio::test]
    async fn a_later_snapshot_is_read_through_the_keys_changed_since()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let instance = |id: &str, status: &str| {
            serde_json::to_vec(&serde_json::json!({
                "containerInstanceArn": format!("arn:aws:ecs:r:1:container-instance/c/{id}"),
                "status": status,
                "agentConnected": true,
                "remainingResources": [{"name": "CPU", "type": "INTEGER", "integerValue": 100}],
            }))
        };
        store
            .commit(
                Txn::new()
                    .put("/r/instance/c/a", instance("a", "ACTIVE")?)
                    .put("/r/instance/c/b", instance("b", "ACTIVE")?)
                    .put("/r/instance/c/c", instance("c", "ACTIVE")?),
            )
            .await?;
        let cache = InstanceCache::default();
        let first = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert_eq!(first.placeable(), [0, 1, 2]);
        assert!(!first.any_draining());

        // Keys of tasks, of another cluster's instances and usage: the same version.
        store
            .commit(
                Txn::new()
                    .put("/r/task/c/t1", b"{}".to_vec())
                    .put("/r/instance/cc/a", instance("a", "ACTIVE")?)
                    .put("/r/usage/cc/a", usage(1)?),
            )
            .await?;
        let same = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert!(Arc::ptr_eq(&first, &same));

        // One usage changes: one entry is new, the others and the placeable
        // positions are handed on.
        store
            .commit(Txn::new().put("/r/usage/c/b", usage(40)?))
            .await?;
        let used = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert_eq!(cpu(&used), [100, 40, 100]);
        assert!(Arc::ptr_eq(&first.list()[0], &used.list()[0]));
        assert!(Arc::ptr_eq(&first.list()[2], &used.list()[2]));
        assert!(Arc::ptr_eq(&first.list()[1].record, &used.list()[1].record));
        assert!(matches!((first.placeable.get(), used.placeable.get()),
                (Some(a), Some(b)) if Arc::ptr_eq(a, b)));
        assert_eq!(used.any_draining.get(), Some(&false));
        assert_eq!(used.get("b").map(|e| e.view.remaining.cpu), Some(40));

        // Several revisions at once, one of them making an instance unplaceable.
        store
            .commit(Txn::new().put("/r/usage/c/b", usage(30)?))
            .await?;
        store
            .commit(Txn::new().put("/r/instance/c/c", instance("c", "DRAINING")?))
            .await?;
        store
            .commit(Txn::new().put("/r/usage/c/a", usage(70)?))
            .await?;
        let later = cache.instances(&store.snapshot().await?, "r", "c")?;
        assert_eq!(cpu(&later), [70, 30, 100]);
        // What was worked out of the statuses is not handed on: c is DRAINING.
        assert_eq!(later.any_draining.get(), None);
        assert!(later.any_draining());
        assert_eq!(later.placeable(), [0, 1]);
        assert!(later.get("c").is_some_and(|e| !e.placeable));

        // An instance registered: found too (by walking the cluster).
        store
            .commit(Txn::new().put("/r/instance/c/bb", instance("bb", "ACTIVE")?))
            .await?;
        let grown = cache.instances(&store.snapshot().await?, "r", "c")?;
        let ids: Vec<&str> = grown.list().iter().map(|e| e.id()).collect();
        assert_eq!(ids, ["a", "b", "bb", "c"]);
        assert_eq!(grown.placeable(), [0, 1, 2]);
        assert_eq!(grown.get("c").map(|e| e.id()), Some("c"));
        Ok(())
    }

    #[tokio::test]
    async fn placeable_positions_leave_out_instances_that_cannot_take_tasks()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = berth_store::sqlite::SqliteStore::open(&dir.path().join("s.db"))?;
        let instance = |id: &str, status: &str, connected: bool| {
            serde_json::to_vec(&serde_json::json!({
                "containerInstanceArn": format!("arn:aws:ecs:r:1:container-instance/c/{id}"),
                "status": status,
                "agentConnected": connected,
            }))
        };
        store
            .commit(
                Txn::new()
                    .put("/r/instance/c/a", instance("a", "ACTIVE", true)?)
                    .put("/r/instance/c/b", instance("b", "DRAINING", true)?)
                    .put("/r/instance/c/c", instance("c", "ACTIVE", false)?)
                    .put("/r/instance/c/d", instance("d", "ACTIVE", true)?),
            )
            .await?;
        let cache = InstanceCache::default();
        let version = cache.instances(&store.snapshot().await?, "r", "c")?;
        let ids: Vec<&str> = version
            .placeable()
            .iter()
            .filter_map(|&at| version.list().get(at))
            .map(|e| e.id())
            .collect();
        assert_eq!(ids, ["a", "d"]);
        Ok(())
    }
}

//! What a container instance has left for new tasks, in a record of its own.
//!
//! Every task placed takes resources from its instance and every task stopped gives
//! them back, so these few numbers change far more often than anything else about
//! an instance. The instance record carries its attributes (kilobytes); the usage
//! record carries only the remaining resources (a few hundred bytes), so that a
//! placement or a release writes, and the next decision decodes, only those. A
//! placement still conditions its write on the instance record being the version it
//! read (status, agent connection), without writing it.
//!
//! An instance registered before usage records existed has none until its first
//! change: its instance record's `remainingResources` hold until then.

use berth_model::ApiResult;
use berth_model::container_instance::{ContainerInstance, Resource};
use berth_store::{Compare, KeyValue, Snapshot, Txn};
use serde::{Deserialize, Serialize};

use super::keys;
use super::records::InstanceRecord;

/// The stored usage of one instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecord {
    pub remaining_resources: Vec<Resource>,
    /// Changes of the remaining resources, counted in the instance's `version` (ECS
    /// counts every change of an instance there).
    #[serde(default)]
    pub changes: i64,
}

/// An instance's usage as one snapshot has it, ready to be changed and written back.
#[derive(Debug, Clone)]
pub struct Usage {
    pub key: String,
    pub record: UsageRecord,
    /// The usage record's revision; 0 when there is none yet.
    pub mod_revision: i64,
}

impl Usage {
    /// The usage of the instance stored at `instance_key`, whose record is `instance`.
    pub fn read(
        snapshot: &Snapshot,
        instance_key: &str,
        instance: &InstanceRecord,
    ) -> ApiResult<Usage> {
        let key = keys::usage_of_instance(instance_key);
        let (record, mod_revision) = stored_or_implied(snapshot.get(&key), instance)?;
        Ok(Usage {
            key,
            record,
            mod_revision,
        })
    }

    /// Sets the remaining resources, counting the change.
    pub fn set(&mut self, remaining: Vec<Resource>) {
        self.record.remaining_resources = remaining;
        self.record.changes += 1;
    }

    /// Adds the write of this usage to `txn`, on the condition that the stored one
    /// is still the one read.
    pub fn write(&self, txn: Txn) -> ApiResult<Txn> {
        Ok(txn
            .when(Compare::unchanged(&self.key, self.mod_revision))
            .put(&self.key, super::encode_record(&self.record)?))
    }
}

/// The usage record `stored` (with its revision), or the one `instance` implies
/// when none is stored (revision 0).
pub fn stored_or_implied(
    stored: Option<&KeyValue>,
    instance: &InstanceRecord,
) -> ApiResult<(UsageRecord, i64)> {
    match stored {
        Some(kv) => Ok((decode(kv)?, kv.mod_revision)),
        None => Ok((from_instance(instance), 0)),
    }
}

/// Decodes a stored usage record.
pub fn decode(kv: &KeyValue) -> ApiResult<UsageRecord> {
    super::decode_record(kv)
}

/// The usage an instance record implies when no usage record is stored.
fn from_instance(instance: &InstanceRecord) -> UsageRecord {
    UsageRecord {
        remaining_resources: instance
            .instance
            .remaining_resources
            .clone()
            .unwrap_or_default(),
        changes: 0,
    }
}

/// The instance as the API shows it: its remaining resources from its usage, and
/// its version counting their changes.
pub fn overlay(instance: &mut ContainerInstance, usage: &UsageRecord) {
    instance.remaining_resources = Some(usage.remaining_resources.clone());
    instance.version = Some(instance.version.unwrap_or(0) + usage.changes);
}

/// [`overlay`] with the usage `snapshot` holds for the instance at `instance_key`.
pub fn overlay_from(
    snapshot: &Snapshot,
    instance_key: &str,
    record: &mut InstanceRecord,
) -> ApiResult<()> {
    if let Some(kv) = snapshot.get(&keys::usage_of_instance(instance_key)) {
        let usage = decode(kv)?;
        overlay(&mut record.instance, &usage);
    }
    Ok(())
}

//! Typed access to the store: JSON records under the keys of [`keys`], and the
//! optimistic-concurrency loop every write goes through.

pub mod codec;
pub mod definition_cache;
pub mod instance_cache;
pub mod interner;
pub mod keys;
pub mod placers;
pub mod records;
pub mod usage;
pub mod views;

use berth_model::{ApiError, ApiResult};
use berth_store::{Decoded, KeyValue, Snapshot, Store, StoreError, Txn, TxnOutcome};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How often a write re-reads and retries after a conflicting write before giving up.
const MAX_ATTEMPTS: usize = 100;

/// A record read from the store, with the revision to compare against when writing it back.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: i64,
}

pub fn decode_record<T: DeserializeOwned>(kv: &KeyValue) -> ApiResult<T> {
    codec::decode(&kv.value).map_err(|err| {
        tracing::error!(key = %kv.key, %err, "undecodable record in the store");
        ApiError::server(format!("The record {} is corrupt.", kv.key))
    })
}

/// A record as stored: plain JSON (task records: [`encode_task`]).
pub fn encode_record<T: Serialize>(value: &T) -> ApiResult<Vec<u8>> {
    codec::encode_json(value).map_err(encode_error)
}

/// A task record as stored: compressed (see [`codec`]).
pub fn encode_task(record: &records::TaskRecord) -> ApiResult<Vec<u8>> {
    codec::encode_compressed(record).map_err(encode_error)
}

/// Adds to `txn` the write of a task record: its stored form, and the record itself
/// for the readers of the change feed (each would otherwise decompress and parse it).
pub fn put_task(txn: Txn, key: impl Into<String>, record: records::TaskRecord) -> ApiResult<Txn> {
    let value = encode_task(&record)?;
    Ok(txn.put_decoded(key, value, Decoded::new(record)))
}

fn encode_error(err: codec::CodecError) -> ApiError {
    ApiError::server(format!("Cannot encode a record: {err}"))
}

/// Reads and decodes one record.
pub fn read<T: DeserializeOwned>(
    snapshot: &Snapshot,
    key: &str,
) -> ApiResult<Option<Versioned<T>>> {
    match snapshot.get(key) {
        None => Ok(None),
        Some(kv) => Ok(Some(Versioned {
            value: decode_record(kv)?,
            mod_revision: kv.mod_revision,
        })),
    }
}

pub fn store_error(err: StoreError) -> ApiError {
    tracing::error!(%err, "store failure");
    ApiError::server("The store failed to complete the request.")
}

/// A decision taken on one snapshot: the transaction that carries it out (None: nothing
/// to write) and the answer to give once it is committed.
pub type Decision<R> = (Option<Txn>, R);

/// Runs `decide` on a fresh snapshot and commits its transaction; on a conflict (another
/// writer changed what `decide` read), decides again on a newer snapshot. `decide` is pure
/// with respect to the store: it reads the snapshot and returns the writes.
pub async fn write<R, F>(store: &dyn Store, mut decide: F) -> ApiResult<R>
where
    F: FnMut(&Snapshot) -> ApiResult<Decision<R>>,
{
    for _ in 0..MAX_ATTEMPTS {
        let snapshot = store.snapshot().await.map_err(store_error)?;
        let (txn, answer) = decide(&snapshot)?;
        let Some(txn) = txn else { return Ok(answer) };
        match store.commit(txn).await.map_err(store_error)? {
            TxnOutcome::Committed { .. } => return Ok(answer),
            TxnOutcome::Conflict => continue,
        }
    }
    Err(ApiError::server(
        "Too many concurrent updates of the same resource; try again.",
    ))
}

//! berth's store: the single source of truth of the control plane.
//!
//! The model is etcd's: a flat, ordered key space of byte values, each key carrying
//! the revision that created it and the revision that last modified it; writes are
//! transactions of compare-and-swap conditions plus puts and deletes over several keys;
//! reads are point gets and prefix scans over one consistent snapshot; every committed
//! transaction is published on a change feed. The embedded backend is SQLite (see
//! [`sqlite`]); an etcd backend implements the same trait.

mod error;
mod memory_index;
pub mod sqlite;
mod txn;

pub use error::StoreError;
pub use memory_index::Snapshot;
pub use txn::{Change, ChangeBatch, Compare, Decoded, KeyValue, Op, Txn, TxnOutcome};

use std::sync::Arc;

/// A store of revisioned keys. Cheap to share (`Arc<dyn Store>`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A consistent, immutable view of the whole key space at one revision. Only
    /// durable (committed and synced) writes are visible.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;

    /// Commits `txn` atomically if every compare holds, after it is durable on disk.
    /// Returns [`TxnOutcome::Conflict`] (and writes nothing) if a compare fails.
    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, StoreError>;

    /// The change feed: every committed transaction, in revision order, from now on.
    /// A receiver that lags too far behind gets `RecvError::Lagged` and must re-read a
    /// snapshot (controllers are level-triggered, so that is always safe).
    fn watch(&self) -> tokio::sync::broadcast::Receiver<Arc<ChangeBatch>>;
}

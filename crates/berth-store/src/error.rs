//! Errors of the store.

use std::path::PathBuf;
use std::sync::Arc;

/// Why a store operation failed. A [`crate::TxnOutcome::Conflict`] is not an error:
/// it is the expected answer of a compare-and-swap that lost a race.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused an operation (opening, schema, loading).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The durable commit of a group of transactions failed; every transaction of the
    /// group gets this error and none of them is visible. Shared because one failed
    /// COMMIT answers many callers.
    #[error("commit failed: {0}")]
    CommitFailed(#[source] Arc<rusqlite::Error>),

    /// Another process (or another handle in this one) holds the store's file. The
    /// in-memory index is only correct while one writer owns the file.
    #[error("store {0} is in use by another process")]
    Locked(PathBuf),

    /// The writer thread is gone: the store was closed or its writer failed.
    #[error("store is closed")]
    Closed,

    /// The file holds data the store cannot have written.
    #[error("store is corrupt: {0}")]
    Corrupt(String),

    /// A key, a value or a whole transaction is over its limit (see
    /// [`crate::sqlite::MAX_KEY_BYTES`] and its siblings).
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },

    /// A transaction the store refuses to evaluate (an empty key, a key written twice).
    #[error("invalid transaction: {0}")]
    InvalidTxn(String),

    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

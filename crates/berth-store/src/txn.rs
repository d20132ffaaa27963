//! Transactions, their conditions and their results.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// One key with its value and revisions, as etcd reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, shared with the store's index (one allocation per key, not two).
    pub key: Arc<str>,
    pub value: Bytes,
    /// Revision of the transaction that created this key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the transaction that last wrote this key.
    pub mod_revision: i64,
    /// Number of writes since creation (1 after the first put).
    pub version: i64,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` equals this; 0 means "the key does not exist".
    ModRevision { key: String, equals: i64 },
}

impl Compare {
    /// The key must not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Compare::ModRevision {
            key: key.into(),
            equals: 0,
        }
    }
    /// The key must be unchanged since it was read at `mod_revision` (0: still absent).
    pub fn unchanged(key: impl Into<String>, mod_revision: i64) -> Self {
        Compare::ModRevision {
            key: key.into(),
            equals: mod_revision,
        }
    }
}

/// A written value in the writer's own form (the record it encoded), handed to the
/// change feed with the bytes so that readers of the feed need not decode them again.
/// It travels with the change only: the store keeps and persists the bytes alone, and
/// a reader of a snapshot, or of a change without it, decodes the bytes.
#[derive(Clone)]
pub struct Decoded(Arc<dyn Any + Send + Sync>);

impl Decoded {
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Decoded(Arc::new(value))
    }
    /// The value, if it is a `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        Arc::clone(&self.0).downcast::<T>().ok()
    }
}

impl fmt::Debug for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Decoded(..)")
    }
}

/// Two are equal when they are the same value (the form is not comparable).
impl PartialEq for Decoded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Decoded {}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        /// What `value` encodes, for the change feed ([`Decoded`]).
        decoded: Option<Decoded>,
    },
    Delete {
        key: String,
    },
}

/// Compare-and-swap over several keys: if every compare holds, apply every op.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }
    pub fn put(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
            decoded: None,
        });
        self
    }
    /// A put of `value`, which encodes `decoded`: readers of the change feed get both.
    pub fn put_decoded(
        mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
        decoded: Decoded,
    ) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
            decoded: Some(decoded),
        });
        self
    }
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }
}

/// What became of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Applied and durable, at this store revision.
    Committed { revision: i64 },
    /// A compare failed; nothing was written. Re-read and retry.
    Conflict,
}

/// One key's change in a committed transaction. A put carries the entry the store's
/// index holds (shared, not copied), and the writer's decoded form of the value when
/// it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put {
        kv: Arc<KeyValue>,
        decoded: Option<Decoded>,
    },
    Delete {
        key: String,
    },
}

impl Change {
    /// A put without a decoded form.
    pub fn put(kv: Arc<KeyValue>) -> Self {
        Change::Put { kv, decoded: None }
    }
}

/// All changes of one committed transaction, published on the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    pub revision: i64,
    pub changes: Vec<Change>,
}

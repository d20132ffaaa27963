//! The embedded backend: one SQLite file, one writer thread, group commit.
//!
//! Reads never touch SQLite: on open every row is loaded into the in-memory index
//! ([`Snapshot`]), and the writer publishes a new index after each durable commit.
//! SQLite is the durable copy, in WAL mode with `synchronous=FULL`, so a COMMIT that
//! returned is on disk and an acknowledged write survives `kill -9` and power loss.
//!
//! Every write goes through one thread that owns the connection. It blocks for a
//! request, then takes every request already queued (group commit): it evaluates their
//! compares in order against a working copy of the index that includes the earlier
//! transactions of the same group, writes all their effects in one SQLite transaction,
//! and pays one fsync for the group. Only after COMMIT returns does it publish the new
//! snapshot, send the change feed and answer the callers. One writer means no lock
//! contention and a strict revision order; group commit means throughput under
//! concurrency is bounded by fsyncs per group, not per transaction.
//!
//! The file is opened with `locking_mode=EXCLUSIVE`: the in-memory index is correct only
//! while this process is the file's sole writer, so a second opener fails with
//! [`StoreError::Locked`] instead of silently diverging.
//!
//! Revisions follow etcd: an empty store is at revision 0; each committed transaction
//! that changes at least one key gets the next revision; a transaction whose compares
//! hold but which changes nothing (no ops, or only deletes of missing keys) commits
//! without a new revision and reports the current one.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::memory_index::{ChangeLog, Entries, Index};
use crate::{
    Change, ChangeBatch, Compare, KeyValue, Op, Snapshot, Store, StoreError, Txn, TxnOutcome,
};

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 4 * 1024;
/// Largest value accepted (values are JSON of API resources, far smaller in practice).
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;
/// Largest transaction accepted, keys and values together.
pub const MAX_TXN_BYTES: usize = 8 * 1024 * 1024;

/// Requests waiting for the writer; a full queue makes `commit` wait (backpressure).
const QUEUE_CAPACITY: usize = 4096;
/// A group stops growing at this many transactions or bytes, bounding its latency and
/// memory.
const MAX_GROUP_TXNS: usize = 1024;
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// Change batches a watcher may fall behind before it gets `Lagged`.
const FEED_CAPACITY: usize = 4096;
/// How many WAL pages (4 KiB each, so up to 32 MiB) accumulate before SQLite copies
/// them into the database file.
const WAL_CHECKPOINT_PAGES: i64 = 8192;
/// The writer's SQLite page cache, in KiB: the pages a busy store's writes keep
/// coming back to (the instances' usage records, the newest task records and the end
/// of the key index where new tasks' keys go) rather than SQLite's default 2 MB, so a
/// write finds them in memory instead of reading them back from the file. Not larger:
/// at the end of every transaction SQLite may walk the whole cache's hash table
/// (`pcache1TruncateUnsafe`), which at 64 MiB cost more than the reads it saved.
const CACHE_KIB: i64 = 16 * 1024;
/// How long open waits for another holder of the file before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);
const SCHEMA_VERSION: i64 = 2;

/// What every schema version has: the store revision (and, inserted on creation, the
/// schema version).
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (
        k TEXT PRIMARY KEY,
        v INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO meta (k, v) VALUES ('revision', 0);
";
/// The layout of [`SCHEMA_VERSION`] 2. Records live in a rowid table: its leaf cells
/// hold up to ~4 KB of a row in the page itself, so a record of a few KB (a task
/// definition is ~2.7 KB of JSON) takes one page and no overflow page, and an upsert
/// dirties fewer pages. (Version 1 was a `WITHOUT ROWID` table, an index B-tree that
/// keeps at most ~1 KB of a row in a 4 KiB page and the rest in an overflow page.)
/// Keys are found through the unique index on `key`.
const KV_TABLE: &str = "
    CREATE TABLE kv (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        value BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        mod_revision INTEGER NOT NULL,
        version INTEGER NOT NULL
    );
";
/// From version 1: the same rows, moved into the version 2 table (created between
/// the two halves).
const MIGRATE_FROM_1: [&str; 2] = [
    "ALTER TABLE kv RENAME TO kv_v1;",
    "INSERT INTO kv (key, value, create_revision, mod_revision, version)
         SELECT key, value, create_revision, mod_revision, version FROM kv_v1 ORDER BY key;
     DROP TABLE kv_v1;
     UPDATE meta SET v = 2 WHERE k = 'schema';",
];

/// Counters of the writer, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// SQLite transactions committed (one fsync each); each holds a group.
    pub batches: u64,
    /// Transactions answered [`TxnOutcome::Committed`].
    pub committed: u64,
    /// Transactions answered [`TxnOutcome::Conflict`].
    pub conflicts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    committed: AtomicU64,
    conflicts: AtomicU64,
}

type Reply = oneshot::Sender<Result<TxnOutcome, StoreError>>;

struct Request {
    txn: Txn,
    size: usize,
    reply: Reply,
}

/// The SQLite-backed [`Store`]. Dropping the last handle closes the writer's queue,
/// lets it finish the transactions already queued, and waits for it to close the file.
pub struct SqliteStore {
    path: PathBuf,
    /// `None` only while dropping: closing the queue is what stops the writer.
    requests: Option<mpsc::Sender<Request>>,
    published: Arc<ArcSwap<Index>>,
    feed: broadcast::Sender<Arc<ChangeBatch>>,
    counters: Arc<Counters>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("revision", &self.published.load().revision)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its parent folders if needed,
    /// and loads every key into memory.
    pub fn open(path: &Path) -> Result<Arc<SqliteStore>, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let conn = Connection::open(path)?;
        configure(&conn, path)?;
        let index = Arc::new(load(&conn)?);
        tracing::info!(
            path = %path.display(),
            keys = index.entries.len(),
            revision = index.revision,
            "store opened"
        );

        let published = Arc::new(ArcSwap::new(index.clone()));
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let counters = Arc::new(Counters::default());
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Writer {
            conn,
            committed: index,
            published: published.clone(),
            feed: feed.clone(),
            counters: counters.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer.run(queue))?;
        Ok(Arc::new(SqliteStore {
            path: path.to_owned(),
            requests: Some(requests),
            published,
            feed,
            counters,
            writer: Some(writer),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            committed: self.counters.committed.load(Ordering::Relaxed),
            conflicts: self.counters.conflicts.load(Ordering::Relaxed),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.requests.take();
        // Waiting is short (at most the group in flight) and makes "dropped" mean
        // "file closed", so the same path can be reopened right away.
        let panicked = self.writer.take().is_some_and(|w| w.join().is_err());
        if panicked {
            tracing::error!(path = %self.path.display(), "store writer panicked");
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::new(self.published.load_full()))
    }

    /// If the returned future is dropped after the transaction was queued, the
    /// transaction may still commit (as with any remote store).
    async fn commit(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        let size = check(&txn)?;
        let requests = self.requests.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(Request { txn, size, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn watch(&self) -> broadcast::Receiver<Arc<ChangeBatch>> {
        self.feed.subscribe()
    }
}

/// Refuses what the writer must never see; returns the transaction's size in bytes.
fn check(txn: &Txn) -> Result<usize, StoreError> {
    fn key_ok(key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::InvalidTxn("empty key".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(StoreError::TooLarge {
                what: "key",
                size: key.len(),
                limit: MAX_KEY_BYTES,
            });
        }
        Ok(())
    }
    let mut size = 0;
    for Compare::ModRevision { key, .. } in &txn.compares {
        key_ok(key)?;
        size += key.len();
    }
    let mut written = HashSet::with_capacity(txn.ops.len());
    for op in &txn.ops {
        let key = match op {
            Op::Put { key, value, .. } => {
                if value.len() > MAX_VALUE_BYTES {
                    return Err(StoreError::TooLarge {
                        what: "value",
                        size: value.len(),
                        limit: MAX_VALUE_BYTES,
                    });
                }
                size += value.len();
                key
            }
            Op::Delete { key } => key,
        };
        key_ok(key)?;
        size += key.len();
        // As in etcd: two writes of one key in one transaction are almost surely a bug,
        // and its version would be ambiguous.
        if !written.insert(key.as_str()) {
            return Err(StoreError::InvalidTxn(format!(
                "key {key} is written twice"
            )));
        }
    }
    if size > MAX_TXN_BYTES {
        return Err(StoreError::TooLarge {
            what: "transaction",
            size,
            limit: MAX_TXN_BYTES,
        });
    }
    Ok(size)
}

fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let locked = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked(path.to_owned())
        }
        _ => StoreError::Sqlite(e),
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Before WAL is entered, so the WAL index lives in process memory and the file
    // lock is held for as long as the connection is open.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(locked)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode is {mode}, WAL is required"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The WAL is copied into the database every WAL_CHECKPOINT_PAGES pages rather
    // than SQLite's default 1,000: the pages of a busy store (instances' usage, task
    // records placed and then reported) are rewritten many times between
    // checkpoints, and each checkpoint copies a page once however often it changed.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    // SQLite's default (2 MB) left most writes reading a page or two back from the
    // file once a store held a hundred thousand records: see CACHE_KIB.
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Writing now takes the exclusive lock at once, so a second opener fails here.
    let tx = conn.unchecked_transaction().map_err(locked)?;
    tx.execute_batch(SCHEMA).map_err(locked)?;
    let schema: Option<i64> = tx
        .query_row("SELECT v FROM meta WHERE k = 'schema'", [], |r| r.get(0))
        .optional()?;
    match schema {
        None => {
            tx.execute_batch(KV_TABLE)?;
            tx.execute(
                "INSERT INTO meta (k, v) VALUES ('schema', ?1)",
                [SCHEMA_VERSION],
            )?;
        }
        Some(1) => {
            tracing::info!(path = %path.display(), "moving the store to schema version 2");
            tx.execute_batch(MIGRATE_FROM_1[0])?;
            tx.execute_batch(KV_TABLE)?;
            tx.execute_batch(MIGRATE_FROM_1[1])?;
        }
        // The current version, or one `load` refuses.
        Some(_) => {}
    }
    tx.commit().map_err(locked)?;
    Ok(())
}

/// Reads the whole durable state, checking what the writer guarantees.
fn load(conn: &Connection) -> Result<Index, StoreError> {
    let schema: i64 = conn.query_row("SELECT v FROM meta WHERE k = 'schema'", [], |r| r.get(0))?;
    if schema != SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "schema version {schema}, this build knows {SCHEMA_VERSION}"
        )));
    }
    let revision: i64 =
        conn.query_row("SELECT v FROM meta WHERE k = 'revision'", [], |r| r.get(0))?;
    let mut stmt =
        conn.prepare("SELECT key, value, create_revision, mod_revision, version FROM kv")?;
    let rows = stmt.query_map([], |r| {
        Ok(KeyValue {
            key: Arc::from(r.get::<_, String>(0)?),
            value: Bytes::from(r.get::<_, Vec<u8>>(1)?),
            create_revision: r.get(2)?,
            mod_revision: r.get(3)?,
            version: r.get(4)?,
        })
    })?;
    let mut entries = Entries::default();
    for kv in rows {
        let kv = kv?;
        if !(1 <= kv.create_revision
            && kv.create_revision <= kv.mod_revision
            && kv.mod_revision <= revision
            && kv.version >= 1)
        {
            return Err(StoreError::Corrupt(format!(
                "key {} has create_revision {}, mod_revision {}, version {} at store revision {revision}",
                kv.key, kv.create_revision, kv.mod_revision, kv.version
            )));
        }
        entries.insert(Arc::new(kv));
    }
    Ok(Index {
        entries,
        revision,
        log: ChangeLog::starting_at(revision),
    })
}

/// The writer thread's state. `committed` is what is durable and published.
struct Writer {
    conn: Connection,
    committed: Arc<Index>,
    published: Arc<ArcSwap<Index>>,
    feed: broadcast::Sender<Arc<ChangeBatch>>,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(MAX_GROUP_TXNS);
        while let Some(first) = queue.blocking_recv() {
            let mut bytes = first.size;
            group.push(first);
            while group.len() < MAX_GROUP_TXNS && bytes < MAX_GROUP_BYTES {
                match queue.try_recv() {
                    Ok(next) => {
                        bytes += next.size;
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.commit_group(&mut group) {
                tracing::error!(error = %e, "store writer stops");
                return;
            }
        }
        tracing::debug!("store writer closed");
    }

    /// Evaluates, persists and answers one group. An error here is one the writer
    /// cannot go on after (its view of the file is lost).
    fn commit_group(&mut self, group: &mut Vec<Request>) -> Result<(), StoreError> {
        let mut working = self.committed.entries.clone();
        let mut log = self.committed.log.clone();
        let mut revision = self.committed.revision;
        // The final state of every key the group changes, in key order.
        let mut touched: BTreeMap<Arc<str>, Option<Arc<KeyValue>>> = BTreeMap::new();
        let mut changed = Vec::new();
        let mut answers = Vec::with_capacity(group.len());
        for req in group.drain(..) {
            let outcome = match apply(req.txn, &mut working, revision + 1) {
                None => TxnOutcome::Conflict,
                Some(changes) if changes.is_empty() => TxnOutcome::Committed { revision },
                Some(changes) => {
                    revision += 1;
                    for change in &changes {
                        let (key, kv) = match change {
                            Change::Put { kv, .. } => (Arc::clone(&kv.key), Some(Arc::clone(kv))),
                            Change::Delete { key } => (Arc::from(key.as_str()), None),
                        };
                        log.push(revision, Arc::clone(&key));
                        touched.insert(key, kv);
                    }
                    changed.push(Arc::new(ChangeBatch { revision, changes }));
                    TxnOutcome::Committed { revision }
                }
            };
            answers.push((req.reply, outcome));
        }

        if !touched.is_empty() {
            if let Err(e) = persist(&mut self.conn, &touched, revision) {
                tracing::error!(error = %e, "store commit failed");
                let e = Arc::new(e);
                for (reply, _) in answers {
                    let _ = reply.send(Err(StoreError::CommitFailed(e.clone())));
                }
                return self.resync();
            }
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.committed = Arc::new(Index {
                entries: working,
                revision,
                log,
            });
            self.published.store(self.committed.clone());
        }
        for batch in changed {
            // No receiver is not an error: nobody is watching.
            let _ = self.feed.send(batch);
        }
        for (reply, outcome) in answers {
            let counter = match outcome {
                TxnOutcome::Committed { .. } => &self.counters.committed,
                TxnOutcome::Conflict => &self.counters.conflicts,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = reply.send(Ok(outcome));
        }
        Ok(())
    }

    /// After a failed COMMIT SQLite has rolled back, but an I/O error may leave it
    /// unsure; the file is the truth, so if it moved, reload it.
    fn resync(&mut self) -> Result<(), StoreError> {
        let revision: i64 =
            self.conn
                .query_row("SELECT v FROM meta WHERE k = 'revision'", [], |r| r.get(0))?;
        if revision != self.committed.revision {
            tracing::error!(
                file = revision,
                memory = self.committed.revision,
                "store revision moved despite a failed commit; reloading"
            );
            self.committed = Arc::new(load(&self.conn)?);
            self.published.store(self.committed.clone());
        }
        Ok(())
    }
}

/// Applies `txn` at `revision` if its compares hold; returns its changes, or `None`
/// on conflict (then `working` is untouched).
fn apply(txn: Txn, working: &mut Entries, revision: i64) -> Option<Vec<Change>> {
    let holds = txn
        .compares
        .iter()
        .all(|Compare::ModRevision { key, equals }| {
            working.get(key.as_str()).map_or(0, |kv| kv.mod_revision) == *equals
        });
    if !holds {
        return None;
    }
    let mut changes = Vec::with_capacity(txn.ops.len());
    for op in txn.ops {
        match op {
            Op::Put {
                key,
                value,
                decoded,
            } => {
                // A key keeps its first allocation for as long as it exists, so
                // every version of it, and every index that holds it, shares one.
                let (entry, create_revision, version) = match working.get(key.as_str()) {
                    Some(old) => (Arc::clone(&old.key), old.create_revision, old.version + 1),
                    None => (Arc::from(key), revision, 1),
                };
                let kv = KeyValue {
                    key: entry,
                    value,
                    create_revision,
                    mod_revision: revision,
                    version,
                };
                let kv = Arc::new(kv);
                working.insert(Arc::clone(&kv));
                changes.push(Change::Put { kv, decoded });
            }
            Op::Delete { key } => {
                if working.remove(key.as_str()).is_some() {
                    changes.push(Change::Delete { key });
                }
            }
        }
    }
    Some(changes)
}

/// Writes the final state of every touched key and the store revision in one durable
/// SQLite transaction.
fn persist(
    conn: &mut Connection,
    touched: &BTreeMap<Arc<str>, Option<Arc<KeyValue>>>,
    revision: i64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        // An update in place keeps the row where it is (a REPLACE would delete it and
        // insert it again under a new rowid).
        let mut put = tx.prepare_cached(
            "INSERT INTO kv (key, value, create_revision, mod_revision, version)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                 create_revision = excluded.create_revision,
                 mod_revision = excluded.mod_revision, version = excluded.version",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
        for (key, now) in touched {
            match now {
                Some(kv) => put.execute(params![
                    &*kv.key,
                    kv.value.as_ref(),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version
                ])?,
                None => delete.execute([&**key])?,
            };
        }
        tx.prepare_cached("UPDATE meta SET v = ?1 WHERE k = 'revision'")?
            .execute([revision])?;
    }
    tx.commit()
}

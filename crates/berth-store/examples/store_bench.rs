//! Measures the SQLite store: durable commits per second at concurrency 1 and 16, and
//! snapshot+get reads per second. Bounded to a few seconds.
//!
//!     cargo run --release -p berth-store --example store_bench [-- DIR]
//!
//! DIR (default: a temporary folder) is where the database goes; put it on the disk
//! you care about, since commits are bound by that disk's fsync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::sqlite::SqliteStore;
use berth_store::{Compare, Store, StoreError, Txn, TxnOutcome};
use bytes::Bytes;

const WRITE_PHASE: Duration = Duration::from_secs(2);
const READ_PHASE: Duration = Duration::from_secs(1);
const VALUE_BYTES: usize = 2048;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| temp.path().to_owned(), Into::into);
    let path = dir.join("store_bench.db");
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open(&path)?;
    println!("store: {}", path.display());

    for concurrency in [1, 16] {
        let before = store.stats();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..concurrency {
            let store = store.clone();
            tasks.push(tokio::spawn(write_until(store, t, started + WRITE_PHASE)));
        }
        let mut commits = 0;
        let mut latency = Duration::ZERO;
        for task in tasks {
            let (n, total) = task.await??;
            commits += n;
            latency += total;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = store.stats();
        let batches = after.batches - before.batches;
        println!(
            "commits, concurrency {concurrency:>2}: {:>8.0}/s  ({commits} CAS puts of {VALUE_BYTES} B in {elapsed:.2} s, \
             mean latency {:.2} ms, {batches} fsync'd batches, {:.1} txns/batch)",
            commits as f64 / elapsed,
            latency.as_secs_f64() * 1000.0 / commits.max(1) as f64,
            commits as f64 / batches.max(1) as f64,
        );
    }

    let keys = store.snapshot().await?.len();
    for readers in [1, 2] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for r in 0..readers {
            let store = store.clone();
            tasks.push(tokio::spawn(read_until(store, r, started + READ_PHASE)));
        }
        let mut reads = 0u64;
        for task in tasks {
            reads += task.await??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "snapshot+get, {readers} reader(s): {:>10.0}/s  (over {keys} keys)",
            reads as f64 / elapsed
        );
    }
    Ok(())
}

/// Commits distinct keys until `deadline`; returns the count and the summed latency.
async fn write_until(
    store: Arc<SqliteStore>,
    task: usize,
    deadline: Instant,
) -> std::result::Result<(u64, Duration), StoreError> {
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let mut n = 0u64;
    let mut latency = Duration::ZERO;
    while Instant::now() < deadline {
        let key = format!("bench/{task:02}/{n:08}/{}", deadline.elapsed().as_nanos());
        let txn = Txn::new()
            .when(Compare::absent(&key))
            .put(key, value.clone());
        let started = Instant::now();
        if let TxnOutcome::Committed { .. } = store.commit(txn).await? {
            n += 1;
        }
        latency += started.elapsed();
    }
    Ok((n, latency))
}

/// Takes a snapshot and reads one key, in a loop, until `deadline`; returns the count.
async fn read_until(
    store: Arc<SqliteStore>,
    reader: usize,
    deadline: Instant,
) -> std::result::Result<u64, StoreError> {
    let keys: Vec<String> = store
        .snapshot()
        .await?
        .iter_prefix("bench/")
        .map(|kv| kv.key.to_string())
        .collect();
    if keys.is_empty() {
        return Ok(0);
    }
    let mut n = 0u64;
    let mut i = reader * 7919;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let snapshot = store.snapshot().await?;
            i = (i + 104_729) % keys.len();
            if snapshot.get(&keys[i]).is_some() {
                n += 1;
            }
        }
    }
    Ok(n)
}

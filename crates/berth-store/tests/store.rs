//! The store's contract, against the SQLite backend on a temporary folder.

use std::sync::Arc;
use std::time::Duration;

use berth_store::sqlite::{MAX_KEY_BYTES, MAX_VALUE_BYTES, SqliteStore};
use berth_store::{Change, Compare, Decoded, KeyValue, Store, StoreError, Txn, TxnOutcome};
use bytes::Bytes;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn open(dir: &tempfile::TempDir) -> Result<Arc<SqliteStore>> {
    Ok(SqliteStore::open(&dir.path().join("state/berth.db"))?)
}

async fn committed(store: &SqliteStore, txn: Txn) -> Result<i64> {
    match store.commit(txn).await? {
        TxnOutcome::Committed { revision } => Ok(revision),
        TxnOutcome::Conflict => Err("unexpected conflict".into()),
    }
}

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Bytes::from(value.to_owned()),
        create_revision: create,
        mod_revision: modified,
        version,
    }
}

#[tokio::test]
async fn revisions_and_versions_follow_etcd() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let empty = store.snapshot().await?;
    assert_eq!(empty.revision(), 0);
    assert!(empty.is_empty());

    assert_eq!(committed(&store, Txn::new().put("a", "1")).await?, 1);
    assert_eq!(committed(&store, Txn::new().put("a", "2")).await?, 2);
    assert_eq!(
        committed(&store, Txn::new().put("b", "x").put("c", "y")).await?,
        3
    );
    let s = store.snapshot().await?;
    assert_eq!(s.revision(), 3);
    assert_eq!(s.get("a"), Some(&kv("a", "2", 1, 2, 2)));
    assert_eq!(s.get("b"), Some(&kv("b", "x", 3, 3, 1)));
    assert_eq!(s.get("c"), Some(&kv("c", "y", 3, 3, 1)));

    // Delete, then re-create: a new life with a new create_revision and version 1.
    assert_eq!(committed(&store, Txn::new().delete("a")).await?, 4);
    assert!(store.snapshot().await?.get("a").is_none());
    assert_eq!(committed(&store, Txn::new().put("a", "3")).await?, 5);
    assert_eq!(
        store.snapshot().await?.get("a"),
        Some(&kv("a", "3", 5, 5, 1))
    );

    // Changing nothing commits without a new revision.
    assert_eq!(committed(&store, Txn::new().delete("missing")).await?, 5);
    assert_eq!(committed(&store, Txn::new()).await?, 5);
    assert_eq!(
        committed(&store, Txn::new().when(Compare::unchanged("a", 5))).await?,
        5
    );
    // A delete of a missing key next to a real write is simply skipped.
    assert_eq!(
        committed(&store, Txn::new().delete("missing").put("d", "z")).await?,
        6
    );

    // Old snapshots do not move.
    assert_eq!(s.revision(), 3);
    assert_eq!(s.get("a"), Some(&kv("a", "2", 1, 2, 2)));
    assert!(s.get("d").is_none());
    assert_eq!(store.snapshot().await?.revision(), 6);
    Ok(())
}

#[tokio::test]
async fn every_version_of_a_key_shares_one_allocation_of_it() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let mut feed = store.watch();
    committed(&store, Txn::new().put("shared/key", "1")).await?;
    let first = store.snapshot().await?;
    committed(&store, Txn::new().put("shared/key", "2")).await?;
    let second = store.snapshot().await?;
    let (Some(a), Some(b)) = (first.get("shared/key"), second.get("shared/key")) else {
        return Err("the key is stored".into());
    };
    assert_eq!(&*b.value, b"2");
    assert!(
        Arc::ptr_eq(&a.key, &b.key),
        "the second version reuses the key"
    );
    // The change feed carries the index's own entries.
    for _ in 0..2 {
        let batch = feed.recv().await?;
        let Some(Change::Put { kv: put, .. }) = batch.changes.first() else {
            return Err("a put".into());
        };
        assert!(Arc::ptr_eq(&put.key, &a.key));
    }
    Ok(())
}

#[tokio::test]
async fn a_decoded_value_travels_with_its_change_and_is_not_stored() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let mut feed = store.watch();
    let decoded = Decoded::new(String::from("the writer's own form"));
    let txn = Txn::new()
        .put_decoded("with", "bytes", decoded.clone())
        .put("without", "plain");
    committed(&store, txn).await?;
    let batch = feed.recv().await?;
    let mut seen = Vec::new();
    for change in &batch.changes {
        let Change::Put { kv, decoded: given } = change else {
            return Err("a put".into());
        };
        let form = given.as_ref().and_then(Decoded::get::<String>);
        seen.push((kv.key.to_string(), form.map(|form| form.to_string())));
        if let Some(given) = given {
            assert_eq!(given, &decoded, "the very value the writer gave");
            assert!(given.get::<u32>().is_none(), "only as its own type");
        }
    }
    assert_eq!(
        seen,
        [
            (
                "with".to_string(),
                Some("the writer's own form".to_string())
            ),
            ("without".to_string(), None),
        ]
    );
    // The store keeps the bytes: a reopened store has them, and nothing else.
    drop(feed);
    drop(store);
    let store = open(&dir)?;
    let snapshot = store.snapshot().await?;
    assert_eq!(
        snapshot.get("with").map(|kv| kv.value.to_vec()),
        Some(b"bytes".to_vec())
    );
    Ok(())
}

/// The keys a snapshot says changed since `since`, as (key) strings, newest first.
fn changed(snapshot: &berth_store::Snapshot, since: i64) -> Option<Vec<String>> {
    Some(
        snapshot
            .changed_since(since)?
            .map(|key| key.to_string())
            .collect(),
    )
}

#[tokio::test]
async fn a_snapshot_tells_the_keys_changed_since_a_revision() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    assert_eq!(
        committed(&store, Txn::new().put("a", "1").put("b", "1")).await?,
        1
    );
    let first = store.snapshot().await?;
    assert_eq!(committed(&store, Txn::new().put("a", "2")).await?, 2);
    // A conflict changes nothing and is not logged.
    let conflict = Txn::new().when(Compare::unchanged("a", 1)).put("c", "1");
    assert_eq!(store.commit(conflict).await?, TxnOutcome::Conflict);
    assert_eq!(
        committed(&store, Txn::new().delete("b").put("c", "1")).await?,
        3
    );
    let now = store.snapshot().await?;
    assert_eq!(changed(&now, 3), Some(vec![]));
    assert_eq!(changed(&now, 2), Some(vec!["c".to_owned(), "b".to_owned()]));
    assert_eq!(
        changed(&now, 0),
        Some(
            vec!["c", "b", "a", "b", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
    // An older snapshot knows only its own revisions, and nothing after itself.
    assert_eq!(
        changed(&first, 0),
        Some(vec!["b".to_owned(), "a".to_owned()])
    );
    assert_eq!(changed(&first, 2), None);

    // A reopened store knows nothing of the revisions before it opened.
    drop((first, now));
    drop(store);
    let store = open(&dir)?;
    let reopened = store.snapshot().await?;
    assert_eq!(changed(&reopened, 2), None);
    assert_eq!(changed(&reopened, 3), Some(vec![]));
    assert_eq!(committed(&store, Txn::new().put("d", "1")).await?, 4);
    assert_eq!(
        changed(&store.snapshot().await?, 3),
        Some(vec!["d".to_owned()])
    );
    Ok(())
}

#[tokio::test]
async fn prefix_scans_page_in_both_directions() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    // Written out of order, in several transactions, with neighbours on both sides.
    for i in (0..25).rev() {
        committed(&store, Txn::new().put(format!("svc/c1/{i:03}"), "v")).await?;
    }
    committed(&store, Txn::new().put("svc/c0/x", "v").put("svc/c10", "v")).await?;
    committed(&store, Txn::new().put("svc/c1", "v").put("svc/c2/000", "v")).await?;
    let s = store.snapshot().await?;
    let prefix = "svc/c1/";
    assert_eq!(s.count_prefix(prefix), 25);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.scan_prefix(prefix, cursor.as_deref(), 10);
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        cursor = page.last().map(|kv| kv.key.to_string());
        seen.extend(page.into_iter().map(|kv| kv.key.to_string()));
    }
    let expected: Vec<String> = (0..25).map(|i| format!("svc/c1/{i:03}")).collect();
    assert_eq!(seen, expected);

    let mut seen_rev = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.scan_prefix_rev(prefix, cursor.as_deref(), 7);
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|kv| kv.key.to_string());
        seen_rev.extend(page.into_iter().map(|kv| kv.key.to_string()));
    }
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(seen_rev, reversed);

    let all: Vec<&str> = s.iter_prefix("svc/").map(|kv| &*kv.key).collect();
    assert_eq!(all.len(), 29);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    Ok(())
}

#[tokio::test]
async fn compare_and_swap() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let create = |v: &'static str| Txn::new().when(Compare::absent("k")).put("k", v);
    assert_eq!(
        store.commit(create("first")).await?,
        TxnOutcome::Committed { revision: 1 }
    );
    assert_eq!(store.commit(create("second")).await?, TxnOutcome::Conflict);

    // Two writers read the same revision; the second to commit loses.
    let read = store.snapshot().await?;
    let seen = read.get("k").map_or(0, |kv| kv.mod_revision);
    let update = |v: &'static str| Txn::new().when(Compare::unchanged("k", seen)).put("k", v);
    assert_eq!(
        store.commit(update("a")).await?,
        TxnOutcome::Committed { revision: 2 }
    );
    assert_eq!(store.commit(update("b")).await?, TxnOutcome::Conflict);
    let now = store.snapshot().await?;
    assert_eq!(
        now.get("k").map(|kv| kv.value.clone()),
        Some(Bytes::from("a"))
    );

    // A failed transaction writes none of its keys.
    let mut feed = store.watch();
    let multi = Txn::new()
        .when(Compare::absent("x"))
        .when(Compare::unchanged("k", 1))
        .put("x", "1")
        .put("y", "1")
        .delete("k");
    assert_eq!(store.commit(multi).await?, TxnOutcome::Conflict);
    let after = store.snapshot().await?;
    assert_eq!(after.revision(), 2);
    assert!(after.get("x").is_none() && after.get("y").is_none());
    assert!(after.get("k").is_some());
    assert!(feed.try_recv().is_err(), "a conflict publishes nothing");

    // unchanged(key, 0) is absent(key); deleted keys are absent again.
    committed(
        &store,
        Txn::new().when(Compare::unchanged("k", 2)).delete("k"),
    )
    .await?;
    committed(
        &store,
        Txn::new()
            .when(Compare::unchanged("k", 0))
            .put("k", "again"),
    )
    .await?;
    let stats = store.stats();
    assert_eq!(stats.conflicts, 3);
    assert_eq!(stats.committed, 4);
    Ok(())
}

#[tokio::test]
async fn refuses_oversized_and_ambiguous_transactions() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let big_value = Bytes::from(vec![b'x'; MAX_VALUE_BYTES + 1]);
    let r = store.commit(Txn::new().put("k", big_value)).await;
    assert!(
        matches!(r, Err(StoreError::TooLarge { what: "value", .. })),
        "{r:?}"
    );
    let big_key = "k".repeat(MAX_KEY_BYTES + 1);
    let r = store.commit(Txn::new().put(big_key.clone(), "v")).await;
    assert!(
        matches!(r, Err(StoreError::TooLarge { what: "key", .. })),
        "{r:?}"
    );
    let r = store
        .commit(Txn::new().when(Compare::absent(big_key)))
        .await;
    assert!(
        matches!(r, Err(StoreError::TooLarge { what: "key", .. })),
        "{r:?}"
    );
    let r = store.commit(Txn::new().put("k", "1").delete("k")).await;
    assert!(matches!(r, Err(StoreError::InvalidTxn(_))), "{r:?}");
    let r = store.commit(Txn::new().put("", "1")).await;
    assert!(matches!(r, Err(StoreError::InvalidTxn(_))), "{r:?}");

    // The limits themselves are fine.
    let max_value = Bytes::from(vec![b'x'; MAX_VALUE_BYTES]);
    committed(&store, Txn::new().put("k".repeat(MAX_KEY_BYTES), max_value)).await?;
    assert_eq!(store.snapshot().await?.revision(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_no_update() -> Result {
    const TASKS: usize = 16;
    const INCREMENTS: usize = 200;
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                loop {
                    let s = store.snapshot().await?;
                    let (n, seen) = match s.get("counter") {
                        Some(kv) => (
                            std::str::from_utf8(&kv.value)?.parse::<u64>()?,
                            kv.mod_revision,
                        ),
                        None => (0, 0),
                    };
                    let txn = Txn::new()
                        .when(Compare::unchanged("counter", seen))
                        .put("counter", (n + 1).to_string());
                    match store.commit(txn).await? {
                        TxnOutcome::Committed { .. } => break,
                        TxnOutcome::Conflict => continue,
                    }
                }
            }
            Result::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let s = store.snapshot().await?;
    let counter = s.get("counter").ok_or("no counter")?;
    let total = (TASKS * INCREMENTS) as i64;
    assert_eq!(counter.value, Bytes::from(total.to_string()));
    assert_eq!(counter.version, total);
    assert_eq!(s.revision(), total);
    assert_eq!(store.stats().committed, total as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_fsyncs() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let key = format!("group/{t:02}/{i:03}");
                committed(&store, Txn::new().when(Compare::absent(&key)).put(key, "v")).await?;
            }
            Result::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let stats = store.stats();
    assert_eq!(stats.committed, 800);
    assert_eq!(stats.conflicts, 0);
    assert!(
        stats.batches < stats.committed,
        "no group commit happened: {stats:?}"
    );
    assert_eq!(store.snapshot().await?.count_prefix("group/"), 800);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_feed_is_in_revision_order() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    committed(&store, Txn::new().put("before", "v")).await?;
    let mut feed = store.watch();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let txn = Txn::new()
                    .put(format!("feed/{t}/{i}"), "v")
                    .delete("before");
                committed(&store, txn).await?;
            }
            Result::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut expected_revision = 2;
    let mut puts = 0;
    let mut deletes = 0;
    while expected_revision <= 201 {
        let batch = tokio::time::timeout(Duration::from_secs(10), feed.recv()).await??;
        assert_eq!(batch.revision, expected_revision);
        for change in &batch.changes {
            match change {
                Change::Put { kv, .. } => {
                    assert_eq!(kv.mod_revision, batch.revision);
                    puts += 1;
                }
                Change::Delete { key } => {
                    assert_eq!(key, "before");
                    deletes += 1;
                }
            }
        }
        expected_revision += 1;
    }
    assert_eq!(
        (puts, deletes),
        (200, 1),
        "only the first delete changes anything"
    );
    assert!(feed.try_recv().is_err());
    Ok(())
}

#[tokio::test]
async fn reopening_restores_every_key_and_revision() -> Result {
    let dir = tempfile::tempdir()?;
    let before = {
        let store = open(&dir)?;
        for i in 0..300 {
            let mut txn = Txn::new().put(format!("d/{i:04}"), format!("value {i}"));
            if i % 3 == 0 {
                txn = txn.put(format!("shared/{}", i % 7), i.to_string());
            }
            if i % 10 == 9 {
                txn = txn.delete(format!("d/{:04}", i - 5));
            }
            committed(&store, txn).await?;
        }
        store.snapshot().await?
    };
    let store = open(&dir)?;
    let after = store.snapshot().await?;
    assert_eq!(after.revision(), 300);
    assert_eq!(after.revision(), before.revision());
    let all_before: Vec<_> = before.iter_prefix("").cloned().collect();
    let all_after: Vec<_> = after.iter_prefix("").cloned().collect();
    assert_eq!(all_after, all_before);
    assert_eq!(after.count_prefix("d/"), 270);
    // Versions survive too, and the next write continues the revision sequence.
    let shared = after.get("shared/0").ok_or("shared/0 lost")?.clone();
    assert!(shared.version > 1);
    let next = Txn::new()
        .when(Compare::unchanged("shared/0", shared.mod_revision))
        .put("shared/0", "new");
    assert_eq!(
        store.commit(next).await?,
        TxnOutcome::Committed { revision: 301 }
    );
    let s = store.snapshot().await?;
    let updated = s.get("shared/0").ok_or("shared/0 lost")?;
    assert_eq!(updated.version, shared.version + 1);
    assert_eq!(updated.create_revision, shared.create_revision);
    Ok(())
}

#[tokio::test]
async fn one_process_owns_the_file() -> Result {
    let dir = tempfile::tempdir()?;
    let store = open(&dir)?;
    committed(&store, Txn::new().put("k", "v")).await?;
    match open(&dir) {
        Err(e) => assert!(
            e.downcast_ref::<StoreError>()
                .is_some_and(|e| matches!(e, StoreError::Locked(_))),
            "{e}"
        ),
        Ok(_) => return Err("a second handle opened a store in use".into()),
    }
    drop(store);
    let store = open(&dir)?;
    assert!(store.snapshot().await?.get("k").is_some());
    Ok(())
}

/// A file of schema version 1 (the `WITHOUT ROWID` layout), as an earlier build wrote
/// it.
fn write_version_1(path: &std::path::Path, rows: &[KeyValue], revision: i64) -> Result {
    std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE kv (
             key TEXT PRIMARY KEY,
             value BLOB NOT NULL,
             create_revision INTEGER NOT NULL,
             mod_revision INTEGER NOT NULL,
             version INTEGER NOT NULL
         ) WITHOUT ROWID;
         CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO meta (k, v) VALUES ('schema', 1);",
    )?;
    conn.execute(
        "INSERT INTO meta (k, v) VALUES ('revision', ?1)",
        [revision],
    )?;
    for kv in rows {
        conn.execute(
            "INSERT INTO kv VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                kv.key,
                kv.value.as_ref(),
                kv.create_revision,
                kv.mod_revision,
                kv.version
            ],
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn a_version_1_file_is_migrated() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state/berth.db");
    let rows = vec![
        kv("a", "1", 1, 3, 2),
        kv("b", &"x".repeat(5000), 2, 2, 1),
        kv("c/1", "{}", 4, 4, 1),
    ];
    write_version_1(&path, &rows, 4)?;
    {
        let store = open(&dir)?;
        let s = store.snapshot().await?;
        assert_eq!(s.revision(), 4);
        assert_eq!(s.iter_prefix("").cloned().collect::<Vec<_>>(), rows);
        // Writes go on from there: an update, a new key, a delete.
        let txn = Txn::new()
            .when(Compare::unchanged("a", 3))
            .put("a", "2")
            .put("d", "new")
            .delete("c/1");
        assert_eq!(committed(&store, txn).await?, 5);
    }
    let store = open(&dir)?;
    let s = store.snapshot().await?;
    assert_eq!(s.revision(), 5);
    assert_eq!(s.get("a"), Some(&kv("a", "2", 1, 5, 3)));
    assert_eq!(s.get("b"), Some(&rows[1]));
    assert!(s.get("c/1").is_none());
    assert_eq!(s.get("d"), Some(&kv("d", "new", 5, 5, 1)));
    drop(store);
    let conn = rusqlite::Connection::open(&path)?;
    let schema: i64 = conn.query_row("SELECT v FROM meta WHERE k = 'schema'", [], |r| r.get(0))?;
    assert_eq!(schema, 2);
    Ok(())
}

#[tokio::test]
async fn a_file_of_an_unknown_schema_version_is_refused() -> Result {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state/berth.db");
    write_version_1(&path, &[], 0)?;
    rusqlite::Connection::open(&path)?.execute("UPDATE meta SET v = 99 WHERE k = 'schema'", [])?;
    match open(&dir) {
        Err(e) => assert!(
            e.downcast_ref::<StoreError>()
                .is_some_and(|e| matches!(e, StoreError::Corrupt(m) if m.contains("99"))),
            "{e}"
        ),
        Ok(_) => return Err("a file of schema version 99 opened".into()),
    }
    Ok(())
}

//! An acknowledged write survives `kill -9` of the writing process.
//!
//! The test re-runs its own binary as a child that writes keys as fast as it can and
//! prints each one the store acknowledged; the parent SIGKILLs it mid-stream, reopens
//! the file and looks for every acknowledged key. Twice, so the second child also
//! recovers a file left by a killed writer.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_store::sqlite::SqliteStore;
use berth_store::{Compare, Store, Txn, TxnOutcome};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Set in the child: the store path to write to.
const CHILD_PATH: &str = "BERTH_STORE_CRASH_CHILD_PATH";
/// Set in the child: a prefix for its keys, distinct per round.
const CHILD_ROUND: &str = "BERTH_STORE_CRASH_CHILD_ROUND";
const WRITERS: usize = 4;
/// Bounds the child if the parent never kills it.
const CHILD_MAX_KEYS_PER_WRITER: usize = 50_000;
const ACKS_PER_ROUND: usize = 400;
const DEADLINE: Duration = Duration::from_secs(60);

fn value_for(key: &str) -> String {
    format!("{key}:{}", "x".repeat(2000))
}

/// The child's part; does nothing in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() -> Result {
    let (Some(path), Some(round)) = (
        std::env::var_os(CHILD_PATH),
        std::env::var(CHILD_ROUND).ok(),
    ) else {
        return Ok(());
    };
    let store = SqliteStore::open(Path::new(&path))?;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let round = round.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..CHILD_MAX_KEYS_PER_WRITER {
                let key = format!("crash/{round}/{w}/{i:06}");
                let txn = Txn::new()
                    .when(Compare::absent(&key))
                    .put(key.clone(), value_for(&key));
                match store.commit(txn).await? {
                    TxnOutcome::Committed { .. } => {}
                    TxnOutcome::Conflict => return Err(format!("{key} exists").into()),
                }
                // Printed only after the store acknowledged the write.
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {key}")?;
                out.flush()?;
            }
            Result::Ok(())
        }));
    }
    for w in writers {
        w.await??;
    }
    Ok(())
}

/// Runs one child until it acknowledged `ACKS_PER_ROUND` keys, SIGKILLs it, and returns
/// every key it acknowledged (including those still in the pipe when it died).
fn run_and_kill(path: &Path, round: usize) -> Result<Vec<String>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PATH, path)
        .env(CHILD_ROUND, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + DEADLINE;
    let mut acked = Vec::new();
    let read = |line: std::io::Result<String>, acked: &mut Vec<String>| -> Result {
        if let Some(key) = line?.strip_prefix("ACK ") {
            acked.push(key.to_owned());
        }
        Ok(())
    };
    let waited = loop {
        if acked.len() >= ACKS_PER_ROUND {
            break Ok(());
        }
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => read(line, &mut acked)?,
            Err(e) => break Err(format!("child gave {} acks, then: {e}", acked.len())),
        }
    };
    child.kill()?; // SIGKILL
    let status = child.wait()?;
    waited?;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "child was not killed: {status}");
    }
    // The child is dead: the pipe ends, so this drains what it printed before dying.
    for line in lines {
        read(line, &mut acked)?;
    }
    reader.join().map_err(|_| "reader panicked")?;
    Ok(acked)
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() -> Result {
    let dir = tempfile::tempdir()?;
    let path: PathBuf = dir.path().join("berth.db");
    let mut all_acked = Vec::new();
    for round in 0..2 {
        let acked = run_and_kill(&path, round)?;
        assert!(acked.len() >= ACKS_PER_ROUND);
        all_acked.extend(acked);

        let store = SqliteStore::open(&path)?;
        let s = store.snapshot().await?;
        let mut missing = Vec::new();
        for key in &all_acked {
            match s.get(key) {
                Some(kv) if kv.value == value_for(key).as_bytes() => {}
                _ => missing.push(key.clone()),
            }
        }
        assert!(
            missing.is_empty(),
            "lost {} acknowledged keys: {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        // Every committed transaction created one key: nothing half-applied either.
        assert_eq!(s.revision() as usize, s.count_prefix("crash/"));
        assert!(s.revision() as usize >= all_acked.len());
    }
    Ok(())
}

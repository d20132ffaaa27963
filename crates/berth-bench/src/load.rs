//! One phase of load: N workers, each on its own keep-alive connection, sending one
//! operation back to back for a warm-up and then a measured interval (or until the
//! request budget is spent). Latencies go to per-worker histograms, merged at the end.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::cpu;
use crate::http1::Connection;
use crate::signer::Signer;
use crate::workload::{Body, Operation, SHARED_FAMILY};

/// Pre-signed requests are signed again once they are this old; the server accepts a
/// signature for 15 minutes.
const RESIGN_AFTER: Duration = Duration::from_secs(5 * 60);
/// Distinct error answers kept per phase; the rest are counted as "other".
const MAX_ERROR_KINDS: usize = 16;
/// How long workers may overrun the phase's end (a request stuck in the server).
const GRACE: Duration = Duration::from_secs(30);
/// Highest latency the histograms hold, in microseconds (60 s).
const MAX_LATENCY_US: u64 = 60_000_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct Phase {
    pub op: Operation,
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// The most requests to measure; the phase ends early when they are sent.
    pub max_requests: u64,
    /// The server's process, when it is local, to account its CPU time.
    pub server_pid: Option<u32>,
}

/// What a phase measured.
#[derive(Debug)]
pub struct PhaseResult {
    pub op: Operation,
    pub concurrency: usize,
    /// Requests completed in the measured interval, successes and errors.
    pub requests: u64,
    /// Errors in the measured interval.
    pub errors: u64,
    /// Errors during the warm-up.
    pub warmup_errors: u64,
    /// From the end of the warm-up to the last measured response.
    pub elapsed: Duration,
    /// Latency of measured requests, in microseconds.
    pub latency: Histogram<u64>,
    /// Error answers (warm-up included), "HTTP 400: {body}" -> count.
    pub error_kinds: HashMap<String, u64>,
    /// Successful registrations per family index (warm-up included).
    pub family_ok: [u64; SHARED_FAMILY + 1],
    /// Workers still busy long after the phase ended (abandoned).
    pub stuck_workers: usize,
    /// Where the CPU time went in the measured interval.
    pub cpu: Option<cpu::Usage>,
}

impl PhaseResult {
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.requests as f64 / secs
        } else {
            0.0
        }
    }

    pub fn clean(&self) -> bool {
        self.errors == 0 && self.warmup_errors == 0 && self.stuck_workers == 0
    }
}

/// Shared by the workers of a phase.
struct Clock {
    measure_start: Instant,
    end: Instant,
    max_requests: u64,
    /// Measured requests started so far, across workers.
    started: AtomicU64,
}

struct Worker {
    signer: Arc<Signer>,
    clock: Arc<Clock>,
    op: Operation,
    bodies: Vec<Body>,
    pool: Vec<Vec<u8>>,
    signed_at: Instant,
    conn: Option<Connection>,
}

struct WorkerResult {
    requests: u64,
    errors: u64,
    warmup_errors: u64,
    last_done: Option<Instant>,
    latency: Histogram<u64>,
    error_kinds: HashMap<String, u64>,
    family_ok: [u64; SHARED_FAMILY + 1],
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("cannot create a histogram")
}

fn sign_pool(signer: &Signer, op: Operation, bodies: &[Body]) -> anyhow::Result<Vec<Vec<u8>>> {
    let now = SystemTime::now();
    bodies
        .iter()
        .map(|b| signer.request(op.name(), &b.json, now))
        .collect()
}

/// Runs `phase` with `bodies[i]` as worker i's request bodies (used round-robin).
pub async fn run(
    signer: &Arc<Signer>,
    phase: &Phase,
    bodies: Vec<Vec<Body>>,
) -> anyhow::Result<PhaseResult> {
    // Connect and sign before the clock starts.
    let mut prepared = Vec::with_capacity(bodies.len());
    for bodies in bodies {
        let conn = Connection::open(signer.endpoint().address)
            .await
            .with_context(|| format!("cannot connect to {}", signer.endpoint().authority))?;
        let pool = sign_pool(signer, phase.op, &bodies)?;
        prepared.push((bodies, pool, conn));
    }

    let start = Instant::now();
    let clock = Arc::new(Clock {
        measure_start: start + phase.warmup,
        end: start + phase.warmup + phase.measure,
        max_requests: phase.max_requests,
        started: AtomicU64::new(0),
    });
    let handles: Vec<_> = prepared
        .into_iter()
        .map(|(bodies, pool, conn)| {
            let worker = Worker {
                signer: Arc::clone(signer),
                clock: Arc::clone(&clock),
                op: phase.op,
                bodies,
                pool,
                signed_at: start,
                conn: Some(conn),
            };
            tokio::spawn(worker.run())
        })
        .collect();

    let mut result = PhaseResult {
        op: phase.op,
        concurrency: phase.concurrency,
        requests: 0,
        errors: 0,
        warmup_errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram()?,
        error_kinds: HashMap::new(),
        family_ok: [0; SHARED_FAMILY + 1],
        stuck_workers: 0,
        cpu: None,
    };
    tokio::time::sleep_until(tokio::time::Instant::from_std(clock.measure_start)).await;
    let cpu_before = cpu::Snapshot::take(phase.server_pid);
    let mut last_done = None;
    let deadline = tokio::time::Instant::from_std(clock.end + GRACE);
    for mut handle in handles {
        let worker = match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(joined) => joined.context("a load worker failed")??,
            Err(_) => {
                handle.abort();
                result.stuck_workers += 1;
                continue;
            }
        };
        result.requests += worker.requests;
        result.errors += worker.errors;
        result.warmup_errors += worker.warmup_errors;
        result
            .latency
            .add(&worker.latency)
            .context("cannot merge histograms")?;
        for (kind, n) in worker.error_kinds {
            *result.error_kinds.entry(kind).or_default() += n;
        }
        for (total, n) in result.family_ok.iter_mut().zip(worker.family_ok) {
            *total += n;
        }
        last_done = last_done.max(worker.last_done);
    }
    let cpu_after = cpu::Snapshot::take(phase.server_pid);
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        result.cpu = before.usage_until(&after);
    }
    if let Some(last) = last_done {
        result.elapsed = last.saturating_duration_since(clock.measure_start);
    }
    Ok(result)
}

impl Worker {
    async fn run(mut self) -> anyhow::Result<WorkerResult> {
        let mut out = WorkerResult {
            requests: 0,
            errors: 0,
            warmup_errors: 0,
            last_done: None,
            latency: histogram()?,
            error_kinds: HashMap::new(),
            family_ok: [0; SHARED_FAMILY + 1],
        };
        let clock = Arc::clone(&self.clock);
        let mut next = 0usize;
        loop {
            let now = Instant::now();
            if now >= clock.end {
                break;
            }
            let measured = now >= clock.measure_start;
            if measured && clock.started.fetch_add(1, Ordering::Relaxed) >= clock.max_requests {
                break;
            }
            if self.signed_at.elapsed() >= RESIGN_AFTER {
                self.pool = sign_pool(&self.signer, self.op, &self.bodies)?;
                self.signed_at = Instant::now();
            }
            let index = next % self.pool.len();
            next = next.wrapping_add(1);

            let (outcome, latency) = self.send(index).await;
            let done = Instant::now();
            match outcome {
                Ok(()) => {
                    if let Some(family) = self.bodies[index].family {
                        out.family_ok[family] += 1;
                    }
                }
                Err(kind) => {
                    if measured {
                        out.errors += 1;
                    } else {
                        out.warmup_errors += 1;
                    }
                    let kinds = out.error_kinds.len();
                    let key = if kinds < MAX_ERROR_KINDS || out.error_kinds.contains_key(&kind) {
                        kind
                    } else {
                        "other errors".to_string()
                    };
                    *out.error_kinds.entry(key).or_default() += 1;
                }
            }
            if measured {
                out.requests += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                out.latency
                    .saturating_record(micros.clamp(1, MAX_LATENCY_US));
                out.last_done = Some(done);
            }
        }
        Ok(out)
    }

    /// Sends pool request `index`, (re)connecting if needed; an error is described as
    /// the key it is counted under.
    async fn send(&mut self, index: usize) -> (Result<(), String>, Duration) {
        let started = Instant::now();
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => match Connection::open(self.signer.endpoint().address).await {
                Ok(conn) => slot.insert(conn),
                Err(err) => {
                    // Do not spin on a refused connection; the phase's end bounds this.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return (Err(format!("cannot connect: {err}")), started.elapsed());
                }
            },
        };
        let outcome = match conn.round_trip(&self.pool[index]).await {
            Ok(response) => {
                let close = response.close;
                let outcome = if response.status == 200 {
                    Ok(())
                } else {
                    Err(describe_error(response.status, response.body))
                };
                if close {
                    self.conn = None;
                }
                outcome
            }
            Err(err) => {
                self.conn = None;
                Err(format!("connection error: {err}"))
            }
        };
        (outcome, started.elapsed())
    }
}

/// "HTTP 400: {body}" with the body cut to a readable length.
pub fn describe_error(status: u16, body: &[u8]) -> String {
    const MAX: usize = 400;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("HTTP {status}: {cut}...")
    } else {
        format!("HTTP {status}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_descriptions_are_bounded() {
        assert_eq!(
            describe_error(400, b" {\"__type\":\"X\"} "),
            "HTTP 400: {\"__type\":\"X\"}"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(
            describe_error(500, &long).len(),
            "HTTP 500: ".len() + 400 + 3
        );
    }
}

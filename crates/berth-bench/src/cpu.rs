//! Where the machine's CPU time went during a measurement: the server, the load
//! generator, and everything else. On a small shared machine a figure means little
//! without this.

/// CPU time counters at one instant, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// All ticks of all CPUs, idle included.
    total: u64,
    /// How many CPUs /proc/stat lists.
    cpus: usize,
    /// Non-idle ticks of all CPUs.
    busy: u64,
    /// Ticks of this process.
    bench: u64,
    /// Ticks of the server process, if it is local and known.
    server: Option<u64>,
}

/// CPU used between two snapshots, in cores (1.0 = one CPU busy all the time).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub server: Option<f64>,
    pub bench: f64,
    /// Everything else: other processes and the kernel's own work.
    pub other: f64,
}

impl Snapshot {
    /// Reads /proc; `None` where it cannot be read (not Linux).
    pub fn take(server_pid: Option<u32>) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (total, busy) = parse_cpu_line(stat.lines().next()?)?;
        let cpus = stat
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count()
            .max(1);
        let bench = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        let server = server_pid.and_then(|pid| {
            process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
        });
        Some(Self {
            total,
            cpus,
            busy,
            bench,
            server,
        })
    }

    /// The usage from `self` to `later`.
    pub fn usage_until(&self, later: &Self) -> Option<Usage> {
        let cpus = later.cpus;
        let total = later.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        // Ticks of all CPUs -> cores busy on average.
        let cores = |ticks: u64| ticks as f64 / total as f64 * cpus as f64;
        let busy = later.busy.saturating_sub(self.busy);
        let bench = later.bench.saturating_sub(self.bench);
        let server = match (self.server, later.server) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let other = busy.saturating_sub(bench + server.unwrap_or(0));
        Some(Usage {
            server: server.map(cores),
            bench: cores(bench),
            other: cores(other),
        })
    }
}

/// Cores kept busy by other processes over `period`, measured now: whether the machine
/// is quiet enough to measure on.
pub async fn quiet_check(period: std::time::Duration) -> Option<f64> {
    let before = Snapshot::take(None)?;
    tokio::time::sleep(period).await;
    let after = Snapshot::take(None)?;
    before.usage_until(&after).map(|u| u.other)
}

/// (all ticks, busy ticks) from the aggregate `cpu ...` line of /proc/stat.
fn parse_cpu_line(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Some((total, total - idle))
}

/// utime + stime of a process (all its threads) from its /proc/PID/stat.
fn process_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces: skip past the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the file; the first field after ')' is field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_line() {
        let line = "cpu  100 5 50 800 20 3 2 0 0 0";
        assert_eq!(parse_cpu_line(line), Some((980, 160)));
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5"), None);
    }

    #[test]
    fn process_line_with_odd_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 17 4 0 0 20 0 3 0";
        assert_eq!(process_ticks(stat), Some(21));
    }

    #[test]
    fn usage_splits_busy_time() -> Result<(), String> {
        let a = Snapshot {
            total: 1000,
            cpus: 2,
            busy: 100,
            bench: 10,
            server: Some(50),
        };
        let b = Snapshot {
            total: 1200,
            cpus: 2,
            busy: 280,
            bench: 30,
            server: Some(200),
        };
        let usage = a.usage_until(&b).ok_or("no usage")?;
        assert!((usage.bench - 0.2).abs() < 1e-9);
        assert_eq!(usage.server.map(|s| (s * 100.0).round()), Some(150.0));
        assert!((usage.other - 0.1).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn snapshots_of_this_process() -> Result<(), String> {
        let a = Snapshot::take(Some(std::process::id())).ok_or("no /proc")?;
        let b = Snapshot::take(Some(std::process::id())).ok_or("no /proc")?;
        assert!(b.total >= a.total && b.bench >= a.bench);
        assert!(a.server.is_some());
        assert!(a.cpus >= 1);
        Ok(())
    }
}

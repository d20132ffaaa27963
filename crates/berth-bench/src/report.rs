//! The report: a header naming the machine and the date, and a Markdown table.

use std::fmt::Write;
use std::path::Path;

use crate::cpu::Usage;
use crate::load::PhaseResult;

/// The machine the benchmark ran on, as read from /proc.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: Option<f64>,
}

impl Machine {
    pub fn detect() -> Self {
        let nproc = std::thread::available_parallelism().map_or(1, usize::from);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let memory_gib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let kib: f64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib / (1024.0 * 1024.0))
        });
        Self {
            nproc,
            cpu_model,
            kernel,
            memory_gib,
        }
    }

    pub fn describe(&self) -> String {
        let memory = self
            .memory_gib
            .map(|g| format!(", {g:.0} GiB RAM"))
            .unwrap_or_default();
        format!(
            "nproc {}, {}{memory}, {}",
            self.nproc, self.cpu_model, self.kernel
        )
    }
}

/// The filesystem type holding `path` (the longest matching mount in /proc/mounts).
pub fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let mount_point = fields.next()?.replace("\\040", " ");
            let fs_type = fields.next()?;
            path.starts_with(&mount_point)
                .then(|| (mount_point.len(), fs_type.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs_type)| fs_type)
}

/// Now, as "YYYY-MM-DD HH:MM UTC".
pub fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Microseconds as milliseconds with microsecond precision.
fn ms(micros: u64) -> String {
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

/// A count with thousands separators: 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Other work above this many cores during a measurement makes its figures suspect.
const BUSY_OTHER_CORES: f64 = 0.2;

/// "CPU during DescribeClusters x16: server 1.52 cores, berth-bench 0.41, other 0.03".
pub fn cpu_note(result: &PhaseResult, cpu: &Usage) -> String {
    let phase = format!("{} x{}", result.op.name(), result.concurrency);
    let Some(server) = cpu.server else {
        return format!(
            "CPU during {phase}: berth-bench {:.2} cores, everything else (the server \
             included, if local) {:.2}",
            cpu.bench, cpu.other
        );
    };
    let mut note = format!(
        "CPU during {phase}: server {server:.2} cores, berth-bench {:.2}, other {:.2}",
        cpu.bench, cpu.other
    );
    if cpu.other > BUSY_OTHER_CORES {
        note.push_str(" (**the machine was busy with other work: figures are low**)");
    }
    note
}

/// The Markdown table of the phases.
pub fn table(results: &[PhaseResult]) -> String {
    let mut out = String::new();
    out.push_str(
        "| operation | concurrency | requests | req/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | errors |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for r in results {
        let h = &r.latency;
        let (p50, p90, p99, max) = if h.is_empty() {
            (
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
                "-".to_string(),
            )
        } else {
            (
                ms(h.value_at_quantile(0.50)),
                ms(h.value_at_quantile(0.90)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            )
        };
        let mut errors = thousands(r.errors);
        if r.warmup_errors > 0 {
            let _ = write!(errors, " (+{} in warm-up)", thousands(r.warmup_errors));
        }
        if r.stuck_workers > 0 {
            let _ = write!(errors, " ({} workers stuck)", r.stuck_workers);
        }
        if !r.clean() {
            errors = format!("**{errors}**");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {p50} | {p90} | {p99} | {max} | {errors} |",
            r.op.name(),
            r.concurrency,
            thousands(r.requests),
            thousands(r.rate().round() as u64),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(ms(0), "0.000");
        assert_eq!(ms(1234), "1.234");
        assert_eq!(ms(987), "0.987");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn machine_is_described() {
        let machine = Machine::detect();
        assert!(machine.nproc >= 1);
        assert!(machine.describe().starts_with("nproc "));
    }
}

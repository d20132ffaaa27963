//! A process's memory, from /proc/PID/status.

/// Memory figures of one process, in KiB as the kernel gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Resident set size: what the process has in RAM now.
    pub rss_kib: u64,
    /// The highest RSS so far.
    pub hwm_kib: u64,
    /// Of the RSS: anonymous memory (heap, stacks).
    pub anon_kib: u64,
    /// Of the RSS: file-backed pages (the executable, shared libraries).
    pub file_kib: u64,
    pub threads: u64,
}

impl Status {
    /// Reads /proc/PID/status; `None` if the process is gone or this is not Linux.
    pub fn of(pid: u32) -> Option<Self> {
        parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }
}

fn parse(text: &str) -> Option<Status> {
    let mut status = Status::default();
    let mut seen_rss = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number =
            || -> Option<u64> { value.split_whitespace().next().and_then(|n| n.parse().ok()) };
        match key {
            "VmRSS" => {
                status.rss_kib = number()?;
                seen_rss = true;
            }
            "VmHWM" => status.hwm_kib = number()?,
            "RssAnon" => status.anon_kib = number()?,
            "RssFile" => status.file_kib = number()?,
            "Threads" => status.threads = number()?,
            _ => {}
        }
    }
    seen_rss.then_some(status)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_file() {
        let text = "Name:\tberth\nVmHWM:\t   12000 kB\nVmRSS:\t   10240 kB\n\
                    RssAnon:\t    6000 kB\nRssFile:\t    4240 kB\nThreads:\t4\n";
        let status = parse(text);
        assert_eq!(
            status,
            Some(Status {
                rss_kib: 10240,
                hwm_kib: 12000,
                anon_kib: 6000,
                file_kib: 4240,
                threads: 4
            })
        );
        assert_eq!(mib(10240), "10.0");
        assert_eq!(parse("Name:\tx\n"), None);
    }

    #[test]
    fn this_process() {
        let status = Status::of(std::process::id());
        assert!(status.is_some_and(|s| s.rss_kib > 0 && s.threads >= 1));
    }
}

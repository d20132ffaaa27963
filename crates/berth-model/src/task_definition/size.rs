//! Task size: the task-level `cpu` and `memory` strings and the sizes Fargate offers.
//!
//! ECS takes task CPU as CPU units ("1024") or vCPUs ("1 vCPU", "0.25 vcpu") and task
//! memory as MiB ("2048") or GB ("2 GB", "2GB"), and stores the converted integers.

use super::shapes::TaskDefinition;

/// A task's size, converted to CPU units and MiB; `None` where the task does not
/// give one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskSize {
    pub cpu: Option<u32>,
    pub memory: Option<u32>,
}

impl TaskDefinition {
    /// The task-level CPU units and MiB of a registered definition (stored as
    /// integer strings).
    pub fn size(&self) -> TaskSize {
        TaskSize {
            cpu: self.cpu.as_deref().and_then(parse_task_cpu),
            memory: self.memory.as_deref().and_then(parse_task_memory),
        }
    }
}

/// CPU units in one vCPU.
pub const UNITS_PER_VCPU: u64 = 1024;
/// MiB in one GB (ECS's GB are GiB).
pub const MIB_PER_GB: u64 = 1024;

/// The task CPU range ECS accepts for EC2 and external instances, in CPU units.
pub const TASK_CPU_MIN: u32 = 128;
pub const TASK_CPU_MAX: u32 = 196_608;

/// Parses a task `cpu` value into CPU units: an integer, or a number of vCPUs with
/// the unit `vcpu` (any case, space optional). `None` if it is not one of those or
/// does not come to a whole number of units.
pub fn parse_task_cpu(text: &str) -> Option<u32> {
    parse_with_units(text, &[("vcpu", UNITS_PER_VCPU)])
}

/// Parses a task `memory` value into MiB: an integer, or a number with the unit
/// `GB` (also `GiB`, `MB`, `MiB`; any case, space optional). `None` if it is not
/// one of those or does not come to a whole number of MiB.
pub fn parse_task_memory(text: &str) -> Option<u32> {
    parse_with_units(
        text,
        &[
            ("gib", MIB_PER_GB),
            ("gb", MIB_PER_GB),
            ("mib", 1),
            ("mb", 1),
        ],
    )
}

/// A whole number (the base unit), or a decimal number followed by one of `units`
/// (suffix, multiplier). Decimals are computed exactly, in thousandths, so that
/// "0.25 vCPU" is 256 and "0.1 vCPU" (102.4) is refused.
fn parse_with_units(text: &str, units: &[(&str, u64)]) -> Option<u32> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u32>().ok();
    }
    let lower = text.to_ascii_lowercase();
    let (number, multiplier) = units.iter().find_map(|(suffix, multiplier)| {
        lower
            .strip_suffix(suffix)
            .map(|number| (number.trim_end(), *multiplier))
    })?;
    let thousandths = parse_thousandths(number)?;
    let scaled = thousandths.checked_mul(multiplier)?;
    if scaled % 1000 != 0 {
        return None;
    }
    u32::try_from(scaled / 1000).ok()
}

/// "2" -> 2000, "0.25" -> 250, ".5" -> 500; at most three decimals.
fn parse_thousandths(number: &str) -> Option<u64> {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || fraction.len() > 3 {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut fraction_value: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    for _ in fraction.len()..3 {
        fraction_value *= 10;
    }
    whole.checked_mul(1000)?.checked_add(fraction_value)
}

/// The memory sizes (MiB) Fargate offers with `cpu` units, as (first, last, step);
/// `None` if Fargate has no such CPU size.
pub fn fargate_memory_range(cpu: u32) -> Option<(u32, u32, u32)> {
    const GB: u32 = 1024;
    let range = match cpu {
        256 => (512, 2 * GB, 512),
        512 => (GB, 4 * GB, GB),
        1024 => (2 * GB, 8 * GB, GB),
        2048 => (4 * GB, 16 * GB, GB),
        4096 => (8 * GB, 30 * GB, GB),
        8192 => (16 * GB, 60 * GB, 4 * GB),
        16384 => (32 * GB, 120 * GB, 8 * GB),
        _ => return None,
    };
    Some(range)
}

/// Whether Fargate offers a task of `cpu` units and `memory` MiB.
///
/// With 256 CPU units the sizes are 512 MiB, 1 GB and 2 GB: the (512, 2048, 512)
/// range would also allow 1536, which Fargate does not offer.
pub fn is_fargate_size(cpu: u32, memory: u32) -> bool {
    if cpu == 256 {
        return matches!(memory, 512 | 1024 | 2048);
    }
    match fargate_memory_range(cpu) {
        Some((first, last, step)) => {
            (first..=last).contains(&memory) && (memory - first).is_multiple_of(step)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_in_units_or_vcpus() {
        assert_eq!(parse_task_cpu("256"), Some(256));
        assert_eq!(parse_task_cpu(" 1024 "), Some(1024));
        assert_eq!(parse_task_cpu("1 vCPU"), Some(1024));
        assert_eq!(parse_task_cpu("1vcpu"), Some(1024));
        assert_eq!(parse_task_cpu("0.25 vcpu"), Some(256));
        assert_eq!(parse_task_cpu(".5 VCPU"), Some(512));
        assert_eq!(parse_task_cpu("16 vCPU"), Some(16384));
        assert_eq!(parse_task_cpu("0.125 vCPU"), Some(128));
    }

    #[test]
    fn cpu_refusals() {
        for text in [
            "",
            "vcpu",
            "1 cpu",
            "-256",
            "1.5",
            "0.1 vCPU",
            "1e3",
            "abc",
            "1 GB",
            "99999999999",
        ] {
            assert_eq!(parse_task_cpu(text), None, "{text}");
        }
    }

    #[test]
    fn memory_in_mib_or_gb() {
        assert_eq!(parse_task_memory("512"), Some(512));
        assert_eq!(parse_task_memory("1 GB"), Some(1024));
        assert_eq!(parse_task_memory("1GB"), Some(1024));
        assert_eq!(parse_task_memory("0.5 GB"), Some(512));
        assert_eq!(parse_task_memory("2 gb"), Some(2048));
        assert_eq!(parse_task_memory("3GiB"), Some(3072));
        assert_eq!(parse_task_memory("512 MiB"), Some(512));
        assert_eq!(parse_task_memory("512MB"), Some(512));
    }

    #[test]
    fn memory_refusals() {
        for text in ["", "GB", "1 TB", "0.0001 GB", "1.5", "x GB", "1 vCPU"] {
            assert_eq!(parse_task_memory(text), None, "{text}");
        }
    }

    #[test]
    fn fargate_sizes() {
        assert!(is_fargate_size(256, 512));
        assert!(is_fargate_size(256, 2048));
        assert!(!is_fargate_size(256, 1536));
        assert!(!is_fargate_size(256, 4096));
        assert!(is_fargate_size(512, 1024));
        assert!(is_fargate_size(512, 4096));
        assert!(!is_fargate_size(512, 512));
        assert!(is_fargate_size(1024, 2048));
        assert!(is_fargate_size(1024, 8192));
        assert!(!is_fargate_size(1024, 9216));
        assert!(is_fargate_size(2048, 16384));
        assert!(is_fargate_size(4096, 30720));
        assert!(!is_fargate_size(4096, 31744));
        assert!(is_fargate_size(8192, 16384));
        assert!(is_fargate_size(8192, 20480));
        assert!(!is_fargate_size(8192, 17408));
        assert!(is_fargate_size(8192, 61440));
        assert!(is_fargate_size(16384, 32768));
        assert!(is_fargate_size(16384, 40960));
        assert!(!is_fargate_size(16384, 36864));
        assert!(is_fargate_size(16384, 122880));
        assert!(!is_fargate_size(128, 512));
        assert!(!is_fargate_size(3072, 8192));
    }
}

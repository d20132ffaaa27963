//! The arithmetic of task limits, as ECS's agent does it on Linux: the task's CPU
//! units become a CFS quota over a fixed period, its MiB a hard memory limit.

use crate::runtime::TaskLimits;

/// The CFS period task quotas are expressed over (Linux's default, and ECS's).
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts.
pub const MIN_CFS_QUOTA_US: u64 = 1_000;
/// CPU units in one vCPU.
pub const CPU_UNITS_PER_VCPU: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The CFS quota (microseconds per `period_us`) of `cpu_units`: the share of one CPU
/// that `cpu_units / 1024` vCPUs are, over the period, never below the kernel's
/// minimum.
pub fn cfs_quota_us(cpu_units: u32, period_us: u64) -> u64 {
    (u64::from(cpu_units).saturating_mul(period_us) / CPU_UNITS_PER_VCPU).max(MIN_CFS_QUOTA_US)
}

/// The hard memory limit of `mib` MiB, in bytes.
pub fn memory_bytes(mib: u32) -> u64 {
    u64::from(mib) * MIB
}

/// The values written to a task cgroup: `None` where the task sets no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupValues {
    pub memory_bytes: Option<u64>,
    /// (quota, period), microseconds.
    pub cfs: Option<(u64, u64)>,
}

impl CgroupValues {
    pub fn of(limits: &TaskLimits) -> Self {
        Self {
            memory_bytes: limits.memory_mib.filter(|m| *m > 0).map(memory_bytes),
            cfs: limits
                .cpu_units
                .filter(|u| *u > 0)
                .map(|units| (cfs_quota_us(units, CFS_PERIOD_US), CFS_PERIOD_US)),
        }
    }

    /// cgroup v2's `cpu.max`: "quota period".
    pub fn cpu_max(&self) -> Option<String> {
        self.cfs.map(|(quota, period)| format!("{quota} {period}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_units_become_a_share_of_the_period() {
        assert_eq!(cfs_quota_us(1024, CFS_PERIOD_US), 100_000);
        assert_eq!(cfs_quota_us(256, CFS_PERIOD_US), 25_000);
        assert_eq!(cfs_quota_us(512, CFS_PERIOD_US), 50_000);
        assert_eq!(cfs_quota_us(2048, CFS_PERIOD_US), 200_000);
        assert_eq!(cfs_quota_us(196_608, CFS_PERIOD_US), 19_200_000);
        // 0.1 vCPU-ish: truncated like ECS's agent.
        assert_eq!(cfs_quota_us(100, CFS_PERIOD_US), 9_765);
        assert_eq!(cfs_quota_us(128, 50_000), 6_250);
    }

    #[test]
    fn tiny_cpu_is_raised_to_the_kernel_minimum() {
        assert_eq!(cfs_quota_us(1, CFS_PERIOD_US), MIN_CFS_QUOTA_US);
        assert_eq!(cfs_quota_us(10, CFS_PERIOD_US), MIN_CFS_QUOTA_US);
        assert_eq!(cfs_quota_us(11, CFS_PERIOD_US), 1_074);
    }

    #[test]
    fn memory_is_mebibytes() {
        assert_eq!(memory_bytes(64), 67_108_864);
        assert_eq!(memory_bytes(1), 1 << 20);
        assert_eq!(memory_bytes(u32::MAX), u64::from(u32::MAX) << 20);
    }

    #[test]
    fn values_leave_out_what_the_task_does_not_set() {
        let both = CgroupValues::of(&TaskLimits {
            cpu_units: Some(256),
            memory_mib: Some(512),
        });
        assert_eq!(both.memory_bytes, Some(512 << 20));
        assert_eq!(both.cfs, Some((25_000, CFS_PERIOD_US)));
        assert_eq!(both.cpu_max().as_deref(), Some("25000 100000"));

        let memory_only = CgroupValues::of(&TaskLimits {
            cpu_units: None,
            memory_mib: Some(64),
        });
        assert_eq!(memory_only.cfs, None);
        assert_eq!(memory_only.cpu_max(), None);

        let zeros = CgroupValues::of(&TaskLimits {
            cpu_units: Some(0),
            memory_mib: Some(0),
        });
        assert_eq!(zeros.memory_bytes, None);
        assert_eq!(zeros.cfs, None);
    }
}

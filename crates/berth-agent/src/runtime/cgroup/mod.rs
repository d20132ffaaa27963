//! Task cgroups: the task-level `cpu` and `memory` of a task definition enforced as
//! one limit on all of the task's containers, as ECS's agent does on Linux. The task
//! gets a cgroup of its own, `/berth/<task id>`, with the memory limit and the CFS
//! quota of the task; each of its containers is created with that cgroup as its
//! cgroup parent, so the containers' own cgroups nest under it and share its limits.
//! The cgroup is removed once the task's containers are.
//!
//! - [`limits`]: the arithmetic (CPU units to CFS quota, MiB to bytes);
//! - [`mountinfo`]: where the hierarchies are mounted;
//! - [`layout`]: which host layouts berth can work with, and the file operations.
//!
//! Docker's `cgroupfs` driver takes a cgroup path as cgroup parent and creates what is
//! missing, on cgroup v1 and v2 alike. Its `systemd` driver wants a slice, which
//! systemd manages; berth does not create slices, so on such hosts (and hosts whose
//! hierarchies it cannot write) tasks run with their containers' own limits only.

pub mod layout;
pub mod limits;
pub mod mountinfo;

use std::io::ErrorKind;
use std::path::PathBuf;

pub use layout::{Layout, Unsupported};
pub use limits::CgroupValues;

/// The cgroup every task cgroup is created under.
pub const PARENT: &str = "berth";

/// What can go wrong with a task cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:?} cannot name a cgroup")]
    InvalidTaskId(String),
    #[error("the {0} controller is not available in {1}")]
    MissingController(&'static str, String),
}

impl CgroupError {
    /// Whether trying again later may succeed (a process still leaving the cgroup).
    pub fn is_busy(&self) -> bool {
        matches!(self, CgroupError::Io { source, .. }
            if matches!(source.kind(), ErrorKind::ResourceBusy | ErrorKind::DirectoryNotEmpty))
    }
}

/// The cgroup of the task `task_id`, as Docker's cgroupfs driver takes it
/// (`/berth/<task id>`); `None` if the id cannot be a cgroup name.
pub fn task_cgroup_path(task_id: &str) -> Option<String> {
    valid_name(task_id).then(|| format!("/{PARENT}/{task_id}"))
}

/// One path component, not `.` or `..`, without NULs.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && name.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_cgroups_are_named_after_the_task() {
        assert_eq!(
            task_cgroup_path("0f3c8a2e9b5d4f6a8c1e2b3d4f5a6b7c").as_deref(),
            Some("/berth/0f3c8a2e9b5d4f6a8c1e2b3d4f5a6b7c")
        );
        assert_eq!(
            task_cgroup_path("a-b_c.1").as_deref(),
            Some("/berth/a-b_c.1")
        );
        for bad in ["", ".", "..", "a/b", "/a", "a\0b"] {
            assert_eq!(task_cgroup_path(bad), None, "{bad:?}");
        }
        assert_eq!(task_cgroup_path(&"x".repeat(256)), None);
    }

    #[test]
    fn busy_is_ebusy_only() {
        let busy = CgroupError::Io {
            path: PathBuf::from("/x"),
            source: std::io::Error::from_raw_os_error(16),
        };
        assert!(busy.is_busy());
        let missing = CgroupError::Io {
            path: PathBuf::from("/x"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!missing.is_busy());
        assert!(!CgroupError::InvalidTaskId(String::new()).is_busy());
    }
}

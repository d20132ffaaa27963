//! The host's cgroup layout as far as task cgroups go, and the file operations that
//! create, limit and remove them. Synchronous: cgroup files are kernel memory, never
//! waiting on a disk, so the calls return at once and async callers make them inline
//! (the blocking pool's threads would outlive them and cost the agent memory).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::mountinfo::{CgroupMount, MountKind};
use super::{CgroupError, CgroupValues, PARENT, valid_name};

/// Where task cgroups are made on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: one hierarchy per controller (or group of controllers).
    V1 {
        /// The hierarchy of the memory controller.
        memory: PathBuf,
        /// The hierarchy of the cpu controller (CFS bandwidth).
        cpu: PathBuf,
        /// Every hierarchy (including a hybrid host's unified one): Docker creates the
        /// task's cgroup in each of them, so it is removed from each of them.
        all: Vec<PathBuf>,
    },
    /// cgroup v2: one unified hierarchy.
    V2 { root: PathBuf },
}

/// Why this host cannot have task cgroups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

impl Layout {
    /// The layout for Docker's cgroup `driver` and cgroup `version` (as `docker info`
    /// gives them) and the cgroup mounts the agent sees.
    pub fn detect(
        driver: &str,
        version: &str,
        mounts: &[CgroupMount],
    ) -> Result<Layout, Unsupported> {
        match driver {
            "cgroupfs" | "" => {}
            "systemd" => {
                return Err(Unsupported(
                    "Docker uses the systemd cgroup driver, whose cgroup parents are systemd \
                     slices that berth does not manage"
                        .to_owned(),
                ));
            }
            other => {
                return Err(Unsupported(format!(
                    "Docker's cgroup driver is {other:?}, not cgroupfs"
                )));
            }
        }
        // A hierarchy mounted from below its root (a cgroup namespace, a container)
        // is not where Docker's cgroup paths start.
        let host_root = |m: &&CgroupMount| m.root == "/";
        match version {
            "2" => mounts
                .iter()
                .filter(host_root)
                .find(|m| m.kind == MountKind::V2)
                .map(|m| Layout::V2 {
                    root: m.mount_point.clone(),
                })
                .ok_or_else(|| {
                    Unsupported(
                        "no cgroup v2 hierarchy is mounted at its root for the agent".to_owned(),
                    )
                }),
            "1" | "" => {
                let find = |controller: &str| {
                    let found = mounts.iter().find(|m| m.has_controller(controller));
                    match found {
                        Some(m) if m.root == "/" => Ok(m.mount_point.clone()),
                        Some(m) => Err(Unsupported(format!(
                            "the agent sees the {controller} hierarchy from {} (a cgroup \
                             namespace?), not from its root",
                            m.root
                        ))),
                        None => Err(Unsupported(format!(
                            "no cgroup v1 hierarchy has the {controller} controller"
                        ))),
                    }
                };
                Ok(Layout::V1 {
                    memory: find("memory")?,
                    cpu: find("cpu")?,
                    all: mounts
                        .iter()
                        .filter(host_root)
                        .map(|m| m.mount_point.clone())
                        .collect(),
                })
            }
            other => Err(Unsupported(format!("unknown cgroup version {other:?}"))),
        }
    }

    /// Makes sure the parent of task cgroups exists (and, on v2, hands the memory and
    /// cpu controllers down to it): a host where this fails cannot have task cgroups.
    pub fn prepare(&self) -> Result<(), CgroupError> {
        match self {
            Layout::V1 { memory, cpu, .. } => {
                mkdir_all(&memory.join(PARENT))?;
                mkdir_all(&cpu.join(PARENT))
            }
            Layout::V2 { root } => {
                enable_controllers(root)?;
                let parent = root.join(PARENT);
                mkdir_all(&parent)?;
                enable_controllers(&parent)
            }
        }
    }

    /// Creates the cgroup of `task_id` (or finds it) and sets its limits.
    pub fn create(&self, task_id: &str, values: &CgroupValues) -> Result<(), CgroupError> {
        if !valid_name(task_id) {
            return Err(CgroupError::InvalidTaskId(task_id.to_owned()));
        }
        self.prepare()?;
        let result = self.create_prepared(task_id, values);
        if result.is_err() {
            // Leave nothing half made; the error is what matters.
            let _ = self.remove(task_id);
        }
        result
    }

    fn create_prepared(&self, task_id: &str, values: &CgroupValues) -> Result<(), CgroupError> {
        match self {
            Layout::V1 { memory, cpu, .. } => {
                let memory_dir = memory.join(PARENT).join(task_id);
                mkdir_all(&memory_dir)?;
                if let Some(bytes) = values.memory_bytes {
                    // Old kernels let a cgroup not count its children: make it count them
                    // (possible only while it has none; recent kernels always do).
                    let hierarchy = memory_dir.join("memory.use_hierarchy");
                    if fs::read_to_string(&hierarchy).is_ok_and(|v| v.trim() == "0") {
                        let _ = write(&hierarchy, "1");
                    }
                    write(
                        &memory_dir.join("memory.limit_in_bytes"),
                        &bytes.to_string(),
                    )?;
                }
                let cpu_dir = cpu.join(PARENT).join(task_id);
                mkdir_all(&cpu_dir)?;
                if let Some((quota, period)) = values.cfs {
                    write(&cpu_dir.join("cpu.cfs_period_us"), &period.to_string())?;
                    write(&cpu_dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                Ok(())
            }
            Layout::V2 { root } => {
                let dir = root.join(PARENT).join(task_id);
                mkdir_all(&dir)?;
                if let Some(bytes) = values.memory_bytes {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                }
                if let Some(cpu_max) = values.cpu_max() {
                    write(&dir.join("cpu.max"), &cpu_max)?;
                }
                Ok(())
            }
        }
    }

    /// Removes the cgroup of `task_id` from every hierarchy, with whatever cgroups are
    /// left below it. Removing one that does not exist is fine; one that still holds
    /// processes fails as busy ([`CgroupError::is_busy`]).
    pub fn remove(&self, task_id: &str) -> Result<(), CgroupError> {
        if !valid_name(task_id) {
            return Err(CgroupError::InvalidTaskId(task_id.to_owned()));
        }
        let hierarchies: Vec<&PathBuf> = match self {
            Layout::V1 { memory, cpu, all } => {
                let mut hierarchies: Vec<&PathBuf> = all.iter().collect();
                for needed in [memory, cpu] {
                    if !hierarchies.contains(&needed) {
                        hierarchies.push(needed);
                    }
                }
                hierarchies
            }
            Layout::V2 { root } => vec![root],
        };
        let mut first_error = None;
        for hierarchy in hierarchies {
            if let Err(error) = remove_tree(&hierarchy.join(PARENT).join(task_id)) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The directories of `task_id`'s cgroup that carry its limits (memory first).
    pub fn limit_dirs(&self, task_id: &str) -> Vec<PathBuf> {
        match self {
            Layout::V1 { memory, cpu, .. } => vec![
                memory.join(PARENT).join(task_id),
                cpu.join(PARENT).join(task_id),
            ],
            Layout::V2 { root } => vec![root.join(PARENT).join(task_id)],
        }
    }
}

/// Hands the memory and cpu controllers of `dir` down to its children (cgroup v2),
/// when `dir` has them and does not already.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read(&dir.join("cgroup.controllers"))?;
    let enabled = read(&dir.join("cgroup.subtree_control")).unwrap_or_default();
    let mut missing = Vec::new();
    for controller in ["cpu", "memory"] {
        if !available.split_whitespace().any(|c| c == controller) {
            return Err(CgroupError::MissingController(
                controller,
                dir.display().to_string(),
            ));
        }
        if !enabled.split_whitespace().any(|c| c == controller) {
            missing.push(format!("+{controller}"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &missing.join(" "))
}

/// Removes `dir` and the directories below it, deepest first. Cgroup directories go
/// with their control files; a missing `dir` is fine.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::Io {
            path: dir.to_owned(),
            source,
        }),
    }
}

fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(dir).map_err(|source| CgroupError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TaskLimits;
    use crate::runtime::cgroup::mountinfo::cgroup_mounts;

    const HYBRID: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2: &str = "26 23 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

    fn values(cpu: Option<u32>, memory: Option<u32>) -> CgroupValues {
        CgroupValues::of(&TaskLimits {
            cpu_units: cpu,
            memory_mib: memory,
        })
    }

    #[test]
    fn v1_cgroupfs_uses_the_memory_and_cpu_hierarchies_and_removes_from_all() {
        let layout = Layout::detect("cgroupfs", "1", &cgroup_mounts(HYBRID));
        let Ok(Layout::V1 { memory, cpu, all }) = layout else {
            panic!("not v1: {layout:?}");
        };
        assert_eq!(memory, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(cpu, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(all.len(), 5, "{all:?}");
        assert!(all.contains(&PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn v2_uses_the_unified_hierarchy() {
        assert_eq!(
            Layout::detect("cgroupfs", "2", &cgroup_mounts(V2)),
            Ok(Layout::V2 {
                root: PathBuf::from("/sys/fs/cgroup")
            })
        );
        // A hybrid host's empty unified hierarchy does not make Docker use v2.
        assert!(matches!(
            Layout::detect("cgroupfs", "1", &cgroup_mounts(HYBRID)),
            Ok(Layout::V1 { .. })
        ));
    }

    #[test]
    fn unsupported_hosts_say_why() {
        let systemd = Layout::detect("systemd", "2", &cgroup_mounts(V2));
        assert!(systemd.is_err_and(|u| u.0.contains("systemd")));
        assert!(Layout::detect("none", "1", &cgroup_mounts(HYBRID)).is_err());
        assert!(Layout::detect("cgroupfs", "2", &cgroup_mounts(HYBRID)).is_ok());
        assert!(Layout::detect("cgroupfs", "2", &[]).is_err());
        assert!(
            Layout::detect("cgroupfs", "1", &cgroup_mounts(V2))
                .is_err_and(|u| u.0.contains("memory"))
        );
        let namespaced = "35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                          32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert!(
            Layout::detect("cgroupfs", "1", &cgroup_mounts(namespaced))
                .is_err_and(|u| u.0.contains("/docker/abc"))
        );
        assert!(Layout::detect("cgroupfs", "3", &cgroup_mounts(V2)).is_err());
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// A directory standing in for a hierarchy (plain files stand in for the
    /// kernel's control files).
    fn hierarchy(base: &Path, name: &str) -> std::io::Result<PathBuf> {
        let dir = base.join(name);
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn read_value(path: PathBuf) -> Result<String, CgroupError> {
        Ok(read(&path)?.trim().to_owned())
    }

    #[test]
    fn v1_writes_the_memory_limit_and_the_cfs_quota() -> TestResult {
        let base = tempfile::tempdir()?;
        let memory = hierarchy(base.path(), "memory")?;
        let cpu = hierarchy(base.path(), "cpu")?;
        let layout = Layout::V1 {
            memory: memory.clone(),
            cpu: cpu.clone(),
            all: vec![memory.clone(), cpu.clone()],
        };
        layout.create("t1", &values(Some(512), Some(64)))?;
        let task = |h: &Path, file: &str| read_value(h.join("berth/t1").join(file));
        assert_eq!(task(&memory, "memory.limit_in_bytes")?, "67108864");
        assert_eq!(task(&cpu, "cpu.cfs_period_us")?, "100000");
        assert_eq!(task(&cpu, "cpu.cfs_quota_us")?, "50000");

        // Memory only: no quota is written.
        layout.create("t2", &values(None, Some(128)))?;
        assert_eq!(task(&memory, "memory.limit_in_bytes")?, "67108864");
        assert_eq!(
            read_value(memory.join("berth/t2/memory.limit_in_bytes"))?,
            "134217728"
        );
        assert!(!cpu.join("berth/t2/cpu.cfs_quota_us").exists());
        assert_eq!(
            layout.limit_dirs("t2"),
            vec![memory.join("berth/t2"), cpu.join("berth/t2")]
        );
        Ok(())
    }

    #[test]
    fn v2_hands_the_controllers_down_and_writes_memory_max_and_cpu_max() -> TestResult {
        let base = tempfile::tempdir()?;
        let root = hierarchy(base.path(), "unified")?;
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )?;
        fs::write(root.join("cgroup.subtree_control"), "memory pids\n")?;
        let parent = hierarchy(&root, PARENT)?;
        fs::write(parent.join("cgroup.controllers"), "cpu memory pids\n")?;
        fs::write(parent.join("cgroup.subtree_control"), "")?;
        let layout = Layout::V2 { root: root.clone() };
        layout.create("t1", &values(Some(256), Some(64)))?;
        // Only what was missing is enabled.
        assert_eq!(read_value(root.join("cgroup.subtree_control"))?, "+cpu");
        assert_eq!(
            read_value(parent.join("cgroup.subtree_control"))?,
            "+cpu +memory"
        );
        assert_eq!(read_value(parent.join("t1/memory.max"))?, "67108864");
        assert_eq!(read_value(parent.join("t1/cpu.max"))?, "25000 100000");
        Ok(())
    }

    #[test]
    fn v2_without_the_controllers_fails_and_leaves_nothing() -> TestResult {
        let base = tempfile::tempdir()?;
        let root = hierarchy(base.path(), "unified")?;
        fs::write(root.join("cgroup.controllers"), "pids\n")?;
        let layout = Layout::V2 { root: root.clone() };
        let result = layout.create("t1", &values(Some(256), None));
        assert!(
            matches!(result, Err(CgroupError::MissingController("cpu", _))),
            "{result:?}"
        );
        assert!(!root.join("berth/t1").exists());
        Ok(())
    }

    #[test]
    fn remove_takes_the_tree_from_every_hierarchy_and_tolerates_absence() -> TestResult {
        let base = tempfile::tempdir()?;
        let memory = hierarchy(base.path(), "memory")?;
        let cpu = hierarchy(base.path(), "cpu")?;
        let pids = hierarchy(base.path(), "pids")?;
        // Empty directories stand in for cgroups (a real one's files go with it).
        for h in [&memory, &cpu, &pids] {
            fs::create_dir_all(h.join("berth/t1/container-a/nested"))?;
            fs::create_dir_all(h.join("berth/other"))?;
        }
        let layout = Layout::V1 {
            memory: memory.clone(),
            cpu: cpu.clone(),
            all: vec![pids.clone()],
        };
        layout.remove("t1")?;
        for h in [&memory, &cpu, &pids] {
            assert!(!h.join("berth/t1").exists(), "{}", h.display());
            assert!(
                h.join("berth/other").exists(),
                "another task's cgroup stays"
            );
        }
        layout.remove("t1")?;
        assert!(matches!(
            layout.remove(".."),
            Err(CgroupError::InvalidTaskId(_))
        ));
        assert!(matches!(
            layout.create("a/b", &values(Some(1024), None)),
            Err(CgroupError::InvalidTaskId(_))
        ));
        Ok(())
    }
}

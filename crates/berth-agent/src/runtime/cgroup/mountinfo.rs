//! Where the cgroup hierarchies are mounted, from `/proc/self/mountinfo` (proc(5)):
//!
//! ```text
//! 35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
//! (1)(2)(3)  (4)(5)                  (6)         (7)(8)   (9)    (10)
//! ```
//!
//! (4) is the root of the mount within its filesystem, (5) the mount point (with
//! spaces and the like escaped in octal), (7) optional fields ended by `-`, (8) the
//! filesystem type, (10) its super options, which name a v1 hierarchy's controllers.

use std::path::PathBuf;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that is mounted: `/` unless the process sees the
    /// hierarchy through a cgroup namespace or a bind mount of a sub-tree.
    pub root: String,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A cgroup v1 hierarchy with its controllers (`cpu`, `memory`...), or the name
    /// of a named hierarchy (`name=systemd`).
    V1 { controllers: Vec<String> },
    /// The cgroup v2 unified hierarchy.
    V2,
}

impl CgroupMount {
    /// Whether this is a v1 hierarchy with `controller`.
    pub fn has_controller(&self, controller: &str) -> bool {
        match &self.kind {
            MountKind::V1 { controllers } => controllers.iter().any(|c| c == controller),
            MountKind::V2 => false,
        }
    }
}

/// The cgroup mounts listed in a mountinfo file's text, in its order. Lines that are
/// not cgroup mounts, or not well formed, are left out.
pub fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo.lines().filter_map(cgroup_mount).collect()
}

fn cgroup_mount(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().position(|f| *f == "-")?;
    if separator < 6 {
        return None;
    }
    let root = unescape(fields[3]);
    let mount_point = PathBuf::from(unescape(fields[4]));
    let fs_type = *fields.get(separator + 1)?;
    let super_options = fields.get(separator + 3).copied().unwrap_or("");
    let kind = match fs_type {
        "cgroup2" => MountKind::V2,
        "cgroup" => MountKind::V1 {
            controllers: super_options
                .split(',')
                .filter(|o| !o.is_empty() && !is_mount_option(o))
                .map(str::to_owned)
                .collect(),
        },
        _ => return None,
    };
    Some(CgroupMount {
        mount_point,
        root,
        kind,
    })
}

/// Super options of a v1 cgroup mount that are not controllers.
fn is_mount_option(option: &str) -> bool {
    matches!(
        option,
        "rw" | "ro" | "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode"
    ) || option.starts_with("release_agent=")
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = bytes.get(i + 1..i + 4)
            && octal.iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's CI host: v1 controllers plus an empty unified hierarchy.
    const HYBRID: &str = "\
23 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v1_hierarchies_and_the_unified_one() {
        let mounts = cgroup_mounts(HYBRID);
        assert_eq!(mounts.len(), 5);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert!(mounts[0].has_controller("cpu"));
        assert!(!mounts[1].has_controller("cpu"));
        assert!(mounts[1].has_controller("cpuacct"));
        assert!(mounts[2].has_controller("memory"));
        assert_eq!(
            mounts[3].kind,
            MountKind::V1 {
                controllers: vec!["name=systemd".to_owned()]
            }
        );
        assert_eq!(mounts[4].kind, MountKind::V2);
        assert!(mounts.iter().all(|m| m.root == "/"));
    }

    #[test]
    fn combined_controllers_optional_fields_and_namespaced_roots() {
        let text = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 master:3 - cgroup cgroup rw,cpu,cpuacct
29 25 0:25 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,clone_children
";
        let mounts = cgroup_mounts(text);
        assert_eq!(
            mounts[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert!(mounts[0].has_controller("cpu") && mounts[0].has_controller("cpuacct"));
        assert_eq!(mounts[1].root, "/docker/abc");
        assert_eq!(
            mounts[1].kind,
            MountKind::V1 {
                controllers: vec!["memory".to_owned()]
            }
        );
    }

    #[test]
    fn pure_v2_and_escaped_mount_points() {
        let text = "\
26 23 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
99 23 0:40 / /mnt/my\\040cgroups rw - cgroup2 none rw
";
        let mounts = cgroup_mounts(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].kind, MountKind::V2);
        assert_eq!(mounts[0].mount_point, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(mounts[1].mount_point, PathBuf::from("/mnt/my cgroups"));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert!(cgroup_mounts("").is_empty());
        assert!(cgroup_mounts("garbage\n1 2 3 - cgroup\n").is_empty());
        assert_eq!(unescape("a\\134b\\0"), "a\\b\\0");
    }
}

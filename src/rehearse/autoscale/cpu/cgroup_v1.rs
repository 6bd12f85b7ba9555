//! The cgroup v1 side of the CPU metering: where the `cpu` and `cpuacct` controllers are
//! mounted, the quota a capacity becomes, and removing groups (ours, or ones a killed
//! rehearsal left).

use anyhow::{anyhow, Context, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The CFS period: 100 ms, the kernel's default.
pub(super) const PERIOD_US: u64 = 100_000;
/// `cpu.shares` of a rehearsal's group (the default is 1024 per process or group).
pub(super) const SHARES: u64 = 8192;
/// Name prefix of a rehearsal's group directory: `bookstore-rehearsal-<pid>-<n>`.
pub(super) const PREFIX: &str = "bookstore-rehearsal-";

/// Where the cgroup v1 controllers are mounted (the same directory when co-mounted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mounts {
    /// The `cpu` controller's mount point (quota).
    pub cpu: PathBuf,
    /// The `cpuacct` controller's mount point (usage).
    pub cpuacct: PathBuf,
}

/// Finds the cgroup v1 `cpu` and `cpuacct` mounts in `/proc/self/mountinfo` text.
pub fn v1_mounts(mountinfo: &str) -> Option<V1Mounts> {
    let mut cpu = None;
    let mut cpuacct = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        if r.next() != Some("cgroup") {
            continue;
        }
        let (_source, opts) = (r.next(), r.next().unwrap_or(""));
        let Some(point) = left.split_whitespace().nth(4) else {
            continue;
        };
        let point = PathBuf::from(unescape_mount(point));
        for o in opts.split(',') {
            match o {
                "cpu" => cpu = Some(point.clone()),
                "cpuacct" => cpuacct = Some(point.clone()),
                _ => {}
            }
        }
    }
    Some(V1Mounts {
        cpu: cpu?,
        cpuacct: cpuacct?,
    })
}

/// mountinfo escapes spaces and the like as `\040`.
fn unescape_mount(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

pub(super) fn quota_us(cores: f64) -> u64 {
    ((cores * PERIOD_US as f64).round() as u64).max(1000)
}

pub(super) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write {value} to {}", path.display()))
}

pub(super) fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| anyhow!("{} contains a NUL byte", p.display()))
}

/// Removes the group `dir` and its child groups, first moving any process left in them to the
/// hierarchy's root `root` (a group with processes in it cannot be removed).
pub(super) fn remove_group_tree(dir: &Path, root: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_group_tree(&e.path(), root);
            }
        }
    }
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(root.join("cgroup.procs"), pid);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes the groups of rehearsals whose process is gone (killed with SIGKILL).
pub(super) fn remove_stale(mount: &Path) {
    let Ok(entries) = std::fs::read_dir(mount) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_group_tree(&e.path(), mount);
        }
    }
}

/// Writes `n` in decimal into `buf`; returns the digits (no allocation: used after fork).
pub(super) fn pid_digits(mut n: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separate_and_comounted_v1_controllers() {
        let separate = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n\
                        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v1_mounts(separate),
            Some(V1Mounts {
                cpu: "/sys/fs/cgroup/cpu".into(),
                cpuacct: "/sys/fs/cgroup/cpuacct".into()
            })
        );
        let together = "30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct\n";
        let m = v1_mounts(together).unwrap();
        assert_eq!(m.cpu, m.cpuacct);
        assert_eq!(m.cpu, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        let v2_only = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(v1_mounts(v2_only), None);
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }

    #[test]
    fn writes_pids_without_allocating() {
        let mut buf = [0u8; 12];
        assert_eq!(pid_digits(0, &mut buf), b"0");
        assert_eq!(pid_digits(4_194_304, &mut buf), b"4194304");
    }
}

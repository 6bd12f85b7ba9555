//! One instance's CPU group: its processes join it before they run, and its usage is read
//! from the group (or measured from `/proc` when no cgroup could be made).

use super::cgroup_v1::{pid_digits, remove_group_tree, V1Mounts};
use super::proc_stat::proc_tree_cpu;
use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug)]
pub(super) enum Kind {
    V1 {
        mounts: V1Mounts,
        cpu: PathBuf,
        cpuacct: PathBuf,
        /// `cgroup.procs` of both controllers, for the child to write its pid into.
        procs: [CString; 2],
    },
    Proc {
        roots: Mutex<Vec<u32>>,
    },
}

/// One instance's CPU group.
#[derive(Debug)]
pub struct CpuGroup {
    pub(super) name: String,
    pub(super) cores: f64,
    pub(super) kind: Kind,
}

impl CpuGroup {
    /// The group's name (the instance id).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instance's capacity in CPUs.
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// Makes `cmd`'s process join this group between fork and exec (cgroups; nothing to do when
    /// measured only: call [`CpuGroup::track`] with its pid instead).
    pub fn prepare(&self, cmd: &mut Command) {
        if let Kind::V1 { procs, .. } = &self.kind {
            let procs = procs.clone();
            // SAFETY: only async-signal-safe calls (getpid, open, write, close) on memory
            // allocated before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    let mut buf = [0u8; 12];
                    let digits = pid_digits(libc::getpid() as u32, &mut buf);
                    for p in &procs {
                        let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                        if fd < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        let n = libc::write(fd, digits.as_ptr().cast(), digits.len());
                        let err = std::io::Error::last_os_error();
                        libc::close(fd);
                        if n < 0 {
                            return Err(err);
                        }
                    }
                    Ok(())
                });
            }
        }
    }

    /// Counts the process `pid` (and everything it forks) in the group. With cgroups the process
    /// joined already ([`CpuGroup::prepare`]); this checks that it did.
    pub fn track(&self, pid: u32) -> Result<()> {
        match &self.kind {
            Kind::V1 { cpu, .. } => {
                let procs = std::fs::read_to_string(cpu.join("cgroup.procs")).unwrap_or_default();
                if !procs.split_whitespace().any(|p| p == pid.to_string())
                    && Path::new(&format!("/proc/{pid}")).exists()
                {
                    bail!(
                        "process {pid} is not in the CPU group {}: spawn it with CpuGroup::prepare",
                        cpu.display()
                    );
                }
                Ok(())
            }
            Kind::Proc { roots } => {
                roots.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
                Ok(())
            }
        }
    }

    /// Cumulative CPU time of the instance's processes.
    pub fn usage(&self) -> Result<Duration> {
        match &self.kind {
            Kind::V1 { cpuacct, .. } => {
                let p = cpuacct.join("cpuacct.usage");
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                let ns: u64 = text
                    .trim()
                    .parse()
                    .with_context(|| format!("{} holds {text:?}, not a number", p.display()))?;
                Ok(Duration::from_nanos(ns))
            }
            Kind::Proc { roots } => {
                let roots = roots.lock().unwrap_or_else(|e| e.into_inner()).clone();
                Ok(proc_tree_cpu(&roots))
            }
        }
    }

    /// The group's directory in the `cpu` hierarchy (`None` when measured only).
    pub fn location(&self) -> Option<&Path> {
        match &self.kind {
            Kind::V1 { cpu, .. } => Some(cpu),
            Kind::Proc { .. } => None,
        }
    }

    /// Times the quota held the group back so far (`nr_throttled` of `cpu.stat`); `None` when
    /// measured only.
    pub fn throttled_periods(&self) -> Option<u64> {
        let Kind::V1 { cpu, .. } = &self.kind else {
            return None;
        };
        let stat = std::fs::read_to_string(cpu.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        if let Kind::V1 {
            mounts,
            cpu,
            cpuacct,
            ..
        } = &self.kind
        {
            remove_group_tree(cpu, &mounts.cpu);
            if cpuacct != cpu {
                remove_group_tree(cpuacct, &mounts.cpuacct);
            }
        }
    }
}

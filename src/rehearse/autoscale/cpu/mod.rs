//! Each instance's CPU: a stated capacity (`--instance-cpu CORES`), enforced and measured with
//! a cgroup v1 `cpu` + `cpuacct` child group per instance (CFS quota `CORES x 100 ms` per
//! 100 ms, usage from `cpuacct.usage`). Every process of the instance (the shop and its nginx,
//! as an EC2 instance's CPU includes both) joins the group between fork and exec, so nothing it
//! forks later escapes. Where the hierarchy is not writable (not root, a cgroup v2-only
//! machine) the capacity is measured only, from `/proc/PID/stat` of the process trees, and
//! [`CpuMeter::describe`] says so. Groups are removed when dropped (also after a failure), and
//! groups left by a killed rehearsal are removed by the next one.
//!
//! API (stable): [`CpuMeter::new`] once per rehearsal, [`CpuMeter::group`] per instance,
//! [`CpuGroup::prepare`] on each `Command` before spawning, [`CpuGroup::track`] with each
//! spawned pid, [`CpuGroup::usage`] for cumulative CPU time, [`UsageSampler`] for utilization.

mod cgroup_v1;
mod group;
mod proc_stat;

use anyhow::{anyhow, bail, Context, Result};
use cgroup_v1::{
    cstring, quota_us, remove_group_tree, remove_stale, write, PERIOD_US, PREFIX, SHARES,
};
pub use cgroup_v1::{v1_mounts, V1Mounts};
pub use group::CpuGroup;
use group::Kind;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
enum Backend {
    /// `<mount>/bookstore-rehearsal-<pid>-<n>` in each controller.
    V1 {
        mounts: V1Mounts,
        cpu: PathBuf,
        cpuacct: PathBuf,
    },
    /// Measured only, for this reason.
    Proc { reason: String },
}

/// The rehearsal's CPU metering: one per rehearsal.
#[derive(Debug)]
pub struct CpuMeter {
    cores: f64,
    backend: Backend,
}

impl CpuMeter {
    /// Instances of `cores` CPUs each (e.g. 0.25), capped with cgroup v1 quotas where the
    /// machine allows it, measured only otherwise.
    pub fn new(cores: f64) -> Result<CpuMeter> {
        check_cores(cores)?;
        let backend = match Self::v1_backend() {
            Ok(b) => b,
            Err(e) => Backend::Proc {
                reason: format!("{e:#}"),
            },
        };
        Ok(CpuMeter { cores, backend })
    }

    /// Measured only (no quota), for `reason`: what tests use to exercise the fallback.
    pub fn measured_only(cores: f64, reason: &str) -> Result<CpuMeter> {
        check_cores(cores)?;
        Ok(CpuMeter {
            cores,
            backend: Backend::Proc {
                reason: reason.to_string(),
            },
        })
    }

    fn v1_backend() -> Result<Backend> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo")?;
        let m = v1_mounts(&info).ok_or_else(|| {
            anyhow!("no cgroup v1 cpu and cpuacct hierarchy is mounted (a cgroup v2-only machine?)")
        })?;
        // One directory per meter: several rehearsals may run in one process (tests).
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        remove_stale(&m.cpu);
        if m.cpuacct != m.cpu {
            remove_stale(&m.cpuacct);
        }
        let cpu = m.cpu.join(&name);
        let cpuacct = m.cpuacct.join(&name);
        for d in [&cpu, &cpuacct] {
            match std::fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => bail!("cannot create the cgroup {}: {e}", d.display()),
            }
        }
        // Weight of all the rehearsal's instances against the machine's other processes: on a
        // busy machine an instance still gets the capacity its quota grants (EC2 guarantees an
        // instance its vCPUs); the quotas bound what they take together.
        let _ = std::fs::write(cpu.join("cpu.shares"), SHARES.to_string());
        if !cpu.join("cpu.cfs_quota_us").exists() || !cpuacct.join("cpuacct.usage").exists() {
            let _ = std::fs::remove_dir(&cpu);
            let _ = std::fs::remove_dir(&cpuacct);
            bail!(
                "the cgroup {} has no cpu.cfs_quota_us or cpuacct.usage",
                cpu.display()
            );
        }
        Ok(Backend::V1 {
            mounts: m,
            cpu,
            cpuacct,
        })
    }

    /// Each instance's capacity in CPUs.
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// True when the capacity is enforced by a quota (not only measured).
    pub fn enforced(&self) -> bool {
        matches!(self.backend, Backend::V1 { .. })
    }

    /// How the capacity is enforced and measured, for the printed differences.
    pub fn describe(&self) -> String {
        let cores = self.cores;
        match &self.backend {
            Backend::V1 { cpu, .. } => format!(
                "{cores} CPU of this machine per instance, enforced by a cgroup v1 CFS quota \
                 ({} us per {PERIOD_US} us, {}/<instance>, cpu.shares {SHARES} so that a busy \
                 machine does not take it away) and measured with cpuacct.usage; \
                 utilization = CPU time / ({cores} x elapsed time)",
                quota_us(cores),
                cpu.display()
            ),
            Backend::Proc { reason } => format!(
                "{cores} CPU of this machine per instance, MEASURED ONLY (not enforced: {reason}) \
                 from /proc/PID/stat of the instance's processes; an instance may use more than \
                 its capacity, so utilization can exceed 100%"
            ),
        }
    }

    /// A group for one instance, named `name` (a directory name: letters, digits, `-`, `_`).
    pub fn group(&self, name: &str) -> Result<CpuGroup> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            || name.starts_with('.')
        {
            bail!("{name:?} cannot name a CPU group");
        }
        let kind = match &self.backend {
            Backend::V1 {
                mounts,
                cpu,
                cpuacct,
            } => {
                let (cpu, cpuacct) = (cpu.join(name), cpuacct.join(name));
                for d in [&cpu, &cpuacct] {
                    std::fs::create_dir_all(d)
                        .with_context(|| format!("cannot create the cgroup {}", d.display()))?;
                }
                write(&cpu.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(
                    &cpu.join("cpu.cfs_quota_us"),
                    &quota_us(self.cores).to_string(),
                )?;
                Kind::V1 {
                    mounts: mounts.clone(),
                    procs: [
                        cstring(&cpu.join("cgroup.procs"))?,
                        cstring(&cpuacct.join("cgroup.procs"))?,
                    ],
                    cpu,
                    cpuacct,
                }
            }
            Backend::Proc { .. } => Kind::Proc {
                roots: Mutex::new(Vec::new()),
            },
        };
        Ok(CpuGroup {
            name: name.to_string(),
            cores: self.cores,
            kind,
        })
    }
}

impl Drop for CpuMeter {
    fn drop(&mut self) {
        if let Backend::V1 {
            mounts,
            cpu,
            cpuacct,
        } = &self.backend
        {
            remove_group_tree(cpu, &mounts.cpu);
            if cpuacct != cpu {
                remove_group_tree(cpuacct, &mounts.cpuacct);
            }
        }
    }
}

fn check_cores(cores: f64) -> Result<()> {
    if !cores.is_finite() || !(0.01..=1024.0).contains(&cores) {
        bail!("instance CPU capacity {cores} is out of range: give CPUs per instance between 0.01 and 1024, e.g. 0.25");
    }
    Ok(())
}

/// Utilization over successive windows: CPU time used / (capacity x elapsed time).
#[derive(Debug, Clone, Default)]
pub struct UsageSampler {
    last: Option<(Duration, Instant)>,
}

impl UsageSampler {
    /// A sampler with no sample yet.
    pub fn new() -> UsageSampler {
        UsageSampler::default()
    }

    /// Records `usage` at `now`; returns the utilization in percent of `cores` since the
    /// previous sample (`None` for the first one, or when no time passed).
    pub fn sample(&mut self, usage: Duration, now: Instant, cores: f64) -> Option<f64> {
        let prev = self.last.replace((usage, now));
        let (u0, t0) = prev?;
        let elapsed = now.saturating_duration_since(t0).as_secs_f64();
        if elapsed <= 0.0 {
            return None;
        }
        // Measured-only usage can step back when a child exits before its parent reaps it.
        let used = usage.saturating_sub(u0).as_secs_f64();
        Some(100.0 * used / (cores * elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_cpu_time_over_capacity_time() {
        let mut s = UsageSampler::new();
        let t0 = Instant::now();
        assert_eq!(s.sample(Duration::from_millis(100), t0, 0.25), None);
        let u = s
            .sample(
                Duration::from_millis(600),
                t0 + Duration::from_secs(4),
                0.25,
            )
            .unwrap();
        assert!((u - 50.0).abs() < 1e-9, "{u}");
        // A step back (measured only) counts as no work, not negative work.
        let u = s
            .sample(
                Duration::from_millis(500),
                t0 + Duration::from_secs(5),
                0.25,
            )
            .unwrap();
        assert_eq!(u, 0.0);
    }

    #[test]
    fn refuses_silly_capacities_and_group_names() {
        assert!(CpuMeter::measured_only(0.0, "test").is_err());
        assert!(CpuMeter::measured_only(f64::NAN, "test").is_err());
        let m = CpuMeter::measured_only(0.5, "test").unwrap();
        assert!(m.group("../x").is_err());
        assert!(m.describe().contains("MEASURED ONLY (not enforced: test)"));
        assert!(!m.enforced());
    }
}

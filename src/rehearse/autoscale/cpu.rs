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

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The CFS period: 100 ms, the kernel's default.
const PERIOD_US: u64 = 100_000;
/// `cpu.shares` of a rehearsal's group (the default is 1024 per process or group).
const SHARES: u64 = 8192;
/// Name prefix of a rehearsal's group directory: `bookstore-rehearsal-<pid>-<n>`.
const PREFIX: &str = "bookstore-rehearsal-";

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

fn quota_us(cores: f64) -> u64 {
    ((cores * PERIOD_US as f64).round() as u64).max(1000)
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write {value} to {}", path.display()))
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| anyhow!("{} contains a NUL byte", p.display()))
}

/// Removes the group `dir` and its child groups, first moving any process left in them to the
/// hierarchy's root `root` (a group with processes in it cannot be removed).
fn remove_group_tree(dir: &Path, root: &Path) {
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
fn remove_stale(mount: &Path) {
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

#[derive(Debug)]
enum Kind {
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
    name: String,
    cores: f64,
    kind: Kind,
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

/// Writes `n` in decimal into `buf`; returns the digits (no allocation: used after fork).
fn pid_digits(mut n: u32, buf: &mut [u8; 12]) -> &[u8] {
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

/// (pid, ppid, utime + stime + cutime + cstime in ticks) of every process.
fn proc_table() -> Vec<(u32, u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            parse_stat(&stat).map(|(ppid, ticks)| (pid, ppid, ticks))
        })
        .collect()
}

/// (ppid, utime + stime + cutime + cstime) from a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); ppid is field 4, utime..cstime are fields 14..17.
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f
        .get(11..15)?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    Some((ppid, ticks))
}

/// CPU time of the processes `roots` and all their descendants.
fn proc_tree_cpu(roots: &[u32]) -> Duration {
    let table = proc_table();
    let mut members: Vec<u32> = roots.to_vec();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid, _) in &table {
            if members.contains(ppid) && !members.contains(pid) {
                members.push(*pid);
                grew = true;
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = table
        .iter()
        .filter(|(pid, _, _)| members.contains(pid))
        .map(|(_, _, t)| t)
        .sum();
    Duration::from_secs_f64(ticks as f64 / hz)
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
    fn parses_proc_stat_with_awkward_names() {
        let line =
            "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1 0 0 0 7 3 2 1 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(line), Some((4241, 13)));
        let mut buf = [0u8; 12];
        assert_eq!(pid_digits(0, &mut buf), b"0");
        assert_eq!(pid_digits(4_194_304, &mut buf), b"4194304");
    }

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

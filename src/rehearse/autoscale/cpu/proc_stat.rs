//! Measuring only: the CPU time of process trees from `/proc/PID/stat`, where no cgroup can be
//! made.

use std::time::Duration;

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
pub(super) fn proc_tree_cpu(roots: &[u32]) -> Duration {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_awkward_names() {
        let line =
            "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1 0 0 0 7 3 2 1 20 0 1 0 1 0 0";
        assert_eq!(parse_stat(line), Some((4241, 13)));
    }
}

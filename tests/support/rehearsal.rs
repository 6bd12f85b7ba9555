//! What the rehearsal tests check alike: the processes a rehearsal leaves, and rendered files
//! it refuses before anything runs.

use std::path::Path;
use std::process::{Command, Stdio};

/// The command lines of the processes that name `dir` (in their arguments or environment, as
/// the shops do with their uploads directory) or run in it.
pub fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let cwd = std::fs::read_link(e.path().join("cwd")).ok();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let named = cmd.contains(&needle) || String::from_utf8_lossy(&env).contains(&needle);
            (named || cwd.is_some_and(|c| c.starts_with(dir))).then_some(cmd)
        })
        .collect()
}

/// A rendered file the rehearsal cannot use, and what it must say about it.
pub struct BadRendered<'a> {
    /// The case, for the failure messages.
    pub what: &'a str,
    /// `objective2` or `objective3`.
    pub objective: &'a str,
    /// The rendered directory.
    pub rendered: &'a Path,
    /// The bad file, relative to `rendered`.
    pub file: &'a str,
    /// The key path named in the message.
    pub key: &'a str,
    /// Why, as the message says it.
    pub reason: &'a str,
    /// Text on the line the message must point at (`None`: no line, e.g. a missing file).
    pub edited_line: Option<&'a str>,
}

/// Runs `bookstore rehearse` on `case.rendered` and checks that it stops before anything
/// runs: exit 2, a message naming the file (with the line of the edit), the key path and the
/// reason, no MariaDB started and no process left.
pub fn check_refused(exe: &Path, case: &BadRendered) {
    let what = case.what;
    let work = tempfile::tempdir().unwrap();
    let wd = work.path().join("w");
    let out = Command::new(exe)
        .args([
            "rehearse",
            case.objective,
            "--duration",
            "30s",
            "--rendered",
        ])
        .arg(case.rendered)
        .arg("--workdir")
        .arg(&wd)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit 2 for bad input:\n{stderr}"
    );
    let path = case.rendered.join(case.file);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:")),
        "{what}: names the file:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(": {}: ", case.key)),
        "{what}: names the key path:\n{stderr}"
    );
    assert!(stderr.contains(case.reason), "{what}: says why:\n{stderr}");
    if let Some(edited) = case.edited_line {
        // file:line:column of the edited key.
        let line: usize = stderr
            .split(&format!("{file}:"))
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no line number:\n{stderr}"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().nth(line - 1).unwrap().contains(edited),
            "{what}: line {line} is not the edit"
        );
    }
    assert!(
        !wd.join("mariadb").exists(),
        "{what}: MariaDB was started before the check"
    );
    let left = processes_in(&wd);
    assert!(left.is_empty(), "{what}: processes left: {left:?}");
}

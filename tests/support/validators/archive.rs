//! Debian 13's archive, as `scripts/debian13-tools` downloaded its package lists: which version of
//! a package a Debian 13 VM's `apt-get install` would get.

use super::{cache_dir, required_by_env, REQUIRE_ENV};
use std::path::PathBuf;
use std::process::Command;

fn apt_dir() -> PathBuf {
    cache_dir().join("debian13/apt")
}

/// `true` when Debian 13's package lists are here. When they are not: panics under
/// `BOOKSTORE_REQUIRE_VALIDATORS=1`, else says so and returns `false` (the test skips).
pub fn require_debian13_archive() -> bool {
    let lists = apt_dir().join("lists");
    let present = std::fs::read_dir(&lists).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    });
    if present {
        return true;
    }
    if required_by_env() {
        panic!(
            "Debian 13's package lists are not in {} and {REQUIRE_ENV}=1 makes that a failure: \
             run scripts/debian13-tools",
            lists.display()
        );
    }
    eprintln!(
        "\n*** SKIPPED: Debian 13's package lists are not in {} (run scripts/debian13-tools) ***\n",
        lists.display()
    );
    false
}

/// The version Debian 13's archive offers for `package` (its `Candidate`), or why there is none.
pub fn debian13_candidate(package: &str) -> Result<String, String> {
    let apt = apt_dir();
    let opt = |key: &str, value: PathBuf| ["-o".to_string(), format!("{key}={}", value.display())];
    let output = Command::new("apt-cache")
        .args(opt("Dir::Etc::sourcelist", apt.join("sources.list")))
        .args(["-o", "Dir::Etc::sourceparts=-"])
        .args(opt("Dir::State::Lists", apt.join("lists")))
        .args(opt("Dir::Cache", apt.join("cache")))
        .args(["-o", "Dir::State::status=/dev/null"])
        .args(["policy", package])
        .output()
        .map_err(|e| format!("cannot run apt-cache: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "apt-cache policy {package} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    match stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
    {
        Some(version) if version != "(none)" => Ok(version.to_string()),
        _ => Err(format!("Debian 13's archive has no `{package}`")),
    }
}

//! The REAL validators, run on rendered files.
//!
//! Every check here shells out to the tool that a deployment would meet: `shellcheck`, Debian
//! 13's `cloud-init schema`, nginx and Compose v2 (what the VMs run, see [`debian13_bin`]), this
//! machine's nginx for a spec that targets an older one, and the pinned Python tools `yamllint`, `cfn-lint`, `checkov` and `kubernetes-validate` that `scripts/test` installs in
//! its cached venv (see `scripts/validators.in`). Each check returns `Err` with the tool's full
//! output when the input is rejected, and also when the tool itself is missing.
//!
//! A test guards itself with [`require`] first:
//!
//! ```text
//! if !validators::require("nginx") { return; }
//! validators::nginx_t(&out.join("objective1/nginx/bookstore.conf")).unwrap();
//! ```
//!
//! With `BOOKSTORE_REQUIRE_VALIDATORS=1` (what `scripts/test` sets) a missing tool panics
//! instead of skipping, so CI cannot go green by skipping.
//!
//! Everything here talks to 127.0.0.1 only.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod archive;
mod cloud_init;
mod cloudformation;
mod compose;
mod kubernetes;
mod nginx;
mod nginx_live;
mod shellcheck;
mod upstream;
mod yamllint;

pub use archive::*;
pub use cloud_init::*;
pub use cloudformation::*;
pub use compose::*;
pub use kubernetes::*;
pub use nginx::*;
pub use nginx_live::*;
pub use shellcheck::*;
use upstream::*;
pub use yamllint::*;

/// Set to `1` to turn a missing validator into a test failure instead of a skip.
pub const REQUIRE_ENV: &str = "BOOKSTORE_REQUIRE_VALIDATORS";

/// The file name [`nginx_live`] serves from the ACME webroot, and its content.
pub const ACME_TOKEN: &str = "token123";
pub const ACME_TOKEN_CONTENT: &str = "acme-challenge-token123-from-the-test-webroot";

/// The value of `X-Bookstore-Instance` that the test upstream of [`nginx_live`] answers with.
pub const UPSTREAM_INSTANCE: &str = "validators-test-upstream";

const TIMEOUT: Duration = Duration::from_secs(120);
// checkov loads all of its policies on every start (a few seconds on a 2-core machine).
const CHECKOV_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Finding tools
// ---------------------------------------------------------------------------------------------

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        })
        .join("bookstore")
}

/// The venv that `scripts/test` fills with the pinned Python validators.
pub fn venv_bin() -> PathBuf {
    cache_dir().join("venv/bin")
}

/// What the VMs of the default AMI (Debian 13) run, unpacked from its archive by
/// `scripts/debian13-tools`: `cloud-init`, `nginx`, `docker-compose` (Compose v2), `docker`.
pub fn debian13_bin() -> PathBuf {
    cache_dir().join("debian13/bin")
}

/// Tools that are always taken from [`debian13_bin`]: the VMs' cloud-init and Compose v2 decide
/// whether a rendered file works, not this machine's older ones.
const DEBIAN13_FIRST: &[&str] = &["cloud-init", "docker-compose"];

/// Where `tool` is: [`DEBIAN13_FIRST`] only in [`debian13_bin`]; any other first on `PATH`, then
/// in the cached venv (so a plain `cargo test` after one `scripts/test` still finds the Python
/// validators).
pub fn tool_path(tool: &str) -> Option<PathBuf> {
    if DEBIAN13_FIRST.contains(&tool) {
        let candidate = debian13_bin().join(tool);
        return is_executable(&candidate).then_some(candidate);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            venv_bin(),
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/sbin"),
        ])
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn required_by_env() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// `true` when `tool` is installed. When it is not: panics if `BOOKSTORE_REQUIRE_VALIDATORS=1`,
/// otherwise prints a loud `SKIPPED` line and returns `false` so the test can return early.
pub fn require(tool: &str) -> bool {
    if tool_path(tool).is_some() {
        return true;
    }
    if required_by_env() {
        panic!(
            "validator `{tool}` is not installed, and {REQUIRE_ENV}=1 makes that a failure: \
             run `scripts/test` (it installs every validator), or put `{tool}` on PATH"
        );
    }
    eprintln!(
        "\n*** SKIPPED: {tool} not installed (run scripts/test to install it; \
         {REQUIRE_ENV}=1 turns this into a failure) ***\n"
    );
    false
}

/// [`require`] for several tools; reports every missing one before returning.
pub fn require_all(tools: &[&str]) -> bool {
    let mut all = true;
    for tool in tools {
        all &= require(tool);
    }
    all
}

fn tool(tool: &str) -> Result<Command, String> {
    tool_path(tool)
        .map(Command::new)
        .ok_or_else(|| format!("validator `{tool}` is not installed (run scripts/test)"))
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// What a finished command printed.
#[derive(Debug)]
pub struct Run {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// A report for an `Err`: the command, its exit code and everything it printed.
    pub fn report(&self, what: &str) -> String {
        let status = match (self.timed_out, self.code) {
            (true, _) => "timed out".to_string(),
            (false, Some(code)) => format!("exit code {code}"),
            (false, None) => "killed by a signal".to_string(),
        };
        format!(
            "{what}\n--- command ({status}) ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` to completion (stdin closed, output captured), killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Run, String> {
    let command = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {command}: {e}"))?;
    let reader = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {command}: {e}")),
        }
    };
    Ok(Run {
        command,
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
    })
}

fn tempdir(label: &str) -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix(&format!("bookstore-{label}-"))
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))
}

fn write(path: &Path, content: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every file under `dir` (recursively, sorted) whose name ends with one of `suffixes`
/// (all files when `suffixes` is empty).
pub fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if suffixes.is_empty() || suffixes.iter().any(|s| name.ends_with(s)) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

/// The directory holding `.yamllint.yaml` (the repository root), searched upwards from the
/// crate that runs the test.
pub fn repo_root() -> PathBuf {
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .find(|dir| dir.join(".yamllint.yaml").is_file())
        .unwrap_or(&start)
        .to_path_buf()
}

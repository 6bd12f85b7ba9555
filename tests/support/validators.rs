//! The REAL validators, run on rendered files.
//!
//! Every check here shells out to the tool that a deployment would meet: Debian's `nginx`,
//! `cloud-init schema`, `shellcheck`, `docker-compose` (1.29.2), and the pinned Python tools
//! `yamllint`, `cfn-lint`, `checkov` and `kubernetes-validate` that `scripts/test` installs in
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

/// The venv that `scripts/test` fills with the pinned Python validators.
pub fn venv_bin() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    cache.join("bookstore/venv/bin")
}

/// Where `tool` is: first on `PATH`, then in the cached venv (so a plain `cargo test` after one
/// `scripts/test` still finds the Python validators).
pub fn tool_path(tool: &str) -> Option<PathBuf> {
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

// ---------------------------------------------------------------------------------------------
// shellcheck
// ---------------------------------------------------------------------------------------------

/// `shellcheck -x -S style` on `files`.
///
/// Severity `style` is the strictest level: every script we render is short, generated and fully
/// under our control, so there is no legacy noise to tolerate. A deliberate exception is written
/// next to the line as `# shellcheck disable=SCxxxx # reason`, where a reviewer sees it.
pub fn shellcheck(files: &[PathBuf]) -> Result<(), String> {
    if files.is_empty() {
        return Err("shellcheck: no files given".into());
    }
    let run = run(
        tool("shellcheck")?
            .args(["-x", "-S", "style", "--color=never", "--"])
            .args(files),
        TIMEOUT,
    )?;
    if run.success() {
        Ok(())
    } else {
        Err(run.report("shellcheck rejected the scripts"))
    }
}

// ---------------------------------------------------------------------------------------------
// cloud-init
// ---------------------------------------------------------------------------------------------

/// `cloud-init schema -c FILE` (Debian 12's cloud-init 22.4). Deprecation notices count as
/// failures too; the file must start with `#cloud-config`.
pub fn cloud_init_schema(file: &Path) -> Result<(), String> {
    let text = read(file)?;
    if !text.starts_with("#cloud-config") {
        return Err(format!(
            "{}: user-data must start with `#cloud-config` on its first line",
            file.display()
        ));
    }
    let run = run(
        tool("cloud-init")?.args(["schema", "-c"]).arg(file),
        TIMEOUT,
    )?;
    let all = format!("{}{}", run.stdout, run.stderr);
    if !(run.success()
        && all.contains("Valid cloud-config")
        && !all.to_lowercase().contains("deprecat"))
    {
        return Err(run.report("cloud-init schema rejected the cloud-config"));
    }
    cloud_init_unknown_keys(file, &text)
}

/// Where Debian's cloud-init keeps the JSON schema that `cloud-init schema` checks against.
const CLOUD_CONFIG_SCHEMA: &str =
    "/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json";

/// Top-level keys that cloud-init reads but its 22.4 schema does not describe.
const CLOUD_CONFIG_UNSCHEMATIZED_KEYS: &[&str] = &[
    "merge_how",
    "merge_type",
    "output",
    "datasource",
    "system_info",
    "manual_cache_clean",
    "syslog_fix_perms",
    "def_log_file",
    "log_cfgs",
];

/// `cloud-init schema` 22.4 accepts any unknown top-level key (cloud-init then silently ignores
/// it, so a typo like `write_file:` would never fail): reject keys that no module's schema
/// declares.
fn cloud_init_unknown_keys(file: &Path, text: &str) -> Result<(), String> {
    let Ok(schema_text) = fs::read_to_string(CLOUD_CONFIG_SCHEMA) else {
        eprintln!("note: {CLOUD_CONFIG_SCHEMA} not found; unknown cloud-config keys not checked");
        return Ok(());
    };
    let schema: serde_json::Value = serde_json::from_str(&schema_text)
        .map_err(|e| format!("cannot read {CLOUD_CONFIG_SCHEMA}: {e}"))?;
    let mut known: Vec<String> = CLOUD_CONFIG_UNSCHEMATIZED_KEYS
        .iter()
        .map(|k| k.to_string())
        .collect();
    // The top level is `allOf: [{$ref: "#/$defs/cc_<module>"}, ...]`; each module lists its keys.
    let modules = schema.get("allOf").and_then(|a| a.as_array());
    for reference in modules.into_iter().flatten() {
        let Some(name) = reference
            .get("$ref")
            .and_then(|r| r.as_str())
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            continue;
        };
        let props = schema
            .pointer(&format!("/$defs/{name}/properties"))
            .and_then(|p| p.as_object());
        known.extend(props.into_iter().flat_map(|p| p.keys().cloned()));
    }
    if known.len() <= CLOUD_CONFIG_UNSCHEMATIZED_KEYS.len() {
        return Err(format!(
            "could not read the module keys from {CLOUD_CONFIG_SCHEMA}"
        ));
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
    let unknown: Vec<String> = doc
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str())
                .filter(|k| !known.iter().any(|known| known == k))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: cloud-config key(s) {} are not in cloud-init's schema ({CLOUD_CONFIG_SCHEMA}); \
             cloud-init would silently ignore them",
            file.display(),
            unknown.join(", ")
        ))
    }
}

/// Writes every shell script embedded in a cloud-config into `out_dir`, ready for
/// [`shellcheck`]: each `write_files` entry whose content starts with a `#!` line naming a shell
/// (sh, bash, dash, ksh), and `bootcmd` and `runcmd` each as one `#!/bin/sh` script, the way
/// cloud-init itself runs them (a string item is a shell line, a list item is an argv that
/// cloud-init quotes). A `write_files` entry named `*.sh` without a shebang, or one with an
/// `encoding` (its content cannot be checked), is an error.
pub fn cloud_init_scripts(file: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let text = read(file)?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
    let mut scripts = Vec::new();

    if let Some(entries) = doc.get("write_files").and_then(|v| v.as_sequence()) {
        for (i, entry) in entries.iter().enumerate() {
            let path = entry
                .get("path")
                .and_then(|v| v.as_str())
                .unwrap_or("(no path)");
            let mut content = entry
                .get("content")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            match entry.get("encoding").and_then(|v| v.as_str()) {
                None | Some("text/plain") => {}
                // Gzipped to fit EC2's 16 KB: validated as cloud-init will write it.
                Some("gz+b64") => {
                    use base64::Engine as _;
                    use std::io::Read as _;
                    let packed = base64::engine::general_purpose::STANDARD
                        .decode(content.trim())
                        .map_err(|e| format!("{}: {path}: not base64: {e}", file.display()))?;
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(packed.as_slice())
                        .read_to_string(&mut text)
                        .map_err(|e| format!("{}: {path}: not gzip text: {e}", file.display()))?;
                    content = text;
                }
                Some(enc) => {
                    return Err(format!(
                        "{}: write_files entry {path} uses encoding {enc}; render it as plain \
                         text or gz+b64 so it can be validated",
                        file.display()
                    ));
                }
            }
            let content = content.as_str();
            let first = content.lines().next().unwrap_or("");
            if is_shell_shebang(first) {
                let name = format!(
                    "write_files_{:02}_{}",
                    i + 1,
                    path.trim_start_matches('/').replace('/', "_")
                );
                let out = out_dir.join(name);
                write(&out, content)?;
                scripts.push(out);
            } else if path.ends_with(".sh") {
                return Err(format!(
                    "{}: write_files entry {path} looks like a shell script but has no `#!` line \
                     naming its shell (first line: {first:?})",
                    file.display()
                ));
            }
        }
    }

    for key in ["bootcmd", "runcmd"] {
        let Some(items) = doc.get(key).and_then(|v| v.as_sequence()) else {
            continue;
        };
        let mut script = String::from("#!/bin/sh\n");
        script.push_str(&format!(
            "# {key} of {}, as cloud-init runs it\n",
            file.display()
        ));
        for item in items {
            match item {
                serde_yaml::Value::String(line) => script.push_str(line),
                serde_yaml::Value::Sequence(argv) => {
                    let words: Vec<String> =
                        argv.iter().map(|w| shell_quote(&yaml_scalar(w))).collect();
                    script.push_str(&words.join(" "));
                }
                other => {
                    return Err(format!(
                        "{}: {key} item is neither a string nor a list: {other:?}",
                        file.display()
                    ))
                }
            }
            script.push('\n');
        }
        let out = out_dir.join(format!("{key}.sh"));
        write(&out, script)?;
        scripts.push(out);
    }
    Ok(scripts)
}

fn is_shell_shebang(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("#!") else {
        return false;
    };
    let mut words = rest.split_whitespace();
    let mut interp = words.next().unwrap_or("");
    if interp.ends_with("/env") {
        interp = words.find(|w| !w.starts_with('-')).unwrap_or("");
    }
    let name = interp.rsplit('/').next().unwrap_or("");
    matches!(name, "sh" | "bash" | "dash" | "ksh")
}

fn yaml_scalar(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------------------------------------
// yamllint
// ---------------------------------------------------------------------------------------------

/// `yamllint --strict` (warnings fail too) with the repository's `.yamllint.yaml`.
///
/// The `#cloud-config` first line is cloud-init's magic header, not a comment, so for that one
/// line the file is linted as if it read `# cloud-config` (yamllint's `comments` rule would
/// otherwise demand a space after `#`, which cloud-init does not accept).
pub fn yamllint(files: &[PathBuf]) -> Result<(), String> {
    if files.is_empty() {
        return Err("yamllint: no files given".into());
    }
    let config = repo_root().join(".yamllint.yaml");
    if !config.is_file() {
        return Err(format!("yamllint: no config at {}", config.display()));
    }
    let scratch = tempdir("yamllint")?;
    let mut args = Vec::new();
    let mut renamed = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = read(file)?;
        if let Some(rest) = text.strip_prefix("#cloud-config") {
            let copy = scratch
                .path()
                .join(format!("{i}"))
                .join(file.file_name().unwrap_or_default());
            write(&copy, format!("# cloud-config{rest}"))?;
            renamed.push((copy.display().to_string(), file.display().to_string()));
            args.push(copy);
        } else {
            args.push(file.clone());
        }
    }
    let run = run(
        tool("yamllint")?
            .args(["--strict", "-f", "parsable", "-c"])
            .arg(&config)
            .arg("--")
            .args(&args),
        TIMEOUT,
    )
    .map(|mut run| {
        for (copy, original) in &renamed {
            run.stdout = run.stdout.replace(copy, original);
        }
        run
    })?;
    if run.success() {
        Ok(())
    } else {
        Err(run.report("yamllint rejected the files"))
    }
}

// ---------------------------------------------------------------------------------------------
// CloudFormation: cfn-lint and checkov
// ---------------------------------------------------------------------------------------------

/// `cfn-lint` on the templates, in its default region (us-east-1). Any finding fails: errors,
/// warnings and informational ones alike (cfn-lint's default non-zero exit code).
pub fn cfn_lint(files: &[PathBuf]) -> Result<(), String> {
    cfn_lint_in_regions(files, &[])
}

/// [`cfn_lint`] checked against the given regions (`--regions`), e.g. the spec's region.
pub fn cfn_lint_in_regions(files: &[PathBuf], regions: &[&str]) -> Result<(), String> {
    if files.is_empty() {
        return Err("cfn-lint: no files given".into());
    }
    let mut cmd = tool("cfn-lint")?;
    cmd.args(["--format", "parseable"]);
    if !regions.is_empty() {
        cmd.arg("--regions").args(regions);
    }
    let run = run(cmd.arg("--").args(files), TIMEOUT)?;
    if run.success() {
        Ok(())
    } else {
        Err(run.report("cfn-lint rejected the templates"))
    }
}

/// `checkov --framework cloudformation` on one template or a directory, offline, requiring
/// zero failed checks, zero parsing errors, at least one resource scanned (so a file checkov did
/// not recognise cannot pass), and a reason on every skip. Skips live in the template, in the
/// resource's `Metadata: checkov: skip: [{id: CKV_AWS_n, comment: why}]`.
///
/// Offline: `--skip-download` and `BC_SKIP_MAPPING=TRUE` stop the platform/guidelines calls,
/// `CKV_SKIP_PACKAGE_UPDATE_CHECK=true` stops the PyPI version check made on import; no
/// `BC_API_KEY` is passed on. (Verified with strace: no connect() besides local sockets.)
pub fn checkov_cfn(path: &Path) -> Result<(), String> {
    checkov_cfn_files(&[path.to_path_buf()])
}

/// [`checkov_cfn`] on several templates (or directories) in one run: checkov spends a few
/// seconds loading its policies on every start, so one run for all templates is much faster.
pub fn checkov_cfn_files(paths: &[PathBuf]) -> Result<(), String> {
    if paths.is_empty() {
        return Err("checkov: no files given".into());
    }
    let mut cmd = tool("checkov")?;
    cmd.args([
        "--framework",
        "cloudformation",
        "--skip-download",
        "--compact",
        "-o",
        "json",
    ]);
    for path in paths {
        cmd.arg(if path.is_dir() { "-d" } else { "-f" }).arg(path);
    }
    cmd.env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("LOG_LEVEL", "WARNING")
        .env_remove("BC_API_KEY")
        .env_remove("PRISMA_API_URL");
    let run = run(&mut cmd, CHECKOV_TIMEOUT)?;
    let fail = |why: String| Err(run.report(&format!("checkov: {why}")));
    if run.timed_out {
        return fail("timed out".into());
    }
    let json: serde_json::Value = match serde_json::from_str(run.stdout.trim()) {
        Ok(v) => v,
        Err(e) => return fail(format!("output is not JSON ({e})")),
    };
    // One framework gives one report object; checkov gives a bare summary when it found no
    // CloudFormation at all, and a list when several runners reported.
    let reports: Vec<&serde_json::Value> = match &json {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut problems = Vec::new();
    let mut resources = 0;
    for report in &reports {
        let summary = report.get("summary").unwrap_or(report);
        let num = |k: &str| summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        resources += num("resource_count");
        if num("parsing_errors") > 0 {
            problems.push(format!("{} parsing error(s)", num("parsing_errors")));
        }
        let results = report.get("results");
        let list = |k: &str| {
            results
                .and_then(|r| r.get(k))
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        for check in list("failed_checks") {
            let s = |k: &str| {
                check
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string()
            };
            let lines = check
                .get("file_line_range")
                .map(|v| v.to_string())
                .unwrap_or_default();
            problems.push(format!(
                "FAILED {} \"{}\" on {} ({} lines {})",
                s("check_id"),
                s("check_name"),
                s("resource"),
                s("file_path"),
                lines
            ));
        }
        if num("failed") as usize > list("failed_checks").len() {
            problems.push(format!("{} failed check(s)", num("failed")));
        }
        for check in list("skipped_checks") {
            let comment = check
                .pointer("/check_result/suppress_comment")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .trim()
                .to_string();
            if comment.is_empty() || comment == "No comment provided" {
                problems.push(format!(
                    "SKIPPED {} on {} without a reason: add `comment:` to the skip in the \
                     resource's Metadata",
                    check
                        .get("check_id")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                    check
                        .get("resource")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                ));
            }
        }
    }
    if resources == 0 {
        problems.push("no CloudFormation resource was scanned (not a template?)".into());
    }
    if problems.is_empty() && run.success() {
        Ok(())
    } else if problems.is_empty() {
        fail("exited unsuccessfully".into())
    } else {
        Err(format!(
            "checkov rejected {}:\n  {}\n--- stderr ---\n{}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            problems.join("\n  "),
            run.stderr.trim_end()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose
// ---------------------------------------------------------------------------------------------

/// Debian's `docker-compose -f FILE config -q` (1.29.2), run in the file's directory with only
/// the given variables set for interpolation (`COMPOSE_*` and `DOCKER_*` from the caller's
/// environment are removed). Its warnings (an unset variable, say) count as failures.
///
/// Known limits of 1.29.2: it rejects newer Compose-spec keys such as a top-level `name:` and
/// `healthcheck.start_interval`; it does not check that `secrets: file:` paths exist.
pub fn compose_config(file: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    let mut cmd = tool("docker-compose")?;
    cmd.arg("-f").arg(file).args(["config", "-q"]);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        cmd.current_dir(dir);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("COMPOSE_") || key.starts_with("DOCKER_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let run = run(&mut cmd, TIMEOUT)?;
    if run.success() && !run.stderr.contains("WARNING") && !run.stdout.contains("WARNING") {
        Ok(())
    } else {
        Err(run.report("docker-compose config rejected the compose file"))
    }
}

// ---------------------------------------------------------------------------------------------
// kubernetes-validate
// ---------------------------------------------------------------------------------------------

/// `kubernetes-validate --strict` (unknown fields fail) against its bundled schemas (offline).
/// It only warns for kinds it has no schema for (CRDs such as cert-manager's `ClusterIssuer`,
/// `Kustomization`): those warnings fail too unless the kind is in `allowed_unknown_kinds`.
pub fn kubernetes_validate(
    files: &[PathBuf],
    allowed_unknown_kinds: &[&str],
) -> Result<(), String> {
    if files.is_empty() {
        return Err("kubernetes-validate: no files given".into());
    }
    let run = run(
        tool("kubernetes-validate")?.arg("--strict").args(files),
        TIMEOUT,
    )?;
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let unexpected: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("WARN"))
        .filter(|l| {
            !allowed_unknown_kinds
                .iter()
                .any(|kind| l.contains(&format!("schema for kind {kind} ")))
        })
        .collect();
    if run.success() && !all.contains("ERROR") && unexpected.is_empty() {
        Ok(())
    } else {
        Err(run.report(&format!(
            "kubernetes-validate rejected the manifests{}",
            if unexpected.is_empty() {
                String::new()
            } else {
                format!(" (warnings not allowed: {})", unexpected.join(" | "))
            }
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    dhparam: PathBuf,
}

/// A throwaway self-signed certificate (one day, CN=test) and RFC 7919 ffdhe2048 DH parameters.
fn tls_files(dir: &Path, domain: &str) -> Result<TlsFiles, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = TlsFiles {
        cert: dir.join("fullchain.pem"),
        key: dir.join("privkey.pem"),
        dhparam: dir.join("dhparam.pem"),
    };
    let cert = run(
        tool("openssl")?
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
            ])
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{domain}"))
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert),
        TIMEOUT,
    )?;
    if !cert.success() {
        return Err(cert.report("openssl could not make a test certificate"));
    }
    let dh = run(
        tool("openssl")?
            .args([
                "genpkey",
                "-genparam",
                "-algorithm",
                "DH",
                "-pkeyopt",
                "group:ffdhe2048",
                "-out",
            ])
            .arg(&files.dhparam),
        TIMEOUT,
    )?;
    if !dh.success() {
        return Err(dh.report("openssl could not write DH parameters"));
    }
    Ok(files)
}

/// One nginx directive on one line: (indent, name, arguments without the `;`, trailing text).
fn directive(line: &str) -> Option<(&str, &str, &str)> {
    let code = strip_comment(line);
    let trimmed = code.trim_start();
    if trimmed.is_empty() {
        return None;
    }
    let indent = &code[..code.len() - trimmed.len()];
    let name_end = trimmed.find(|c: char| c.is_whitespace() || c == ';' || c == '{')?;
    let name = &trimmed[..name_end];
    let rest = trimmed[name_end..].trim();
    let args = rest.strip_suffix(';')?.trim();
    Some((indent, name, args))
}

/// The line without its `#` comment (a `#` inside quotes, or inside a word such as `$1#x`, is
/// not a comment).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q && previous != '\\' => quote = None,
            (None, '#') if previous.is_whitespace() || previous == ';' || i == 0 => {
                return &line[..i]
            }
            _ => {}
        }
        previous = c;
    }
    line
}

/// Points certificate/key/dhparam paths at the test files and absolute log paths into `logs`.
fn rewrite_files(conf: &str, tls: &TlsFiles, logs: &Path) -> String {
    let mut out = String::with_capacity(conf.len() + 256);
    for line in conf.lines() {
        let replaced = directive(line).and_then(|(indent, name, args)| {
            let file = match name {
                "ssl_certificate" | "ssl_trusted_certificate" | "ssl_client_certificate" => {
                    Some(&tls.cert)
                }
                "ssl_certificate_key" => Some(&tls.key),
                "ssl_dhparam" => Some(&tls.dhparam),
                _ => None,
            };
            if let Some(file) = file {
                return Some(format!("{indent}{name} {};", file.display()));
            }
            if name == "access_log" || name == "error_log" {
                let mut words = args.splitn(2, char::is_whitespace);
                let target = words.next().unwrap_or("");
                let params = words.next().unwrap_or("");
                if target.starts_with('/') {
                    let base = Path::new(target)
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy();
                    return Some(format!(
                        "{indent}{name} {} {params};",
                        logs.join(&*base).display()
                    ));
                }
            }
            None
        });
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The nginx.conf around a rendered site config: everything nginx writes goes into `prefix`.
fn main_conf(prefix: &Path, site: &Path) -> String {
    let p = prefix.display();
    // As root the workers would switch to `nobody`, who cannot read the 0700 temp dir.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "# written by tests/support/validators.rs around the rendered site config\n\
         {user}worker_processes 1;\n\
         daemon off;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/logs/error.log info;\n\
         events {{\n    worker_connections 256;\n}}\n\
         http {{\n\
         \x20   include /etc/nginx/mime.types;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   access_log {p}/logs/access.log;\n\
         \x20   client_body_temp_path {p}/tmp/client_body;\n\
         \x20   proxy_temp_path {p}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {p}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {p}/tmp/scgi;\n\
         \x20   include {site};\n\
         }}\n",
        site = site.display()
    )
}

/// A prefix directory with nginx.conf, the (rewritten) site config, TLS files, logs, temp dirs.
struct Prefix {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

fn prefix_with(dir: tempfile::TempDir, site_conf: &str, domain: &str) -> Result<Prefix, String> {
    let root = dir.path();
    for sub in ["logs", "tmp", "tls"] {
        fs::create_dir_all(root.join(sub)).map_err(|e| format!("cannot create {sub}: {e}"))?;
    }
    let tls = tls_files(&root.join("tls"), domain)?;
    let site = root.join("site.conf");
    write(&site, rewrite_files(site_conf, &tls, &root.join("logs")))?;
    let conf = root.join("nginx.conf");
    write(&conf, main_conf(root, &site))?;
    Ok(Prefix { dir, conf })
}

fn nginx_cmd(prefix: &Prefix) -> Result<Command, String> {
    let mut cmd = tool("nginx")?;
    cmd.arg("-p")
        .arg(prefix.dir.path())
        .arg("-c")
        .arg(&prefix.conf);
    Ok(cmd)
}

/// Debian's `nginx -t` on a rendered site config (the `server`/`upstream`/`map` blocks that go
/// in `/etc/nginx/sites-enabled/`), included into a minimal nginx.conf in a throwaway prefix.
/// `ssl_certificate`, `ssl_certificate_key`, `ssl_trusted_certificate` and `ssl_dhparam` are
/// pointed at a throwaway self-signed certificate and DH parameters; absolute log paths are
/// moved into the prefix. Other paths (includes, webroots) are checked as written.
/// `[warn]` lines count as failures too.
pub fn nginx_t(conf: &Path) -> Result<(), String> {
    let prefix = prefix_with(tempdir("nginx")?, &read(conf)?, "test.invalid")?;
    let run = run(nginx_cmd(&prefix)?.arg("-t"), TIMEOUT)?;
    let all = format!("{}{}", run.stdout, run.stderr);
    if run.success() && all.contains("test is successful") && !all.contains("[warn]") {
        Ok(())
    } else {
        let site = read(&prefix.dir.path().join("site.conf")).unwrap_or_default();
        Err(format!(
            "{}\n--- site config as tested ---\n{site}",
            run.report(&format!("nginx -t rejected {}", conf.display()))
        ))
    }
}

/// A real nginx serving a rendered site config on 127.0.0.1, in front of a test upstream.
/// Stopped (and its upstream too) when dropped.
pub struct NginxLive {
    /// The name requests are sent for (SNI and Host), resolved to 127.0.0.1 by curl.
    pub domain: String,
    /// Where the config's `listen 80` went (its first listen port when it has no port 80).
    pub http_port: u16,
    /// Where the config's `listen 443` went; 0 when it does not listen on 443 (objective 2's
    /// nginx behind the load balancer speaks plain HTTP).
    pub https_port: u16,
    /// Every other listen port of the config, by its original number.
    pub ports: BTreeMap<u16, u16>,
    /// The temp webroot that replaced the ACME webroot; holds
    /// `.well-known/acme-challenge/token123` with [`ACME_TOKEN_CONTENT`].
    pub webroot: PathBuf,
    upstream: Upstream,
    child: Child,
    prefix: Prefix,
}

/// One response as curl saw it (no redirects followed).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl NginxLive {
    /// `GET http://DOMAIN:http_port{path}`.
    pub fn http(&self, path: &str) -> Result<HttpResponse, String> {
        self.curl(
            &format!("http://{}:{}{path}", self.domain, self.http_port),
            &[],
        )
    }

    /// `GET https://DOMAIN:https_port{path}` (certificate not verified: it is self-signed).
    pub fn https(&self, path: &str) -> Result<HttpResponse, String> {
        self.curl(
            &format!("https://{}:{}{path}", self.domain, self.https_port),
            &[],
        )
    }

    /// curl `url` with extra arguments (e.g. `-H`, `-X POST`), every name resolved to 127.0.0.1.
    pub fn curl(&self, url: &str, extra: &[&str]) -> Result<HttpResponse, String> {
        let mut cmd = tool("curl")?;
        cmd.args([
            "-sS",
            "-k",
            "-i",
            "--max-time",
            "10",
            "--noproxy",
            "*",
            "--proto",
            "=http,https",
        ]);
        for port in self.ports.values() {
            cmd.arg("--resolve")
                .arg(format!("{}:{port}:127.0.0.1", self.domain));
        }
        let run = run(cmd.args(extra).arg(url), Duration::from_secs(30))?;
        if !run.success() {
            return Err(format!(
                "{}\n--- nginx error.log ---\n{}",
                run.report(&format!("curl {url} failed")),
                self.error_log()
            ));
        }
        parse_http(&run.stdout).ok_or_else(|| run.report("curl printed no HTTP response"))
    }

    /// The request heads (request line + headers) the upstream received, oldest first.
    pub fn upstream_requests(&self) -> Vec<String> {
        self.upstream
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// The site config as nginx runs it (after the rewrites).
    pub fn effective_config(&self) -> String {
        fs::read_to_string(self.prefix.dir.path().join("site.conf")).unwrap_or_default()
    }
}

impl Drop for NginxLive {
    fn drop(&mut self) {
        if let Ok(mut cmd) = nginx_cmd(&self.prefix) {
            let _ = run(cmd.args(["-s", "stop"]), Duration::from_secs(10));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_http(text: &str) -> Option<HttpResponse> {
    let mut rest = text;
    loop {
        let end = rest.find("\r\n\r\n")?;
        let head = &rest[..end];
        let body = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Some(HttpResponse {
            status,
            headers,
            body: body.to_string(),
        });
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Rewrites a site config for a loopback run: every IPv4 `listen` to 127.0.0.1 on a fresh port
/// (IPv6 listens dropped), upstream `server` entries and literal `proxy_pass http://host:port`
/// to the test upstream, and, when the config has an `acme-challenge` location, the ACME
/// webroot (`root`/`alias` in that location, else the `root` of the server blocks) to `webroot`.
fn rewrite_for_live(
    conf: &str,
    upstream_port: u16,
    webroot: &Path,
) -> Result<(String, BTreeMap<u16, u16>), String> {
    let mut ports = BTreeMap::new();
    let acme_root_inside = acme_location_has_root(conf);
    let has_acme = conf.contains("acme-challenge");
    let mut out = String::with_capacity(conf.len() + 256);
    let mut stack: Vec<String> = Vec::new();
    let mut webroot_rewritten = false;
    for line in conf.lines() {
        let code = strip_comment(line);
        let in_block = |kind: &str| stack.iter().any(|b| b.starts_with(kind));
        let innermost = stack.last().cloned().unwrap_or_default();
        let mut replaced = None;
        if let Some((indent, name, args)) = directive(line) {
            match name {
                "listen" => {
                    let mut words = args.split_whitespace();
                    let addr = words.next().unwrap_or("");
                    let params: Vec<&str> = words.filter(|w| !w.starts_with("ipv6only")).collect();
                    if addr.starts_with('[') {
                        replaced = Some(format!(
                            "{indent}# (IPv6 listen dropped for the loopback test) {args}"
                        ));
                    } else {
                        let port_text = addr.rsplit(':').next().unwrap_or(addr);
                        let original: u16 = port_text
                            .parse()
                            .map_err(|_| format!("cannot read the port of `listen {args};`"))?;
                        let port = match ports.get(&original) {
                            Some(p) => *p,
                            None => {
                                let p = free_port()?;
                                ports.insert(original, p);
                                p
                            }
                        };
                        let mut words = vec![format!("127.0.0.1:{port}")];
                        words.extend(params.iter().map(|s| s.to_string()));
                        replaced = Some(format!("{indent}listen {};", words.join(" ")));
                    }
                }
                "server" if innermost.starts_with("upstream") => {
                    let params: Vec<&str> = args.split_whitespace().skip(1).collect();
                    let mut words = vec![format!("127.0.0.1:{upstream_port}")];
                    words.extend(params.iter().map(|s| s.to_string()));
                    replaced = Some(format!("{indent}server {};", words.join(" ")));
                }
                "proxy_pass" => {
                    if let Some(target) = args.strip_prefix("http://") {
                        let host_end = target.find('/').unwrap_or(target.len());
                        let host = &target[..host_end];
                        let literal = host.rsplit_once(':').is_some_and(|(_, p)| {
                            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
                        });
                        if literal {
                            replaced = Some(format!(
                                "{indent}proxy_pass http://127.0.0.1:{upstream_port}{};",
                                &target[host_end..]
                            ));
                        }
                    }
                }
                "root" | "alias" => {
                    let in_acme = stack
                        .iter()
                        .any(|b| b.starts_with("location") && b.contains("acme-challenge"));
                    let server_level = innermost.starts_with("server") && in_block("server");
                    if in_acme && name == "root" {
                        replaced = Some(format!("{indent}root {};", webroot.display()));
                    } else if in_acme {
                        replaced = Some(format!(
                            "{indent}alias {}/.well-known/acme-challenge/;",
                            webroot.display()
                        ));
                    } else if server_level && has_acme && !acme_root_inside && name == "root" {
                        replaced = Some(format!("{indent}root {};", webroot.display()));
                    }
                    webroot_rewritten |= replaced.is_some();
                }
                _ => {}
            }
        }
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
        // Track blocks: a line opening `{` pushes its header; `}` pops.
        for (i, c) in code.char_indices() {
            match c {
                '{' => stack.push(
                    code[..i]
                        .trim()
                        .rsplit(['{', '}', ';'])
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                ),
                '}' => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }
    if ports.is_empty() {
        return Err("the config has no IPv4 `listen` directive".into());
    }
    // Never let a listen that the rewrite missed bind a public port.
    for line in out.lines() {
        let code = strip_comment(line).trim();
        if code.starts_with("listen") && !code.starts_with("listen 127.0.0.1:") {
            return Err(format!(
                "cannot move `{code}` to loopback: write each `listen` on one line"
            ));
        }
    }
    if has_acme && !webroot_rewritten {
        return Err(
            "no ACME webroot found: expected `root` or `alias` in a location matching \
             acme-challenge (or a server-level `root`)"
                .into(),
        );
    }
    Ok((out, ports))
}

fn acme_location_has_root(conf: &str) -> bool {
    let mut depth_in_acme: Option<usize> = None;
    let mut depth = 0usize;
    for line in conf.lines() {
        let code = strip_comment(line);
        if depth_in_acme.is_some() {
            if let Some((_, name, _)) = directive(line) {
                if name == "root" || name == "alias" {
                    return true;
                }
            }
        }
        for c in code.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if depth_in_acme.is_none()
                        && code.contains("location")
                        && code.contains("acme-challenge")
                    {
                        depth_in_acme = Some(depth);
                    }
                }
                '}' => {
                    if depth_in_acme == Some(depth) {
                        depth_in_acme = None;
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
    }
    false
}

/// Starts Debian's nginx with the rendered site config on 127.0.0.1 (see [`rewrite_for_live`]
/// for what is rewritten; TLS files as in [`nginx_t`]) in front of an in-process HTTP/1.1
/// upstream that answers 200 with the request head it received as the body, and header
/// `X-Bookstore-Instance: validators-test-upstream`. Returns once both ports accept connections.
pub fn nginx_live(conf: &Path, domain: &str) -> Result<NginxLive, String> {
    // nginx binds the ports found free itself: when something took one in between, new ports.
    let mut taken = 0;
    loop {
        match nginx_live_once(conf, domain) {
            Err(e) if e.contains("Address already in use") && taken < 4 => taken += 1,
            other => return other,
        }
    }
}

fn nginx_live_once(conf: &Path, domain: &str) -> Result<NginxLive, String> {
    let upstream = Upstream::start()?;
    let dir = tempdir("nginx")?;
    let webroot = dir.path().join("webroot");
    let (site, ports) = rewrite_for_live(&read(conf)?, upstream.port, &webroot)?;
    let prefix = prefix_with(dir, &site, domain)?;
    write(
        &webroot.join(".well-known/acme-challenge").join(ACME_TOKEN),
        ACME_TOKEN_CONTENT,
    )?;
    let stderr = fs::File::create(prefix.dir.path().join("logs/stderr.log"))
        .map_err(|e| format!("cannot create the nginx stderr log: {e}"))?;
    let child = nginx_cmd(&prefix)?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start nginx: {e}"))?;
    let live = NginxLive {
        domain: domain.to_string(),
        http_port: ports
            .get(&80)
            .or_else(|| ports.values().next())
            .copied()
            .unwrap_or(0),
        https_port: ports.get(&443).copied().unwrap_or(0),
        ports,
        webroot,
        upstream,
        child,
        prefix,
    };
    wait_until_listening(live)
}

fn wait_until_listening(mut live: NginxLive) -> Result<NginxLive, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = live.child.try_wait() {
            let stderr = fs::read_to_string(live.prefix.dir.path().join("logs/stderr.log"))
                .unwrap_or_default();
            return Err(format!(
                "nginx exited ({status}) before serving\n--- stderr ---\n{stderr}\n--- error.log ---\n{}\n--- site config as run ---\n{}",
                live.error_log(),
                live.effective_config()
            ));
        }
        let up = live
            .ports
            .values()
            .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok());
        if up {
            return Ok(live);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nginx did not listen on {:?} within 15 s\n--- error.log ---\n{}",
                live.ports,
                live.error_log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tiny HTTP/1.1 keep-alive server on 127.0.0.1 that echoes each request head as the body.
struct Upstream {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind the test upstream: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let reqs = reqs.clone();
                std::thread::spawn(move || serve_connection(conn, &reqs));
            }
        });
        Ok(Self {
            port,
            requests,
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn serve_connection(conn: TcpStream, requests: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push_str(&line);
        }
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(mut r) = requests.lock() {
            r.push(head.clone());
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             X-Bookstore-Instance: {UPSTREAM_INSTANCE}\r\n\r\n{head}",
            head.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

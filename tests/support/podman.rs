//! podman for the container image tests: building `app/Dockerfile`'s stages with
//! `bookstore image build`, running them, and watching them from loopback. Without podman every
//! helper fails the test with the fix; none of them skips.

use crate::support::validators;
use bookstore::image::{reference, Kind};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The repository (the build context).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------------------------
// podman, images and containers
// ---------------------------------------------------------------------------------------------

/// `podman`, or a failure that says how to install it.
pub fn podman() -> Command {
    let Some(path) = validators::tool_path("podman") else {
        panic!(
            "podman is not installed, and the image tests need it: run scripts/install-validators \
             (it installs podman, runc and mmdebstrap and prepares the Debian base image)"
        );
    };
    Command::new(path)
}

/// Runs `cmd` to the end (no stdin) and returns what it printed.
pub fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// Runs podman with `args`, asserts success, returns stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = run({
        let mut c = podman();
        c.args(args);
        c
    });
    assert!(
        out.status.success(),
        "podman {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fails with the fix when scripts/container-base has not prepared this machine.
pub fn require_base_image() {
    let dockerfile = std::fs::read_to_string(Path::new(REPO).join("app/Dockerfile")).unwrap();
    let base = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG DEBIAN_IMAGE="))
        .expect("app/Dockerfile names its Debian base in ARG DEBIAN_IMAGE");
    let present = run({
        let mut c = podman();
        c.args(["image", "exists", base]);
        c
    });
    assert!(
        present.status.success(),
        "podman has no {base}: run scripts/container-base (scripts/install-validators does)"
    );
}

/// A name no other test (or concurrent run) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "bookstore-it-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `cargo build --release --locked -p PACKAGE --bin BIN` (what the Dockerfile's build stage
/// runs), into this run's target directory; returns the binary. Cargo serialises concurrent calls.
///
/// It runs without the variables `cargo test` sets for this test (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...): `ring`'s build script asks to be rerun when they change, so with them the
/// release build `scripts/test` made just before recompiled `ring` here, and the next run's again.
pub fn release_binary(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(REPO).join("Cargo.toml");
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_this_test) {
            command.env_remove(name);
        }
    }
    let out = command
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            package,
            "--bin",
            bin,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build --release -p {package} failed"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == bin)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for {bin}"))
}

/// Whether cargo set the variable `name` for this test binary (cargo's "Environment variables
/// Cargo sets for crates"), as opposed to the user's own (`CARGO_HOME`, `CARGO_TARGET_DIR`, ...).
fn set_by_cargo_for_this_test(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_BIN_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// An image built for this test, removed afterwards.
pub struct Image {
    /// `REPOSITORY:TAG`
    pub reference: String,
    _spec: tempfile::TempDir,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "--force", &self.reference]).output();
    }
}

/// `bookstore image build` of `kind` with `binary` in place of the Rust build stage, named by a
/// spec of its own.
pub fn build_image(kind: Kind, binary: &Path) -> Image {
    require_base_image();
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("bookstore.yaml");
    let tag = unique("tag");
    std::fs::write(
        &spec,
        format!("app:\n  image: localhost/bookstore-it/bookstore-app\n  tag: {tag}\n"),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bookstore"));
    cmd.args(["image", "build", "--engine", "podman"])
        .arg("--spec")
        .arg(&spec)
        .arg("--binary")
        .arg(binary)
        .arg("--context")
        .arg(REPO);
    if kind == Kind::Cli {
        cmd.arg("--cli");
    }
    let out = run(cmd);
    let image = Image {
        reference: reference(kind, "localhost/bookstore-it/bookstore-app", &tag),
        _spec: spec_dir,
    };
    assert!(
        out.status.success(),
        "bookstore image build failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// A container or volume removed when the test ends, whatever happened.
pub struct Removed(pub &'static str, pub String);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = podman().args([self.0, "rm", "--force", &self.1]).output();
    }
}

/// `podman inspect --format FORMAT WHAT`.
pub fn inspect(what: &str, format: &str) -> String {
    podman_ok(&["inspect", "--format", format, what])
}

/// What the image says about itself: size, labels, user, health check, entry point.
pub fn image_facts(image: &Image) -> serde_json::Value {
    let json = podman_ok(&["image", "inspect", &image.reference]);
    let facts: serde_json::Value = serde_json::from_str(&json).expect("podman image inspect JSON");
    facts[0].clone()
}

/// The image's files as `tar -tv` lists them (via a created, never started, container).
pub fn image_files(image: &Image) -> Vec<String> {
    let name = unique("files");
    podman_ok(&["create", "--name", &name, &image.reference]);
    let _gone = Removed("container", name.clone());
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("fs.tar");
    podman_ok(&["export", "--output", tar.to_str().unwrap(), &name]);
    let out = run({
        let mut c = Command::new("tar");
        c.arg("-tvf").arg(&tar);
        c
    });
    assert!(out.status.success(), "tar -tvf failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// talking to a container on loopback
// ---------------------------------------------------------------------------------------------

/// A free port on 127.0.0.1 (bound, then released).
pub use bookstore_test_support::free_port;

/// The status code of `GET path` on 127.0.0.1:port, if anything answers.
pub fn status_of(port: u16, path: &str) -> Option<u16> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Waits (with a deadline) until `podman logs NAME` contains `needle`.
pub fn wait_for_log(name: &str, needle: &str, deadline: Duration) -> String {
    let start = Instant::now();
    loop {
        let out = run({
            let mut c = podman();
            c.args(["logs", name]);
            c
        });
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            start.elapsed() < deadline,
            "no {needle:?} in the logs of {name} after {deadline:?}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the server side of the connection from `client` to `port` has read every byte
/// sent so far (its receive queue is empty), so that the request is in the shop's hands.
pub fn wait_until_read(port: u16, client: &TcpStream, deadline: Duration) {
    let peer = client.local_addr().unwrap().port();
    let start = Instant::now();
    loop {
        let out = run({
            let mut c = Command::new("ss");
            c.args(["-Htn", "state", "established"])
                .arg(format!("( sport = :{port} and dport = :{peer} )"));
            c
        });
        let table = String::from_utf8_lossy(&out.stdout).to_string();
        // With a state filter, ss prints: Recv-Q Send-Q Local:Port Peer:Port
        if table.split_whitespace().next() == Some("0") {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "the shop did not read the request within {deadline:?}: {table}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

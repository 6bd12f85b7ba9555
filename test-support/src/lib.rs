//! Test-only helpers shared by the integration tests of the workspace's crates (a dev-dependency
//! only, never published): a database per test on the shared MariaDB server ([`TestDb`]), a
//! MariaDB server of a test's own ([`MariaDb`]), Debian's nginx on loopback in front of shop
//! instances ([`Nginx`]), free ports, the tools they need.
//!
//! Everything listens on 127.0.0.1 only. A missing tool fails the test with the package to
//! install; nothing is skipped.

mod mariadb;
mod nginx;
mod testdb;

pub use mariadb::MariaDb;
pub use nginx::Nginx;
pub use testdb::{server_url, TestDb};

use std::path::{Path, PathBuf};
use std::process::Command;

/// A free port on 127.0.0.1 for a server that binds it itself: outside the kernel's ephemeral
/// range and claimed for a minute across processes ([`loopback_ports::port`]), so neither another
/// test nor an outgoing connection takes it before the server binds it.
pub fn free_port() -> u16 {
    loopback_ports::port().expect("a free loopback port")
}

/// The path of `tool`, or a panic that names the Debian package to install.
pub fn require(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("`{tool}` is not installed; these tests need it: apt-get install -y {package}");
}

/// The user name the test runs as (`--user` for mariadbd, needed as root).
pub fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True when the test runs as root (nginx then needs `user root;`).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `openssl ARGS` in `dir`, which must succeed.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require("openssl", "openssl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate for 127.0.0.1: `cert.pem` and `key.pem` in `dir`.
pub fn self_signed(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
}

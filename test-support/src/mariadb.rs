//! A MariaDB server of a test's own: its own data directory and port on 127.0.0.1, root without
//! a password, stopped, hung (SIGSTOP) and restarted at will, taken down when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require, whoami};

/// See the module documentation.
pub struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl MariaDb {
    /// Installs a fresh data directory for a server on `port` (a free one with [`free_port`]);
    /// [`MariaDb::start`] starts it.
    pub fn install(port: u16) -> MariaDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new(require("mariadb-install-db", "mariadb-server"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--user={}", whoami()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        MariaDb {
            dir,
            port,
            args: Vec::new(),
            child: None,
        }
    }

    /// Installs and starts a server on a free port, with `args` added to mariadbd's (e.g. TLS).
    pub fn start_with(args: &[String]) -> MariaDb {
        let mut m = MariaDb::install(free_port());
        m.args = args.to_vec();
        m.start();
        m
    }

    /// `mysql://root@127.0.0.1:PORT` (no database).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (data, socket, error log); files a test makes may go here too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server and waits (at most 60 s) until it accepts connections.
    pub fn start(&mut self) {
        let d = self.dir.path();
        let child = Command::new(require("mariadbd", "mariadb-server"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
            ])
            .arg(format!("--user={}", whoami()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mariadbd did not listen on {} within 60 s; its log:\n{}",
                self.port,
                std::fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server was started").id();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{signal} {pid}");
    }

    /// Stops the server (SIGTERM, SIGKILL after 30 s) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // A server left stopped (a failed test) must be continued before it can exit.
        if self.child.is_some() {
            self.signal("CONT");
        }
        self.stop();
    }
}

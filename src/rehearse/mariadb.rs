//! MariaDB on loopback: the stand-in for the MySQL container (objective 1) and for RDS (objective 2).

use super::supervise::{find_tool, run_quick, user_name, with_free_port, Supervised};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A MariaDB server of the rehearsal's own, in its work directory, on a free 127.0.0.1 port.
/// `root` has no password: it listens on loopback only and lives as long as the rehearsal.
#[derive(Debug)]
pub struct LocalMariaDb {
    dir: PathBuf,
    port: u16,
    proc: Option<Supervised>,
    tls: Option<ServerTls>,
}

/// TLS for the server: its certificate and key, the CA that signed them, and
/// `require_secure_transport` (what objective 2's RDS parameter group sets).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LocalMariaDb {
    /// Creates a data directory under `dir` (mariadb-install-db) unless it holds one already
    /// (a re-run on kept data), and starts the server.
    pub fn start_in(dir: &Path) -> Result<LocalMariaDb> {
        Self::start_with(dir, None)
    }

    /// [`LocalMariaDb::start_in`], serving TLS only with `tls`.
    pub fn start_tls_in(dir: &Path, tls: ServerTls) -> Result<LocalMariaDb> {
        Self::start_with(dir, Some(tls))
    }

    fn start_with(dir: &Path, tls: Option<ServerTls>) -> Result<LocalMariaDb> {
        // A private tmpdir: concurrent bootstraps sharing /tmp can trip over each other's
        // temporary tables.
        std::fs::create_dir_all(dir.join("tmp"))?;
        let install = find_tool("mariadb-install-db")
            .ok_or_else(|| anyhow!("mariadb-install-db is not installed"))?;
        if !dir.join("data/mysql").is_dir() {
            run_quick(
                Command::new(install)
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", dir.join("data").display()))
                    .arg(format!("--user={}", user_name()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                    .arg(format!("--tmpdir={}", dir.join("tmp").display())),
                Duration::from_secs(120),
            )
            .context("mariadb-install-db failed")?;
        }
        // mariadbd binds the port itself: another port when something took it first.
        with_free_port(|port| {
            let mut db = LocalMariaDb {
                dir: dir.to_path_buf(),
                port,
                proc: None,
                tls: tls.clone(),
            };
            db.start()?;
            Ok(db)
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT` (no database).
    pub fn root_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// True while the server runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Supervised::is_running)
    }

    /// Starts the server (again) on the same port and data, and waits until it answers.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mariadbd = find_tool("mariadbd").ok_or_else(|| anyhow!("mariadbd is not installed"))?;
        let d = self.dir.clone();
        let mut cmd = Command::new(mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--max-connections=1000",
                "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=2",
            ])
            .arg(format!("--user={}", user_name()))
            .arg(format!("--log-error={}", d.join("error.log").display()));
        if let Some(t) = &self.tls {
            cmd.arg(format!("--ssl-ca={}", t.ca.display()))
                .arg(format!("--ssl-cert={}", t.cert.display()))
                .arg(format!("--ssl-key={}", t.key.display()))
                .arg("--require-secure-transport=ON");
        }
        let proc = Supervised::spawn(
            "mariadbd",
            cmd,
            &d.join("mariadbd.out"),
            "TERM",
            Duration::from_secs(30),
        )?;
        self.proc = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.sql("SELECT 1").is_ok() {
                return Ok(());
            }
            if !self.is_running() || Instant::now() >= deadline {
                let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                bail!(
                    "MariaDB did not start on 127.0.0.1:{}; the end of its log:\n{}",
                    self.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM, a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// Runs SQL as root with the `mariadb` client; returns tab-separated rows without headers.
    pub fn sql(&self, sql: &str) -> Result<String> {
        let client =
            find_tool("mariadb").ok_or_else(|| anyhow!("the mariadb client is not installed"))?;
        let mut cmd = Command::new(client);
        cmd.arg("--no-defaults")
            .args(["-uroot", "-h127.0.0.1", "-N", "-B"])
            .arg(format!("-P{}", self.port));
        if let Some(t) = &self.tls {
            cmd.arg("--ssl").arg(format!("--ssl-ca={}", t.ca.display()));
        }
        run_quick(cmd.arg("-e").arg(sql), Duration::from_secs(30))
    }

    /// True when the server speaks TLS only.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// Creates a database and a user with all rights on it, as the MySQL image does for
    /// `MYSQL_DATABASE`, `MYSQL_USER` and `MYSQL_PASSWORD`.
    pub fn provision(&self, database: &str, user: &str, password: &str) -> Result<()> {
        let ident = |s: &str| format!("`{}`", s.replace('`', "``"));
        let lit = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
        self.sql(&format!(
            "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; \
             CREATE USER IF NOT EXISTS {u}@'%' IDENTIFIED BY {p}; \
             GRANT ALL PRIVILEGES ON {db}.* TO {u}@'%'; FLUSH PRIVILEGES;",
            db = ident(database),
            u = lit(user),
            p = lit(password),
        ))
        .map(|_| ())
        .with_context(|| format!("cannot create database {database} and user {user}"))
    }
}

impl Drop for LocalMariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

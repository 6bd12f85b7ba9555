//! The database: the pool (password re-read on rotation), waiting for the server at start-up; the
//! migrations and seeds live in their own modules.

mod migrate;
mod seed;
mod watch;

pub use migrate::MIGRATIONS;
pub use seed::PROVIDERS;
pub use watch::DbWatch;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use crate::config::{redact_url, Config};

/// The pool plus a gauge of connections checked out.
#[derive(Clone)]
pub struct Db {
    pool: Arc<RwLock<Current>>,
    login: Arc<Login>,
    in_use: Arc<AtomicI64>,
    /// Largest pool size.
    pub max: usize,
}

/// The pool in use, rebuilt when the password file changes.
struct Current {
    pool: Pool,
    /// Bumped at every rebuild, so that concurrent failures rebuild once.
    generation: u64,
    password: Option<String>,
}

/// What a pool is built from: the options and where the password is re-read from.
struct Login {
    opts: Opts,
    password_file: Option<PathBuf>,
}

/// MySQL's `ER_ACCESS_DENIED_ERROR`: wrong user or password (e.g. the password was rotated).
pub const ACCESS_DENIED: u16 = 1045;

/// True for a login refused with [`ACCESS_DENIED`].
pub fn is_access_denied(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == ACCESS_DENIED)
}

/// A pooled connection that counts itself in the in-use gauge while held.
pub struct DbConn {
    conn: Conn,
    in_use: Arc<AtomicI64>,
    _lease: watch::Lease,
}

impl std::ops::Deref for DbConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}
impl std::ops::DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}
impl Drop for DbConn {
    fn drop(&mut self) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Db {
    /// Builds the pool (no connection is made yet).
    pub fn new(config: &Config) -> anyhow::Result<Db> {
        let opts = Opts::from_url(&config.database_url).with_context(|| {
            format!("invalid database URL {}", redact_url(&config.database_url))
        })?;
        // `?pool_min=&pool_max=` in the URL (objective 2 renders the size that fits the
        // database) bound the pool; the idle timeout applies either way: without one,
        // mysql_async closes every connection above pool_min as soon as it is returned.
        let constraints = if config.database_url.contains("pool_max") {
            opts.pool_opts().constraints()
        } else {
            PoolConstraints::new(0, 16).expect("pool bounds")
        };
        let max = constraints.max();
        let mut b = OptsBuilder::from_opts(opts).stmt_cache_size(64);
        if let Some(tls) = &config.database_tls {
            // mysql_async builds its rustls config from the process's default provider; with
            // both ring and aws-lc-rs compiled in (the `bookstore` binary), there is none until
            // one is installed. An Err means one already is: fine either way.
            let _ = rustls::crypto::ring::default_provider().install_default();
            // Required: a server that does not offer TLS is refused, never used in plaintext.
            let mut ssl = SslOpts::default();
            if let Some(ca) = &tls.ca_file {
                ssl = ssl
                    .with_root_certs(vec![ca.clone().into()])
                    .with_disable_built_in_roots(true);
            }
            b = b.ssl_opts(Some(ssl)).prefer_socket(false);
        }
        b = b.pool_opts(
            PoolOpts::default()
                .with_constraints(constraints)
                .with_inactive_connection_ttl(Duration::from_secs(60))
                .with_ttl_check_interval(Duration::from_secs(30)),
        );
        let login = Login {
            opts: b.into(),
            password_file: config.database_password_file.clone(),
        };
        let password = config.database_password.clone();
        Ok(Db {
            pool: Arc::new(RwLock::new(Current {
                pool: login.pool(password.clone()),
                generation: 0,
                password,
            })),
            login: Arc::new(login),
            in_use: Arc::new(AtomicI64::new(0)),
            max,
        })
    }

    /// The pool in use and its generation.
    fn current(&self) -> (Pool, u64) {
        let c = self.pool.read().unwrap_or_else(|e| e.into_inner());
        (c.pool.clone(), c.generation)
    }

    /// After an access-denied login on the pool of `tried`: re-reads the password file and, when
    /// it holds a new password, rebuilds the pool with it. True when a retry may succeed (a new
    /// pool, here or by a concurrent caller).
    fn reload_password(&self, tried: u64) -> bool {
        let Some(path) = &self.login.password_file else {
            return false;
        };
        let new = match std::fs::read_to_string(path) {
            Ok(text) => text.trim_end_matches(['\n', '\r']).to_string(),
            Err(e) => {
                tracing::warn!(
                    "database access denied; cannot re-read {}: {e}",
                    path.display()
                );
                return false;
            }
        };
        let mut c = self.pool.write().unwrap_or_else(|e| e.into_inner());
        if c.generation != tried {
            return true;
        }
        if c.password.as_deref() == Some(new.as_str()) {
            return false;
        }
        let old = std::mem::replace(&mut c.pool, self.login.pool(Some(new.clone())));
        c.password = Some(new);
        c.generation += 1;
        tracing::warn!(
            generation = c.generation,
            "database access denied: {} holds a new password; reconnecting with it",
            path.display()
        );
        tokio::spawn(async move {
            let _ = old.disconnect().await;
        });
        true
    }

    /// Checks out a connection. A login refused with access denied (error 1045, the password
    /// rotated) re-reads the password file and retries once with the new password.
    pub async fn conn(&self) -> Result<DbConn, mysql_async::Error> {
        let (pool, generation) = self.current();
        let conn = match pool.get_conn().await {
            Err(e) if is_access_denied(&e) && self.reload_password(generation) => {
                self.current().0.get_conn().await?
            }
            other => other?,
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Ok(DbConn {
            conn,
            in_use: self.in_use.clone(),
            _lease: watch::Lease::take(),
        })
    }

    /// Connections currently checked out.
    pub fn in_use(&self) -> i64 {
        self.in_use.load(Ordering::Relaxed)
    }

    /// True when a `SELECT 1` answers within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let fut = async {
            let mut c = self.conn().await?;
            c.query_drop("SELECT 1").await
        };
        matches!(tokio::time::timeout(timeout, fut).await, Ok(Ok(())))
    }

    /// Waits for the database with exponential backoff, one log line per failed attempt.
    pub async fn wait_until_reachable(&self, url: &str, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut attempt = 1u32;
        loop {
            let res = tokio::time::timeout(Duration::from_secs(5), async {
                let mut c = self.conn().await?;
                c.query_drop("SELECT 1").await
            })
            .await;
            let err = match res {
                Ok(Ok(())) => {
                    tracing::info!(attempt, "database {} is reachable", redact_url(url));
                    return Ok(());
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out after 5 s".to_string(),
            };
            if start.elapsed() + delay > limit {
                anyhow::bail!(
                    "database {} still unreachable after {} attempts over {:?}: {err}",
                    redact_url(url),
                    attempt,
                    start.elapsed()
                );
            }
            tracing::warn!(
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                "waiting for database {}: {err}",
                redact_url(url)
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    /// Closes the pool's connections.
    pub async fn close(self) {
        let _ = self.current().0.disconnect().await;
    }
}

impl Login {
    /// A pool with `password` (the URL's own when `None`).
    fn pool(&self, password: Option<String>) -> Pool {
        let mut b = OptsBuilder::from_opts(self.opts.clone());
        if password.is_some() {
            b = b.pass(password);
        }
        Pool::new(b)
    }
}

/// A random 32-byte token, hex encoded.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    crate::auth::hex(&b)
}

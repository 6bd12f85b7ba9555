//! The database: the pool, waiting for the server at start-up, migrations under a named lock, seeds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts};

use crate::config::{redact_url, Config};

/// Embedded, versioned migrations, applied in order.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (
        2,
        "reservations",
        include_str!("../migrations/0002_reservations.sql"),
    ),
];

/// The seeded delivery providers: name, coverage, cost in cents.
pub const PROVIDERS: &[(&str, &str, i64)] = &[
    ("DHL", "International, 3-5 days", 1500),
    ("FedEx", "International, 2-4 days", 1800),
    ("Envia", "National, 2-3 days", 700),
    ("Servientrega", "National, 1-3 days", 600),
];

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

    /// Applies the pending migrations while holding a MySQL named lock, so many instances may start at once.
    pub async fn migrate(&self) -> anyhow::Result<Vec<u32>> {
        let mut c = self.conn().await.context("connecting to migrate")?;
        let got: Option<i64> = c
            .exec_first("SELECT GET_LOCK(?, ?)", ("bookstore_migrations", 120))
            .await?;
        if got != Some(1) {
            anyhow::bail!(
                "could not take the migration lock within 120 s (another instance is migrating?)"
            );
        }
        let result = apply_migrations(&mut c).await;
        let _: Option<i64> = c
            .exec_first("SELECT RELEASE_LOCK(?)", ("bookstore_migrations",))
            .await?;
        result
    }

    /// Inserts the delivery providers and the configured admin when absent.
    pub async fn seed_basics(&self, admin: Option<&(String, String)>) -> anyhow::Result<()> {
        let mut c = self.conn().await?;
        for (name, coverage, cost) in PROVIDERS {
            c.exec_drop(
                "INSERT IGNORE INTO delivery_providers (name, coverage, cost_cents) VALUES (?, ?, ?)",
                (name, coverage, cost),
            )
            .await?;
        }
        if let Some((email, password)) = admin {
            seed_admin(&mut c, email, password).await?;
        }
        Ok(())
    }

    /// Loads `n` demo books sold by a demo seller (idempotent per title).
    pub async fn seed_demo_books(&self, n: u32) -> anyhow::Result<u32> {
        let mut c = self.conn().await?;
        let seller: Option<u64> = c
            .exec_first(
                "SELECT id FROM users WHERE email = ?",
                ("seller@demo.invalid",),
            )
            .await?;
        let seller = match seller {
            Some(id) => id,
            None => {
                let hash = crate::auth::hash_password(random_token()).await?;
                c.exec_drop(
                    "INSERT INTO users (name, email, password_hash) VALUES (?, ?, ?)",
                    ("Demo Seller", "seller@demo.invalid", hash),
                )
                .await?;
                c.last_insert_id().context("seller id")?
            }
        };
        let have: Option<i64> = c
            .exec_first("SELECT COUNT(*) FROM books WHERE seller_id = ?", (seller,))
            .await?;
        let have = have.unwrap_or(0) as u32;
        let authors = [
            "Gabriel García Márquez",
            "Jane Austen",
            "Fyodor Dostoevsky",
            "Toni Morrison",
            "Haruki Murakami",
            "Chinua Achebe",
            "Virginia Woolf",
            "Jorge Luis Borges",
        ];
        let places = [
            "the North",
            "Macondo",
            "the Sea",
            "Glass",
            "Paper",
            "the Andes",
            "Ashes",
            "Silence",
            "Rain",
            "Salt",
        ];
        let words = [
            "Solitude",
            "River",
            "Garden",
            "Winter",
            "Lighthouse",
            "Labyrinth",
            "Harvest",
            "Mirror",
            "Night",
            "Voyage",
        ];
        let mut tx = c.start_transaction(Default::default()).await?;
        let mut added = 0;
        for i in have..n {
            let title = format!(
                "The {} of {} (vol. {})",
                words[i as usize % words.len()],
                places[(i as usize / 10) % places.len()],
                i + 1
            );
            let author = authors[i as usize % authors.len()];
            tx.exec_drop(
                "INSERT INTO books (title, author, description, price_cents, stock, seller_id) VALUES (?, ?, ?, ?, ?, ?)",
                (title, author, "A demo book loaded by `bookstore-app seed`.", 500 + (i as i64 * 137) % 4500, 1000, seller),
            )
            .await?;
            added += 1;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Creates the shop's least-privilege user on this database, or sets its password when it
    /// exists (idempotent; run as an administrator such as RDS's master user). It may read and
    /// write rows and run the migrations (create, alter, index), nothing else.
    pub async fn ensure_app_user(&self, user: &str, password: &str) -> anyhow::Result<()> {
        let valid = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !valid(user, 32) {
            anyhow::bail!("--user {user:?}: use 1 to 32 letters, digits or underscores");
        }
        if password.len() < 16 || password.chars().any(|c| c.is_control()) {
            anyhow::bail!(
                "the password must have at least 16 characters and no control characters"
            );
        }
        let mut c = self
            .conn()
            .await
            .context("connecting as the administrator")?;
        let schema: Option<String> = c.query_first("SELECT DATABASE()").await?;
        let schema = schema.filter(|s| valid(s, 64)).context(
            "BOOKSTORE_DATABASE_URL must name the shop's database (letters, digits, underscores)",
        )?;
        let literal = password.replace('\\', "\\\\").replace('\'', "\\'");
        c.query_drop(format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{literal}'"
        ))
        .await
        .context("CREATE USER")?;
        c.query_drop(format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{literal}'"))
            .await
            .context("ALTER USER")?;
        c.query_drop(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, REFERENCES ON `{schema}`.* TO '{user}'@'%'"
        ))
        .await
        .context("GRANT")?;
        tracing::info!("database user {user} may use {schema} (rows and migrations only)");
        Ok(())
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

/// Creates the configured admin, or brings its password in line with the configuration. An
/// account someone else registered with that e-mail is never promoted: only an account whose
/// password is the configured one is.
async fn seed_admin(c: &mut Conn, email: &str, password: &str) -> anyhow::Result<()> {
    let existing: Option<(u64, bool, String)> = c
        .exec_first(
            "SELECT id, is_admin, password_hash FROM users WHERE email = ?",
            (email,),
        )
        .await?;
    let Some((id, is_admin, hash)) = existing else {
        let hash = crate::auth::hash_password(password.to_string()).await?;
        c.exec_drop(
            "INSERT IGNORE INTO users (name, email, password_hash, is_admin) VALUES (?, ?, ?, TRUE)",
            ("Administrator", email, hash),
        )
        .await?;
        tracing::info!("created admin account {email}");
        return Ok(());
    };
    let matches = crate::auth::verify_password(password.to_string(), hash).await;
    match (is_admin, matches) {
        (true, true) => {}
        (true, false) => {
            let hash = crate::auth::hash_password(password.to_string()).await?;
            c.exec_drop(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                (hash, id),
            )
            .await?;
            tracing::info!("set the password of admin {email} to BOOKSTORE_ADMIN_PASSWORD");
        }
        (false, true) => {
            c.exec_drop("UPDATE users SET is_admin = TRUE WHERE id = ?", (id,))
                .await?;
            tracing::info!("promoted {email} to admin (its password is the configured one)");
        }
        (false, false) => tracing::error!(
            "BOOKSTORE_ADMIN_EMAIL {email} belongs to an account registered by someone else \
             (its password is not BOOKSTORE_ADMIN_PASSWORD): not promoting it; choose another \
             admin e-mail or remove that account"
        ),
    }
    Ok(())
}

async fn apply_migrations(c: &mut Conn) -> anyhow::Result<Vec<u32>> {
    c.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INT UNSIGNED NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB",
    )
    .await?;
    let applied: Vec<u32> = c.exec("SELECT version FROM schema_migrations", ()).await?;
    let mut done = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for stmt in split_statements(sql) {
            c.query_drop(stmt)
                .await
                .with_context(|| format!("migration {version} ({name}) failed at: {stmt}"))?;
        }
        c.exec_drop(
            "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
            (version, name),
        )
        .await?;
        tracing::info!(version, name, "applied migration");
        done.push(*version);
    }
    Ok(done)
}

fn split_statements(sql: &str) -> Vec<&str> {
    sql.split(";\n")
        .map(str::trim)
        .filter(|s| {
            s.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        })
        .collect()
}

/// A random 32-byte token, hex encoded.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    crate::auth::hex(&b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_split_into_statements() {
        let stmts = super::split_statements(super::MIGRATIONS[0].2);
        assert_eq!(stmts.len(), 8);
        assert!(stmts
            .iter()
            .all(|s| s.starts_with("CREATE TABLE") || s.starts_with("--")));
    }
}

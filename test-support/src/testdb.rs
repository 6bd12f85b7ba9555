//! A database of its own per test on the shared MariaDB server that `scripts/test` (or
//! `scripts/mariadb-throwaway`) starts.

use std::time::Duration;

use mysql_async::prelude::*;

/// The MariaDB server's URL (no database part); fails the test when unset.
pub fn server_url() -> String {
    match std::env::var("BOOKSTORE_TEST_DATABASE_URL") {
        Ok(v) if !v.trim().is_empty() => v.trim().trim_end_matches('/').to_string(),
        _ => panic!(
            "BOOKSTORE_TEST_DATABASE_URL is not set. These tests need a real MariaDB/MySQL server: \
             run `eval \"$(scripts/mariadb-throwaway start)\"` first (it exports the variable), \
             or set it to mysql://root@127.0.0.1:PORT"
        ),
    }
}

/// A uniquely named database, dropped when this value is dropped.
pub struct TestDb {
    /// `mysql://.../name`
    pub url: String,
    server: String,
    name: String,
}

impl TestDb {
    /// Creates a fresh database on the test server.
    pub async fn new() -> TestDb {
        Self::on(&server_url()).await
    }

    /// Creates a fresh database on the given server.
    pub async fn on(server: &str) -> TestDb {
        let name = format!("bs_test_{}", unique_suffix());
        let pool = mysql_async::Pool::new(server);
        let mut c = pool
            .get_conn()
            .await
            .expect("connect to the test MariaDB server");
        c.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .expect("create test database");
        drop(c);
        pool.disconnect().await.ok();
        TestDb {
            url: format!("{server}/{name}"),
            server: server.to_string(),
            name,
        }
    }

    /// A short-lived connection to this database.
    pub async fn conn(&self) -> (mysql_async::Pool, mysql_async::Conn) {
        let pool = mysql_async::Pool::new(self.url.as_str());
        let conn = pool.get_conn().await.expect("connect to test database");
        (pool, conn)
    }

    /// One value from a query.
    pub async fn scalar<T: FromValue + Send + 'static>(&self, sql: &str) -> T {
        let (pool, mut c) = self.conn().await;
        let v: Option<T> = c.query_first(sql).await.expect("query");
        drop(c);
        pool.disconnect().await.ok();
        v.expect("a row")
    }

    /// Runs a statement with parameters.
    pub async fn exec(&self, sql: &str, params: impl Into<mysql_async::Params> + Send) {
        let (pool, mut c) = self.conn().await;
        c.exec_drop(sql, params).await.expect("statement");
        drop(c);
        pool.disconnect().await.ok();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Dropping runs on a thread of its own so it works inside and outside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let pool = mysql_async::Pool::new(server.as_str());
                let fut = async {
                    let mut c = pool.get_conn().await?;
                    c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                        .await
                };
                let _ = tokio::time::timeout(Duration::from_secs(10), fut).await;
                pool.disconnect().await.ok();
            });
            Some(())
        })
        .join();
    }
}

/// 16 hex digits that no other test database of this run, or of a concurrent run, has.
fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter and the time tell calls apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

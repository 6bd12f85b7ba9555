//! Migrations: embedded, versioned, applied in order under a MySQL named lock.

use anyhow::Context as _;
use mysql_async::prelude::*;
use mysql_async::Conn;

use super::Db;

/// Embedded, versioned migrations, applied in order.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../../migrations/0001_schema.sql"),
    ),
    (
        2,
        "reservations",
        include_str!("../../migrations/0002_reservations.sql"),
    ),
];

impl Db {
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

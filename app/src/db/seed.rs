//! Seeds and set-up: the delivery providers, the configured admin, demo books, the shop's own
//! database user.

use anyhow::Context as _;
use mysql_async::prelude::*;
use mysql_async::Conn;

use super::{random_token, Db};

/// The seeded delivery providers: name, coverage, cost in cents.
pub const PROVIDERS: &[(&str, &str, i64)] = &[
    ("DHL", "International, 3-5 days", 1500),
    ("FedEx", "International, 2-4 days", 1800),
    ("Envia", "National, 2-3 days", 700),
    ("Servientrega", "National, 1-3 days", 600),
];

impl Db {
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

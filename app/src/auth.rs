//! Accounts and request security: argon2 password hashes, MySQL-backed sessions, CSRF tokens, cookies.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use mysql_async::prelude::*;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::db::DbConn;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "bs_session";
/// Name of the CSRF cookie (a random value; forms carry its HMAC).
pub const CSRF_COOKIE: &str = "bs_csrf";
/// How long a session lives.
pub const SESSION_DAYS: u32 = 7;

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// SHA-256 of a session token, as stored in the database (a leaked table holds no live tokens).
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Argon2 is memory hungry: at most two hashes run at once.
fn hash_permits() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| Semaphore::new(2))
}

/// Most password checks (running or waiting) per instance; more are shed at once.
pub const MAX_HASH_QUEUE: usize = 32;

/// The instance's queue of requests that hash a password (login, register).
#[derive(Default)]
pub struct HashQueue(std::sync::atomic::AtomicUsize);

/// A place in a [`HashQueue`], given back when dropped.
pub struct HashSlot<'a>(&'a HashQueue);

impl Drop for HashSlot<'_> {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl HashQueue {
    /// Takes a place, or None when [`MAX_HASH_QUEUE`] requests already wait: a flood of logins
    /// or registrations is then answered 503 at once instead of queueing without bound.
    pub fn slot(&self) -> Option<HashSlot<'_>> {
        let before = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let slot = HashSlot(self);
        (before < MAX_HASH_QUEUE).then_some(slot)
    }
}

/// Hashes a password with argon2id (default parameters) on the blocking pool.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    let _permit = hash_permits().acquire().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

/// Checks a password against a stored argon2 hash.
pub async fn verify_password(password: String, hash: String) -> bool {
    let Ok(_permit) = hash_permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// The CSRF token expected in forms for this CSRF cookie and session.
pub fn csrf_token(key: &[u8], csrf_cookie: &str, session: Option<&str>) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(b"csrf|");
    mac.update(csrf_cookie.as_bytes());
    mac.update(b"|");
    mac.update(session.unwrap_or("").as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Constant-time check of a submitted CSRF token.
pub fn csrf_ok(
    key: &[u8],
    csrf_cookie: Option<&str>,
    session: Option<&str>,
    submitted: &str,
) -> bool {
    let Some(cookie) = csrf_cookie else {
        return false;
    };
    let expected = csrf_token(key, cookie, session);
    expected.len() == submitted.len()
        && expected
            .bytes()
            .zip(submitted.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The signed-in user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    /// Database id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// May list users.
    pub is_admin: bool,
}

/// Looks up the user of a session token (None when unknown or expired).
pub async fn session_user(c: &mut DbConn, token: &str) -> Result<Option<User>, mysql_async::Error> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let row: Option<(u64, String, String, bool)> = c
        .exec_first(
            "SELECT u.id, u.name, u.email, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = ? AND s.expires_at > NOW()",
            (token_hash(token),),
        )
        .await?;
    Ok(row.map(|(id, name, email, is_admin)| User {
        id,
        name,
        email,
        is_admin,
    }))
}

/// Creates a session for `user_id` and returns its token (the cookie value).
pub async fn create_session(c: &mut DbConn, user_id: u64) -> Result<String, mysql_async::Error> {
    let token = crate::db::random_token();
    c.exec_drop(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, NOW() + INTERVAL ? DAY)",
        (token_hash(&token), user_id, SESSION_DAYS),
    )
    .await?;
    // Opportunistic clean-up of expired sessions, bounded.
    c.query_drop("DELETE FROM sessions WHERE expires_at < NOW() LIMIT 100")
        .await?;
    Ok(token)
}

/// Deletes a session.
pub async fn delete_session(c: &mut DbConn, token: &str) -> Result<(), mysql_async::Error> {
    c.exec_drop(
        "DELETE FROM sessions WHERE token_hash = ?",
        (token_hash(token),),
    )
    .await
}

/// Failed logins allowed per email within the window.
pub const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// Failed logins allowed per client address within the window.
pub const MAX_FAILURES_PER_IP: i64 = 50;
/// Registrations refused (taken address) per client address within the window; beyond it every
/// registration from there is refused with the same answer, which bounds probing for accounts.
pub const MAX_REGISTER_REFUSALS_PER_IP: i64 = 20;
/// Throttle window in minutes.
pub const THROTTLE_MINUTES: i64 = 15;

/// Counts a login attempt for the key *before* the password is checked, and says whether it
/// is within `max` attempts of the current window (a new window starts when the old expired).
/// Counting first means a burst of concurrent attempts cannot all pass the check.
pub async fn count_attempt(
    c: &mut DbConn,
    key: &str,
    max: i64,
) -> Result<bool, mysql_async::Error> {
    c.exec_drop(
        "INSERT INTO login_failures (throttle_key, failures, window_start) VALUES (?, 1, NOW()) \
         ON DUPLICATE KEY UPDATE \
           failures = IF(window_start > NOW() - INTERVAL ? MINUTE, failures + 1, 1), \
           window_start = IF(window_start > NOW() - INTERVAL ? MINUTE, window_start, NOW())",
        (key, THROTTLE_MINUTES, THROTTLE_MINUTES),
    )
    .await?;
    let n: Option<i64> = c
        .exec_first(
            "SELECT failures FROM login_failures WHERE throttle_key = ?",
            (key,),
        )
        .await?;
    Ok(n.unwrap_or(0) <= max)
}

/// Takes back one counted attempt (a successful login does not count against its address).
pub async fn forgive_attempt(c: &mut DbConn, key: &str) -> Result<(), mysql_async::Error> {
    c.exec_drop(
        "UPDATE login_failures SET failures = GREATEST(failures - 1, 0) WHERE throttle_key = ?",
        (key,),
    )
    .await
}

/// Deletes up to 1000 expired throttle windows, so the table stays bounded; returns how many.
pub async fn purge_attempts(c: &mut DbConn) -> Result<u64, mysql_async::Error> {
    c.exec_drop(
        "DELETE FROM login_failures WHERE window_start < NOW() - INTERVAL ? MINUTE LIMIT 1000",
        (THROTTLE_MINUTES,),
    )
    .await?;
    Ok(c.affected_rows())
}

/// Forgets the failures of a key (after a successful login).
pub async fn clear_failures(c: &mut DbConn, key: &str) -> Result<(), mysql_async::Error> {
    c.exec_drop("DELETE FROM login_failures WHERE throttle_key = ?", (key,))
        .await
}

/// Value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure when served over TLS.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_bind_cookie_and_session() {
        let k = b"k".repeat(32);
        let t = csrf_token(&k, "abc", Some("s1"));
        assert!(csrf_ok(&k, Some("abc"), Some("s1"), &t));
        assert!(!csrf_ok(&k, Some("abd"), Some("s1"), &t));
        assert!(!csrf_ok(&k, Some("abc"), None, &t));
        assert!(!csrf_ok(&k, None, Some("s1"), &t));
        assert!(!csrf_ok(
            b"other-key-other-key",
            Some("abc"),
            Some("s1"),
            &t
        ));
        assert!(!csrf_ok(&k, Some("abc"), Some("s1"), ""));
    }

    #[test]
    fn cookies_parse_and_render() {
        assert_eq!(
            cookie("a=1; bs_session=xyz; c=3", "bs_session"),
            Some("xyz")
        );
        assert_eq!(cookie("a=1", "bs_session"), None);
        let c = set_cookie("n", "v", 10, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("Secure"));
        assert!(!set_cookie("n", "v", 10, false).contains("Secure"));
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("wrong".into(), h).await);
    }
}

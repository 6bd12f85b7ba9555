//! Safe against a real shop: the writing scenarios run elsewhere than loopback only with
//! `--yes-write` (see [`crate::args::validate`]), and everything they write is marked so that
//! [`CLEANUP_SQL`] (loadtests/cleanup.sql, documented in loadtests/README.md) removes it.

/// The e-mail domain of every load-test account (`.invalid` never resolves: RFC 2606).
pub const EMAIL_DOMAIN: &str = "loadtest.invalid";

/// What every load-test book's title starts with.
pub const TITLE_MARKER: &str = "[loadtest]";

/// Removes load-test accounts, purchases and books, giving back the stock they took.
pub const CLEANUP_SQL: &str = include_str!("../cleanup.sql");

/// A load-test account's e-mail.
pub fn email(role: &str, run_id: &str, user: usize, iteration: u64) -> String {
    format!("{role}-{run_id}-{user}-{iteration}@{EMAIL_DOMAIN}")
}

/// A load-test book's title.
pub fn title(run_id: &str, user: usize, iteration: u64) -> String {
    format!("{TITLE_MARKER} Load test book {run_id}-{user}-{iteration}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_marked_as_the_cleanup_expects() {
        let e = email("shopper", "ab12", 3, 7);
        assert_eq!(e, "shopper-ab12-3-7@loadtest.invalid");
        assert!(CLEANUP_SQL.contains("LIKE '%@loadtest.invalid'"));
        assert!(title("ab12", 3, 7).starts_with(TITLE_MARKER));
        assert!(CLEANUP_SQL.contains("\"[loadtest]\""));
    }
}

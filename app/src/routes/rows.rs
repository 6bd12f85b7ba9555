//! Typed database rows: a struct per query shape, read through `FromRow` (no positional tuples).

/// Declares a row struct whose fields are read, in order, from the query's columns.
macro_rules! row {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),+ $(,)? }) => {
        $(#[$m])*
        pub struct $name { $($(#[$fm])* pub $f: $t),+ }
        impl mysql_async::prelude::FromRow for $name {
            fn from_row_opt(row: mysql_async::Row) -> Result<Self, mysql_async::FromRowError> {
                let ($($f,)+) = <($($t,)+) as mysql_async::prelude::FromRow>::from_row_opt(row)?;
                Ok($name { $($f),+ })
            }
        }
    };
}

row! {
    /// A book as a card in a list (`BOOK_CARD_COLUMNS`).
    BookCard { id: u64, title: String, author: String, price_cents: i64, stock: i32, cover: Option<String> }
}

/// The columns of [`BookCard`], for `SELECT {BOOK_CARD_COLUMNS} FROM books`.
pub const BOOK_CARD_COLUMNS: &str = "id, title, author, price_cents, stock, cover";

row! {
    /// A book's own page.
    BookDetail {
        id: u64, title: String, author: String, description: String, price_cents: i64,
        stock: i32, cover: Option<String>, seller_id: u64, seller_name: String,
    }
}

row! {
    /// What the seller's edit form starts from.
    BookEditable { title: String, author: String, description: String, price_cents: i64, stock: i32 }
}

row! {
    /// Who sells a book and its current cover.
    BookOwner { seller_id: u64, cover: Option<String> }
}

row! {
    /// One purchase with its book title and buyer.
    Purchase {
        id: u64, book_id: u64, title: String, quantity: u32, total_cents: i64, status: String,
        user_id: u64, reserved_until: Option<String>,
    }
}

row! {
    /// One line of "My orders".
    OrderLine {
        id: u64, book_id: u64, title: String, quantity: u32, total_cents: i64, status: String,
        provider: Option<String>, reserved_until: Option<String>,
    }
}

row! {
    /// An unpaid purchase whose reservation lapsed.
    Lapsed { id: u64, book_id: u64, quantity: u32 }
}

row! {
    /// A courier.
    Provider { id: u64, name: String, coverage: String, cost_cents: i64 }
}

row! {
    /// A line of the admin's user list.
    UserLine { id: u64, name: String, email: String, is_admin: bool, created_at: String }
}

row! {
    /// What a login checks.
    Credentials { id: u64, password_hash: String }
}

/// Formats cents as `12.34`.
pub fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Parses a price like `12`, `12.5` or `12.34` into cents.
pub fn parse_money(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches('$');
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || whole.len() > 7
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + frac.parse::<i64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_round_trips() {
        assert_eq!(parse_money("12.5"), Some(1250));
        assert_eq!(parse_money("$3"), Some(300));
        assert_eq!(parse_money("0.07"), Some(7));
        assert_eq!(parse_money("-1"), None);
        assert_eq!(parse_money("1.234"), None);
        assert_eq!(parse_money("1e3"), None);
        assert_eq!(money(1250), "12.50");
    }
}

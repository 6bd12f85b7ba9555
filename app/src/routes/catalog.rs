//! The catalog: the home page, the paged and searchable book list (cached), a book's page.

use mysql_async::prelude::*;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::cache::{search_key, Lookup};
use super::guard::Ctx;
use super::respond::{common, html_page, page, PageError, PageResult};
use super::rows::{money, BookCard, BookDetail, BOOK_CARD_COLUMNS};
use super::Params;
use crate::server::{Request, State};

/// Books per catalog page.
pub const PAGE_SIZE: u32 = 50;
/// Most copies bought at once.
pub const MAX_QUANTITY: u32 = 10;

/// The URL of a book's cover (a stored upload or the placeholder).
pub fn cover_url(cover: &Option<String>) -> String {
    match cover {
        Some(c) => format!("/uploads/{c}"),
        None => "/static/cover.svg".into(),
    }
}

/// A book card for the templates.
pub fn book_card(b: BookCard) -> Value {
    json!({"id": b.id, "title": b.title, "author": b.author, "price": money(b.price_cents),
           "stock": b.stock, "sold_out": b.stock <= 0, "cover_url": cover_url(&b.cover)})
}

/// `GET /`: the ten newest books.
pub async fn home(st: &State, ctx: &Ctx, _req: &Request, _p: Params) -> PageResult {
    let mut c = super::conn(st).await?;
    let rows: Vec<BookCard> = c
        .exec(
            format!("SELECT {BOOK_CARD_COLUMNS} FROM books WHERE active ORDER BY id DESC LIMIT 10"),
            (),
        )
        .await?;
    drop(c);
    let books: Vec<Value> = rows.into_iter().map(book_card).collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "home",
        "Home",
        json!({"books": books}),
    )
}

/// `GET /books?page=&q=`: served from the catalog cache when fresh.
pub async fn catalog(st: &State, ctx: &Ctx, req: &Request, _p: Params) -> PageResult {
    let q = req.query_map();
    let page_no = q
        .get("page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let term = search_key(q.get("q").map(String::as_str).unwrap_or(""));
    let key = (page_no, term);
    let body = match st.catalog_cache.get(&key) {
        Lookup::Hit(html) => html,
        Lookup::Render => {
            let generation = st.catalog_cache.generation();
            let html: std::sync::Arc<str> = render_catalog(st, page_no, &key.1).await?.into();
            st.catalog_cache.put(key, html.clone(), generation);
            html
        }
    };
    let html = st.views.layout(&body, common(st, Some(ctx), "Catalog"))?;
    Ok(html_page(StatusCode::OK, html))
}

async fn render_catalog(st: &State, page_no: u32, term: &str) -> Result<String, PageError> {
    let offset = (page_no - 1) * PAGE_SIZE;
    // One scan for the page and the count; at most a few searches scan at once (the turn is
    // waited for before a pooled connection is taken).
    let _search_turn = match term.is_empty() {
        true => None,
        false => Some(
            st.searches
                .acquire()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    };
    let mut c = super::conn(st).await?;
    let (total, rows): (i64, Vec<BookCard>) = if term.is_empty() {
        let total: Option<i64> = c
            .exec_first("SELECT COUNT(*) FROM books WHERE active", ())
            .await?;
        let rows = c
            .exec(
                format!("SELECT {BOOK_CARD_COLUMNS} FROM books WHERE active ORDER BY id DESC LIMIT ? OFFSET ?"),
                (PAGE_SIZE, offset),
            )
            .await?;
        (total.unwrap_or(0), rows)
    } else {
        let pattern = format!(
            "%{}%",
            term.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows: Vec<SearchHit> = c
            .exec(
                format!("SELECT {BOOK_CARD_COLUMNS}, COUNT(*) OVER () FROM books WHERE active AND (title LIKE ? OR author LIKE ?) ORDER BY id DESC LIMIT ? OFFSET ?"),
                (&pattern, &pattern, PAGE_SIZE, offset),
            )
            .await?;
        let total = match rows.first() {
            Some(r) => Some(r.total),
            // Past the last page: count to show the right page links.
            None => {
                c.exec_first(
                    "SELECT COUNT(*) FROM books WHERE active AND (title LIKE ? OR author LIKE ?)",
                    (&pattern, &pattern),
                )
                .await?
            }
        };
        let rows = rows.into_iter().map(|r| r.book).collect();
        (total.unwrap_or(0), rows)
    };
    drop(c);
    let pages_total = ((total as u32).div_ceil(PAGE_SIZE)).max(1);
    let lo = page_no.saturating_sub(5).max(1);
    let hi = (lo + 10).min(pages_total);
    let pages: Vec<Value> = if pages_total > 1 {
        (lo..=hi)
            .map(|n| json!({"n": n, "current": n == page_no}))
            .collect()
    } else {
        Vec::new()
    };
    let q_url = serde_urlencoded::to_string([("q", term)]).unwrap_or_default();
    let books: Vec<Value> = rows.into_iter().map(book_card).collect();
    Ok(st.views.fragment(
        "catalog",
        &json!({"books": books, "q": term, "q_url": q_url.trim_start_matches("q="), "total": total, "pages": pages}),
    )?)
}

/// A search result row: the card and the number of matches.
struct SearchHit {
    book: BookCard,
    total: i64,
}

impl mysql_async::prelude::FromRow for SearchHit {
    fn from_row_opt(row: mysql_async::Row) -> Result<Self, mysql_async::FromRowError> {
        type Cols = (u64, String, String, i64, i32, Option<String>, i64);
        let (id, title, author, price_cents, stock, cover, total) = Cols::from_row_opt(row)?;
        Ok(SearchHit {
            book: BookCard {
                id,
                title,
                author,
                price_cents,
                stock,
                cover,
            },
            total,
        })
    }
}

/// `GET /books/{id}`.
pub async fn book(st: &State, ctx: &Ctx, _req: &Request, p: Params) -> PageResult {
    let mut c = super::conn(st).await?;
    let row: Option<BookDetail> = c
        .exec_first(
            "SELECT b.id, b.title, b.author, b.description, b.price_cents, b.stock, b.cover, b.seller_id, u.name \
             FROM books b JOIN users u ON u.id = b.seller_id WHERE b.id = ? AND b.active",
            (p.id,),
        )
        .await?;
    drop(c);
    let b = row.ok_or(PageError::NotFound)?;
    let is_seller = ctx.user.as_ref().is_some_and(|u| u.id == b.seller_id);
    let max_qty = (b.stock.max(0) as u32).min(MAX_QUANTITY);
    page(
        st,
        ctx,
        StatusCode::OK,
        "book",
        &b.title.clone(),
        json!({"book": {"id": b.id, "title": b.title, "author": b.author, "description": b.description,
                "price": money(b.price_cents), "stock": b.stock, "sold_out": b.stock <= 0,
                "cover_url": cover_url(&b.cover), "seller_name": b.seller_name},
               "is_seller": is_seller, "max_qty": max_qty}),
    )
}

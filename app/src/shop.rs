//! The shop's pages: routing, sessions and CSRF per request, and every handler.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use mysql_async::prelude::*;
use serde_json::{json, Map, Value};
use warp::http::{header, HeaderValue, Method, StatusCode};

use crate::auth::{self, User};
use crate::db::DbConn;
use crate::server::{client_info, Request, Response, State};
use crate::uploads;
use crate::views::{content_type, Static};

/// Books per catalog page.
pub const PAGE_SIZE: u32 = 50;
/// Most copies bought at once.
pub const MAX_QUANTITY: u32 = 10;

/// How long a rendered catalog page is reused.
pub const CATALOG_TTL: Duration = Duration::from_secs(1);

/// Page number and search term.
type CacheKey = (u32, String);
/// A rendered page: when, in which generation, the HTML, and since when one request has been
/// re-rendering it.
struct CachedPage {
    at: std::time::Instant,
    generation: u64,
    html: std::sync::Arc<str>,
    refreshing_since: Option<std::time::Instant>,
}

/// How long one request may take to re-render an expired page before another may try.
const REFRESH_GRACE: Duration = Duration::from_secs(5);

/// What the cache says about a page.
enum Lookup {
    /// Serve this copy.
    Hit(std::sync::Arc<str>),
    /// Render the page (and `put` it); the caller is the only one doing so for an expired page.
    Render,
}

/// A short-lived cache of rendered catalog pages (the same for every visitor), so a busy
/// catalog costs neither a query nor a render per request. Book changes made on this
/// instance bump the generation and so invalidate it at once; other instances' changes
/// show within [`CATALOG_TTL`]. When a page expires, one request re-renders it while the
/// others keep getting the expired copy, so expiry never sends a burst of queries.
#[derive(Default)]
pub struct PageCache {
    generation: std::sync::atomic::AtomicU64,
    pages: std::sync::Mutex<HashMap<CacheKey, CachedPage>>,
}

impl PageCache {
    fn get(&self, key: &(u32, String)) -> Lookup {
        let generation = self.generation.load(Ordering::Relaxed);
        let Ok(mut pages) = self.pages.lock() else {
            return Lookup::Render;
        };
        let Some(page) = pages.get_mut(key).filter(|p| p.generation == generation) else {
            return Lookup::Render;
        };
        if page.at.elapsed() < CATALOG_TTL {
            return Lookup::Hit(page.html.clone());
        }
        match page.refreshing_since {
            Some(since) if since.elapsed() < REFRESH_GRACE => Lookup::Hit(page.html.clone()),
            _ => {
                page.refreshing_since = Some(std::time::Instant::now());
                Lookup::Render
            }
        }
    }

    fn put(&self, key: (u32, String), html: std::sync::Arc<str>, generation: u64) {
        if let Ok(mut pages) = self.pages.lock() {
            if pages.len() >= 512 {
                pages.retain(|_, p| p.at.elapsed() < CATALOG_TTL);
                if pages.len() >= 512 {
                    pages.clear();
                }
            }
            let page = CachedPage {
                at: std::time::Instant::now(),
                generation,
                html,
                refreshing_since: None,
            };
            pages.insert(key, page);
        }
    }

    /// Forgets every page (after a change to the books).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// What went wrong while serving a page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No such page or not yours.
    #[error("not found")]
    NotFound,
    /// Signed in but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Bad CSRF token.
    #[error("csrf")]
    Csrf,
    /// A state conflict (sold out, already paid).
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    BadRequest(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] mysql_async::Error),
    /// Anything else.
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

type PageResult = Result<Response, PageError>;

/// The metrics/log label of a path.
pub fn route_name(path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match segs.as_slice() {
        [""] => "/",
        ["books"] => "/books",
        ["books", "new"] => "/books/new",
        ["books", id] if num(id) => "/books/{id}",
        ["books", id, "edit"] if num(id) => "/books/{id}/edit",
        ["books", id, "delete"] if num(id) => "/books/{id}/delete",
        ["books", id, "buy"] if num(id) => "/books/{id}/buy",
        ["purchases", id, "pay"] if num(id) => "/purchases/{id}/pay",
        ["purchases", id, "delivery"] if num(id) => "/purchases/{id}/delivery",
        ["orders"] => "/orders",
        ["my", "books"] => "/my/books",
        ["register"] => "/register",
        ["login"] => "/login",
        ["logout"] => "/logout",
        ["admin", "users"] => "/admin/users",
        ["static", ..] => "/static",
        ["uploads", ..] => "/uploads",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        _ => "other",
    }
}

/// Per-request security context: the user, the session token and the CSRF cookie.
pub struct Ctx {
    user: Option<User>,
    session: Option<String>,
    csrf_cookie: String,
    set_csrf: bool,
    secure: bool,
    client_ip: std::net::IpAddr,
    cookies: Vec<String>,
}

impl Ctx {
    fn csrf(&self, st: &State) -> String {
        auth::csrf_token(
            &st.config.secret_key,
            &self.csrf_cookie,
            self.session.as_deref(),
        )
    }

    fn check_csrf(&self, st: &State, submitted: Option<&String>) -> Result<(), PageError> {
        let ok = !self.set_csrf
            && auth::csrf_ok(
                &st.config.secret_key,
                Some(&self.csrf_cookie),
                self.session.as_deref(),
                submitted.map(String::as_str).unwrap_or(""),
            );
        if ok {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }

    fn require_user(&self) -> Result<&User, PageError> {
        self.user.as_ref().ok_or(PageError::Forbidden("login"))
    }
}

/// Serves one request.
pub async fn dispatch(st: &State, req: Request) -> Response {
    let segs: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let get = req.method == Method::GET || req.method == Method::HEAD;
    let post = req.method == Method::POST;
    // Routes that need no database.
    match (segs.as_slice(), get) {
        (["healthz"], true) => return text(StatusCode::OK, "ok"),
        (["readyz"], true) => return readyz(st).await,
        (["metrics"], true) => {
            let body = st.metrics.render(
                &st.config.instance_id,
                st.db.in_use(),
                st.db.max,
                st.ready.load(Ordering::Relaxed),
            );
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return r;
        }
        (["static", name], true) => return static_file(name),
        (["uploads", name], true) => return upload_file(st, name).await,
        _ => {}
    }
    if !st.ready.load(Ordering::SeqCst) {
        let mut r = error_page(
            st,
            StatusCode::SERVICE_UNAVAILABLE,
            "The shop is starting up; try again in a moment.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        return r;
    }
    let ctx = match context(st, &req).await {
        Ok(c) => c,
        Err(e) => return error_response(st, None, e),
    };
    let id = |s: &str| s.parse::<u64>().map_err(|_| PageError::NotFound);
    let res: PageResult = match (segs.as_slice(), get, post) {
        ([""], true, _) => home(st, &ctx).await,
        (["books"], true, _) => catalog(st, &ctx, &req).await,
        (["books", "new"], true, _) => book_form_page(st, &ctx, None).await,
        (["books", "new"], _, true) => save_book(st, &ctx, &req, None).await,
        (["books", i], true, _) => async { book_page(st, &ctx, id(i)?).await }.await,
        (["books", i, "edit"], true, _) => {
            async { book_form_page(st, &ctx, Some(id(i)?)).await }.await
        }
        (["books", i, "edit"], _, true) => {
            async { save_book(st, &ctx, &req, Some(id(i)?)).await }.await
        }
        (["books", i, "delete"], _, true) => {
            async { delete_book(st, &ctx, &req, id(i)?).await }.await
        }
        (["books", i, "buy"], _, true) => async { buy(st, &ctx, &req, id(i)?).await }.await,
        (["purchases", i, "pay"], true, _) => async { pay_page(st, &ctx, id(i)?).await }.await,
        (["purchases", i, "pay"], _, true) => async { pay(st, &ctx, &req, id(i)?).await }.await,
        (["purchases", i, "delivery"], true, _) => {
            async { delivery_page(st, &ctx, id(i)?).await }.await
        }
        (["purchases", i, "delivery"], _, true) => {
            async { deliver(st, &ctx, &req, id(i)?).await }.await
        }
        (["orders"], true, _) => orders(st, &ctx, &req).await,
        (["my", "books"], true, _) => my_books(st, &ctx).await,
        (["register"], true, _) => register_page(st, &ctx, "", "", None, StatusCode::OK),
        (["register"], _, true) => register(st, &ctx, &req).await,
        (["login"], true, _) => login_page(st, &ctx, "", None, StatusCode::OK),
        (["login"], _, true) => login(st, &ctx, &req).await,
        (["logout"], _, true) => logout(st, &ctx, &req).await,
        (["admin", "users"], true, _) => admin_users(st, &ctx).await,
        _ => Err(PageError::NotFound),
    };
    let mut resp = match res {
        Ok(r) => r,
        Err(e) => error_response(st, Some(&ctx), e),
    };
    for c in &ctx.cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if ctx.set_csrf {
        let c = auth::set_cookie(
            auth::CSRF_COOKIE,
            &ctx.csrf_cookie,
            60 * 60 * 24 * 30,
            ctx.secure,
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if req.method == Method::HEAD {
        *resp.body_mut() = Bytes::new().into();
    }
    resp
}

async fn context(st: &State, req: &Request) -> Result<Ctx, PageError> {
    let (client_ip, secure) = client_info(st, req);
    let cookies = req.header("cookie").unwrap_or("");
    let (csrf_cookie, set_csrf) = match auth::cookie(cookies, auth::CSRF_COOKIE) {
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (v.to_string(), false)
        }
        _ => (crate::db::random_token(), true),
    };
    let mut ctx = Ctx {
        user: None,
        session: None,
        csrf_cookie,
        set_csrf,
        secure,
        client_ip,
        cookies: Vec::new(),
    };
    if let Some(token) = auth::cookie(cookies, auth::SESSION_COOKIE) {
        let mut c = st.db.conn().await?;
        match auth::session_user(&mut c, token).await? {
            Some(u) => {
                ctx.user = Some(u);
                ctx.session = Some(token.to_string());
            }
            None => ctx
                .cookies
                .push(auth::set_cookie(auth::SESSION_COOKIE, "", 0, secure)),
        }
    }
    Ok(ctx)
}

// ---------- responses ----------

fn with_status(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    with_status(status, "text/plain; charset=utf-8", body)
}

fn redirect(to: &str) -> Response {
    let mut r = with_status(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Bytes::new(),
    );
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn common(st: &State, ctx: Option<&Ctx>, title: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("title".into(), json!(title));
    m.insert("instance".into(), json!(st.config.instance_id));
    m.insert("flash".into(), Value::Null);
    match ctx {
        Some(c) => {
            m.insert("user".into(), json!(c.user));
            m.insert("csrf".into(), json!(c.csrf(st)));
        }
        None => {
            m.insert("user".into(), Value::Null);
            m.insert("csrf".into(), json!(""));
        }
    }
    m
}

fn page(
    st: &State,
    ctx: &Ctx,
    status: StatusCode,
    template: &str,
    title: &str,
    data: Value,
) -> PageResult {
    page_flash(st, ctx, status, template, title, data, None)
}

fn page_flash(
    st: &State,
    ctx: &Ctx,
    status: StatusCode,
    template: &str,
    title: &str,
    data: Value,
    flash: Option<(&str, &str)>,
) -> PageResult {
    let mut c = common(st, Some(ctx), title);
    if let Some((kind, text)) = flash {
        c.insert("flash".into(), json!({"kind": kind, "text": text}));
    }
    let html = st.views.page(template, data, c)?;
    let mut r = with_status(status, "text/html; charset=utf-8", html);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// An HTML error page without a user context.
pub fn error_page(st: &State, status: StatusCode, message: &str) -> Response {
    let html = st
        .views
        .page(
            "error",
            json!({"status": status.as_u16(), "message": message}),
            common(st, None, status.canonical_reason().unwrap_or("Error")),
        )
        .unwrap_or_else(|_| message.to_string());
    with_status(status, "text/html; charset=utf-8", html)
}

fn error_response(st: &State, ctx: Option<&Ctx>, e: PageError) -> Response {
    let (status, msg): (StatusCode, String) = match &e {
        PageError::NotFound => (StatusCode::NOT_FOUND, "We could not find that page.".into()),
        PageError::Forbidden("login") => return redirect("/login"),
        PageError::Forbidden(m) => (StatusCode::FORBIDDEN, (*m).into()),
        PageError::Csrf => (
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this shop; reload the page and try again."
                .into(),
        ),
        PageError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
        PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
        PageError::Db(err) => {
            tracing::error!("database error: {err}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The shop's database is unavailable; try again in a moment.".into(),
            )
        }
        PageError::Internal(err) => {
            tracing::error!("internal error: {err:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.".into(),
            )
        }
    };
    let title = status.canonical_reason().unwrap_or("Error");
    let html = st
        .views
        .page(
            "error",
            json!({"status": status.as_u16(), "message": msg}),
            common(st, ctx, title),
        )
        .unwrap_or(msg);
    with_status(status, "text/html; charset=utf-8", html)
}

async fn readyz(st: &State) -> Response {
    if st.draining.load(Ordering::SeqCst) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    if !st.ready.load(Ordering::SeqCst) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: database not reachable or not migrated yet",
        );
    }
    if st.db.ping(Duration::from_secs(2)).await || st.db.ping(Duration::from_secs(1)).await {
        text(StatusCode::OK, "ready")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

fn static_file(name: &str) -> Response {
    match Static::get(name) {
        Some(f) => {
            let mut r = with_status(StatusCode::OK, content_type(name), f.data.into_owned());
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            r
        }
        None => text(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn upload_file(st: &State, name: &str) -> Response {
    if !uploads::is_stored_name(name) {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    match tokio::fs::read(st.config.uploads_dir.join(name)).await {
        Ok(data) => {
            let mut r = with_status(StatusCode::OK, content_type(name), data);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            );
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'"),
            );
            r
        }
        Err(_) => text(StatusCode::NOT_FOUND, "not found"),
    }
}

// ---------- helpers ----------

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

fn form(req: &Request) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&req.body)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn cover_url(cover: &Option<String>) -> String {
    match cover {
        Some(c) => format!("/uploads/{c}"),
        None => "/static/cover.svg".into(),
    }
}

type BookRow = (u64, String, String, i64, i32, Option<String>);
/// id, title, author, description, price, stock, cover, seller id, seller name.
type BookDetailRow = (
    u64,
    String,
    String,
    String,
    i64,
    i32,
    Option<String>,
    u64,
    String,
);
/// id, book id, title, quantity, total, status, courier.
type OrderListRow = (u64, u64, String, u32, i64, String, Option<String>);

fn book_card((id, title, author, price, stock, cover): BookRow) -> Value {
    json!({"id": id, "title": title, "author": author, "price": money(price), "stock": stock,
           "sold_out": stock <= 0, "cover_url": cover_url(&cover)})
}

// ---------- catalog ----------

async fn home(st: &State, ctx: &Ctx) -> PageResult {
    let mut c = st.db.conn().await?;
    let rows: Vec<BookRow> = c
        .exec(
            "SELECT id, title, author, price_cents, stock, cover FROM books WHERE active ORDER BY id DESC LIMIT 10",
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

async fn catalog(st: &State, ctx: &Ctx, req: &Request) -> PageResult {
    let q = req.query_map();
    let page_no = q
        .get("page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    let term: String = q
        .get("q")
        .map(|s| s.trim())
        .unwrap_or("")
        .chars()
        .take(100)
        .collect();
    let key = (page_no, term);
    let body = match st.catalog_cache.get(&key) {
        Lookup::Hit(html) => html,
        Lookup::Render => {
            let generation = st.catalog_cache.generation.load(Ordering::Relaxed);
            let html: std::sync::Arc<str> = render_catalog(st, page_no, &key.1).await?.into();
            st.catalog_cache.put(key, html.clone(), generation);
            html
        }
    };
    let html = st.views.layout(&body, common(st, Some(ctx), "Catalog"))?;
    let mut r = with_status(StatusCode::OK, "text/html; charset=utf-8", html);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn render_catalog(st: &State, page_no: u32, term: &str) -> Result<String, PageError> {
    let offset = (page_no - 1) * PAGE_SIZE;
    let mut c = st.db.conn().await?;
    let (total, rows): (i64, Vec<BookRow>) = if term.is_empty() {
        let total: Option<i64> = c
            .exec_first("SELECT COUNT(*) FROM books WHERE active", ())
            .await?;
        let rows = c
            .exec(
                "SELECT id, title, author, price_cents, stock, cover FROM books WHERE active ORDER BY id DESC LIMIT ? OFFSET ?",
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
        let total: Option<i64> = c
            .exec_first(
                "SELECT COUNT(*) FROM books WHERE active AND (title LIKE ? OR author LIKE ?)",
                (&pattern, &pattern),
            )
            .await?;
        let rows = c
            .exec(
                "SELECT id, title, author, price_cents, stock, cover FROM books WHERE active AND (title LIKE ? OR author LIKE ?) ORDER BY id DESC LIMIT ? OFFSET ?",
                (&pattern, &pattern, PAGE_SIZE, offset),
            )
            .await?;
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

async fn book_page(st: &State, ctx: &Ctx, id: u64) -> PageResult {
    let mut c = st.db.conn().await?;
    let row: Option<BookDetailRow> = c
        .exec_first(
            "SELECT b.id, b.title, b.author, b.description, b.price_cents, b.stock, b.cover, b.seller_id, u.name \
             FROM books b JOIN users u ON u.id = b.seller_id WHERE b.id = ? AND b.active",
            (id,),
        )
        .await?;
    drop(c);
    let (id, title, author, description, price, stock, cover, seller_id, seller_name) =
        row.ok_or(PageError::NotFound)?;
    let is_seller = ctx
        .user
        .as_ref()
        .map(|u| u.id == seller_id)
        .unwrap_or(false);
    let max_qty = (stock.max(0) as u32).min(MAX_QUANTITY);
    page(
        st,
        ctx,
        StatusCode::OK,
        "book",
        &title.clone(),
        json!({"book": {"id": id, "title": title, "author": author, "description": description,
                "price": money(price), "stock": stock, "sold_out": stock <= 0, "cover_url": cover_url(&cover),
                "seller_name": seller_name},
               "is_seller": is_seller, "max_qty": max_qty}),
    )
}

// ---------- selling ----------

#[derive(Default, serde::Serialize)]
struct BookForm {
    title: String,
    author: String,
    description: String,
    price: String,
    stock: String,
}

async fn seller_check(c: &mut DbConn, book: u64, user: &User) -> Result<Option<String>, PageError> {
    let row: Option<(u64, Option<String>)> = c
        .exec_first(
            "SELECT seller_id, cover FROM books WHERE id = ? AND active",
            (book,),
        )
        .await?;
    match row {
        None => Err(PageError::NotFound),
        Some((seller, _)) if seller != user.id => Err(PageError::Forbidden(
            "Only the seller of this book may change it.",
        )),
        Some((_, cover)) => Ok(cover),
    }
}

async fn book_form_page(st: &State, ctx: &Ctx, id: Option<u64>) -> PageResult {
    let user = ctx.require_user()?;
    let (form, heading, action) = match id {
        None => (
            BookForm {
                stock: "1".into(),
                ..Default::default()
            },
            "Sell a book".to_string(),
            "/books/new".to_string(),
        ),
        Some(id) => {
            let mut c = st.db.conn().await?;
            seller_check(&mut c, id, user).await?;
            let (title, author, description, price, stock): (String, String, String, i64, i32) = c
                .exec_first(
                    "SELECT title, author, description, price_cents, stock FROM books WHERE id = ?",
                    (id,),
                )
                .await?
                .ok_or(PageError::NotFound)?;
            (
                BookForm {
                    title,
                    author,
                    description,
                    price: money(price),
                    stock: stock.to_string(),
                },
                "Edit book".to_string(),
                format!("/books/{id}/edit"),
            )
        }
    };
    page(
        st,
        ctx,
        StatusCode::OK,
        "book_form",
        &heading.clone(),
        json!({"form": form, "heading": heading, "action": action, "error": null}),
    )
}

struct Upload {
    fields: HashMap<String, String>,
    cover: Option<(Option<String>, Bytes)>,
}

async fn parse_multipart(req: &Request) -> Result<Upload, PageError> {
    let ctype = req.header("content-type").unwrap_or("");
    let boundary = multer::parse_boundary(ctype)
        .map_err(|_| PageError::BadRequest("Expected a multipart/form-data form.".into()))?;
    let body = req.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(crate::server::MAX_BODY_BYTES as u64)
            .per_field(64 * 1024)
            .for_field("cover", crate::server::MAX_BODY_BYTES as u64),
    );
    let mut mp = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut out = Upload {
        fields: HashMap::new(),
        cover: None,
    };
    for _ in 0..32 {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(PageError::BadRequest(format!(
                    "The form could not be read: {e}"
                )))
            }
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let data = field
            .bytes()
            .await
            .map_err(|e| PageError::BadRequest(format!("The form could not be read: {e}")))?;
        if name == "cover" {
            if !data.is_empty() {
                out.cover = Some((file_name, data));
            }
        } else {
            out.fields
                .insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Err(PageError::BadRequest(
        "The form has too many fields.".into(),
    ))
}

async fn save_book(st: &State, ctx: &Ctx, req: &Request, id: Option<u64>) -> PageResult {
    let user = ctx.require_user()?.clone();
    let up = parse_multipart(req).await?;
    ctx.check_csrf(st, up.fields.get("csrf"))?;
    let f = |k: &str| {
        up.fields
            .get(k)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let form = BookForm {
        title: f("title"),
        author: f("author"),
        description: f("description"),
        price: f("price"),
        stock: f("stock"),
    };
    let (heading, action) = match id {
        None => ("Sell a book".to_string(), "/books/new".to_string()),
        Some(i) => ("Edit book".to_string(), format!("/books/{i}/edit")),
    };
    let mut c = st.db.conn().await?;
    let old_cover = match id {
        Some(i) => seller_check(&mut c, i, &user).await?,
        None => None,
    };
    let price = parse_money(&form.price);
    let stock = form
        .stock
        .parse::<i32>()
        .ok()
        .filter(|s| (0..=1_000_000).contains(s));
    let mut error: Option<(StatusCode, String)> = None;
    if form.title.is_empty() || form.title.chars().count() > 200 {
        error = Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "The title is required (at most 200 characters).".into(),
        ));
    } else if form.author.is_empty() || form.author.chars().count() > 200 {
        error = Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "The author is required (at most 200 characters).".into(),
        ));
    } else if form.description.chars().count() > 5000 {
        error = Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "The description is too long (at most 5000 characters).".into(),
        ));
    } else if price.is_none() {
        error = Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "The price must be an amount like 12.50.".into(),
        ));
    } else if stock.is_none() {
        error = Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "The stock must be a whole number, 0 or more.".into(),
        ));
    }
    let mut new_cover = None;
    if error.is_none() {
        if let Some((name, data)) = &up.cover {
            match uploads::validate(name.as_deref(), data) {
                Ok(ext) => {
                    let stored = uploads::store(&st.config.uploads_dir, ext, data)
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "storing cover in {}: {e}",
                                st.config.uploads_dir.display()
                            )
                        })?;
                    new_cover = Some(stored);
                }
                Err(e) => {
                    let code = match e {
                        uploads::CoverError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                        uploads::CoverError::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        uploads::CoverError::BadName => StatusCode::BAD_REQUEST,
                    };
                    error = Some((code, e.to_string()));
                }
            }
        }
    }
    if let Some((code, msg)) = error {
        drop(c);
        return page(
            st,
            ctx,
            code,
            "book_form",
            &heading.clone(),
            json!({"form": form, "heading": heading, "action": action, "error": msg}),
        );
    }
    let (price, stock) = (price.unwrap_or(0), stock.unwrap_or(0));
    let book_id = match id {
        None => {
            c.exec_drop(
                "INSERT INTO books (title, author, description, price_cents, stock, seller_id, cover) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (&form.title, &form.author, &form.description, price, stock, user.id, &new_cover),
            )
            .await?;
            c.last_insert_id()
                .ok_or_else(|| anyhow::anyhow!("no id for the new book"))?
        }
        Some(i) => {
            c.exec_drop(
                "UPDATE books SET title = ?, author = ?, description = ?, price_cents = ?, stock = ?, cover = COALESCE(?, cover) WHERE id = ? AND seller_id = ?",
                (&form.title, &form.author, &form.description, price, stock, &new_cover, i, user.id),
            )
            .await?;
            if let (Some(_), Some(old)) = (&new_cover, old_cover) {
                if uploads::is_stored_name(&old) {
                    let _ = tokio::fs::remove_file(st.config.uploads_dir.join(old)).await;
                }
            }
            i
        }
    };
    st.catalog_cache.invalidate();
    Ok(redirect(&format!("/books/{book_id}")))
}

async fn delete_book(st: &State, ctx: &Ctx, req: &Request, id: u64) -> PageResult {
    let user = ctx.require_user()?;
    ctx.check_csrf(st, form(req).get("csrf"))?;
    let mut c = st.db.conn().await?;
    seller_check(&mut c, id, user).await?;
    c.exec_drop(
        "UPDATE books SET active = FALSE WHERE id = ? AND seller_id = ?",
        (id, user.id),
    )
    .await?;
    st.catalog_cache.invalidate();
    Ok(redirect("/my/books"))
}

async fn my_books(st: &State, ctx: &Ctx) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = st.db.conn().await?;
    let rows: Vec<BookRow> = c
        .exec(
            "SELECT id, title, author, price_cents, stock, cover FROM books WHERE seller_id = ? AND active ORDER BY id DESC LIMIT 500",
            (user.id,),
        )
        .await?;
    drop(c);
    let books: Vec<Value> = rows.into_iter().map(book_card).collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "my_books",
        "My books",
        json!({"books": books}),
    )
}

// ---------- buying ----------

async fn buy(st: &State, ctx: &Ctx, req: &Request, book: u64) -> PageResult {
    let user = ctx.require_user()?;
    let f = form(req);
    ctx.check_csrf(st, f.get("csrf"))?;
    // Only the quantity comes from the browser; price and total come from the database.
    let qty = match f.get("quantity").map(|q| q.trim()) {
        None | Some("") => 1,
        Some(q) => q
            .parse::<u32>()
            .ok()
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                PageError::BadRequest(format!(
                    "The quantity must be between 1 and {MAX_QUANTITY}."
                ))
            })?,
    };
    let mut c = st.db.conn().await?;
    let mut tx = c.start_transaction(Default::default()).await?;
    // A seller cannot buy their own book (the page hides the button; this is the rule).
    tx.exec_drop(
        "UPDATE books SET stock = stock - ? WHERE id = ? AND active AND stock >= ? AND seller_id <> ?",
        (qty, book, qty, user.id),
    )
    .await?;
    if tx.affected_rows() != 1 {
        let exists: Option<u64> = tx
            .exec_first(
                "SELECT seller_id FROM books WHERE id = ? AND active",
                (book,),
            )
            .await?;
        tx.rollback().await?;
        return match exists {
            None => Err(PageError::NotFound),
            Some(seller) if seller == user.id => {
                Err(PageError::Forbidden("You cannot buy your own book."))
            }
            Some(_) => Err(PageError::Conflict(
                "Sorry, there are not enough copies left of this book.".into(),
            )),
        };
    }
    let price: Option<i64> = tx
        .exec_first("SELECT price_cents FROM books WHERE id = ?", (book,))
        .await?;
    let price = price.ok_or(PageError::NotFound)?;
    tx.exec_drop(
        "INSERT INTO purchases (user_id, book_id, quantity, total_cents, status) VALUES (?, ?, ?, ?, 'pending')",
        (user.id, book, qty, price * i64::from(qty)),
    )
    .await?;
    let purchase = tx
        .last_insert_id()
        .ok_or_else(|| anyhow::anyhow!("no id for the purchase"))?;
    tx.commit().await?;
    st.catalog_cache.invalidate();
    Ok(redirect(&format!("/purchases/{purchase}/pay")))
}

type OrderRow = (u64, u64, String, u32, i64, String);

async fn my_purchase(c: &mut DbConn, user: &User, id: u64) -> Result<OrderRow, PageError> {
    let row: Option<(u64, u64, String, u32, i64, String, u64)> = c
        .exec_first(
            "SELECT p.id, p.book_id, b.title, p.quantity, p.total_cents, p.status, p.user_id \
             FROM purchases p JOIN books b ON b.id = p.book_id WHERE p.id = ?",
            (id,),
        )
        .await?;
    match row {
        // Someone else's purchase looks exactly like a missing one.
        Some((id, book, title, q, total, status, owner)) if owner == user.id => {
            Ok((id, book, title, q, total, status))
        }
        _ => Err(PageError::NotFound),
    }
}

fn order_json((id, book_id, title, quantity, total, _status): &OrderRow) -> Value {
    json!({"id": id, "book_id": book_id, "title": title, "quantity": quantity, "total": money(*total)})
}

async fn pay_page(st: &State, ctx: &Ctx, id: u64) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = st.db.conn().await?;
    let order = my_purchase(&mut c, user, id).await?;
    drop(c);
    if order.5 != "pending" {
        return Err(PageError::Conflict("This order is already paid.".into()));
    }
    page(
        st,
        ctx,
        StatusCode::OK,
        "pay",
        "Pay",
        json!({"order": order_json(&order)}),
    )
}

/// Moves the buyer's purchase from status `from` to `to` inside `tx`; false when it was not in
/// `from` (already paid or shipped, or not this buyer's), so each step happens once.
async fn advance(
    tx: &mut mysql_async::Transaction<'_>,
    id: u64,
    user_id: u64,
    from: &str,
    to: &str,
) -> Result<bool, mysql_async::Error> {
    tx.exec_drop(
        "UPDATE purchases SET status = ? WHERE id = ? AND user_id = ? AND status = ?",
        (to, id, user_id, from),
    )
    .await?;
    Ok(tx.affected_rows() == 1)
}

async fn pay(st: &State, ctx: &Ctx, req: &Request, id: u64) -> PageResult {
    let user = ctx.require_user()?;
    let f = form(req);
    ctx.check_csrf(st, f.get("csrf"))?;
    let method = f.get("method").map(String::as_str).unwrap_or("card");
    if !["card", "transfer", "cash"].contains(&method) {
        return Err(PageError::BadRequest(
            "Choose a payment method from the list.".into(),
        ));
    }
    let mut c = st.db.conn().await?;
    my_purchase(&mut c, user, id).await?;
    let mut tx = c.start_transaction(Default::default()).await?;
    if !advance(&mut tx, id, user.id, "pending", "paid").await? {
        tx.rollback().await?;
        return Err(PageError::Conflict("This order is already paid.".into()));
    }
    // The amount is the purchase's total, whatever the form said.
    tx.exec_drop(
        "INSERT INTO payments (purchase_id, amount_cents, method, status) SELECT id, total_cents, ?, 'paid' FROM purchases WHERE id = ?",
        (method, id),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect(&format!("/purchases/{id}/delivery")))
}

async fn delivery_page(st: &State, ctx: &Ctx, id: u64) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = st.db.conn().await?;
    let order = my_purchase(&mut c, user, id).await?;
    match order.5.as_str() {
        "paid" => {}
        "pending" => return Ok(redirect(&format!("/purchases/{id}/pay"))),
        _ => {
            return Err(PageError::Conflict(
                "A courier is already on the way for this order.".into(),
            ))
        }
    }
    let providers: Vec<(u64, String, String, i64)> = c
        .exec(
            "SELECT id, name, coverage, cost_cents FROM delivery_providers ORDER BY id",
            (),
        )
        .await?;
    drop(c);
    let providers: Vec<Value> = providers
        .into_iter()
        .map(|(id, name, coverage, cost)| json!({"id": id, "name": name, "coverage": coverage, "cost": money(cost)}))
        .collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "delivery",
        "Delivery",
        json!({"order": order_json(&order), "providers": providers}),
    )
}

async fn deliver(st: &State, ctx: &Ctx, req: &Request, id: u64) -> PageResult {
    let user = ctx.require_user()?;
    let f = form(req);
    ctx.check_csrf(st, f.get("csrf"))?;
    let provider = f
        .get("provider_id")
        .and_then(|p| p.parse::<u64>().ok())
        .ok_or_else(|| PageError::BadRequest("Choose a courier.".into()))?;
    let mut c = st.db.conn().await?;
    my_purchase(&mut c, user, id).await?;
    let known: Option<u64> = c
        .exec_first(
            "SELECT id FROM delivery_providers WHERE id = ?",
            (provider,),
        )
        .await?;
    if known.is_none() {
        return Err(PageError::BadRequest(
            "Choose a courier from the list.".into(),
        ));
    }
    let mut tx = c.start_transaction(Default::default()).await?;
    if !advance(&mut tx, id, user.id, "paid", "shipped").await? {
        tx.rollback().await?;
        return Err(PageError::Conflict(
            "This order must be paid, and not yet shipped, to choose a courier.".into(),
        ));
    }
    tx.exec_drop(
        "INSERT INTO delivery_assignments (purchase_id, provider_id) VALUES (?, ?)",
        (id, provider),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect("/orders?done=shipped"))
}

async fn orders(st: &State, ctx: &Ctx, req: &Request) -> PageResult {
    let user = ctx.require_user()?;
    let mut c = st.db.conn().await?;
    let rows: Vec<OrderListRow> = c
        .exec(
            "SELECT p.id, p.book_id, b.title, p.quantity, p.total_cents, p.status, dp.name \
             FROM purchases p JOIN books b ON b.id = p.book_id \
             LEFT JOIN delivery_assignments da ON da.purchase_id = p.id \
             LEFT JOIN delivery_providers dp ON dp.id = da.provider_id \
             WHERE p.user_id = ? ORDER BY p.id DESC LIMIT 200",
            (user.id,),
        )
        .await?;
    drop(c);
    let orders: Vec<Value> = rows
        .into_iter()
        .map(|(id, book_id, title, quantity, total, status, provider)| {
            let badge = match status.as_str() {
                "pending" => "warning",
                "paid" => "info",
                _ => "success",
            };
            json!({"id": id, "book_id": book_id, "title": title, "quantity": quantity, "total": money(total),
                   "status": status, "badge": badge, "provider": provider,
                   "can_pay": status == "pending", "can_deliver": status == "paid"})
        })
        .collect();
    let flash = (req.query_map().get("done").map(String::as_str) == Some("shipped")).then_some((
        "success",
        "Thank you! Your order is paid and a courier is on the way.",
    ));
    page_flash(
        st,
        ctx,
        StatusCode::OK,
        "orders",
        "My orders",
        json!({"orders": orders}),
        flash,
    )
}

// ---------- accounts ----------

fn register_page(
    st: &State,
    ctx: &Ctx,
    name: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    page(
        st,
        ctx,
        status,
        "register",
        "Register",
        json!({"name": name, "email": email, "error": error}),
    )
}

fn login_page(
    st: &State,
    ctx: &Ctx,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> PageResult {
    page(
        st,
        ctx,
        status,
        "login",
        "Log in",
        json!({"email": email, "error": error}),
    )
}

fn start_session(ctx: &Ctx, token: &str) -> Response {
    let mut r = redirect("/");
    let c = auth::set_cookie(
        auth::SESSION_COOKIE,
        token,
        i64::from(auth::SESSION_DAYS) * 86400,
        ctx.secure,
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn register(st: &State, ctx: &Ctx, req: &Request) -> PageResult {
    let f = form(req);
    ctx.check_csrf(st, f.get("csrf"))?;
    let name = f.get("name").map(|s| s.trim()).unwrap_or("");
    let email = f
        .get("email")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let password = f.get("password").map(String::as_str).unwrap_or("");
    let bad = |msg: &str| {
        register_page(
            st,
            ctx,
            name,
            &email,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    if name.is_empty() || name.chars().count() > 100 {
        return bad("Please enter your name (at most 100 characters).");
    }
    let valid_email = email.len() <= 255
        && email
            .split_once('@')
            .map(|(a, b)| !a.is_empty() && b.contains('.') && !b.starts_with('.'))
            .unwrap_or(false)
        && !email.contains(char::is_whitespace);
    if !valid_email {
        return bad("Please enter a valid email address.");
    }
    if password.chars().count() < 8 || password.len() > 1024 {
        return bad("The password must have at least 8 characters.");
    }
    let hash = auth::hash_password(password.to_string()).await?;
    let mut c = st.db.conn().await?;
    let res = c
        .exec_drop(
            "INSERT INTO users (name, email, password_hash) VALUES (?, ?, ?)",
            (name, &email, hash),
        )
        .await;
    match res {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
            return register_page(
                st,
                ctx,
                name,
                &email,
                Some("That email is already registered. Log in instead?"),
                StatusCode::CONFLICT,
            );
        }
        Err(e) => return Err(e.into()),
    }
    let user_id = c
        .last_insert_id()
        .ok_or_else(|| anyhow::anyhow!("no id for the new user"))?;
    let token = auth::create_session(&mut c, user_id).await?;
    Ok(start_session(ctx, &token))
}

async fn dummy_hash() -> &'static str {
    static H: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    H.get_or_init(|| async {
        auth::hash_password("not a real password".into())
            .await
            .unwrap_or_default()
    })
    .await
}

async fn login(st: &State, ctx: &Ctx, req: &Request) -> PageResult {
    let f = form(req);
    ctx.check_csrf(st, f.get("csrf"))?;
    let email = f
        .get("email")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let email_key = format!("email:{}", email.chars().take(255).collect::<String>());
    let ip_key = format!("ip:{}", ctx.client_ip);
    let mut c = st.db.conn().await?;
    if auth::throttled(&mut c, &email_key, auth::MAX_FAILURES_PER_EMAIL).await?
        || auth::throttled(&mut c, &ip_key, auth::MAX_FAILURES_PER_IP).await?
    {
        drop(c);
        return login_page(
            st,
            ctx,
            &email,
            Some("Too many failed attempts. Wait 15 minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let row: Option<(u64, String)> = c
        .exec_first(
            "SELECT id, password_hash FROM users WHERE email = ?",
            (&email,),
        )
        .await?;
    let ok = match &row {
        Some((_, hash)) => auth::verify_password(password, hash.clone()).await,
        None => {
            auth::verify_password(password, dummy_hash().await.to_string()).await;
            false
        }
    };
    match (ok, row) {
        (true, Some((id, _))) => {
            auth::clear_failures(&mut c, &email_key).await?;
            let token = auth::create_session(&mut c, id).await?;
            if let Some(old) = &ctx.session {
                auth::delete_session(&mut c, old).await?;
            }
            Ok(start_session(ctx, &token))
        }
        _ => {
            auth::record_failure(&mut c, &email_key).await?;
            auth::record_failure(&mut c, &ip_key).await?;
            drop(c);
            login_page(
                st,
                ctx,
                &email,
                Some("Wrong email or password."),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

async fn logout(st: &State, ctx: &Ctx, req: &Request) -> PageResult {
    ctx.check_csrf(st, form(req).get("csrf"))?;
    if let Some(token) = &ctx.session {
        let mut c = st.db.conn().await?;
        auth::delete_session(&mut c, token).await?;
    }
    let mut r = redirect("/");
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(auth::SESSION_COOKIE, "", 0, ctx.secure))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn admin_users(st: &State, ctx: &Ctx) -> PageResult {
    let user = ctx.require_user()?;
    if !user.is_admin {
        return Err(PageError::Forbidden(
            "Only administrators may list the users.",
        ));
    }
    let mut c = st.db.conn().await?;
    let rows: Vec<(u64, String, String, bool, String)> = c
        .exec(
            "SELECT id, name, email, is_admin, DATE_FORMAT(created_at, '%Y-%m-%d') FROM users ORDER BY id LIMIT 1000",
            (),
        )
        .await?;
    drop(c);
    let users: Vec<Value> = rows
        .into_iter()
        .map(|(id, name, email, is_admin, created_at)| json!({"id": id, "name": name, "email": email, "is_admin": is_admin, "created_at": created_at}))
        .collect();
    page(
        st,
        ctx,
        StatusCode::OK,
        "admin_users",
        "Users",
        json!({"users": users}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_page_is_rendered_by_one_request_while_others_get_the_old_copy() {
        let cache = PageCache::default();
        let key = (1, String::new());
        assert!(matches!(cache.get(&key), Lookup::Render));
        cache.put(key.clone(), "v1".into(), 0);
        assert!(matches!(cache.get(&key), Lookup::Hit(h) if &*h == "v1"));
        std::thread::sleep(CATALOG_TTL + Duration::from_millis(50));
        // The first request after expiry renders; the rest are served the old copy meanwhile.
        assert!(matches!(cache.get(&key), Lookup::Render));
        for _ in 0..10 {
            assert!(matches!(cache.get(&key), Lookup::Hit(h) if &*h == "v1"));
        }
        cache.put(key.clone(), "v2".into(), 0);
        assert!(matches!(cache.get(&key), Lookup::Hit(h) if &*h == "v2"));
        // A local change invalidates at once: no old copy is served.
        cache.invalidate();
        assert!(matches!(cache.get(&key), Lookup::Render));
        assert!(matches!(cache.get(&key), Lookup::Render));
    }

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

    #[test]
    fn routes_are_named() {
        assert_eq!(route_name("/books/12"), "/books/{id}");
        assert_eq!(route_name("/purchases/3/pay"), "/purchases/{id}/pay");
        assert_eq!(route_name("/books/x"), "other");
        assert_eq!(route_name("/"), "/");
    }
}

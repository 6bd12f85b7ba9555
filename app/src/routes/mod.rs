//! The shop's pages: one route table (its pattern is also the metrics label), the dispatcher that
//! runs every request through readiness, session, body limit and CSRF check, and one module per
//! resource.

mod accounts;
mod admin;
mod assets;
mod books;
mod cache;
mod catalog;
mod guard;
mod ops;
mod orders;
mod respond;
mod rows;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use bytes::Bytes;
use warp::http::{header, HeaderValue, Method, StatusCode};

pub use cache::PageCache;
pub use guard::{CsrfChecked, Ctx, FormData};
pub use ops::exposition;
pub use orders::expire_reservations;
pub use respond::{error_page, PageError, PageResult};
pub use rows::{money, parse_money};

use crate::auth;
use crate::server::{Request, Response, State};

/// Captured path parameters: `{id}` (digits) and `{file}` (one segment).
#[derive(Debug, Default, Clone)]
pub struct Params {
    /// The `{id}` segment.
    pub id: u64,
    /// The `{file}` segment.
    pub file: String,
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Serves without a session or the database (health, metrics, assets); answers even before ready.
pub type RawFn = for<'a> fn(&'a State, &'a Request, Params) -> Fut<'a, Response>;
/// Reads a page for the visitor; no body.
pub type PageFn = for<'a> fn(&'a State, &'a Ctx, &'a Request, Params) -> Fut<'a, PageResult>;

/// An [`Action`]'s handler behind its form parsing and CSRF check.
type RunFn =
    dyn for<'a> Fn(&'a State, &'a Ctx, &'a Request, Params) -> Fut<'a, PageResult> + Send + Sync;

/// What a GET (and HEAD) does.
pub enum Get {
    /// See [`RawFn`].
    Raw(RawFn),
    /// See [`PageFn`].
    Page(PageFn),
}

/// A state-changing handler: the pipeline reads the body within the route's limit, parses the
/// form and checks its CSRF token before the handler runs. Built only by [`action`].
pub struct Action {
    /// Refuse (redirect to /login) before reading the body when nobody is signed in.
    pub login: bool,
    /// True for multipart uploads (the upload limit), false for small urlencoded forms.
    pub upload: bool,
    run: Box<RunFn>,
}

/// Builds an [`Action`] whose handler only ever sees a [`CsrfChecked`] form.
pub fn action<F: FormData>(
    login: bool,
    handler: for<'a> fn(&'a State, &'a Ctx, CsrfChecked<F>, Params) -> Fut<'a, PageResult>,
) -> Action {
    Action {
        login,
        upload: F::UPLOAD,
        run: Box::new(move |st, ctx, req, p| {
            Box::pin(async move {
                let form = guard::check::<F>(st, ctx, req).await?;
                handler(st, ctx, form, p).await
            })
        }),
    }
}

/// One route: its pattern (the metrics label) and what GET and POST do.
pub struct Route {
    /// `/books/{id}/edit`; `{id}` matches digits, `{file}` one segment.
    pub pattern: &'static str,
    /// GET/HEAD handler.
    pub get: Option<Get>,
    /// POST handler.
    pub post: Option<Action>,
}

macro_rules! raw {
    ($f:path) => {
        Some(Get::Raw(|st, req, p| Box::pin($f(st, req, p))))
    };
}
macro_rules! page {
    ($f:path) => {
        Some(Get::Page(|st, ctx, req, p| Box::pin($f(st, ctx, req, p))))
    };
}
macro_rules! post {
    ($login:expr, $form:ty, $f:path) => {
        Some(action::<$form>($login, |st, ctx, form, p| {
            Box::pin($f(st, ctx, form, p))
        }))
    };
}

/// The route table: every path the shop answers, once.
pub fn routes() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let r = |pattern, get, post| Route { pattern, get, post };
        vec![
            r("/", page!(catalog::home), None),
            r("/books", page!(catalog::catalog), None),
            r(
                "/books/new",
                page!(books::new_form),
                post!(true, books::BookForm, books::create),
            ),
            r("/books/{id}", page!(catalog::book), None),
            r(
                "/books/{id}/edit",
                page!(books::edit_form),
                post!(true, books::BookForm, books::update),
            ),
            r(
                "/books/{id}/delete",
                None,
                post!(true, books::DeleteForm, books::delete),
            ),
            r(
                "/books/{id}/buy",
                None,
                post!(true, orders::BuyForm, orders::buy),
            ),
            r(
                "/purchases/{id}/pay",
                page!(orders::pay_page),
                post!(true, orders::PayForm, orders::pay),
            ),
            r(
                "/purchases/{id}/delivery",
                page!(orders::delivery_page),
                post!(true, orders::DeliveryForm, orders::deliver),
            ),
            r("/orders", page!(orders::orders), None),
            r("/my/books", page!(books::my_books), None),
            r(
                "/register",
                page!(accounts::register_page),
                post!(false, accounts::RegisterForm, accounts::register),
            ),
            r(
                "/login",
                page!(accounts::login_page),
                post!(false, accounts::LoginForm, accounts::login),
            ),
            r(
                "/logout",
                None,
                post!(false, accounts::LogoutForm, accounts::logout),
            ),
            r("/admin/users", page!(admin::users), None),
            r("/static/{file}", raw!(assets::static_file), None),
            r("/uploads/{file}", raw!(assets::upload), None),
            r("/healthz", raw!(ops::healthz), None),
            r("/readyz", raw!(ops::readyz), None),
            r("/metrics", raw!(ops::metrics), None),
        ]
    })
}

/// The route a path matches, with its parameters.
pub fn resolve(path: &str) -> Option<(&'static Route, Params)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    'routes: for route in routes() {
        let pat: Vec<&str> = route.pattern.trim_matches('/').split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut params = Params::default();
        for (p, s) in pat.iter().zip(&segs) {
            match *p {
                "{id}" => match s.parse::<u64>() {
                    Ok(id) if s.bytes().all(|b| b.is_ascii_digit()) => params.id = id,
                    _ => continue 'routes,
                },
                "{file}" if !s.is_empty() => params.file = (*s).to_string(),
                lit if lit == *s => {}
                _ => continue 'routes,
            }
        }
        return Some((route, params));
    }
    None
}

/// The metrics/log label of a path: its route's pattern, or `other`.
pub fn route_name(path: &str) -> &'static str {
    resolve(path).map(|(r, _)| r.pattern).unwrap_or("other")
}

/// A pooled connection within `BOOKSTORE_DB_ACQUIRE_TIMEOUT_SECONDS`, else a 503: a starved
/// pool answers "busy" instead of stalling every page.
pub async fn conn(st: &State) -> Result<crate::db::DbConn, PageError> {
    match tokio::time::timeout(st.config.db_acquire_timeout, st.db.conn()).await {
        Ok(c) => Ok(c?),
        Err(_) => Err(busy()),
    }
}

/// The 503 of an overloaded instance.
pub fn busy() -> PageError {
    PageError::Status(
        StatusCode::SERVICE_UNAVAILABLE,
        "The shop is busy right now; try again in a moment.".into(),
    )
}

/// Trims `rows` (fetched with a limit of `shown + 1`) to `shown`; returns the notice the page
/// shows when there were more, so a list never ends silently.
pub fn cut_off<T>(rows: &mut Vec<T>, shown: usize) -> Option<String> {
    (rows.len() > shown).then(|| {
        rows.truncate(shown);
        format!("Only the newest {shown} are listed here.")
    })
}

/// What a matched route does with this method.
enum Plan<'r> {
    Page(PageFn),
    Post(&'r Action),
}

/// Serves one request; the body (if any) is read here, after routing and the session check.
pub async fn dispatch(st: &State, mut req: Request) -> Response {
    let Some((route, params)) = resolve(&req.path) else {
        return respond::error_response(st, None, PageError::NotFound);
    };
    let is_get = req.method == Method::GET || req.method == Method::HEAD;
    let plan = match (&route.get, &route.post) {
        (Some(Get::Raw(f)), _) if is_get => return head(&req, f(st, &req, params).await),
        (Some(Get::Page(f)), _) if is_get => Plan::Page(*f),
        (_, Some(a)) if req.method == Method::POST => Plan::Post(a),
        _ => return method_not_allowed(st, route),
    };
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
    let (ctx, stale) = match guard::context(st, &req).await {
        Ok(c) => c,
        Err(e) => return respond::error_response(st, None, e),
    };
    let res = match plan {
        Plan::Page(f) => f(st, &ctx, &req, params).await,
        Plan::Post(a) => {
            if a.login && ctx.user.is_none() {
                Err(PageError::Login)
            } else {
                let limit = if a.upload {
                    st.max_body_bytes()
                } else {
                    FORM_LIMIT
                };
                match req.read_body(limit, st.config.body_read_timeout).await {
                    Ok(()) => (a.run)(st, &ctx, &req, params).await,
                    Err(e) => Err(e),
                }
            }
        }
    };
    let mut resp = match res {
        Ok(r) => r,
        Err(e) => respond::error_response(st, Some(&ctx), e),
    };
    set_cookies(&mut resp, &ctx, stale);
    head(&req, resp)
}

/// A HEAD answer carries the headers of the GET, without the body.
fn head(req: &Request, mut resp: Response) -> Response {
    if req.method == Method::HEAD {
        *resp.body_mut() = Bytes::new().into();
    }
    resp
}

/// Largest urlencoded form body.
pub const FORM_LIMIT: usize = 64 * 1024;

fn method_not_allowed(st: &State, route: &Route) -> Response {
    let allow = match (&route.get, &route.post) {
        (Some(_), Some(_)) => "GET, HEAD, POST",
        (Some(_), None) => "GET, HEAD",
        _ => "POST",
    };
    let mut r = error_page(
        st,
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("This address answers {allow} only."),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Adds the CSRF cookie when new, and clears a stale session cookie unless the handler already
/// set the session cookie (so the two never contradict each other).
fn set_cookies(resp: &mut Response, ctx: &Ctx, stale_session: bool) {
    let h = resp.headers_mut();
    let prefix = format!("{}=", auth::SESSION_COOKIE);
    let handler_set_session = h
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
    if stale_session && !handler_set_session {
        let c = auth::set_cookie(auth::SESSION_COOKIE, "", 0, ctx.secure);
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
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
            h.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_named() {
        assert_eq!(route_name("/books/12"), "/books/{id}");
        assert_eq!(route_name("/purchases/3/pay"), "/purchases/{id}/pay");
        assert_eq!(route_name("/books/x"), "other");
        assert_eq!(route_name("/books/new"), "/books/new");
        assert_eq!(route_name("/static/app.css"), "/static/{file}");
        assert_eq!(route_name("/"), "/");
    }
}

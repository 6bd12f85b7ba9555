//! Responses: the one error enum, HTML pages in the layout, redirects and plain text.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use warp::http::{header, HeaderValue, StatusCode};

use super::guard::Ctx;
use crate::server::{Response, State};

/// What went wrong while serving a page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No such page or not yours.
    #[error("not found")]
    NotFound,
    /// The page needs a signed-in user (answered with a redirect to `/login`).
    #[error("login required")]
    Login,
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
    /// A refusal with its own status (413, 415, 408).
    #[error("{1}")]
    Status(StatusCode, String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] mysql_async::Error),
    /// Anything else.
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

/// What every handler returns.
pub type PageResult = Result<Response, PageError>;

/// A response with a status, content type and body.
pub fn with_status(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    with_status(status, "text/plain; charset=utf-8", body)
}

/// A `303 See Other` to `to`.
pub fn redirect(to: &str) -> Response {
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

/// The layout's fields: title, instance, user and CSRF token.
pub fn common(st: &State, ctx: Option<&Ctx>, title: &str) -> Map<String, Value> {
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

/// An HTML page in the layout (never stored by caches: it carries a CSRF token).
pub fn page(
    st: &State,
    ctx: &Ctx,
    status: StatusCode,
    template: &str,
    title: &str,
    data: Value,
) -> PageResult {
    page_flash(st, ctx, status, template, title, data, None)
}

/// Like [`page`], with a flash message (`kind`, `text`).
pub fn page_flash(
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
    Ok(html_page(status, html))
}

/// HTML with `Cache-Control: no-store`.
pub fn html_page(status: StatusCode, html: impl Into<Bytes>) -> Response {
    let mut r = with_status(status, "text/html; charset=utf-8", html);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
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
    html_page(status, html)
}

/// The page for an error (a redirect for [`PageError::Login`]).
pub fn error_response(st: &State, ctx: Option<&Ctx>, e: PageError) -> Response {
    let (status, msg): (StatusCode, String) = match &e {
        PageError::NotFound => (StatusCode::NOT_FOUND, "We could not find that page.".into()),
        PageError::Login => return redirect("/login"),
        PageError::Forbidden(m) => (StatusCode::FORBIDDEN, (*m).into()),
        PageError::Csrf => (
            StatusCode::FORBIDDEN,
            "The form expired or did not come from this shop; reload the page and try again."
                .into(),
        ),
        PageError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
        PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
        PageError::Status(code, m) => (*code, m.clone()),
        PageError::Db(err) => {
            tracing::error!("database error: {err}");
            (StatusCode::SERVICE_UNAVAILABLE, db_message(err).into())
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
    let mut r = html_page(status, html);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    r
}

/// What a visitor is told about a database error.
fn db_message(err: &mysql_async::Error) -> &'static str {
    match err {
        mysql_async::Error::Server(_) => {
            "The shop's database refused the request; try again in a moment."
        }
        _ => "The shop's database is unavailable; try again in a moment.",
    }
}

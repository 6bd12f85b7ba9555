//! Files: the embedded static assets and the uploaded covers.

use warp::http::{header, HeaderValue, StatusCode};

use super::respond::{text, with_status};
use super::Params;
use crate::server::{Request, Response, State};
use crate::uploads;
use crate::views::{content_type, Static};

fn cached_for_a_day(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

/// `GET /static/{file}`.
pub async fn static_file(_st: &State, _req: &Request, p: Params) -> Response {
    match Static::get(&p.file) {
        Some(f) => cached_for_a_day(with_status(
            StatusCode::OK,
            content_type(&p.file),
            f.data.into_owned(),
        )),
        None => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `GET /uploads/{file}`: only names this shop generated, never interpreted as HTML.
pub async fn upload(st: &State, _req: &Request, p: Params) -> Response {
    if !uploads::is_stored_name(&p.file) {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    match tokio::fs::read(st.config.uploads_dir.join(&p.file)).await {
        Ok(data) => {
            let mut r = cached_for_a_day(with_status(StatusCode::OK, content_type(&p.file), data));
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'"),
            );
            r
        }
        Err(_) => text(StatusCode::NOT_FOUND, "not found"),
    }
}

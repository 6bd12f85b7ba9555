//! Operations: liveness, readiness and Prometheus metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use warp::http::{header, HeaderValue, StatusCode};

use super::respond::text;
use super::Params;
use crate::server::{Request, Response, State};

/// `GET /healthz`: 200 as soon as the process listens.
pub async fn healthz(_st: &State, _req: &Request, _p: Params) -> Response {
    text(StatusCode::OK, "ok")
}

/// `GET /readyz`: 200 only when the database answers and the instance is not draining.
pub async fn readyz(st: &State, _req: &Request, _p: Params) -> Response {
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

/// `GET /metrics` on the shop's port: served only when no `BOOKSTORE_METRICS_LISTEN` is set, and
/// then only to a direct loopback client (not through a proxy), so it is never public.
pub async fn metrics(st: &State, req: &Request, _p: Params) -> Response {
    let direct_loopback =
        req.remote.is_some_and(|a| a.ip().is_loopback()) && req.header("x-forwarded-for").is_none();
    if st.config.metrics_listen.is_some() || !direct_loopback {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    exposition(st)
}

/// The Prometheus exposition text (also served on `BOOKSTORE_METRICS_LISTEN`).
pub fn exposition(st: &State) -> Response {
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
    r
}

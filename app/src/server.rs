//! The HTTP server: start-up, readiness, the request pipeline (cap, timeout, headers, metrics, access log),
//! graceful drain, the metrics listener and housekeeping (reservations, throttle windows).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use tokio::sync::{oneshot, watch};
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::Filter;

use crate::config::Config;
use crate::db::{Db, DbWatch};
use crate::metrics::Metrics;
pub use crate::request::{client_info, BodyStream, Request};
use crate::views::Views;

/// Room for the form fields and multipart framing around a cover of the largest size.
pub const FORM_OVERHEAD_BYTES: usize = 1024 * 1024;

/// The response type of every handler.
pub type Response = warp::reply::Response;

/// Shared state of one running shop.
pub struct State {
    /// Validated configuration.
    pub config: Config,
    /// The database pool.
    pub db: Db,
    /// Templates.
    pub views: Views,
    /// Request metrics.
    pub metrics: Metrics,
    /// Set once the database is reachable and migrated.
    pub ready: AtomicBool,
    /// Set when the drain started.
    pub draining: AtomicBool,
    /// Rendered catalog pages, kept for a second.
    pub catalog_cache: crate::routes::PageCache,
    /// Requests waiting to hash a password.
    pub hashing: crate::auth::HashQueue,
    /// Searches (table scans) running at once; more wait their turn.
    pub searches: tokio::sync::Semaphore,
    /// Permits for requests served at once (`BOOKSTORE_MAX_CONCURRENT_REQUESTS`).
    pub requests: tokio::sync::Semaphore,
    instance_header: HeaderValue,
}

impl State {
    /// Requests that could start now without being shed.
    pub fn available_requests(&self) -> usize {
        self.requests.available_permits()
    }

    /// Largest multipart body: a cover of `BOOKSTORE_MAX_UPLOAD_MB` plus 1 MiB for the form
    /// (what the blueprints' proxies allow too).
    pub fn max_body_bytes(&self) -> usize {
        self.config.max_upload_mb as usize * 1024 * 1024 + FORM_OVERHEAD_BYTES
    }
}

/// A running shop, as returned by [`start`].
pub struct RunningApp {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `BOOKSTORE_METRICS_LISTEN` is set.
    pub metrics_addr: Option<SocketAddr>,
    metrics_server: Option<tokio::task::JoinHandle<()>>,
    /// The shared state.
    pub state: Arc<State>,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    fatal: watch::Receiver<Option<String>>,
}

impl RunningApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// True once the database is reachable and migrated.
    pub fn is_ready(&self) -> bool {
        self.state.ready.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) for readiness.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.is_ready() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.is_ready()
    }

    /// Resolves with a message if start-up failed for good (database never reachable, migration error).
    pub async fn fatal(&mut self) -> String {
        loop {
            if let Some(msg) = self.fatal.borrow().clone() {
                return msg;
            }
            if self.fatal.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops accepting, lets in-flight requests finish within the drain time, closes the pool.
    /// Returns false when the drain time ran out first.
    pub async fn shutdown(mut self) -> bool {
        self.state.draining.store(true, Ordering::SeqCst);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let drain = self.state.config.drain;
        let finished = tokio::time::timeout(drain, &mut self.server).await.is_ok();
        if !finished {
            tracing::warn!("drain time of {drain:?} ran out; closing remaining connections");
            self.server.abort();
        }
        if let Some(m) = self.metrics_server.take() {
            m.abort();
        }
        self.state.db.clone().close().await;
        finished
    }
}

/// Binds the listener, starts serving at once (`/healthz` answers, `/readyz` says 503 until ready)
/// and prepares the database in the background: wait with backoff, migrate, seed providers and admin.
pub async fn start(config: Config) -> anyhow::Result<RunningApp> {
    if config.secret_key_generated {
        tracing::warn!("BOOKSTORE_SECRET_KEY is not set: generated a key for this process only; forms break across instances and restarts");
    }
    std::fs::create_dir_all(&config.uploads_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create BOOKSTORE_UPLOADS_DIR {}: {e}",
            config.uploads_dir.display()
        )
    })?;
    let views = Views::new()?;
    let db = Db::new(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let instance_header = HeaderValue::from_str(&config.instance_id)
        .map_err(|_| anyhow::anyhow!("BOOKSTORE_INSTANCE_ID is not a valid header value"))?;
    let config_max_requests = config.max_concurrent_requests;
    let state = Arc::new(State {
        config,
        db,
        views,
        metrics: Metrics::default(),
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        catalog_cache: Default::default(),
        hashing: Default::default(),
        requests: tokio::sync::Semaphore::new(config_max_requests),
        searches: tokio::sync::Semaphore::new(4),
        instance_header,
    });
    tracing::info!(%addr, instance = %state.config.instance_id, "listening");

    let (fatal_tx, fatal) = watch::channel(None);
    let prep = state.clone();
    tokio::spawn(async move {
        let t0 = Instant::now();
        let res = async {
            prep.db
                .wait_until_reachable(&prep.config.database_url, prep.config.db_wait)
                .await?;
            let t_db = Instant::now();
            prep.db.migrate().await?;
            prep.db.seed_basics(prep.config.admin.as_ref()).await?;
            anyhow::Ok(t_db)
        }
        .await;
        match res {
            Ok(t_db) => {
                prep.ready.store(true, Ordering::SeqCst);
                tokio::spawn(housekeeping(prep.clone()));
                tracing::info!(
                    since_start_ms = t0.elapsed().as_millis() as u64,
                    since_db_reachable_ms = t_db.elapsed().as_millis() as u64,
                    "ready"
                );
            }
            Err(e) => {
                tracing::error!("start-up failed: {e:#}");
                let _ = fatal_tx.send(Some(format!("{e:#}")));
            }
        }
    });

    let st = state.clone();
    let routes = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream())
        .and_then(
            move |method, path: warp::path::FullPath, query, headers, peer: Option<Peer>, body| {
                let remote = peer.map(|Peer(a)| a);
                let st = st.clone();
                async move {
                    Ok::<_, Infallible>(
                        pipeline(
                            st,
                            method,
                            path.as_str().to_string(),
                            query,
                            headers,
                            remote,
                            body,
                        )
                        .await,
                    )
                }
            },
        );
    let (metrics_addr, metrics_server) = match state.config.metrics_listen {
        Some(at) => {
            let (a, h) = serve_metrics(state.clone(), at).await?;
            (Some(a), Some(h))
        }
        None => (None, None),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        warp::service(routes),
        state.config.header_read_timeout,
        async move {
            let _ = rx.await;
        },
    ));
    Ok(RunningApp {
        addr,
        metrics_addr,
        metrics_server,
        state,
        shutdown: Some(tx),
        server,
        fatal,
    })
}

/// The peer address of a connection, in each request's extensions (warp's own is private).
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// Serves `svc` (the warp filter as a service) over HTTP/1.1 with hyper's connection builder, so
/// that a client must send a request's headers within `header_read_timeout` (hyper's timer
/// starts when the connection opens or goes idle, so this also closes idle keep-alive
/// connections): a client that dribbles its headers byte by byte is disconnected then. After
/// `shutdown`, stops accepting and lets the open connections finish their requests.
async fn serve<S>(
    listener: tokio::net::TcpListener,
    svc: S,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) where
    S: tower_service::Service<
            warp::http::Request<hyper::body::Incoming>,
            Response = Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let svc = svc.clone();
        let per_request = hyper::service::service_fn(
            move |mut req: warp::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                tower_service::Service::call(&mut svc.clone(), req)
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), per_request);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serves `GET /metrics` (only) on its own address, for a scraper on a private network.
async fn serve_metrics(
    st: Arc<State>,
    at: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on BOOKSTORE_METRICS_LISTEN {at}: {e}"))?;
    let addr = listener.local_addr()?;
    let st_header_timeout = st.config.header_read_timeout;
    let route = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || crate::routes::exposition(&st));
    tracing::info!(%addr, "serving /metrics");
    let serving = serve(
        listener,
        warp::service(route),
        st_header_timeout,
        std::future::pending(),
    );
    Ok((addr, tokio::spawn(serving)))
}

/// Every few seconds while serving: expires lapsed reservations (their copies go back on sale)
/// and deletes expired login-throttle windows. Ends when the drain starts.
async fn housekeeping(st: Arc<State>) {
    let every =
        (st.config.reservation / 4).clamp(Duration::from_millis(500), Duration::from_secs(30));
    while !st.draining.load(Ordering::SeqCst) {
        tokio::time::sleep(every).await;
        if st.draining.load(Ordering::SeqCst) {
            break;
        }
        let expired = async {
            let mut c = st.db.conn().await?;
            crate::routes::expire_reservations(&mut c).await
        };
        match expired.await {
            Ok(0) => {}
            Ok(n) => {
                st.catalog_cache.invalidate();
                tracing::info!(
                    expired = n,
                    "unpaid reservations expired; their copies are back on sale"
                );
            }
            Err(e) => tracing::warn!("expiring reservations: {e}"),
        }
        let purged = async {
            let mut c = st.db.conn().await?;
            crate::auth::purge_attempts(&mut c).await
        };
        if let Err(e) = purged.await {
            tracing::warn!("purging login throttle windows: {e}");
        }
    }
}

async fn pipeline<S, B>(
    st: Arc<State>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let t0 = Instant::now();
    st.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let route = crate::routes::route_name(&path);
    // Above the cap, pages are answered 503 at once; health and metrics always answer.
    let ops = matches!(route, "/healthz" | "/readyz" | "/metrics");
    let permit = st.requests.try_acquire();
    if permit.is_err() && !ops {
        let mut r = crate::routes::error_page(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            "The shop is serving as many requests as it can; try again in a moment.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return finish(&st, &method, route, &path, t0, r);
    }
    let stream: BodyStream = Box::pin(body.map(|r| r.map(|mut b| b.copy_to_bytes(b.remaining()))));
    let req = Request {
        method: method.clone(),
        path: path.clone(),
        query,
        headers,
        remote,
        body: Bytes::new(),
        stream: std::sync::Mutex::new(Some(stream)),
    };
    // The request's database time is watched: a hung database is answered 503 once a request
    // has held a connection for BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS.
    let watch = Arc::new(DbWatch::default());
    let work = watch.scope(crate::routes::dispatch(&st, req));
    let late = |msg: &str| {
        let mut r = crate::routes::error_page(&st, StatusCode::SERVICE_UNAVAILABLE, msg);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        r
    };
    let resp = tokio::select! {
        r = tokio::time::timeout(st.config.request_timeout, work) => r.unwrap_or_else(|_| {
            late("The shop took too long to answer; try again in a moment.")
        }),
        () = watch.overdue(st.config.db_query_timeout) => {
            tracing::warn!(route, "the database did not answer within {:?}", st.config.db_query_timeout);
            late("The database did not answer in time; try again in a moment.")
        }
    };
    drop(permit);
    finish(&st, &method, route, &path, t0, resp)
}

/// The Content-Security-Policy of every response that sets none itself.
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                       base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers every response carries, records the metrics and writes the access log.
fn finish(
    st: &State,
    method: &Method,
    route: &'static str,
    path: &str,
    t0: Instant,
    mut resp: Response,
) -> Response {
    let h = resp.headers_mut();
    h.insert("x-bookstore-instance", st.instance_header.clone());
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.entry("x-frame-options")
        .or_insert(HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    // Pages load only the shop's own scripts, styles and images (covers are same-origin).
    h.entry("content-security-policy")
        .or_insert(HeaderValue::from_static(CSP));
    let took = t0.elapsed();
    let status = resp.status().as_u16();
    st.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    st.metrics.observe(method_name(method), route, status, took);
    tracing::info!(
        target: "bookstore::access",
        method = %method,
        route,
        path = %path,
        status,
        latency_ms = took.as_secs_f64() * 1000.0,
        instance = %st.config.instance_id,
    );
    resp
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

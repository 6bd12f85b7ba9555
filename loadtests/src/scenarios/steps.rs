//! The steps of a journey: the user's HTTP client, sending a request and recording its
//! response, the pause between pages, and checking that a page is the one expected.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::goose::{goose_method_from_method, GooseRequest, GooseUser, TransactionError};
use goose::metrics::GooseRequestMetric;
use goose::prelude::TransactionResult;
use reqwest::cookie::Jar;

use super::{Shared, UserState};
use crate::pages::{self, Doc, FormSel};
use crate::record::{CountConnections, Counted};

/// A client for one user: its cookie jar, the run's TLS settings, connections counted.
pub fn client_builder(sh: &Shared, jar: Arc<Jar>) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        .cookie_provider(jar)
        .user_agent(concat!("bookstore-loadtest/", env!("CARGO_PKG_VERSION")))
        .timeout(sh.timeout)
        .connect_timeout(Duration::from_secs(5))
        .connector_layer(CountConnections(sh.rec.connection_counter()));
    let b = sh
        .resolve
        .iter()
        .fold(b, |b, r| b.resolve(&r.host, r.socket_addr()));
    match &sh.tls {
        Some(tls) => b.tls_backend_preconfigured(tls.clone()),
        None => b.tls_danger_accept_invalid_certs(sh.insecure),
    }
}

/// Gives the user its own client: a fresh identity (new cookie jar) when asked, and new
/// connections whenever the current client is older than the recycle period.
pub(super) async fn ensure_client(
    user: &mut GooseUser,
    sh: &Shared,
    fresh_identity: bool,
) -> Result<(), Box<TransactionError>> {
    if user.get_session_data::<UserState>().is_none() {
        let seed = (user.weighted_users_index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (u64::from(sh.rec.now_ms())).rotate_left(32)
            | 1;
        user.set_session_data(UserState {
            jar: Arc::new(Jar::default()),
            born: Instant::now(),
            built: false,
            assets_fetched: false,
            pages: 0,
            seller: false,
            iteration: 0,
            rng: seed,
        });
    }
    let st = state(user);
    if fresh_identity {
        st.jar = Arc::new(Jar::default());
    }
    if st.built && !fresh_identity && st.born.elapsed() < sh.recycle {
        return Ok(());
    }
    st.built = false;
    let jar = st.jar.clone();
    if let Err(e) = user.set_client_builder(client_builder(sh, jar)).await {
        sh.rec.fail(None, &format!("building the HTTP client: {e}"));
        return Err(Box::new(e));
    }
    let st = state(user);
    st.built = true;
    st.born = Instant::now();
    st.assets_fetched = false;
    Ok(())
}

pub(super) fn state(user: &mut GooseUser) -> &mut UserState {
    user.get_session_data_unchecked_mut::<UserState>()
}

/// One response, read whole.
pub(super) struct Page {
    pub(super) name: String,
    pub(super) status: u16,
    pub(super) path: String,
    pub(super) body: String,
    pub(super) metric: GooseRequestMetric,
    pub(super) sample: Counted,
}

pub(super) enum Body {
    Empty,
    Form(Vec<(&'static str, String)>),
    Multipart(reqwest::multipart::Form),
}

/// The deepest cause of a reqwest error, without the URL, so that reasons aggregate.
pub(super) fn short_error(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let root = cause.to_string();
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect: {root}")
    } else {
        root
    }
}

/// Whether `e` is the server closing the connection before any response: a reused keep-alive
/// connection closed at the moment the request went out (not a refused connection, not a
/// timeout).
pub(super) fn closed_idle_connection(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut cause: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) {
                return true;
            }
        }
        if c.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Sends one request to `url` (already joined to the user's base URL: goose's own request
/// builder would parse the URL three times per request) and reads the whole response; any
/// status but 2xx fails the step.
pub(super) async fn send(
    user: &mut GooseUser,
    sh: &Shared,
    method: reqwest::Method,
    url: reqwest::Url,
    name: &str,
    body: Body,
) -> Result<Page, Box<TransactionError>> {
    send_accepting(user, sh, method, url, name, body, &[]).await
}

/// [`send`], where the statuses in `accept` are right answers too (counted as successes, for
/// goose as well): the journey reads them.
pub(super) async fn send_accepting(
    user: &mut GooseUser,
    sh: &Shared,
    method: reqwest::Method,
    url: reqwest::Url,
    name: &str,
    body: Body,
    accept: &[u16],
) -> Result<Page, Box<TransactionError>> {
    let goose_method = goose_method_from_method(method.clone())?;
    // A GET that went out on a keep-alive connection the server had just closed (nginx closes
    // idle ones on every reload) is sent once more on a new connection, as browsers and curl
    // do; it is counted as a retry, not an error.
    let idempotent = matches!(body, Body::Empty)
        && (method == reqwest::Method::GET || method == reqwest::Method::HEAD);
    let mut body = Some(body);
    let mut retried = false;
    let goose = loop {
        let rb = user.client.request(method.clone(), url.clone());
        let rb = match body.take().unwrap_or(Body::Empty) {
            Body::Empty => rb,
            Body::Form(pairs) => rb.form(&pairs),
            Body::Multipart(form) => rb.multipart(form),
        };
        let req = GooseRequest::builder()
            .method(goose_method)
            .name(name)
            .set_request_builder(rb)
            .build();
        let goose = user.request(req).await?;
        if idempotent && !retried {
            if let Err(e) = &goose.response {
                if closed_idle_connection(e) {
                    retried = true;
                    sh.rec.retried();
                    continue;
                }
            }
        }
        break goose;
    };
    // Latency: goose's time to the response headers (which leaves out any wait for the
    // --throttle), plus reading the body.
    let t_headers = Instant::now();
    let index = user.weighted_users_index;
    let mut metric = goose.request;
    let ttfb = Duration::from_micros(metric.response_time_micros());
    match goose.response {
        Ok(resp) => {
            let status = resp.status();
            let final_path = resp.url().path().to_string();
            let instance = resp
                .headers()
                .get("x-bookstore-instance")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.text().await;
            let latency = ttfb + t_headers.elapsed();
            match body {
                Ok(body) => {
                    let accepted = !status.is_success() && accept.contains(&status.as_u16());
                    let ok = status.is_success() || accepted;
                    let sample = sh.rec.record(index, latency, instance.as_deref(), ok);
                    if accepted {
                        user.set_success(&mut metric)?;
                    }
                    if !ok {
                        let reason = format!(
                            "{name}: HTTP {}: {}",
                            status.as_u16(),
                            pages::describe(&body)
                        );
                        sh.rec.fail(None, &reason);
                        return failed(user, &reason, metric);
                    }
                    Ok(Page {
                        name: name.to_string(),
                        status: status.as_u16(),
                        path: final_path,
                        body,
                        metric,
                        sample,
                    })
                }
                Err(e) => {
                    let sample = sh.rec.record(index, latency, instance.as_deref(), true);
                    let reason = format!("{name}: reading the body: {}", short_error(&e));
                    sh.rec.fail(Some(sample), &reason);
                    failed(user, &reason, metric)
                }
            }
        }
        Err(e) => {
            sh.rec.record(index, ttfb, None, false);
            let reason = format!("{name}: {}", short_error(&e));
            sh.rec.fail(None, &reason);
            Err(Box::new(TransactionError::RequestFailed {
                raw_request: Box::new(metric),
            }))
        }
    }
}

/// Marks the request failed for goose (if it is not already) and ends the journey.
pub(super) fn failed<T>(
    user: &mut GooseUser,
    reason: &str,
    mut metric: GooseRequestMetric,
) -> Result<T, Box<TransactionError>> {
    user.set_failure(reason, &mut metric, None, None)?;
    Err(Box::new(TransactionError::RequestFailed {
        raw_request: Box::new(metric),
    }))
}

/// Fails the step unless `ok`: records the reason, marks the request failed for goose too.
pub(super) fn expect(
    user: &mut GooseUser,
    sh: &Shared,
    page: &mut Page,
    ok: bool,
    wanted: &str,
) -> TransactionResult {
    if ok {
        return Ok(());
    }
    let reason = format!(
        "{}: expected {wanted}, got {} (HTTP {} at {})",
        page.name,
        pages::describe(&page.body),
        page.status,
        generic_path(&page.path)
    );
    sh.rec.fail(Some(page.sample), &reason);
    user.set_failure(&reason, &mut page.metric, None, None)
}

/// `/purchases/12/pay` -> `/purchases/{id}/pay`, so reasons aggregate.
pub(super) fn generic_path(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The id in `/prefix/{id}/suffix`.
pub(super) fn id_in(path: &str, prefix: &str, suffix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

/// Why a journey ends early without failing: the plan is over.
pub(super) const RUN_OVER: &str = "the run is over";

/// Pauses before a page, as a person reading the previous one would (not before a journey's
/// first page: goose pauses between journeys). Ends the journey when the plan is over.
pub(super) async fn think(user: &mut GooseUser, sh: &Shared) -> Result<(), Box<TransactionError>> {
    let over = || Box::new(TransactionError::Custom(RUN_OVER.into()));
    let Some(st) = user.get_session_data_mut::<UserState>() else {
        return Ok(());
    };
    st.pages += 1;
    if st.pages == 1 || sh.think.is_none() {
        return Ok(());
    }
    let pause = sh.think.pick(st.next());
    let now = Instant::now();
    if now >= sh.plan_end || sh.stop.load(Ordering::Relaxed) {
        return Err(over());
    }
    tokio::time::sleep(pause.min(sh.plan_end - now)).await;
    if Instant::now() >= sh.plan_end && pause > sh.plan_end - now {
        return Err(over());
    }
    Ok(())
}

/// A page: after the user's pause.
pub(super) async fn get(
    user: &mut GooseUser,
    sh: &Shared,
    path: &str,
    name: &str,
) -> Result<Page, Box<TransactionError>> {
    think(user, sh).await?;
    let url = url_for(user, path)?;
    send(user, sh, reqwest::Method::GET, url, name, Body::Empty).await
}

/// What a page loads (stylesheets, scripts, covers): right away, as a browser does.
pub(super) async fn asset(
    user: &mut GooseUser,
    sh: &Shared,
    path: &str,
    name: &str,
) -> Result<Page, Box<TransactionError>> {
    let url = url_for(user, path)?;
    send(user, sh, reqwest::Method::GET, url, name, Body::Empty).await
}

/// A form sent, after the user's pause; any status but 2xx fails the step.
pub(super) async fn post(
    user: &mut GooseUser,
    sh: &Shared,
    path: &str,
    name: &str,
    pairs: Vec<(&'static str, String)>,
) -> Result<Page, Box<TransactionError>> {
    post_accepting(user, sh, path, name, pairs, &[]).await
}

/// [`post`], where the statuses in `accept` are right answers too (see [`send_accepting`]).
pub(super) async fn post_accepting(
    user: &mut GooseUser,
    sh: &Shared,
    path: &str,
    name: &str,
    pairs: Vec<(&'static str, String)>,
    accept: &[u16],
) -> Result<Page, Box<TransactionError>> {
    think(user, sh).await?;
    let url = url_for(user, path)?;
    send_accepting(
        user,
        sh,
        reqwest::Method::POST,
        url,
        name,
        Body::Form(pairs),
        accept,
    )
    .await
}

/// `path` (or a whole URL) joined to the user's base URL.
pub(super) fn url_for(user: &GooseUser, path: &str) -> Result<reqwest::Url, Box<TransactionError>> {
    user.base_url
        .join(path)
        .map_err(|e| Box::new(TransactionError::from(e)))
}

/// A form on the page, or a failed step.
pub(super) fn need_form(
    user: &mut GooseUser,
    sh: &Shared,
    page: &mut Page,
    selector: FormSel<'_>,
    wanted: &str,
) -> Result<pages::Form, Box<TransactionError>> {
    match Doc::new(&page.body).form(selector) {
        Some(f) if !f.action.is_empty() => Ok(f),
        _ => {
            expect(user, sh, page, false, wanted)?;
            Err(Box::new(TransactionError::Custom(format!(
                "{}: no {wanted}",
                page.name
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_generic_and_ids_read() {
        assert_eq!(generic_path("/purchases/12/pay"), "/purchases/{id}/pay");
        assert_eq!(id_in("/purchases/12/pay", "/purchases/", "/pay"), Some(12));
        assert_eq!(id_in("/books/7", "/books/", ""), Some(7));
        assert_eq!(id_in("/books/new", "/books/", ""), None);
    }
}

#[cfg(test)]
mod client_tests {
    use super::*;
    use crate::record::Recorder;
    use crate::scenarios::tls_config;
    use crate::shape::Think;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn connections_for(tls: Option<rustls::ClientConfig>, insecure: bool) -> u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        let sh = Shared {
            rec: Arc::new(Recorder::new(Duration::from_secs(10))),
            insecure,
            recycle: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            run_id: "t".into(),
            think: Think::default(),
            plan_end: Instant::now() + Duration::from_secs(60),
            stop: Arc::new(AtomicBool::new(false)),
            only: None,
            tls,
            resolve: Vec::new(),
        };
        let client = client_builder(&sh, Arc::new(Jar::default()))
            .build()
            .unwrap();
        for _ in 0..2 {
            let r = client
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.text().await.unwrap(), "ok");
        }
        server.await.unwrap();
        sh.rec.connection_counter().load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn connections_are_counted_with_either_tls_setup() {
        assert_eq!(connections_for(None, true).await, 2);
        assert_eq!(connections_for(Some(tls_config().unwrap()), false).await, 2);
    }
}

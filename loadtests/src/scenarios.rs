//! The goose scenarios: browsers, shoppers and sellers that use the shop like people do.
//!
//! Each scenario is one transaction, a whole journey, so a step that fails ends the journey
//! (a shopper who could not buy does not try to pay). Every response is recorded with its
//! `X-Bookstore-Instance`; a page that is not the one expected is an error with the reason.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::goose::{
    goose_method_from_method, GooseRequest, GooseUser, Scenario, Transaction, TransactionError,
};
use goose::metrics::GooseRequestMetric;
use goose::prelude::TransactionResult;
use reqwest::cookie::Jar;

use crate::pages;
use crate::record::{CountConnections, Recorder};

/// Which users to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    /// Browsers only: home, catalog pages, search, book pages, static assets and covers.
    Browse,
    /// Shoppers only: register, log out, log in, browse, buy, pay, choose delivery, see the order.
    Shop,
    /// Sellers only: register once, then add a book with a cover and edit it, again and again.
    Sell,
    /// Browsers, shoppers and sellers weighted 3:2:1.
    Mix,
}

/// What every user of a run shares.
pub struct Shared {
    /// Where responses are recorded.
    pub rec: Arc<Recorder>,
    /// Accept self-signed certificates.
    pub insecure: bool,
    /// Each user opens new connections this often.
    pub recycle: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Makes account e-mails unique across runs.
    pub run_id: String,
    /// Browsers fetch only this URL, again and again (benchmarks).
    pub only: Option<OnlyPath>,
    /// The TLS configuration every client clones (its verifier, with the system's roots loaded
    /// once); `None` with `--insecure`.
    pub tls: Option<rustls::ClientConfig>,
    /// `--resolve`: hosts connected to at a given address.
    pub resolve: Vec<crate::Resolve>,
}

/// The one page browsers fetch with `--only-path`: its URL parsed once for the whole run, and
/// its request name.
pub struct OnlyPath {
    /// The path joined to the run's base URL.
    pub url: reqwest::Url,
    /// `GET /path`, the name goose and the timeline report it under.
    pub name: String,
}

impl OnlyPath {
    /// `path` (which starts with `/`) on the host of `base`.
    pub fn new(base: &str, path: &str) -> Result<OnlyPath, String> {
        let url = reqwest::Url::parse(base)
            .and_then(|b| b.join(path))
            .map_err(|e| format!("--only-path {path} on {base}: {e}"))?;
        Ok(OnlyPath {
            url,
            name: format!("GET {path}"),
        })
    }
}

/// A TLS configuration that verifies certificates against the system's roots, loaded once.
/// (A reqwest client built without one loads and parses every system root certificate.)
pub fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Per-user state, kept in goose's session data.
#[derive(Clone)]
struct UserState {
    jar: Arc<Jar>,
    born: Instant,
    built: bool,
    assets_fetched: bool,
    seller: bool,
    iteration: u64,
    rng: u64,
}

impl UserState {
    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for picking pages.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            let i = (self.next() % items.len() as u64) as usize;
            items.get(i)
        }
    }
}

/// The scenarios of a kind, ready to register.
pub fn scenarios(kind: ScenarioKind, sh: &Arc<Shared>) -> Result<Vec<Scenario>, goose::GooseError> {
    let one =
        |name: &str, weight: usize, journey: Journey| -> Result<Scenario, goose::GooseError> {
            Scenario::new(name)
                .set_weight(weight)
                .map(|s| s.register_transaction(transaction(sh, name, journey)))
        };
    Ok(match kind {
        ScenarioKind::Browse => vec![one("browse", 1, Journey::Browse)?],
        ScenarioKind::Shop => vec![one("shop", 1, Journey::Shop)?],
        ScenarioKind::Sell => vec![one("sell", 1, Journey::Sell)?],
        ScenarioKind::Mix => vec![
            one("browse", 3, Journey::Browse)?,
            one("shop", 2, Journey::Shop)?,
            one("sell", 1, Journey::Sell)?,
        ],
    })
}

#[derive(Clone, Copy)]
enum Journey {
    Browse,
    Shop,
    Sell,
}

type Fut<'r> = Pin<Box<dyn Future<Output = TransactionResult> + Send + 'r>>;

fn transaction(sh: &Arc<Shared>, name: &str, journey: Journey) -> Transaction {
    let sh = sh.clone();
    Transaction::new(Arc::new(move |user| run_journey(user, sh.clone(), journey))).set_name(name)
}

fn run_journey(user: &mut GooseUser, sh: Arc<Shared>, journey: Journey) -> Fut<'_> {
    Box::pin(async move {
        let res = match journey {
            Journey::Browse => browse(user, &sh).await,
            Journey::Shop => shop(user, &sh).await,
            Journey::Sell => sell(user, &sh).await,
        };
        if res.is_err() {
            // A broken deployment must not turn the load generator into a busy loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(st) = user.get_session_data_mut::<UserState>() {
            st.iteration += 1;
        }
        res
    })
}

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
async fn ensure_client(
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

fn state(user: &mut GooseUser) -> &mut UserState {
    user.get_session_data_unchecked_mut::<UserState>()
}

/// One response, read whole.
struct Page {
    name: String,
    status: u16,
    path: String,
    body: String,
    metric: GooseRequestMetric,
    sample: usize,
}

enum Body {
    Empty,
    Form(Vec<(&'static str, String)>),
    Multipart(reqwest::multipart::Form),
}

/// The deepest cause of a reqwest error, without the URL, so that reasons aggregate.
fn short_error(e: &reqwest::Error) -> String {
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

/// Sends one request to `url` (already joined to the user's base URL: goose's own request
/// builder would parse the URL three times per request) and reads the whole response.
async fn send(
    user: &mut GooseUser,
    sh: &Shared,
    method: reqwest::Method,
    url: reqwest::Url,
    name: &str,
    body: Body,
) -> Result<Page, Box<TransactionError>> {
    let goose_method = goose_method_from_method(method.clone())?;
    let rb = user.client.request(method, url);
    let rb = match body {
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
    // Latency: goose's time to the response headers (which leaves out any wait for the
    // --throttle), plus reading the body.
    let t_headers = Instant::now();
    let index = user.weighted_users_index;
    let metric = goose.request;
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
                    let ok = status.is_success();
                    let sample = sh.rec.record(index, latency, instance.as_deref(), ok);
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
fn failed<T>(
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
fn expect(
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
fn generic_path(path: &str) -> String {
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
fn id_in(path: &str, prefix: &str, suffix: &str) -> Option<u64> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

async fn get(
    user: &mut GooseUser,
    sh: &Shared,
    path: &str,
    name: &str,
) -> Result<Page, Box<TransactionError>> {
    let url = url_for(user, path)?;
    send(user, sh, reqwest::Method::GET, url, name, Body::Empty).await
}

async fn post(
    user: &mut GooseUser,
    sh: &Shared,
    path: &str,
    name: &str,
    pairs: Vec<(&'static str, String)>,
) -> Result<Page, Box<TransactionError>> {
    let url = url_for(user, path)?;
    send(
        user,
        sh,
        reqwest::Method::POST,
        url,
        name,
        Body::Form(pairs),
    )
    .await
}

/// `path` (or a whole URL) joined to the user's base URL.
fn url_for(user: &GooseUser, path: &str) -> Result<reqwest::Url, Box<TransactionError>> {
    user.base_url
        .join(path)
        .map_err(|e| Box::new(TransactionError::from(e)))
}

/// A form on the page, or a failed step.
fn need_form(
    user: &mut GooseUser,
    sh: &Shared,
    page: &mut Page,
    selector: &str,
    wanted: &str,
) -> Result<pages::Form, Box<TransactionError>> {
    match pages::Doc::parse(&page.body).form(selector) {
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

// ---------- browsers ----------

async fn browse(user: &mut GooseUser, sh: &Shared) -> TransactionResult {
    ensure_client(user, sh, false).await?;
    if let Some(only) = &sh.only {
        let url = only.url.clone();
        send(user, sh, reqwest::Method::GET, url, &only.name, Body::Empty).await?;
        return Ok(());
    }
    let mut home = get(user, sh, "/", "GET /").await?;
    let (ok, assets) = {
        let doc = pages::Doc::parse(&home.body);
        (doc.has(".navbar-brand"), doc.assets())
    };
    expect(user, sh, &mut home, ok, "the home page")?;
    // Like a browser with a cache: assets once per connection generation.
    if !state(user).assets_fetched {
        for asset in assets {
            get(user, sh, &asset, "GET /static/...").await?;
        }
        state(user).assets_fetched = true;
    }
    let mut catalog = get(user, sh, "/books", "GET /books").await?;
    let (ok, links, mut cards) = {
        let doc = pages::Doc::parse(&catalog.body);
        (doc.has("h1"), doc.page_links(), doc.book_cards())
    };
    expect(user, sh, &mut catalog, ok, "the catalog")?;
    if let Some(link) = state(user).pick(&links).cloned() {
        let mut page = get(user, sh, &link, "GET /books?page=").await?;
        let more = pages::Doc::parse(&page.body).book_cards();
        expect(
            user,
            sh,
            &mut page,
            !more.is_empty(),
            "a catalog page with books",
        )?;
        cards = more;
    }
    // Search for a word of a title on the page.
    let word = state(user)
        .pick(&cards)
        .and_then(|c| {
            c.title
                .split_whitespace()
                .find(|w| w.len() >= 4 && w.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
        .unwrap_or("River")
        .to_string();
    let mut found = get(user, sh, &format!("/books?q={word}"), "GET /books?q=").await?;
    let ok = pages::Doc::parse(&found.body)
        .text_of("h1")
        .is_some_and(|h| h.contains("matching"));
    expect(user, sh, &mut found, ok, "search results")?;
    if let Some(card) = state(user).pick(&cards).cloned() {
        let mut book = get(user, sh, &format!("/books/{}", card.id), "GET /books/{id}").await?;
        let ok = pages::Doc::parse(&book.body).has("#book-title");
        expect(user, sh, &mut book, ok, "a book page")?;
        if let Some(cover) = card.cover.filter(|c| c.starts_with("/uploads/")) {
            get(user, sh, &cover, "GET /uploads/...").await?;
        }
    }
    Ok(())
}

// ---------- accounts ----------

const PASSWORD: &str = "loadtest-password";

fn email(user: &mut GooseUser, sh: &Shared, role: &str) -> String {
    let index = user.weighted_users_index;
    let iteration = state(user).iteration;
    format!("{role}-{}-{index}-{iteration}@loadtest.invalid", sh.run_id)
}

/// Registers a new account with the current cookie jar; ends signed in.
async fn register(user: &mut GooseUser, sh: &Shared, email: &str, name: &str) -> TransactionResult {
    let mut page = get(user, sh, "/register", "GET /register").await?;
    let form = need_form(
        user,
        sh,
        &mut page,
        r#"form[action="/register"]"#,
        "the register form",
    )?;
    let mut home = post(
        user,
        sh,
        &form.action,
        "POST /register",
        vec![
            ("csrf", form.csrf),
            ("name", name.to_string()),
            ("email", email.to_string()),
            ("password", PASSWORD.to_string()),
        ],
    )
    .await?;
    let ok = home.path == "/" && pages::Doc::parse(&home.body).has("#logout");
    expect(user, sh, &mut home, ok, "the home page, signed in")
}

// ---------- shoppers ----------

async fn shop(user: &mut GooseUser, sh: &Shared) -> TransactionResult {
    // A new shopper: a new cookie jar and new connections.
    ensure_client(user, sh, true).await?;
    let email = email(user, sh, "shopper");
    register(user, sh, &email, "Load Test Shopper").await?;

    // Log out and back in, as returning customers do.
    let mut home = get(user, sh, "/", "GET /").await?;
    let form = need_form(
        user,
        sh,
        &mut home,
        r#"form[action="/logout"]"#,
        "the log-out button",
    )?;
    let mut out = post(
        user,
        sh,
        &form.action,
        "POST /logout",
        vec![("csrf", form.csrf)],
    )
    .await?;
    let ok = !pages::Doc::parse(&out.body).has("#logout");
    expect(user, sh, &mut out, ok, "the home page, signed out")?;
    let mut login = get(user, sh, "/login", "GET /login").await?;
    let form = need_form(
        user,
        sh,
        &mut login,
        r#"form[action="/login"]"#,
        "the log-in form",
    )?;
    let mut back = post(
        user,
        sh,
        &form.action,
        "POST /login",
        vec![
            ("csrf", form.csrf),
            ("email", email.clone()),
            ("password", PASSWORD.to_string()),
        ],
    )
    .await?;
    let ok = pages::Doc::parse(&back.body).has("#logout");
    expect(user, sh, &mut back, ok, "the home page, signed in")?;

    // Find a book in stock.
    let mut catalog = get(user, sh, "/books", "GET /books").await?;
    let (links, mut cards) = {
        let doc = pages::Doc::parse(&catalog.body);
        let cards: Vec<_> = doc
            .book_cards()
            .into_iter()
            .filter(|c| !c.sold_out)
            .collect();
        (doc.page_links(), cards)
    };
    if let Some(link) = state(user).pick(&links).cloned() {
        let page = get(user, sh, &link, "GET /books?page=").await?;
        let more: Vec<_> = pages::Doc::parse(&page.body)
            .book_cards()
            .into_iter()
            .filter(|c| !c.sold_out)
            .collect();
        if !more.is_empty() {
            cards = more;
        }
    }
    let card = state(user).pick(&cards).cloned();
    expect(user, sh, &mut catalog, card.is_some(), "a book in stock")?;
    let card = card.expect("checked");
    let mut book = get(user, sh, &format!("/books/{}", card.id), "GET /books/{id}").await?;
    let form = need_form(user, sh, &mut book, "#buy-form", "the buy form")?;

    // Buy, pay, choose a courier.
    let mut pay = post(
        user,
        sh,
        &form.action,
        "POST /books/{id}/buy",
        vec![("csrf", form.csrf), ("quantity", "1".into())],
    )
    .await?;
    let order = id_in(&pay.path, "/purchases/", "/pay");
    expect(user, sh, &mut pay, order.is_some(), "the payment page")?;
    let order = order.expect("checked");
    let form = need_form(
        user,
        sh,
        &mut pay,
        &format!(r#"form[action="/purchases/{order}/pay"]"#),
        "the payment form",
    )?;
    let mut delivery = post(
        user,
        sh,
        &form.action,
        "POST /purchases/{id}/pay",
        vec![("csrf", form.csrf), ("method", "card".into())],
    )
    .await?;
    let providers = pages::Doc::parse(&delivery.body).radio_values("provider_id");
    let ok = delivery.path == format!("/purchases/{order}/delivery") && !providers.is_empty();
    expect(user, sh, &mut delivery, ok, "the courier choice")?;
    let form = need_form(
        user,
        sh,
        &mut delivery,
        &format!(r#"form[action="/purchases/{order}/delivery"]"#),
        "the courier form",
    )?;
    let provider = state(user).pick(&providers).cloned().unwrap_or_default();
    let mut orders = post(
        user,
        sh,
        &form.action,
        "POST /purchases/{id}/delivery",
        vec![("csrf", form.csrf), ("provider_id", provider)],
    )
    .await?;
    let status = pages::Doc::parse(&orders.body).order_status(order);
    let ok = orders.path == "/orders" && status.as_deref() == Some("shipped");
    expect(user, sh, &mut orders, ok, "the order shipped in my orders")?;
    Ok(())
}

// ---------- sellers ----------

/// A 1x1 PNG, the smallest real cover.
const COVER_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

fn book_form(
    csrf: String,
    title: &str,
    price: &str,
    cover: bool,
) -> Result<reqwest::multipart::Form, Box<TransactionError>> {
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("title", title.to_string())
        .text("author", "Load Test Author")
        .text("description", "Written by the load test.")
        .text("price", price.to_string())
        .text("stock", "5");
    if cover {
        let part = reqwest::multipart::Part::bytes(COVER_PNG)
            .file_name("cover.png")
            .mime_str("image/png")
            .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
        form = form.part("cover", part);
    }
    Ok(form)
}

async fn sell(user: &mut GooseUser, sh: &Shared) -> TransactionResult {
    let new_seller = user
        .get_session_data::<UserState>()
        .is_none_or(|st| !st.seller);
    ensure_client(user, sh, new_seller).await?;
    if new_seller {
        let email = email(user, sh, "seller");
        register(user, sh, &email, "Load Test Seller").await?;
        state(user).seller = true;
    }
    let index = user.weighted_users_index;
    let title = format!(
        "Load test book {}-{index}-{}",
        sh.run_id,
        state(user).iteration
    );
    let mut new = get(user, sh, "/books/new", "GET /books/new").await?;
    let form = need_form(
        user,
        sh,
        &mut new,
        r#"form[action="/books/new"]"#,
        "the new book form",
    )?;
    let body = Body::Multipart(book_form(form.csrf, &title, "12.50", true)?);
    let url = url_for(user, &form.action)?;
    let mut book = send(
        user,
        sh,
        reqwest::Method::POST,
        url,
        "POST /books/new",
        body,
    )
    .await?;
    let id = id_in(&book.path, "/books/", "");
    let ok = id.is_some()
        && pages::Doc::parse(&book.body)
            .text_of("#book-title")
            .as_deref()
            == Some(&title);
    expect(user, sh, &mut book, ok, "the new book's page")?;
    let id = id.expect("checked");

    let mut edit = get(
        user,
        sh,
        &format!("/books/{id}/edit"),
        "GET /books/{id}/edit",
    )
    .await?;
    let form = need_form(
        user,
        sh,
        &mut edit,
        &format!(r#"form[action="/books/{id}/edit"]"#),
        "the edit form",
    )?;
    let body = Body::Multipart(book_form(form.csrf, &title, "13.75", false)?);
    let url = url_for(user, &form.action)?;
    let mut saved = send(
        user,
        sh,
        reqwest::Method::POST,
        url,
        "POST /books/{id}/edit",
        body,
    )
    .await?;
    let ok = saved.path == format!("/books/{id}") && saved.body.contains("$13.75");
    expect(user, sh, &mut saved, ok, "the book page with the new price")?;

    let mut mine = get(user, sh, "/my/books", "GET /my/books").await?;
    let ok = mine.body.contains(&format!("href=\"/books/{id}\""));
    expect(user, sh, &mut mine, ok, "the book in my books")?;
    Ok(())
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

    #[test]
    fn cover_is_a_png() {
        assert!(COVER_PNG.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}

#[cfg(test)]
mod client_tests {
    use super::*;
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
            rec: Arc::new(Recorder::new()),
            insecure,
            recycle: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            run_id: "t".into(),
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

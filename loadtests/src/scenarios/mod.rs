//! The goose scenarios: browsers, shoppers and sellers that use the shop like people do.
//!
//! Each scenario is one transaction, a whole journey, so a step that fails ends the journey
//! (a shopper who could not buy does not try to pay). Every response is recorded with its
//! `X-Bookstore-Instance`; a page that is not the one expected is an error with the reason.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::goose::{GooseUser, Scenario, Transaction, TransactionError};
use goose::prelude::TransactionResult;
use reqwest::cookie::Jar;

use crate::record::Recorder;
use crate::shape::Think;

mod journeys;
mod steps;

use journeys::{browse, sell, shop};
pub use steps::client_builder;
use steps::RUN_OVER;

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

impl ScenarioKind {
    /// The name as `--scenario` takes it.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Browse => "browse",
            ScenarioKind::Shop => "shop",
            ScenarioKind::Sell => "sell",
            ScenarioKind::Mix => "mix",
        }
    }
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
    /// Each user's pause between pages.
    pub think: Think,
    /// When the plan ends: a thinking user stops there instead of starting another page.
    pub plan_end: Instant,
    /// Set when the run is being cut short: users take no further step.
    pub stop: Arc<AtomicBool>,
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
    /// Pages requested in the current journey (the first one is not preceded by a pause).
    pages: u32,
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
            let mut s = Scenario::new(name).set_weight(weight)?;
            if !sh.think.is_none() {
                // Between journeys goose pauses, and stops a pausing user at once when asked.
                s = s.set_wait_time(sh.think.min, sh.think.max)?;
            }
            Ok(s.register_transaction(transaction(sh, name, journey)))
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
        if sh.stop.load(Ordering::Relaxed) {
            // The run was cut short; goose will drop this user with the runtime.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(());
        }
        if let Some(st) = user.get_session_data_mut::<UserState>() {
            st.pages = 0;
        }
        let res = match journey {
            Journey::Browse => browse(user, &sh).await,
            Journey::Shop => shop(user, &sh).await,
            Journey::Sell => sell(user, &sh).await,
        };
        let res = match res {
            // A journey cut by the end of the plan is not a failure.
            Err(e) if matches!(&*e, TransactionError::Custom(m) if m == RUN_OVER) => Ok(()),
            other => other,
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

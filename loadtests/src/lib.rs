//! goose scenarios that shop at a bookstore deployment and report how many instances answered.
//!
//! [`run`] is `bookstore loadtest`; [`execute`] is the same run for tests, returning the
//! [`Report`] instead of printing it. Exit status of [`run`]: [`EXIT_OK`] when every gate
//! holds, [`EXIT_GATE_FAILED`] when a gate fails, [`EXIT_ERROR`] when the run could not be
//! made (unreachable URL, not the shop, bad flags).

pub mod pages;
pub mod record;
pub mod report;
pub mod scenarios;
pub mod timeline;
mod trust;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::GooseAttack;

pub use record::{Recorder, Snapshot};
pub use report::Report;
pub use scenarios::ScenarioKind;
pub use timeline::{Gate, InstanceSeen, Limits, Totals, Verdict, Window};
pub use trust::Resolve;

/// Every gate held.
pub const EXIT_OK: u8 = 0;
/// The run could not be made: unreachable URL, not the shop, bad flags, goose failed.
pub const EXIT_ERROR: u8 = 1;
/// The run was made and a gate failed.
pub const EXIT_GATE_FAILED: u8 = 3;

/// The examples and exit statuses `bookstore loadtest --help` ends with.
pub const EXAMPLES: &str = "\
Examples:
  bookstore loadtest --url http://127.0.0.1:8080 --users 20 --duration 1m
  taskset -c 1 bookstore loadtest --url http://127.0.0.1:8080 --scenario browse --threads 1
  bookstore loadtest --url https://shop.example.com --scenario shop --users 50 --ramp 30s \\
    --duration 5m --report out/load
  bookstore loadtest --url https://127.0.0.1:8443 --insecure --scenario browse --throttle 200
  bookstore loadtest --url https://shop.example.com --expect-instances 3 --max-p95 500 \\
    --max-error-rate 1

Exit status: 0 every gate held, 3 a gate failed (the message names it), 1 the run could not be
made (unreachable URL, not the bookstore, bad flags), 2 bad usage.";

/// Flags of `bookstore loadtest`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct LoadtestArgs {
    /// Base URL of the deployment, http:// or https://.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Concurrent users.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub users: usize,
    /// Time to start all users (ramp-up), such as 30s or 1m.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub ramp: Duration,
    /// How long to keep all users running after the ramp, such as 5m.
    #[arg(long, value_name = "TIME", default_value = "1m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Who the users are: browsers, shoppers, sellers, or a 3:2:1 mix.
    #[arg(long, value_enum, default_value_t = ScenarioKind::Mix)]
    pub scenario: ScenarioKind,
    /// Cap on requests per second, all users together.
    #[arg(long, value_name = "RPS")]
    pub throttle: Option<usize>,
    /// Accept self-signed or otherwise untrusted TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Also trust the CA certificates in this PEM file (a rehearsal's ACME test CA, an internal
    /// CA), besides the system's.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca_cert: Option<PathBuf>,
    /// Connect to ADDR whenever the URL names HOST, like curl's --resolve (repeatable): e.g.
    /// `shop.example.com:127.0.0.1` for a rehearsal whose certificate names the domain.
    #[arg(long, value_name = "HOST:ADDR", value_parser = trust::parse_resolve)]
    pub resolve: Vec<Resolve>,
    /// Write goose's HTML report, timeline.json and chart.svg to this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Length of a timeline window, such as 10s or 500ms.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub window: Duration,
    /// Gate: fail (exit 3) when the p95 latency over the run is above MS milliseconds.
    #[arg(long, value_name = "MS")]
    pub max_p95: Option<f64>,
    /// Gate: fail (exit 3) when more than PCT percent of requests failed.
    #[arg(long, value_name = "PCT")]
    pub max_error_rate: Option<f64>,
    /// Gate: fail (exit 3) when fewer than N distinct instances answered.
    #[arg(long, value_name = "N")]
    pub expect_instances: Option<usize>,
    /// Each user opens new connections this often, so that instances added behind keep-alive
    /// load balancers get traffic (shoppers also start fresh with every journey).
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_duration)]
    pub recycle: Duration,
    /// Timeout of one request.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Browsers request only this path, again and again (to compare with wrk).
    #[arg(long, value_name = "PATH")]
    pub only_path: Option<String>,
    /// Threads that make the load [default: one per CPU this process may use]. 1 is the
    /// cheapest per request: pin the generator with `taskset -c 1` to keep it off the shop's CPU.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress display (it is also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl LoadtestArgs {
    /// Defaults for `url`, as the command line would give them.
    pub fn for_url(url: &str) -> LoadtestArgs {
        LoadtestArgs {
            url: url.to_string(),
            users: 10,
            ramp: Duration::from_secs(10),
            duration: Duration::from_secs(60),
            scenario: ScenarioKind::Mix,
            throttle: None,
            insecure: false,
            ca_cert: None,
            resolve: Vec::new(),
            report: None,
            window: Duration::from_secs(10),
            max_p95: None,
            max_error_rate: None,
            expect_instances: None,
            recycle: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            only_path: None,
            threads: None,
            no_progress: false,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_p95_ms: self.max_p95,
            max_error_rate_pct: self.max_error_rate,
            expect_instances: self.expect_instances,
        }
    }
}

/// Parses `90`, `90s`, `500ms`, `2m`, `1m30s`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration; use e.g. 30s, 500ms, 2m, 1m30s or 1h");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
    }
    Ok(total)
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The flags do not make sense together.
    #[error("{0}")]
    BadArgs(String),
    /// The first request got no answer.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What went wrong, with a hint.
        reason: String,
    },
    /// Something answered, but not the bookstore.
    #[error("{url} answered HTTP {status} without an X-Bookstore-Instance header: it is not the bookstore (check the URL, and that the proxy passes the header through)")]
    NotTheShop {
        /// The URL.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// goose refused the configuration or failed.
    #[error("goose: {0}")]
    Goose(String),
    /// The run did not end in time (a safety net; users should stop by themselves).
    #[error("the load test did not end within {0:?} of its planned length; stopped waiting")]
    Hung(Duration),
    /// A report file could not be written.
    #[error("cannot write the report to {path}: {reason}")]
    Report {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Runs `bookstore loadtest` with its own tokio runtime: progress on stderr, the summary on
/// stdout, and the exit status ([`EXIT_OK`], [`EXIT_GATE_FAILED`] or [`EXIT_ERROR`]).
pub fn run(args: LoadtestArgs) -> ExitCode {
    if let Err(e) = validate(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    // goose prints "All N users launched." with println! even when quiet; keep it off the
    // terminal so the progress display stays whole. The summary is printed afterwards.
    // (Only for a terminal: a test harness or a pipe keeps its stdout.)
    let hush = (progress || std::io::stdout().is_terminal()).then(StdoutHush::new);
    let result = rt.block_on(execute(&args, progress));
    drop(hush);
    match result {
        Ok(report) => {
            print!("{}", report.summary());
            let failed = report.failed_gates();
            if failed.is_empty() {
                ExitCode::from(EXIT_OK)
            } else {
                for g in failed {
                    eprintln!("error: gate failed: {}", g.message);
                }
                ExitCode::from(EXIT_GATE_FAILED)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The generator's runtime: `threads` workers (default: one per CPU this process may use). One
/// thread gets a current-thread runtime, which on one CPU makes 1.2-1.8 times the requests per
/// CPU-second of a multi-thread runtime with one worker (measured with `--only-path /healthz`).
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}

/// Points file descriptor 1 at /dev/null until dropped.
struct StdoutHush {
    #[cfg(unix)]
    saved: Option<libc::c_int>,
}

impl StdoutHush {
    fn new() -> StdoutHush {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        {
            // SAFETY: plain fd calls on descriptors this function owns or that stay open.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null < 0 {
                    return StdoutHush { saved: None };
                }
                let saved = libc::dup(1);
                if saved < 0 || libc::dup2(null, 1) < 0 {
                    libc::close(null);
                    if saved >= 0 {
                        libc::close(saved);
                    }
                    return StdoutHush { saved: None };
                }
                libc::close(null);
                StdoutHush { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        StdoutHush {}
    }
}

impl Drop for StdoutHush {
    fn drop(&mut self) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if let Some(saved) = self.saved.take() {
            // SAFETY: `saved` is the descriptor duplicated in `new`.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}

/// Checks the flags.
fn validate(args: &LoadtestArgs) -> Result<(), LoadtestError> {
    let bad = |m: String| Err(LoadtestError::BadArgs(m));
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        return bad(format!(
            "--url {} must start with http:// or https://",
            args.url
        ));
    }
    if reqwest::Url::parse(&args.url).is_err() {
        return bad(format!("--url {} is not a valid URL", args.url));
    }
    if args.users == 0 {
        return bad("--users must be at least 1".into());
    }
    if args.duration < Duration::from_secs(1) {
        return bad("--duration must be at least 1s".into());
    }
    if args.window < Duration::from_millis(100) {
        return bad("--window must be at least 100ms".into());
    }
    if let Some(ca) = &args.ca_cert {
        if args.insecure {
            return bad(
                "--ca-cert and --insecure together: --insecure already accepts any certificate"
                    .into(),
            );
        }
        trust::read_ca(ca).map_err(LoadtestError::BadArgs)?;
    }
    if args.threads == Some(0) {
        return bad("--threads must be at least 1".into());
    }
    if args.throttle == Some(0) {
        return bad("--throttle must be at least 1 request per second".into());
    }
    if let Some(p) = &args.only_path {
        if !p.starts_with('/') {
            return bad(format!("--only-path {p} must start with /"));
        }
    }
    Ok(())
}

/// One request before goose starts: the URL must answer, and answer like the shop.
async fn preflight(args: &LoadtestArgs) -> Result<(), LoadtestError> {
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .tls_danger_accept_invalid_certs(args.insecure);
    if let Some(ca) = &args.ca_cert {
        client = client
            .tls_backend_preconfigured(trust::tls_config(ca).map_err(LoadtestError::BadArgs)?);
    }
    for r in &args.resolve {
        client = client.resolve(&r.host, r.socket_addr());
    }
    let client = client
        .build()
        .map_err(|e| LoadtestError::Goose(format!("cannot build an HTTP client: {e}")))?;
    let resp = client.get(&args.url).send().await.map_err(|e| {
        let mut cause: &dyn std::error::Error = &e;
        let mut chain = Vec::new();
        while let Some(next) = cause.source() {
            chain.push(next.to_string());
            cause = next;
        }
        let detail = chain.last().cloned().unwrap_or_else(|| e.to_string());
        let tls = chain.iter().any(|c| {
            let c = c.to_ascii_lowercase();
            c.contains("certificate") || c.contains("tls") || c.contains("invalid peer")
        });
        let hint = if tls && !args.insecure {
            "; for a self-signed certificate add --insecure, for a private CA --ca-cert FILE"
        } else if e.is_timeout() {
            "; nothing answered within 10 s"
        } else {
            "; is the shop running, and the address and port right?"
        };
        LoadtestError::Unreachable {
            url: args.url.clone(),
            reason: format!("{detail}{hint}"),
        }
    })?;
    if resp.headers().get("x-bookstore-instance").is_none() {
        return Err(LoadtestError::NotTheShop {
            url: args.url.clone(),
            status: resp.status().as_u16(),
        });
    }
    Ok(())
}

/// Keeps goose's log lines (warnings on every failed request) off the terminal: they would
/// garble the progress display, and every failure is already counted with its reason.
struct SilentLog;

impl log::Log for SilentLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        false
    }
    fn log(&self, _: &log::Record<'_>) {}
    fn flush(&self) {}
}

static SILENT: SilentLog = SilentLog;

fn silence_goose_log() {
    if log::set_logger(&SILENT).is_ok() {
        log::set_max_level(log::LevelFilter::Off);
    }
}

fn goose_config(args: &LoadtestArgs, report_dir: Option<&PathBuf>) -> GooseConfiguration {
    let mut c = GooseConfiguration::default();
    c.host = Some(args.url.trim_end_matches('/').to_string());
    c.users = Some(args.users);
    let ramp = args.ramp.as_secs();
    if args.users >= 2 && ramp >= 1 {
        c.increase_time = Some(ramp.to_string());
    } else {
        c.increase_rate = Some(args.users.max(1).to_string());
    }
    c.run_time = Some(args.duration.as_secs().max(1).to_string());
    c.throttle_requests = args.throttle;
    c.accept_invalid_certs = args.insecure;
    c.timeout = Some(args.timeout.as_secs().max(1).to_string());
    c.quiet = 1;
    c.no_print_metrics = true;
    c.no_reset_metrics = true;
    c.no_telnet = true;
    c.no_websocket = true;
    if args.only_path.is_some() {
        // One request per journey: transaction and scenario metrics would triple goose's
        // per-request bookkeeping for nothing the request metrics do not already say.
        c.no_transaction_metrics = true;
        c.no_scenario_metrics = true;
    }
    if let Some(dir) = report_dir {
        c.report_file = vec![dir.join("report.html").to_string_lossy().into_owned()];
    }
    c
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}",
        (nanos % 0xFFFF_FFFF_FFFF) as u64,
        std::process::id() % 0xFFFF
    )
}

/// Runs the load test and returns what it found. `progress` shows an indicatif display on
/// stderr. Fails fast, before goose starts, when the URL does not answer like the shop.
pub async fn execute(args: &LoadtestArgs, progress: bool) -> Result<Report, LoadtestError> {
    validate(args)?;
    preflight(args).await?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).map_err(|e| LoadtestError::Report {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    }
    silence_goose_log();

    let rec = Arc::new(Recorder::new());
    let started_at = chrono::Utc::now();
    let shared = Arc::new(scenarios::Shared {
        rec: rec.clone(),
        insecure: args.insecure,
        recycle: args.recycle.max(Duration::from_millis(100)),
        timeout: args.timeout.max(Duration::from_secs(1)),
        run_id: run_id(),
        only: match &args.only_path {
            Some(path) => {
                Some(scenarios::OnlyPath::new(&args.url, path).map_err(LoadtestError::BadArgs)?)
            }
            None => None,
        },
        resolve: args.resolve.clone(),
        tls: if args.insecure {
            None
        } else if let Some(ca) = &args.ca_cert {
            Some(trust::tls_config(ca).map_err(LoadtestError::BadArgs)?)
        } else {
            Some(scenarios::tls_config().map_err(|e| {
                LoadtestError::Goose(format!("cannot set up TLS with the system's roots: {e}"))
            })?)
        },
    });
    let goose_err = |e: goose::GooseError| LoadtestError::Goose(e.to_string());
    let mut attack = GooseAttack::initialize_with_config(goose_config(args, args.report.as_ref()))
        .map_err(goose_err)?;
    // One client shared by all users until each builds its own (with its cookie jar) on its
    // first step: goose would otherwise build a client per user that is never used.
    attack = attack
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new()
                .without_cookies()
                .accept_invalid_certs(args.insecure),
        )
        .map_err(goose_err)?;
    for s in scenarios::scenarios(args.scenario, &shared).map_err(goose_err)? {
        attack = attack.register_scenario(s);
    }

    let planned = Duration::from_secs(args.ramp.as_secs() + args.duration.as_secs().max(1));
    let done = Arc::new(AtomicBool::new(false));
    let bar = progress.then(|| spawn_progress(rec.clone(), args.users, planned, done.clone()));

    let limit = planned + args.timeout + Duration::from_secs(30);
    let result = tokio::time::timeout(limit, attack.execute()).await;
    done.store(true, Ordering::SeqCst);
    if let Some(task) = bar {
        let _ = task.await;
    }
    match result {
        Err(_) => return Err(LoadtestError::Hung(limit - planned)),
        Ok(Err(e)) => return Err(goose_err(e)),
        Ok(Ok(_metrics)) => {}
    }

    let elapsed = rec.start().elapsed();
    let snap = rec.snapshot();
    let windows = timeline::windows(&snap, args.window, elapsed);
    let instances = timeline::instances_seen(&snap, started_at);
    let totals = timeline::totals(&snap, &windows, elapsed);
    let verdict = timeline::verdict(&snap, &instances, &windows);
    let gates = timeline::gates(&args.limits(), &totals, &instances);
    let mut errors_by_reason: Vec<(String, u64)> = snap.reasons.into_iter().collect();
    errors_by_reason.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut report = Report {
        url: args.url.clone(),
        scenario: args.scenario,
        users: args.users,
        started_at,
        duration_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        window_s: args.window.as_secs_f64(),
        totals,
        windows,
        instances,
        verdict,
        errors_by_reason,
        gates,
        files: Vec::new(),
    };
    if let Some(dir) = &args.report {
        let html = dir.join("report.html");
        let mut files = report::write_files(&report, dir).map_err(|e| LoadtestError::Report {
            path: dir.clone(),
            reason: format!("{e:#}"),
        })?;
        if html.exists() {
            files.insert(0, html);
        }
        report.files = files;
        // Rewrite the JSON so that it lists the files too.
        std::fs::write(
            dir.join("timeline.json"),
            serde_json::to_vec_pretty(&report).unwrap_or_default(),
        )
        .map_err(|e| LoadtestError::Report {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(report)
}

/// The progress display: elapsed/total, users, requests/s, errors, instances seen.
fn spawn_progress(
    rec: Arc<Recorder>,
    users: usize,
    planned: Duration,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(planned.as_secs().max(1)),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} / {len}s [{bar:30.cyan/blue}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last = (Instant::now(), rec.requests());
        while !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = (Instant::now(), rec.requests());
            let rps =
                (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64().max(0.001);
            last = now;
            bar.set_position(start.elapsed().as_secs().min(planned.as_secs()));
            bar.set_message(format!(
                "users {}/{users} · {rps:.0} req/s · {} requests · {} errors · {} instance(s)",
                rec.users().min(users),
                rec.requests(),
                rec.errors(),
                rec.instances()
            ));
        }
        bar.finish_and_clear();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 min").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn flags_are_checked() {
        let mut a = LoadtestArgs::for_url("ftp://x");
        assert!(validate(&a).is_err());
        a.url = "http://127.0.0.1:1".into();
        assert!(validate(&a).is_ok());
        a.users = 0;
        assert!(validate(&a).is_err());
    }
}

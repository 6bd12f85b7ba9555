//! The flags of `bookstore loadtest` and their checks.

use std::path::PathBuf;
use std::time::Duration;

use crate::scenarios::ScenarioKind;
use crate::shape::{parse_stages, parse_think, Stages, Think};
use crate::LoadtestError;

/// The examples and exit statuses `bookstore loadtest --help` ends with.
pub const EXAMPLES: &str = "\
Examples:
  bookstore loadtest --url http://127.0.0.1:8080 --users 20 --duration 1m
  taskset -c 1 bookstore loadtest --url http://127.0.0.1:8080 --scenario browse --threads 1
  bookstore loadtest --url https://127.0.0.1:8443 --insecure --scenario browse \\
    --stages \"2:0s,2:40s,12:0s,12:60s,2:0s,2:60s\" --think 1s..3s \\
    --watch-rehearsal http://127.0.0.1:PORT/ --expect-instances 3 --expect-scale-in 2
  bookstore loadtest --url https://shop.example.com --yes-write --scenario shop --users 50 \\
    --ramp 30s --duration 5m --watch-asg bookstore-asg --report out/load
  bookstore loadtest --url https://shop.example.com --watch-hpa bookstore/bookstore \\
    --expect-scale-out --max-p95 500 --max-error-rate 1
  bookstore loadtest --url https://shop.example.com --scenario browse --users 300 --duration 30m \
    --shard 0/3 --start-at 2026-12-02T16:00:00Z --result shard-0.json   # 1/3 and 2/3 elsewhere
  bookstore loadtest merge shard-0.json shard-1.json shard-2.json --report out/load
  bookstore loadtest collect --job bookstore-loadtest --namespace bookstore --report out/load

Exit status: 0 every gate held, 3 a gate failed (the message names it), 1 the run could not be
made or did not finish (unreachable URL, not the bookstore, the platform CLI failed, Ctrl-C or the
safety timeout: what was gathered is still reported; merge/collect: a shard missing), 2 bad usage
(the message names the flag; merge: files not of one run).";

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
    /// The load's shape instead of --users/--ramp/--duration: USERS:DURATION stages, each
    /// moving linearly from the users before it (0 at the start) to USERS over DURATION (0s: a
    /// step; the same USERS again: a hold), e.g. "2:0s,2:40s,12:0s,12:60s,2:0s,2:60s".
    #[arg(long, value_name = "STAGES", value_parser = parse_stages,
          conflicts_with_all = ["users", "ramp", "duration"])]
    pub stages: Option<Stages>,
    /// Each user's pause between the pages it requests: fixed (2s) or uniformly random in a
    /// range (1s..3s). Assets and covers a page loads follow it without a pause.
    #[arg(long, value_name = "TIME[..TIME]", value_parser = parse_think)]
    pub think: Option<Think>,
    /// Who the users are: browsers, shoppers, sellers, or a 3:2:1 mix.
    #[arg(long, value_enum, default_value_t = ScenarioKind::Mix)]
    pub scenario: ScenarioKind,
    /// Shoppers and sellers write (accounts, purchases, books); against anything but loopback
    /// they run only with this flag. Their rows are marked for the cleanup in
    /// loadtests/README.md: e-mails @loadtest.invalid, book titles starting "[loadtest]".
    #[arg(long)]
    pub yes_write: bool,
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
    #[arg(long, value_name = "HOST:ADDR", value_parser = crate::trust::parse_resolve)]
    pub resolve: Vec<crate::Resolve>,
    /// Write report.html, timeline.json, chart.svg and goose's goose.html to this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Length of a timeline window, such as 10s or 500ms. Windows start at whole multiples of
    /// it in UTC, so that runs on several machines line up.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub window: Duration,
    /// An instance is counted as serving in a window when it answered at least PCT percent of
    /// an equal share of the window's successful responses.
    #[arg(long, value_name = "PCT", default_value_t = 20.0)]
    pub serving_share: f64,
    /// Gate: fail (exit 3) when the p95 latency of a steady stage is above MS milliseconds.
    #[arg(long, value_name = "MS")]
    pub max_p95: Option<f64>,
    /// Gate: fail (exit 3) when more than PCT percent of a steady stage's requests failed.
    #[arg(long, value_name = "PCT")]
    pub max_error_rate: Option<f64>,
    /// Judge --max-p95 and --max-error-rate over the whole run, ramps and drain included.
    #[arg(long)]
    pub gate_whole_run: bool,
    /// Gate: fail (exit 3) unless at least N instances served at the same time.
    #[arg(long, value_name = "N")]
    pub expect_instances: Option<usize>,
    /// Gate: fail (exit 3) unless more instances served at once than at the start.
    #[arg(long)]
    pub expect_scale_out: bool,
    /// Gate: fail (exit 3) unless, after its peak, serving capacity went back to M or fewer.
    #[arg(long, value_name = "M")]
    pub expect_scale_in: Option<usize>,
    /// The platform's view: poll this EC2 auto-scaling group with the `aws` CLI.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["watch_hpa", "watch_rehearsal"])]
    pub watch_asg: Option<String>,
    /// The platform's view: poll this HorizontalPodAutoscaler (and its pods) with `kubectl`.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_hpa,
          conflicts_with = "watch_rehearsal")]
    pub watch_hpa: Option<(String, String)>,
    /// The platform's view: read a `bookstore rehearse` decision log (the `autoscaler:` URL
    /// it prints).
    #[arg(long, value_name = "URL")]
    pub watch_rehearsal: Option<String>,
    /// How often to poll the platform.
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_duration)]
    pub watch_every: Duration,
    /// Each user opens new connections this often, so that instances added behind keep-alive
    /// load balancers get traffic (shoppers also start fresh with every journey).
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_duration)]
    pub recycle: Duration,
    /// Timeout of one request.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// After the planned end, wait this long for users to finish their journeys, then stop
    /// and report what was gathered [default: the request timeout plus 30s].
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub stop_grace: Option<Duration>,
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
    /// Run the I-th of N shares of the load (0-based): of the users, of every stage and of
    /// --throttle, the remainder going to the lowest indexes. A Kubernetes Indexed Job passes
    /// `$(JOB_COMPLETION_INDEX)/N`. Merge the shards' --result files with `loadtest merge`.
    #[arg(long, value_name = "I/N", value_parser = crate::shard::parse_shard)]
    pub shard: Option<crate::shard::Shard>,
    /// Wait until this time (RFC 3339, e.g. 2026-12-02T16:00:00Z), then start, so that every
    /// shard starts together. A time more than one --window in the past is refused.
    #[arg(long, value_name = "TIME", value_parser = crate::shard::parse_start_at)]
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Write this run's mergeable result (versioned JSON: run id, shard, configuration, clock
    /// offset, per-window and per-instance counts and histograms) to FILE.
    #[arg(long, value_name = "FILE")]
    pub result: Option<PathBuf>,
    /// Print the same result on stdout at the end, gzipped and base64-encoded between
    /// `-----BEGIN BOOKSTORE LOADTEST RESULT-----` and `-----END ...` lines, so that it
    /// survives `kubectl logs` (`loadtest collect` reads it from there).
    #[arg(long)]
    pub result_stdout: bool,
}

impl LoadtestArgs {
    /// Defaults for `url`, as the command line would give them.
    pub fn for_url(url: &str) -> LoadtestArgs {
        LoadtestArgs {
            url: url.to_string(),
            users: 10,
            ramp: Duration::from_secs(10),
            duration: Duration::from_secs(60),
            stages: None,
            think: None,
            scenario: ScenarioKind::Mix,
            yes_write: false,
            throttle: None,
            insecure: false,
            ca_cert: None,
            resolve: Vec::new(),
            report: None,
            window: Duration::from_secs(10),
            serving_share: 20.0,
            max_p95: None,
            max_error_rate: None,
            gate_whole_run: false,
            expect_instances: None,
            expect_scale_out: false,
            expect_scale_in: None,
            watch_asg: None,
            watch_hpa: None,
            watch_rehearsal: None,
            watch_every: Duration::from_secs(5),
            recycle: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            stop_grace: None,
            only_path: None,
            threads: None,
            no_progress: false,
            shard: None,
            start_at: None,
            result: None,
            result_stdout: false,
        }
    }

    /// The stages that run: `--stages`, or the ramp and hold of `--users`/`--ramp`/`--duration`.
    pub fn plan(&self) -> Stages {
        self.stages
            .clone()
            .unwrap_or_else(|| Stages::ramp_and_hold(self.users, self.ramp, self.duration))
    }

    /// The think time (none unless `--think`).
    pub fn think_time(&self) -> Think {
        self.think.unwrap_or_default()
    }

    /// How long after the planned end the run is stopped.
    pub fn grace(&self) -> Duration {
        self.stop_grace
            .unwrap_or(self.timeout + Duration::from_secs(30))
    }

    /// True when the scenario registers accounts, buys or lists books.
    pub fn writes(&self) -> bool {
        self.scenario != ScenarioKind::Browse
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
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
    }
    Ok(total)
}

/// Parses `--watch-hpa NAMESPACE/NAME`.
fn parse_hpa(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!(
            "`{s}` is not NAMESPACE/NAME, e.g. bookstore/bookstore (kubectl get hpa -A lists them)"
        )),
    }
}

/// True when `url`'s host is on this machine: 127.0.0.0/8, ::1, localhost, or a host that
/// `--resolve` sends to a loopback address.
pub fn is_loopback(url: &reqwest::Url, resolve: &[crate::Resolve]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if resolve
        .iter()
        .any(|r| r.host.eq_ignore_ascii_case(host) && r.socket_addr().ip().is_loopback())
    {
        return true;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    }
}

/// Windows one run may keep: their latency histograms are its memory (see `aggregate`).
pub const MAX_WINDOWS: u64 = 20_000;

/// Checks the flags together; every refusal names the flag and says what to do.
pub fn validate(args: &LoadtestArgs) -> Result<(), LoadtestError> {
    let bad = |m: String| Err(LoadtestError::BadArgs(m));
    if !(args.url.starts_with("http://") || args.url.starts_with("https://")) {
        return bad(format!(
            "--url {} must start with http:// or https://",
            args.url
        ));
    }
    let Ok(url) = reqwest::Url::parse(&args.url) else {
        return bad(format!("--url {} is not a valid URL", args.url));
    };
    if args.stages.is_none() {
        if args.users == 0 {
            return bad("--users must be at least 1".into());
        }
        if args.duration < Duration::from_secs(1) {
            return bad("--duration must be at least 1s".into());
        }
    }
    if args.window < Duration::from_millis(100) {
        return bad("--window must be at least 100ms".into());
    }
    let planned = args.plan().total() + args.grace();
    let windows = (planned.as_millis() as u64).div_ceil(args.window.as_millis().max(1) as u64);
    if windows > MAX_WINDOWS {
        return bad(format!(
            "--window {}ms cuts this run ({} s with the stop grace) into {windows} windows; \
             at most {MAX_WINDOWS} are kept (about 15 KiB each): use a longer --window",
            args.window.as_millis(),
            planned.as_secs()
        ));
    }
    if !(args.serving_share > 0.0 && args.serving_share <= 100.0) {
        return bad(format!(
            "--serving-share {} must be a percentage above 0 and at most 100",
            args.serving_share
        ));
    }
    if let Some(s) = args.shard {
        crate::shard::parse_shard(&s.to_string())
            .map_err(|e| LoadtestError::BadArgs(format!("--shard {e}")))?;
        crate::shard::for_shard(args)?;
    }
    crate::shard::check_start_at(args, chrono::Utc::now())?;
    if args.threads == Some(0) {
        return bad("--threads must be at least 1".into());
    }
    if args.throttle == Some(0) {
        return bad("--throttle must be at least 1 request per second".into());
    }
    if args.watch_every < Duration::from_millis(100) {
        return bad("--watch-every must be at least 100ms".into());
    }
    if let Some(n) = args.expect_instances {
        if n == 0 {
            return bad("--expect-instances must be at least 1".into());
        }
    }
    if let Some(p) = &args.only_path {
        if !p.starts_with('/') {
            return bad(format!("--only-path {p} must start with /"));
        }
    }
    if let Some(u) = &args.watch_rehearsal {
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || reqwest::Url::parse(u).is_err()
        {
            return bad(format!(
                "--watch-rehearsal {u} is not an http:// URL; give the `autoscaler:` URL the rehearsal printed"
            ));
        }
    }
    if let Some(ca) = &args.ca_cert {
        if args.insecure {
            return bad(
                "--ca-cert and --insecure together: --insecure already accepts any certificate"
                    .into(),
            );
        }
        crate::trust::read_ca(ca).map_err(LoadtestError::BadArgs)?;
    }
    if args.writes() && !args.yes_write && !is_loopback(&url, &args.resolve) {
        return bad(format!(
            "--scenario {} registers accounts, buys real stock and lists books on {}, which is not \
             this machine. If that shop is yours to write to, add --yes-write (the rows are marked: \
             e-mails @loadtest.invalid, titles starting [loadtest]; loadtests/README.md has the \
             cleanup); to read only, use --scenario browse",
            args.scenario.name(),
            args.url
        ));
    }
    Ok(())
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
        a.users = 1;
        a.window = Duration::from_millis(100);
        a.duration = Duration::from_secs(3600);
        let e = validate(&a).unwrap_err().to_string();
        assert!(e.starts_with("--window 100ms cuts this run"), "{e}");
        a.window = Duration::from_secs(1);
        assert!(validate(&a).is_ok());
        a.serving_share = 0.0;
        assert!(validate(&a)
            .unwrap_err()
            .to_string()
            .contains("--serving-share"));
    }

    #[test]
    fn writing_to_a_shop_elsewhere_needs_yes_write() {
        let mut a = LoadtestArgs::for_url("https://shop.example.com");
        let e = validate(&a).unwrap_err().to_string();
        assert!(e.starts_with("--scenario mix registers accounts"), "{e}");
        assert!(e.contains("--yes-write"), "{e}");
        a.scenario = ScenarioKind::Browse;
        assert!(validate(&a).is_ok(), "browsing only reads");
        a.scenario = ScenarioKind::Shop;
        a.yes_write = true;
        assert!(validate(&a).is_ok());
        for local in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://localhost:1",
            "https://[::1]:8443",
            "http://shop.localhost",
        ] {
            let a = LoadtestArgs::for_url(local);
            assert!(validate(&a).is_ok(), "{local}");
        }
        assert!(validate(&LoadtestArgs::for_url("http://10.0.0.5")).is_err());
    }

    #[test]
    fn hpa_is_namespace_slash_name() {
        assert_eq!(
            parse_hpa("shop/bookstore"),
            Ok(("shop".into(), "bookstore".into()))
        );
        for bad in ["bookstore", "/x", "x/", "a/b/c"] {
            assert!(parse_hpa(bad).is_err(), "{bad}");
        }
    }
}

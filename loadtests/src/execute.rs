//! One run: check the URL, watch the platform, drive goose through the stages, and build the
//! report from what was gathered — also when Ctrl-C or the safety timeout cut the run short.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::{GooseConfiguration, GooseDefault, GooseDefaultType};
use goose::GooseAttack;

use crate::args::{validate, LoadtestArgs};
use crate::gates::{self, Limits};
use crate::platform::{self, Watch, Watcher};
use crate::record::{Correction, Recorder};
use crate::report::{EndedBy, LoadModel, Report};
use crate::result_file::{ClockCheck, ShardResult};
use crate::timeline::{self, Cut};
use crate::verdict::{self, Judge};
use crate::{files, scenarios, LoadtestError};

/// One request before goose starts: the URL must answer, and answer like the shop. Returns
/// the clock check its `Date` header gives (see [`ClockCheck`]).
async fn preflight(args: &LoadtestArgs) -> Result<Option<ClockCheck>, LoadtestError> {
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .tls_danger_accept_invalid_certs(args.insecure);
    if let Some(ca) = &args.ca_cert {
        client = client.tls_backend_preconfigured(
            crate::trust::tls_config(ca).map_err(LoadtestError::BadArgs)?,
        );
    }
    for r in &args.resolve {
        client = client.resolve(&r.host, r.socket_addr());
    }
    let client = client
        .build()
        .map_err(|e| LoadtestError::Goose(format!("cannot build an HTTP client: {e}")))?;
    let sent_ms = chrono::Utc::now().timestamp_millis();
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
    let received_ms = chrono::Utc::now().timestamp_millis();
    if resp.headers().get("x-bookstore-instance").is_none() {
        return Err(LoadtestError::NotTheShop {
            url: args.url.clone(),
            status: resp.status().as_u16(),
        });
    }
    let first = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| ClockCheck::from_date(d, sent_ms, received_ms));
    // A shard's result carries the check; narrowing it takes about a second of requests.
    match first {
        Some(c) if args.result.is_some() || args.result_stdout => {
            Ok(Some(crate::clock::refine(&client, &args.url, c).await))
        }
        c => Ok(c),
    }
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
    c.throttle_requests = args.throttle;
    c.accept_invalid_certs = args.insecure;
    c.timeout = Some(args.timeout.as_secs().max(1).to_string());
    c.quiet = 1;
    c.no_print_metrics = true;
    c.no_telnet = true;
    c.no_websocket = true;
    if args.only_path.is_some() {
        // One request per journey: transaction and scenario metrics would triple goose's
        // per-request bookkeeping for nothing the request metrics do not already say.
        c.no_transaction_metrics = true;
        c.no_scenario_metrics = true;
    }
    if let Some(dir) = report_dir {
        c.report_file = vec![dir.join(files::GOOSE_HTML).to_string_lossy().into_owned()];
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

/// What `--watch-*` asks for.
pub fn watch_of(args: &LoadtestArgs) -> Option<Watch> {
    if let Some(n) = &args.watch_asg {
        return Some(Watch::Asg(n.clone()));
    }
    if let Some((ns, n)) = &args.watch_hpa {
        return Some(Watch::Hpa(ns.clone(), n.clone()));
    }
    args.watch_rehearsal
        .as_ref()
        .map(|u| Watch::Rehearsal(u.clone()))
}

/// Runs the load test and returns what it found. `progress` shows an indicatif display on
/// stderr. Fails fast, before goose starts, when the URL does not answer like the shop or the
/// platform cannot be read. A run cut short (Ctrl-C, the safety timeout) still returns its
/// report, with [`Report::ended_by`] saying why.
pub async fn execute(args: &LoadtestArgs, progress: bool) -> Result<Report, LoadtestError> {
    execute_live(args, progress, |_| {}).await
}

/// [`execute`], handing `live` the run's [`Recorder`] just before the load starts, so that a
/// caller can watch the run as it goes (requests, errors, instances so far).
pub async fn execute_live(
    args: &LoadtestArgs,
    progress: bool,
    live: impl FnOnce(Arc<Recorder>),
) -> Result<Report, LoadtestError> {
    validate(args)?;
    // With --shard, this generator runs its share; the result keeps the whole run's flags.
    let full = args;
    let args = &crate::shard::for_shard(full)?;
    let clock = preflight(args).await?;
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).map_err(|e| LoadtestError::Report {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
    }
    silence_goose_log();
    crate::shard::wait_for_start(args).await;
    let plan = args.plan();
    let think = args.think_time();
    let watch = watch_of(args);
    let watcher = match &watch {
        Some(w) => Some(
            Watcher::start(w, args.watch_every, chrono::Utc::now())
                .await
                .map_err(LoadtestError::Platform)?,
        ),
        None => None,
    };

    let mut rec = Recorder::new(args.window);
    if let (Some(rate), true) = (args.throttle, think.is_none()) {
        rec = rec.with_correction(Correction {
            stages: plan.clone(),
            rate: rate as f64,
        });
    }
    let rec = Arc::new(rec);
    let start_ms = rec.start_epoch_ms();
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(scenarios::Shared {
        rec: rec.clone(),
        insecure: args.insecure,
        recycle: args.recycle.max(Duration::from_millis(100)),
        timeout: args.timeout.max(Duration::from_secs(1)),
        run_id: run_id(),
        think,
        plan_end: rec.start() + plan.total(),
        stop: stop.clone(),
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
            Some(crate::trust::tls_config(ca).map_err(LoadtestError::BadArgs)?)
        } else {
            Some(scenarios::tls_config().map_err(|e| {
                LoadtestError::Goose(format!("cannot set up TLS with the system's roots: {e}"))
            })?)
        },
    });
    let goose_err = |e: goose::GooseError| LoadtestError::Goose(e.to_string());
    let attack = GooseAttack::initialize_with_config(goose_config(args, args.report.as_ref()))
        .map_err(goose_err)?;
    let mut attack = *attack
        .set_default(GooseDefault::TestPlan, plan.goose_plan().as_str())
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

    let planned = plan.total();
    let done = Arc::new(AtomicBool::new(false));
    let bar =
        progress.then(|| spawn_progress(rec.clone(), plan.peak_users(), planned, done.clone()));
    let limit = planned + args.grace();
    live(rec.clone());
    let exec = attack.execute();
    tokio::pin!(exec);
    let ended_by = tokio::select! {
        r = &mut exec => match r {
            Ok(_) if goose::is_killswitch_triggered() => EndedBy::Interrupted,
            Ok(_) => EndedBy::Plan,
            Err(e) => {
                done.store(true, Ordering::SeqCst);
                return Err(goose_err(e));
            }
        },
        _ = tokio::time::sleep(limit) => {
            // Users still busy: stop them taking new steps; what was gathered is reported.
            stop.store(true, Ordering::SeqCst);
            EndedBy::SafetyTimeout
        }
    };
    done.store(true, Ordering::SeqCst);
    if let Some(task) = bar {
        let _ = task.await;
    }
    let agg = rec.aggregate();
    let platform_view = match watcher {
        Some(w) => {
            let mut v = w.finish().await;
            v.rebase(timeline::at(start_ms));
            Some(v)
        }
        None => None,
    };
    let mut report = build_report(args, agg, platform_view, watch.as_ref(), ended_by);
    if args.result.is_some() || args.result_stdout {
        let result = ShardResult::new(
            full,
            args,
            clock,
            ended_by,
            report.aggregate.clone(),
            report.platform.clone(),
        );
        if let Some(path) = &args.result {
            std::fs::write(path, result.to_json()).map_err(|e| LoadtestError::Report {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        report.result = Some(Box::new(result));
    }
    if let Some(dir) = &args.report {
        report.files = files::write(&mut report, dir).map_err(|e| LoadtestError::Report {
            path: dir.clone(),
            reason: format!("{e:#}"),
        })?;
    }
    Ok(report)
}

/// Everything computed from what was gathered.
pub fn build_report(
    args: &LoadtestArgs,
    agg: crate::aggregate::Aggregate,
    platform_view: Option<platform::PlatformView>,
    watch: Option<&Watch>,
    ended_by: EndedBy,
) -> Report {
    let plan = args.plan();
    let start_ms = agg.started_ms;
    let end_ms = agg.ended_ms.max(start_ms + 1);
    let cut = Cut {
        plan: &plan,
        start_ms,
        end_ms,
        share: args.serving_share / 100.0,
    };
    let mut rows = timeline::rows(&agg, &cut);
    let instances = timeline::instances_seen(&agg, &rows, start_ms);
    let duration_s = (end_ms - start_ms) as f64 / 1000.0;
    let totals = timeline::totals(&agg, &rows, duration_s);
    let window_s = args.window.as_secs_f64();
    let judge = Judge {
        window_s,
        settle_s: plan
            .initial_ramp()
            .as_secs_f64()
            .clamp(1.0, window_s.max(1.0)),
        share_pct: args.serving_share,
    };
    let started_at = timeline::at(start_ms);
    let verdict = verdict::verdict(&agg, &rows, &instances, judge, started_at);
    let platform_verdict = match (&platform_view, watch) {
        (Some(v), Some(w)) => {
            platform::join_rows(&mut rows, v);
            Some(platform::platform_sentence(w, v, &verdict, &instances))
        }
        _ => None,
    };
    let steady = gates::stage_phases(&agg, &rows, &plan);
    let limits = Limits {
        max_p95_ms: args.max_p95,
        max_error_rate_pct: args.max_error_rate,
        whole_run: args.gate_whole_run,
        expect_instances: args.expect_instances,
        expect_scale_out: args.expect_scale_out,
        expect_scale_in: args.expect_scale_in,
    };
    let gates = gates::gates(&limits, &steady, &totals, &verdict);
    let mut errors_by_reason: Vec<(String, u64)> =
        agg.reasons.iter().map(|(r, n)| (r.clone(), *n)).collect();
    if agg.other_reasons > 0 {
        errors_by_reason.push(("(other reasons, not kept)".into(), agg.other_reasons));
    }
    errors_by_reason.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Report {
        url: args.url.clone(),
        scenario: args.scenario,
        model: LoadModel::new(plan.clone(), args.think, args.throttle),
        users: plan.peak_users(),
        started_at,
        ended_by,
        duration_s: (duration_s * 10.0).round() / 10.0,
        window_s,
        serving_share_pct: args.serving_share,
        totals,
        windows: rows,
        instances,
        verdict,
        platform_verdict,
        platform: platform_view,
        steady_stages: steady,
        errors_by_reason,
        gates,
        files: Vec::new(),
        shards: None,
        aggregate: agg,
        result: None,
    }
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

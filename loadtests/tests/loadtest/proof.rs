//! The proof on real runs against a stand-in shop whose answering instances the test controls:
//! load shapes, think time, churn, error-only instances, names one after another, the safety
//! timeout, and a rehearsal's decision log (served here in the INTERFACES.md format) joined
//! into the timeline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bookstore_loadtests::report::EndedBy;
use bookstore_loadtests::timeline::Phase;
use bookstore_loadtests::verdict::ChangeKind;
use bookstore_loadtests::{
    execute_live, parse_duration, LoadtestArgs, LoadtestError, Recorder, Report, ScenarioKind,
};

use crate::support::{args, until, StubShop, TinyServer};

type Run = tokio::task::JoinHandle<Result<Report, LoadtestError>>;

/// Starts `a` and returns the run and its live recorder.
async fn start(a: LoadtestArgs) -> (Run, Arc<Recorder>) {
    let live: Arc<Mutex<Option<Arc<Recorder>>>> = Arc::default();
    let l = live.clone();
    let run = tokio::spawn(async move {
        execute_live(&a, false, move |r| *l.lock().unwrap() = Some(r)).await
    });
    let mut rec = None;
    until(Duration::from_secs(30), "the run to start", || {
        rec = live.lock().unwrap().clone();
        rec.is_some()
    })
    .await;
    (run, rec.expect("recorder"))
}

async fn finish(run: Run) -> Report {
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("no panic")
        .expect("the run completes")
}

/// Browsers on one cheap path, windows of `window`.
fn only_path(url: &str, stages: &str, window: &str) -> LoadtestArgs {
    let mut a = args(url, ScenarioKind::Browse, 1, 1);
    a.only_path = Some("/healthz".into());
    a.stages = Some(bookstore_loadtests::shape::parse_stages(stages).unwrap());
    a.window = parse_duration(window).unwrap();
    a
}

/// How long until the wall clock is `offset` past a multiple of `period`.
fn until_wall_clock_offset(period: Duration, offset: Duration) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (period, offset) = (period.as_millis(), offset.as_millis());
    Duration::from_millis(((offset + period - now % period) % period) as u64)
}

/// Waits until the run is `secs` in (the plan's clock, which the load follows).
async fn at(rec: &Recorder, secs: f64) {
    until(
        Duration::from_secs(60),
        &format!("{secs} s into the run"),
        || f64::from(rec.now_ms()) / 1000.0 >= secs,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_move_the_users_up_and_down() {
    let shop = StubShop::start(&["a"]).await;
    let a = only_path(&shop.url(), "2:0s,2:3s,6:0s,6:3s,2:0s,2:3s", "1s");
    let (run, _rec) = start(a).await;
    let r = finish(run).await;
    let s = r.summary();
    assert_eq!(r.ended_by, EndedBy::Plan, "{s}");
    assert_eq!(r.model.stages.to_string(), "2:0s,2:3s,6:0s,6:3s,2:0s,2:3s");
    assert!(s.contains("stages 2:0s,2:3s,6:0s,6:3s,2:0s,2:3s"), "{s}");
    let steady: Vec<_> = r
        .windows
        .iter()
        .filter(|w| w.phase == Phase::Steady)
        .collect();
    let users = |hold: usize| {
        steady
            .iter()
            .filter(|w| w.hold == Some(hold))
            .map(|w| w.active_users)
            .collect::<Vec<_>>()
    };
    // goose moves users on its own clock (checked about twice a second), so a window just
    // after a step may still see the users before it; the last window of each hold has them.
    // goose's clock also starts a few ms off the recorder's, so the last window before a step
    // may already see the users after it (run 7 of issue 20's loop: the low hold's windows
    // saw 2, 2, 6); the ones before it may not.
    let (low, high, low_again) = (users(0), users(1), users(2));
    let (low_last, low_before) = low.split_last().expect("windows in the low hold");
    assert!(
        low.first() == Some(&2) && low_before.iter().all(|&u| u == 2) && (2..=6).contains(low_last),
        "{s}"
    );
    assert!(
        high.contains(&6) && high.iter().all(|&u| (2..=6).contains(&u)),
        "{s}"
    );
    assert!(high.last() == Some(&6), "{s}");
    assert!(
        low_again.last() == Some(&2) && low_again.iter().all(|&u| u <= 6),
        "{s}"
    );
    assert_eq!(r.steady_stages.len(), 3, "{s}");
    assert!(r.duration_s < 12.0, "the users stopped at the end: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_time_paces_each_user() {
    let shop = StubShop::start(&["a"]).await;
    let mut a = only_path(&shop.url(), "2:0s,2:3s", "1s");
    a.think = Some(bookstore_loadtests::shape::parse_think("200ms").unwrap());
    let (run, _rec) = start(a).await;
    let r = finish(run).await;
    // Two users, one request each per 200 ms for 3 s: about 30, far from the thousands
    // the same users make without pausing.
    let n = r.totals.requests;
    assert!((8..=40).contains(&n), "{n} requests\n{}", r.summary());
    assert!(
        r.model.latency_note.starts_with("closed model"),
        "{}",
        r.model.latency_note
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_without_growth_reads_replaced_not_scaled_out() {
    let shop = StubShop::start(&["a", "b"]).await;
    let mut a = only_path(&shop.url(), "4:0s,4:6s", "1s");
    a.expect_scale_out = true;
    let (run, rec) = start(a).await;
    at(&rec, 3.0).await;
    shop.set(&["a", "c"]);
    let r = finish(run).await;
    let v = &r.verdict;
    let s = r.summary();
    assert!(!v.scaled_out, "{s}");
    assert_eq!((v.initial, v.peak), (2, 2), "{s}");
    assert!(
        v.changes.iter().any(|c| c.kind == ChangeKind::Replaced
            && c.removed == vec!["b".to_string()]
            && c.added == vec!["c".to_string()]),
        "{s}"
    );
    let churn = v
        .changes
        .iter()
        .find(|c| c.kind == ChangeKind::Replaced)
        .unwrap();
    assert!((3.0..6.0).contains(&churn.at_s), "{s}");
    assert!(v.text.contains("b replaced by c at 00:0"), "{s}");
    assert!(v.text.contains(" (churn, not growth)"), "{s}");
    assert_eq!(r.failed_gates()[0].flag, "--expect-scale-out", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_inside_the_first_window_is_seen() {
    let shop = StubShop::start(&["a"]).await;
    let mut a = only_path(&shop.url(), "4:0s,4:8s", "10s");
    a.expect_scale_out = true;
    a.expect_instances = Some(2);
    // Windows are aligned to the wall clock (so shards' windows line up): start 5 s past a
    // 10 s boundary, so the first window holds the run's first 5 s, growth included, and the
    // window after it, which reaches past the plan's end, is the final drain. Started at any
    // moment, the boundary fell before the growth about half the time and the whole hold was
    // judged as drain.
    tokio::time::sleep(until_wall_clock_offset(
        Duration::from_secs(10),
        Duration::from_secs(5),
    ))
    .await;
    let (run, rec) = start(a).await;
    at(&rec, 2.5).await;
    shop.set(&["a", "b"]);
    let r = finish(run).await;
    let v = &r.verdict;
    let s = r.summary();
    assert!(v.scaled_out, "{s}");
    assert_eq!((v.initial, v.peak), (1, 2), "{s}");
    let t = v.first_scale_out.as_ref().unwrap().at_s;
    assert!((2.5..6.0).contains(&t), "scale-out at {t}\n{s}");
    assert!(r.passed(), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_only_errs_is_excluded_and_named() {
    let shop = StubShop::start(&["good", "broken"]).await;
    shop.failing.lock().unwrap().push("broken".into());
    let mut a = only_path(&shop.url(), "4:0s,4:3s", "1s");
    a.expect_instances = Some(2);
    let (run, _rec) = start(a).await;
    let r = finish(run).await;
    let v = &r.verdict;
    let s = r.summary();
    assert_eq!(v.peak, 1, "{s}");
    assert_eq!(v.excluded.len(), 1, "{s}");
    assert_eq!(v.excluded[0].name, "broken");
    assert!(v.excluded[0].why.ends_with("all errors"), "{s}");
    assert!(v.text.contains("not counted: broken ("), "{s}");
    assert_eq!(r.failed_gates()[0].flag, "--expect-instances", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_names_one_after_another_never_make_three_at_once() {
    let shop = StubShop::start(&["a"]).await;
    let mut a = only_path(&shop.url(), "3:0s,3:6s", "1s");
    a.expect_instances = Some(3);
    let (run, rec) = start(a).await;
    at(&rec, 2.0).await;
    shop.set(&["b"]);
    at(&rec, 4.0).await;
    shop.set(&["c"]);
    let r = finish(run).await;
    let s = r.summary();
    assert_eq!(r.instances.len(), 3, "three names were seen: {s}");
    assert_eq!(r.verdict.peak, 1, "{s}");
    let failed = r.failed_gates();
    assert_eq!(failed.len(), 1, "{s}");
    assert_eq!(
        failed[0].message,
        "--expect-instances 3: at most 1 instance served at the same time, fewer than expected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_timeout_keeps_what_was_gathered() {
    let shop = StubShop::start(&["a"]).await;
    let mut a = only_path(&shop.url(), "2:0s,2:2s", "1s");
    a.timeout = Duration::from_secs(60);
    a.stop_grace = Some(Duration::from_secs(1));
    let (run, rec) = start(a).await;
    until(Duration::from_secs(20), "some requests", || {
        rec.requests() >= 50
    })
    .await;
    shop.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = shop.served.load(std::sync::atomic::Ordering::Relaxed);
    let t0 = std::time::Instant::now();
    let r = finish(run).await;
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let s = r.summary();
    assert_eq!(r.ended_by, EndedBy::SafetyTimeout, "{s}");
    assert!(s.contains("stopped by the safety timeout"), "{s}");
    // Everything answered before the hang is in the report.
    assert!(r.totals.requests >= answered.min(50), "{s}");
    assert_eq!(r.instances[0].name, "a");
    assert!(r.aggregate.windows.iter().map(|w| w.requests).sum::<u64>() >= 50);
}

/// What the rehearsal's status server says (INTERFACES.md): the decision log lines so far and
/// the current state.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    desired: u32,
    instances: Vec<(String, String)>,
}

fn line(kind: &str, extra: &str) -> String {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    format!(
        r#"{{"time":"{now}","platform_seconds":0,"kind":"{kind}","autoscaler":"target-tracking",{extra}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_decision_log_is_joined_into_the_timeline() {
    // The log starts as a rehearsal's does: the stack creates the group.
    let created = line(
        "scale",
        r#""current":0,"desired":1,"rule":"0 -> 1: the stack creates AutoScalingGroup with DesiredCapacity 1","instances_added":["i-rehearsal-1"],"instances_removed":[]"#,
    );
    let log = Arc::new(Mutex::new(Log {
        desired: 1,
        instances: vec![("i-rehearsal-1".into(), "in_service".into())],
        lines: vec![created],
    }));
    let l = log.clone();
    let server = TinyServer::start(Arc::new(move |path: &str| {
        let g = l.lock().unwrap();
        if let Some(q) = path.strip_prefix("/decisions?from=") {
            let from: usize = q.parse().unwrap_or(0);
            let body: String = g.lines.iter().skip(from).map(|l| format!("{l}\n")).collect();
            (200, "application/x-ndjson", body)
        } else if path == "/status" {
            let inst: Vec<String> = g
                .instances
                .iter()
                .map(|(id, st)| format!(r#"{{"id":"{id}","state":"{st}","since":"2026-11-28T09:00:00Z"}}"#))
                .collect();
            let body = format!(
                r#"{{"objective":"objective2","autoscaler":"target-tracking","time_scale":12.0,"min":1,"max":3,"desired":{},"instances":[{}]}}"#,
                g.desired,
                inst.join(",")
            );
            (200, "application/json", body)
        } else {
            (404, "text/plain", "no".into())
        }
    }))
    .await;
    let shop = StubShop::start(&["i-rehearsal-1"]).await;
    let mut a = only_path(&shop.url(), "2:0s,2:3s,6:0s,6:4s,2:0s,2:4s", "1s");
    a.watch_rehearsal = Some(server.url());
    a.watch_every = Duration::from_millis(200);
    a.expect_instances = Some(3);
    a.expect_scale_in = Some(1);
    let (run, rec) = start(a).await;

    at(&rec, 3.5).await;
    {
        let mut g = log.lock().unwrap();
        let e = line(
            "evaluation",
            r#""policy":"CpuTargetTracking","metric":"ASGAverageCPUUtilization","target":50,"value":87.0,"per_instance":{"i-rehearsal-1":87.0},"excluded":{},"current":1,"desired":3,"rule":"scale-out: 87% > 50% target""#,
        );
        let s = line(
            "scale",
            r#""current":1,"desired":3,"rule":"scale-out: 87% > 50% target","instances_added":["i-rehearsal-2","i-rehearsal-3"],"instances_removed":[]"#,
        );
        g.lines.extend([e, s]);
        g.desired = 3;
        g.instances
            .push(("i-rehearsal-2".into(), "warming_up".into()));
        g.instances
            .push(("i-rehearsal-3".into(), "warming_up".into()));
    }
    at(&rec, 4.2).await;
    shop.set(&["i-rehearsal-1", "i-rehearsal-2", "i-rehearsal-3"]);
    {
        let mut g = log.lock().unwrap();
        for id in ["i-rehearsal-2", "i-rehearsal-3"] {
            g.lines.push(line(
                "instance",
                &format!(r#""instance":"{id}","event":"in_service""#),
            ));
        }
        g.instances
            .iter_mut()
            .for_each(|i| i.1 = "in_service".into());
    }
    at(&rec, 7.5).await;
    {
        let mut g = log.lock().unwrap();
        let s = line(
            "scale",
            r#""current":3,"desired":1,"rule":"scale-in: 12% < 50% target","instances_added":[],"instances_removed":["i-rehearsal-2","i-rehearsal-3"]"#,
        );
        g.lines.push(s);
        g.desired = 1;
        g.instances.truncate(1);
    }
    shop.set(&["i-rehearsal-1"]);
    let r = finish(run).await;
    let s = r.summary();
    let v = &r.verdict;
    assert!(v.scaled_out && v.scaled_in, "{s}");
    assert_eq!((v.initial, v.peak, v.final_serving), (1, 3, 1), "{s}");
    assert!(r.passed(), "{s}");
    let p = r.platform.as_ref().expect("the platform's view");
    assert_eq!(p.decisions.len(), 3, "{s}");
    assert!(p.polls >= 5 && p.poll_errors == 0, "{p:?}");
    assert_eq!(p.metrics.len(), 1);
    let pv = r
        .platform_verdict
        .as_deref()
        .expect("the platform's sentence");
    assert!(
        pv.starts_with("the autoscaler raised desired 1 → 3 at 00:0"),
        "{pv}"
    );
    assert!(
        pv.contains(
            " (scale-out: 87% > 50% target); i-rehearsal-2 served its first request at 00:0"
        ),
        "{pv}"
    );
    assert!(
        pv.contains("; the autoscaler lowered desired 3 → 1 at 00:0")
            && pv.contains(" (scale-in: 12% < 50% target)"),
        "{pv}"
    );
    let raise = &p.decisions[1];
    assert!((3.5..6.0).contains(&raise.t_s), "{raise:?}");
    // The windows carry the platform's desired and in-service counts beside the data plane.
    let w4 = r.windows.iter().find(|w| w.start_s >= 5.0).unwrap();
    assert_eq!(w4.platform_desired, Some(3), "{s}");
    assert_eq!(w4.platform_in_service, Some(3), "{s}");
    assert_eq!(w4.serving.len(), 3, "{s}");
    assert!(
        s.contains("platform: the autoscaler raised desired 1 → 3"),
        "{s}"
    );
}

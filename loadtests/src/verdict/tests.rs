//! The verdict on synthetic runs: each instance answers at a steady rate between two times.

use super::*;
use crate::aggregate::{InstanceAgg, WindowAgg};
use crate::shape::{parse_stages, Stages};
use crate::timeline::{instances_seen, rows, Cut};

/// Runs start at this epoch ms (a whole multiple of every window used).
const T0: i64 = 1_700_000_000_000;

/// One instance answering `per_s` requests a second from `from_s` to `to_s`, ok or erring.
struct Stream {
    name: &'static str,
    from_s: f64,
    to_s: f64,
    per_s: f64,
    ok: bool,
}

fn s(name: &'static str, from_s: f64, to_s: f64) -> Stream {
    Stream {
        name,
        from_s,
        to_s,
        per_s: 20.0,
        ok: true,
    }
}

struct Run {
    agg: Aggregate,
    rows: Vec<Window>,
    seen: Vec<InstanceSeen>,
    verdict: Verdict,
}

fn run(window_s: u64, plan: &str, streams: &[Stream]) -> Run {
    let plan: Stages = parse_stages(plan).unwrap();
    let wms = window_s as i64 * 1000;
    let end_ms = T0 + plan.total().as_millis() as i64;
    let mut windows: BTreeMap<i64, WindowAgg> = BTreeMap::new();
    let mut instances: BTreeMap<String, InstanceAgg> = BTreeMap::new();
    for st in streams {
        let step = 1000.0 / st.per_s;
        let mut t = st.from_s * 1000.0;
        while t < st.to_s * 1000.0 {
            let at = T0 + t as i64;
            let idx = at.div_euclid(wms);
            let w = windows.entry(idx).or_insert_with(|| WindowAgg {
                index: idx,
                ..WindowAgg::default()
            });
            w.requests += 1;
            if !st.ok {
                w.errors += 1;
            }
            // Slow (80 ms) for the first 21 s, fast (20 ms) after.
            w.latency.record(if t < 21_000.0 { 80_000 } else { 20_000 });
            w.served.entry(st.name.into()).or_default().count(at, st.ok);
            let i = instances.entry(st.name.into()).or_default();
            i.served.count(at, st.ok);
            i.latency.record(10_000);
            t += step;
        }
    }
    let agg = Aggregate {
        window_ms: wms as u64,
        started_ms: T0,
        ended_ms: end_ms,
        windows: windows.into_values().collect(),
        instances,
        ..Aggregate::default()
    };
    let cut = Cut {
        plan: &plan,
        start_ms: T0,
        end_ms,
        share: 0.2,
    };
    let rows = rows(&agg, &cut);
    let seen = instances_seen(&agg, &rows, T0);
    let judge = Judge {
        window_s: window_s as f64,
        settle_s: 1.0,
        share_pct: 20.0,
    };
    let verdict = verdict(&agg, &rows, &seen, judge, crate::timeline::at(T0));
    Run {
        agg,
        rows,
        seen,
        verdict,
    }
}

#[test]
fn churn_without_growth_is_a_replacement() {
    let r = run(
        5,
        "6:0s,6:60s",
        &[s("a", 0.0, 60.0), s("b", 0.0, 30.0), s("c", 31.0, 60.0)],
    );
    let v = &r.verdict;
    assert!(!v.scaled_out, "{}", v.text);
    assert_eq!(
        (v.initial, v.peak, v.final_serving),
        (2, 2, 2),
        "{}",
        v.text
    );
    assert_eq!(v.changes.len(), 1, "{:?}", v.changes);
    assert_eq!(v.changes[0].kind, ChangeKind::Replaced);
    assert!(
        v.text
            .starts_with("did not scale out: 2 instances served at once the whole run (a, b)"),
        "{}",
        v.text
    );
    assert!(
        v.text
            .contains("; b replaced by c at 00:31 (churn, not growth)"),
        "{}",
        v.text
    );
}

#[test]
fn growth_inside_the_first_window_is_seen() {
    let r = run(10, "8:0s,8:30s", &[s("a", 0.0, 30.0), s("b", 3.0, 30.0)]);
    let v = &r.verdict;
    assert!(v.scaled_out, "{}", v.text);
    assert_eq!((v.initial, v.peak), (1, 2), "{}", v.text);
    let out = v.first_scale_out.as_ref().unwrap();
    assert!((out.at_s - 3.0).abs() < 0.1, "{out:?}");
    assert_eq!(out.added, vec!["b".to_string()]);
    assert!(r.rows[0].serving.len() == 2, "both serve in window 0");
    assert!(
        v.text
            .starts_with("scaled out: 1 → 2 instances serving at once; b started serving at 00:03"),
        "{}",
        v.text
    );
}

#[test]
fn an_instance_that_only_errs_is_excluded_and_named() {
    let mut bad = s("broken", 0.0, 40.0);
    bad.ok = false;
    let r = run(5, "6:0s,6:40s", &[s("a", 0.0, 40.0), bad]);
    let v = &r.verdict;
    assert!(!v.scaled_out, "{}", v.text);
    assert_eq!(v.peak, 1);
    assert_eq!(v.excluded.len(), 1);
    assert_eq!(v.excluded[0].name, "broken");
    assert!(
        v.text
            .ends_with("; not counted: broken (800 responses, all errors)"),
        "{}",
        v.text
    );
    assert_eq!(r.seen.len(), 2, "seen, but not counted");
}

#[test]
fn names_one_after_another_are_never_three_at_once() {
    let r = run(
        5,
        "4:0s,4:60s",
        &[s("a", 0.0, 20.0), s("b", 20.5, 40.0), s("c", 40.5, 60.0)],
    );
    let v = &r.verdict;
    assert_eq!(r.seen.len(), 3);
    assert_eq!(v.peak, 1, "{}", v.text);
    assert!(!v.scaled_out);
    assert_eq!(
        v.changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
        vec![ChangeKind::Replaced, ChangeKind::Replaced]
    );
}

#[test]
fn scale_out_then_scale_in_are_both_reported() {
    let r = run(
        5,
        "6:0s,6:20s,18:0s,18:30s,6:0s,6:30s",
        &[s("a", 0.0, 80.0), s("b", 22.0, 52.0), s("c", 24.0, 55.0)],
    );
    let v = &r.verdict;
    assert!(v.scaled_out && v.scaled_in, "{}", v.text);
    assert_eq!(
        (v.initial, v.peak, v.final_serving),
        (1, 3, 1),
        "{}",
        v.text
    );
    assert_eq!(v.lowest_after_peak, Some(1));
    let out = v.first_scale_out.as_ref().unwrap();
    assert!((out.at_s - 22.0).abs() < 0.1, "{out:?}");
    let inn = v.first_scale_in.as_ref().unwrap();
    assert!((51.0..56.0).contains(&inn.at_s), "{inn:?}");
    // The first windows answered slowly (80 ms), the ones at the peak fast (20 ms).
    // (HDR histograms at two significant digits: within 1%.)
    assert!(
        v.p95_before_ms.is_some_and(|p| (p - 80.0).abs() <= 0.8),
        "{v:?}"
    );
    assert!(
        v.p95_peak_ms.is_some_and(|p| (p - 20.0).abs() <= 0.2),
        "{v:?}"
    );
    assert!(v.text.contains("p95 went 80 ms → 20 ms"), "{}", v.text);
    assert!(v.text.contains("; scaled in: 3 → 1 at 00:5"), "{}", v.text);
    let _ = &r.agg;
}

#[test]
fn a_trickle_is_not_serving_and_a_thin_window_is_not_judged() {
    let mut trickle = s("t", 0.0, 40.0);
    trickle.per_s = 0.2;
    let r = run(5, "6:0s,6:40s", &[s("a", 0.0, 40.0), trickle]);
    assert_eq!(r.verdict.peak, 1, "{}", r.verdict.text);
    assert!(r.verdict.excluded[0]
        .why
        .contains("never 20% of an equal share"));
    let empty = run(5, "1:0s,1:10s", &[]);
    assert!(empty.verdict.text.starts_with("no response carried"));
}

//! From the aggregate to the timeline a person reads: one row per window with its load phase,
//! who answered and who was *serving*, each instance's first and last answers, and the totals.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::aggregate::{Aggregate, Latency, WindowAgg};
use crate::shape::Stages;

/// A window needs at least this many successful responses with an instance to be judged.
const MIN_JUDGED_OK: u64 = 5;

/// What an instance answered in one window.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInWindow {
    /// Successful responses.
    pub ok: u64,
    /// Errors.
    pub errors: u64,
    /// Its share of the window's successful responses that carried an instance, percent.
    pub share: f64,
    /// First successful response, seconds since the start.
    pub first_ok_s: Option<f64>,
    /// Last successful response, seconds since the start.
    pub last_ok_s: Option<f64>,
}

/// Where a window lies in the load plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Wholly inside a stage that holds its users: gates judge these windows.
    Steady,
    /// The users changed during the window (a ramp or a step).
    Ramp,
    /// After the planned end: users finishing their journeys.
    Drain,
}

/// One window of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// The window's number since the Unix epoch (the aggregate's `index`).
    pub index: i64,
    /// Wall-clock start, UTC (clipped to the run's start).
    pub start: DateTime<Utc>,
    /// Start, seconds since the run started.
    pub start_s: f64,
    /// End, seconds since the run started.
    pub end_s: f64,
    /// The load phase.
    pub phase: Phase,
    /// For a steady window, the index of its hold in the plan.
    pub hold: Option<usize>,
    /// Users the plan asks for in the middle of the window.
    pub planned_users: f64,
    /// Users that completed a request in the window.
    pub active_users: u64,
    /// Requests (responses and failed requests) completed in the window.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// With `--throttle`: p95 corrected for coordinated omission, ms.
    pub p95_corrected_ms: Option<f64>,
    /// Instances that answered at all.
    pub instances: usize,
    /// True when the window has enough successful responses to say who was serving.
    pub judged: bool,
    /// Instances serving: at least the serving share of an equal split of the window's
    /// successful responses (empty when not judged).
    pub serving: Vec<String>,
    /// What each instance answered.
    pub per_instance: BTreeMap<String, InstanceInWindow>,
    /// The platform's desired capacity at the end of the window, when watched.
    pub platform_desired: Option<u32>,
    /// Instances the platform had in service at the end of the window, when watched.
    pub platform_in_service: Option<u32>,
}

/// One instance over the run.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceSeen {
    /// The `X-Bookstore-Instance` value.
    pub name: String,
    /// First response of any kind, seconds since the start.
    pub first_seen_s: f64,
    /// `mm:ss` since the start.
    pub first_seen: String,
    /// Wall-clock time of the first response, UTC.
    pub first_seen_at: DateTime<Utc>,
    /// First successful response, seconds since the start.
    pub first_ok_s: Option<f64>,
    /// Last successful response, seconds since the start.
    pub last_ok_s: Option<f64>,
    /// Responses it gave.
    pub requests: u64,
    /// Of which successful.
    pub ok: u64,
    /// Of which errors.
    pub errors: u64,
    /// Its share of all responses that carried an instance, percent.
    pub share: f64,
    /// 95th percentile of its latency, ms.
    pub p95_ms: f64,
    /// Windows in which it was serving.
    pub serving_windows: usize,
}

/// Totals over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// All requests.
    pub requests: u64,
    /// Errors (failed requests and unexpected pages).
    pub errors: u64,
    /// Errors in percent of requests.
    pub error_rate_pct: f64,
    /// Requests per second over the run.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// With `--throttle`: p95 corrected for coordinated omission, ms.
    pub p95_corrected_ms: Option<f64>,
    /// Most users active in one window.
    pub peak_users: u64,
    /// TCP connections the users opened.
    pub connections: u64,
    /// GET requests sent again because the server had closed the idle keep-alive connection
    /// they went out on (as browsers do); not errors.
    pub retries: u64,
    /// Buys the shop refused (HTTP 409) because other shoppers had taken the copies since the
    /// book page showed them: a right answer, counted as a success; not errors.
    pub sold_out: u64,
    /// Requests without an `X-Bookstore-Instance` (or without any response).
    pub without_instance: u64,
}

/// What the rows are cut from.
#[derive(Debug, Clone)]
pub struct Cut<'a> {
    /// The load plan.
    pub plan: &'a Stages,
    /// When the run started and ended, ms since the epoch.
    pub start_ms: i64,
    /// End of the run.
    pub end_ms: i64,
    /// Serving share: a fraction of an equal split (0.2 = 20%).
    pub share: f64,
}

/// `mm:ss` (or `h:mm:ss`) for seconds since the start.
pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).floor() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// Rounds to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Wall-clock time of `ms` since the epoch.
pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// The instances serving in a window: those with at least `share` of an equal split of its
/// successful responses (among the instances that had any).
pub fn serving(w: &WindowAgg, share: f64) -> Vec<String> {
    let answering = w.served.values().filter(|s| s.ok > 0).count();
    if answering == 0 {
        return Vec::new();
    }
    let fair = w.ok_with_instance() as f64 / answering as f64;
    w.served
        .iter()
        .filter(|(_, s)| s.ok > 0 && s.ok as f64 >= share * fair)
        .map(|(n, _)| n.clone())
        .collect()
}

/// Cuts the aggregate into the timeline's rows, from the window holding the start to the one
/// holding the end, with windows that saw no request included.
pub fn rows(agg: &Aggregate, cut: &Cut<'_>) -> Vec<Window> {
    let wms = agg.window_ms.max(1) as i64;
    let by_index: BTreeMap<i64, &WindowAgg> = agg.windows.iter().map(|w| (w.index, w)).collect();
    let first = cut.start_ms.div_euclid(wms);
    let last = (cut.end_ms - 1).max(cut.start_ms).div_euclid(wms);
    let mut oks: Vec<u64> = agg
        .windows
        .iter()
        .map(WindowAgg::ok_with_instance)
        .filter(|&n| n > 0)
        .collect();
    oks.sort_unstable();
    let median = oks.get(oks.len() / 2).copied().unwrap_or(0);
    let judged_min = MIN_JUDGED_OK.max(median / 10);
    // The plan's clock starts with the first request, a little after the run's clock.
    let offset = agg
        .first_send_ms
        .map_or(0.0, |f| ((f - cut.start_ms) as f64 / 1000.0).max(0.0));
    let planned_end_s = cut.plan.total().as_secs_f64() + offset;
    let holds: Vec<(f64, f64)> = cut
        .plan
        .holds()
        .iter()
        .map(|h| (h.start_s + offset, h.end_s + offset))
        .collect();
    let rel = |ms: i64| (ms - cut.start_ms) as f64 / 1000.0;
    let empty = WindowAgg::default();
    (first..=last)
        .map(|index| {
            let w = by_index.get(&index).copied().unwrap_or(&empty);
            let start_ms = (index * wms).max(cut.start_ms);
            let end_ms = ((index + 1) * wms).min(cut.end_ms.max(start_ms + 1));
            let (start_s, end_s) = (rel(start_ms), rel(end_ms));
            let span = (end_s - start_s).max(0.001);
            // A window is steady only when it lies wholly in a hold (to 50 ms) and more than
            // 50 ms of it does: the sliver from the run's start to the next window boundary may
            // end before the first request was sent, or its first response came back.
            let eps = 0.05;
            let hold = holds.iter().position(|&(a, b)| {
                start_s >= a - eps && end_s <= b + eps && end_s - start_s.max(a) > eps
            });
            let phase = if start_s >= planned_end_s - 1e-9 || end_s > planned_end_s + eps {
                Phase::Drain
            } else if hold.is_some() {
                Phase::Steady
            } else {
                Phase::Ramp
            };
            let ok_total = w.ok_with_instance();
            let judged = ok_total >= judged_min;
            let with_instance: u64 = w.served.values().map(|s| s.ok).sum::<u64>().max(1);
            let per_instance = w
                .served
                .iter()
                .map(|(n, s)| {
                    (
                        n.clone(),
                        InstanceInWindow {
                            ok: s.ok,
                            errors: s.errors,
                            share: round1(s.ok as f64 * 100.0 / with_instance as f64),
                            first_ok_s: s.first_ok_ms.map(rel),
                            last_ok_s: s.last_ok_ms.map(rel),
                        },
                    )
                })
                .collect();
            Window {
                index,
                start: at(start_ms),
                start_s: round3(start_s),
                end_s: round3(end_s),
                hold: if phase == Phase::Steady { hold } else { None },
                phase,
                planned_users: round1(cut.plan.users_at(std::time::Duration::from_secs_f64(
                    ((start_s + end_s) / 2.0 - offset).max(0.0),
                ))),
                active_users: w.users,
                requests: w.requests,
                errors: w.errors,
                rps: round1(w.requests as f64 / span),
                p50_ms: w.latency.quantile_ms(0.5),
                p95_ms: w.latency.quantile_ms(0.95),
                p95_corrected_ms: w.corrected.as_ref().map(|c| c.quantile_ms(0.95)),
                instances: w.served.len(),
                judged,
                serving: if judged {
                    serving(w, cut.share)
                } else {
                    Vec::new()
                },
                per_instance,
                platform_desired: None,
                platform_in_service: None,
            }
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Every instance, in the order first seen.
pub fn instances_seen(agg: &Aggregate, rows: &[Window], start_ms: i64) -> Vec<InstanceSeen> {
    let all: u64 = agg
        .instances
        .values()
        .map(|i| i.served.ok + i.served.errors)
        .sum();
    let rel = |ms: i64| round3((ms - start_ms) as f64 / 1000.0);
    let mut out: Vec<InstanceSeen> = agg
        .instances
        .iter()
        .map(|(name, i)| {
            let s = &i.served;
            let n = s.ok + s.errors;
            let first = rel(s.first_ms);
            InstanceSeen {
                name: name.clone(),
                first_seen_s: first,
                first_seen: clock(first),
                first_seen_at: at(s.first_ms),
                first_ok_s: s.first_ok_ms.map(rel),
                last_ok_s: s.last_ok_ms.map(rel),
                requests: n,
                ok: s.ok,
                errors: s.errors,
                share: round1(n as f64 * 100.0 / all.max(1) as f64),
                p95_ms: i.latency.quantile_ms(0.95),
                serving_windows: rows.iter().filter(|w| w.serving.contains(name)).count(),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.first_seen_s
            .total_cmp(&b.first_seen_s)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// The latency of the windows `pick` selects, merged.
pub fn merged_latency<'a>(
    agg: &'a Aggregate,
    mut pick: impl FnMut(&'a WindowAgg) -> bool,
) -> (Latency, Option<Latency>) {
    let mut all = Latency::default();
    let mut corrected: Option<Latency> = None;
    for w in agg.windows.iter().filter(|w| pick(w)) {
        all.add(&w.latency);
        if let Some(c) = &w.corrected {
            corrected.get_or_insert_with(Latency::default).add(c);
        }
    }
    (all, corrected)
}

/// Totals over the run.
pub fn totals(agg: &Aggregate, rows: &[Window], duration_s: f64) -> Totals {
    let requests = agg.requests();
    let errors: u64 = agg.windows.iter().map(|w| w.errors).sum();
    let (lat, corrected) = merged_latency(agg, |_| true);
    Totals {
        requests,
        errors,
        error_rate_pct: pct(errors, requests),
        rps: round1(requests as f64 / duration_s.max(0.001)),
        p50_ms: lat.quantile_ms(0.5),
        p95_ms: lat.quantile_ms(0.95),
        p95_corrected_ms: corrected.map(|c| c.quantile_ms(0.95)),
        peak_users: rows.iter().map(|w| w.active_users).max().unwrap_or(0),
        connections: agg.connections,
        retries: agg.retries,
        sold_out: agg.sold_out,
        without_instance: agg.windows.iter().map(|w| w.no_instance).sum(),
    }
}

/// `part` in percent of `whole`, two decimals.
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 10000.0 / whole as f64).round() / 100.0
    }
}

/// Names of the instances serving in any of `rows`.
pub fn serving_names(rows: &[Window]) -> BTreeSet<String> {
    rows.iter()
        .flat_map(|w| w.serving.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(index: i64, counts: &[(&str, u64)]) -> WindowAgg {
        let mut w = WindowAgg {
            index,
            ..WindowAgg::default()
        };
        for (name, n) in counts {
            let s = w.served.entry(name.to_string()).or_default();
            for k in 0..*n {
                s.count(index * 1000 + k as i64, true);
                w.requests += 1;
                w.latency.record(10_000);
            }
        }
        w
    }

    #[test]
    fn serving_needs_a_share_of_an_equal_split() {
        let w = win(0, &[("a", 60), ("b", 39), ("c", 1)]);
        assert_eq!(serving(&w, 0.2), vec!["a".to_string(), "b".to_string()]);
        let even = win(0, &[("a", 30), ("b", 30), ("c", 30), ("d", 10)]);
        assert_eq!(
            serving(&even, 0.2).len(),
            4,
            "10 of 110 is 36% of a fair 27.5"
        );
        assert_eq!(serving(&even, 0.5).len(), 3);
    }

    #[test]
    fn rows_cover_the_run_with_phases_and_clipped_edges() {
        let plan = crate::shape::parse_stages("4:0s,4:4s").unwrap();
        let agg = Aggregate {
            window_ms: 1000,
            started_ms: 10_500,
            ended_ms: 15_200,
            windows: vec![win(10, &[("a", 10)]), win(12, &[("a", 20), ("b", 20)])],
            ..Aggregate::default()
        };
        let cut = Cut {
            plan: &plan,
            start_ms: 10_500,
            end_ms: 15_200,
            share: 0.2,
        };
        let r = rows(&agg, &cut);
        assert_eq!(r.len(), 6);
        assert_eq!((r[0].start_s, r[0].end_s), (0.0, 0.5));
        assert_eq!(r[0].rps, 20.0);
        assert_eq!(r[1].requests, 0);
        assert!(!r[1].judged);
        assert_eq!(r[2].serving, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r[2].phase, Phase::Steady);
        assert_eq!(r[4].phase, Phase::Drain, "{:?}", r[4]);
        let t = totals(&agg, &r, 4.7);
        assert_eq!(t.requests, 50);
        assert_eq!(t.p95_ms, 10.0);
        assert_eq!(clock(161.0), "02:41");
        assert_eq!(clock(3725.0), "1:02:05");
    }

    #[test]
    fn a_sliver_before_the_first_request_is_not_part_of_the_first_hold() {
        // The run's clock starts 20 ms before a window boundary and the first request goes out
        // 30 ms after it (run 3 of issue 20's third loop: a steady window with 0 users).
        let plan = crate::shape::parse_stages("2:0s,2:3s").unwrap();
        let agg = Aggregate {
            window_ms: 1000,
            started_ms: 10_980,
            ended_ms: 14_100,
            first_send_ms: Some(11_030),
            windows: vec![win(11, &[("a", 10)]), win(12, &[("a", 10)])],
            ..Aggregate::default()
        };
        let cut = Cut {
            plan: &plan,
            start_ms: 10_980,
            end_ms: 14_100,
            share: 0.2,
        };
        let r = rows(&agg, &cut);
        assert_eq!((r[0].start_s, r[0].end_s, r[0].requests), (0.0, 0.02, 0));
        let phases: Vec<_> = r.iter().map(|w| (w.phase.clone(), w.hold)).collect();
        assert_eq!(
            phases[..3],
            [
                (Phase::Ramp, None),
                (Phase::Steady, Some(0)),
                (Phase::Steady, Some(0))
            ],
            "{r:?}"
        );
    }
}

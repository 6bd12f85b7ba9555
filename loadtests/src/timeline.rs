//! From recorded responses to the proof: a timeline per window, when each instance was first
//! seen, the verdict sentence, and the gates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::record::{Snapshot, NO_INSTANCE};

/// One window of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Start, seconds since the run started.
    pub start_s: f64,
    /// End, seconds since the run started.
    pub end_s: f64,
    /// Responses (and failed requests) that completed in the window.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// Users that sent requests in the window.
    pub active_users: usize,
    /// Instances that answered in the window.
    pub instances: usize,
    /// Each instance's share of the window's responses that carried the header, percent.
    pub shares: BTreeMap<String, f64>,
}

/// When an instance first answered.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceSeen {
    /// The `X-Bookstore-Instance` value.
    pub name: String,
    /// Seconds since the run started.
    pub first_seen_s: f64,
    /// `mm:ss` since the run started.
    pub first_seen: String,
    /// Wall-clock time, UTC.
    pub first_seen_at: DateTime<Utc>,
    /// Responses it served over the run.
    pub requests: u64,
    /// Its share of all responses that carried the header, percent.
    pub share: f64,
}

/// The conclusion of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The sentence, e.g. "scaled out from 1 to 3 instances; first new instance ...".
    pub text: String,
    /// Instances seen in the first window with traffic.
    pub initial_instances: usize,
    /// Distinct instances seen over the run.
    pub total_instances: usize,
    /// Most distinct instances in one window.
    pub peak_instances: usize,
    /// Instances in the last window with a fair amount of traffic (see [`last_busy`]).
    pub final_instances: usize,
    /// True when more instances answered than at the start.
    pub scaled_out: bool,
    /// When the first new instance answered, seconds since the start.
    pub first_new_instance_s: Option<f64>,
    /// p95 before the first new instance answered, ms.
    pub p95_before_ms: Option<f64>,
    /// p95 once every instance had answered, ms.
    pub p95_after_ms: Option<f64>,
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
    /// Most users active in one window.
    pub peak_users: usize,
    /// TCP connections the users opened.
    pub connections: u64,
}

/// One pass/fail gate.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    /// The flag, e.g. `--max-p95`.
    pub flag: String,
    /// The limit given.
    pub limit: f64,
    /// What the run measured.
    pub actual: f64,
    /// True when the gate holds.
    pub passed: bool,
    /// A sentence naming the gate and the numbers.
    pub message: String,
}

/// The limits a run is judged by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Highest acceptable p95, ms.
    pub max_p95_ms: Option<f64>,
    /// Highest acceptable error rate, percent.
    pub max_error_rate_pct: Option<f64>,
    /// Fewest distinct instances that must have answered.
    pub expect_instances: Option<usize>,
}

/// Nearest-rank percentile of latencies in microseconds, in ms.
pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    (f64::from(sorted_us[i]) / 1000.0 * 10.0).round() / 10.0
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
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

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Cuts the run into windows.
pub fn windows(snap: &Snapshot, window: Duration, run: Duration) -> Vec<Window> {
    let wms = window.as_millis().max(1) as u64;
    let last = snap
        .samples
        .iter()
        .map(|s| u64::from(s.at_ms))
        .max()
        .unwrap_or(0);
    let total_ms = (run.as_millis() as u64).max(last + 1);
    let n = total_ms.div_ceil(wms) as usize;
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in snap.samples.iter().enumerate() {
        let b = ((u64::from(s.at_ms)) / wms) as usize;
        buckets[b.min(n - 1)].push(i);
    }
    buckets
        .iter()
        .enumerate()
        .map(|(b, idx)| {
            let start_ms = b as u64 * wms;
            let end_ms = ((b as u64 + 1) * wms).min(total_ms);
            let span = (end_ms - start_ms).max(1) as f64 / 1000.0;
            let lat = sorted(idx.iter().map(|&i| snap.samples[i].latency_us).collect());
            let users: BTreeSet<u32> = idx.iter().map(|&i| snap.samples[i].user).collect();
            let mut per: BTreeMap<u16, u64> = BTreeMap::new();
            for &i in idx {
                let inst = snap.samples[i].instance;
                if inst != NO_INSTANCE {
                    *per.entry(inst).or_default() += 1;
                }
            }
            let with_header: u64 = per.values().sum();
            let shares = per
                .iter()
                .map(|(&k, &c)| {
                    (
                        snap.instance_names[usize::from(k)].clone(),
                        round1(c as f64 * 100.0 / with_header.max(1) as f64),
                    )
                })
                .collect();
            Window {
                start_s: start_ms as f64 / 1000.0,
                end_s: end_ms as f64 / 1000.0,
                requests: idx.len() as u64,
                errors: idx.iter().filter(|&&i| !snap.samples[i].ok).count() as u64,
                rps: round1(idx.len() as f64 / span),
                p50_ms: percentile_ms(&lat, 50.0),
                p95_ms: percentile_ms(&lat, 95.0),
                active_users: users.len(),
                instances: per.len(),
                shares,
            }
        })
        .collect()
}

/// First-seen time and share of every instance.
pub fn instances_seen(snap: &Snapshot, started: DateTime<Utc>) -> Vec<InstanceSeen> {
    let mut counts = vec![0u64; snap.instance_names.len()];
    for s in &snap.samples {
        if s.instance != NO_INSTANCE {
            counts[usize::from(s.instance)] += 1;
        }
    }
    let all: u64 = counts.iter().sum();
    let mut out: Vec<InstanceSeen> = snap
        .instance_names
        .iter()
        .zip(&snap.first_seen_ms)
        .zip(&counts)
        .map(|((name, &ms), &n)| InstanceSeen {
            name: name.clone(),
            first_seen_s: f64::from(ms) / 1000.0,
            first_seen: clock(f64::from(ms) / 1000.0),
            first_seen_at: started + chrono::Duration::milliseconds(i64::from(ms)),
            requests: n,
            share: round1(n as f64 * 100.0 / all.max(1) as f64),
        })
        .collect();
    out.sort_by(|a, b| a.first_seen_s.total_cmp(&b.first_seen_s));
    out
}

/// Totals over the run.
pub fn totals(snap: &Snapshot, windows: &[Window], run: Duration) -> Totals {
    let lat = sorted(snap.samples.iter().map(|s| s.latency_us).collect());
    let requests = snap.samples.len() as u64;
    let errors = snap.samples.iter().filter(|s| !s.ok).count() as u64;
    Totals {
        requests,
        errors,
        error_rate_pct: if requests == 0 {
            0.0
        } else {
            (errors as f64 * 10000.0 / requests as f64).round() / 100.0
        },
        rps: round1(requests as f64 / run.as_secs_f64().max(0.001)),
        p50_ms: percentile_ms(&lat, 50.0),
        p95_ms: percentile_ms(&lat, 95.0),
        peak_users: windows.iter().map(|w| w.active_users).max().unwrap_or(0),
        connections: snap.connections,
    }
}

/// The last window with a fair amount of traffic: at least a quarter of the median window's
/// requests. (The tail of a run, while users finish their journeys, can hold a handful of
/// requests that happened to reach one instance.)
pub fn last_busy(windows: &[Window]) -> Option<&Window> {
    let mut counts: Vec<u64> = windows
        .iter()
        .map(|w| w.requests)
        .filter(|&n| n > 0)
        .collect();
    counts.sort_unstable();
    let median = counts.get(counts.len() / 2).copied()?;
    windows
        .iter()
        .rev()
        .find(|w| w.requests > 0 && w.requests * 4 >= median)
}

/// The verdict: did the deployment scale out, when, and what it did to latency.
pub fn verdict(snap: &Snapshot, seen: &[InstanceSeen], windows: &[Window]) -> Verdict {
    let total = seen.len();
    let peak = windows.iter().map(|w| w.instances).max().unwrap_or(0);
    let final_instances = last_busy(windows).map(|w| w.instances).unwrap_or(0);
    let Some(first) = windows.iter().find(|w| w.instances > 0) else {
        return Verdict {
            text: "no response carried X-Bookstore-Instance: cannot tell which instances served"
                .into(),
            initial_instances: 0,
            total_instances: 0,
            peak_instances: 0,
            final_instances: 0,
            scaled_out: false,
            first_new_instance_s: None,
            p95_before_ms: None,
            p95_after_ms: None,
        };
    };
    let initial: Vec<&InstanceSeen> = seen
        .iter()
        .filter(|i| i.first_seen_s < first.end_s)
        .collect();
    let newcomers: Vec<&InstanceSeen> = seen
        .iter()
        .filter(|i| i.first_seen_s >= first.end_s)
        .collect();
    let lat_where = |f: &dyn Fn(u32) -> bool| {
        let v = sorted(
            snap.samples
                .iter()
                .filter(|s| f(s.at_ms))
                .map(|s| s.latency_us)
                .collect(),
        );
        (!v.is_empty()).then(|| percentile_ms(&v, 95.0))
    };
    let names = |v: &[&InstanceSeen]| {
        v.iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (newcomers.first(), newcomers.last()) {
        (Some(first_new), Some(last_new)) => {
            let t_first = (first_new.first_seen_s * 1000.0) as u32;
            let t_last = (last_new.first_seen_s * 1000.0) as u32;
            let before = lat_where(&|t| t < t_first);
            let after = lat_where(&|t| t >= t_last);
            let ms = |x: Option<f64>| {
                x.map(|v| format!("{v:.0} ms"))
                    .unwrap_or_else(|| "n/a".into())
            };
            let mut text = format!(
                "scaled out from {} to {} instances; first new instance ({}) served traffic at {} ({} UTC); p95 before {}, after {}",
                initial.len(),
                total,
                first_new.name,
                first_new.first_seen,
                first_new.first_seen_at.format("%H:%M:%S"),
                ms(before),
                ms(after),
            );
            if final_instances < total {
                let _ = write!(text, "; {final_instances} answered in the last window");
            }
            Verdict {
                text,
                initial_instances: initial.len(),
                total_instances: total,
                peak_instances: peak,
                final_instances,
                scaled_out: true,
                first_new_instance_s: Some(first_new.first_seen_s),
                p95_before_ms: before,
                p95_after_ms: after,
            }
        }
        _ => {
            let p95 = lat_where(&|_| true);
            Verdict {
                text: format!(
                    "did not scale out: {} instance{} ({}) served the whole run; p95 {}",
                    total,
                    if total == 1 { "" } else { "s" },
                    names(&initial),
                    p95.map(|v| format!("{v:.0} ms"))
                        .unwrap_or_else(|| "n/a".into())
                ),
                initial_instances: initial.len(),
                total_instances: total,
                peak_instances: peak,
                final_instances,
                scaled_out: false,
                first_new_instance_s: None,
                p95_before_ms: None,
                p95_after_ms: None,
            }
        }
    }
}

/// Judges the run against the limits given.
pub fn gates(limits: &Limits, totals: &Totals, seen: &[InstanceSeen]) -> Vec<Gate> {
    let mut out = Vec::new();
    if let Some(max) = limits.max_p95_ms {
        let passed = totals.p95_ms <= max;
        out.push(Gate {
            flag: "--max-p95".into(),
            limit: max,
            actual: totals.p95_ms,
            passed,
            message: format!(
                "--max-p95 {max} ms: p95 was {} ms{}",
                totals.p95_ms,
                if passed { "" } else { ", over the limit" }
            ),
        });
    }
    if let Some(max) = limits.max_error_rate_pct {
        let passed = totals.error_rate_pct <= max;
        out.push(Gate {
            flag: "--max-error-rate".into(),
            limit: max,
            actual: totals.error_rate_pct,
            passed,
            message: format!(
                "--max-error-rate {max}%: {} of {} requests failed ({}%){}",
                totals.errors,
                totals.requests,
                totals.error_rate_pct,
                if passed { "" } else { ", over the limit" }
            ),
        });
    }
    if let Some(want) = limits.expect_instances {
        let passed = seen.len() >= want;
        let names: Vec<&str> = seen.iter().map(|i| i.name.as_str()).collect();
        out.push(Gate {
            flag: "--expect-instances".into(),
            limit: want as f64,
            actual: seen.len() as f64,
            passed,
            message: format!(
                "--expect-instances {want}: saw {} instance{}{}{}",
                seen.len(),
                if seen.len() == 1 { "" } else { "s" },
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                },
                if passed { "" } else { ", fewer than expected" }
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Sample;

    fn sample(at_ms: u32, ms: u32, instance: u16, ok: bool) -> Sample {
        Sample {
            at_ms,
            latency_us: ms * 1000,
            user: at_ms % 3,
            instance,
            ok,
        }
    }

    fn scale_out() -> Snapshot {
        let mut samples = Vec::new();
        for t in (0..3000).step_by(10) {
            samples.push(sample(t, 800, 0, true));
        }
        for t in (3000..6000).step_by(10) {
            samples.push(sample(t, 100, ((t / 10) % 3) as u16, t % 1000 != 0));
        }
        Snapshot {
            samples,
            instance_names: vec!["a".into(), "b".into(), "c".into()],
            first_seen_ms: vec![0, 3000, 3010],
            reasons: BTreeMap::new(),
            connections: 9,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 95.0), 95.0);
        assert_eq!(percentile_ms(&[], 95.0), 0.0);
        assert_eq!(clock(161.0), "02:41");
        assert_eq!(clock(3725.0), "1:02:05");
    }

    #[test]
    fn scale_out_is_seen_with_times_and_latency() {
        let snap = scale_out();
        let run = Duration::from_secs(6);
        let w = windows(&snap, Duration::from_secs(1), run);
        assert_eq!(w.len(), 6);
        assert_eq!(w[0].instances, 1);
        assert_eq!(w[5].instances, 3);
        assert_eq!(w[0].requests, 100);
        assert_eq!(w[0].rps, 100.0);
        assert_eq!(w[4].shares.len(), 3);
        let started = Utc::now();
        let seen = instances_seen(&snap, started);
        assert_eq!(seen[1].first_seen, "00:03");
        let v = verdict(&snap, &seen, &w);
        assert!(v.scaled_out);
        assert_eq!((v.initial_instances, v.total_instances), (1, 3));
        assert_eq!(v.p95_before_ms, Some(800.0));
        assert_eq!(v.p95_after_ms, Some(100.0));
        assert!(
            v.text.starts_with(
                "scaled out from 1 to 3 instances; first new instance (b) served traffic at 00:03"
            ),
            "{}",
            v.text
        );
        assert!(
            v.text.ends_with("p95 before 800 ms, after 100 ms"),
            "{}",
            v.text
        );
        let t = totals(&snap, &w, run);
        assert_eq!(t.errors, 3);
        let limits = Limits {
            max_p95_ms: Some(500.0),
            max_error_rate_pct: Some(1.0),
            expect_instances: Some(3),
        };
        let g = gates(&limits, &t, &seen);
        assert!(!g[0].passed && g[1].passed && g[2].passed, "{g:?}");
    }

    #[test]
    fn a_thin_tail_window_does_not_decide_the_final_count() {
        let mut snap = scale_out();
        snap.samples.push(sample(6500, 5, 0, true));
        let w = windows(&snap, Duration::from_secs(1), Duration::from_millis(6600));
        assert_eq!(w.last().map(|w| w.instances), Some(1));
        let v = verdict(&snap, &instances_seen(&snap, Utc::now()), &w);
        assert_eq!(v.final_instances, 3);
        assert!(!v.text.contains("last window"), "{}", v.text);
    }

    #[test]
    fn one_instance_does_not_scale() {
        let snap = Snapshot {
            samples: vec![sample(10, 5, 0, true), sample(1500, 7, 0, true)],
            instance_names: vec!["solo".into()],
            first_seen_ms: vec![10],
            ..Snapshot::default()
        };
        let w = windows(&snap, Duration::from_secs(1), Duration::from_secs(2));
        let seen = instances_seen(&snap, Utc::now());
        let v = verdict(&snap, &seen, &w);
        assert!(!v.scaled_out);
        assert_eq!(
            v.text,
            "did not scale out: 1 instance (solo) served the whole run; p95 7 ms"
        );
        let t = totals(&snap, &w, Duration::from_secs(2));
        let g = gates(
            &Limits {
                expect_instances: Some(2),
                ..Limits::default()
            },
            &t,
            &seen,
        );
        assert!(!g[0].passed);
        assert_eq!(
            g[0].message,
            "--expect-instances 2: saw 1 instance (solo), fewer than expected"
        );
    }
}

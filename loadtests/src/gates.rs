//! Pass/fail gates: latency and errors judged per steady stage of the load (ramps and the final
//! drain left out unless `--gate-whole-run`), and gates on the verdict itself.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::shape::Stages;
use crate::timeline::{clock, merged_latency, pct, Totals, Window};
use crate::verdict::Verdict;

/// The limits a run is judged by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Highest acceptable p95, ms.
    pub max_p95_ms: Option<f64>,
    /// Highest acceptable error rate, percent.
    pub max_error_rate_pct: Option<f64>,
    /// Judge latency and errors over the whole run instead of per steady stage.
    pub whole_run: bool,
    /// Fewest instances that must have served at the same time.
    pub expect_instances: Option<usize>,
    /// The verdict must be a scale-out.
    pub expect_scale_out: bool,
    /// After the peak, serving capacity must have gone back to this many or fewer.
    pub expect_scale_in: Option<usize>,
}

/// A steady stage of the load: a hold, judged over the windows wholly inside it.
#[derive(Debug, Clone, Serialize)]
pub struct StagePhase {
    /// E.g. `12 users 00:40-01:40`.
    pub name: String,
    /// Users held.
    pub users: usize,
    /// Start, seconds since the start.
    pub start_s: f64,
    /// End.
    pub end_s: f64,
    /// Windows judged.
    pub windows: usize,
    /// Requests in them.
    pub requests: u64,
    /// Errors in them.
    pub errors: u64,
    /// Errors in percent.
    pub error_rate_pct: f64,
    /// p95 latency, ms (corrected for coordinated omission with `--throttle`).
    pub p95_ms: f64,
}

/// One pass/fail gate.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    /// The flag, e.g. `--max-p95`.
    pub flag: String,
    /// The limit given.
    pub limit: f64,
    /// What the run measured (the worst stage for stage gates).
    pub actual: f64,
    /// True when the gate holds.
    pub passed: bool,
    /// A sentence naming the gate and the numbers.
    pub message: String,
}

/// The steady stages of the plan that have at least one whole window.
pub fn stage_phases(agg: &Aggregate, rows: &[Window], plan: &Stages) -> Vec<StagePhase> {
    plan.holds()
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            let ws: Vec<&Window> = rows.iter().filter(|w| w.hold == Some(i)).collect();
            if ws.is_empty() {
                return None;
            }
            let idx: BTreeSet<i64> = ws.iter().map(|w| w.index).collect();
            let (lat, corrected) = merged_latency(agg, |w| idx.contains(&w.index));
            let requests: u64 = ws.iter().map(|w| w.requests).sum();
            let errors: u64 = ws.iter().map(|w| w.errors).sum();
            Some(StagePhase {
                name: format!(
                    "{} user{} {}-{}",
                    h.users,
                    if h.users == 1 { "" } else { "s" },
                    clock(h.start_s),
                    clock(h.end_s)
                ),
                users: h.users,
                start_s: h.start_s,
                end_s: h.end_s,
                windows: ws.len(),
                requests,
                errors,
                error_rate_pct: pct(errors, requests),
                p95_ms: corrected.unwrap_or(lat).quantile_ms(0.95),
            })
        })
        .collect()
}

fn over(passed: bool) -> &'static str {
    if passed {
        ""
    } else {
        ", over the limit"
    }
}

/// Judges the run against the limits given.
pub fn gates(limits: &Limits, stages: &[StagePhase], totals: &Totals, v: &Verdict) -> Vec<Gate> {
    let mut out = Vec::new();
    let per_stage = !limits.whole_run && !stages.is_empty();
    let scope = if limits.whole_run {
        " over the whole run"
    } else if stages.is_empty() {
        " over the whole run (no window lies wholly in a steady stage)"
    } else {
        ""
    };
    if let Some(max) = limits.max_p95_ms {
        let whole = totals.p95_corrected_ms.unwrap_or(totals.p95_ms);
        let (actual, message) = if per_stage {
            let worst = stages
                .iter()
                .max_by(|a, b| a.p95_ms.total_cmp(&b.p95_ms))
                .expect("stages");
            let list: Vec<String> = stages
                .iter()
                .map(|s| format!("{} {} ms", s.name, s.p95_ms))
                .collect();
            (
                worst.p95_ms,
                format!(
                    "--max-p95 {max} ms: p95 {} ms in the steady stage {}{} (steady stages: {})",
                    worst.p95_ms,
                    worst.name,
                    over(worst.p95_ms <= max),
                    list.join(", ")
                ),
            )
        } else {
            (
                whole,
                format!(
                    "--max-p95 {max} ms: p95 {whole} ms{scope}{}",
                    over(whole <= max)
                ),
            )
        };
        out.push(Gate {
            flag: "--max-p95".into(),
            limit: max,
            actual,
            passed: actual <= max,
            message,
        });
    }
    if let Some(max) = limits.max_error_rate_pct {
        let (actual, message) = if per_stage {
            let worst = stages
                .iter()
                .max_by(|a, b| a.error_rate_pct.total_cmp(&b.error_rate_pct))
                .expect("stages");
            (
                worst.error_rate_pct,
                format!(
                    "--max-error-rate {max}%: {} of {} requests failed ({}%) in the steady stage {}{}",
                    worst.errors,
                    worst.requests,
                    worst.error_rate_pct,
                    worst.name,
                    over(worst.error_rate_pct <= max)
                ),
            )
        } else {
            (
                totals.error_rate_pct,
                format!(
                    "--max-error-rate {max}%: {} of {} requests failed ({}%){scope}{}",
                    totals.errors,
                    totals.requests,
                    totals.error_rate_pct,
                    over(totals.error_rate_pct <= max)
                ),
            )
        };
        out.push(Gate {
            flag: "--max-error-rate".into(),
            limit: max,
            actual,
            passed: actual <= max,
            message,
        });
    }
    if let Some(want) = limits.expect_instances {
        let passed = v.peak >= want;
        out.push(Gate {
            flag: "--expect-instances".into(),
            limit: want as f64,
            actual: v.peak as f64,
            passed,
            message: format!(
                "--expect-instances {want}: at most {} instance{} served at the same time{}",
                v.peak,
                if v.peak == 1 { "" } else { "s" },
                if passed { "" } else { ", fewer than expected" }
            ),
        });
    }
    if limits.expect_scale_out {
        out.push(Gate {
            flag: "--expect-scale-out".into(),
            limit: 1.0,
            actual: f64::from(u8::from(v.scaled_out)),
            passed: v.scaled_out,
            message: if v.scaled_out {
                format!(
                    "--expect-scale-out: scaled out from {} to {} instances serving at once",
                    v.initial, v.peak
                )
            } else {
                format!(
                    "--expect-scale-out: did not scale out ({} instance{} served at once at most)",
                    v.peak,
                    if v.peak == 1 { "" } else { "s" }
                )
            },
        });
    }
    if let Some(m) = limits.expect_scale_in {
        let low = v.lowest_after_peak.filter(|_| v.scaled_out);
        let passed = v.peak > m && low.is_some_and(|l| l <= m);
        let message = match low {
            _ if !v.scaled_out => format!(
                "--expect-scale-in {m}: no scale-out ({} served at once at most), so no scale-in",
                v.peak
            ),
            Some(l) if l <= m => format!(
                "--expect-scale-in {m}: after the peak of {}, serving went back to {l}",
                v.peak
            ),
            Some(l) => format!(
                "--expect-scale-in {m}: after the peak of {}, serving went down only to {l}, more than {m}",
                v.peak
            ),
            None => format!(
                "--expect-scale-in {m}: serving stayed at the peak of {} to the end",
                v.peak
            ),
        };
        out.push(Gate {
            flag: "--expect-scale-in".into(),
            limit: m as f64,
            actual: low.unwrap_or(v.peak) as f64,
            passed,
            message,
        });
    }
    out
}

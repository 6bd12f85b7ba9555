//! The verdict: how many instances served *at the same time*, and how that changed.
//!
//! Each judged window names the instances serving in it (see [`crate::timeline::serving`]).
//! An instance's presence runs from its first successful response in the window where it
//! starts serving to its last one where it stops, so a change inside a window is placed to
//! the request. Changes closer together than one window are one change: an instance that
//! leaves while another joins is a *replacement*, not a scale-out. The serving count at the
//! start (the instances found within the initial ramp, at most one window) is compared with the
//! peak; after the peak, a lower count is a scale-in. Windows of the final drain are left out.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::timeline::{clock, merged_latency, InstanceSeen, Phase, Window};

/// What changed in serving capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// More instances serving at once.
    ScaleOut,
    /// Fewer.
    ScaleIn,
    /// As many, but other ones (churn).
    Replaced,
}

/// One change of the serving set.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// What kind.
    pub kind: ChangeKind,
    /// When it began, seconds since the start.
    pub at_s: f64,
    /// Wall-clock time, UTC.
    pub at: DateTime<Utc>,
    /// Serving at once before.
    pub from: usize,
    /// Serving at once after.
    pub to: usize,
    /// Instances that started serving.
    pub added: Vec<String>,
    /// Instances that stopped serving.
    pub removed: Vec<String>,
}

/// An instance that answered but is not counted as serving capacity.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    /// Its name.
    pub name: String,
    /// Responses it gave.
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Why it does not count.
    pub why: String,
}

/// The conclusion of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The sentence.
    pub text: String,
    /// Instances serving at once at the start.
    pub initial: usize,
    /// Their names.
    pub initial_names: Vec<String>,
    /// Most instances serving at once.
    pub peak: usize,
    /// Serving at once at the end (before the drain).
    pub final_serving: usize,
    /// True when more instances served at once than at the start.
    pub scaled_out: bool,
    /// True when, after a scale-out, fewer served at once than at the peak.
    pub scaled_in: bool,
    /// The first change that went above the start.
    pub first_scale_out: Option<Change>,
    /// When the peak was first reached, seconds since the start.
    pub reached_peak_s: Option<f64>,
    /// The first scale-in after the peak.
    pub first_scale_in: Option<Change>,
    /// Fewest serving at once after the peak.
    pub lowest_after_peak: Option<usize>,
    /// Every change, in order.
    pub changes: Vec<Change>,
    /// Instances not counted, with the reason.
    pub excluded: Vec<Excluded>,
    /// p95 before the first scale-out (steady windows when there are some), ms.
    pub p95_before_ms: Option<f64>,
    /// p95 while the peak held, ms.
    pub p95_peak_ms: Option<f64>,
}

/// What the verdict needs besides the rows.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// The window length, seconds: changes closer than this are one.
    pub window_s: f64,
    /// Instances first serving within this long of the first judged window are the start.
    pub settle_s: f64,
    /// The serving share, percent (for the words).
    pub share_pct: f64,
}

#[derive(Debug, Clone, Copy)]
struct Event<'a> {
    at_s: f64,
    name: &'a str,
    joins: bool,
}

fn names(v: &[String]) -> String {
    v.join(", ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn when(at_s: f64, at: &DateTime<Utc>) -> String {
    format!("{} ({} UTC)", clock(at_s), at.format("%H:%M:%S"))
}

/// Judges the run.
pub fn verdict(
    agg: &Aggregate,
    rows: &[Window],
    seen: &[InstanceSeen],
    judge: Judge,
    start: DateTime<Utc>,
) -> Verdict {
    let judged: Vec<&Window> = rows
        .iter()
        .filter(|w| w.judged && w.phase != Phase::Drain)
        .collect();
    let excluded = excluded(seen, rows, judge.share_pct);
    let Some(first) = judged.first() else {
        let text = if seen.is_empty() {
            "no response carried X-Bookstore-Instance: cannot tell which instances served".into()
        } else {
            "cannot tell which instances served at once: no window had enough successful \
             responses with X-Bookstore-Instance (run longer, with more users, or with a \
             shorter --window)"
                .to_string()
        };
        return Verdict {
            text,
            initial: 0,
            initial_names: Vec::new(),
            peak: 0,
            final_serving: 0,
            scaled_out: false,
            scaled_in: false,
            first_scale_out: None,
            reached_peak_s: None,
            first_scale_in: None,
            lowest_after_peak: None,
            changes: Vec::new(),
            excluded,
            p95_before_ms: None,
            p95_peak_ms: None,
        };
    };
    let settle_until = first.start_s + judge.settle_s;
    let at = |s: f64| start + chrono::Duration::milliseconds((s * 1000.0) as i64);

    // Presence intervals, then the events after the settling period.
    let mut open: BTreeMap<&str, f64> = BTreeMap::new();
    let mut last_ok: BTreeMap<&str, f64> = BTreeMap::new();
    let mut initial: BTreeSet<&str> = BTreeSet::new();
    let mut events: Vec<Event<'_>> = Vec::new();
    for w in &judged {
        let set: BTreeSet<&str> = w.serving.iter().map(String::as_str).collect();
        for &name in &set {
            if !open.contains_key(name) {
                let s = w.per_instance[name]
                    .first_ok_s
                    .unwrap_or(w.start_s)
                    .max(w.start_s);
                open.insert(name, s);
                if s <= settle_until {
                    initial.insert(name);
                } else {
                    events.push(Event {
                        at_s: s,
                        name,
                        joins: true,
                    });
                }
            }
        }
        let leaving: Vec<&str> = open.keys().copied().filter(|n| !set.contains(n)).collect();
        for name in leaving {
            open.remove(name);
            let end = w
                .per_instance
                .get(name)
                .and_then(|i| i.last_ok_s)
                .or_else(|| last_ok.get(name).copied())
                .unwrap_or(w.start_s);
            events.push(Event {
                at_s: end.max(settle_until),
                name,
                joins: false,
            });
        }
        for (name, i) in &w.per_instance {
            if let Some(t) = i.last_ok_s {
                last_ok.insert(name.as_str(), t);
            }
        }
    }
    events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));

    // Events closer than a window are one change.
    let mut changes: Vec<Change> = Vec::new();
    let mut level: BTreeSet<&str> = initial.clone();
    let mut i = 0;
    while i < events.len() {
        let mut j = i + 1;
        while j < events.len() && events[j].at_s - events[j - 1].at_s <= judge.window_s {
            j += 1;
        }
        let before = level.clone();
        for e in &events[i..j] {
            if e.joins {
                level.insert(e.name);
            } else {
                level.remove(e.name);
            }
        }
        let added: Vec<String> = level.difference(&before).map(|s| s.to_string()).collect();
        let removed: Vec<String> = before.difference(&level).map(|s| s.to_string()).collect();
        if !(added.is_empty() && removed.is_empty()) {
            let (from, to) = (before.len(), level.len());
            let kind = match to.cmp(&from) {
                std::cmp::Ordering::Greater => ChangeKind::ScaleOut,
                std::cmp::Ordering::Less => ChangeKind::ScaleIn,
                std::cmp::Ordering::Equal => ChangeKind::Replaced,
            };
            let first_of = |joins: bool| {
                events[i..j]
                    .iter()
                    .find(|e| e.joins == joins)
                    .map(|e| e.at_s)
            };
            let at_s = match kind {
                ChangeKind::ScaleIn => first_of(false),
                _ => first_of(true),
            }
            .unwrap_or(events[i].at_s);
            changes.push(Change {
                kind,
                at_s,
                at: at(at_s),
                from,
                to,
                added,
                removed,
            });
        }
        i = j;
    }

    let initial_n = initial.len();
    let peak = changes
        .iter()
        .map(|c| c.to)
        .chain([initial_n])
        .max()
        .unwrap_or(0);
    let final_serving = changes.last().map_or(initial_n, |c| c.to);
    let scaled_out = peak > initial_n;
    let first_scale_out = changes.iter().find(|c| c.to > initial_n).cloned();
    let peak_at = changes.iter().position(|c| c.to == peak && scaled_out);
    let reached_peak_s = peak_at.map(|k| changes[k].at_s);
    let after_peak = peak_at.map_or(&changes[..0], |k| &changes[k + 1..]);
    let first_scale_in = after_peak.iter().find(|c| c.to < peak).cloned();
    let lowest_after_peak = after_peak.iter().map(|c| c.to).min();
    let scaled_in = scaled_out && lowest_after_peak.is_some_and(|l| l < peak);

    // Latency: before the first scale-out, and while the peak held.
    let end_s = judged.last().map_or(0.0, |w| w.end_s);
    let p95_in = |spans: &[(f64, f64)]| -> Option<f64> {
        let inside = |w: &Window| {
            spans
                .iter()
                .any(|&(a, b)| w.start_s >= a - 1e-6 && w.end_s <= b + 1e-6)
        };
        let mut picked: Vec<&Window> = judged.iter().copied().filter(|w| inside(w)).collect();
        if picked.iter().any(|w| w.phase == Phase::Steady) {
            picked.retain(|w| w.phase == Phase::Steady);
        }
        let idx: BTreeSet<i64> = picked.iter().map(|w| w.index).collect();
        if idx.is_empty() {
            return None;
        }
        let (lat, _) = merged_latency(agg, |w| idx.contains(&w.index));
        (lat.count() > 0).then(|| lat.quantile_ms(0.95))
    };
    let (p95_before_ms, p95_peak_ms) = if let Some(out) = &first_scale_out {
        let mut spans = Vec::new();
        let mut lvl = initial_n;
        let mut since = first.start_s;
        for c in &changes {
            if lvl == peak {
                spans.push((since, c.at_s));
            }
            lvl = c.to;
            since = c.at_s;
        }
        if lvl == peak {
            spans.push((since, end_s));
        }
        (p95_in(&[(first.start_s, out.at_s)]), p95_in(&spans))
    } else {
        (p95_in(&[(first.start_s, end_s)]), None)
    };

    let ms = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0} ms"));
    let initial_names: Vec<String> = initial.iter().map(|s| s.to_string()).collect();
    let mut text = String::new();
    if let Some(out) = &first_scale_out {
        text.push_str(&format!(
            "scaled out: {initial_n} → {peak} instances serving at once; {} started serving at {}",
            names(&out.added),
            when(out.at_s, &out.at)
        ));
        if let Some(t) = reached_peak_s {
            if t > out.at_s + 1e-6 {
                text.push_str(&format!(
                    "; the peak of {peak} held from {} ({:.0} s later)",
                    clock(t),
                    t - out.at_s
                ));
            }
        }
        text.push_str(&format!(
            "; p95 went {} → {}",
            ms(p95_before_ms),
            ms(p95_peak_ms)
        ));
        if let Some(c) = &first_scale_in {
            text.push_str(&format!(
                "; scaled in: {} → {} at {} ({} stopped serving)",
                c.from,
                c.to,
                when(c.at_s, &c.at),
                names(&c.removed)
            ));
            if let Some(low) = lowest_after_peak.filter(|&l| l < c.to) {
                text.push_str(&format!(", later {low}"));
            }
        }
    } else {
        let stayed = if changes.iter().any(|c| c.kind == ChangeKind::ScaleIn) {
            format!(
                "{initial_n} instance{} served at once at the start and never more",
                plural(initial_n)
            )
        } else {
            format!(
                "{initial_n} instance{} served at once the whole run",
                plural(initial_n)
            )
        };
        text.push_str(&format!(
            "did not scale out: {stayed} ({}); p95 {}",
            names(&initial_names),
            ms(p95_before_ms)
        ));
        if let Some(c) = changes.iter().find(|c| c.kind == ChangeKind::ScaleIn) {
            text.push_str(&format!(
                "; capacity fell {} → {} at {} ({} stopped serving)",
                c.from,
                c.to,
                clock(c.at_s),
                names(&c.removed)
            ));
        }
    }
    for c in changes.iter().filter(|c| c.kind == ChangeKind::Replaced) {
        text.push_str(&format!(
            "; {} replaced by {} at {} (churn, not growth)",
            names(&c.removed),
            names(&c.added),
            clock(c.at_s)
        ));
    }
    if !excluded.is_empty() {
        let list: Vec<String> = excluded
            .iter()
            .map(|e| format!("{} ({})", e.name, e.why))
            .collect();
        text.push_str(&format!("; not counted: {}", list.join(", ")));
    }
    Verdict {
        text,
        initial: initial_n,
        initial_names,
        peak,
        final_serving,
        scaled_out,
        scaled_in,
        first_scale_out,
        reached_peak_s,
        first_scale_in,
        lowest_after_peak,
        changes,
        excluded,
        p95_before_ms,
        p95_peak_ms,
    }
}

/// Instances that answered but never served: those that only erred, and trickles.
fn excluded(seen: &[InstanceSeen], rows: &[Window], share_pct: f64) -> Vec<Excluded> {
    seen.iter()
        .filter(|i| !rows.iter().any(|w| w.serving.contains(&i.name)))
        .map(|i| Excluded {
            name: i.name.clone(),
            requests: i.requests,
            errors: i.errors,
            why: if i.ok == 0 {
                format!(
                    "{} response{}, all errors",
                    i.requests,
                    plural(i.requests as usize)
                )
            } else {
                format!(
                    "{} response{}, {} ok: never {share_pct}% of an equal share of a window",
                    i.requests,
                    plural(i.requests as usize),
                    i.ok
                )
            },
        })
        .collect()
}

#[cfg(test)]
mod tests;

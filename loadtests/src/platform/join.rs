//! Joining the platform's view to the data plane by instance id: the platform's desired and
//! in-service counts per window, and the sentence that says who decided, when, and when the
//! instances it added served their first request.

use super::{PlatformView, Watch};
use crate::timeline::{clock, InstanceSeen, Window};
use crate::verdict::Verdict;

/// Fills each row's platform columns with the last state read before the row ended.
pub fn join_rows(rows: &mut [Window], view: &PlatformView) {
    for w in rows.iter_mut() {
        if let Some(s) = view.samples.iter().take_while(|s| s.t_s <= w.end_s).last() {
            w.platform_desired = s.desired;
            w.platform_in_service = Some(s.in_service);
        }
    }
}

fn at(t_s: f64) -> String {
    if t_s < 0.0 {
        "the start".into()
    } else {
        clock(t_s)
    }
}

/// The platform's part of the verdict.
pub fn platform_sentence(
    watch: &Watch,
    view: &PlatformView,
    v: &Verdict,
    seen: &[InstanceSeen],
) -> String {
    let who = watch.subject();
    let mut parts: Vec<String> = Vec::new();
    let find = |id: &str| seen.iter().find(|i| i.name == id);
    // The first scale-out: a group created from nothing (the rehearsal logs its stack's
    // creation, 0 -> DesiredCapacity) is not one.
    let raise = view
        .decisions
        .iter()
        .find(|d| d.from.is_some_and(|f| f > 0 && d.to > f));
    if let Some(d) = raise {
        parts.push(format!(
            "{who} raised desired {} → {} at {} ({})",
            d.from.unwrap_or(0),
            d.to,
            at(d.t_s),
            d.cause
        ));
        let mut ids: Vec<String> = d.added.clone();
        if ids.is_empty() {
            ids = view
                .instance_events
                .iter()
                .filter(|e| e.t_s >= d.t_s && e.event.starts_with("appeared"))
                .map(|e| e.id.clone())
                .collect();
        }
        if ids.is_empty() {
            if let Some(out) = &v.first_scale_out {
                ids = out.added.clone();
            }
        }
        ids.dedup();
        for id in ids.iter().take(4) {
            match find(id).and_then(|i| i.first_ok_s) {
                Some(t) => parts.push(format!(
                    "{id} served its first request at {} ({:.0} s later)",
                    clock(t),
                    (t - d.t_s).max(0.0)
                )),
                None => parts.push(format!("{id} never served a successful request")),
            }
        }
        if ids.len() > 4 {
            parts.push(format!("and {} more", ids.len() - 4));
        }
        let lower = view
            .decisions
            .iter()
            .find(|l| l.at > d.at && l.from.is_some_and(|f| l.to < f));
        if let Some(l) = lower {
            parts.push(format!(
                "{who} lowered desired {} → {} at {} ({})",
                l.from.unwrap_or(0),
                l.to,
                at(l.t_s),
                l.cause
            ));
            for id in l.removed.iter().take(4) {
                if let Some(t) = find(id).and_then(|i| i.last_ok_s) {
                    parts.push(format!(
                        "{id} served its last request at {} ({:.0} s {})",
                        clock(t),
                        (t - l.t_s).abs(),
                        if t >= l.t_s { "later" } else { "before" }
                    ));
                }
            }
        }
        if !v.scaled_out {
            parts.push("yet no more instances served at once in the load test".into());
        }
    } else {
        let desired = view.samples.last().and_then(|s| s.desired);
        parts.push(format!(
            "{who} made no scale-out decision during the run{}",
            desired.map_or(String::new(), |d| format!(" (desired {d})"))
        ));
        if v.scaled_out {
            parts.push(format!(
                "yet {} → {} instances served at once: added by hand or by another process?",
                v.initial, v.peak
            ));
        }
    }
    if let Some(first) = view.samples.first() {
        if first.in_service as usize > v.initial && v.initial > 0 {
            parts.push(format!(
                "{who} had {} in service at the start, the load test found {} serving (too few users, or connections held by one instance?)",
                first.in_service, v.initial
            ));
        }
    }
    if view.poll_errors > 0 {
        parts.push(format!(
            "{} of {} polls failed, the last: {}",
            view.poll_errors,
            view.polls,
            view.last_error.as_deref().unwrap_or("?")
        ));
    }
    parts.join("; ")
}

//! The replica calculator of the HPA controller for CPU (`GetResourceReplicas` and
//! `GetRawResourceReplicas`): which pods count, the utilization, the tolerance and the
//! conservative re-computation with missing and not-yet-ready pods.

use super::{ceil_u32, CpuMetric, Hpa, Pod, PodPhase, Target};
use crate::rehearse::autoscale::decisions::Evaluation;
use std::collections::BTreeMap;

/// What the replica calculation found for one metric.
#[derive(Debug, Clone, PartialEq)]
struct Calc {
    replicas: u32,
    /// The original utilization (percent) or average value (millicores), as the status shows.
    value: i64,
    per_pod: BTreeMap<String, f64>,
    excluded: BTreeMap<String, String>,
    rule: String,
}

impl Hpa {
    /// One metric: the log entry and its proposal (or why there is none).
    pub(super) fn metric(
        &self,
        now: f64,
        current: u32,
        m: &CpuMetric,
        pods: &[Pod],
    ) -> (Evaluation, Result<u32, String>) {
        let (target, unit) = match m.target {
            Target::Utilization(t) => (t, "%"),
            Target::AverageValue(t) => (t, "m"),
        };
        let result = self.replicas(now, current, m.target, pods);
        let ev = |value: Option<f64>,
                  per_pod: BTreeMap<String, f64>,
                  excluded: BTreeMap<String, String>,
                  rule: String| Evaluation {
            policy: self.spec.name.clone(),
            metric: "cpu".to_string(),
            target: target as f64,
            value,
            per_instance: per_pod,
            excluded,
            current,
            desired: current,
            rule,
        };
        match result {
            Ok(c) => (
                ev(Some(c.value as f64), c.per_pod, c.excluded, c.rule),
                Ok(c.replicas),
            ),
            Err((excluded, e)) => (
                ev(
                    None,
                    BTreeMap::new(),
                    excluded,
                    format!("no data: {e} (target {target}{unit})"),
                ),
                Err(e),
            ),
        }
    }

    /// `GetResourceReplicas` / `GetRawResourceReplicas` for CPU.
    #[allow(clippy::type_complexity)]
    fn replicas(
        &self,
        now: f64,
        current: u32,
        target: Target,
        pods: &[Pod],
    ) -> Result<Calc, (BTreeMap<String, String>, String)> {
        let mut excluded = BTreeMap::new();
        let mut ready: Vec<&Pod> = Vec::new();
        let mut unready: Vec<&Pod> = Vec::new();
        let mut missing: Vec<&Pod> = Vec::new();
        for p in pods {
            if p.deleting || p.phase == PodPhase::Failed {
                excluded.insert(
                    p.name.clone(),
                    if p.deleting {
                        "terminating (ignored)"
                    } else {
                        "failed (ignored)"
                    }
                    .to_string(),
                );
                continue;
            }
            if p.phase == PodPhase::Pending {
                excluded.insert(p.name.clone(), "pending (not yet ready)".to_string());
                unready.push(p);
                continue;
            }
            let Some(sample) = p.cpu else {
                excluded.insert(p.name.clone(), "missing metrics".to_string());
                missing.push(p);
                continue;
            };
            let not_ready = match (p.ready, p.start_time) {
                (Some((is_ready, transition)), Some(start)) => {
                    if start + self.flags.cpu_initialization_secs > now {
                        !is_ready || sample.timestamp < transition + sample.window
                    } else {
                        !is_ready && start + self.flags.initial_readiness_delay_secs > transition
                    }
                }
                _ => true,
            };
            if not_ready {
                excluded.insert(
                    p.name.clone(),
                    "not yet ready (readiness or CPU initialization)".to_string(),
                );
                unready.push(p);
                continue;
            }
            ready.push(p);
        }
        if ready.is_empty() {
            return Err((
                excluded,
                "no metrics for the ready pods (pods might be unready)".to_string(),
            ));
        }
        let millis = |p: &Pod| p.cpu.map(|s| s.millicores.ceil() as i64).unwrap_or(0);
        let mut requests = BTreeMap::new();
        for p in pods
            .iter()
            .filter(|p| !(p.deleting || p.phase == PodPhase::Failed))
        {
            match p.request_millicores {
                Some(r) => {
                    requests.insert(p.name.clone(), r);
                }
                None if matches!(target, Target::Utilization(_)) => {
                    return Err((
                        excluded,
                        format!(
                            "pod {} has no CPU request, so its utilization is undefined",
                            p.name
                        ),
                    ));
                }
                None => {}
            }
        }
        // (pod, millicores) of what counts.
        let mut metrics: BTreeMap<String, i64> =
            ready.iter().map(|p| (p.name.clone(), millis(p))).collect();
        let per_pod: BTreeMap<String, f64> = ready
            .iter()
            .map(|p| {
                let v = match (target, requests.get(&p.name)) {
                    (Target::Utilization(_), Some(r)) if *r > 0 => {
                        (millis(p) * 100) as f64 / *r as f64
                    }
                    _ => millis(p) as f64,
                };
                (p.name.clone(), (v * 10.0).round() / 10.0)
            })
            .collect();
        let ratio = |metrics: &BTreeMap<String, i64>| -> Result<(f64, i64), String> {
            match target {
                Target::Utilization(t) => {
                    let (mut used, mut req) = (0i64, 0i64);
                    for (name, v) in metrics {
                        if let Some(r) = requests.get(name) {
                            used += v;
                            req += r;
                        }
                    }
                    if req == 0 {
                        return Err("no CPU requests on the pods with metrics".to_string());
                    }
                    let util = used * 100 / req;
                    Ok((util as f64 / t as f64, util))
                }
                Target::AverageValue(t) => {
                    let avg = metrics.values().sum::<i64>() / metrics.len().max(1) as i64;
                    Ok((avg as f64 / t as f64, avg))
                }
            }
        };
        let (usage_ratio, value) = ratio(&metrics).map_err(|e| (excluded.clone(), e))?;
        let t = match target {
            Target::Utilization(t) | Target::AverageValue(t) => t,
        };
        let shown = |v: i64| match target {
            Target::Utilization(_) => format!("{v}% of request"),
            Target::AverageValue(_) => format!("{v}m per pod"),
        };
        let target_shown = match target {
            Target::Utilization(t) => format!("{t}%"),
            Target::AverageValue(t) => format!("{t}m"),
        };
        let ready_count = ready.len() as f64;
        let scale_up_with_unready = !unready.is_empty() && usage_ratio > 1.0;
        if !scale_up_with_unready && missing.is_empty() {
            if self.within(usage_ratio) {
                return Ok(Calc {
                    replicas: current,
                    value,
                    per_pod,
                    excluded,
                    rule: format!(
                        "within tolerance: cpu {} vs {target_shown} target, ratio {:.2}",
                        shown(value),
                        usage_ratio
                    ),
                });
            }
            let n = ceil_u32(usage_ratio * ready_count);
            let dir = if usage_ratio > 1.0 {
                "scale-up"
            } else {
                "scale-down"
            };
            return Ok(Calc {
                replicas: n,
                value,
                per_pod,
                excluded,
                rule: format!(
                    "{dir}: cpu {} {} {target_shown} target; ceil({} ready x {:.2}) = {n}",
                    shown(value),
                    if usage_ratio > 1.0 { ">" } else { "<" },
                    ready.len(),
                    usage_ratio
                ),
            });
        }
        let mut how = Vec::new();
        if !missing.is_empty() {
            if usage_ratio < 1.0 {
                for p in &missing {
                    let v = match target {
                        Target::Utilization(_) => {
                            requests.get(&p.name).copied().unwrap_or(0) * t.max(100) / 100
                        }
                        Target::AverageValue(_) => t,
                    };
                    metrics.insert(p.name.clone(), v);
                }
                how.push(format!(
                    "{} missing pod(s) as {} (scale-down)",
                    missing.len(),
                    match target {
                        Target::Utilization(_) => format!("{}% of request", t.max(100)),
                        Target::AverageValue(_) => format!("{t}m"),
                    }
                ));
            } else if usage_ratio > 1.0 {
                for p in &missing {
                    metrics.insert(p.name.clone(), 0);
                }
                how.push(format!("{} missing pod(s) as 0% (scale-up)", missing.len()));
            }
        }
        if scale_up_with_unready {
            for p in &unready {
                metrics.insert(p.name.clone(), 0);
            }
            how.push(format!(
                "{} not-yet-ready pod(s) as 0% (scale-up)",
                unready.len()
            ));
        }
        let (new_ratio, _) = ratio(&metrics).map_err(|e| (excluded.clone(), e))?;
        let conservative = how.join(", ");
        if self.within(new_ratio)
            || (usage_ratio < 1.0 && new_ratio > 1.0)
            || (usage_ratio > 1.0 && new_ratio < 1.0)
        {
            return Ok(Calc {
                replicas: current,
                value,
                per_pod,
                excluded,
                rule: format!(
                    "no change: cpu {} (ratio {:.2}), and with {conservative} the ratio is {:.2}: {}",
                    shown(value),
                    usage_ratio,
                    new_ratio,
                    if self.within(new_ratio) { "within tolerance" } else { "the direction reverses" }
                ),
            });
        }
        let n = ceil_u32(new_ratio * metrics.len() as f64);
        if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
            return Ok(Calc {
                replicas: current,
                value,
                per_pod,
                excluded,
                rule: format!("no change: with {conservative}, ceil({} x {new_ratio:.2}) = {n} would reverse the direction", metrics.len()),
            });
        }
        let dir = if new_ratio > 1.0 {
            "scale-up"
        } else {
            "scale-down"
        };
        Ok(Calc {
            replicas: n,
            value,
            per_pod,
            excluded,
            rule: format!(
                "{dir}: cpu {} vs {target_shown} target (ratio {:.2}); conservatively with {conservative}: ceil({} x {new_ratio:.2}) = {n}",
                shown(value),
                usage_ratio,
                metrics.len()
            ),
        })
    }
}

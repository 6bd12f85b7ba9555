//! The Kubernetes HorizontalPodAutoscaler (`autoscaling/v2`), as a pure state machine: call
//! [`Hpa::evaluate`] once per sync period (15 s by default) with the Deployment's replica count
//! and its pods' readiness and CPU samples; it answers with the replica count and why.
//!
//! Follows the Kubernetes documentation ("Horizontal Pod Autoscaling": algorithm details,
//! configurable scaling behavior) and the controller it describes (`replica_calculator.go`,
//! `horizontal.go`):
//! - `desired = ceil(current * metric / target)` over the ready pods with metrics, skipped when
//!   the ratio is within the tolerance (0.1, or `behavior.scaleUp/scaleDown.tolerance`);
//!   utilization is whole percent of the summed requests (the controller's integer division);
//! - pods being deleted or failed are ignored; pending pods, and (for CPU) pods not ready or
//!   whose sample predates their readiness within the CPU initialization period (300 s), or
//!   never ready since start (30 s initial readiness delay), are set aside as not yet ready;
//!   pods without a sample are missing;
//! - the conservative re-computation: missing pods count as 100% of their request (or the
//!   target, if higher) on a scale-down and 0% on a scale-up, not-yet-ready pods as 0% on a
//!   scale-up; if the new ratio reverses the direction or is within the tolerance, no change;
//! - several metrics: the largest proposal wins; if a metric fails and the others propose a
//!   scale-down, nothing happens;
//! - `behavior`: the recommendation is stabilised (scale-down takes the highest recommendation
//!   within `stabilizationWindowSeconds`, scale-up the lowest), then rate-limited by the
//!   policies (`Pods`/`Percent` per `periodSeconds`, counted from the replica count at the start
//!   of the period; `selectPolicy` `Max` takes the policy allowing the largest change, `Min`
//!   the smallest, `Disabled` none); defaults as documented (down: 300 s, 100% per 15 s; up:
//!   0 s, max(100% , 4 pods) per 15 s); never outside `minReplicas`/`maxReplicas`.
//!
//! API (stable): [`HpaSpec`] (+ [`Behavior::defaults`]), [`Hpa::new`], [`Hpa::evaluate`] with
//! [`Pod`]s; all times are platform seconds since the rehearsal started.

use super::decisions::Evaluation;
use std::collections::BTreeMap;

/// What a metric is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `averageUtilization`: percent of the pods' CPU request.
    Utilization(i64),
    /// `averageValue`: CPU per pod, millicores.
    AverageValue(i64),
}

/// A `Resource` metric on `cpu` (what the blueprints render).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMetric {
    /// The target.
    pub target: Target,
}

/// `Pods` or `Percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A number of pods.
    Pods,
    /// A percentage of the replicas at the start of the period.
    Percent,
}

/// One scaling policy of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// How many pods, or what percentage.
    pub value: u32,
    /// Over how many seconds (at most 1800).
    pub period_secs: u32,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `behavior.scaleUp` or `behavior.scaleDown`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `stabilizationWindowSeconds`.
    pub stabilization_secs: u32,
    /// `selectPolicy`.
    pub select: Select,
    /// `policies`.
    pub policies: Vec<RatePolicy>,
    /// `tolerance` (beta field); `None`: the cluster's 0.1.
    pub tolerance: Option<f64>,
}

/// `behavior`, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// `scaleUp`.
    pub up: Rules,
    /// `scaleDown`.
    pub down: Rules,
}

impl Behavior {
    /// The documented defaults.
    pub fn defaults() -> Behavior {
        Behavior {
            up: Rules {
                stabilization_secs: 0,
                select: Select::Max,
                policies: vec![
                    RatePolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_secs: 15,
                    },
                    RatePolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_secs: 15,
                    },
                ],
                tolerance: None,
            },
            down: Rules {
                stabilization_secs: 300,
                select: Select::Max,
                policies: vec![RatePolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_secs: 15,
                }],
                tolerance: None,
            },
        }
    }
}

/// A HorizontalPodAutoscaler as rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaSpec {
    /// `metadata.name`.
    pub name: String,
    /// `minReplicas`.
    pub min: u32,
    /// `maxReplicas`.
    pub max: u32,
    /// `metrics` (CPU resource metrics).
    pub metrics: Vec<CpuMetric>,
    /// `behavior` with defaults.
    pub behavior: Behavior,
}

/// The controller's flags (kube-controller-manager defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerFlags {
    /// `--horizontal-pod-autoscaler-sync-period`, seconds.
    pub sync_period_secs: f64,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`, seconds.
    pub cpu_initialization_secs: f64,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`, seconds.
    pub initial_readiness_delay_secs: f64,
}

impl Default for ControllerFlags {
    fn default() -> Self {
        ControllerFlags {
            sync_period_secs: 15.0,
            tolerance: 0.1,
            cpu_initialization_secs: 300.0,
            initial_readiness_delay_secs: 30.0,
        }
    }
}

/// A pod's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Not all containers started.
    Pending,
    /// Running.
    Running,
    /// Failed.
    Failed,
}

/// A CPU sample of a pod, as metrics-server reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSample {
    /// Usage, millicores, averaged over the window.
    pub millicores: f64,
    /// When the window ended (platform seconds).
    pub timestamp: f64,
    /// The window's length (seconds).
    pub window: f64,
}

/// One pod of the scale target.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    /// Its name.
    pub name: String,
    /// Its phase.
    pub phase: PodPhase,
    /// A deletion timestamp is set (terminating).
    pub deleting: bool,
    /// When it started (`status.startTime`).
    pub start_time: Option<f64>,
    /// Its `Ready` condition: (ready, lastTransitionTime); `None` when not reported yet.
    pub ready: Option<(bool, f64)>,
    /// Its CPU sample; `None` when metrics-server has none.
    pub cpu: Option<CpuSample>,
    /// Sum of its containers' CPU requests, millicores; `None` when a container has none.
    pub request_millicores: Option<i64>,
}

/// The result of one sync.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaOutcome {
    /// One entry per metric, for the decision log.
    pub evaluations: Vec<Evaluation>,
    /// The replica count to set.
    pub desired: u32,
    /// Why, in words (for a `scale` line).
    pub rule: String,
}

/// A HorizontalPodAutoscaler's controller state: recommendations and scale events.
#[derive(Debug, Clone)]
pub struct Hpa {
    spec: HpaSpec,
    flags: ControllerFlags,
    recommendations: Vec<(f64, u32)>,
    up_events: Vec<(f64, u32)>,
    down_events: Vec<(f64, u32)>,
}

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

fn ceil_u32(x: f64) -> u32 {
    x.ceil().clamp(0.0, u32::MAX as f64) as u32
}

impl Hpa {
    /// The controller for `spec` with `flags`.
    pub fn new(spec: HpaSpec, flags: ControllerFlags) -> Hpa {
        Hpa {
            spec,
            flags,
            recommendations: Vec::new(),
            up_events: Vec::new(),
            down_events: Vec::new(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// The controller flags.
    pub fn flags(&self) -> &ControllerFlags {
        &self.flags
    }

    fn within(&self, ratio: f64) -> bool {
        let b = &self.spec.behavior;
        let up = b.up.tolerance.unwrap_or(self.flags.tolerance);
        let down = b.down.tolerance.unwrap_or(self.flags.tolerance);
        (1.0 - down) <= ratio && ratio <= 1.0 + up
    }

    /// One sync at platform time `now`: `current` is the Deployment's `spec.replicas`.
    pub fn evaluate(&mut self, now: f64, current: u32, pods: &[Pod]) -> HpaOutcome {
        let (min, max) = (self.spec.min, self.spec.max);
        let mut evaluations = Vec::new();
        let (desired, rule) = if current == 0 && min != 0 {
            (
                0,
                "scaling is disabled: the Deployment has 0 replicas".to_string(),
            )
        } else if current > max {
            (
                max,
                format!("{current} replicas are above maxReplicas {max}"),
            )
        } else if current < min {
            (
                min,
                format!("{current} replicas are below minReplicas {min}"),
            )
        } else {
            let mut proposal: Option<u32> = None;
            let mut invalid = Vec::new();
            for m in &self.spec.metrics.clone() {
                let (ev, result) = self.metric(now, current, m, pods);
                evaluations.push(ev);
                match result {
                    Ok(n) => proposal = Some(proposal.map_or(n, |p| p.max(n))),
                    Err(e) => invalid.push(e),
                }
            }
            match proposal {
                None => (
                    current,
                    format!(
                        "no metric could be computed ({}): no scaling",
                        invalid.join("; ")
                    ),
                ),
                Some(p) if !invalid.is_empty() && p < current => (
                    current,
                    format!(
                        "a metric failed ({}) and the others propose a scale-down to {p}: no scaling",
                        invalid.join("; ")
                    ),
                ),
                Some(p) => self.normalize(now, current, p),
            }
        };
        if desired > current {
            self.store_event(now, true, desired - current);
        } else if desired < current {
            self.store_event(now, false, current - desired);
        }
        for ev in &mut evaluations {
            ev.desired = desired;
        }
        HpaOutcome {
            evaluations,
            desired,
            rule,
        }
    }

    fn store_event(&mut self, now: f64, up: bool, change: u32) {
        let (events, rules) = if up {
            (&mut self.up_events, &self.spec.behavior.up)
        } else {
            (&mut self.down_events, &self.spec.behavior.down)
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period_secs)
            .max()
            .unwrap_or(0) as f64;
        events.retain(|(t, _)| *t >= now - longest);
        events.push((now, change));
    }

    /// Stabilisation, then the rate limits of `behavior`, then min/max.
    fn normalize(&mut self, now: f64, current: u32, proposal: u32) -> (u32, String) {
        let b = self.spec.behavior.clone();
        let up_cutoff = now - b.up.stabilization_secs as f64;
        let down_cutoff = now - b.down.stabilization_secs as f64;
        let mut up_rec = proposal;
        let mut down_rec = proposal;
        for (t, r) in &self.recommendations {
            if *t > up_cutoff {
                up_rec = up_rec.min(*r);
            }
            if *t > down_cutoff {
                down_rec = down_rec.max(*r);
            }
        }
        let mut stabilized = current.max(up_rec).min(down_rec);
        self.recommendations
            .retain(|(t, _)| *t > up_cutoff || *t > down_cutoff);
        self.recommendations.push((now, proposal));
        let mut words = Vec::new();
        if stabilized != proposal {
            if proposal < current {
                words.push(format!(
                    "held by the scale-down stabilisation window ({}s): highest recommendation {down_rec}",
                    b.down.stabilization_secs
                ));
            } else {
                words.push(format!(
                    "held by the scale-up stabilisation window ({}s): lowest recommendation {up_rec}",
                    b.up.stabilization_secs
                ));
            }
        }
        let (min, max) = (self.spec.min, self.spec.max);
        if stabilized > current {
            let limit = self.up_limit(now, current, &b.up).max(current);
            let allowed = max.min(limit);
            if stabilized > allowed {
                words.push(if allowed == max && max <= limit {
                    format!("{stabilized} is above maxReplicas {max}")
                } else {
                    format!(
                        "scale-up rate limited by behavior.scaleUp ({}): at most {allowed} now",
                        describe(&b.up)
                    )
                });
                stabilized = allowed;
            }
        } else if stabilized < current {
            let limit = self.down_limit(now, current, &b.down).min(current);
            let allowed = min.max(limit);
            if stabilized < allowed {
                words.push(if allowed == min && min >= limit {
                    format!("{stabilized} is below minReplicas {min}")
                } else {
                    format!("scale-down rate limited by behavior.scaleDown ({}): at least {allowed} now", describe(&b.down))
                });
                stabilized = allowed;
            }
        }
        let head = match stabilized.cmp(&current) {
            std::cmp::Ordering::Greater => format!("scale-up {current} -> {stabilized}"),
            std::cmp::Ordering::Less => format!("scale-down {current} -> {stabilized}"),
            std::cmp::Ordering::Equal => format!("no change ({current})"),
        };
        let rule = if words.is_empty() {
            format!("{head}: recommendation {proposal}")
        } else {
            format!("{head}: recommendation {proposal}; {}", words.join("; "))
        };
        (stabilized, rule)
    }

    fn change_in_period(events: &[(f64, u32)], now: f64, period: u32) -> u32 {
        let cutoff = now - period as f64;
        events
            .iter()
            .filter(|(t, _)| *t > cutoff)
            .map(|(_, c)| c)
            .sum()
    }

    fn up_limit(&self, now: f64, current: u32, rules: &Rules) -> u32 {
        if rules.select == Select::Disabled {
            return current;
        }
        let mut result: Option<u32> = None;
        for p in &rules.policies {
            let start = (current as i64
                - Self::change_in_period(&self.up_events, now, p.period_secs) as i64
                + Self::change_in_period(&self.down_events, now, p.period_secs) as i64)
                .max(0) as f64;
            let proposed = match p.kind {
                PolicyKind::Pods => (start + p.value as f64) as u32,
                PolicyKind::Percent => ceil_u32(start * (1.0 + p.value as f64 / 100.0)),
            };
            result = Some(match (result, rules.select) {
                (None, _) => proposed,
                (Some(r), Select::Min) => r.min(proposed),
                (Some(r), _) => r.max(proposed),
            });
        }
        result.unwrap_or(current)
    }

    fn down_limit(&self, now: f64, current: u32, rules: &Rules) -> u32 {
        if rules.select == Select::Disabled {
            return current;
        }
        let mut result: Option<u32> = None;
        for p in &rules.policies {
            let start = (current as i64
                - Self::change_in_period(&self.up_events, now, p.period_secs) as i64
                + Self::change_in_period(&self.down_events, now, p.period_secs) as i64)
                .max(0) as f64;
            let proposed = match p.kind {
                PolicyKind::Pods => (start - p.value as f64).max(0.0) as u32,
                // The controller truncates: int32(start * (1 - value/100)).
                PolicyKind::Percent => (start * (1.0 - p.value as f64 / 100.0)).max(0.0) as u32,
            };
            result = Some(match (result, rules.select) {
                (None, _) => proposed,
                (Some(r), Select::Min) => r.max(proposed),
                (Some(r), _) => r.min(proposed),
            });
        }
        result.unwrap_or(current)
    }

    /// One metric: the log entry and its proposal (or why there is none).
    fn metric(
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

fn describe(r: &Rules) -> String {
    let ps: Vec<String> = r
        .policies
        .iter()
        .map(|p| match p.kind {
            PolicyKind::Pods => format!("{} pods per {} s", p.value, p.period_secs),
            PolicyKind::Percent => format!("{}% per {} s", p.value, p.period_secs),
        })
        .collect();
    let select = match r.select {
        Select::Max => "Max",
        Select::Min => "Min",
        Select::Disabled => "Disabled",
    };
    format!("{}, selectPolicy {select}", ps.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: u32, max: u32, target: i64, behavior: Behavior) -> HpaSpec {
        HpaSpec {
            name: "bookstore".into(),
            min,
            max,
            metrics: vec![CpuMetric {
                target: Target::Utilization(target),
            }],
            behavior,
        }
    }

    /// A pod running and ready since long before `now`, using `millicores` of a `request`.
    fn pod(name: &str, millicores: f64, request: i64, now: f64) -> Pod {
        Pod {
            name: name.into(),
            phase: PodPhase::Running,
            deleting: false,
            start_time: Some(now - 1000.0),
            ready: Some((true, now - 990.0)),
            cpu: Some(CpuSample {
                millicores,
                timestamp: now - 5.0,
                window: 15.0,
            }),
            request_millicores: Some(request),
        }
    }

    fn pods(values: &[f64], request: i64, now: f64) -> Vec<Pod> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| pod(&format!("p{i}"), *v, request, now))
            .collect()
    }

    fn hpa(min: u32, max: u32, target: i64) -> Hpa {
        Hpa::new(
            spec(min, max, target, Behavior::defaults()),
            ControllerFlags::default(),
        )
    }

    #[test]
    fn doubles_and_halves_as_the_docs_example_says() {
        // "current 200m, desired 100m: the number of replicas will be doubled".
        let mut h = Hpa::new(
            HpaSpec {
                metrics: vec![CpuMetric {
                    target: Target::AverageValue(100),
                }],
                ..spec(1, 10, 0, Behavior::defaults())
            },
            ControllerFlags::default(),
        );
        let o = h.evaluate(1000.0, 3, &pods(&[200.0, 200.0, 200.0], 500, 1000.0));
        assert_eq!(o.desired, 6, "{}", o.rule);
        // "50m: you'll halve the number of replicas" (the scale-down window has no higher
        // recommendation on a fresh controller... except the 6 just made: use a new one).
        let mut h2 = h.clone();
        h2.recommendations.clear();
        let o = h2.evaluate(1000.0, 6, &pods(&[50.0; 6], 500, 1000.0));
        assert_eq!(o.desired, 3, "{}", o.rule);
    }

    #[test]
    fn tolerance_skips_ratios_within_ten_percent() {
        let mut h = hpa(1, 10, 50);
        // 54% of 50% is a ratio of 1.08: no change.
        let o = h.evaluate(1000.0, 4, &pods(&[270.0; 4], 500, 1000.0));
        assert_eq!(o.desired, 4);
        assert!(
            o.evaluations[0].rule.starts_with("within tolerance"),
            "{}",
            o.evaluations[0].rule
        );
        // 56% is 1.12: ceil(4 x 1.12) = 5.
        let o = h.evaluate(1015.0, 4, &pods(&[280.0; 4], 500, 1015.0));
        assert_eq!(o.desired, 5, "{}", o.rule);
    }

    #[test]
    fn design_doc_formula_sum_of_utilization_over_target() {
        // TargetNumOfPods = ceil(sum(CurrentPodsCPUUtilization) / Target): 332 / 50 -> 7.
        let mut h = hpa(1, 10, 50);
        let o = h.evaluate(1000.0, 4, &pods(&[166.0, 166.0, 166.0, 166.0], 200, 1000.0));
        // Each pod 83% (sum 332%), utilization 83 / 50 = 1.66, ceil(4 x 1.66) = 7.
        assert_eq!(o.evaluations[0].value, Some(83.0));
        assert_eq!(o.desired, 7, "{}", o.rule);
    }

    #[test]
    fn utilization_is_integer_percent_of_summed_requests() {
        // 100m of 300m is 33% (not 33.3%): ratio 0.66 with a 50% target -> ceil(3 x 0.66) = 2.
        let mut h = hpa(1, 10, 50);
        let o = h.evaluate(1000.0, 3, &pods(&[40.0, 30.0, 30.0], 100, 1000.0));
        assert_eq!(o.evaluations[0].value, Some(33.0));
        assert_eq!(
            o.evaluations[0].rule,
            "scale-down: cpu 33% of request < 50% target; ceil(3 ready x 0.66) = 2"
        );
        // The proposal is 2, but the fresh 300 s window holds nothing higher: 2.
        assert_eq!(o.desired, 2);
    }

    #[test]
    fn missing_metrics_damp_a_scale_down_and_can_cancel_it() {
        // 4 pods, target 50%, three at 40% and one without metrics: 0.8 would scale down to
        // 3, but the missing pod counts as 100%: (40 x 3 + 100) / 4 = 55% -> ratio 1.1,
        // within tolerance: keep 4.
        let mut h = hpa(1, 10, 50);
        let mut p = pods(&[40.0, 40.0, 40.0, 0.0], 100, 1000.0);
        p[3].cpu = None;
        let o = h.evaluate(1000.0, 4, &p);
        assert_eq!(o.desired, 4, "{}", o.evaluations[0].rule);
        assert_eq!(o.evaluations[0].excluded["p3"], "missing metrics");
        assert!(o.evaluations[0]
            .rule
            .contains("1 missing pod(s) as 100% of request"));
    }

    #[test]
    fn not_yet_ready_pods_count_as_zero_on_a_scale_up() {
        // One ready pod at 260m of 100m (260%), one not ready (request 300m), target 50%:
        // plain 5.2 x 1 = 6, conservatively (260 + 0) / 400 = 65% -> 1.3 x 2 = 3.
        let mut h = hpa(1, 10, 50);
        let mut p = vec![pod("a", 260.0, 100, 1000.0), pod("b", 0.0, 300, 1000.0)];
        p[1].ready = Some((false, 995.0));
        p[1].start_time = Some(990.0);
        let o = h.evaluate(1000.0, 2, &p);
        assert_eq!(o.desired, 3, "{}", o.evaluations[0].rule);
        assert!(o.evaluations[0].excluded["b"].starts_with("not yet ready"));
    }

    #[test]
    fn pending_deleting_and_failed_pods() {
        let mut h = hpa(1, 10, 50);
        let mut p = pods(&[100.0, 100.0, 0.0, 0.0], 100, 1000.0);
        p[2].phase = PodPhase::Pending;
        p[3].deleting = true;
        let o = h.evaluate(1000.0, 3, &p);
        let ev = &o.evaluations[0];
        assert_eq!(ev.excluded["p2"], "pending (not yet ready)");
        assert_eq!(ev.excluded["p3"], "terminating (ignored)");
        // 100% / 50% = 2, with the pending pod at 0: 200 / 300 -> 66% -> 1.32 x 3 = ceil(3.96) = 4.
        assert_eq!(o.desired, 4, "{}", ev.rule);
    }

    #[test]
    fn all_pods_unready_means_no_metric_and_no_scaling() {
        let mut h = hpa(1, 10, 50);
        let mut p = pods(&[100.0, 100.0], 100, 1000.0);
        for x in &mut p {
            x.ready = Some((false, 999.0));
            x.start_time = Some(995.0);
        }
        let o = h.evaluate(1000.0, 2, &p);
        assert_eq!(o.desired, 2);
        assert_eq!(o.evaluations[0].value, None);
        assert!(
            o.rule.starts_with("no metric could be computed"),
            "{}",
            o.rule
        );
    }

    #[test]
    fn cpu_sample_before_readiness_is_set_aside_during_initialization() {
        let mut h = hpa(1, 10, 50);
        let mut p = pods(&[100.0, 100.0], 100, 1000.0);
        // Started 60 s ago (inside the 300 s initialization period), ready 10 s ago, and the
        // sample's window ended before ready + window: set aside.
        p[1].start_time = Some(940.0);
        p[1].ready = Some((true, 990.0));
        p[1].cpu = Some(CpuSample {
            millicores: 900.0,
            timestamp: 995.0,
            window: 15.0,
        });
        let o = h.evaluate(1000.0, 2, &p);
        assert!(o.evaluations[0].excluded.contains_key("p1"));
        // p0 alone: 100% -> ratio 2, p1 as 0%: 100 / 200 -> 50% -> ratio 1.0: within tolerance.
        assert_eq!(o.desired, 2, "{}", o.evaluations[0].rule);
    }

    #[test]
    fn scale_down_stabilisation_window_picks_the_highest_recommendation() {
        let mut h = hpa(1, 10, 50);
        // t=0: hot, recommend 8 from 4.
        let o = h.evaluate(0.0, 4, &pods(&[100.0; 4], 100, 0.0));
        assert_eq!(o.desired, 8);
        // t=60..: cold; recommendations are 2, but 8 is within the 300 s window.
        for t in [60.0, 120.0, 240.0, 299.0] {
            let o = h.evaluate(t, 8, &pods(&[10.0; 8], 100, t));
            assert_eq!(o.desired, 8, "at {t}: {}", o.rule);
            assert!(
                o.rule.contains(
                    "held by the scale-down stabilisation window (300s): highest recommendation 8"
                ),
                "{}",
                o.rule
            );
        }
        // t=301: the 8 left the window; the highest in it is 2.
        let o = h.evaluate(301.0, 8, &pods(&[10.0; 8], 100, 301.0));
        assert_eq!(o.desired, 2, "{}", o.rule);
    }

    #[test]
    fn docs_scale_down_policies_pods_4_and_percent_10_per_minute() {
        // The docs' example: 80 replicas to 10; Max picks the larger change: 8 (10%) first,
        // then 8 again from 72 (7.2 -> the count 64.8 truncates to 64), 4 a minute below 40.
        let behavior = Behavior {
            down: Rules {
                stabilization_secs: 0,
                select: Select::Max,
                policies: vec![
                    RatePolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_secs: 60,
                    },
                    RatePolicy {
                        kind: PolicyKind::Percent,
                        value: 10,
                        period_secs: 60,
                    },
                ],
                tolerance: None,
            },
            ..Behavior::defaults()
        };
        let mut h = Hpa::new(spec(10, 100, 50, behavior), ControllerFlags::default());
        let cold = |n: usize, t: f64| pods(&vec![5.0; n], 100, t);
        let o = h.evaluate(0.0, 80, &cold(80, 0.0));
        assert_eq!(o.desired, 72, "{}", o.rule);
        assert!(
            o.rule.contains("rate limited by behavior.scaleDown"),
            "{}",
            o.rule
        );
        // Within the same minute, nothing more may go.
        let o = h.evaluate(15.0, 72, &cold(72, 15.0));
        assert_eq!(o.desired, 72, "{}", o.rule);
        let o = h.evaluate(61.0, 72, &cold(72, 61.0));
        assert_eq!(o.desired, 64, "{}", o.rule);
        let mut n = 64;
        let mut t = 61.0;
        while n > 40 {
            t += 61.0;
            n = h.evaluate(t, n, &cold(n as usize, t)).desired;
        }
        t += 61.0;
        let o = h.evaluate(t, n, &cold(n as usize, t));
        assert_eq!(
            n - o.desired,
            4,
            "below 40 the Pods policy (4) allows more: {}",
            o.rule
        );
    }

    #[test]
    fn rendered_behavior_up_4_pods_per_minute_down_min_50_percent() {
        // What out/objective3/k8s/hpa.yaml renders.
        let behavior = Behavior {
            up: Rules {
                stabilization_secs: 0,
                select: Select::Max,
                policies: vec![RatePolicy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period_secs: 60,
                }],
                tolerance: None,
            },
            down: Rules {
                stabilization_secs: 300,
                select: Select::Min,
                policies: vec![RatePolicy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period_secs: 60,
                }],
                tolerance: None,
            },
        };
        let mut h = Hpa::new(spec(2, 10, 60, behavior), ControllerFlags::default());
        let o = h.evaluate(0.0, 2, &pods(&[300.0, 300.0], 100, 0.0));
        // 300% / 60% = 5 -> 10, at most +4 per 60 s: 6.
        assert_eq!(o.desired, 6, "{}", o.rule);
        let o = h.evaluate(30.0, 6, &pods(&[300.0; 6], 100, 30.0));
        assert_eq!(o.desired, 6, "no more within the minute: {}", o.rule);
        let o = h.evaluate(61.0, 6, &pods(&[300.0; 6], 100, 61.0));
        assert_eq!(o.desired, 10, "{}", o.rule);
        // Cold after the window: at most half per minute, never under 2.
        let o = h.evaluate(400.0, 10, &pods(&[1.0; 10], 100, 400.0));
        assert_eq!(o.desired, 5, "{}", o.rule);
        let o = h.evaluate(461.0, 5, &pods(&[1.0; 5], 100, 461.0));
        assert_eq!(o.desired, 2, "5 x 0.5 = 2.5 truncates to 2: {}", o.rule);
    }

    #[test]
    fn select_policy_disabled_and_limits() {
        let mut b = Behavior::defaults();
        b.up.select = Select::Disabled;
        let mut h = Hpa::new(spec(1, 10, 50, b), ControllerFlags::default());
        let o = h.evaluate(0.0, 2, &pods(&[200.0, 200.0], 100, 0.0));
        assert_eq!(o.desired, 2, "{}", o.rule);
        // Default behavior: from 1, at most max(2 x 1, 1 + 4) = 5 per 15 s; never above max.
        let mut h = hpa(1, 3, 10);
        let o = h.evaluate(0.0, 1, &pods(&[1000.0], 100, 0.0));
        assert_eq!(o.desired, 3, "{}", o.rule);
        assert!(o.rule.contains("above maxReplicas 3"), "{}", o.rule);
        // min = max: nothing moves.
        let mut h = hpa(3, 3, 50);
        assert_eq!(h.evaluate(0.0, 3, &pods(&[500.0; 3], 100, 0.0)).desired, 3);
        assert_eq!(
            h.evaluate(400.0, 3, &pods(&[1.0; 3], 100, 400.0)).desired,
            3
        );
        // Outside the range: brought back first.
        let mut h = hpa(2, 4, 50);
        assert_eq!(h.evaluate(0.0, 7, &[]).desired, 4);
        assert_eq!(h.evaluate(0.0, 1, &[]).desired, 2);
    }

    #[test]
    fn configurable_tolerance_per_direction() {
        let mut b = Behavior::defaults();
        b.up.tolerance = Some(0.05);
        let mut h = Hpa::new(spec(1, 20, 100, b), ControllerFlags::default());
        // 106% of a 100% target: above the 5% scale-up tolerance.
        let o = h.evaluate(0.0, 10, &pods(&[106.0; 10], 100, 0.0));
        assert_eq!(o.desired, 11, "{}", o.rule);
    }

    #[test]
    fn a_pod_without_cpu_request_stops_the_utilization_metric() {
        let mut h = hpa(1, 10, 50);
        let mut p = pods(&[100.0, 100.0], 100, 1000.0);
        p[0].request_millicores = None;
        let o = h.evaluate(1000.0, 2, &p);
        assert_eq!(o.desired, 2);
        assert!(o.rule.contains("has no CPU request"), "{}", o.rule);
    }
}

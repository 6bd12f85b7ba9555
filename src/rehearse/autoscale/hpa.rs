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

mod replicas;
#[cfg(test)]
mod tests;

//! EC2 Auto Scaling target tracking, as AWS documents it, as a pure state machine: feed it one
//! datapoint per instance per metric period ([`TargetTracking::evaluate`]) and it answers with
//! the capacity the group should have, and why, in the decision log's terms.
//!
//! What AWS documents (Amazon EC2 Auto Scaling User Guide: "Target tracking scaling policies",
//! "Set the default instance warmup", "Dynamic scaling: multiple scaling policies"):
//! - a policy keeps its metric at the target; it scales out when the metric is above it and in
//!   when it is below it, rounding conservatively ("removing 1.5 instances -> we remove one");
//! - it "scales out proportionally to the metric as fast as it can, but scales in more
//!   gradually", and does not scale in on insufficient data (except `ALBRequestCountPerTarget`,
//!   which reports zeros when idle);
//! - until its warm-up has passed (the policy's `EstimatedInstanceWarmup`, else the group's
//!   `DefaultInstanceWarmup`, else `DefaultCooldown`, 300 s) an instance is not counted in the
//!   metric; while instances warm up the group scales out only on the other instances' metric,
//!   the warming ones count towards the desired capacity, and scale-in is blocked;
//! - several policies: scale out if any asks to, scale in only if all (with scale-in enabled)
//!   are ready to, and the policy giving the largest capacity wins; never outside min/max.
//!
//! What AWS does not publish, modelled here (and printed as a difference by the rehearsal):
//! - the alarms target tracking creates: high = metric > target for 3 of 3 one-minute
//!   datapoints; low = metric < 70% of the target for 15 of 15 (the thresholds and counts the
//!   alarms show in the CloudWatch console for EC2 Auto Scaling groups); an alarm that stays in
//!   ALARM invokes the policy again every period (CloudWatch documents that for Auto Scaling
//!   actions);
//! - the new capacity: `ceil(metric x counted instances / target)`; on scale-out at least the
//!   current desired capacity, on scale-in only when that removes an instance (so the metric
//!   stays at or under the target after the removal); instances pending or warming up block
//!   scale-in ("a scale-in activity can't start while a scale-out activity is in progress").
//!
//! API (stable): [`TargetTracking::new`] with the [`Group`] and its [`Policy`]s, then
//! [`TargetTracking::evaluate`] once per [`AlarmModel::period_secs`] of platform time.

use super::decisions::Evaluation;
use std::collections::{BTreeMap, VecDeque};

/// A predefined metric of a target tracking policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Average CPU utilization of the group's instances, percent.
    AsgAverageCpuUtilization,
    /// Requests completed per target per minute, from the load balancer.
    AlbRequestCountPerTarget,
}

impl Metric {
    /// The name AWS uses (`PredefinedMetricType`).
    pub fn name(self) -> &'static str {
        match self {
            Metric::AsgAverageCpuUtilization => "ASGAverageCPUUtilization",
            Metric::AlbRequestCountPerTarget => "ALBRequestCountPerTarget",
        }
    }

    /// Parses a `PredefinedMetricType`; `None` for one the rehearsal cannot measure.
    pub fn parse(name: &str) -> Option<Metric> {
        match name {
            "ASGAverageCPUUtilization" => Some(Metric::AsgAverageCpuUtilization),
            "ALBRequestCountPerTarget" => Some(Metric::AlbRequestCountPerTarget),
            _ => None,
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Metric::AsgAverageCpuUtilization => format!("{}%", round1(v)),
            Metric::AlbRequestCountPerTarget => format!("{} requests/target/min", round1(v)),
        }
    }
}

/// One `AWS::AutoScaling::ScalingPolicy` of type `TargetTrackingScaling`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Its CloudFormation logical id.
    pub name: String,
    /// What it tracks.
    pub metric: Metric,
    /// `TargetValue`.
    pub target: f64,
    /// `DisableScaleIn`.
    pub disable_scale_in: bool,
    /// `EstimatedInstanceWarmup`, platform seconds.
    pub estimated_warmup: Option<f64>,
}

/// The auto-scaling group's limits and warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// `MinSize`.
    pub min: u32,
    /// `MaxSize`.
    pub max: u32,
    /// `DefaultInstanceWarmup`, platform seconds.
    pub default_warmup: Option<f64>,
    /// `Cooldown` (`DefaultCooldown`), platform seconds; the warm-up's last fallback.
    pub default_cooldown: f64,
}

impl Group {
    /// The warm-up that applies to `policy`.
    pub fn warmup_for(&self, policy: &Policy) -> f64 {
        policy
            .estimated_warmup
            .or(self.default_warmup)
            .unwrap_or(self.default_cooldown)
    }

    /// `value` brought within `[min, max]`.
    pub fn clamp(&self, value: u32) -> u32 {
        value.clamp(self.min, self.max)
    }
}

/// The CloudWatch alarms a target tracking policy creates (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmModel {
    /// Seconds per datapoint: 60 with detailed monitoring, 300 without.
    pub period_secs: f64,
    /// Datapoints above the target (all of them) for the high alarm.
    pub high_datapoints: usize,
    /// Datapoints under the low threshold (all of them) for the low alarm.
    pub low_datapoints: usize,
    /// The low threshold as a share of the target.
    pub low_ratio: f64,
}

impl AlarmModel {
    /// The model for one-minute (`detailed`) or five-minute metrics.
    pub fn for_monitoring(detailed: bool) -> AlarmModel {
        AlarmModel {
            period_secs: if detailed { 60.0 } else { 300.0 },
            high_datapoints: 3,
            low_datapoints: 15,
            low_ratio: 0.7,
        }
    }

    /// The model in words, for the printed differences.
    pub fn describe(&self) -> String {
        format!(
            "high alarm: metric > target for {h} of {h} datapoints of {p} s; low alarm: metric < {r}% of the target for {l} of {l}; \
             new capacity ceil(metric x counted instances / target), scale-in only when it removes an instance \
             (AWS publishes neither the alarms' thresholds nor the formula: these are the alarms the CloudWatch console shows and AWS's rounding example)",
            h = self.high_datapoints,
            l = self.low_datapoints,
            p = self.period_secs,
            r = (self.low_ratio * 100.0).round()
        )
    }
}

/// Where an instance is in its life, as the group sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Launched, not yet `InService` (booting, lifecycle hook).
    Pending,
    /// `InService` since this platform second.
    InService {
        /// Platform seconds since the rehearsal started.
        since: f64,
    },
    /// Being terminated (deregistered, draining).
    Terminating,
}

/// One instance's datapoints for the period that just ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Its id.
    pub id: String,
    /// Its phase.
    pub phase: Phase,
    /// CPU utilization over the period, percent of its capacity (`None`: no datapoint).
    pub cpu: Option<f64>,
    /// Requests the load balancer sent it, per minute, over the period (`None`: not a target).
    pub requests_per_minute: Option<f64>,
}

impl Instance {
    fn value(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::AsgAverageCpuUtilization => self.cpu,
            Metric::AlbRequestCountPerTarget => self.requests_per_minute,
        }
    }
}

/// What one policy asks for after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The high alarm is in ALARM: at least this capacity.
    ScaleOut(u32),
    /// The low alarm is in ALARM and removing instances keeps the metric at the target.
    ScaleIn(u32),
    /// Nothing to do (including: not ready to scale in).
    Hold,
}

/// The result of one evaluation round.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// One entry per policy, for the decision log.
    pub evaluations: Vec<Evaluation>,
    /// The capacity the group should have now.
    pub desired: u32,
    /// Why the capacity changed (or not), in words, for a `scale` line.
    pub rule: String,
}

/// The target tracking policies of one group and their alarms' datapoint history.
#[derive(Debug, Clone)]
pub struct TargetTracking {
    group: Group,
    policies: Vec<Policy>,
    alarms: AlarmModel,
    history: BTreeMap<String, VecDeque<Option<f64>>>,
}

fn ceil_capacity(x: f64) -> u32 {
    // Guard against 50.000000001 / 50 asking for one more instance.
    (x - 1e-9).ceil().max(0.0) as u32
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl TargetTracking {
    /// The group's policies with the given alarm model.
    pub fn new(group: Group, policies: Vec<Policy>, alarms: AlarmModel) -> TargetTracking {
        TargetTracking {
            group,
            policies,
            alarms,
            history: BTreeMap::new(),
        }
    }

    /// The group.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// The policies.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The alarm model.
    pub fn alarms(&self) -> &AlarmModel {
        &self.alarms
    }

    /// Evaluates every policy at platform time `now` (the end of a period) for a group whose
    /// desired capacity is `desired`, with the instances' datapoints of that period.
    pub fn evaluate(&mut self, now: f64, desired: u32, instances: &[Instance]) -> Outcome {
        let blocking: Vec<String> = instances
            .iter()
            .filter_map(|i| match i.phase {
                Phase::Pending => Some(format!("{} is launching", i.id)),
                Phase::InService { since } => {
                    let longest = self
                        .policies
                        .iter()
                        .map(|p| self.group.warmup_for(p))
                        .fold(0.0, f64::max);
                    (now - since < longest).then(|| format!("{} is warming up", i.id))
                }
                Phase::Terminating => None,
            })
            .collect();
        let mut evaluations = Vec::new();
        let mut asks = Vec::new();
        for p in self.policies.clone() {
            let (ev, ask) = self.evaluate_policy(&p, now, desired, instances, &blocking);
            evaluations.push(ev);
            asks.push((p, ask));
        }
        let (desired_new, rule) = self.combine(desired, &asks);
        Outcome {
            evaluations,
            desired: desired_new,
            rule,
        }
    }

    fn evaluate_policy(
        &mut self,
        p: &Policy,
        now: f64,
        desired: u32,
        instances: &[Instance],
        blocking: &[String],
    ) -> (Evaluation, Ask) {
        let warmup = self.group.warmup_for(p);
        let mut per_instance = BTreeMap::new();
        let mut excluded = BTreeMap::new();
        for i in instances {
            let why = match i.phase {
                Phase::Pending => Some("launching (not InService yet)".to_string()),
                Phase::Terminating => Some("terminating (deregistered, draining)".to_string()),
                Phase::InService { since } if now - since < warmup => Some(format!(
                    "warming up ({} of {} s)",
                    round1(now - since),
                    round1(warmup)
                )),
                Phase::InService { .. } => None,
            };
            match (why, i.value(p.metric)) {
                (Some(w), _) => {
                    excluded.insert(i.id.clone(), w);
                }
                (None, None) => {
                    excluded.insert(i.id.clone(), "no datapoint this period".to_string());
                }
                (None, Some(v)) => {
                    per_instance.insert(i.id.clone(), round1(v));
                }
            }
        }
        let counted = per_instance.len() as u32;
        let value = (counted > 0).then(|| per_instance.values().sum::<f64>() / counted as f64);
        let h = self.history.entry(p.name.clone()).or_default();
        h.push_back(value);
        let keep = self.alarms.high_datapoints.max(self.alarms.low_datapoints);
        while h.len() > keep {
            h.pop_front();
        }
        let last = |n: usize| -> Option<Vec<f64>> {
            (h.len() >= n)
                .then(|| {
                    h.iter()
                        .rev()
                        .take(n)
                        .copied()
                        .collect::<Option<Vec<f64>>>()
                })
                .flatten()
        };
        let (hn, ln) = (self.alarms.high_datapoints, self.alarms.low_datapoints);
        let low_threshold = p.target * self.alarms.low_ratio;
        let above = h
            .iter()
            .rev()
            .take(hn)
            .take_while(|v| v.is_some_and(|v| v > p.target))
            .count();
        let below = h
            .iter()
            .rev()
            .take(ln)
            .take_while(|v| v.is_some_and(|v| v < low_threshold))
            .count();
        let high = last(hn).is_some_and(|d| d.iter().all(|v| *v > p.target));
        let low = last(ln).is_some_and(|d| d.iter().all(|v| *v < low_threshold));
        let show = |v: f64| p.metric.show(v);
        let (ask, rule) = match value {
            None => (
                Ask::Hold,
                if instances.is_empty() {
                    "no data: the group has no instance".to_string()
                } else {
                    "no data: no instance counted this period (metrics of instances in warm-up are not counted); the alarms see insufficient data".to_string()
                },
            ),
            Some(v) if high => {
                let need = ceil_capacity(v * counted as f64 / p.target);
                if need > desired && desired >= self.group.max {
                    (
                        Ask::Hold,
                        format!(
                            "scale-out held at MaxSize {}: {} > {} target for {hn} of {hn} periods would ask for {need}",
                            self.group.max, show(v), show(p.target)
                        ),
                    )
                } else if need > desired {
                    (
                        Ask::ScaleOut(need),
                        format!(
                            "scale-out: {} > {} target for {hn} of {hn} periods; ceil({} x {counted} counted / {}) = {need}",
                            show(v), show(p.target), round1(v), p.target
                        ),
                    )
                } else {
                    (
                        Ask::Hold,
                        format!(
                            "scale-out covered: {} > {} target, and ceil({} x {counted} counted / {}) = {need} <= desired {desired} (instances warming up count towards the desired capacity)",
                            show(v), show(p.target), round1(v), p.target
                        ),
                    )
                }
            }
            Some(v) if low && p.disable_scale_in => (
                Ask::Hold,
                format!(
                    "scale-in disabled on this policy (DisableScaleIn): {} < {}",
                    show(v),
                    show(low_threshold)
                ),
            ),
            Some(v) if low => {
                let load = v * counted as f64;
                let need = ceil_capacity(load / p.target).max(1);
                if let Some(first) = blocking.first() {
                    (
                        Ask::Hold,
                        format!(
                            "scale-in held: {first} (instances launching or in warm-up block scale-in); {} < {} for {ln} of {ln} periods",
                            show(v), show(low_threshold)
                        ),
                    )
                } else if need < desired && desired <= self.group.min {
                    (
                        Ask::Hold,
                        format!(
                            "no scale-in at MinSize {}: {} < {} for {ln} of {ln} periods would ask for {need}",
                            self.group.min, show(v), show(low_threshold)
                        ),
                    )
                } else if need < desired {
                    (
                        Ask::ScaleIn(need),
                        format!(
                            "scale-in: {} < {} ({}% of the {} target) for {ln} of {ln} periods; ceil({} x {counted} counted / {}) = {need}",
                            show(v), show(low_threshold), (self.alarms.low_ratio * 100.0).round(), show(p.target), round1(v), p.target
                        ),
                    )
                } else {
                    let after = if desired > 1 {
                        load / (desired - 1) as f64
                    } else {
                        f64::INFINITY
                    };
                    (
                        Ask::Hold,
                        format!(
                            "scale-in held: removing one instance would put the metric at {} > {} target",
                            show(after), show(p.target)
                        ),
                    )
                }
            }
            Some(v) if v > p.target => (
                Ask::Hold,
                format!(
                    "high alarm pending: {} > {} target for {above} of {hn} periods",
                    show(v),
                    show(p.target)
                ),
            ),
            Some(v) if v < low_threshold => (
                Ask::Hold,
                format!(
                    "low alarm pending: {} < {} for {below} of {ln} periods",
                    show(v),
                    show(low_threshold)
                ),
            ),
            Some(v) => (
                Ask::Hold,
                format!(
                    "no change: {} is between the low alarm ({}) and the target ({})",
                    show(v),
                    show(low_threshold),
                    show(p.target)
                ),
            ),
        };
        let proposed = match ask {
            Ask::ScaleOut(n) => self.group.clamp(n.max(desired)),
            Ask::ScaleIn(n) => self.group.clamp(n),
            Ask::Hold => desired,
        };
        (
            Evaluation {
                policy: p.name.clone(),
                metric: p.metric.name().to_string(),
                target: p.target,
                value: value.map(round1),
                per_instance,
                excluded,
                current: desired,
                desired: proposed,
                rule,
            },
            ask,
        )
    }

    /// Several policies: out if any asks (largest capacity wins); in only if every policy with
    /// scale-in enabled asks (largest capacity wins); never outside min/max.
    fn combine(&self, desired: u32, asks: &[(Policy, Ask)]) -> (u32, String) {
        let g = &self.group;
        let outs: Vec<(&Policy, u32)> = asks
            .iter()
            .filter_map(|(p, a)| match a {
                Ask::ScaleOut(n) => Some((p, *n)),
                _ => None,
            })
            .collect();
        if let Some((p, n)) = outs.iter().max_by_key(|(_, n)| *n) {
            let new = g.clamp((*n).max(desired));
            let why = if new < *n {
                format!("{} asks for {n}; held at MaxSize {}", p.name, g.max)
            } else if outs.len() > 1 {
                format!("{} asks for the largest capacity, {n}", p.name)
            } else {
                format!("{} asks for {n}", p.name)
            };
            return (new, format!("scale-out {desired} -> {new}: {why}"));
        }
        let voters: Vec<&(Policy, Ask)> =
            asks.iter().filter(|(p, _)| !p.disable_scale_in).collect();
        let ins: Vec<(&Policy, u32)> = voters
            .iter()
            .filter_map(|(p, a)| match a {
                Ask::ScaleIn(n) => Some((p, *n)),
                _ => None,
            })
            .collect();
        if !voters.is_empty() && ins.len() == voters.len() {
            let (p, n) = ins
                .iter()
                .max_by_key(|(_, n)| *n)
                .expect("voters not empty");
            let new = g.clamp(*n);
            if new < desired {
                let why = if new > *n {
                    format!("{} asks for {n}; held at MinSize {}", p.name, g.min)
                } else if ins.len() > 1 {
                    format!(
                        "every policy is ready to scale in; {} asks for the largest capacity, {n}",
                        p.name
                    )
                } else {
                    format!("{} asks for {n}", p.name)
                };
                return (new, format!("scale-in {desired} -> {new}: {why}"));
            }
            return (desired, format!("no change: at MinSize {}", g.min));
        }
        if desired < g.min || desired > g.max {
            let new = g.clamp(desired);
            return (
                new,
                format!(
                    "desired capacity {desired} is outside MinSize {} .. MaxSize {}: {new}",
                    g.min, g.max
                ),
            );
        }
        if !ins.is_empty() {
            let waiting: Vec<&str> = voters
                .iter()
                .filter(|(_, a)| !matches!(a, Ask::ScaleIn(_)))
                .map(|(p, _)| p.name.as_str())
                .collect();
            return (
                desired,
                format!(
                    "scale-in held: {} not ready to scale in (scale-in needs every policy)",
                    waiting.join(", ")
                ),
            );
        }
        (desired, "no change".to_string())
    }
}

#[cfg(test)]
mod tests;

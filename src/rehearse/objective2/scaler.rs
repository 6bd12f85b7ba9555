//! The platform's loops of the objective 2 rehearsal: the target group's health checks (which
//! register and deregister targets at the router) and the auto-scaling group's target tracking
//! (one evaluation per metric period of platform time: each instance's CPU from its CPU group,
//! each target's requests from the router's log, the algorithm of
//! `rehearse::autoscale::target_tracking`, then launches or drains to the new capacity).

use super::front::RequestCounter;
use super::{lock, By, Fleet, Shared, TargetState};
use crate::rehearse::autoscale::target_tracking::{self, Metric, Phase, TargetTracking};
use crate::rehearse::autoscale::{CpuMeter, Entry, InstanceEventKind, InstanceState};
use crate::rehearse::{say, Differences, Options, Scaling};
use anyhow::Result;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lists what the rehearsal's auto-scaling does differently from AWS.
pub(super) fn add_differences(
    diffs: &mut Differences,
    scaling: &super::cloudformation::Scaling,
    meter: &CpuMeter,
    opts: &Options,
) {
    let ts = opts.time_scale;
    diffs.add(
        "time",
        "real time",
        if ts.factor() == 1.0 {
            "real time (speed it up with --time-scale N)".to_string()
        } else {
            format!(
                "{} platform seconds per real second (--time-scale): every period, warm-up, delay and health-check interval of the platform is divided by it; the load and the CPU work are real",
                ts.factor()
            )
        },
    );
    diffs.add(
        "instance CPU",
        "the instance type's vCPUs; CPUUtilization measured by the hypervisor (credits of burstable types included)",
        meter.describe(),
    );
    diffs.add(
        "instance launch",
        "EC2 launch, boot, user-data, image pull: minutes",
        "a process start: seconds; the launch lifecycle hook completes when /readyz answers through the instance's nginx, as bookstore-boot does",
    );
    let g = &scaling.group;
    let policies: Vec<String> = scaling
        .policies
        .iter()
        .map(|p| format!("{} ({} target {})", p.name, p.metric.name(), p.target))
        .collect();
    diffs.add(
        "auto-scaling group",
        format!(
            "{} MinSize {} MaxSize {} DesiredCapacity {}; target tracking: {}",
            scaling.group_id,
            g.min,
            g.max,
            scaling.desired,
            if policies.is_empty() {
                "none".to_string()
            } else {
                policies.join(", ")
            }
        ),
        match opts.scaling {
            Scaling::Autoscaler => "the rehearsal's autoscaler follows the rendered policies; every evaluation and action goes to decisions.jsonl and the status URL".to_string(),
            Scaling::Manual => "scaled by hand (--manual: `+`/`-`), each step logged as `manual`; the policies do not act".to_string(),
        },
    );
    if opts.scaling == Scaling::Autoscaler {
        let alarms = scaling.alarms();
        diffs.add(
            "target tracking alarms and formula",
            "CloudWatch alarms created and evaluated by AWS (not published)",
            format!(
                "{}; one datapoint per {}",
                alarms.describe(),
                ts.describe(alarms.period_secs)
            ),
        );
        for p in &scaling.policies {
            let warm = g.warmup_for(p);
            diffs.add(
                format!("instance warm-up ({})", p.name),
                format!(
                    "{warm} s ({})",
                    if p.estimated_warmup.is_some() {
                        "EstimatedInstanceWarmup"
                    } else if g.default_warmup.is_some() {
                        "DefaultInstanceWarmup"
                    } else {
                        "no warm-up set: DefaultCooldown"
                    }
                ),
                ts.describe(warm),
            );
            match p.metric {
                Metric::AsgAverageCpuUtilization => diffs.add(
                    "ASGAverageCPUUtilization",
                    "average of the instances' CPUUtilization (EC2 metrics per period)",
                    "average of each counted instance's CPU time over the period / its capacity (the shop and its nginx)",
                ),
                Metric::AlbRequestCountPerTarget => diffs.add(
                    "ALBRequestCountPerTarget",
                    "requests completed per target per minute (ALB metrics)",
                    "requests the router sent each counted target (its access log), per real minute: the load is real, only the platform's clock is scaled",
                ),
            }
        }
    }
    diffs.add(
        "termination policy",
        "Default (balance AZs, oldest launch template, closest to the next billing hour)",
        "the oldest instance first",
    );
    diffs.add(
        "unhealthy instances",
        match scaling.health_check_type.as_str() {
            "ELB" => format!(
                "HealthCheckType ELB: replaced when the target group's check fails, after HealthCheckGracePeriod {} s",
                scaling.health_check_grace.unwrap_or(0.0)
            ),
            t => format!(
                "HealthCheckType {t}: replaced when EC2's status checks fail or bookstore-liveness (/healthz, 4 failures 30 s apart) reports Unhealthy; the target group's check only routes"
            ),
        },
        match scaling.health_check_type.as_str() {
            "ELB" => "the same: terminated, then a new one launched (no EC2 status checks)".to_string(),
            _ => "replaced when /healthz through its nginx fails for 120 platform seconds of target group checks (no EC2 status checks)".to_string(),
        },
    );
}

/// The target group's health checks, every `interval`.
pub(super) fn spawn_health_checks(s: Arc<Shared>, interval: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        while !s.stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let targets: Vec<(u32, u16)> = lock(&s.fleet)
                .instances
                .iter()
                .filter(|(_, i)| i.state != TargetState::Draining)
                .map(|(seq, i)| (*seq, i.nginx_port))
                .collect();
            let elb = s.scaling.health_check_type == "ELB";
            let get_ok = |port: u16, path: &str| {
                matches!(
                    crate::rehearse::supervise::http_get(port, path, Duration::from_secs(2)),
                    Ok((200, _))
                )
            };
            // (seq, target group check, liveness): bookstore-liveness asks /healthz through
            // the instance's nginx when the group's health check type is EC2.
            let results: Vec<(u32, bool, bool)> = targets
                .into_iter()
                .map(|(seq, port)| {
                    let ok = get_ok(port, &s.health.path);
                    let live = elb || get_ok(port, "/healthz");
                    (seq, ok, live)
                })
                .collect();
            let mut replace: Vec<(String, String)> = Vec::new();
            {
                let mut f = lock(&s.fleet);
                let before = f.routed.clone();
                let grace = s
                    .clock
                    .scale()
                    .real_secs(s.scaling.health_check_grace.unwrap_or(0.0));
                for (seq, ok, live) in results {
                    let Some(i) = f.instances.get_mut(&seq) else {
                        continue;
                    };
                    if i.state == TargetState::Draining {
                        continue;
                    }
                    i.live_fail_streak = if live { 0 } else { i.live_fail_streak + 1 };
                    if !elb && i.live_fail_streak >= liveness_checks(s.health.interval_on_aws) {
                        replace.push((
                            i.id.clone(),
                            format!(
                                "bookstore-liveness: /healthz failed {} checks in a row",
                                i.live_fail_streak
                            ),
                        ));
                    }
                    if ok {
                        i.ok_streak += 1;
                        i.fail_streak = 0;
                        if i.state != TargetState::Healthy && i.ok_streak >= s.health.healthy {
                            i.state = TargetState::Healthy;
                        }
                    } else {
                        i.fail_streak += 1;
                        i.ok_streak = 0;
                        if i.state == TargetState::Healthy && i.fail_streak >= s.health.unhealthy {
                            i.state = TargetState::Unhealthy;
                            say(s.verbose, format!("health check: {} is unhealthy", i.id));
                        }
                        if elb
                            && i.state == TargetState::Unhealthy
                            && i.in_service_at.elapsed() >= grace
                        {
                            replace.push((
                                i.id.clone(),
                                format!("HealthCheckType ELB: {} failed", s.health.path),
                            ));
                        }
                    }
                }
                for (id, _) in &replace {
                    if let Some(i) = f.instances.values_mut().find(|i| &i.id == id) {
                        i.state = TargetState::Draining;
                    }
                }
                if let Err(e) = s.front.reconcile(&mut f) {
                    say(true, format!("load balancer reload failed: {e:#}"));
                }
                let events = routing_changes(&mut f, &before);
                drop(f);
                for (id, routed) in events {
                    s.event(
                        &id,
                        if routed {
                            InstanceEventKind::InService
                        } else {
                            InstanceEventKind::OutOfService
                        },
                    );
                }
                refresh_board(&s);
            }
            for (id, why) in replace {
                replace_unhealthy(&s, id, why);
            }
            let mut left = interval.saturating_sub(started.elapsed());
            while left > Duration::ZERO && !s.stop.load(Ordering::SeqCst) {
                let step = left.min(Duration::from_millis(50));
                std::thread::sleep(step);
                left = left.saturating_sub(step);
            }
        }
    })
}

/// Failed `/healthz` checks, one per target group interval, that make bookstore-liveness's 4
/// failures 30 s apart (rounded up).
fn liveness_checks(interval_on_aws: u64) -> u32 {
    (120u64.div_ceil(interval_on_aws.max(1))) as u32
}

/// The group replaces unhealthy instance `id` (already marked draining): it terminates it,
/// then launches another for the same desired capacity.
fn replace_unhealthy(s: &Arc<Shared>, id: String, why: String) {
    s.replaced.fetch_add(1, Ordering::SeqCst);
    say(
        true,
        format!("auto-scaling group: replacing unhealthy {id} ({why})"),
    );
    let worker = s.clone();
    let handle = std::thread::spawn(move || {
        if let Err(e) = worker.drain_instance(&id) {
            say(true, format!("{id}: termination failed: {e:#}"));
        }
        let desired = lock(&worker.fleet).desired;
        if let Err(e) = worker.set_desired(
            desired,
            format!("replacing unhealthy {id}: {why}"),
            By::Autoscaler,
        ) {
            say(true, format!("cannot replace {id}: {e:#}"));
        }
    });
    s.workers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(handle);
}

/// (id, now routed) for every live instance whose routing changed since `before`.
fn routing_changes(f: &mut Fleet, before: &[u16]) -> Vec<(String, bool)> {
    let routed = f.routed.clone();
    let mut out = Vec::new();
    for i in f.instances.values_mut() {
        if i.state == TargetState::Draining {
            continue;
        }
        let (was, is) = (
            before.contains(&i.nginx_port),
            routed.contains(&i.nginx_port),
        );
        if is && !was {
            i.routed_once = true;
            out.push((i.id.clone(), true));
        } else if was && !is {
            out.push((i.id.clone(), false));
        }
    }
    out
}

/// Brings `GET /status` up to date with the fleet.
pub(super) fn refresh_board(s: &Shared) {
    let warmup = s
        .scaling
        .policies
        .iter()
        .map(|p| s.scaling.group.warmup_for(p))
        .fold(s.scaling.group.default_warmup.unwrap_or(0.0), f64::max);
    let now = s.clock.platform_seconds();
    let states: Vec<(String, InstanceState)> = {
        let f = lock(&s.fleet);
        f.pending
            .values()
            .map(|(id, _)| (id.clone(), InstanceState::Pending))
            .chain(f.instances.values().map(|i| {
                let st = match i.state {
                    TargetState::Draining => InstanceState::Draining,
                    TargetState::Unhealthy => InstanceState::NotReady,
                    _ if !f.routed.contains(&i.nginx_port) => InstanceState::Pending,
                    _ if now - s.clock.at(i.in_service_at) < warmup => InstanceState::WarmingUp,
                    _ => InstanceState::InService,
                };
                (i.id.clone(), st)
            }))
            .collect()
    };
    let desired = lock(&s.fleet).desired;
    for (id, st) in &states {
        s.board.set_instance(id, *st);
    }
    s.board.update(|b| {
        b.desired = desired;
        b.instances
            .retain(|i| states.iter().any(|(id, _)| *id == i.id));
    });
}

/// The auto-scaling group's target tracking: one evaluation per metric period.
pub(super) fn spawn_autoscaler(s: Arc<Shared>) -> Result<JoinHandle<()>> {
    let scaling = &s.scaling;
    let mut tt = TargetTracking::new(
        scaling.group.clone(),
        scaling.policies.clone(),
        scaling.alarms(),
    );
    let period = s.clock.scale().real_secs(tt.alarms().period_secs);
    let mut counter = RequestCounter::new(&s.front.targets_log);
    Ok(std::thread::Builder::new()
        .name("autoscaler".into())
        .spawn(move || {
            let mut last = Instant::now();
            let mut next = last + period;
            loop {
                while Instant::now() < next {
                    if s.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20).min(next.saturating_duration_since(Instant::now())));
                }
                next += period;
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(last).as_secs_f64().max(1e-3);
                last = now;
                let counts = counter.take();
                let (instances, desired, live) = {
                    let mut f = lock(&s.fleet);
                    let routed = f.routed.clone();
                    let mut v: Vec<target_tracking::Instance> = Vec::new();
                    for i in f.instances.values_mut() {
                        let cpu = i
                            .cpu
                            .usage()
                            .ok()
                            .and_then(|u| i.sampler.sample(u, now, i.cpu.cores()));
                        let requests = routed
                            .contains(&i.nginx_port)
                            .then(|| *counts.get(&i.nginx_port).unwrap_or(&0) as f64 * 60.0 / elapsed);
                        v.push(target_tracking::Instance {
                            id: i.id.clone(),
                            phase: if i.state == TargetState::Draining {
                                Phase::Terminating
                            } else {
                                Phase::InService {
                                    since: s.clock.at(i.in_service_at),
                                }
                            },
                            cpu,
                            requests_per_minute: requests,
                        });
                    }
                    for (id, _) in f.pending.values() {
                        v.push(target_tracking::Instance {
                            id: id.clone(),
                            phase: Phase::Pending,
                            cpu: None,
                            requests_per_minute: None,
                        });
                    }
                    (v, f.desired, f.live())
                };
                let out = tt.evaluate(s.clock.at(now), desired, &instances);
                for ev in out.evaluations {
                    say(s.verbose, format!("autoscaler: {}: {}", ev.policy, ev.rule));
                    s.record(Entry::Evaluation(ev));
                }
                let result = if out.desired != desired {
                    s.set_desired(out.desired, out.rule, By::Autoscaler)
                } else if live < desired {
                    s.set_desired(
                        desired,
                        format!("{live} instance(s) for a desired capacity of {desired}: launching replacements (a launch failed)"),
                        By::Autoscaler,
                    )
                } else {
                    Ok(Vec::new())
                };
                if let Err(e) = result {
                    say(true, format!("autoscaler: cannot act: {e:#}"));
                }
                refresh_board(&s);
            }
        })?)
}

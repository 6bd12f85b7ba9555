//! Tests of [`super`], from the platform's documented examples and edge cases.
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

//! Tests of [`super`], from the platform's documented examples and edge cases.
use super::*;

fn cpu_policy(target: f64) -> Policy {
    Policy {
        name: "CpuScalingPolicy".into(),
        metric: Metric::AsgAverageCpuUtilization,
        target,
        disable_scale_in: false,
        estimated_warmup: None,
    }
}

fn group(min: u32, max: u32) -> Group {
    Group {
        min,
        max,
        default_warmup: Some(120.0),
        default_cooldown: 300.0,
    }
}

fn tt(min: u32, max: u32, policies: Vec<Policy>) -> TargetTracking {
    TargetTracking::new(group(min, max), policies, AlarmModel::for_monitoring(true))
}

/// `n` instances in service since platform second 0 at `cpu` percent each.
fn steady(n: usize, cpu: f64) -> Vec<Instance> {
    (1..=n)
        .map(|k| Instance {
            id: format!("i-{k}"),
            phase: Phase::InService { since: 0.0 },
            cpu: Some(cpu),
            requests_per_minute: Some(100.0),
        })
        .collect()
}

/// Runs `periods` evaluations one minute apart from platform second `start`.
fn run(
    t: &mut TargetTracking,
    start: f64,
    periods: usize,
    desired: u32,
    inst: &[Instance],
) -> Vec<Outcome> {
    (0..periods)
        .map(|k| t.evaluate(start + 60.0 * k as f64, desired, inst))
        .collect()
}

#[test]
fn scales_out_proportionally_after_three_datapoints_above_the_target() {
    // The guide's example: two instances, a 50% target.
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let out = run(&mut t, 600.0, 3, 2, &steady(2, 87.0));
    assert_eq!(out[0].desired, 2, "{}", out[0].evaluations[0].rule);
    assert!(out[1].evaluations[0]
        .rule
        .starts_with("high alarm pending: 87% > 50% target for 2 of 3"));
    // ceil(2 x 87 / 50) = ceil(3.48) = 4: out by two at once, not one by one.
    assert_eq!(out[2].desired, 4);
    assert!(
        out[2].evaluations[0]
            .rule
            .starts_with("scale-out: 87% > 50% target"),
        "{}",
        out[2].evaluations[0].rule
    );
    assert_eq!(out[2].rule, "scale-out 2 -> 4: CpuScalingPolicy asks for 4");
}

#[test]
fn rounds_up_on_scale_out_and_never_goes_above_max() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let out = run(&mut t, 600.0, 3, 2, &steady(2, 60.0));
    // 2 x 60 / 50 = 2.4 -> 3 ("we round up ... 1.5 instances -> two").
    assert_eq!(out[2].desired, 3);
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let out = run(&mut t, 600.0, 3, 4, &steady(4, 100.0));
    assert_eq!(out[2].desired, 6, "8 asked, MaxSize 6");
    assert!(out[2].rule.contains("held at MaxSize 6"), "{}", out[2].rule);
}

#[test]
fn warming_instances_are_not_counted_but_count_towards_desired() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let mut inst = steady(2, 90.0);
    for k in 3..=4 {
        inst.push(Instance {
            id: format!("i-{k}"),
            phase: Phase::InService { since: 700.0 },
            cpu: Some(100.0), // start-up work: must not count
            requests_per_minute: Some(10.0),
        });
    }
    let out = run(&mut t, 600.0, 3, 4, &inst);
    let ev = &out[2].evaluations[0];
    assert_eq!(ev.value, Some(90.0));
    assert_eq!(ev.per_instance.len(), 2);
    assert!(
        ev.excluded["i-3"].starts_with("warming up"),
        "{:?}",
        ev.excluded
    );
    // ceil(2 x 90 / 50) = 4 = the desired capacity already: no more instances.
    assert_eq!(out[2].desired, 4);
    assert!(ev.rule.starts_with("scale-out covered"), "{}", ev.rule);
}

#[test]
fn all_instances_warming_up_means_no_data_and_no_action() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let inst: Vec<Instance> = steady(2, 95.0)
        .into_iter()
        .map(|mut i| {
            i.phase = Phase::InService { since: 150.0 };
            i
        })
        .collect();
    let out = run(&mut t, 110.0, 3, 2, &inst);
    for o in &out {
        assert_eq!(o.desired, 2);
        assert_eq!(o.evaluations[0].value, None);
        assert!(
            o.evaluations[0].rule.starts_with("no data"),
            "{}",
            o.evaluations[0].rule
        );
    }
}

#[test]
fn a_missing_datapoint_resets_the_alarm() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let hot = steady(2, 90.0);
    let mut silent = steady(2, 90.0);
    for i in &mut silent {
        i.cpu = None;
    }
    t.evaluate(600.0, 2, &hot);
    t.evaluate(660.0, 2, &hot);
    let o = t.evaluate(720.0, 2, &silent);
    assert_eq!(o.desired, 2);
    assert!(o.evaluations[0].rule.starts_with("no data"));
    let o = t.evaluate(780.0, 2, &hot);
    assert_eq!(
        o.desired, 2,
        "needs 3 datapoints again: {}",
        o.evaluations[0].rule
    );
}

#[test]
fn scales_in_only_after_fifteen_low_datapoints_and_only_when_it_keeps_the_target() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let out = run(&mut t, 600.0, 15, 4, &steady(4, 20.0));
    for o in &out[..14] {
        assert_eq!(o.desired, 4, "{}", o.evaluations[0].rule);
    }
    assert!(out[13].evaluations[0]
        .rule
        .starts_with("low alarm pending: 20% < 35% for 14 of 15"));
    // ceil(4 x 20 / 50) = ceil(1.6) = 2.
    assert_eq!(out[14].desired, 2, "{}", out[14].evaluations[0].rule);
    assert!(out[14].evaluations[0]
        .rule
        .starts_with("scale-in: 20% < 35%"));

    // Low, but removing one instance would overshoot the target: held.
    let mut t = tt(1, 6, vec![cpu_policy(50.0)]);
    let out = run(&mut t, 600.0, 15, 2, &steady(2, 31.0));
    assert_eq!(out[14].desired, 2);
    assert_eq!(
        out[14].evaluations[0].rule,
        "scale-in held: removing one instance would put the metric at 62% > 50% target"
    );
}

#[test]
fn never_below_min_and_min_equal_max_never_moves() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let out = run(&mut t, 600.0, 15, 3, &steady(3, 1.0));
    assert_eq!(out[14].desired, 2);
    assert!(
        out[14].rule.contains("held at MinSize 2"),
        "{}",
        out[14].rule
    );
    let mut t = tt(3, 3, vec![cpu_policy(50.0)]);
    for o in run(&mut t, 600.0, 20, 3, &steady(3, 99.0)) {
        assert_eq!(o.desired, 3);
    }
    let mut t = tt(3, 3, vec![cpu_policy(50.0)]);
    for o in run(&mut t, 600.0, 20, 3, &steady(3, 1.0)) {
        assert_eq!(o.desired, 3);
    }
}

#[test]
fn instances_warming_up_block_scale_in() {
    let mut t = tt(1, 6, vec![cpu_policy(50.0)]);
    let mut inst = steady(3, 5.0);
    inst[2].phase = Phase::InService { since: 1400.0 };
    let out = run(&mut t, 600.0, 15, 3, &inst);
    let last = out.last().unwrap();
    assert_eq!(last.desired, 3);
    assert!(
        last.evaluations[0]
            .rule
            .starts_with("scale-in held: i-3 is warming up"),
        "{}",
        last.evaluations[0].rule
    );
    let mut t = tt(1, 6, vec![cpu_policy(50.0)]);
    inst[2].phase = Phase::Pending;
    let out = run(&mut t, 600.0, 15, 3, &inst);
    assert!(out[14].evaluations[0].rule.contains("i-3 is launching"));
}

#[test]
fn the_policy_asking_for_the_largest_capacity_wins_and_scale_in_needs_all() {
    let req = Policy {
        name: "RequestScalingPolicy".into(),
        metric: Metric::AlbRequestCountPerTarget,
        target: 1000.0,
        disable_scale_in: false,
        estimated_warmup: Some(60.0),
    };
    let mut t = tt(2, 10, vec![cpu_policy(50.0), req.clone()]);
    let mut inst = steady(2, 60.0); // CPU asks ceil(2.4) = 3
    for i in &mut inst {
        i.requests_per_minute = Some(2600.0); // requests ask ceil(5.2) = 6
    }
    let out = run(&mut t, 600.0, 3, 2, &inst);
    assert_eq!(out[2].desired, 6);
    assert_eq!(out[2].evaluations[0].desired, 3);
    assert_eq!(out[2].evaluations[1].desired, 6);
    assert!(out[2]
        .rule
        .contains("RequestScalingPolicy asks for the largest capacity, 6"));

    // CPU is low, requests are not: no scale-in.
    let mut t = tt(2, 10, vec![cpu_policy(50.0), req.clone()]);
    let mut inst = steady(4, 10.0);
    for i in &mut inst {
        i.requests_per_minute = Some(900.0);
    }
    let out = run(&mut t, 600.0, 15, 4, &inst);
    assert_eq!(out[14].desired, 4);
    assert!(
        out[14]
            .rule
            .contains("RequestScalingPolicy not ready to scale in"),
        "{}",
        out[14].rule
    );

    // Both low: the larger of the two capacities.
    let mut t = tt(1, 10, vec![cpu_policy(50.0), req]);
    let mut inst = steady(6, 10.0); // CPU: ceil(1.2) = 2
    for i in &mut inst {
        i.requests_per_minute = Some(500.0); // requests: ceil(3.0) = 3
    }
    let out = run(&mut t, 600.0, 15, 6, &inst);
    assert_eq!(out[14].desired, 3, "{}", out[14].rule);
}

#[test]
fn disable_scale_in_keeps_capacity_and_leaves_the_vote_to_others() {
    let mut p = cpu_policy(50.0);
    p.disable_scale_in = true;
    let mut t = tt(1, 6, vec![p]);
    let out = run(&mut t, 600.0, 16, 4, &steady(4, 5.0));
    assert!(out.iter().all(|o| o.desired == 4));
    assert!(out[15].evaluations[0].rule.starts_with("scale-in disabled"));
}

#[test]
fn warmup_precedence_policy_then_group_then_cooldown() {
    let mut g = group(1, 2);
    let mut p = cpu_policy(50.0);
    assert_eq!(g.warmup_for(&p), 120.0);
    p.estimated_warmup = Some(30.0);
    assert_eq!(g.warmup_for(&p), 30.0);
    p.estimated_warmup = None;
    g.default_warmup = None;
    assert_eq!(g.warmup_for(&p), 300.0);
}

#[test]
fn below_min_is_raised_to_min() {
    let mut t = tt(2, 6, vec![cpu_policy(50.0)]);
    let o = t.evaluate(60.0, 1, &steady(1, 40.0));
    assert_eq!(o.desired, 2);
    assert!(o.rule.contains("outside MinSize 2"), "{}", o.rule);
}

//! `bookstore cost`: each line follows the pinned price table and its formula, totals add up,
//! and bad input (unknown region, objective or instance type) is refused with exit 2.

use bookstore::blueprints::Objective;
use bookstore::cost::prices::{self, price_of, HOURS_PER_MONTH};
use bookstore::cost::{estimate, format, Assumptions};
use bookstore::spec::{parse, Spec, SpecSource};

fn bookstore(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bookstore"))
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run bookstore");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'e>(e: &'e bookstore::cost::Estimate, item: &str) -> &'e bookstore::cost::Line {
    e.lines
        .iter()
        .find(|l| l.item.starts_with(item))
        .unwrap_or_else(|| panic!("no line `{item}` in {e:#?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn objective2_lines_follow_the_price_table_at_min_and_max_scale() {
    let spec = parse(
        "project:\n  region: eu-west-1\nobjective2:\n  min_size: 2\n  desired_capacity: 3\n  max_size: 7\n  instance_type: t3.medium\n",
        SpecSource::Embedded,
    )
    .unwrap();
    let e = estimate(&spec, Objective::Objective2, &Assumptions::default()).unwrap();
    let p = prices::region("eu-west-1").unwrap();
    let h = price_of(p.ec2, "t3.medium").unwrap();
    let ec2 = line(&e, "EC2 t3.medium");
    assert!(
        close(ec2.min, h * HOURS_PER_MONTH * 2.0) && close(ec2.max, h * HOURS_PER_MONTH * 7.0),
        "{ec2:?}"
    );
    assert_eq!(
        ec2.formula,
        format!("{h} $/h × 730 h × 2 (min) .. 7 (max) instances; desired 3")
    );
    let rds = line(&e, "RDS MySQL db.t4g.micro");
    let class = price_of(p.rds, "db.t4g.micro").unwrap();
    assert!(
        close(rds.min, class * HOURS_PER_MONTH * 2.0),
        "Multi-AZ doubles the class: {rds:?}"
    );
    assert!(close(
        line(&e, "NAT gateways").min,
        2.0 * p.nat_hour * HOURS_PER_MONTH
    ));
    assert!(close(
        e.total_min(),
        e.lines.iter().map(|l| l.min).sum::<f64>()
    ));
    assert!(e.total_max() > e.total_min());
    let table = format(&e);
    assert!(table.starts_with(&format!(
        "objective2 in eu-west-1: monthly on-demand estimate, USD (prices pinned {}; 730 h a month)\n",
        prices::PRICES_AS_OF
    )), "{table}");
    assert!(
        table.contains(&format!("{:>9.2}  {:>9.2}\n", e.total_min(), e.total_max())),
        "{table}"
    );

    let single = parse("database:\n  multi_az: false\n", SpecSource::Embedded).unwrap();
    let e1 = estimate(&single, Objective::Objective2, &Assumptions::default()).unwrap();
    let us = prices::region("us-east-1").unwrap();
    assert!(close(
        line(&e1, "RDS MySQL").min,
        price_of(us.rds, "db.t4g.micro").unwrap() * HOURS_PER_MONTH
    ));
}

#[test]
fn vpc_endpoints_are_counted_from_the_rendered_template() {
    let spec = parse(
        "objective2:\n  network:\n    vpc_endpoints: true\n",
        SpecSource::Embedded,
    )
    .unwrap();
    let rendered = bookstore::render::render(
        &spec,
        &bookstore::blueprints::Source::Embedded,
        Objective::Objective2,
        "out",
    )
    .unwrap();
    let cfn = &rendered
        .files
        .iter()
        .find(|f| f.path == "cloudformation.yaml")
        .unwrap()
        .content;
    let n = cfn.matches("VpcEndpointType: Interface").count();
    assert!(n >= 5, "{n} interface endpoints rendered");
    let e = estimate(&spec, Objective::Objective2, &Assumptions::default()).unwrap();
    let l = line(&e, "VPC interface endpoints");
    assert!(
        close(l.min, n as f64 * 2.0 * 0.01 * HOURS_PER_MONTH),
        "{l:?}"
    );
    let without = estimate(
        &Spec::default(),
        Objective::Objective2,
        &Assumptions::default(),
    )
    .unwrap();
    assert!(without
        .lines
        .iter()
        .all(|l| !l.item.starts_with("VPC interface")));
}

#[test]
fn every_objective_prints_a_table_with_formulas_and_totals() {
    for o in ["objective1", "objective2", "objective3"] {
        let (code, out, err) = bookstore(&["cost", o]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("FORMULA") && out.contains("TOTAL") && out.contains("$/h × 730 h"),
            "{out}"
        );
    }
    let (_, out, _) = bookstore(&["cost", "objective3"]);
    assert!(out.contains("EKS control plane"), "{out}");
    assert!(out.contains("30 GB (eks/cluster.yaml volumeSize)"), "{out}");
}

#[test]
fn an_unknown_region_is_refused_clearly() {
    let (code, _, err) = bookstore(&["cost", "objective2", "--set", "project.region=ap-south-1"]);
    assert_eq!(code, 2);
    assert!(err.contains("error: `project.region`: no pinned prices for `ap-south-1`; the table knows us-east-1, us-east-2, us-west-2, eu-west-1"), "{err}");
}

#[test]
fn an_unknown_objective_or_instance_type_is_refused() {
    let (code, _, err) = bookstore(&["cost", "objective4"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'objective4'"), "{err}");
    let (code, _, err) = bookstore(&[
        "cost",
        "objective1",
        "--set",
        "objective1.instance_type=x9.huge",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "`objective1.instance_type`: no pinned price for instance type `x9.huge` in us-east-1"
        ),
        "{err}"
    );
}

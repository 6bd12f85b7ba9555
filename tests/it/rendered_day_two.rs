//! Issue 14 on day two, in the rendered files: objective 1's logs and alarms, the images' registry,
//! and what `--explain` says of a field objective 2 no longer renders.

use super::specs;

/// The resource of `kind` named `name` in a rendered CloudFormation template.
fn resource<'a>(cfn: &'a serde_yaml::Value, name: &str, kind: &str) -> &'a serde_yaml::Value {
    let r = &cfn["Resources"][name];
    assert_eq!(r["Type"].as_str(), Some(kind), "{name}: {r:?}");
    &r["Properties"]
}

/// A template's YAML with the short-form intrinsics (`!Ref`, `!Sub`) as plain values.
fn cfn_yaml(text: &str) -> serde_yaml::Value {
    let plain: String = text
        .lines()
        .map(|l| {
            l.replace("!Ref ", "")
                .replace("!Sub ", "")
                .replace("!GetAtt ", "")
                .replace("!If ", "")
                .replace("!Not ", "")
                .replace("!Equals ", "")
        })
        .collect::<Vec<_>>()
        .join("\n");
    serde_yaml::from_str(&plain).expect("the template is YAML")
}

/// Issue 14 item 2 for objective 1: logs in a stack log group with retention, written by the
/// containers (awslogs) and by the boot (the same ship_boot_log as objective 2), and the
/// status-check alarms that recover or reboot the VM.
#[test]
fn objective1_ships_its_logs_and_recovers_a_failed_host() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        let text = specs::file(&rendered, "objective1", "cloudformation.yaml");
        let cfn = cfn_yaml(text);
        let group = resource(&cfn, "LogGroup", "AWS::Logs::LogGroup");
        assert!(
            group["RetentionInDays"].as_u64().is_some(),
            "{name}: retention"
        );
        assert!(
            text.contains("- logs:CreateLogStream\n                  - logs:PutLogEvents\n                Resource: !Sub \"${LogGroup.Arn}:*\""),
            "{name}: the role writes to its log group only"
        );
        let system = resource(&cfn, "SystemStatusAlarm", "AWS::CloudWatch::Alarm");
        assert_eq!(
            system["MetricName"].as_str(),
            Some("StatusCheckFailed_System")
        );
        assert!(
            system["AlarmActions"][0]
                .as_str()
                .unwrap()
                .ends_with(":ec2:recover"),
            "{name}: {system:?}"
        );
        let compose = specs::file(&rendered, "objective1", "docker-compose.yml");
        let doc: serde_yaml::Value = serde_yaml::from_str(compose).unwrap();
        for svc in ["app", "db"] {
            let log = &doc["services"][svc]["logging"];
            assert_eq!(log["driver"].as_str(), Some("awslogs"), "{name}: {svc}");
            assert_eq!(
                log["options"]["awslogs-group"].as_str(),
                Some("${LOG_GROUP}")
            );
        }
        let setup = specs::file(&rendered, "objective1", "scripts/setup.sh");
        let boot = specs::file(&rendered, "objective2", "scripts/boot.sh");
        let ship = |s: &str| {
            let a = s.find("ship_boot_log() {").expect("ship_boot_log");
            s[a..a + s[a..].find("\n}\n").unwrap()].to_string()
        };
        assert_eq!(
            ship(setup),
            ship(boot),
            "{name}: one ship_boot_log for both"
        );
        assert!(setup.contains("LOG_GROUP=\"/$stack/vm\""), "{name}");
        assert!(text.contains("LogGroupName: !Sub \"/${AWS::StackName}/vm\""));
    }
}

/// Issue 14 item 6: nginx and MySQL come from ECR Public mirrors of the official images (no
/// anonymous Docker Hub pull limit through shared NAT addresses) by default.
#[test]
fn default_nginx_and_mysql_images_come_from_ecr_public() {
    let spec = bookstore::spec::embedded_default();
    let rendered = specs::render(&spec);
    let o1: serde_yaml::Value =
        serde_yaml::from_str(specs::file(&rendered, "objective1", "docker-compose.yml")).unwrap();
    assert_eq!(
        o1["services"]["db"]["image"].as_str(),
        Some("public.ecr.aws/docker/library/mysql:8.4.7")
    );
    let o2: serde_yaml::Value =
        serde_yaml::from_str(specs::file(&rendered, "objective2", "docker-compose.yml")).unwrap();
    assert_eq!(
        o2["services"]["nginx"]["image"].as_str(),
        Some("public.ecr.aws/nginx/nginx:1.28.0-alpine")
    );
    let swarm: serde_yaml::Value = serde_yaml::from_str(specs::file(
        &rendered,
        "objective3",
        "swarm/docker-stack.yml",
    ))
    .unwrap();
    assert_eq!(
        swarm["services"]["edge"]["image"].as_str(),
        Some("public.ecr.aws/nginx/nginx:1.28.0-alpine")
    );
}

/// Issue 14 item 10's leftover: objective 2 renders no `DesiredCapacity`, so `--explain` must not
/// call `objective2.desired_capacity` honoured: it says what it still does.
#[test]
fn explain_says_objective2_desired_capacity_is_only_the_rolling_minimum() {
    use bookstore::blueprints::{Objective, Source};
    use bookstore::explain::{self, Fidelity};
    let report = explain::report(&Source::Embedded, Objective::Objective2).unwrap();
    let (_, fid) = report
        .iter()
        .find(|(f, _)| f == "objective2.desired_capacity")
        .expect("a row for objective2.desired_capacity");
    match fid {
        Fidelity::Degraded(files, how) => {
            assert!(how.contains("no `DesiredCapacity` is rendered"), "{how}");
            assert!(how.contains("MinInstancesInService"), "{how}");
            assert_eq!(files, &["objective2/cloudformation.yaml".to_string()]);
        }
        other => panic!("objective2.desired_capacity: {other:?}"),
    }
    let cfn = specs::file(
        &specs::render(&bookstore::spec::embedded_default()),
        "objective2",
        "cloudformation.yaml",
    )
    .to_string();
    assert!(
        !cfn.contains("\n      DesiredCapacity:"),
        "no DesiredCapacity"
    );
}

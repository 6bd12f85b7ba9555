//! Objectives 1 and 2: the VM, the auto-scaling group and its network.

use super::checker::{sizes, Checker};
use super::formats::*;
use crate::spec::vm_os::{self, VmOs};
use crate::spec::Spec;
use ipnet::Ipv4Net;

/// Checks `objective1` and `objective2`.
pub(super) fn check(c: &mut Checker, spec: &Spec) {
    let o1 = &spec.objective1;
    c.pattern(
        "objective1.instance_type",
        &o1.instance_type,
        is_instance_type(&o1.instance_type),
        "an EC2 instance type such as `t3.small`",
    );
    c.pattern(
        "objective1.ami_parameter",
        &o1.ami_parameter,
        o1.ami_parameter.starts_with("/aws/service/"),
        "an SSM public AMI parameter starting with `/aws/service/`",
    );
    vm_os_checks(c, "objective1.ami_parameter", &o1.ami_parameter);
    if let (Some(archive), Some(wanted)) = (
        vm_os::nginx_version(&o1.ami_parameter),
        parse_version(&spec.nginx.version),
    ) {
        if parse_version(archive).is_some_and(|has| wanted > has) {
            c.fail(
                "nginx.version",
                format!(
                    "`{}` is newer than the nginx {archive} that objective 1's AMI ({}) installs \
                     from its archive; the site would use directives that nginx does not know: \
                     set `nginx.version: \"{archive}\"`",
                    spec.nginx.version,
                    VmOs::from_ami_parameter(&o1.ami_parameter).expect("a known OS"),
                ),
            );
        }
    }
    c.range(
        "objective1.root_volume_gb",
        o1.root_volume_gb,
        8,
        16_384,
        "the root volume (GiB)",
    );
    if o1.allowed_cidrs.is_empty() {
        c.fail(
            "objective1.allowed_cidrs",
            "must list at least one CIDR (`0.0.0.0/0` for everyone)",
        );
    }
    for (i, cidr) in o1.allowed_cidrs.iter().enumerate() {
        c.cidr(&format!("objective1.allowed_cidrs[{i}]"), cidr);
    }

    let o2 = &spec.objective2;
    c.pattern(
        "objective2.instance_type",
        &o2.instance_type,
        is_instance_type(&o2.instance_type),
        "an EC2 instance type such as `t3.small`",
    );
    c.pattern(
        "objective2.ami_parameter",
        &o2.ami_parameter,
        o2.ami_parameter.starts_with("/aws/service/"),
        "an SSM public AMI parameter starting with `/aws/service/`",
    );
    vm_os_checks(c, "objective2.ami_parameter", &o2.ami_parameter);
    sizes(
        c,
        "objective2",
        ("min_size", o2.min_size),
        ("desired_capacity", o2.desired_capacity),
        ("max_size", o2.max_size),
    );
    c.range(
        "objective2.target_cpu_percent",
        o2.target_cpu_percent,
        1,
        100,
        "a percentage",
    );
    if let Some(rps) = o2.target_requests_per_instance {
        c.range(
            "objective2.target_requests_per_instance",
            rps,
            1,
            1_000_000,
            "requests per instance per minute",
        );
    }
    c.range(
        "objective2.root_volume_gb",
        o2.root_volume_gb,
        8,
        16_384,
        "the root volume (GiB)",
    );
    c.range(
        "objective2.health_check_grace_seconds",
        o2.health_check_grace_seconds,
        0,
        7_200,
        "the health check grace period (seconds)",
    );
    c.range(
        "objective2.instance_warmup_seconds",
        o2.instance_warmup_seconds,
        0,
        3_600,
        "the instance warm-up (seconds)",
    );
    if let Some(arn) = &o2.certificate_arn {
        c.pattern(
            "objective2.certificate_arn",
            arn,
            is_acm_arn(arn),
            "an ACM certificate ARN such as `arn:aws:acm:us-east-1:123456789012:certificate/UUID`",
        );
    }
    for (path, image) in [
        ("objective2.nginx_image", &o2.nginx_image),
        ("objective2.aws_cli_image", &o2.aws_cli_image),
        ("objective1.aws_cli_image", &spec.objective1.aws_cli_image),
    ] {
        c.pattern(
            path,
            image,
            image
                .rsplit_once(':')
                .is_some_and(|(repo, tag)| is_image_repo(repo) && is_tag(tag) && tag != "latest"),
            "a pinned image such as `nginx:1.28.0-alpine` (repository:tag, not `latest`)",
        );
    }
    network(c, &o2.network);
    if let Some((path, message)) = crate::spec::capacity::check(spec) {
        c.fail(path, message);
    }
}

/// The AMI's OS must be one whose archive has what the VM scripts run (Compose v2, apt).
fn vm_os_checks(c: &mut Checker, path: &str, ami_parameter: &str) {
    if ami_parameter.starts_with("/aws/service/") {
        if let Some(why) = vm_os::unsupported(ami_parameter) {
            c.fail(path, format!("`{ami_parameter}` {why}"));
        }
    }
}

fn network(c: &mut Checker, n: &crate::spec::Network) {
    let base = "objective2.network";
    c.range(
        &format!("{base}.nat_gateways"),
        n.nat_gateways,
        1,
        2,
        "NAT gateways (1, or 2 for one per AZ)",
    );
    let docker_overlap = |c: &mut Checker, vpc: Option<Ipv4Net>| {
        // Objective 2's compose network on every instance; a VPC there would be unreachable.
        let edge: Ipv4Net = "172.30.81.0/24".parse().expect("CIDR");
        if let Some(vpc) =
            vpc.filter(|v| v.contains(&edge.network()) || edge.contains(&v.network()))
        {
            c.fail(
                format!("{base}.vpc_cidr"),
                format!("`{vpc}` overlaps 172.30.81.0/24, the instances' Docker network; pick another range"),
            );
        }
    };
    if let Some(vpc) = &n.existing_vpc_id {
        let cidr = c.cidr(&format!("{base}.vpc_cidr"), &n.vpc_cidr);
        docker_overlap(c, cidr);
        c.pattern(
            &format!("{base}.existing_vpc_id"),
            vpc,
            is_aws_id(vpc, "vpc-"),
            "a VPC ID such as `vpc-0123456789abcdef0`",
        );
        for (field, ids) in [
            ("existing_public_subnet_ids", &n.existing_public_subnet_ids),
            (
                "existing_private_subnet_ids",
                &n.existing_private_subnet_ids,
            ),
        ] {
            if ids.len() < 2 {
                c.fail(
                    format!("{base}.{field}"),
                    format!(
                        "an existing VPC needs at least two subnets in two AZs here, got {}",
                        ids.len()
                    ),
                );
            }
            for (i, id) in ids.iter().enumerate() {
                c.pattern(
                    &format!("{base}.{field}[{i}]"),
                    id,
                    is_aws_id(id, "subnet-"),
                    "a subnet ID such as `subnet-0123456789abcdef0`",
                );
            }
        }
        return;
    }
    if !n.existing_public_subnet_ids.is_empty() || !n.existing_private_subnet_ids.is_empty() {
        c.fail(format!("{base}.existing_vpc_id"), "existing subnet IDs are given but no `existing_vpc_id`; set it, or remove the subnet IDs to create a new VPC");
    }
    let vpc = c.cidr(&format!("{base}.vpc_cidr"), &n.vpc_cidr);
    docker_overlap(c, vpc);
    let mut seen: Vec<(String, Ipv4Net)> = Vec::new();
    for (field, list) in [
        ("public_subnet_cidrs", &n.public_subnet_cidrs),
        ("private_subnet_cidrs", &n.private_subnet_cidrs),
    ] {
        if list.len() != 2 {
            c.fail(
                format!("{base}.{field}"),
                format!(
                    "needs exactly two CIDRs (one per availability zone), got {}",
                    list.len()
                ),
            );
        }
        for (i, s) in list.iter().enumerate() {
            let path = format!("{base}.{field}[{i}]");
            let Some(net) = c.cidr(&path, s) else {
                continue;
            };
            if let Some(vpc) = vpc {
                if !vpc.contains(&net) {
                    c.fail(&path, format!("`{net}` is outside the VPC `{vpc}`"));
                }
            }
            if let Some((other, _)) = seen
                .iter()
                .find(|(_, o)| o.contains(&net.network()) || net.contains(&o.network()))
            {
                c.fail(&path, format!("`{net}` overlaps `{other}`"));
            }
            seen.push((path.clone(), net));
        }
    }
}

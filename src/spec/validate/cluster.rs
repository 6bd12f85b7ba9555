//! Objective 3 on a real cluster: the network, the add-ons' versions, the IDs.

use super::checker::Checker;
use super::formats::*;
use crate::spec::Spec;
use ipnet::Ipv4Net;

/// Objective 3 on a real cluster: the network, the add-ons' Kubernetes versions, the ingress
/// classes the blueprints can configure, the IDs the cluster file needs.
pub(super) fn check(c: &mut Checker, spec: &Spec) {
    let o3 = &spec.objective3;
    let b = "objective3";
    if let Some(v) = parse_version(&o3.eks.version).filter(|v| v.0 == 1) {
        let (lo, hi) = crate::addons::supported_minors();
        if !(lo..=hi).contains(&v.1) {
            let pins: Vec<String> = crate::addons::ALL
                .iter()
                .filter(|a| a.gates_version)
                .map(|a| {
                    format!(
                        "{} {} supports 1.{}-1.{}",
                        a.name, a.version, a.min_minor, a.max_minor
                    )
                })
                .collect();
            c.fail(
                format!("{b}.eks.version"),
                format!(
                    "Kubernetes {} is outside what the pinned add-ons support ({}); pick 1.{lo} to 1.{hi}",
                    o3.eks.version,
                    pins.join(", ")
                ),
            );
        }
    }
    if o3.routing == crate::spec::Routing::Ingress
        && !matches!(o3.ingress_class.as_str(), "nginx" | "traefik")
    {
        c.fail(
            format!("{b}.ingress_class"),
            format!(
                "the blueprints configure the HTTPS redirect, HSTS and the upload limit only for the `nginx` \
                 and `traefik` ingress classes, not `{}`; use one of them, or `routing: gateway`",
                o3.ingress_class
            ),
        );
    }
    let vpc = o3
        .vpc_cidr
        .parse::<Ipv4Net>()
        .ok()
        .filter(|n| n.trunc() == *n);
    let o2_vpc = spec.objective2.network.vpc_cidr.parse::<Ipv4Net>().ok();
    if let (Some(vpc), Some(o2)) = (vpc, o2_vpc) {
        if vpc != o2 && (vpc.contains(&o2.network()) || o2.contains(&vpc.network())) {
            c.fail(
                format!("{b}.vpc_cidr"),
                format!(
                    "`{vpc}` overlaps objective 2's VPC `{o2}` without being it: overlapping VPCs cannot be \
                     peered, so the cluster could not reach the database or EFS; use `{o2}` (the cluster \
                     joins objective 2's VPC) or a range that does not overlap it"
                ),
            );
        }
    }
    let edge: Ipv4Net = crate::render::SWARM_EDGE_SUBNET.parse().expect("CIDR");
    if let Some(vpc) = vpc.filter(|v| v.contains(&edge.network()) || edge.contains(&v.network())) {
        c.fail(
            format!("{b}.vpc_cidr"),
            format!(
                "`{vpc}` overlaps {edge}, the Swarm stack's overlay network; pick another range"
            ),
        );
    }
    let mut nets: Vec<(String, Ipv4Net)> = Vec::new();
    for (field, list) in [
        ("pod_subnet_cidrs", &o3.pod_subnet_cidrs),
        ("load_balancer_subnet_cidrs", &o3.load_balancer_subnet_cidrs),
    ] {
        if list.is_empty() {
            c.fail(format!("{b}.{field}"), "must list at least one CIDR");
        }
        for (i, s) in list.iter().enumerate() {
            let path = format!("{b}.{field}[{i}]");
            let Some(net) = c.cidr(&path, s) else {
                continue;
            };
            if let Some(vpc) = vpc.filter(|v| !v.contains(&net)) {
                c.fail(
                    &path,
                    format!("`{net}` is outside objective3.vpc_cidr `{vpc}`"),
                );
            }
            if let Some((other, _)) = nets
                .iter()
                .find(|(_, o)| o.contains(&net.network()) || net.contains(&o.network()))
            {
                c.fail(
                    &path,
                    format!(
                        "`{net}` overlaps `{other}`: the shop would believe X-Forwarded-For from the load \
                         balancer, i.e. whatever a client writes"
                    ),
                );
            }
            nets.push((path, net));
        }
    }
    c.pattern(
        "objective3.efs_access_point_id",
        &o3.efs_access_point_id,
        is_aws_id(&o3.efs_access_point_id, "fsap-"),
        "an EFS access point ID such as `fsap-0123456789abcdef0` (objective 2's UploadsAccessPointId output)",
    );
    if let Some(arn) = &o3.database_secret_arn {
        c.pattern(
            "objective3.database_secret_arn",
            arn,
            arn.starts_with("arn:aws") && arn.contains(":secretsmanager:") && arn.contains(":secret:"),
            "a Secrets Manager secret ARN such as `arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-...` \
             (objective 2's DatabaseSecretArn output)",
        );
    }
    if let Some(arn) = &o3.app_database_secret_arn {
        c.pattern(
            "objective3.app_database_secret_arn",
            arn,
            arn.starts_with("arn:aws") && arn.contains(":secretsmanager:") && arn.contains(":secret:"),
            "a Secrets Manager secret ARN such as `arn:aws:secretsmanager:us-east-1:123456789012:secret:bookstore-production-db-shop-...` \
             (objective 2's AppDatabaseSecretArn output)",
        );
    } else if o3.database_secret_arn.is_some() {
        // Objective 2's boot sets <user>_shop's password from its AppDatabaseSecret; the Job
        // here would set another one (secrets.database_password) and lock objective 2 out.
        c.fail(
            "objective3.app_database_secret_arn",
            "is null while `objective3.database_secret_arn` names objective 2's master secret: set it to objective 2's \
             AppDatabaseSecretArn output too, so both targets give the shop's user the same password",
        );
    }
    c.pattern(
        "objective3.monitoring_namespace",
        &o3.monitoring_namespace,
        is_dns_label(&o3.monitoring_namespace),
        "a Kubernetes namespace (lowercase letters, digits and dashes)",
    );
    if o3.nfs_path == "/" && o3.nfs_server.contains(".efs.") {
        c.fail(
            "objective3.nfs_path",
            "the root of an EFS file system belongs to root, so the shop (UID 10001) could not write a cover; \
             use `/uploads`, the covers directory objective 2 creates for UID 10001",
        );
    }
    c.pattern(
        "objective3.eks.vpc_id",
        &o3.eks.vpc_id,
        is_aws_id(&o3.eks.vpc_id, "vpc-"),
        "a VPC ID such as `vpc-0123456789abcdef0` (objective 2's VpcId output)",
    );
    for (field, ids) in [
        ("private_subnet_ids", &o3.eks.private_subnet_ids),
        ("public_subnet_ids", &o3.eks.public_subnet_ids),
    ] {
        if ids.len() < 2 {
            c.fail(
                format!("{b}.eks.{field}"),
                format!(
                    "EKS needs subnets in at least two availability zones, got {}",
                    ids.len()
                ),
            );
        }
        for (i, id) in ids.iter().enumerate() {
            c.pattern(
                &format!("{b}.eks.{field}[{i}]"),
                id,
                is_aws_id(id, "subnet-"),
                "a subnet ID such as `subnet-0123456789abcdef0`",
            );
        }
    }
}

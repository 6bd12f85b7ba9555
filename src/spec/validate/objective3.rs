//! Objective 3's own settings: the HPA, the pods, the storage, the EKS node group.

use super::checker::{sizes, Checker};
use super::formats::*;
use crate::spec::Spec;

/// Checks `objective3`.
pub(super) fn check(c: &mut Checker, spec: &Spec) {
    let o3 = &spec.objective3;
    c.pattern(
        "objective3.namespace",
        &o3.namespace,
        is_dns_label(&o3.namespace),
        "a Kubernetes namespace (lowercase letters, digits and dashes)",
    );
    sizes(
        c,
        "objective3",
        ("min_replicas", o3.min_replicas),
        ("replicas", o3.replicas),
        ("max_replicas", o3.max_replicas),
    );
    c.range(
        "objective3.target_cpu_percent",
        o3.target_cpu_percent,
        1,
        100,
        "a percentage",
    );
    c.pattern(
        "objective3.ingress_class",
        &o3.ingress_class,
        is_dns_label(&o3.ingress_class),
        "an IngressClass name",
    );
    c.pattern(
        "objective3.nfs_server",
        &o3.nfs_server,
        is_host(&o3.nfs_server),
        "a host name or IPv4 address",
    );
    c.pattern(
        "objective3.nfs_path",
        &o3.nfs_path,
        o3.nfs_path.starts_with('/') && !o3.nfs_path.contains(char::is_whitespace),
        "an absolute export path",
    );
    c.pattern(
        "objective3.database_host",
        &o3.database_host,
        is_host(&o3.database_host),
        "a host name or IPv4 address",
    );
    c.range(
        "objective3.swarm_replicas",
        o3.swarm_replicas,
        1,
        100,
        "swarm replicas",
    );
    settings(c, o3);
    super::cluster::check(c, spec);
}

fn settings(c: &mut Checker, o3: &crate::spec::Objective3) {
    let b = "objective3";
    for (field, value, lo, hi, what) in [
        (
            "scale_up.pods",
            o3.scale_up.pods,
            1,
            1000,
            "pods added per period",
        ),
        (
            "scale_up.period_seconds",
            o3.scale_up.period_seconds,
            1,
            1800,
            "an HPA period (seconds)",
        ),
        (
            "scale_up.stabilization_seconds",
            o3.scale_up.stabilization_seconds,
            0,
            3600,
            "a stabilisation window (seconds)",
        ),
        (
            "scale_down.percent",
            o3.scale_down.percent,
            1,
            100,
            "a percentage",
        ),
        (
            "scale_down.period_seconds",
            o3.scale_down.period_seconds,
            1,
            1800,
            "an HPA period (seconds)",
        ),
        (
            "scale_down.stabilization_seconds",
            o3.scale_down.stabilization_seconds,
            0,
            3600,
            "a stabilisation window (seconds)",
        ),
        (
            "prestop_sleep_seconds",
            o3.prestop_sleep_seconds,
            1,
            120,
            "the preStop pause (seconds)",
        ),
        (
            "storage_gb",
            o3.storage_gb,
            1,
            65_536,
            "the claim size (GiB)",
        ),
        ("eks.min_nodes", o3.eks.min_nodes, 1, 450, "the node count"),
        ("eks.max_nodes", o3.eks.max_nodes, 1, 450, "the node count"),
    ] {
        c.range(&format!("{b}.{field}"), value, lo, hi, what);
    }
    let (floor_name, floor) = if o3.autoscale {
        ("min_replicas", o3.min_replicas)
    } else {
        ("replicas", o3.replicas)
    };
    if o3.pdb_min_available >= floor && o3.pdb_min_available > 0 {
        c.fail(
            format!("{b}.pdb_min_available"),
            format!(
                "pdb_min_available ({}) must be below {floor_name} ({floor}), or no node could ever be drained",
                o3.pdb_min_available
            ),
        );
    }
    if o3.eks.min_nodes > o3.eks.max_nodes {
        c.fail(
            format!("{b}.eks.max_nodes"),
            format!(
                "max_nodes ({}) is below min_nodes ({})",
                o3.eks.max_nodes, o3.eks.min_nodes
            ),
        );
    }
    c.pattern(
        "objective3.gateway_class",
        &o3.gateway_class,
        is_dns_label(&o3.gateway_class),
        "a GatewayClass name",
    );
    if let Some(ns) = &o3.controller_namespace {
        c.pattern(
            "objective3.controller_namespace",
            ns,
            is_dns_label(ns),
            "a Kubernetes namespace (lowercase letters, digits and dashes)",
        );
    }
    c.cidr("objective3.vpc_cidr", &o3.vpc_cidr);
    c.pattern(
        "objective3.efs_file_system_id",
        &o3.efs_file_system_id,
        is_aws_id(&o3.efs_file_system_id, "fs-"),
        "an EFS file system ID such as `fs-0123456789abcdef0`",
    );
    let cpu = parse_quantity(&o3.cpu_request);
    c.pattern(
        "objective3.cpu_request",
        &o3.cpu_request,
        cpu.is_some_and(|v| v > 0.0),
        "a CPU quantity such as `250m` or `1`",
    );
    let request = parse_quantity(&o3.memory_request);
    let limit = parse_quantity(&o3.memory_limit);
    for (field, value, parsed) in [
        ("memory_request", &o3.memory_request, request),
        ("memory_limit", &o3.memory_limit, limit),
    ] {
        c.pattern(
            &format!("{b}.{field}"),
            value,
            parsed.is_some_and(|v| v >= 16.0 * 1024.0 * 1024.0),
            "a memory quantity of at least 16Mi, such as `128Mi` or `1Gi`",
        );
    }
    if let (Some(req), Some(lim)) = (request, limit) {
        if lim < req {
            c.fail(
                format!("{b}.memory_limit"),
                format!(
                    "memory_limit ({}) is below memory_request ({})",
                    o3.memory_limit, o3.memory_request
                ),
            );
        }
    }
    c.pattern(
        "objective3.eks.version",
        &o3.eks.version,
        parse_version(&o3.eks.version).is_some_and(|v| v.0 == 1 && v.1 >= 30 && v.2 == 0)
            && o3.eks.version.matches('.').count() == 1,
        "an EKS Kubernetes version such as `1.35`",
    );
    c.pattern(
        "objective3.eks.instance_type",
        &o3.eks.instance_type,
        is_instance_type(&o3.eks.instance_type),
        "an EC2 instance type such as `t3.medium`",
    );
}

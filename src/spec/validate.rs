//! Semantic checks that run after parsing; they collect every problem instead of stopping at the first.

use super::{Problem, Spec};
use ipnet::Ipv4Net;

/// Variables the blueprints set themselves from the spec; `app.env` may not override them.
const CONTRACT_VARS: &[&str] = &[
    "BOOKSTORE_DATABASE_URL",
    "BOOKSTORE_DATABASE_PASSWORD",
    "BOOKSTORE_DATABASE_PASSWORD_FILE",
    "BOOKSTORE_LISTEN",
    "BOOKSTORE_SECRET_KEY",
    "BOOKSTORE_SECRET_KEY_FILE",
    "BOOKSTORE_UPLOADS_DIR",
    "BOOKSTORE_INSTANCE_ID",
    "BOOKSTORE_ADMIN_EMAIL",
    "BOOKSTORE_ADMIN_PASSWORD",
    "BOOKSTORE_ADMIN_PASSWORD_FILE",
    "BOOKSTORE_DRAIN_SECONDS",
    "BOOKSTORE_TRUSTED_PROXIES",
    "BOOKSTORE_MAX_UPLOAD_MB",
    "BOOKSTORE_METRICS_LISTEN",
    "BOOKSTORE_DATABASE_TLS",
    "BOOKSTORE_DATABASE_CA_FILE",
    "RUST_LOG",
];

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
            source: None,
        });
    }

    fn require(&mut self, ok: bool, path: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.fail(path, message());
        }
    }

    fn range(&mut self, path: &str, value: u32, lo: u32, hi: u32, what: &str) {
        self.require((lo..=hi).contains(&value), path, || {
            format!("{what} must be between {lo} and {hi}, got {value}")
        });
    }

    fn non_empty(&mut self, path: &str, value: &str) -> bool {
        let ok = !value.trim().is_empty();
        self.require(ok, path, || "must not be empty".into());
        ok
    }

    fn pattern(&mut self, path: &str, value: &str, ok: bool, what: &str) {
        if self.non_empty(path, value) {
            self.require(ok, path, || format!("`{value}` is not {what}"));
        }
    }

    fn port(&mut self, path: &str, value: u16) {
        self.require(value != 0, path, || {
            "port 0 is not a usable port; pick one in 1..=65535".into()
        });
    }

    fn cidr(&mut self, path: &str, value: &str) -> Option<Ipv4Net> {
        match value.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                self.fail(
                    path,
                    format!(
                        "`{value}` has host bits set; the network is `{}`",
                        net.trunc()
                    ),
                );
                None
            }
            Err(_) => {
                self.fail(
                    path,
                    format!("`{value}` is not an IPv4 CIDR such as `10.0.0.0/16`"),
                );
                None
            }
        }
    }

    fn email(&mut self, path: &str, value: &str) {
        self.pattern(
            path,
            value,
            is_email(value),
            "an e-mail address (name@example.com)",
        );
    }

    fn secret_ref(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(
                path,
                "must not be empty; write a reference such as `ssm:/bookstore/secret-key`",
            );
        } else if !is_ssm_ref(value) {
            // Never echo the value: it may be the secret itself.
            self.fail(
                path,
                "this is not a reference and looks like a secret value (not shown); store the value with \
                 `aws ssm put-parameter --type SecureString --name /bookstore/NAME --value ...` and write \
                 `ssm:/bookstore/NAME` here",
            );
        }
    }
}

/// Checks the meaning of a parsed spec and returns every problem (empty when it is fine).
pub fn check(spec: &Spec) -> Vec<Problem> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let p = &spec.project;
    c.pattern(
        "project.name",
        &p.name,
        is_dns_label(&p.name) && p.name.len() <= 24 && p.name.starts_with(|ch: char| ch.is_ascii_lowercase()),
        "a project name (lowercase letters, digits and dashes, starting with a letter, at most 24 characters)",
    );
    c.pattern(
        "project.region",
        &p.region,
        is_region(&p.region),
        "an AWS region such as `us-east-1`",
    );
    c.pattern(
        "project.environment",
        &p.environment,
        is_dns_label(&p.environment),
        "an environment name (lowercase letters, digits and dashes)",
    );

    let d = &spec.domain;
    c.pattern(
        "domain.name",
        &d.name,
        is_domain(&d.name),
        "a fully qualified domain name such as `shop.example.com`",
    );
    c.email("domain.letsencrypt_email", &d.letsencrypt_email);
    if let Some(url) = &d.acme_server {
        if let Some(why) = acme_url_problem(url) {
            c.fail("domain.acme_server", format!("`{url}` is not an ACME directory URL: {why}; for example `https://acme-v02.api.letsencrypt.org/directory`"));
        } else if d.letsencrypt_staging {
            c.fail("domain.acme_server", "is set together with `domain.letsencrypt_staging: true`, which picks Let's Encrypt's staging directory; keep only one of the two");
        }
    }
    if let Some(zone) = &d.hosted_zone_id {
        c.pattern(
            "domain.hosted_zone_id",
            zone,
            zone.starts_with('Z')
                && zone.len() <= 32
                && zone
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()),
            "a Route 53 hosted zone ID such as `Z0123456789ABCDEFGHIJ`",
        );
    }

    let a = &spec.app;
    c.pattern(
        "app.image",
        &a.image,
        is_image_repo(&a.image),
        "an image repository without a tag, such as `ghcr.io/owner/bookstore-app`",
    );
    c.pattern(
        "app.tag",
        &a.tag,
        is_tag(&a.tag) && a.tag != "latest",
        "a pinned image tag (letters, digits, `.`, `_`, `-`; not `latest`)",
    );
    c.port("app.port", a.port);
    c.non_empty("app.log_level", &a.log_level);
    c.range(
        "app.drain_seconds",
        a.drain_seconds,
        1,
        300,
        "the drain time",
    );
    c.email("app.admin_email", &a.admin_email);
    c.range(
        "app.max_upload_mb",
        a.max_upload_mb,
        1,
        100,
        "the upload limit",
    );
    for key in a.env.keys() {
        let path = format!("app.env.{key}");
        if !is_env_name(key) {
            c.fail(
                &path,
                format!("`{key}` is not an environment variable name (A-Z, 0-9, _)"),
            );
        } else if CONTRACT_VARS.contains(&key.as_str()) {
            c.fail(&path, format!("`{key}` is set by the blueprints from the spec; set the matching spec field instead"));
        } else if looks_secret_name(key) {
            c.fail(&path, format!("`{key}` looks like a secret, and a secret value belongs in SSM Parameter Store, not in the spec; add a reference under `secrets` instead"));
        }
    }

    let db = &spec.database;
    c.pattern(
        "database.name",
        &db.name,
        is_identifier(&db.name, 64),
        "a MySQL schema name (letters, digits, `_`, at most 64 characters)",
    );
    c.pattern(
        "database.user",
        &db.user,
        is_identifier(&db.user, 16) && !matches!(db.user.as_str(), "root" | "rdsadmin" | "admin"),
        "a database user name (letters, digits, `_`, at most 16 characters; not root, admin or rdsadmin)",
    );
    c.pattern(
        "database.engine_version",
        &db.engine_version,
        db.engine_version == "8.4" || db.engine_version.starts_with("8.4."),
        "a MySQL 8.4 LTS version (`8.4` or `8.4.x`; 8.0 reached end of life in April 2026)",
    );
    c.pattern(
        "database.image",
        &db.image,
        db.image.split_once(':').is_some_and(|(repo, tag)| {
            is_image_repo(repo) && is_tag(tag) && tag.starts_with("8.4") && tag != "latest"
        }),
        "a pinned MySQL 8.4 image such as `mysql:8.4.7`",
    );
    c.pattern(
        "database.instance_class",
        &db.instance_class,
        is_instance_type(db.instance_class.strip_prefix("db.").unwrap_or("")),
        "an RDS instance class such as `db.t4g.micro`",
    );
    c.range(
        "database.storage_gb",
        db.storage_gb,
        20,
        65_536,
        "RDS storage (GiB)",
    );
    c.range(
        "database.backup_retention_days",
        db.backup_retention_days,
        7,
        35,
        "backup retention (days)",
    );
    c.port("database.port", db.port);

    let s = &spec.secrets;
    c.secret_ref("secrets.database_password", &s.database_password);
    c.secret_ref("secrets.secret_key", &s.secret_key);
    c.secret_ref("secrets.admin_password", &s.admin_password);
    c.secret_ref("secrets.database_root_password", &s.database_root_password);
    c.pattern(
        "secrets.kubernetes_secret",
        &s.kubernetes_secret,
        is_dns_label(&s.kubernetes_secret),
        "a Kubernetes Secret name (lowercase letters, digits and dashes)",
    );

    let f = &spec.shared_files;
    c.pattern(
        "shared_files.mount_path",
        &f.mount_path,
        is_abs_path(&f.mount_path),
        "an absolute path other than `/` (no spaces)",
    );
    c.pattern(
        "shared_files.container_path",
        &f.container_path,
        is_abs_path(&f.container_path),
        "an absolute path other than `/` (no spaces)",
    );

    let n = &spec.nginx;
    c.pattern(
        "nginx.version",
        &n.version,
        parse_version(&n.version).is_some(),
        "an NGINX version such as `1.22` or `1.26.2`",
    );
    c.range(
        "nginx.hsts_max_age",
        n.hsts_max_age,
        86_400,
        63_072_000,
        "the HSTS max-age (seconds)",
    );
    c.range(
        "nginx.upstream_keepalive",
        n.upstream_keepalive,
        1,
        1024,
        "upstream keepalive connections",
    );

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
    sizes(
        &mut c,
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
    network(&mut c, &o2.network);
    if let Some((path, message)) = super::capacity::check(spec) {
        c.fail(path, message);
    }

    let o3 = &spec.objective3;
    c.pattern(
        "objective3.namespace",
        &o3.namespace,
        is_dns_label(&o3.namespace),
        "a Kubernetes namespace (lowercase letters, digits and dashes)",
    );
    sizes(
        &mut c,
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
    objective3(&mut c, o3);
    objective3_day_two(&mut c, spec);
    c.problems
}

/// Objective 3 on a real cluster: the network, the add-ons' Kubernetes versions, the ingress
/// classes the blueprints can configure, the IDs the cluster file needs.
fn objective3_day_two(c: &mut Checker, spec: &Spec) {
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
    if o3.routing == super::Routing::Ingress
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

fn objective3(c: &mut Checker, o3: &super::Objective3) {
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

/// A Kubernetes quantity (`250m`, `0.5`, `128Mi`, `1G`) as a plain number.
fn parse_quantity(s: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (num, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, f)| s.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((s, 1.0));
    if num.is_empty()
        || !num.chars().all(|c| c.is_ascii_digit() || c == '.')
        || num.matches('.').count() > 1
    {
        return None;
    }
    num.parse::<f64>().ok().map(|v| v * factor)
}

fn sizes(c: &mut Checker, section: &str, min: (&str, u32), want: (&str, u32), max: (&str, u32)) {
    if min.1 < 1 {
        c.fail(format!("{section}.{}", min.0), "must be at least 1");
    }
    if min.1 > want.1 {
        c.fail(
            format!("{section}.{}", want.0),
            format!(
                "{} ({}) is below {} ({}); need {} <= {} <= {}",
                want.0, want.1, min.0, min.1, min.0, want.0, max.0
            ),
        );
    }
    if want.1 > max.1 {
        c.fail(
            format!("{section}.{}", max.0),
            format!(
                "{} ({}) is below {} ({}); need {} <= {} <= {}",
                max.0, max.1, want.0, want.1, min.0, want.0, max.0
            ),
        );
    } else if min.1 > max.1 {
        c.fail(
            format!("{section}.{}", max.0),
            format!("{} ({}) is below {} ({})", max.0, max.1, min.0, min.1),
        );
    }
}

fn network(c: &mut Checker, n: &super::Network) {
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

/// Parses `1.22` or `1.25.1` into (major, minor, patch).
pub fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    let patch = match it.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if it.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A fully qualified domain name with at least two labels and an alphabetic top-level label.
pub fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| is_dns_label(&l.to_ascii_lowercase()) && l.is_ascii())
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
}

/// A plain `local@domain` address.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && is_domain(domain)
}

fn is_host(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok() || is_domain(s) || is_dns_label(s)
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_instance_type(s: &str) -> bool {
    let Some((family, size)) = s.split_once('.') else {
        return false;
    };
    !family.is_empty()
        && !size.is_empty()
        && family
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && size
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn is_image_repo(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(':')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c))
        && !s.starts_with('/')
        && !s.ends_with('/')
}

fn is_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !s.starts_with(['.', '-'])
}

fn is_identifier(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn looks_secret_name(s: &str) -> bool {
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| s.contains(w))
}

fn is_abs_path(s: &str) -> bool {
    s.starts_with('/')
        && s.len() > 1
        && !s.contains(char::is_whitespace)
        && !s.split('/').any(|p| p == "..")
}

fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

/// `arn:aws:acm:REGION:ACCOUNT:certificate/ID` (any partition).
fn is_acm_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "acm"
        && is_region(parts[3])
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].strip_prefix("certificate/").is_some_and(|id| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `ssm:/name/with/slashes`: an SSM Parameter Store reference.
pub fn is_ssm_ref(s: &str) -> bool {
    s.strip_prefix("ssm:/").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 1000
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
            && !rest.ends_with('/')
            && !rest.contains("//")
    })
}

/// Why `s` cannot be an ACME directory URL (`https://host[:port]/path`), or `None` when it can.
/// The URL is rendered inside single quotes in a shell script, and must not carry credentials.
fn acme_url_problem(s: &str) -> Option<String> {
    let Some(rest) = s.strip_prefix("https://") else {
        return Some("ACME servers are reached over https:// only (RFC 8555)".into());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Some("a user name or password does not belong in the URL".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, after)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                (ip, after.strip_prefix(':'))
            }
            _ => return Some("the bracketed IPv6 address does not parse".into()),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let lower = host.to_ascii_lowercase();
    let host_ok = authority.starts_with('[')
        || is_domain(host)
        || is_dns_label(&lower)
        || host.parse::<std::net::Ipv4Addr>().is_ok();
    if !host_ok {
        return Some(format!("`{host}` is not a host name or IP address"));
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p != 0) {
            return Some(format!("`{p}` is not a port (1 to 65535)"));
        }
    }
    if let Some(bad) = tail
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?[]@!$&()*+,;=%".contains(*c)))
    {
        return Some(format!("{bad:?} is not allowed in its path"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_directory_urls() {
        for ok in [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://127.0.0.1:14000/dir",
            "https://[::1]:14000/dir",
            "https://ca.internal:9000/acme/acme/directory",
            "https://localhost/dir",
        ] {
            assert_eq!(acme_url_problem(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("http://acme.example.com/dir", "https:// only"),
            ("https://user:pw@acme.example.com/dir", "password"),
            ("https://acme.example.com/dir'; reboot; '", "is not allowed"),
            ("https://acme.example.com:0/dir", "not a port"),
            ("https://acme example.com/dir", "not a host name"),
            ("https://[::1/dir", "IPv6"),
        ] {
            let got = acme_url_problem(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad}: {got}");
        }
        let mut spec = Spec::default();
        spec.domain.acme_server = Some("https://ca.internal/acme/directory".into());
        assert!(check(&spec).is_empty());
        spec.domain.letsencrypt_staging = true;
        let problems = check(&spec);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "domain.acme_server");
        assert!(problems[0].message.contains("keep only one"));
        spec.domain.acme_server = Some("http://ca.internal/dir".into());
        assert!(check(&spec)[0].message.contains("https:// only"));
    }

    #[test]
    fn syntax_helpers() {
        assert!(is_domain("shop.example.com"));
        assert!(!is_domain("shop"));
        assert!(!is_domain("-bad.example.com"));
        assert!(!is_domain("shop.example.c0m"));
        assert!(is_email("ops@example.com"));
        assert!(!is_email("ops@@example.com"));
        assert!(!is_email("opsexample.com"));
        assert!(is_ssm_ref("ssm:/bookstore/db"));
        assert!(!is_ssm_ref("hunter2"));
        assert!(!is_ssm_ref("ssm:/"));
        assert_eq!(parse_version("1.25.1"), Some((1, 25, 1)));
        assert_eq!(parse_version("1.x"), None);
        assert!(is_region("eu-west-3"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("mars"));
    }
}

//! The hand-kept half of the fidelity table: why an objective ignores a field, or how it only
//! partly honours it. Whether a field is read at all comes from the blueprints themselves
//! ([`super::reads`]); a test keeps the two in step.

/// How an objective treats a field it does not fully honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Read, but only partly in effect (how).
    Degraded(&'static str),
    /// Not read (why).
    Ignored(&'static str),
}

use Treatment::{Degraded, Ignored};

const EXTERNAL_DB: &str =
    "objective 3 uses an external database (objective 2's RDS, `objective3.database_host`); set it there";
const ONE_VM_DB: &str =
    "objective 1 runs MySQL in a container on the VM (`database.image`), not RDS";
const ACM: &str =
    "objective 2's certificate comes from ACM (DNS-validated), not from an ACME account";
const NO_K8S: &str = "only objective 3 creates a Kubernetes Secret";
/// Why the load-test Job reads no other section: it deploys nothing, it only sends load.
pub const LOADTEST_DEPLOYS_NOTHING: &str =
    "the load-test Job deploys nothing; it sends load to `loadtest.url` (default: https:// + `domain.name`)";

/// (field, objective, treatment). Fields under `objectiveN.` that other objectives do not read
/// need no row: they are objective N's own settings.
pub const TABLE: &[(&str, &str, Treatment)] = &[
    ("domain.letsencrypt_email", "objective2", Ignored(ACM)),
    ("domain.letsencrypt_staging", "objective2", Ignored(ACM)),
    ("domain.acme_server", "objective2", Ignored(ACM)),
    ("domain.hosted_zone_id", "objective3", Ignored("objective 3 creates no DNS records; point the domain at the load balancer (README) or run external-dns")),
    ("database.engine_version", "objective3", Ignored(EXTERNAL_DB)),
    ("database.image", "objective2", Ignored("objective 2's database is RDS (`database.engine_version`), not a container")),
    ("database.image", "objective3", Ignored(EXTERNAL_DB)),
    ("database.instance_class", "objective1", Ignored(ONE_VM_DB)),
    ("database.instance_class", "objective3", Ignored(EXTERNAL_DB)),
    ("database.storage_gb", "objective3", Ignored(EXTERNAL_DB)),
    ("database.multi_az", "objective1", Ignored(ONE_VM_DB)),
    ("database.multi_az", "objective3", Ignored(EXTERNAL_DB)),
    ("database.backup_retention_days", "objective1", Degraded("the days of daily snapshots of the data volume kept by Data Lifecycle Manager (MySQL and the covers together, crash-consistent)")),
    ("shared_files.mount_path", "objective1", Ignored("the covers live on objective 1's data volume, /srv/bookstore/uploads")),
    ("database.backup_retention_days", "objective3", Ignored(EXTERNAL_DB)),
    ("secrets.database_root_password", "objective2", Ignored("RDS manages the master password (Secrets Manager)")),
    ("secrets.database_password", "objective2", Ignored("the shop logs in as the RDS master user with its RDS-managed secret")),
    ("secrets.kubernetes_secret", "objective1", Ignored(NO_K8S)),
    ("secrets.kubernetes_secret", "objective2", Ignored(NO_K8S)),
    ("shared_files.mount_path", "objective3", Degraded("only Swarm's nodes mount the covers there (EFS over TLS); on Kubernetes they are a PersistentVolume at `shared_files.container_path`")),
    ("nginx.version", "objective2", Ignored("objective 2 runs NGINX from `objective2.nginx_image`; the version is that image's")),
    ("nginx.version", "objective3", Ignored("the gateway or ingress controller is the proxy; there is no NGINX of the shop's own")),
    ("objective2.desired_capacity", "objective2", Degraded("no `DesiredCapacity` is rendered: the group starts at `min_size` and target tracking owns its size; read only as the rolling update's MinInstancesInService (at most max_size - 1)")),
    ("objective3.storage_gb", "objective3", Degraded("written on the volume claim; EFS does not enforce a size (an NFS quota may)")),
];

/// The row for (`field`, `objective`), if any.
pub fn lookup(field: &str, objective: &str) -> Option<Treatment> {
    TABLE
        .iter()
        .find(|(f, o, _)| *f == field && *o == objective)
        .map(|(_, _, t)| *t)
}

/// Spec fields behind each `derived.*` value the templates read (src/render.rs computes them).
pub const DERIVED: &[(&str, &[&str])] = &[
    ("derived.image", &["app.image", "app.tag"]),
    ("derived.nginx_http2_on", &["nginx.version"]),
    (
        "derived.stack_name",
        &["project.name", "project.environment"],
    ),
    (
        "derived.acme_server",
        &["domain.acme_server", "domain.letsencrypt_staging"],
    ),
    ("derived.acme_is_letsencrypt", &["domain.acme_server"]),
    ("derived.o2.deregistration_delay", &["app.drain_seconds"]),
    ("derived.o2.elb_log_account", &["project.region"]),
    ("derived.o1.root_device", &["objective1.ami_parameter"]),
    ("derived.o1.docker_packages", &["objective1.ami_parameter"]),
    ("derived.o1.os", &["objective1.ami_parameter"]),
    ("derived.o1.data_dir", &[]),
    (
        "derived.o1.image_parameter",
        &["project.name", "project.environment"],
    ),
    (
        "derived.o1.volume_parameter",
        &["project.name", "project.environment"],
    ),
    ("derived.o2.root_device", &["objective2.ami_parameter"]),
    ("derived.o2.docker_packages", &["objective2.ami_parameter"]),
    ("derived.o2.os", &["objective2.ami_parameter"]),
    // The shop's image when it is on ECR: {registry, account, region, repository}.
    ("derived.o2.ecr", &["app.image"]),
    // Each instance's database pool: max_size instances fit in the class's max_connections.
    (
        "derived.o2.pool_max",
        &["database.instance_class", "objective2.max_size"],
    ),
    (
        "derived.o2.db_connections_alarm",
        &["database.instance_class"],
    ),
    (
        "derived.o2.rds_engine_version",
        &["database.engine_version"],
    ),
    (
        "derived.o2.min_in_service",
        &["objective2.desired_capacity", "objective2.max_size"],
    ),
    (
        "derived.secrets.database_password",
        &["secrets.database_password"],
    ),
    ("derived.secrets.secret_key", &["secrets.secret_key"]),
    (
        "derived.secrets.admin_password",
        &["secrets.admin_password"],
    ),
    (
        "derived.secrets.database_root_password",
        &["secrets.database_root_password"],
    ),
    ("derived.objective3.gateway", &["objective3.routing"]),
    (
        "derived.objective3.traefik",
        &["objective3.routing", "objective3.ingress_class"],
    ),
    (
        "derived.objective3.ingress_nginx",
        &["objective3.routing", "objective3.ingress_class"],
    ),
    (
        "derived.objective3.issuer",
        &[
            "domain.acme_server",
            "domain.letsencrypt_staging",
            "project.name",
            "project.environment",
        ],
    ),
    (
        "derived.objective3.issuer_custom",
        &["domain.acme_server", "project.name", "project.environment"],
    ),
    ("derived.objective3.app_user", &["database.user"]),
    (
        "derived.objective3.secretsmanager",
        &[
            "objective3.database_secret_arn",
            "objective3.app_database_secret_arn",
        ],
    ),
    (
        "derived.objective3.app_user_job",
        &[
            "project.name",
            "app.image",
            "app.tag",
            "database.user",
            "objective3.database_host",
            "database.port",
            "database.name",
        ],
    ),
    (
        "derived.objective3.pv_name",
        &["project.name", "project.environment"],
    ),
    (
        "derived.objective3.database_ip",
        &["objective3.database_host"],
    ),
    (
        "derived.objective3.database_egress_cidr",
        &["objective3.database_host", "objective3.vpc_cidr"],
    ),
    (
        "derived.objective3.trusted_proxies",
        &["objective3.pod_subnet_cidrs"],
    ),
    ("derived.objective3.body_size", &["app.max_upload_mb"]),
    (
        "derived.objective3.cluster_autoscaler_tag",
        &["objective3.eks.version"],
    ),
    (
        "derived.objective3.controller_namespace",
        &["objective3.controller_namespace", "objective3.routing"],
    ),
    (
        "derived.objective3.termination_grace_seconds",
        &["objective3.prestop_sleep_seconds", "app.drain_seconds"],
    ),
    ("derived.objective3.efs", &["objective3.shared_storage"]),
    (
        "derived.objective3.prune",
        &[
            "objective3.routing",
            "objective3.autoscale",
            "objective3.secrets_source",
        ],
    ),
    (
        "derived.objective3.external_secrets",
        &["objective3.secrets_source"],
    ),
    ("derived.loadtest.url", &["loadtest.url", "domain.name"]),
    ("derived.loadtest.port", &["loadtest.url"]),
    (
        "derived.loadtest.image",
        &["loadtest.image", "app.image", "app.tag"],
    ),
    ("derived.loadtest.job_name", &["project.name"]),
    ("derived.loadtest.start_configmap", &["project.name"]),
    ("derived.loadtest.last_index", &["loadtest.shards"]),
    (
        "derived.loadtest.planned_seconds",
        &["loadtest.stages", "loadtest.ramp", "loadtest.duration"],
    ),
    (
        "derived.loadtest.active_deadline_seconds",
        &["loadtest.stages", "loadtest.ramp", "loadtest.duration"],
    ),
    ("derived.loadtest.max_p95", &["loadtest.gates.max_p95_ms"]),
    (
        "derived.loadtest.max_error_rate",
        &["loadtest.gates.max_error_rate_percent"],
    ),
];

//! The sections every objective reads: project, domain, app, database, secrets, shared files, NGINX.

use super::checker::Checker;
use super::formats::*;
use crate::spec::Spec;

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

/// Checks the shared sections.
pub(super) fn check(c: &mut Checker, spec: &Spec) {
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
}

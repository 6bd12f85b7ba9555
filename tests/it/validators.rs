//! Every rendered artifact through its real validator, for every test spec, and nginx for real.

use super::specs;
use super::support::validators as v;
use std::path::{Path, PathBuf};

fn rendered_dirs() -> Vec<(&'static str, tempfile::TempDir, PathBuf)> {
    specs::all()
        .into_iter()
        .map(|(name, spec)| {
            let (tmp, out) = specs::render_to_dir(&spec);
            (name, tmp, out)
        })
        .collect()
}

fn check(name: &str, what: &str, result: Result<(), String>) {
    if let Err(e) = result {
        panic!("{name}: {what} failed:\n{e}");
    }
}

#[test]
fn nginx_accepts_the_site_config() {
    if !v::require("nginx") {
        return;
    }
    for (name, _tmp, out) in rendered_dirs() {
        let conf = out.join("objective1/nginx/bookstore.conf");
        // The spec's nginx.version decides the form of HTTP/2 (`rendered::hsts_is_sent_from_every_tls_location`);
        // a config with `http2 on;` is checked by Debian 13's nginx 1.26, the others by Debian 12's 1.22.
        check(name, "nginx -t", v::nginx_t(&conf));
        // The HTTP-only site the VM serves until its first certificate exists.
        let bootstrap = out.join("objective1/nginx/bootstrap.conf");
        check(name, "nginx -t of bootstrap.conf", v::nginx_t(&bootstrap));
    }
}

#[test]
fn shellcheck_accepts_every_script_including_those_in_user_data() {
    if !v::require("shellcheck") {
        return;
    }
    for (name, tmp, out) in rendered_dirs() {
        let mut scripts = v::files_under(&out, &[".sh"]);
        assert!(
            scripts.len() >= 2,
            "{name}: expected rendered scripts, found {scripts:?}"
        );
        for objective in ["objective1", "objective2"] {
            let extracted = tmp.path().join(format!("from-user-data-{objective}"));
            std::fs::create_dir_all(&extracted).unwrap();
            let embedded =
                v::cloud_init_scripts(&out.join(objective).join("user-data.yaml"), &extracted)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                !embedded.is_empty(),
                "{name}: no scripts found in {objective}'s user-data"
            );
            scripts.extend(embedded);
        }
        check(name, "shellcheck", v::shellcheck(&scripts));
    }
}

#[test]
fn cloud_init_accepts_the_user_data() {
    if !v::require("cloud-init") {
        return;
    }
    for (name, _tmp, out) in rendered_dirs() {
        for objective in ["objective1", "objective2"] {
            check(
                name,
                &format!("cloud-init schema of {objective}"),
                v::cloud_init_schema(&out.join(objective).join("user-data.yaml")),
            );
        }
    }
}

#[test]
fn yamllint_accepts_every_yaml_file() {
    if !v::require("yamllint") {
        return;
    }
    for (name, _tmp, out) in rendered_dirs() {
        let files = v::files_under(&out, &[".yaml", ".yml"]);
        assert!(files.len() >= 3, "{name}: {files:?}");
        check(name, "yamllint", v::yamllint(&files));
    }
}

fn cloudformation_templates(out: &Path) -> Vec<PathBuf> {
    v::files_under(out, &["cloudformation.yaml"])
}

#[test]
fn cfn_lint_accepts_the_cloudformation() {
    if !v::require("cfn-lint") {
        return;
    }
    // Each spec in its own region: resource types, instance types and AZs differ between regions.
    for (name, spec) in specs::all() {
        let (_tmp, out) = specs::render_to_dir(&spec);
        let files = cloudformation_templates(&out);
        assert_eq!(
            files.len(),
            2,
            "{name}: objective 1 and 2 templates: {files:?}"
        );
        let region = spec.project.region.as_str();
        check(
            name,
            &format!("cfn-lint --regions {region}"),
            v::cfn_lint_in_regions(&files, &[region]),
        );
    }
}

#[test]
fn checkov_finds_nothing_in_the_cloudformation() {
    if !v::require("checkov") {
        return;
    }
    // One checkov run for every template of every spec: it spends seconds loading its policies.
    let rendered = rendered_dirs();
    let files: Vec<PathBuf> = rendered
        .iter()
        .flat_map(|(_, _, out)| cloudformation_templates(out))
        .collect();
    assert!(
        files.len() >= rendered.len() * 2,
        "expected objective 1 and 2 templates: {files:?}"
    );
    check("all specs", "checkov", v::checkov_cfn_files(&files));
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    if !v::require("docker-compose") {
        return;
    }
    for (name, _tmp, out) in rendered_dirs() {
        let files = v::files_under(&out, &["docker-compose.yml"]);
        let mut found: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(&out).unwrap().display().to_string())
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                "objective1/docker-compose.yml",
                "objective2/docker-compose.yml"
            ],
            "{name}: the compose files to check"
        );
        for file in files {
            check(
                name,
                &format!("docker-compose config on {}", file.display()),
                // What bookstore-setup and bookstore-upgrade write to /opt/bookstore/.env.
                v::compose_config(
                    &file,
                    &[
                        ("BOOKSTORE_APP_IMAGE", "ghcr.io/example/bookstore:1.0.0"),
                        ("BOOKSTORE_INSTANCE_ID", "i-0123456789abcdef0"),
                        ("LOG_GROUP", "/bookstore-production-vm/vm"),
                        ("AWS_REGION", "us-east-1"),
                    ],
                ),
            );
        }
    }
}

#[test]
fn nginx_for_real_redirects_serves_acme_and_proxies_with_hsts() {
    if !v::require_all(&["nginx", "curl", "openssl"]) {
        return;
    }
    let spec = bookstore::spec::Spec::default();
    let (_tmp, out) = specs::render_to_dir(&spec);
    let live = v::nginx_live(
        &out.join("objective1/nginx/bookstore.conf"),
        &spec.domain.name,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let redirect = live.http("/books?page=2").unwrap();
    assert_eq!(redirect.status, 301, "{redirect:?}");
    assert_eq!(
        redirect.header("location"),
        Some(format!("https://{}/books?page=2", spec.domain.name).as_str()),
        "{redirect:?}"
    );

    let acme = live
        .http(&format!("/.well-known/acme-challenge/{}", v::ACME_TOKEN))
        .unwrap();
    assert_eq!(acme.status, 200, "{acme:?}");
    assert_eq!(acme.body.trim(), v::ACME_TOKEN_CONTENT);

    let proxied = live.https("/books").unwrap();
    assert_eq!(proxied.status, 200, "{proxied:?}\n{}", live.error_log());
    let hsts = format!("max-age={}; includeSubDomains", spec.nginx.hsts_max_age);
    assert_eq!(
        proxied.header("strict-transport-security"),
        Some(hsts.as_str()),
        "{proxied:?}"
    );
    assert_eq!(
        proxied.header("x-bookstore-instance"),
        Some(v::UPSTREAM_INSTANCE)
    );
    assert_eq!(
        proxied.header("server"),
        Some("nginx"),
        "server_tokens off hides the version"
    );

    let static_file = live.https("/static/app.css").unwrap();
    assert_eq!(
        static_file.header("strict-transport-security"),
        Some(hsts.as_str()),
        "a location with its own headers dropped HSTS: {static_file:?}"
    );

    let seen = live.upstream_requests().join("\n").to_ascii_lowercase();
    assert!(seen.contains("x-forwarded-for: 127.0.0.1"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: https"), "{seen}");
    assert!(
        seen.contains(&format!("host: {}", spec.domain.name)),
        "{seen}"
    );
}

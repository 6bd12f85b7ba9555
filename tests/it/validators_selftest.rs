//! Proves each validator helper is real: it accepts a good sample and rejects a broken one.
//! Samples live in tests/validators/{good,bad}/.

use super::support::validators as v;
use std::path::PathBuf;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validators")
        .join(name)
}

#[track_caller]
fn rejected(result: Result<(), String>, expect: &str) {
    match result {
        Ok(()) => panic!("the broken sample passed; expected a rejection mentioning {expect:?}"),
        Err(report) => assert!(
            report.contains(expect),
            "rejected, but the report does not mention {expect:?}:\n{report}"
        ),
    }
}

#[test]
fn shellcheck_is_real() {
    if !v::require("shellcheck") {
        return;
    }
    v::shellcheck(&[sample("good/script.sh")]).unwrap();
    rejected(v::shellcheck(&[sample("bad/script.sh")]), "SC2086");
    rejected(v::shellcheck(&[sample("bad/script.sh")]), "SC2002");
}

#[test]
fn cloud_init_schema_is_real() {
    if !v::require("cloud-init") {
        return;
    }
    v::cloud_init_schema(&sample("good/user-data.yaml")).unwrap();
    rejected(
        v::cloud_init_schema(&sample("bad/user-data-schema.yaml")),
        "packages",
    );
    rejected(
        v::cloud_init_schema(&sample("bad/user-data-unknown-key.yaml")),
        "write_file",
    );
}

#[test]
fn scripts_embedded_in_cloud_config_are_shellchecked() {
    if !v::require("shellcheck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scripts = v::cloud_init_scripts(&sample("good/user-data.yaml"), dir.path()).unwrap();
    let names: Vec<String> = scripts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["write_files_01_usr_local_bin_bookstore-hello", "runcmd.sh"],
        "the env file is not a script; the bash script and runcmd are"
    );
    v::shellcheck(&scripts).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let scripts = v::cloud_init_scripts(&sample("bad/user-data-shell.yaml"), dir.path()).unwrap();
    rejected(v::shellcheck(&scripts), "SC2086");

    let dir = tempfile::tempdir().unwrap();
    let scripts = v::cloud_init_scripts(&sample("bad/user-data-runcmd.yaml"), dir.path()).unwrap();
    rejected(v::shellcheck(&scripts), "SC3010");
}

#[test]
fn yamllint_is_real() {
    if !v::require("yamllint") {
        return;
    }
    let good = v::files_under(&sample("good"), &[".yaml", ".yml"]);
    assert!(good.len() >= 4, "{good:?}");
    v::yamllint(&good).unwrap();
    rejected(
        v::yamllint(&[sample("bad/yamllint.yaml")]),
        "key-duplicates",
    );
    rejected(v::yamllint(&[sample("bad/yamllint.yaml")]), "octal-values");
    rejected(v::yamllint(&[sample("bad/yamllint.yaml")]), "truthy");
}

#[test]
fn cfn_lint_is_real() {
    if !v::require("cfn-lint") {
        return;
    }
    v::cfn_lint(&[sample("good/cloudformation.yaml")]).unwrap();
    v::cfn_lint_in_regions(&[sample("good/cloudformation.yaml")], &["eu-west-1"]).unwrap();
    rejected(
        v::cfn_lint(&[sample("bad/cloudformation-lint.yaml")]),
        "KmsMasterKeyIdd",
    );
}

#[test]
fn checkov_is_real() {
    if !v::require("checkov") {
        return;
    }
    v::checkov_cfn(&sample("good/cloudformation.yaml")).unwrap();
    rejected(
        v::checkov_cfn_files(&[
            sample("good/cloudformation.yaml"),
            sample("bad/cloudformation-checkov.yaml"),
        ]),
        "CKV_AWS_26",
    );
    rejected(
        v::checkov_cfn(&sample("bad/cloudformation-checkov.yaml")),
        "CKV_AWS_26",
    );
    rejected(
        v::checkov_cfn(&sample("bad/cloudformation-skip.yaml")),
        "without a reason",
    );
    rejected(
        v::checkov_cfn(&sample("good/docker-compose.yml")),
        "no CloudFormation resource",
    );
}

#[test]
fn compose_config_is_real() {
    if !v::require("docker-compose") {
        return;
    }
    let good = sample("good/docker-compose.yml");
    v::compose_config(&good, &[("BOOKSTORE_TAG", "1.0.0")]).unwrap();
    rejected(v::compose_config(&good, &[]), "BOOKSTORE_TAG");
    rejected(
        v::compose_config(&sample("bad/docker-compose.yml"), &[]),
        "imagee",
    );
}

#[test]
fn kubernetes_validate_is_real() {
    if !v::require("kubernetes-validate") {
        return;
    }
    let good = sample("good/k8s.yaml");
    v::kubernetes_validate(std::slice::from_ref(&good), &["ClusterIssuer"]).unwrap();
    rejected(v::kubernetes_validate(&[good], &[]), "ClusterIssuer");
    rejected(
        v::kubernetes_validate(&[sample("bad/k8s.yaml")], &[]),
        "replica",
    );
}

#[test]
fn nginx_t_is_real() {
    if !v::require_all(&["nginx", "openssl"]) {
        return;
    }
    v::nginx_t(&sample("good/nginx.conf")).unwrap();
    rejected(v::nginx_t(&sample("bad/nginx.conf")), "proxy_passs");
}

#[test]
fn nginx_live_proxies_redirects_and_serves_acme() {
    if !v::require_all(&["nginx", "openssl", "curl"]) {
        return;
    }
    let nginx = v::nginx_live(&sample("good/nginx.conf"), "shop.example.com").unwrap();

    let redirect = nginx.http("/books?page=2").unwrap();
    assert_eq!(redirect.status, 301, "{redirect:?}");
    assert_eq!(
        redirect.header("location"),
        Some("https://shop.example.com/books?page=2")
    );

    let token = nginx
        .http(&format!("/.well-known/acme-challenge/{}", v::ACME_TOKEN))
        .unwrap();
    assert_eq!(token.status, 200, "{token:?}");
    assert_eq!(token.body, v::ACME_TOKEN_CONTENT);

    let page = nginx.https("/books").unwrap();
    assert_eq!(page.status, 200, "{page:?}\n{}", nginx.error_log());
    assert!(
        page.header("strict-transport-security").is_some(),
        "{page:?}"
    );
    assert_eq!(
        page.header("x-bookstore-instance"),
        Some(v::UPSTREAM_INSTANCE)
    );
    let seen = nginx.upstream_requests();
    let head = seen.last().expect("the upstream saw the request");
    assert!(head.starts_with("GET /books HTTP/1.1"), "{head}");
    assert!(head.contains("X-Forwarded-For: 127.0.0.1"), "{head}");
    assert!(head.contains("X-Forwarded-Proto: https"), "{head}");
    assert!(head.contains("Host: shop.example.com"), "{head}");
}

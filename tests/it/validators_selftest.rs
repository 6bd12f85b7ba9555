//! Proves each validator helper is real: it accepts a good sample and rejects a broken one.
//! Samples live in tests/validators/{good,bad}/.

use super::support::validators as v;
use std::path::PathBuf;
use std::process::Command;

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

/// A site with `http2 on;` (nginx 1.25.1+) is checked by Debian 13's nginx 1.26, the VM's: it
/// passes there, and this machine's Debian 12 nginx (1.22) would refuse the very same file, so
/// the choice of nginx is what is tested. A misspelt directive still fails on Debian 13's.
#[test]
fn an_http2_on_site_is_checked_by_debian_13s_nginx() {
    if !v::require_all(&["nginx", "openssl"]) {
        return;
    }
    let nginx = v::debian13_bin().join("nginx");
    let version = Command::new(&nginx)
        .arg("-v")
        .output()
        .expect("Debian 13's nginx");
    assert!(
        String::from_utf8_lossy(&version.stderr).contains("nginx/1.26."),
        "{version:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(sample("good/nginx.conf")).unwrap();
    assert!(good.contains("    listen [::]:443 ssl;\n"));
    let http2 = good.replacen(
        "    listen [::]:443 ssl;\n",
        "    listen [::]:443 ssl;\n    http2 on;\n",
        1,
    );
    let file = dir.path().join("http2-on.conf");
    std::fs::write(&file, &http2).unwrap();
    v::nginx_t(&file).unwrap();
    let on_debian_12 = Command::new(v::tool_path("nginx").unwrap())
        .arg("-v")
        .output()
        .unwrap();
    if String::from_utf8_lossy(&on_debian_12.stderr).contains("nginx/1.22.") {
        // The control: the same site through this machine's nginx, as the validator ran it before.
        let prefix = tempfile::tempdir().unwrap();
        let main = prefix.path().join("nginx.conf");
        std::fs::write(
            &main,
            format!(
                "events {{}}\nhttp {{\n    include {};\n}}\n",
                file.display()
            ),
        )
        .unwrap();
        let out = Command::new(v::tool_path("nginx").unwrap())
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&main)
            .arg("-t")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && text.contains("unknown directive \"http2\""),
            "{text}"
        );
    } else {
        eprintln!("note: this machine's nginx is not 1.22: the Debian 12 control did not run");
    }
    let bad = dir.path().join("http2-on-bad.conf");
    std::fs::write(&bad, http2.replacen("proxy_pass", "proxy_passs", 1)).unwrap();
    rejected(v::nginx_t(&bad), "proxy_passs");
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

//! Issue 14 item 14: the VMs run Debian 13 by default, with Docker and Compose v2 from its
//! archive; `validate` refuses an AMI whose archive cannot run the rendered scripts (Debian 12:
//! Compose v1 only) and an nginx version newer than the AMI's, each with where and what to use.

use super::specs;
use crate::support::validators;
use std::path::Path;

fn bookstore(dir: &Path, args: &[&str]) -> (i32, String) {
    let run = super::support::exe::run_in(dir, args);
    (run.code, run.stderr)
}

/// The packages a user-data's cloud-init installs.
fn packages(user_data: &str) -> Vec<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(user_data).unwrap();
    doc["packages"]
        .as_sequence()
        .expect("user-data has `packages`")
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

const OWN: &str =
    "domain:\n  name: shop.bookstore-rs.dev\n  letsencrypt_email: ops@bookstore-rs.dev\n";

#[test]
fn a_debian_12_ami_is_refused_with_where_why_and_the_debian_13_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{OWN}objective2:\n  ami_parameter: /aws/service/debian/release/12/latest/arm64\n");
    std::fs::write(dir.path().join("old.yaml"), text).unwrap();
    for args in [
        &["validate", "--spec", "old.yaml"][..],
        &["gen", "all", "--spec", "old.yaml"][..],
    ] {
        let (code, err) = bookstore(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
        for want in [
            "old.yaml:5:3",
            "objective2.ami_parameter",
            "names Debian 12, whose archive has only Compose v1",
            "use `/aws/service/debian/release/13/latest/arm64` (Debian 13)",
        ] {
            assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
        }
        assert!(
            !err.contains("objective1.ami_parameter"),
            "objective 1 keeps the default:\n{err}"
        );
    }
    assert!(
        !dir.path().join("out").exists(),
        "gen wrote files for a refused spec"
    );
    // Amazon Linux: the scripts use apt and dpkg.
    std::fs::write(
        dir.path().join("al.yaml"),
        format!("{OWN}objective1:\n  ami_parameter: /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64\n"),
    )
    .unwrap();
    let (code, err) = bookstore(dir.path(), &["validate", "--spec", "al.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("neither Debian nor Ubuntu"), "{err}");
}

#[test]
fn an_nginx_newer_than_the_amis_is_refused_with_the_amis_version() {
    let dir = tempfile::tempdir().unwrap();
    let ubuntu =
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id";
    std::fs::write(
        dir.path().join("noble.yaml"),
        format!("{OWN}objective1:\n  ami_parameter: {ubuntu}\n"),
    )
    .unwrap();
    // The default nginx.version (1.26, Debian 13's) uses `http2 on;`, which Ubuntu 24.04's
    // nginx 1.24 does not know.
    let (code, err) = bookstore(dir.path(), &["validate", "--spec", "noble.yaml"]);
    assert_eq!(code, 2, "{err}");
    for want in [
        "nginx.version",
        "`1.26` is newer than the nginx 1.24.0 that objective 1's AMI (Ubuntu 24.04) installs",
        "set `nginx.version: \"1.24.0\"`",
    ] {
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
    std::fs::write(
        dir.path().join("noble-ok.yaml"),
        format!("{OWN}nginx:\n  version: \"1.24\"\nobjective1:\n  ami_parameter: {ubuntu}\n"),
    )
    .unwrap();
    let (code, err) = bookstore(dir.path(), &["validate", "--spec", "noble-ok.yaml"]);
    assert_eq!(code, 0, "{err}");
}

/// Every script and unit the VMs run calls Compose v2 (`docker compose`), and cloud-init installs
/// it from the AMI's archive: Debian 13's `docker-compose` (the CLI plugin) with `docker-cli`
/// (docker.io no longer carries the CLI), Ubuntu's `docker-compose-v2`.
#[test]
fn the_vms_install_and_call_compose_v2() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        for objective in ["objective1", "objective2"] {
            let user_data = specs::file(&rendered, objective, "user-data.yaml");
            let packages = packages(user_data);
            let parameter = if objective == "objective1" {
                &spec.objective1.ami_parameter
            } else {
                &spec.objective2.ami_parameter
            };
            let wanted: &[&str] = if parameter.contains("/ubuntu/") {
                &["docker.io", "docker-compose-v2"]
            } else {
                &["docker.io", "docker-cli", "docker-compose"]
            };
            assert_eq!(
                &packages[..wanted.len()],
                wanted,
                "{name} {objective}: {packages:?}"
            );
            let r = rendered
                .iter()
                .find(|r| r.objective.name() == objective)
                .unwrap();
            for file in &r.files {
                for (n, line) in file.content.lines().enumerate() {
                    let called = line.replace("docker-compose.yml", "");
                    assert!(
                        !called.contains("docker-compose ") && !called.contains("/docker-compose"),
                        "{name}: {objective}/{}:{} calls Compose v1: {line}",
                        file.path,
                        n + 1
                    );
                }
            }
            let scripts = user_data.contains("docker compose -p")
                || r.files
                    .iter()
                    .any(|f| f.content.contains("docker compose -p"));
            assert!(scripts, "{name} {objective}: no `docker compose -p` call");
        }
    }
}

/// Every package that a Debian 13 VM's cloud-init installs is in Debian 13's archive (one missing
/// package fails the whole `packages:` step, and the VM never runs the shop).
#[test]
fn every_package_a_debian_13_vm_installs_is_in_its_archive() {
    if !validators::require_debian13_archive() {
        return;
    }
    let mut checked = 0;
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        for (objective, parameter) in [
            ("objective1", &spec.objective1.ami_parameter),
            ("objective2", &spec.objective2.ami_parameter),
        ] {
            if !parameter.contains("/debian/release/13/") {
                continue;
            }
            for package in packages(specs::file(&rendered, objective, "user-data.yaml")) {
                if let Err(e) = validators::debian13_candidate(&package) {
                    panic!("{name} {objective}: {e}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} packages checked");
}

/// Ubuntu 24.04's archive has no `awscli`: objective 1 runs `aws` from the pinned AWS CLI v2 image
/// on every AMI, with Docker started before the first `aws` call (the data volume's ID, the
/// secrets, the CloudFormation signal).
#[test]
fn objective1_runs_aws_from_the_pinned_image_on_every_ami() {
    let mut ubuntu_24_04 = false;
    for (name, spec) in specs::all() {
        ubuntu_24_04 |= spec
            .objective1
            .ami_parameter
            .contains("/ubuntu/server/24.04/");
        let rendered = specs::render(&spec);
        let user_data = specs::file(&rendered, "objective1", "user-data.yaml");
        assert!(
            !packages(user_data).iter().any(|p| p == "awscli"),
            "{name}: objective 1 installs the `awscli` package"
        );
        let doc: serde_yaml::Value = serde_yaml::from_str(user_data).unwrap();
        let wrapper = doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "/usr/local/bin/aws")
            .unwrap_or_else(|| panic!("{name}: no /usr/local/bin/aws in the user-data"));
        assert_eq!(wrapper["permissions"], "0755", "{name}");
        let exec = format!(
            "exec docker run --rm --network host -e AWS_REGION -e AWS_DEFAULT_REGION {} \"$@\"",
            spec.objective1.aws_cli_image
        );
        let content = wrapper["content"].as_str().unwrap();
        assert!(content.starts_with("#!/bin/sh\n"), "{name}: {content}");
        assert!(
            content.lines().any(|l| l == exec),
            "{name}: the wrapper does not run {exec}:\n{content}"
        );
        let setup = specs::file(&rendered, "objective1", "scripts/setup.sh");
        let at = |needle: &str| {
            setup
                .find(needle)
                .unwrap_or_else(|| panic!("{name}: setup.sh has no `{needle}`"))
        };
        let docker = at("systemctl enable --now docker");
        for first_aws in [
            "if ! systemctl is-active --quiet amazon-ssm-agent",
            "/usr/local/sbin/bookstore-mount-data",
            "signal SUCCESS",
        ] {
            assert!(
                docker < at(first_aws),
                "{name}: setup.sh starts Docker after `{first_aws}`"
            );
        }
    }
    assert!(
        ubuntu_24_04,
        "no test spec runs objective 1 on Ubuntu 24.04"
    );
}

/// Canonical's Ubuntu images run the SSM agent as a snap: the scripts install AWS's Debian package
/// only where there is no agent at all, never a second one beside the snap.
#[test]
fn the_ssm_agent_is_installed_only_where_the_ami_has_none() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        for (objective, script) in [
            ("objective1", "scripts/setup.sh"),
            ("objective2", "scripts/boot.sh"),
        ] {
            let text = specs::file(&rendered, objective, script);
            let install = text
                .lines()
                .position(|l| l.contains("amazon-ssm-agent.deb"))
                .unwrap_or_else(|| panic!("{name}: {objective}/{script} never installs the agent"));
            let guard = text
                .lines()
                .take(install)
                .filter(|l| l.starts_with("if "))
                .last()
                .unwrap_or_else(|| {
                    panic!("{name}: {objective}/{script} installs the agent unguarded")
                });
            assert!(
                guard.contains("! systemctl is-active --quiet amazon-ssm-agent")
                    && guard.contains("! snap list amazon-ssm-agent >/dev/null 2>&1"),
                "{name}: {objective}/{script} guards the agent's install with `{guard}`"
            );
        }
    }
}

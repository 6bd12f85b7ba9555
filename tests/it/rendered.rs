//! Properties of the rendered files that the validators do not check.

use super::specs;

/// Splits an nginx config into its `location` blocks inside `server` blocks that listen on 443.
fn tls_locations(conf: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut server_start = None;
    let chars: Vec<char> = conf.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' => {
                let head: String = chars[..i]
                    .iter()
                    .rev()
                    .take_while(|c| **c != ';' && **c != '}' && **c != '{')
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect();
                if head.trim() == "server" {
                    server_start = Some((i, depth));
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if let Some((start, d)) = server_start {
                    if d == depth {
                        let body: String = chars[start..=i].iter().collect();
                        if body.contains("listen 443") {
                            out.extend(locations(&body));
                        }
                        server_start = None;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn locations(server: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = server;
    while let Some(pos) = rest.find("location ") {
        let after = &rest[pos..];
        let open = after.find('{').expect("location has a block");
        let mut depth = 0;
        let mut end = open;
        for (j, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push(after[..=end].to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn hsts_is_sent_from_every_tls_location() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        let conf = specs::file(&rendered, "objective1", "nginx/bookstore.conf");
        let locs = tls_locations(conf);
        assert!(
            locs.len() >= 2,
            "{name}: expected several TLS locations, found {}",
            locs.len()
        );
        for loc in locs {
            let hsts = format!(
                "Strict-Transport-Security \"max-age={}; includeSubDomains\" always",
                spec.nginx.hsts_max_age
            );
            // Either the location sets headers itself (then it must repeat HSTS), or it inherits them.
            if loc.contains("add_header")
                || loc.contains("include ")
                || loc.contains("security-headers")
            {
                let expanded = loc.contains(&hsts);
                assert!(
                    expanded,
                    "{name}: a location sets headers without HSTS:\n{loc}"
                );
            }
        }
        assert!(
            conf.contains(&format!(
                "add_header Strict-Transport-Security \"max-age={}; includeSubDomains\" always;",
                spec.nginx.hsts_max_age
            )),
            "{name}"
        );
        assert!(conf.contains("server_tokens off;"), "{name}");
        assert!(
            !conf.contains("ssl_stapling on"),
            "{name}: Let's Encrypt ended OCSP"
        );
        let http2 = if bookstore::spec::parse_version(&spec.nginx.version).unwrap() >= (1, 25, 1) {
            "http2 on;"
        } else {
            "listen 443 ssl http2;"
        };
        assert!(
            conf.contains(http2),
            "{name}: expected `{http2}` for nginx {}",
            spec.nginx.version
        );
    }
}

/// One entry of a launch template's `BlockDeviceMappings`, its device name resolved.
struct BlockDevice {
    device: String,
    ebs: serde_yaml::Value,
}

/// The block devices of `LaunchTemplate` in a rendered CloudFormation template. A `!Ref` device
/// name takes the parameter's default, as a deploy without parameter overrides does.
fn block_devices(cfn: &str) -> Vec<BlockDevice> {
    use serde_yaml::Value;
    let doc: Value = serde_yaml::from_str(cfn).expect("the template is YAML");
    let mappings = doc["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
        ["BlockDeviceMappings"]
        .as_sequence()
        .expect("the launch template has BlockDeviceMappings");
    mappings
        .iter()
        .map(|m| {
            let device = match &m["DeviceName"] {
                Value::String(s) => s.clone(),
                Value::Tagged(t) if t.tag == "Ref" => {
                    let param = t.value.as_str().expect("!Ref names a parameter");
                    let p = &doc["Parameters"][param];
                    let default = p["Default"].as_str().expect("the parameter has a default");
                    let allowed: Vec<&str> = p["AllowedValues"]
                        .as_sequence()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    assert!(
                        allowed.is_empty() || allowed.contains(&default),
                        "{param}: default {default} is not among {allowed:?}"
                    );
                    default.to_string()
                }
                other => panic!("DeviceName is neither a string nor a !Ref: {other:?}"),
            };
            BlockDevice {
                device,
                ebs: m["Ebs"].clone(),
            }
        })
        .collect()
}

/// The one block device (the root) of `cfn`'s launch template, checked to be encrypted gp3 of `gb` GiB.
fn encrypted_root(name: &str, cfn: &str, gb: u32) -> String {
    let devices = block_devices(cfn);
    assert_eq!(devices.len(), 1, "{name}: one disk, the root, expected");
    let root = &devices[0];
    assert_eq!(
        root.ebs["Encrypted"].as_bool(),
        Some(true),
        "{name}: {} not encrypted",
        root.device
    );
    assert_eq!(root.ebs["VolumeType"].as_str(), Some("gp3"), "{name}");
    assert_eq!(
        root.ebs["VolumeSize"].as_u64(),
        Some(u64::from(gb)),
        "{name}"
    );
    assert_eq!(
        root.ebs["DeleteOnTermination"].as_bool(),
        Some(true),
        "{name}"
    );
    root.device.clone()
}

#[test]
fn the_instance_requires_imdsv2_and_encrypts_its_disk() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        let cfn = specs::file(&rendered, "objective1", "cloudformation.yaml");
        assert!(
            cfn.contains("HttpTokens: required"),
            "{name}: IMDSv2 not required"
        );
        // eu-staging runs Ubuntu, the others Debian.
        let expected = if name == "eu-staging" {
            "/dev/sda1"
        } else {
            "/dev/xvda"
        };
        assert_eq!(
            encrypted_root(name, cfn, spec.objective1.root_volume_gb),
            expected,
            "{name}: the encrypted volume is not the AMI's root device"
        );
        assert!(
            !cfn.contains("FromPort: 22"),
            "{name}: SSH must not be open"
        );
    }
}

#[test]
fn both_vm_objectives_boot_from_the_root_device_of_their_ami_family() {
    let families = [
        (
            "Debian 13 amd64",
            "/aws/service/debian/release/13/latest/amd64",
            "/dev/xvda",
        ),
        (
            "Debian 13 arm64",
            "/aws/service/debian/release/13/latest/arm64",
            "/dev/xvda",
        ),
        (
            "Ubuntu 24.04",
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
            "/dev/sda1",
        ),
        (
            "Ubuntu 22.04",
            "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
            "/dev/sda1",
        ),
        (
            "Amazon Linux 2023",
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            "/dev/xvda",
        ),
    ];
    for (family, parameter, device) in families {
        let mut spec = bookstore::spec::embedded_default();
        spec.objective1.ami_parameter = parameter.to_string();
        spec.objective2.ami_parameter = parameter.to_string();
        let rendered = specs::render(&spec);
        for (objective, gb) in [
            ("objective1", spec.objective1.root_volume_gb),
            ("objective2", spec.objective2.root_volume_gb),
        ] {
            let cfn = specs::file(&rendered, objective, "cloudformation.yaml");
            assert_eq!(
                encrypted_root(family, cfn, gb),
                device,
                "{family}: {objective} maps its encrypted volume to another device than the AMI boots from"
            );
        }
        // The printed deploy command must not override the derived default.
        let o1 = rendered
            .iter()
            .find(|r| r.objective.name() == "objective1")
            .unwrap();
        assert!(
            !o1.next.contains("RootDeviceName="),
            "{family}: the deploy command overrides RootDeviceName:\n{}",
            o1.next
        );
    }
}

#[test]
fn user_data_stays_under_16_kib() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        let ud = specs::file(&rendered, "objective1", "user-data.yaml");
        assert!(ud.starts_with("#cloud-config\n"), "{name}");
        assert!(
            ud.len() < 16 * 1024,
            "{name}: user-data is {} bytes",
            ud.len()
        );
    }
}

#[test]
fn compose_never_publishes_the_database_and_binds_the_app_to_loopback() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        let compose: serde_yaml::Value =
            serde_yaml::from_str(specs::file(&rendered, "objective1", "docker-compose.yml"))
                .unwrap();
        let services = compose["services"].as_mapping().expect("services");
        for (svc, def) in services {
            let ports: Vec<String> = def["ports"]
                .as_sequence()
                .map(|s| {
                    s.iter()
                        .map(|p| p.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let image = def["image"].as_str().unwrap_or_default();
            if image.starts_with("mysql") {
                assert!(
                    ports.is_empty(),
                    "{name}: database service {svc:?} publishes {ports:?}"
                );
                assert_eq!(image, spec.database.image);
            } else {
                for p in &ports {
                    assert!(
                        p.starts_with("127.0.0.1:"),
                        "{name}: {svc:?} publishes {p} beyond loopback"
                    );
                }
            }
        }
    }
}

#[test]
fn no_secret_value_is_rendered() {
    // The spec holds only references; rendered files must carry parameter names, never values,
    // and never set a password variable to a literal.
    for (name, spec) in specs::all() {
        for r in specs::render(&spec) {
            for f in &r.files {
                for line in f.content.lines() {
                    let l = line.trim();
                    for key in ["PASSWORD=", "PASSWORD: ", "SECRET_KEY=", "SECRET_KEY: "] {
                        if let Some(pos) = l.find(key) {
                            let value = l[pos + key.len()..].trim().trim_matches('"');
                            let is_ref = value.starts_with('$')
                                || value.starts_with("/run/secrets")
                                || value.is_empty()
                                || value.starts_with('{')
                                || value.starts_with("!")
                                || l.contains("_FILE");
                            assert!(
                                is_ref,
                                "{name}: {}/{} sets a literal secret: {line}",
                                r.objective, f.path
                            );
                        }
                    }
                }
            }
        }
    }
    // A spec with a secret value inline is refused, so nothing can be rendered from it.
    let bad = "secrets:\n  database_password: hunter2-hunter2\n";
    assert!(bookstore::spec::parse(bad, bookstore::spec::SpecSource::Embedded).is_err());
}

#[test]
fn committed_out_is_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = tempfile::tempdir().unwrap();
    assert_cmd::Command::cargo_bin("bookstore")
        .unwrap()
        .current_dir(cwd.path())
        .args(["gen", "all", "--check", "--out"])
        .arg(root.join("out"))
        .assert()
        .success();
}

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

#[test]
fn the_instance_requires_imdsv2_and_encrypts_its_disk() {
    for (name, spec) in specs::all() {
        let rendered = specs::render(&spec);
        let cfn = specs::file(&rendered, "objective1", "cloudformation.yaml");
        assert!(
            cfn.contains("HttpTokens: required"),
            "{name}: IMDSv2 not required"
        );
        assert!(
            cfn.contains("Encrypted: true"),
            "{name}: root volume not encrypted"
        );
        assert!(cfn.contains("VolumeType: gp3"), "{name}");
        assert!(
            cfn.contains(&format!("VolumeSize: {}", spec.objective1.root_volume_gb)),
            "{name}"
        );
        assert!(
            !cfn.contains("FromPort: 22"),
            "{name}: SSH must not be open"
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

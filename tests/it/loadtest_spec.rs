//! The spec's `loadtest:` section (bad values with file:line:column) and the commands around
//! the Job: `gen loadtest`, `gen all`, `--explain` and `--strict`.

fn problems(text: &str) -> Vec<String> {
    let source = bookstore::spec::SpecSource::File("bad.yaml".into());
    match bookstore::spec::parse(text, source.clone()) {
        Ok(_) => panic!("spec was accepted but should be refused:\n{text}"),
        Err(e) => e.problems.iter().map(|p| p.render(&source)).collect(),
    }
}

#[test]
fn bad_loadtest_values_are_refused_with_file_line_column() {
    let text = "\
loadtest:
  url: ftp://shop.example.com
  shards: 4
  users: 3
  ramp: soon
  think: 3s..1s
  scenario: mix
  gates:
    max_error_rate_percent: 120
    expect_instances: 0
  namespace: Load_Test
  image: ghcr.io/x/bookstore:latest
  resources:
    cpu: 0m
    memory: 1Mi
";
    assert_eq!(
        problems(text),
        [
            "bad.yaml:2:3: `loadtest.url`: `ftp://shop.example.com` is not a URL the generators can load: it must start with http:// or https://; for example `https://shop.example.com`",
            "bad.yaml:4:3: `loadtest.users`: 3 user(s) cannot be shared by 4 shards: every generator needs at least one user; raise the users or lower `loadtest.shards`",
            "bad.yaml:5:3: `loadtest.ramp`: `soon` is not a duration; use e.g. 30s, 500ms, 2m, 1m30s or 1h",
            "bad.yaml:6:3: `loadtest.think`: `3s..1s`: the shortest pause comes first, e.g. 1s..3s",
            "bad.yaml:7:3: `loadtest.scenario`: `mix` registers accounts, buys real stock and lists books on ftp://shop.example.com. If that shop is yours to write to, set `loadtest.yes_write: true` (the rows are marked: e-mails @loadtest.invalid, titles starting [loadtest]; loadtests/README.md has the cleanup); to read only, use `scenario: browse`",
            "bad.yaml:9:5: `loadtest.gates.max_error_rate_percent`: must be a percentage from 0 to 100, got 120",
            "bad.yaml:10:5: `loadtest.gates.expect_instances`: the instances must be between 1 and 10000, got 0",
            "bad.yaml:11:3: `loadtest.namespace`: `Load_Test` is not a Kubernetes namespace (lowercase letters, digits and dashes)",
            "bad.yaml:12:3: `loadtest.image`: `ghcr.io/x/bookstore:latest` is not a pinned image such as `ghcr.io/owner/bookstore:0.1.0` (repository:tag, not `latest`, or repository@sha256:digest)",
            "bad.yaml:14:5: `loadtest.resources.cpu`: `0m` is not a CPU quantity of at least 100m, such as `500m` or `2`",
            "bad.yaml:15:5: `loadtest.resources.memory`: `1Mi` is not a memory quantity of at least 64Mi, such as `512Mi` or `1Gi`",
        ]
    );
}

#[test]
fn stages_and_a_loopback_url_are_checked_too() {
    let text = "\
loadtest:
  url: http://127.0.0.1:8080
  shards: 10
  stages: \"5:1m,8:2m\"
";
    assert_eq!(
        problems(text),
        [
            "bad.yaml:2:3: `loadtest.url`: `http://127.0.0.1:8080` is this machine's loopback, which inside a generator pod is the pod itself; give the shop's public URL, or null for `https://shop.example.com`",
            "bad.yaml:4:3: `loadtest.stages`: 8 user(s) cannot be shared by 10 shards: every generator needs at least one user; raise the users or lower `loadtest.shards`",
        ]
    );
    let text = "loadtest:\n  stages: \"5:1m,x:2m\"\n";
    assert_eq!(
        problems(text),
        ["bad.yaml:2:3: `loadtest.stages`: stage 2 `x:2m`: `x` is not a number of users up to 1000000; write USERS:DURATION pairs separated by commas, e.g. `60:1m,60:5m,300:2m,300:10m`"]
    );
}

fn bookstore_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let run = super::support::exe::run_in(dir, args);
    (run.code, run.stdout, run.stderr)
}

#[test]
fn gen_loadtest_renders_its_own_folder_and_gen_all_includes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bookstore_in(dir.path(), &["gen", "loadtest"]);
    assert_eq!(code, 0, "{err}");
    let top: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["loadtest"]);
    for f in [
        "job.yaml",
        "namespace.yaml",
        "kustomization.yaml",
        "README.md",
    ] {
        assert!(dir.path().join("out/loadtest").join(f).is_file(), "{f}");
    }
    assert!(out.contains("kubectl apply -k out/loadtest"), "{out}");
    let (code, _, err) = bookstore_in(dir.path(), &["gen", "all"]);
    assert_eq!(code, 0, "{err}");
    assert!(dir
        .path()
        .join("out/objective3/kustomization.yaml")
        .is_file());
    assert!(dir.path().join("out/loadtest/job.yaml").is_file());
}

/// `--strict` refuses a field the rendered target ignores; the Job ignores every deployment
/// setting by design, and the objectives ignore `loadtest.*`: neither is a mistake.
#[test]
fn strict_lets_the_job_and_the_objectives_ignore_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let sets = ["--set", "app.port=8081", "--set", "loadtest.users=30"];
    for target in ["loadtest", "objective3", "all"] {
        let mut args = vec!["gen", target, "--strict", "--explain", "--out", "o"];
        args.extend(sets);
        let (code, out, err) = bookstore_in(dir.path(), &args);
        assert_eq!(code, 0, "gen {target} --strict: {err}");
        if target == "loadtest" {
            let line = |field: &str| {
                out.lines()
                    .find(|l| {
                        l.get(2..)
                            .is_some_and(|l| l.starts_with(&format!("{field} ")))
                    })
                    .unwrap_or_else(|| panic!("no {field} in:\n{out}"))
                    .to_string()
            };
            let l = line("loadtest.users");
            assert!(
                l.starts_with("* ") && l.contains(" honoured ") && l.contains("loadtest/job.yaml"),
                "{l}"
            );
            let l = line("app.port");
            assert!(
                l.starts_with("* ") && l.contains(" ignored ") && l.contains("deploys nothing"),
                "{l}"
            );
            let l = line("objective3.replicas");
            assert!(
                l.contains(" ignored ") && l.ends_with("a setting of objective3 only"),
                "{l}"
            );
        }
    }
    // ...while the Job's own fields still count for the Job: a bad one is refused as bad input.
    let (code, _, err) = bookstore_in(
        dir.path(),
        &["gen", "loadtest", "--set", "loadtest.shards=0"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`loadtest.shards`: the generator pods must be between 1 and 500, got 0"),
        "{err}"
    );
}

/// README.md's "More load than one machine" runs the same commands as the default spec's
/// out/loadtest/README.md, so the two cannot drift apart.
#[test]
fn the_readme_section_runs_the_rendered_commands() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let top = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = top
        .split("### More load than one machine")
        .nth(1)
        .expect("README.md has the section")
        .split("\n### ")
        .next()
        .unwrap();
    let rendered = std::fs::read_to_string(root.join("out/loadtest/README.md")).unwrap();
    let block = rendered
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in out/loadtest/README.md");
    let commands: Vec<&str> = block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert!(commands.len() >= 8, "{commands:?}");
    for c in commands {
        assert!(section.contains(c), "README.md's section lacks `{c}`");
    }
}

//! The load-test Job (`gen loadtest`, out/loadtest/): the validators objective 3 meets
//! (kubernetes-validate --strict, checkov, yamllint, `kubectl kustomize`), the Job's shape, and
//! its arguments, parsed by `bookstore loadtest`'s own parser.

use super::objective3::{docs, kind, s, u};
use super::specs;
use super::support::validators as v;
use bookstore::blueprints::{Objective, Source};
use bookstore::spec::{LoadtestScenario, Spec};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const K8S_VERSION: &str = "1.35.0";
const TIMEOUT: Duration = Duration::from_secs(300);
/// What the pods' environment gives `$(JOB_COMPLETION_INDEX)` and `$(START_AT)` in these tests.
const INDEX: &str = "1";
const START_AT: &str = "2026-12-02T16:00:00Z";

/// The three test specs plus the branches the template has: stages with every gate and a
/// writing scenario, and one shard of one user.
fn all_specs() -> Vec<(String, Spec)> {
    let mut all: Vec<(String, Spec)> = specs::all()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    let mut gated = Spec::default();
    let l = &mut gated.loadtest;
    l.url = Some("http://shop.internal.example.com:8080/".into());
    l.stages = Some("30:1m,30:2m,120:1m,120:5m,30:1m".into());
    l.think = None;
    l.scenario = LoadtestScenario::Mix;
    l.yes_write = true;
    l.shards = 6;
    l.gates.max_p95_ms = Some(750.5);
    l.gates.max_error_rate_percent = Some(0.0);
    l.gates.whole_run = true;
    l.gates.expect_instances = Some(4);
    l.gates.expect_scale_out = true;
    l.gates.expect_scale_in = Some(2);
    all.push(("stages-every-gate".into(), gated));
    let mut one = Spec::default();
    one.loadtest.shards = 1;
    one.loadtest.users = 1;
    all.push(("one-shard".into(), one));
    all
}

/// out/loadtest's files as (path, text).
fn render(spec: &Spec) -> BTreeMap<String, String> {
    bookstore::render::render(spec, &Source::Embedded, Objective::Loadtest, "out/loadtest")
        .expect("the load-test Job renders")
        .files
        .into_iter()
        .map(|f| (f.path, f.content))
        .collect()
}

/// Every spec of [`all_specs`] rendered under one temp dir: `<tmp>/<name>/loadtest/...`.
fn render_all_to_disk() -> (tempfile::TempDir, Vec<(String, Spec, PathBuf)>) {
    // Not a dot-directory: checkov skips hidden folders.
    let tmp = tempfile::Builder::new()
        .prefix("bookstore-loadtest-")
        .tempdir()
        .unwrap();
    let mut out = Vec::new();
    for (name, spec) in all_specs() {
        let dir = tmp.path().join(&name).join("loadtest");
        std::fs::create_dir_all(&dir).unwrap();
        for (path, text) in render(&spec) {
            std::fs::write(dir.join(path), text).unwrap();
        }
        out.push((name, spec, dir));
    }
    (tmp, out)
}

fn manifests(dir: &std::path::Path) -> Vec<PathBuf> {
    ["namespace.yaml", "job.yaml", "networkpolicy.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

fn job(files: &BTreeMap<String, String>) -> Value {
    let all = docs(&files["job.yaml"]);
    assert_eq!(all.len(), 1, "job.yaml holds one object");
    assert_eq!(kind(&all[0]), "Job");
    all[0].clone()
}

fn container(job: &Value) -> &Value {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one generator container");
    &containers[0]
}

/// The container's args as the kubelet hands them to `bookstore` (the image's entrypoint):
/// `$(VAR)` expanded from the pod's environment.
fn argv(job: &Value) -> Vec<String> {
    container(job)["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| {
            s(a).replace("$(JOB_COMPLETION_INDEX)", INDEX)
                .replace("$(START_AT)", START_AT)
        })
        .collect()
}

/// The value after `flag` in `argv` (the flag must be there once).
fn flag<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let at: Vec<usize> = (0..argv.len()).filter(|i| argv[*i] == flag).collect();
    assert!(at.len() <= 1, "{flag} given twice: {argv:?}");
    at.first().map(|i| argv[i + 1].as_str())
}

// ---------------------------------------------------------------------------------------------
// The real validators
// ---------------------------------------------------------------------------------------------

#[test]
fn kubernetes_validate_strict_accepts_the_job_and_namespace() {
    if !v::require("kubernetes-validate") {
        return;
    }
    let (_tmp, rendered) = render_all_to_disk();
    let files: Vec<PathBuf> = rendered.iter().flat_map(|(_, _, d)| manifests(d)).collect();
    let run = v::run(
        Command::new(v::tool_path("kubernetes-validate").unwrap())
            .args(["--strict", "--kubernetes-version", K8S_VERSION])
            .args(&files),
        TIMEOUT,
    )
    .unwrap();
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let problems: Vec<&str> = all
        .lines()
        .filter(|l| {
            l.starts_with("ERROR") || l.starts_with("WARN") || l.contains("Couldn't find schema")
        })
        .collect();
    assert!(
        run.success() && problems.is_empty(),
        "{}",
        run.report(&format!(
            "kubernetes-validate --strict (Kubernetes {K8S_VERSION}) rejected:\n  {}",
            problems.join("\n  ")
        ))
    );
    // Every object was validated (INFO ... passed), none skipped: three per variant.
    let passed = all.lines().filter(|l| l.contains("passed")).count();
    assert!(
        passed >= rendered.len() * 3,
        "only {passed} of {} objects reported as passed:\n{all}",
        rendered.len() * 3
    );
}

/// `checkov --framework kubernetes`, offline: zero failures; the one skip (the image digest) with
/// its reason, once per Job.
#[test]
fn checkov_finds_nothing_in_the_job() {
    if !v::require("checkov") {
        return;
    }
    let (tmp, rendered) = render_all_to_disk();
    let run = v::run(
        Command::new(v::tool_path("checkov").unwrap())
            .args([
                "--framework",
                "kubernetes",
                "--skip-download",
                "--compact",
                "-o",
                "json",
                "-d",
            ])
            .arg(tmp.path())
            .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
            .env("BC_SKIP_MAPPING", "TRUE")
            .env("LOG_LEVEL", "WARNING")
            .env_remove("BC_API_KEY")
            .env_remove("PRISMA_API_URL"),
        TIMEOUT,
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{}",
            run.report(&format!("checkov output is not JSON: {e}"))
        )
    });
    let reports: Vec<&serde_json::Value> = match &json {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let (mut problems, mut resources, mut skipped) = (Vec::new(), 0, BTreeMap::new());
    for report in reports {
        let summary = &report["summary"];
        resources += summary["resource_count"].as_u64().unwrap_or(0);
        if summary["parsing_errors"].as_u64().unwrap_or(0) > 0 {
            problems.push(format!("parsing errors: {summary}"));
        }
        for c in report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            problems.push(format!(
                "FAILED {} \"{}\" on {} in {}",
                c["check_id"], c["check_name"], c["resource"], c["file_path"]
            ));
        }
        for c in report["results"]["skipped_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let comment = c["check_result"]["suppress_comment"]
                .as_str()
                .unwrap_or("")
                .trim();
            if comment.is_empty() || comment == "No comment provided" {
                problems.push(format!("SKIPPED {} without a reason", c["check_id"]));
            }
            *skipped
                .entry(c["check_id"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "checkov:\n  {}\n--- stderr ---\n{}",
        problems.join("\n  "),
        run.stderr
    );
    assert!(
        resources as usize >= rendered.len() * 3,
        "checkov scanned only {resources} resources"
    );
    let expected: BTreeMap<String, usize> = [("CKV_K8S_43".to_string(), rendered.len())].into();
    assert_eq!(skipped, expected, "unexpected checkov skips");
}

#[test]
fn yamllint_accepts_every_yaml_file() {
    if !v::require("yamllint") {
        return;
    }
    let (_tmp, rendered) = render_all_to_disk();
    let files: Vec<PathBuf> = rendered
        .iter()
        .flat_map(|(_, _, d)| v::files_under(d, &[".yaml"]))
        .collect();
    assert_eq!(files.len(), rendered.len() * 4, "{files:?}");
    v::yamllint(&files).unwrap();
}

/// `kubectl kustomize` builds each folder into exactly the Namespace and the Job, the Job in the
/// spec's namespace.
#[test]
fn kubectl_kustomize_builds_the_namespace_and_the_job() {
    if !v::require("kubectl") {
        return;
    }
    let (_tmp, rendered) = render_all_to_disk();
    for (name, spec, dir) in &rendered {
        let run = v::run(
            Command::new(v::tool_path("kubectl").unwrap())
                .arg("kustomize")
                .arg(dir),
            TIMEOUT,
        )
        .unwrap();
        assert!(
            run.success(),
            "{}",
            run.report(&format!("{name}: kubectl kustomize failed"))
        );
        let built = docs(&run.stdout);
        let kinds: Vec<&str> = built.iter().map(kind).collect();
        assert_eq!(kinds, ["Namespace", "Job", "NetworkPolicy"], "{name}");
        assert_eq!(
            s(&built[0]["metadata"]["name"]),
            spec.loadtest.namespace,
            "{name}"
        );
        assert_eq!(
            s(&built[1]["metadata"]["namespace"]),
            spec.loadtest.namespace,
            "{name}"
        );
        assert_eq!(
            s(&built[1]["metadata"]["name"]),
            format!("{}-loadtest", spec.project.name),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What the validators cannot know
// ---------------------------------------------------------------------------------------------

#[test]
fn the_job_is_indexed_runs_each_shard_once_and_is_restricted() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let job = job(&files);
        let l = &spec.loadtest;
        let js = &job["spec"];
        assert_eq!(s(&js["completionMode"]), "Indexed", "{name}");
        assert_eq!(u(&js["completions"]), u64::from(l.shards), "{name}");
        assert_eq!(u(&js["parallelism"]), u64::from(l.shards), "{name}");
        assert_eq!(
            u(&js["backoffLimitPerIndex"]),
            0,
            "{name}: a shard is never re-run"
        );
        assert!(
            js["maxFailedIndexes"].is_null(),
            "{name}: one failed shard must not stop the others"
        );
        assert_eq!(u(&js["ttlSecondsAfterFinished"]), 86_400, "{name}");
        let rules = js["podFailurePolicy"]["rules"].as_sequence().unwrap();
        let by_code: BTreeMap<u64, &str> = rules
            .iter()
            .map(|r| {
                assert_eq!(s(&r["onExitCodes"]["containerName"]), "loadtest", "{name}");
                assert_eq!(s(&r["onExitCodes"]["operator"]), "In", "{name}");
                let codes = r["onExitCodes"]["values"].as_sequence().unwrap();
                assert_eq!(codes.len(), 1, "{name}");
                (u(&codes[0]), s(&r["action"]))
            })
            .collect();
        assert_eq!(by_code, [(2, "FailJob"), (3, "FailIndex")].into(), "{name}");
        // The deadline leaves the planned load, the stop grace and the start allowance.
        let planned = l.planned_seconds().unwrap();
        assert_eq!(
            u(&js["activeDeadlineSeconds"]),
            planned + 40 + 600,
            "{name}"
        );

        let pod = &js["template"]["spec"];
        assert_eq!(s(&pod["restartPolicy"]), "Never", "{name}");
        assert_eq!(
            pod["automountServiceAccountToken"],
            Value::Bool(false),
            "{name}"
        );
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"],
            Value::Bool(true),
            "{name}"
        );
        assert_eq!(
            s(&pod["securityContext"]["seccompProfile"]["type"]),
            "RuntimeDefault"
        );
        let c = container(&job);
        assert_eq!(s(&c["name"]), "loadtest");
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], Value::Bool(true), "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true), "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false), "{name}");
        assert_eq!(
            sc["capabilities"]["drop"][0].as_str(),
            Some("ALL"),
            "{name}"
        );
        assert_eq!(s(&sc["seccompProfile"]["type"]), "RuntimeDefault", "{name}");
        let r = &c["resources"];
        assert_eq!(r["requests"], r["limits"], "{name}: Guaranteed QoS");
        assert_eq!(s(&r["limits"]["cpu"]), l.resources.cpu, "{name}");
        assert_eq!(s(&r["limits"]["memory"]), l.resources.memory, "{name}");
        let image = s(&c["image"]);
        match &l.image {
            Some(i) => assert_eq!(image, i, "{name}"),
            None => assert_eq!(
                image,
                bookstore::image::reference(
                    bookstore::image::Kind::Cli,
                    &spec.app.image,
                    &spec.app.tag
                ),
                "{name}: the image `bookstore image build --cli` names"
            ),
        }
        // $(JOB_COMPLETION_INDEX) and $(START_AT) come from the container's own env: the index from
        // the Job's annotation, the start from the ConfigMap README.md creates.
        let env: BTreeMap<&str, &Value> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| (s(&e["name"]), &e["valueFrom"]))
            .collect();
        assert_eq!(
            s(&env["JOB_COMPLETION_INDEX"]["fieldRef"]["fieldPath"]),
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        let cm = format!("{}-loadtest-start", spec.project.name);
        assert_eq!(s(&env["START_AT"]["configMapKeyRef"]["name"]), cm, "{name}");
        assert_eq!(s(&env["START_AT"]["configMapKeyRef"]["key"]), "START_AT");
        // The NetworkPolicy lets nothing in and the generators out to DNS and the target's port.
        let np = &docs(&files["networkpolicy.yaml"])[0];
        assert_eq!(kind(np), "NetworkPolicy");
        let pod_labels = &js["template"]["metadata"]["labels"];
        for (k, v) in np["spec"]["podSelector"]["matchLabels"]
            .as_mapping()
            .unwrap()
        {
            assert_eq!(
                &pod_labels[s(k)],
                v,
                "{name}: the policy selects the generators"
            );
        }
        assert!(
            np["spec"]["ingress"].is_null(),
            "{name}: no ingress rule: nothing gets in"
        );
        let want_port: u64 = match l
            .target_url(&spec.domain.name)
            .split('/')
            .nth(2)
            .unwrap()
            .rsplit_once(':')
        {
            Some((_, p)) => p.parse().unwrap(),
            None if l.target_url(&spec.domain.name).starts_with("http://") => 80,
            None => 443,
        };
        assert_eq!(
            u(&np["spec"]["egress"][1]["ports"][0]["port"]),
            want_port,
            "{name}"
        );
        let readme = &files["README.md"];
        assert!(
            readme.contains(&format!(
                "kubectl -n {} create configmap {cm} \\\n  --from-literal=START_AT=\"$(date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ)\"",
                l.namespace
            )),
            "{name}: README.md creates the ConfigMap the Job reads:\n{readme}"
        );
    }
}

/// The rendered argv, parsed by `bookstore loadtest`'s own clap parser and checked by its own
/// `validate`, says what the spec says. `--shard`, `--start-at` and `--result-stdout` come from the
/// shards work on another branch: until it is merged they are checked as text and left out of
/// the parse (see /work/notes/ljob.md: after the merge, parse the whole argv).
#[test]
fn the_rendered_args_parse_with_the_loadtest_parser() {
    use bookstore::cli::{Cli, Command as Cmd};
    use clap::Parser as _;
    for (name, spec) in all_specs() {
        let job = job(&render(&spec));
        let l = &spec.loadtest;
        let argv = argv(&job);
        assert_eq!(
            argv[0], "loadtest",
            "{name}: the image's entrypoint is `bookstore`"
        );
        // The shard arguments, exactly as the CLI side takes them (0-based index / shards).
        let n = argv.len();
        assert_eq!(
            &argv[n - 5..],
            [
                "--shard".to_string(),
                format!("{INDEX}/{}", l.shards),
                "--start-at".into(),
                START_AT.into(),
                "--result-stdout".into()
            ],
            "{name}"
        );
        let raw = container(&job)["args"].as_sequence().unwrap().clone();
        assert_eq!(
            s(&raw[n - 4]),
            format!("$(JOB_COMPLETION_INDEX)/{}", l.shards),
            "{name}"
        );
        assert_eq!(s(&raw[n - 2]), "$(START_AT)", "{name}");

        // Everything before them through the real parser.
        let cli = Cli::try_parse_from(
            std::iter::once("bookstore").chain(argv[..n - 5].iter().map(String::as_str)),
        )
        .unwrap_or_else(|e| panic!("{name}: {argv:?} does not parse: {e}"));
        let Cmd::Loadtest(a) = cli.command else {
            panic!("{name}: not `bookstore loadtest`")
        };
        bookstore_loadtests::args::validate(&a)
            .unwrap_or_else(|e| panic!("{name}: `bookstore loadtest` refuses {argv:?}: {e}"));
        assert_eq!(a.url, l.target_url(&spec.domain.name), "{name}");
        assert_eq!(a.scenario.name(), l.scenario.name(), "{name}");
        assert_eq!(a.yes_write, l.yes_write, "{name}");
        match &l.stages {
            Some(stages) => {
                let want = bookstore_loadtests::shape::parse_stages(stages).unwrap();
                assert_eq!(a.stages.as_ref(), Some(&want), "{name}");
                assert!(flag(&argv, "--users").is_none(), "{name}");
            }
            None => {
                assert!(a.stages.is_none(), "{name}");
                assert_eq!(a.users, l.users as usize, "{name}");
                assert_eq!(
                    a.ramp,
                    bookstore_loadtests::parse_duration(&l.ramp).unwrap(),
                    "{name}"
                );
                assert_eq!(
                    a.duration,
                    bookstore_loadtests::parse_duration(&l.duration).unwrap(),
                    "{name}"
                );
            }
        }
        // The spec's own plan length agrees with the parser's: the Job's deadline is computed from it.
        assert_eq!(
            a.plan().total().as_secs(),
            l.planned_seconds().unwrap(),
            "{name}"
        );
        assert_eq!(
            a.think,
            l.think
                .as_deref()
                .map(|t| bookstore_loadtests::shape::parse_think(t).unwrap()),
            "{name}"
        );
        let g = &l.gates;
        assert_eq!(a.max_p95, g.max_p95_ms, "{name}");
        assert_eq!(a.max_error_rate, g.max_error_rate_percent, "{name}");
        assert_eq!(a.gate_whole_run, g.whole_run, "{name}");
        assert_eq!(
            a.expect_instances,
            g.expect_instances.map(|n| n as usize),
            "{name}"
        );
        assert_eq!(a.expect_scale_out, g.expect_scale_out, "{name}");
        assert_eq!(
            a.expect_scale_in,
            g.expect_scale_in.map(|n| n as usize),
            "{name}"
        );
    }
}

/// README.md's collect and merge commands name the rendered Job and namespace, with the flags the
/// CLI side takes.
#[test]
fn the_readme_collects_this_job_and_merges_its_results() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let readme = &files["README.md"];
        let l = &spec.loadtest;
        for line in [
            format!(
                "bookstore loadtest collect --job {}-loadtest --namespace {} --out loadtest-results",
                spec.project.name, l.namespace
            ),
            "bookstore loadtest merge loadtest-results".to_string(),
            format!("kubectl -n {} delete job {}-loadtest --ignore-not-found", l.namespace, spec.project.name),
            "kubectl apply -k out/loadtest".to_string(),
            "bookstore image build --cli && bookstore image push --cli".to_string(),
        ] {
            assert!(readme.contains(&line), "{name}: README.md lacks `{line}`:\n{readme}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The spec section and the command
// ---------------------------------------------------------------------------------------------

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
    let out = Command::new(env!("CARGO_BIN_EXE_bookstore"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run bookstore");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let sets = [
        "--set",
        "app.port=8081",
        "--set",
        "loadtest.users=30",
    ];
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

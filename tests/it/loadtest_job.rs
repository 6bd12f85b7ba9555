//! The load-test Job (`gen loadtest`, out/loadtest/) through the validators objective 3 meets:
//! kubernetes-validate --strict, checkov, yamllint, `kubectl kustomize`. The helpers here render it
//! for tests/it/loadtest_job_args.rs too.

use super::objective3::{docs, kind, s};
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
/// What the pods' environment gives `$(JOB_COMPLETION_INDEX)` (the first pod: every Job has one) and
/// `$(START_AT)` in these tests.
pub(super) const INDEX: &str = "0";
pub(super) const START_AT: &str = "2026-12-02T16:00:00Z";

/// The three test specs plus the branches the template has: stages with every gate and a
/// writing scenario, and one shard of one user.
pub(super) fn all_specs() -> Vec<(String, Spec)> {
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
pub(super) fn render(spec: &Spec) -> BTreeMap<String, String> {
    bookstore::render::render(spec, &Source::Embedded, Objective::Loadtest, "out/loadtest")
        .expect("the load-test Job renders")
        .files
        .into_iter()
        .map(|f| (f.path, f.content))
        .collect()
}

/// Every spec of [`all_specs`] rendered under one temp dir: `<tmp>/<name>/loadtest/...`.
pub(super) fn render_all_to_disk() -> (tempfile::TempDir, Vec<(String, Spec, PathBuf)>) {
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

pub(super) fn manifests(dir: &std::path::Path) -> Vec<PathBuf> {
    ["namespace.yaml", "job.yaml", "networkpolicy.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

pub(super) fn job(files: &BTreeMap<String, String>) -> Value {
    let all = docs(&files["job.yaml"]);
    assert_eq!(all.len(), 1, "job.yaml holds one object");
    assert_eq!(kind(&all[0]), "Job");
    all[0].clone()
}

pub(super) fn container(job: &Value) -> &Value {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one generator container");
    &containers[0]
}

/// The container's args as the kubelet hands them to `bookstore` (the image's entrypoint):
/// `$(VAR)` expanded from the pod's environment.
pub(super) fn argv(job: &Value) -> Vec<String> {
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
pub(super) fn flag<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
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

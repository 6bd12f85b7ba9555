//! Objective 3's README commands, as kubectl itself reads them (issue 15: the "day two" section
//! verified). Every `kubectl` command of the README (code blocks and inline spans, pipes and
//! here-documents included) runs with the real kubectl, from the folder that holds `out/`, against
//! a kubeconfig whose server is a closed port on 127.0.0.1: a command kubectl accepts either
//! succeeds on its own (`create ... --dry-run=client`, `kustomize`) or stops at "connection
//! refused"; a wrong flag, subcommand, resource type, file or kustomization stops before that.

use super::objective3::{all_specs, render, TIMEOUT};
use super::support::validators as v;
use bookstore::spec::Spec;
use std::path::Path;
use std::process::Command;

/// A shell command line of the README that runs kubectl, and its here-document, if any.
#[derive(Debug, Clone)]
struct Line {
    text: String,
    stdin: Option<String>,
}

/// Every kubectl command of `readme`: lines of ```sh blocks (continuations joined, comments
/// dropped) and inline `kubectl ...` spans.
fn kubectl_lines(readme: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut lines = readme.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("```") {
            in_sh = !in_sh && l.trim() == "```sh";
            continue;
        }
        if in_sh {
            let mut text = l.trim_end().to_string();
            while text.ends_with('\\') {
                text.pop();
                text.push(' ');
                text.push_str(lines.next().unwrap_or("").trim());
            }
            let text = match text.find("  # ") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            if !text.contains("kubectl ") {
                continue;
            }
            let stdin = text.trim_end().ends_with("<<'YAML'").then(|| {
                let mut body = String::new();
                for b in lines.by_ref() {
                    if b == "YAML" {
                        break;
                    }
                    body.push_str(b);
                    body.push('\n');
                }
                body
            });
            let text = text
                .trim_end()
                .trim_end_matches("<<'YAML'")
                .trim()
                .to_string();
            out.push(Line { text, stdin });
        } else {
            for (i, _) in l.match_indices("`kubectl ") {
                let rest = &l[i + 1..];
                if let Some(end) = rest.find('`') {
                    // `kubectl apply -k` in prose names the command; `--replicas=N` is yours to fill.
                    let text = rest[..end].replace("=N", "=3");
                    if !text.ends_with(" -k") {
                        out.push(Line { text, stdin: None });
                    }
                }
            }
        }
    }
    out
}

/// What kubectl prints when it refuses a command line before reaching the server.
const REFUSALS: &[&str] = &[
    "unknown flag",
    "unknown shorthand",
    "unknown command",
    "invalid argument",
    "required flag",
    "error: unable to",
    "no such file",
    "must specify",
    "accepts ",
    "Usage:",
    "error: flag needs an argument",
    "doesn't have a resource type",
    "no objects passed",
    "invalid GroupVersionKind",
];

/// Runs `line` with bash from `cwd` (which holds `out/objective3`); Err(report) when kubectl
/// refused it.
fn check(line: &Line, cwd: &Path, env: &[(&str, String)]) -> Result<(), String> {
    let mut script = format!("set -o pipefail; {}", line.text);
    if let Some(body) = &line.stdin {
        let file = cwd.join("stdin.yaml");
        std::fs::write(&file, body).unwrap();
        script.push_str(&format!(" <'{}'", file.display()));
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(script).current_dir(cwd);
    for (k, val) in env {
        cmd.env(k, val);
    }
    let run = v::run(&mut cmd, TIMEOUT)?;
    let all = format!("{}{}", run.stdout, run.stderr);
    let refused = REFUSALS.iter().find(|r| all.contains(*r));
    let reached = run.success()
        || all.contains("connection refused")
        || all.contains("The connection to the server 127.0.0.1:9 was refused");
    match (refused, reached) {
        (None, true) => Ok(()),
        (Some(r), _) => Err(run.report(&format!("kubectl refused it ({r:?})"))),
        (None, false) => Err(run.report("neither ran nor reached the (closed) server")),
    }
}

/// A scratch folder with `out/objective3` rendered from `spec`, the kubeconfig, the files the
/// README's `$dir` and `$f` stand for, and kubectl on PATH.
fn workspace(spec: &Spec) -> (tempfile::TempDir, Vec<(&'static str, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    for (path, text) in render(spec) {
        let file = tmp.path().join("out/objective3").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let kubeconfig = tmp.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:9\"}}]\n\
         contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n\
         current-context: c\n",
    )
    .unwrap();
    // What step 2 writes before its kubectl commands run.
    let dir = tmp.path().join("secrets");
    for (sub, keys) in [
        (
            "app",
            &["database-password", "secret-key", "admin-password"][..],
        ),
        ("master", &["password"][..]),
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for k in keys {
            std::fs::write(dir.join(sub).join(k), "a-value-of-sixteen-or-more").unwrap();
        }
    }
    let pem = tmp.path().join("bundle.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let kubectl_dir = v::tool_path("kubectl")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        kubectl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = vec![
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("PATH", path),
        ("dir", dir.display().to_string()),
        ("f", pem.display().to_string()),
    ];
    (tmp, env)
}

/// Every kubectl command of the README, day two included (upgrade, roll back, rotate, prune,
/// second environment), for the variants of [`all_specs`] that differ in what the README says.
#[test]
fn every_kubectl_command_of_the_readme_is_one_kubectl_accepts() {
    if !v::require("kubectl") {
        return;
    }
    let must = [
        "rollout undo deployment/",
        "rollout status deployment/",
        "rollout restart deployment/",
        "--prune -l bookstore/stack=",
        "create secret generic",
        "create configmap",
        "delete job ",
        "get configmap -l bookstore/stack=",
        "wait job/",
        "delete -k out/objective3",
    ];
    let mut ran = 0;
    for (name, spec) in all_specs()
        .into_iter()
        .filter(|(n, _)| !n.contains("autoscale_false") && !n.starts_with("ingress-nfs"))
    {
        let readme = &render(&spec)["README.md"];
        let lines = kubectl_lines(readme);
        for m in must {
            if m == "create secret generic"
                && spec.objective3.secrets_source == bookstore::spec::SecretsSource::ExternalSecrets
            {
                continue;
            }
            assert!(
                lines.iter().any(|l| l.text.contains(m)),
                "{name}: the README has no `kubectl ... {m}` command"
            );
        }
        let (tmp, env) = workspace(&spec);
        for line in &lines {
            check(line, tmp.path(), &env)
                .unwrap_or_else(|e| panic!("{name}: `{}`\n{e}", line.text));
            ran += 1;
        }
    }
    assert!(ran > 50, "only {ran} commands ran");
}

/// The control: a misspelt subcommand, a wrong flag, a file that is not there and a command
/// that never reaches the server are each caught.
#[test]
fn the_readme_command_check_catches_what_kubectl_refuses() {
    if !v::require("kubectl") {
        return;
    }
    let spec = Spec::default();
    let (tmp, env) = workspace(&spec);
    let bad = [
        "kubectl -n bookstore rollout undoo deployment/bookstore",
        "kubectl -n bookstore rollout undo deployment/bookstore --to-revison=2",
        "kubectl apply -k out/objective4",
        "kubectl -n bookstore create configmap x --from-file=ca.pem=/nonexistent/ca.pem --dry-run=client -o yaml",
        "false kubectl",
    ];
    for text in bad {
        let line = Line {
            text: text.into(),
            stdin: None,
        };
        assert!(
            check(&line, tmp.path(), &env).is_err(),
            "`{text}` passed the check"
        );
    }
    let good = Line {
        text: "kubectl -n bookstore rollout undo deployment/bookstore --to-revision=2".into(),
        stdin: None,
    };
    check(&good, tmp.path(), &env).unwrap();
}

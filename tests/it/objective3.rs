//! Objective 3 (Kubernetes and Docker Swarm): the real validators on every rendered manifest, and
//! assertions on what the validators cannot know (selectors, ports, probes, numbers from the spec),
//! for the three test specs and for every combination of the spec's choices.

use super::specs;
use super::support::validators as v;
use bookstore::spec::{Routing, SecretsSource, SharedStorage, Spec};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Kubernetes version the manifests are validated against (kubernetes-validate's bundled
/// schemas; EKS standard support covers it).
const K8S_VERSION: &str = "1.35.0";

/// Kinds from CRDs (cert-manager, Gateway API, Envoy Gateway, External Secrets): no bundled schema,
/// so [`crd_objects_are_well_formed`] checks them by assertion. Any other kind without a schema fails.
const CRD_KINDS: &[&str] = &[
    "Issuer",
    "Gateway",
    "HTTPRoute",
    "BackendTrafficPolicy",
    "EnvoyProxy",
    "ClientTrafficPolicy",
    "Middleware",
    "SecretStore",
    "ExternalSecret",
];

/// Kinds that are not namespaced (no cluster-scoped custom resource: the Issuers are namespaced).
const CLUSTER_KINDS: &[&str] = &["Namespace", "PersistentVolume"];

pub(super) const TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Specs and rendering
// ---------------------------------------------------------------------------------------------

/// The three test specs plus every combination of routing x storage x secrets x autoscale on top
/// of the default spec.
pub(super) fn all_specs() -> Vec<(String, Spec)> {
    let mut all: Vec<(String, Spec)> = specs::all()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    for routing in [Routing::Gateway, Routing::Ingress] {
        for storage in [SharedStorage::EfsCsi, SharedStorage::Nfs] {
            for secrets in [SecretsSource::Manual, SecretsSource::ExternalSecrets] {
                for autoscale in [true, false] {
                    let mut s = Spec::default();
                    s.objective3.routing = routing;
                    s.objective3.shared_storage = storage;
                    s.objective3.secrets_source = secrets;
                    s.objective3.autoscale = autoscale;
                    let name = format!("{routing:?}-{storage:?}-{secrets:?}-autoscale_{autoscale}");
                    all.push((name.to_lowercase(), s));
                }
            }
        }
    }
    // The RDS-managed password by hand (eu-staging has it through External Secrets, small-ap an
    // IP database, eu-staging a Traefik Ingress).
    let mut rds = Spec::default();
    rds.objective3.database_secret_arn = Some(RDS_SECRET_ARN.into());
    rds.objective3.app_database_secret_arn = Some(APP_SECRET_ARN.into());
    all.push(("manual-rds-secret".into(), rds));
    all
}

/// Objective 2's AppDatabaseSecret (the shop's own user).
pub(super) const APP_SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:bookstore-production-db-shop-AbCdEf";

pub(super) const RDS_SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-0a1b2c3d-4e5f-6789-abcd-ef0123456789-AbCdEf";

/// objective3's files as (path, text); only objective 3 is rendered (the tests call this for
/// every variant, many times).
pub(super) fn render(spec: &Spec) -> BTreeMap<String, String> {
    bookstore::render::render(
        spec,
        &bookstore::blueprints::Source::Embedded,
        bookstore::blueprints::Objective::Objective3,
        "out/objective3",
    )
    .expect("objective3 renders")
    .files
    .into_iter()
    .map(|f| (f.path, f.content))
    .collect()
}

/// Renders every spec of [`all_specs`] under one temp dir: `<tmp>/<name>/objective3/...`.
pub(super) fn render_all_to_disk() -> (tempfile::TempDir, Vec<(String, Spec, PathBuf)>) {
    // Not a dot-directory (tempfile's default `.tmpXXXX`): checkov skips hidden folders.
    let tmp = tempfile::Builder::new()
        .prefix("bookstore-objective3-")
        .tempdir()
        .unwrap();
    let mut out = Vec::new();
    for (name, spec) in all_specs() {
        let dir = tmp.path().join(&name).join("objective3");
        for (path, text) in render(&spec) {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        out.push((name, spec, dir));
    }
    (tmp, out)
}

pub(super) fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize as _;

/// Every Kubernetes object in the files under `k8s/`, with the file it came from.
pub(super) fn objects(files: &BTreeMap<String, String>) -> Vec<(String, Value)> {
    files
        .iter()
        .filter(|(p, _)| p.starts_with("k8s/") && p.ends_with(".yaml"))
        .flat_map(|(p, t)| docs(t).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}

/// The shop's settings: `k8s/config.env`, which kustomize turns into the ConfigMap.
pub(super) fn config_env(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files["k8s/config.env"]
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub(super) fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or("")
}

pub(super) fn find<'a>(objs: &'a [(String, Value)], k: &str) -> Vec<&'a Value> {
    objs.iter()
        .filter(|(_, o)| kind(o) == k)
        .map(|(_, o)| o)
        .collect()
}

pub(super) fn one<'a>(objs: &'a [(String, Value)], k: &str) -> &'a Value {
    let found = find(objs, k);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, found {}",
        found.len()
    );
    found[0]
}

/// The shop's NetworkPolicy (the user Job has its own).
fn shop_policy<'a>(objs: &'a [(String, Value)], spec: &Spec) -> &'a Value {
    find(objs, "NetworkPolicy")
        .into_iter()
        .find(|o| o["metadata"]["name"] == spec.project.name.as_str())
        .expect("the shop's NetworkPolicy")
}

pub(super) fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

pub(super) fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {v:?}"))
}

pub(super) fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (s(k).to_string(), s(v).to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn is_subset(sel: &BTreeMap<String, String>, of: &BTreeMap<String, String>) -> bool {
    !sel.is_empty() && sel.iter().all(|(k, v)| of.get(k) == Some(v))
}

pub(super) fn kustomize_resources(files: &BTreeMap<String, String>) -> Vec<String> {
    let k = &docs(&files["kustomization.yaml"])[0];
    k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| s(r).to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The real validators
// ---------------------------------------------------------------------------------------------

#[test]
fn kubernetes_validate_strict_accepts_every_manifest() {
    if !v::require("kubernetes-validate") {
        return;
    }
    let (_tmp, rendered) = render_all_to_disk();
    // One run for everything: the tool's start-up dominates.
    let files: Vec<PathBuf> = rendered
        .iter()
        .flat_map(|(_, _, dir)| v::files_under(&dir.join("k8s"), &[".yaml"]))
        .collect();
    let run = v::run(
        Command::new(v::tool_path("kubernetes-validate").unwrap())
            .args(["--strict", "--kubernetes-version", K8S_VERSION])
            .args(&files),
        TIMEOUT,
    )
    .unwrap();
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let mut problems: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("ERROR") || l.contains("Couldn't find schema"))
        .filter(|l| {
            // A CRD kind is allowed to have no schema; a built-in kind never is.
            !(l.contains("Couldn't find schema")
                && CRD_KINDS
                    .iter()
                    .any(|k| l.contains(&format!("schema for kind {k} "))))
        })
        .collect();
    if !run.success() && problems.is_empty() {
        problems.push("exited unsuccessfully");
    }
    assert!(
        problems.is_empty(),
        "{}",
        run.report(&format!(
            "kubernetes-validate --strict (Kubernetes {K8S_VERSION}) rejected:\n  {}",
            problems.join("\n  ")
        ))
    );
    // Each built-in object was really validated (INFO ... passed), not silently skipped.
    let passed = all.lines().filter(|l| l.contains("passed")).count();
    let builtin: usize = rendered
        .iter()
        .map(|(_, _, dir)| {
            v::files_under(&dir.join("k8s"), &[".yaml"])
                .iter()
                .flat_map(|f| docs(&std::fs::read_to_string(f).unwrap()))
                .filter(|o| !CRD_KINDS.contains(&kind(o)))
                .count()
        })
        .sum();
    assert!(
        passed >= builtin,
        "only {passed} of {builtin} built-in objects reported as passed:\n{all}"
    );
}

/// The custom resources (no schema in kubernetes-validate) against the strict schemas in
/// tests/schemas/objective3-crds.yaml, with the venv's pinned jsonschema (draft 7). Every CRD
/// object of every variant must have a schema there.
#[test]
fn custom_resources_match_the_shipped_schemas() {
    if !v::require("kubernetes-validate") {
        return;
    }
    let python = v::venv_bin().join("python");
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/objective3-crds.yaml");
    let (_tmp, rendered) = render_all_to_disk();
    let files: Vec<PathBuf> = rendered
        .iter()
        .flat_map(|(_, _, dir)| v::files_under(&dir.join("k8s"), &[".yaml"]))
        .collect();
    const SCRIPT: &str = r#"
import sys, yaml, jsonschema
schemas = yaml.safe_load(open(sys.argv[1]))["schemas"]
crd_kinds = sys.argv[2].split(",")
bad = n = 0
for path in sys.argv[3:]:
    for o in yaml.safe_load_all(open(path)):
        if not o or o.get("kind") not in crd_kinds:
            continue
        key = f"{o.get('apiVersion')} {o.get('kind')}"
        n += 1
        if key not in schemas:
            bad += 1
            print(f"{path}: no schema for {key}")
            continue
        for e in jsonschema.Draft7Validator(schemas[key]).iter_errors(o):
            bad += 1
            where = "/".join(map(str, e.absolute_path))
            print(f"{path}: {key} {o['metadata'].get('name')}: /{where}: {e.message}")
print(f"checked {n} custom resources, {bad} problems")
sys.exit(1 if bad or not n else 0)
"#;
    let run = v::run(
        Command::new(&python)
            .args(["-c", SCRIPT])
            .arg(&schemas)
            .arg(CRD_KINDS.join(","))
            .args(&files),
        TIMEOUT,
    )
    .unwrap();
    assert!(
        run.success(),
        "{}",
        run.report("custom resources do not match tests/schemas/objective3-crds.yaml")
    );
}

/// `checkov --framework kubernetes`, offline, over every rendered k8s/ folder: zero failures,
/// every skip carrying its reason (in the resource's `checkov.io/skipN` annotation).
#[test]
fn checkov_finds_nothing_in_the_manifests() {
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
    let mut problems = Vec::new();
    let mut resources = 0;
    let mut skipped = BTreeMap::new();
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
    // Every rendered folder has its Deployment and more; a folder checkov did not read would
    // lower the count.
    assert!(
        resources as usize >= rendered.len() * 10,
        "checkov scanned only {resources} resources"
    );
    // The only skips: the two justified in deployment.yaml, once per rendered Deployment, and
    // the pinned tag once more for the user Job (database-user.yaml).
    let expected: BTreeMap<String, usize> = [
        ("CKV_K8S_11".to_string(), rendered.len()),
        ("CKV_K8S_43".to_string(), 2 * rendered.len()),
    ]
    .into();
    assert_eq!(skipped, expected, "unexpected checkov skips");
}

/// `kubectl kustomize` builds every kustomization; the result holds exactly the listed files'
/// objects, namespaced ones in the spec's namespace and cluster-scoped ones in none.
#[test]
fn kubectl_kustomize_builds_every_kustomization() {
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
        let files = render(spec);
        let listed = kustomize_resources(&files);
        // The listed files' objects plus the ConfigMap generated from k8s/config.env.
        let expected: usize = listed.iter().map(|p| docs(&files[p]).len()).sum::<usize>() + 1;
        assert_eq!(built.len(), expected, "{name}: object count");
        let generated: Vec<&Value> = built.iter().filter(|o| kind(o) == "ConfigMap").collect();
        assert_eq!(generated.len(), 1, "{name}");
        let cm_name = s(&generated[0]["metadata"]["name"]);
        assert!(
            cm_name.starts_with(&format!("{}-config-", spec.project.name)),
            "{name}: {cm_name} has no content hash"
        );
        assert_eq!(
            labels(&generated[0]["data"]),
            config_env(&files),
            "{name}: the ConfigMap holds k8s/config.env"
        );
        assert_eq!(
            s(&generated[0]["metadata"]["labels"]["bookstore/stack"]),
            format!("{}-{}", spec.project.name, spec.project.environment)
        );
        for o in &built {
            let ns = o["metadata"]["namespace"].as_str();
            if CLUSTER_KINDS.contains(&kind(o)) {
                assert_eq!(
                    ns,
                    None,
                    "{name}: cluster-scoped {} has a namespace",
                    kind(o)
                );
            } else {
                assert_eq!(
                    ns,
                    Some(spec.objective3.namespace.as_str()),
                    "{name}: {} {:?}",
                    kind(o),
                    o["metadata"]["name"]
                );
            }
            if kind(o) == "Deployment" {
                let from = &o["spec"]["template"]["spec"]["containers"][0]["envFrom"][0];
                assert_eq!(
                    s(&from["configMapRef"]["name"]),
                    cm_name,
                    "{name}: the Deployment names the generated ConfigMap, so a change rolls the pods"
                );
                let image = s(&o["spec"]["template"]["spec"]["containers"][0]["image"]);
                assert_eq!(
                    image,
                    format!("{}:{}", spec.app.image, spec.app.tag),
                    "{name}"
                );
            }
        }
    }
}

/// The docker CLIs to check the Swarm stack with: Debian 12's (`scripts/install-validators`
/// installs docker.io, whose CLI is 20.10), Debian 13's (26.1, `scripts/debian13-tools`), and
/// the one on PATH when it is another file (a newer Docker), so the stack deploys with each.
fn docker_clis() -> Vec<PathBuf> {
    let mut clis = vec![
        PathBuf::from("/usr/bin/docker"),
        v::debian13_bin().join("docker"),
    ];
    if let Some(other) = v::tool_path("docker") {
        let canonical = std::fs::canonicalize(&other).ok();
        if !clis
            .iter()
            .any(|c| std::fs::canonicalize(c).ok() == canonical)
        {
            clis.push(other);
        }
    }
    clis
}

/// `docker stack deploy` with no daemon: the CLI loads the stack with swarm's own loader (schema,
/// unsupported keys) first, and only then looks for the daemon, at a socket that does not exist.
/// Ok when the daemon was the only thing missing; Err with the CLI's words otherwise.
fn docker_stack_load(docker: &Path, file: &Path) -> Result<(), String> {
    let scratch = tempfile::tempdir().unwrap();
    let socket = scratch.path().join("no-daemon.sock");
    let run = v::run(
        Command::new(docker)
            .args(["stack", "deploy", "--compose-file"])
            .arg(file)
            .arg("bookstore-check")
            .current_dir(file.parent().unwrap())
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("DOCKER_CONFIG", scratch.path().join("config"))
            .env_remove("DOCKER_CONTEXT"),
        TIMEOUT,
    )
    .unwrap();
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let unexpected: Vec<&str> = all
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.starts_with("Cannot connect to the Docker daemon"))
        // Newer CLIs announce their --detach default before they connect.
        .filter(|l| !l.contains("--detach=false"))
        .collect();
    let reached_daemon = all.contains("Cannot connect to the Docker daemon");
    if reached_daemon && unexpected.is_empty() && !run.success() {
        Ok(())
    } else {
        Err(run.report(&format!(
            "{} stack deploy's loader rejected {}:\n  {}",
            docker.display(),
            file.display(),
            unexpected.join("\n  ")
        )))
    }
}

/// The Swarm stack through Compose v2's `docker-compose config` (Debian 13's) and through the
/// loader that `docker stack deploy` itself uses, with Debian 12's and 13's docker CLIs (and a
/// newer one when installed), which
/// rejects keys that swarm does not know and warns about options it ignores. A stack with a
/// misspelt key must be rejected the same way, or the check proves nothing.
#[test]
fn compose_validators_accept_the_swarm_stack() {
    if !v::require_all(&["docker-compose", "docker"]) {
        return;
    }
    assert!(
        Path::new("/usr/bin/docker").exists(),
        "Debian's docker CLI (/usr/bin/docker, package docker.io) is missing: run scripts/install-validators"
    );
    assert!(
        v::debian13_bin().join("docker").exists(),
        "Debian 13's docker CLI is missing from {}: run scripts/debian13-tools",
        v::debian13_bin().display()
    );
    let (_tmp, rendered) = render_all_to_disk();
    let clis = docker_clis();
    for (name, spec, dir) in &rendered {
        let file = dir.join("swarm/docker-stack.yml");
        for docker in &clis {
            if let Err(e) = docker_stack_load(docker, &file) {
                panic!("{name}: {e}");
            }
        }
        let run = v::run(
            Command::new(v::tool_path("docker-compose").unwrap())
                .arg("-f")
                .arg(&file)
                .arg("config")
                .current_dir(file.parent().unwrap()),
            TIMEOUT,
        )
        .unwrap();
        // Compose v2 calls `version` obsolete; swarm's loader (Debian 12's CLI) still reads it.
        // Nothing else may be said.
        let complaints: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("the attribute `version` is obsolete"))
            .collect();
        assert!(
            run.success() && complaints.is_empty(),
            "{}",
            run.report(&format!("{name}: docker-compose config rejected the stack"))
        );
        let merged = &docs(&run.stdout)[0];
        let app = &merged["services"]["app"];
        assert_eq!(
            u(&app["deploy"]["replicas"]),
            spec.objective3.swarm_replicas as u64
        );
        let uploads = if spec.objective3.shared_storage == SharedStorage::EfsCsi {
            // The node's TLS mount of EFS, bind-mounted.
            spec.shared_files.mount_path.as_str()
        } else {
            "uploads"
        };
        assert_eq!(s(&app["volumes"][0]["source"]), uploads);
        assert!(app["ports"].is_null(), "{name}: the shop publishes no port");
    }
    // The negative control: swarm's loader refuses an unknown key, with every CLI.
    let (_, _, dir) = &rendered[0];
    let bad = dir.join("swarm/docker-stack-bad.yml");
    let text = std::fs::read_to_string(dir.join("swarm/docker-stack.yml")).unwrap();
    std::fs::write(
        &bad,
        text.replacen(
            "    read_only: true\n",
            "    read_only: true\n    bogus_key: 1\n",
            1,
        ),
    )
    .unwrap();
    for docker in &clis {
        let err =
            docker_stack_load(docker, &bad).expect_err("an unknown key passed swarm's loader");
        assert!(err.contains("bogus_key"), "{err}");
    }
}

#[test]
fn yamllint_accepts_every_file_of_every_variant() {
    if !v::require("yamllint") {
        return;
    }
    let (_tmp, rendered) = render_all_to_disk();
    let files: Vec<PathBuf> = rendered
        .iter()
        .flat_map(|(_, _, dir)| v::files_under(dir, &[".yaml", ".yml"]))
        .collect();
    v::yamllint(&files).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

#[test]
fn selectors_ports_and_probes_fit_together() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let objs = objects(&files);
        let o3 = &spec.objective3;
        let dep = one(&objs, "Deployment");
        let pod_labels = labels(&dep["spec"]["template"]["metadata"]["labels"]);
        let dep_sel = labels(&dep["spec"]["selector"]["matchLabels"]);
        assert!(
            is_subset(&dep_sel, &pod_labels),
            "{name}: Deployment selector"
        );

        let pdb = one(&objs, "PodDisruptionBudget");
        assert!(
            is_subset(
                &labels(&pdb["spec"]["selector"]["matchLabels"]),
                &pod_labels
            ),
            "{name}: PDB selector does not match the pods"
        );
        assert_eq!(u(&pdb["spec"]["minAvailable"]), o3.pdb_min_available as u64);

        let np = shop_policy(&objs, &spec);
        assert!(
            is_subset(
                &labels(&np["spec"]["podSelector"]["matchLabels"]),
                &pod_labels
            ),
            "{name}: NetworkPolicy podSelector"
        );

        let hpa = one(&objs, "HorizontalPodAutoscaler");
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        let target = &hpa["spec"]["scaleTargetRef"];
        assert_eq!(s(&target["kind"]), "Deployment", "{name}");
        assert_eq!(
            target["name"], dep["metadata"]["name"],
            "{name}: HPA target"
        );
        assert_eq!(hpa["metadata"]["namespace"], dep["metadata"]["namespace"]);

        let svc = find(&objs, "Service")
            .into_iter()
            .find(|o| o["metadata"]["name"] == spec.project.name.as_str())
            .expect("the shop's Service");
        assert_eq!(s(&svc["spec"]["type"]), "ClusterIP");
        assert!(
            is_subset(&labels(&svc["spec"]["selector"]), &pod_labels),
            "{name}: Service selector"
        );
        let container = &dep["spec"]["template"]["spec"]["containers"][0];
        let port = &container["ports"][0];
        assert_eq!(s(&port["name"]), "http");
        assert_eq!(u(&port["containerPort"]), spec.app.port as u64, "{name}");
        assert_eq!(
            s(&svc["spec"]["ports"][0]["targetPort"]),
            "http",
            "{name}: the Service targets the container port by name"
        );
        let env = config_env(&files);
        assert_eq!(
            env["BOOKSTORE_LISTEN"],
            format!("0.0.0.0:{}", spec.app.port)
        );
        let metrics = &container["ports"][1];
        assert_eq!(s(&metrics["name"]), "metrics");
        assert_eq!(
            env["BOOKSTORE_METRICS_LISTEN"],
            format!("0.0.0.0:{}", u(&metrics["containerPort"])),
            "{name}: the metrics listener is the container's metrics port"
        );
        let annotations = &dep["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            s(&annotations["prometheus.io/port"]),
            u(&metrics["containerPort"]).to_string(),
            "{name}: the scrape annotation follows the metrics port"
        );

        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
        ] {
            assert_eq!(
                s(&container[probe]["httpGet"]["path"]),
                path,
                "{name}: {probe}"
            );
            assert_eq!(
                s(&container[probe]["httpGet"]["port"]),
                "http",
                "{name}: {probe}"
            );
        }

        // The routing points at the Service's port.
        let svc_name = s(&svc["metadata"]["name"]);
        let svc_port = u(&svc["spec"]["ports"][0]["port"]);
        if o3.routing == Routing::Gateway {
            let routes = find(&objs, "HTTPRoute");
            let app_route = routes
                .iter()
                .find(|r| r["spec"]["rules"][0]["backendRefs"].is_sequence())
                .expect("an HTTPRoute to the shop");
            let backend = &app_route["spec"]["rules"][0]["backendRefs"][0];
            assert_eq!(s(&backend["name"]), svc_name);
            assert_eq!(u(&backend["port"]), svc_port);
        } else {
            let ing = one(&objs, "Ingress");
            let backend = &ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
            assert_eq!(s(&backend["name"]), svc_name);
            assert_eq!(s(&backend["port"]["name"]), "http");
        }

        // The volume claim the Deployment mounts exists, and the Secret it mounts is the spec's.
        let vols = dep["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        let claim = vols
            .iter()
            .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .unwrap();
        let pvc = one(&objs, "PersistentVolumeClaim");
        assert_eq!(s(&pvc["metadata"]["name"]), claim);
        assert_eq!(s(&pvc["spec"]["accessModes"][0]), "ReadWriteMany");
        let secret = vols
            .iter()
            .find_map(|v| v["secret"]["secretName"].as_str())
            .unwrap();
        assert_eq!(secret, spec.secrets.kubernetes_secret);
        let mounts = container["volumeMounts"].as_sequence().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["mountPath"] == spec.shared_files.container_path.as_str()));
        assert!(
            mounts.iter().any(|m| m["mountPath"] == "/tmp"),
            "{name}: /tmp for a read-only root"
        );
    }
}

#[test]
fn the_deployment_is_hardened_and_drains() {
    for (name, spec) in all_specs() {
        let objs = objects(&render(&spec));
        let dep = one(&objs, "Deployment");
        let pod = &dep["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(
            dep["spec"]["replicas"].is_null(),
            spec.objective3.autoscale,
            "{name}: replicas must be unset exactly when the HPA owns them"
        );
        if !spec.objective3.autoscale {
            assert_eq!(u(&dep["spec"]["replicas"]), spec.objective3.replicas as u64);
        }
        assert_eq!(
            u(&dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"]),
            0
        );
        assert_eq!(pod["automountServiceAccountToken"], Value::Bool(false));
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));
        assert!(
            u(&pod["securityContext"]["runAsUser"]) >= 10000,
            "{name}: high UID"
        );
        assert_eq!(
            s(&pod["securityContext"]["seccompProfile"]["type"]),
            "RuntimeDefault"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
        assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
        assert_eq!(sc["runAsNonRoot"], Value::Bool(true));
        assert_eq!(s(&sc["capabilities"]["drop"][0]), "ALL");
        assert_eq!(s(&sc["seccompProfile"]["type"]), "RuntimeDefault");
        assert_eq!(
            s(&c["image"]),
            format!("{}:{}", spec.app.image, spec.app.tag),
            "{name}: pinned image"
        );
        let sleep = u(&c["lifecycle"]["preStop"]["sleep"]["seconds"]);
        assert_eq!(sleep, spec.objective3.prestop_sleep_seconds as u64);
        let grace = u(&pod["terminationGracePeriodSeconds"]);
        assert!(
            grace > sleep + spec.app.drain_seconds as u64,
            "{name}: grace {grace} must cover the preStop pause and the drain"
        );
        let env: BTreeMap<String, &Value> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| (s(&e["name"]).to_string(), e))
            .collect();
        assert_eq!(
            s(&env["BOOKSTORE_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]),
            "metadata.name"
        );
        for var in [
            "BOOKSTORE_DATABASE_PASSWORD_FILE",
            "BOOKSTORE_SECRET_KEY_FILE",
            "BOOKSTORE_ADMIN_PASSWORD_FILE",
        ] {
            assert!(
                s(&env[var]["value"]).starts_with("/run/secrets/"),
                "{name}: {var}"
            );
        }
        let spread = pod["topologySpreadConstraints"].as_sequence().unwrap();
        assert!(spread
            .iter()
            .any(|t| t["topologyKey"] == "topology.kubernetes.io/zone"));
        let res = &c["resources"];
        assert_eq!(
            s(&res["requests"]["cpu"]),
            spec.objective3.cpu_request,
            "{name}"
        );
        assert_eq!(
            s(&res["requests"]["memory"]),
            spec.objective3.memory_request
        );
        assert_eq!(s(&res["limits"]["memory"]), spec.objective3.memory_limit);
        assert!(res["limits"]["cpu"].is_null(), "{name}: no CPU limit");

        let ns = one(&objs, "Namespace");
        assert_eq!(s(&ns["metadata"]["name"]), spec.objective3.namespace);
        assert_eq!(
            s(&ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]),
            "restricted"
        );
    }
}

#[test]
fn every_spec_number_lands() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let objs = objects(&files);
        let o3 = &spec.objective3;
        let ctx = |what: &str| format!("{name}: {what}");

        for (_, o) in &objs {
            if !CLUSTER_KINDS.contains(&kind(o)) {
                assert_eq!(
                    o["metadata"]["namespace"].as_str(),
                    Some(o3.namespace.as_str()),
                    "{}",
                    ctx(kind(o))
                );
            }
        }

        let hpa = one(&objs, "HorizontalPodAutoscaler");
        let hs = &hpa["spec"];
        assert_eq!(
            u(&hs["minReplicas"]),
            o3.min_replicas as u64,
            "{}",
            ctx("min")
        );
        assert_eq!(
            u(&hs["maxReplicas"]),
            o3.max_replicas as u64,
            "{}",
            ctx("max")
        );
        assert_eq!(
            u(&hs["metrics"][0]["resource"]["target"]["averageUtilization"]),
            o3.target_cpu_percent as u64
        );
        let up = &hs["behavior"]["scaleUp"];
        assert_eq!(
            u(&up["stabilizationWindowSeconds"]),
            o3.scale_up.stabilization_seconds as u64
        );
        assert_eq!(u(&up["policies"][0]["value"]), o3.scale_up.pods as u64);
        assert_eq!(s(&up["policies"][0]["type"]), "Pods");
        assert_eq!(
            u(&up["policies"][0]["periodSeconds"]),
            o3.scale_up.period_seconds as u64
        );
        let down = &hs["behavior"]["scaleDown"];
        assert_eq!(
            u(&down["stabilizationWindowSeconds"]),
            o3.scale_down.stabilization_seconds as u64
        );
        assert_eq!(
            u(&down["policies"][0]["value"]),
            o3.scale_down.percent as u64
        );
        assert_eq!(s(&down["policies"][0]["type"]), "Percent");
        assert_eq!(
            u(&down["policies"][0]["periodSeconds"]),
            o3.scale_down.period_seconds as u64
        );
        let listed = kustomize_resources(&files);
        assert_eq!(
            listed.contains(&"k8s/hpa.yaml".to_string()),
            o3.autoscale,
            "{}",
            ctx("hpa.yaml listed exactly when autoscale is on")
        );

        // The database: the URL names the host on its certificate (TLS is verified, so no
        // in-cluster alias), as the shop's own user; no password in the URL.
        assert!(
            find(&objs, "EndpointSlice").is_empty()
                && !find(&objs, "Service")
                    .iter()
                    .any(|o| o["spec"]["type"] == "ExternalName"),
            "{name}: no database Service: the shop connects to the name its certificate carries"
        );
        let cm = config_env(&files);
        let url = cm["BOOKSTORE_DATABASE_URL"].as_str();
        assert_eq!(
            url,
            format!(
                "mysql://{}_shop@{}:{}/{}",
                spec.database.user, o3.database_host, spec.database.port, spec.database.name
            )
        );
        assert_eq!(
            cm["BOOKSTORE_UPLOADS_DIR"],
            spec.shared_files.container_path
        );
        assert_eq!(
            cm["BOOKSTORE_DRAIN_SECONDS"],
            spec.app.drain_seconds.to_string()
        );
        assert_eq!(
            cm["BOOKSTORE_MAX_UPLOAD_MB"],
            spec.app.max_upload_mb.to_string()
        );
        assert_eq!(
            cm["BOOKSTORE_TRUSTED_PROXIES"],
            o3.pod_subnet_cidrs.join(",")
        );
        assert_eq!(cm["BOOKSTORE_ADMIN_EMAIL"], spec.app.admin_email);
        for (k, v) in &spec.app.env {
            assert_eq!(&cm[k], v, "{name}: app.env.{k}");
        }

        // NetworkPolicy: in from the controller's namespace only; out to DNS, MySQL, NFS.
        let np = &shop_policy(&objs, &spec)["spec"];
        let controller = o3.controller_namespace.clone().unwrap_or_else(|| {
            match o3.routing {
                Routing::Gateway => "envoy-gateway-system",
                Routing::Ingress => "ingress-nginx",
            }
            .into()
        });
        let ingress = np["ingress"].as_sequence().unwrap();
        // The proxies reach the shop's port, the monitoring namespace the metrics port, nobody else either.
        assert_eq!(ingress.len(), 2);
        assert_eq!(
            s(&ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]
                ["kubernetes.io/metadata.name"]),
            controller
        );
        assert_eq!(s(&ingress[0]["ports"][0]["port"]), "http");
        assert_eq!(
            s(&ingress[1]["from"][0]["namespaceSelector"]["matchLabels"]
                ["kubernetes.io/metadata.name"]),
            o3.monitoring_namespace
        );
        assert_eq!(s(&ingress[1]["ports"][0]["port"]), "metrics");
        let egress_ports: Vec<u64> = np["egress"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["ports"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|p| u(&p["port"]))
            })
            .collect();
        // DNS and MySQL only: the node mounts the covers volume, the pod never speaks NFS.
        egress_ports.iter().for_each(|p| {
            assert!(
                [53, spec.database.port as u64].contains(p),
                "{}",
                ctx(&format!("unexpected egress port {p}"))
            )
        });
        assert!(egress_ports.contains(&(spec.database.port as u64)));
        let db_cidr = if o3.database_host.parse::<std::net::Ipv4Addr>().is_ok() {
            format!("{}/32", o3.database_host)
        } else {
            o3.vpc_cidr.clone()
        };
        assert_eq!(s(&np["egress"][1]["to"][0]["ipBlock"]["cidr"]), db_cidr);

        // Routing: class, TLS host, issuer, body size.
        let stack = format!("{}-{}", spec.project.name, spec.project.environment);
        let issuer = if spec.domain.acme_server.is_some() {
            format!("{stack}-acme")
        } else if spec.domain.letsencrypt_staging {
            format!("{stack}-letsencrypt-staging")
        } else {
            format!("{stack}-letsencrypt-production")
        };
        let body = format!("{}", spec.app.max_upload_mb + 1);
        match o3.routing {
            Routing::Gateway => {
                assert!(find(&objs, "Ingress").is_empty(), "{}", ctx("no Ingress"));
                let gw = one(&objs, "Gateway");
                assert_eq!(s(&gw["spec"]["gatewayClassName"]), o3.gateway_class);
                assert_eq!(
                    s(&gw["metadata"]["annotations"]["cert-manager.io/issuer"]),
                    issuer
                );
                let listeners = gw["spec"]["listeners"].as_sequence().unwrap();
                assert!(listeners
                    .iter()
                    .all(|l| l["hostname"] == spec.domain.name.as_str()));
                let https = listeners.iter().find(|l| l["protocol"] == "HTTPS").unwrap();
                assert_eq!(u(&https["port"]), 443);
                assert!(s(&https["tls"]["certificateRefs"][0]["name"]).ends_with("-tls"));
                assert!(listeners
                    .iter()
                    .any(|l| l["protocol"] == "HTTP" && l["port"] == 80));
                let btp = one(&objs, "BackendTrafficPolicy");
                assert_eq!(
                    s(&btp["spec"]["requestBuffer"]["limit"]),
                    format!("{body}Mi")
                );
            }
            Routing::Ingress => {
                assert!(find(&objs, "Gateway").is_empty() && find(&objs, "HTTPRoute").is_empty());
                let ing = one(&objs, "Ingress");
                assert_eq!(
                    s(&ing["spec"]["ingressClassName"]),
                    o3.ingress_class,
                    "{}",
                    ctx("class")
                );
                let ann = &ing["metadata"]["annotations"];
                assert_eq!(s(&ann["cert-manager.io/issuer"]), issuer);
                let nginx_only: Vec<&str> = ann
                    .as_mapping()
                    .unwrap()
                    .keys()
                    .map(s)
                    .filter(|k| k.starts_with("nginx.ingress.kubernetes.io/"))
                    .collect();
                match o3.ingress_class.as_str() {
                    "nginx" => assert_eq!(
                        s(&ann["nginx.ingress.kubernetes.io/proxy-body-size"]),
                        format!("{body}m")
                    ),
                    "traefik" => {
                        // What Traefik understands: its Middlewares, attached by annotation.
                        assert!(nginx_only.is_empty(), "{name}: {nginx_only:?} on traefik");
                        let attached = s(&ann["traefik.ingress.kubernetes.io/router.middlewares"]);
                        let mws = find(&objs, "Middleware");
                        assert_eq!(mws.len(), 3, "{name}");
                        for mw in &mws {
                            let reference = format!(
                                "{}-{}@kubernetescrd",
                                o3.namespace,
                                s(&mw["metadata"]["name"])
                            );
                            assert!(
                                attached.split(',').any(|a| a == reference),
                                "{name}: {reference}"
                            );
                        }
                        let spec_of = |key: &str| {
                            mws.iter()
                                .find(|m| !m["spec"][key].is_null())
                                .unwrap_or_else(|| panic!("{name}: no {key} Middleware"))["spec"]
                                [key]
                                .clone()
                        };
                        assert_eq!(s(&spec_of("redirectScheme")["scheme"]), "https");
                        assert_eq!(
                            u(&spec_of("headers")["stsSeconds"]),
                            spec.nginx.hsts_max_age as u64
                        );
                        assert_eq!(
                            u(&spec_of("buffering")["maxRequestBodyBytes"]),
                            (spec.app.max_upload_mb as u64 + 1) * 1024 * 1024
                        );
                    }
                    other => panic!("{name}: ingress class {other} rendered"),
                }
                assert_eq!(s(&ing["spec"]["tls"][0]["hosts"][0]), spec.domain.name);
                assert_eq!(s(&ing["spec"]["rules"][0]["host"]), spec.domain.name);
            }
        }

        // Storage.
        match o3.shared_storage {
            SharedStorage::EfsCsi => {
                // A static volume on objective 2's access point: a re-apply finds the same covers.
                assert!(find(&objs, "StorageClass").is_empty(), "{name}");
                let pv = one(&objs, "PersistentVolume");
                assert_eq!(s(&pv["spec"]["csi"]["driver"]), "efs.csi.aws.com");
                assert_eq!(
                    s(&pv["spec"]["csi"]["volumeHandle"]),
                    format!("{}::{}", o3.efs_file_system_id, o3.efs_access_point_id)
                );
                assert_eq!(s(&pv["spec"]["persistentVolumeReclaimPolicy"]), "Retain");
                assert_eq!(
                    s(&pv["spec"]["mountOptions"][0]),
                    "tls",
                    "{name}: TLS to EFS"
                );
                let pvc = one(&objs, "PersistentVolumeClaim");
                assert_eq!(pvc["spec"]["volumeName"], pv["metadata"]["name"]);
            }
            SharedStorage::Nfs => {
                let pv = one(&objs, "PersistentVolume");
                assert_eq!(
                    s(&pv["spec"]["nfs"]["server"]),
                    o3.nfs_server,
                    "{}",
                    ctx("nfs server")
                );
                assert_eq!(
                    s(&pv["spec"]["nfs"]["path"]),
                    o3.nfs_path,
                    "{}",
                    ctx("nfs path")
                );
                assert_eq!(s(&pv["spec"]["accessModes"][0]), "ReadWriteMany");
                let pvc = one(&objs, "PersistentVolumeClaim");
                assert_eq!(pvc["spec"]["volumeName"], pv["metadata"]["name"]);
                assert_eq!(
                    s(&pv["spec"]["capacity"]["storage"]),
                    format!("{}Gi", o3.storage_gb)
                );
            }
        }

        // cert-manager: both issuers, namespaced and named for the project and environment, the
        // spec's e-mail, HTTP-01 through the chosen routing.
        assert!(find(&objs, "ClusterIssuer").is_empty(), "{name}");
        let issuers = find(&objs, "Issuer");
        let names: Vec<&str> = issuers.iter().map(|i| s(&i["metadata"]["name"])).collect();
        let want: Vec<String> = match &spec.domain.acme_server {
            // domain.acme_server: its one Issuer.
            Some(_) => vec![format!("{stack}-acme")],
            None => vec![
                format!("{stack}-letsencrypt-staging"),
                format!("{stack}-letsencrypt-production"),
            ],
        };
        assert_eq!(names, want);
        assert!(names.contains(&issuer.as_str()));
        for i in &issuers {
            assert_eq!(i["apiVersion"], "cert-manager.io/v1");
            assert_eq!(s(&i["metadata"]["namespace"]), o3.namespace);
            let acme = &i["spec"]["acme"];
            assert_eq!(s(&acme["email"]), spec.domain.letsencrypt_email);
            let http01 = &acme["solvers"][0]["http01"];
            match o3.routing {
                Routing::Gateway => {
                    let parent = &http01["gatewayHTTPRoute"]["parentRefs"][0];
                    assert_eq!(s(&parent["kind"]), "Gateway");
                    assert_eq!(s(&parent["namespace"]), o3.namespace);
                    assert_eq!(parent["name"], one(&objs, "Gateway")["metadata"]["name"]);
                }
                Routing::Ingress => {
                    assert_eq!(s(&http01["ingress"]["ingressClassName"]), o3.ingress_class)
                }
            }
        }

        // The Swarm stack.
        let stack = &docs(&files["swarm/docker-stack.yml"])[0];
        let app = &stack["services"]["app"];
        assert_eq!(
            u(&app["deploy"]["replicas"]),
            o3.swarm_replicas as u64,
            "{}",
            ctx("swarm")
        );
        assert_eq!(s(&app["deploy"]["update_config"]["order"]), "start-first");
        // The health check is one the image's binary understands, and asks readiness: Swarm
        // routes only to healthy tasks.
        let test: Vec<&str> = app["healthcheck"]["test"]
            .as_sequence()
            .expect("healthcheck.test")
            .iter()
            .map(|v| v.as_str().expect("healthcheck.test strings"))
            .collect();
        assert_eq!(
            test[..3],
            ["CMD", "/usr/local/bin/bookstore-app", "healthcheck"],
            "{}",
            ctx("swarm")
        );
        let probe = bookstore_app::healthcheck::parse(&test[3..])
            .unwrap_or_else(|e| panic!("{test:?} is refused by bookstore-app healthcheck: {e}"));
        assert_eq!(probe.path(), "/readyz");
        assert_eq!(
            s(&app["environment"]["BOOKSTORE_MAX_UPLOAD_MB"]),
            spec.app.max_upload_mb.to_string()
        );
        assert_eq!(
            s(&app["environment"]["BOOKSTORE_METRICS_LISTEN"]),
            "0.0.0.0:9100"
        );
        assert!(s(&app["environment"]["BOOKSTORE_DATABASE_URL"])
            .contains(&format!("@{}:{}/", o3.database_host, spec.database.port)));
        if o3.shared_storage == SharedStorage::Nfs {
            let nfs = &stack["volumes"]["uploads"]["driver_opts"];
            assert_eq!(s(&nfs["type"]), "nfs");
            assert!(s(&nfs["o"]).contains(&format!("addr={},", o3.nfs_server)));
            assert_eq!(s(&nfs["device"]), format!(":{}", o3.nfs_path));
        }
        for secret in stack["secrets"].as_mapping().unwrap().values() {
            assert_eq!(secret["external"], Value::Bool(true));
        }

        // The eksctl cluster.
        let eks = &docs(&files["eks/cluster.yaml"])[0];
        assert_eq!(s(&eks["metadata"]["region"]), spec.project.region);
        assert_eq!(s(&eks["metadata"]["version"]), o3.eks.version);
        let ng = &eks["managedNodeGroups"][0];
        assert_eq!(s(&ng["instanceType"]), o3.eks.instance_type);
        assert_eq!(u(&ng["minSize"]), o3.eks.min_nodes as u64);
        assert_eq!(u(&ng["maxSize"]), o3.eks.max_nodes as u64);
        assert!(eks["addons"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "aws-efs-csi-driver"));
        // The cluster joins objective 3's VPC by ID, nodes in the private subnets.
        assert_eq!(s(&eks["vpc"]["id"]), o3.eks.vpc_id);
        assert_eq!(s(&eks["vpc"]["cidr"]), o3.vpc_cidr);
        let private: Vec<&str> = eks["vpc"]["subnets"]["private"]
            .as_mapping()
            .unwrap()
            .values()
            .map(|v| s(&v["id"]))
            .collect();
        assert_eq!(private, o3.eks.private_subnet_ids, "{name}");
        let public: Vec<&str> = eks["vpc"]["subnets"]["public"]
            .as_mapping()
            .unwrap()
            .values()
            .map(|v| s(&v["id"]))
            .collect();
        assert_eq!(public, o3.eks.public_subnet_ids, "{name}");
        for subnet in ng["subnets"].as_sequence().unwrap() {
            assert!(
                !eks["vpc"]["subnets"]["private"][s(subnet)].is_null(),
                "{name}: node group subnet {subnet:?} is not a private subnet"
            );
        }
        assert_eq!(ng["privateNetworking"], Value::Bool(true));

        // The kustomization pins the image.
        let k = &docs(&files["kustomization.yaml"])[0];
        assert_eq!(s(&k["images"][0]["name"]), spec.app.image);
        assert_eq!(s(&k["images"][0]["newTag"]), spec.app.tag);
        for path in &listed {
            assert!(files.contains_key(path), "{}", ctx(path));
        }
    }
}

#[test]
fn crd_objects_are_well_formed() {
    for (name, spec) in all_specs() {
        let objs = objects(&render(&spec));
        for (file, o) in &objs {
            let k = kind(o);
            if !CRD_KINDS.contains(&k) {
                continue;
            }
            let api = s(&o["apiVersion"]);
            let want = match k {
                "Issuer" => "cert-manager.io/v1",
                "Gateway" | "HTTPRoute" => "gateway.networking.k8s.io/v1",
                "BackendTrafficPolicy" | "EnvoyProxy" | "ClientTrafficPolicy" => {
                    "gateway.envoyproxy.io/v1alpha1"
                }
                "Middleware" => "traefik.io/v1alpha1",
                _ => "external-secrets.io/v1",
            };
            assert_eq!(api, want, "{name}: {file}: {k}");
            assert!(
                o["metadata"]["name"].is_string(),
                "{name}: {file}: {k} name"
            );
            let spec_keys: Vec<&str> = o["spec"].as_mapping().unwrap().keys().map(s).collect();
            let allowed: &[&str] = match k {
                "Issuer" => &["acme"],
                "Gateway" => &["gatewayClassName", "infrastructure", "listeners"],
                "HTTPRoute" => &["parentRefs", "hostnames", "rules"],
                "BackendTrafficPolicy" => &["targetRefs", "requestBuffer"],
                "EnvoyProxy" => &["provider"],
                "ClientTrafficPolicy" => &["targetRefs", "proxyProtocol"],
                "Middleware" => &["redirectScheme", "headers", "buffering"],
                "SecretStore" => &["provider"],
                _ => &["refreshInterval", "secretStoreRef", "target", "data"],
            };
            for key in &spec_keys {
                assert!(
                    allowed.contains(key),
                    "{name}: {k}.spec.{key} is not expected"
                );
            }
            match k {
                "Issuer" => {
                    let acme = &o["spec"]["acme"];
                    match &spec.domain.acme_server {
                        Some(url) => assert_eq!(s(&acme["server"]), url),
                        None => {
                            assert!(s(&acme["server"]).starts_with("https://acme-"));
                            assert!(s(&acme["server"]).ends_with(".api.letsencrypt.org/directory"));
                        }
                    }
                    assert!(acme["privateKeySecretRef"]["name"].is_string());
                }
                "HTTPRoute" => {
                    let parent = &o["spec"]["parentRefs"][0];
                    assert!(["http", "https"].contains(&s(&parent["sectionName"])));
                    assert_eq!(s(&o["spec"]["hostnames"][0]), spec.domain.name);
                }
                "BackendTrafficPolicy" => {
                    let t = &o["spec"]["targetRefs"][0];
                    assert_eq!(s(&t["group"]), "gateway.networking.k8s.io");
                    assert_eq!(s(&t["kind"]), "HTTPRoute");
                }
                "SecretStore" => {
                    let aws = &o["spec"]["provider"]["aws"];
                    assert!(["ParameterStore", "SecretsManager"].contains(&s(&aws["service"])));
                    assert_eq!(s(&aws["region"]), spec.project.region);
                }
                "ExternalSecret" => {
                    let sp = &o["spec"];
                    // Far inside RDS's 7-day rotation.
                    assert_eq!(s(&sp["refreshInterval"]), "1h");
                    let keys: Vec<&str> = sp["data"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|d| s(&d["remoteRef"]["key"]))
                        .collect();
                    if s(&o["metadata"]["name"]) != spec.secrets.kubernetes_secret {
                        // The administrator's password, for the user Job only.
                        assert_eq!(
                            s(&o["metadata"]["name"]),
                            format!("{}-database-master", spec.project.name)
                        );
                        let d = &sp["data"][0];
                        assert_eq!(s(&d["secretKey"]), "password");
                        match &spec.objective3.database_secret_arn {
                            Some(arn) => assert_eq!(s(&d["remoteRef"]["key"]), arn),
                            None => assert_eq!(
                                s(&d["remoteRef"]["key"]),
                                spec.secrets
                                    .database_root_password
                                    .trim_start_matches("ssm:")
                            ),
                        }
                        continue;
                    }
                    assert_eq!(s(&sp["target"]["name"]), spec.secrets.kubernetes_secret);
                    let database = match &spec.objective3.app_database_secret_arn {
                        Some(arn) => {
                            let d = &sp["data"][0];
                            assert_eq!(s(&d["remoteRef"]["property"]), "password");
                            let store = s(&d["sourceRef"]["storeRef"]["name"]);
                            let stores = find(&objs, "SecretStore");
                            let store = stores
                                .iter()
                                .find(|o| o["metadata"]["name"] == store)
                                .unwrap_or_else(|| panic!("{name}: no SecretStore {store}"));
                            assert_eq!(
                                s(&store["spec"]["provider"]["aws"]["service"]),
                                "SecretsManager"
                            );
                            arn.clone()
                        }
                        None => spec
                            .secrets
                            .database_password
                            .trim_start_matches("ssm:")
                            .to_string(),
                    };
                    let want: Vec<String> = [
                        database,
                        spec.secrets
                            .secret_key
                            .trim_start_matches("ssm:")
                            .to_string(),
                        spec.secrets
                            .admin_password
                            .trim_start_matches("ssm:")
                            .to_string(),
                    ]
                    .into();
                    assert_eq!(keys, want, "{name}");
                }
                "ClientTrafficPolicy" => {
                    assert!(
                        o["spec"]["proxyProtocol"].is_mapping(),
                        "{name}: PROXY protocol"
                    );
                    assert_eq!(s(&o["spec"]["targetRefs"][0]["kind"]), "Gateway");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn each_spec_choice_renders_its_kind_into_the_same_file() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let kinds = |path: &str| -> Vec<String> {
            docs(&files[path])
                .iter()
                .map(|o| kind(o).to_string())
                .collect()
        };
        let o3 = &spec.objective3;
        let routing = kinds("k8s/routing.yaml");
        match o3.routing {
            Routing::Gateway => assert_eq!(
                routing,
                [
                    "Gateway",
                    "HTTPRoute",
                    "HTTPRoute",
                    "BackendTrafficPolicy",
                    "EnvoyProxy",
                    "ClientTrafficPolicy"
                ],
                "{name}"
            ),
            Routing::Ingress if o3.ingress_class == "traefik" => assert_eq!(
                routing,
                ["Ingress", "Middleware", "Middleware", "Middleware"],
                "{name}"
            ),
            Routing::Ingress => assert_eq!(routing, ["Ingress"], "{name}"),
        }
        let storage = kinds("k8s/storage.yaml");
        assert_eq!(
            storage,
            ["PersistentVolume", "PersistentVolumeClaim"],
            "{name}"
        );
        let secret = kinds("k8s/secret.yaml");
        let listed = kustomize_resources(&files).contains(&"k8s/secret.yaml".to_string());
        match o3.secrets_source {
            SecretsSource::Manual => {
                assert_eq!(secret, ["Secret", "Secret"]);
                assert!(
                    !listed,
                    "{name}: the empty Secret template must not be applied"
                );
                let readme = &files["README.md"];
                assert!(readme.contains(&format!(
                    "create secret generic {}",
                    spec.secrets.kubernetes_secret
                )));
                assert!(readme.contains("aws ssm get-parameter"));
                assert_eq!(
                    readme.contains(&format!(
                        "sm '{}'",
                        o3.database_secret_arn.clone().unwrap_or_default()
                    )),
                    o3.database_secret_arn.is_some(),
                    "{name}"
                );
            }
            SecretsSource::ExternalSecrets
                if o3.database_secret_arn.is_some() || o3.app_database_secret_arn.is_some() =>
            {
                assert_eq!(
                    secret,
                    [
                        "SecretStore",
                        "SecretStore",
                        "ExternalSecret",
                        "ExternalSecret"
                    ]
                );
                assert!(listed, "{name}: the ExternalSecret must be applied");
            }
            SecretsSource::ExternalSecrets => {
                assert_eq!(secret, ["SecretStore", "ExternalSecret", "ExternalSecret"]);
                assert!(listed, "{name}: the ExternalSecret must be applied");
            }
        }
    }
}

/// No secret value anywhere: the Secret template is empty, no database URL has a password, and
/// no variable carries a secret inline (only `*_FILE` paths).
#[test]
fn no_secret_value_anywhere() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        for (_, o) in objects(&files) {
            if kind(&o) == "Secret" {
                assert!(
                    o["data"].as_mapping().is_none_or(|m| m.is_empty()),
                    "{name}: the Secret template has data"
                );
                assert!(
                    o["stringData"].is_null(),
                    "{name}: the Secret template has stringData"
                );
            }
        }
        for key in config_env(&files).keys() {
            assert!(
                !key.contains("PASSWORD") && !key.contains("SECRET"),
                "{name}: {key} in the ConfigMap"
            );
        }
        let stack = &docs(&files["swarm/docker-stack.yml"])[0];
        for (key, value) in stack["services"]["app"]["environment"]
            .as_mapping()
            .unwrap()
        {
            let key = s(key);
            if key.contains("PASSWORD") || key.contains("SECRET") {
                assert!(key.ends_with("_FILE"), "{name}: {key} inline in the stack");
                assert!(s(value).starts_with("/run/secrets/"));
            }
        }
        for (path, text) in &files {
            for url in text.match_indices("mysql://").map(|(i, _)| &text[i..]) {
                let userinfo = url["mysql://".len()..].split('@').next().unwrap();
                assert!(
                    !userinfo.contains(':'),
                    "{name}: {path}: a password in {url:.40}"
                );
            }
            assert!(!text.contains("BEGIN"), "{name}: {path}: key material");
        }
    }
}

/// The committed out/objective3 is what the default spec renders (also covered by `gen all
/// --check`; this names the objective when it fails).
#[test]
fn committed_output_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("out/objective3");
    for (path, text) in render(&Spec::default()) {
        let committed = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
        assert!(
            committed == text,
            "out/objective3/{path} is stale: run `cargo run -- gen all`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The spec's objective3 checks
// ---------------------------------------------------------------------------------------------

fn problems(yaml: &str) -> String {
    match bookstore::spec::parse(yaml, bookstore::spec::SpecSource::File("bad.yaml".into())) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_objective3_choices_are_refused_with_their_path() {
    let cases: &[(&str, &str)] = &[
        (
            "objective3:\n  routing: nginx\n",
            "`objective3.routing`: unknown variant `nginx`, expected `gateway` or `ingress`",
        ),
        (
            "objective3:\n  shared_storage: s3\n",
            "`objective3.shared_storage`: unknown variant `s3`, expected `efs_csi` or `nfs`",
        ),
        (
            "objective3:\n  secrets_source: vault\n",
            "`objective3.secrets_source`: unknown variant `vault`, expected `manual` or `external_secrets`",
        ),
        (
            "objective3:\n  min_replicas: 2\n  pdb_min_available: 2\n",
            "`objective3.pdb_min_available`: pdb_min_available (2) must be below min_replicas (2), or no node could ever be drained",
        ),
        (
            "objective3:\n  autoscale: false\n  replicas: 2\n  pdb_min_available: 3\n",
            "`objective3.pdb_min_available`: pdb_min_available (3) must be below replicas (2)",
        ),
        (
            "objective3:\n  memory_request: 512Mi\n  memory_limit: 256Mi\n",
            "`objective3.memory_limit`: memory_limit (256Mi) is below memory_request (512Mi)",
        ),
        (
            "objective3:\n  memory_limit: 256MB\n",
            "`objective3.memory_limit`: `256MB` is not a memory quantity",
        ),
        (
            "objective3:\n  cpu_request: lots\n",
            "`objective3.cpu_request`: `lots` is not a CPU quantity",
        ),
        (
            "objective3:\n  efs_file_system_id: efs-123\n",
            "`objective3.efs_file_system_id`: `efs-123` is not an EFS file system ID",
        ),
        (
            "objective3:\n  vpc_cidr: 10.0.0.1/16\n",
            "`objective3.vpc_cidr`: `10.0.0.1/16` has host bits set",
        ),
        (
            "objective3:\n  scale_down:\n    percent: 0\n",
            "`objective3.scale_down.percent`: a percentage must be between 1 and 100, got 0",
        ),
        (
            "objective3:\n  prestop_sleep_seconds: 0\n",
            "`objective3.prestop_sleep_seconds`: the preStop pause (seconds) must be between 1 and 120, got 0",
        ),
        (
            "objective3:\n  controller_namespace: Envoy_System\n",
            "`objective3.controller_namespace`: `Envoy_System` is not a Kubernetes namespace",
        ),
        (
            "objective3:\n  eks:\n    version: \"1.35.2\"\n",
            "`objective3.eks.version`: `1.35.2` is not an EKS Kubernetes version",
        ),
        (
            "objective3:\n  eks:\n    min_nodes: 4\n    max_nodes: 2\n",
            "`objective3.eks.max_nodes`: max_nodes (2) is below min_nodes (4)",
        ),
    ];
    for (yaml, want) in cases {
        let got = problems(yaml);
        assert!(
            got.contains(want),
            "spec:\n{yaml}\nwant: {want}\ngot:\n{got}"
        );
    }
}

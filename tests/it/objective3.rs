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
    "ClusterIssuer",
    "Gateway",
    "HTTPRoute",
    "BackendTrafficPolicy",
    "SecretStore",
    "ExternalSecret",
];

/// Kinds that are not namespaced.
const CLUSTER_KINDS: &[&str] = &[
    "Namespace",
    "StorageClass",
    "PersistentVolume",
    "ClusterIssuer",
];

const TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Specs and rendering
// ---------------------------------------------------------------------------------------------

/// The three test specs plus every combination of routing x storage x secrets x autoscale on top
/// of the default spec.
fn all_specs() -> Vec<(String, Spec)> {
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
    all
}

/// objective3's files as (path, text).
fn render(spec: &Spec) -> BTreeMap<String, String> {
    specs::render(spec)
        .into_iter()
        .find(|r| r.objective.name() == "objective3")
        .expect("objective3 is rendered")
        .files
        .into_iter()
        .map(|f| (f.path, f.content))
        .collect()
}

/// Renders every spec of [`all_specs`] under one temp dir: `<tmp>/<name>/objective3/...`.
fn render_all_to_disk() -> (tempfile::TempDir, Vec<(String, Spec, PathBuf)>) {
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

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize as _;

/// Every Kubernetes object in the files under `k8s/`, with the file it came from.
fn objects(files: &BTreeMap<String, String>) -> Vec<(String, Value)> {
    files
        .iter()
        .filter(|(p, _)| p.starts_with("k8s/"))
        .flat_map(|(p, t)| docs(t).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}

fn kind(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or("")
}

fn find<'a>(objs: &'a [(String, Value)], k: &str) -> Vec<&'a Value> {
    objs.iter()
        .filter(|(_, o)| kind(o) == k)
        .map(|(_, o)| o)
        .collect()
}

fn one<'a>(objs: &'a [(String, Value)], k: &str) -> &'a Value {
    let found = find(objs, k);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, found {}",
        found.len()
    );
    found[0]
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number, got {v:?}"))
}

fn labels(v: &Value) -> BTreeMap<String, String> {
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

fn kustomize_resources(files: &BTreeMap<String, String>) -> Vec<String> {
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
    // The only skips: the two justified in deployment.yaml, once per rendered Deployment.
    let expected: BTreeMap<String, usize> = [
        ("CKV_K8S_11".to_string(), rendered.len()),
        ("CKV_K8S_43".to_string(), rendered.len()),
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
        let expected: usize = listed.iter().map(|p| docs(&files[p]).len()).sum();
        assert_eq!(built.len(), expected, "{name}: object count");
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

/// The Swarm stack through Debian's `docker-compose config -q` and through the loader that
/// `docker stack deploy` itself uses (`docker stack config`, offline, no engine needed), which
/// rejects keys that swarm does not know.
#[test]
fn compose_validators_accept_the_swarm_stack() {
    if !v::require_all(&["docker-compose", "docker"]) {
        return;
    }
    let (_tmp, rendered) = render_all_to_disk();
    for (name, spec, dir) in rendered.iter().take(3) {
        let file = dir.join("swarm/docker-stack.yml");
        if let Err(e) = v::compose_config(&file, &[]) {
            panic!("{name}: {e}");
        }
        let run = v::run(
            Command::new(v::tool_path("docker").unwrap())
                .args(["stack", "config", "-c"])
                .arg(&file),
            TIMEOUT,
        )
        .unwrap();
        assert!(
            run.success() && run.stderr.trim().is_empty(),
            "{}",
            run.report(&format!("{name}: docker stack config rejected the stack"))
        );
        let merged = &docs(&run.stdout)[0];
        let app = &merged["services"]["app"];
        assert_eq!(
            u(&app["deploy"]["replicas"]),
            spec.objective3.swarm_replicas as u64
        );
        assert_eq!(s(&app["volumes"][0]["source"]), "uploads");
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

        let np = one(&objs, "NetworkPolicy");
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
            .find(|o| o["spec"]["type"] == "ClusterIP")
            .expect("a ClusterIP Service");
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
        let listen = &one(&objs, "ConfigMap")["data"]["BOOKSTORE_LISTEN"];
        assert_eq!(s(listen), format!("0.0.0.0:{}", spec.app.port));

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

        // The database: an ExternalName Service that the URL names, with no password in it.
        let db = find(&objs, "Service")
            .into_iter()
            .find(|o| o["spec"]["type"] == "ExternalName")
            .expect("an ExternalName Service");
        assert_eq!(s(&db["spec"]["externalName"]), o3.database_host);
        let cm = &one(&objs, "ConfigMap")["data"];
        let url = s(&cm["BOOKSTORE_DATABASE_URL"]);
        assert_eq!(
            url,
            format!(
                "mysql://{}@{}:{}/{}",
                spec.database.user,
                s(&db["metadata"]["name"]),
                spec.database.port,
                spec.database.name
            )
        );
        assert_eq!(
            s(&cm["BOOKSTORE_UPLOADS_DIR"]),
            spec.shared_files.container_path
        );
        assert_eq!(
            s(&cm["BOOKSTORE_DRAIN_SECONDS"]),
            spec.app.drain_seconds.to_string()
        );
        assert_eq!(s(&cm["BOOKSTORE_TRUSTED_PROXIES"]), o3.vpc_cidr);
        assert_eq!(s(&cm["BOOKSTORE_ADMIN_EMAIL"]), spec.app.admin_email);

        // NetworkPolicy: in from the controller's namespace only; out to DNS, MySQL, NFS.
        let np = &one(&objs, "NetworkPolicy")["spec"];
        let controller = o3.controller_namespace.clone().unwrap_or_else(|| {
            match o3.routing {
                Routing::Gateway => "envoy-gateway-system",
                Routing::Ingress => "ingress-nginx",
            }
            .into()
        });
        let ingress = np["ingress"].as_sequence().unwrap();
        assert_eq!(ingress.len(), 1);
        assert_eq!(
            s(&ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]
                ["kubernetes.io/metadata.name"]),
            controller
        );
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
        for port in [53, spec.database.port as u64, 2049] {
            assert!(
                egress_ports.contains(&port),
                "{}",
                ctx(&format!("egress {port}"))
            );
        }
        assert_eq!(s(&np["egress"][1]["to"][0]["ipBlock"]["cidr"]), o3.vpc_cidr);

        // Routing: class, TLS host, issuer, body size.
        let issuer = if spec.domain.letsencrypt_staging {
            "letsencrypt-staging"
        } else {
            "letsencrypt-production"
        };
        let body = format!("{}", spec.app.max_upload_mb + 1);
        match o3.routing {
            Routing::Gateway => {
                assert!(find(&objs, "Ingress").is_empty(), "{}", ctx("no Ingress"));
                let gw = one(&objs, "Gateway");
                assert_eq!(s(&gw["spec"]["gatewayClassName"]), o3.gateway_class);
                assert_eq!(
                    s(&gw["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]),
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
                assert_eq!(s(&ann["cert-manager.io/cluster-issuer"]), issuer);
                assert_eq!(
                    s(&ann["nginx.ingress.kubernetes.io/proxy-body-size"]),
                    format!("{body}m")
                );
                assert_eq!(s(&ing["spec"]["tls"][0]["hosts"][0]), spec.domain.name);
                assert_eq!(s(&ing["spec"]["rules"][0]["host"]), spec.domain.name);
            }
        }

        // Storage.
        match o3.shared_storage {
            SharedStorage::EfsCsi => {
                let sc = one(&objs, "StorageClass");
                assert_eq!(s(&sc["provisioner"]), "efs.csi.aws.com");
                assert_eq!(s(&sc["parameters"]["fileSystemId"]), o3.efs_file_system_id);
                assert_eq!(s(&sc["parameters"]["uid"]), "10001");
                assert!(find(&objs, "PersistentVolume").is_empty());
                let pvc = one(&objs, "PersistentVolumeClaim");
                assert_eq!(pvc["spec"]["storageClassName"], sc["metadata"]["name"]);
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

        // cert-manager: both issuers, the spec's e-mail, HTTP-01 through the chosen routing.
        let issuers = find(&objs, "ClusterIssuer");
        let names: Vec<&str> = issuers.iter().map(|i| s(&i["metadata"]["name"])).collect();
        assert_eq!(names, ["letsencrypt-staging", "letsencrypt-production"]);
        for i in &issuers {
            assert_eq!(i["apiVersion"], "cert-manager.io/v1");
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
        assert!(app["healthcheck"].is_mapping());
        assert!(s(&app["environment"]["BOOKSTORE_DATABASE_URL"])
            .contains(&format!("@{}:{}/", o3.database_host, spec.database.port)));
        let nfs = &stack["volumes"]["uploads"]["driver_opts"];
        assert_eq!(s(&nfs["type"]), "nfs");
        assert!(s(&nfs["o"]).contains(&format!("addr={},", o3.nfs_server)));
        assert_eq!(s(&nfs["device"]), format!(":{}", o3.nfs_path));
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
                "ClusterIssuer" => "cert-manager.io/v1",
                "Gateway" | "HTTPRoute" => "gateway.networking.k8s.io/v1",
                "BackendTrafficPolicy" => "gateway.envoyproxy.io/v1alpha1",
                _ => "external-secrets.io/v1",
            };
            assert_eq!(api, want, "{name}: {file}: {k}");
            assert!(
                o["metadata"]["name"].is_string(),
                "{name}: {file}: {k} name"
            );
            let spec_keys: Vec<&str> = o["spec"].as_mapping().unwrap().keys().map(s).collect();
            let allowed: &[&str] = match k {
                "ClusterIssuer" => &["acme"],
                "Gateway" => &["gatewayClassName", "listeners"],
                "HTTPRoute" => &["parentRefs", "hostnames", "rules"],
                "BackendTrafficPolicy" => &["targetRefs", "requestBuffer"],
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
                "ClusterIssuer" => {
                    let acme = &o["spec"]["acme"];
                    assert!(s(&acme["server"]).starts_with("https://acme-"));
                    assert!(s(&acme["server"]).ends_with(".api.letsencrypt.org/directory"));
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
                    assert_eq!(s(&aws["service"]), "ParameterStore");
                    assert_eq!(s(&aws["region"]), spec.project.region);
                }
                "ExternalSecret" => {
                    let sp = &o["spec"];
                    assert_eq!(s(&sp["target"]["name"]), spec.secrets.kubernetes_secret);
                    let keys: Vec<&str> = sp["data"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|d| s(&d["remoteRef"]["key"]))
                        .collect();
                    let want: Vec<String> = [
                        &spec.secrets.database_password,
                        &spec.secrets.secret_key,
                        &spec.secrets.admin_password,
                    ]
                    .iter()
                    .map(|r| r.trim_start_matches("ssm:").to_string())
                    .collect();
                    assert_eq!(keys, want, "{name}");
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
                ["Gateway", "HTTPRoute", "HTTPRoute", "BackendTrafficPolicy"],
                "{name}"
            ),
            Routing::Ingress => assert_eq!(routing, ["Ingress"], "{name}"),
        }
        let storage = kinds("k8s/storage.yaml");
        match o3.shared_storage {
            SharedStorage::EfsCsi => assert_eq!(storage, ["StorageClass", "PersistentVolumeClaim"]),
            SharedStorage::Nfs => {
                assert_eq!(storage, ["PersistentVolume", "PersistentVolumeClaim"])
            }
        }
        let secret = kinds("k8s/secret.yaml");
        let listed = kustomize_resources(&files).contains(&"k8s/secret.yaml".to_string());
        match o3.secrets_source {
            SecretsSource::Manual => {
                assert_eq!(secret, ["Secret"]);
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
                assert!(readme.contains("aws secretsmanager get-secret-value"));
            }
            SecretsSource::ExternalSecrets => {
                assert_eq!(secret, ["SecretStore", "ExternalSecret"]);
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
            if kind(&o) == "ConfigMap" {
                for key in o["data"].as_mapping().unwrap().keys() {
                    let key = s(key);
                    assert!(
                        !key.contains("PASSWORD") && !key.contains("SECRET"),
                        "{name}: {key} in a ConfigMap"
                    );
                }
            }
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

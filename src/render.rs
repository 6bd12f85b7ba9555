//! Renders an objective's blueprints from a spec, in memory, with handlebars in strict mode.

use crate::blueprints::{Objective, Source};
use crate::spec::{vm_os, Spec};
use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use handlebars::{handlebars_helper, Handlebars};
use serde_json::{json, Value};

/// One rendered file, relative to `out/<objective>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// `/`-separated path relative to the objective folder.
    pub path: String,
    /// Unix permission bits.
    pub mode: u32,
    /// The file's text.
    pub content: String,
}

/// Everything one objective renders, plus the deploy step to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Which objective.
    pub objective: Objective,
    /// Its files, in manifest order.
    pub files: Vec<RenderedFile>,
    /// The command(s) to run next.
    pub next: String,
}

handlebars_helper!(json_helper: |v: Json| serde_json::to_string(v).unwrap_or_default());
handlebars_helper!(base64_helper: |s: str| base64::engine::general_purpose::STANDARD.encode(s));
handlebars_helper!(gzip_base64_helper: |s: str| gzip_base64(s));
handlebars_helper!(indent_helper: |s: str, n: u64| indent(s, n as usize));
handlebars_helper!(fnv_helper: |s: str| format!("{:016x}", fnv1a(s)));
handlebars_helper!(shell_quote_helper: |s: str| shell_quote(s));

/// The Docker Swarm stack's overlay network (objective 3): the shop trusts only the TLS edge in it.
pub const SWARM_EDGE_SUBNET: &str = "172.30.82.0/24";

/// FNV-1a, 64 bits: a content hash for names that must change when a file does (Swarm configs are
/// immutable), the same on every platform and Rust version.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `s` gzipped (no timestamp, so the output is stable) and base64-encoded: cloud-init's
/// `encoding: gz+b64`, which keeps user-data under EC2's 16 KB.
pub fn gzip_base64(s: &str) -> String {
    use std::io::Write as _;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(s.as_bytes()).expect("gzip into memory");
    let bytes = gz.finish().expect("gzip into memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `s` as one single-quoted shell word (`'` becomes `'\''`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Indents every line after the first by `n` spaces; empty lines stay empty; drops one trailing newline.
pub fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    let body = s.strip_suffix('\n').unwrap_or(s);
    let mut out = String::with_capacity(body.len() + body.len() / 8);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

/// Where objective 1 mounts its EBS data volume (MySQL's datadir and the covers).
pub const O1_DATA_DIR: &str = "/srv/bookstore";

/// Values computed from the spec that templates should not have to work out.
pub fn derived(spec: &Spec) -> Value {
    let strip = |r: &str| r.strip_prefix("ssm:").unwrap_or(r).to_string();
    let http2_on = crate::spec::parse_version(&spec.nginx.version).is_some_and(|v| v >= (1, 25, 1));
    json!({
        "image": format!("{}:{}", spec.app.image, spec.app.tag),
        "nginx_http2_on": http2_on,
        "stack_name": format!("{}-{}", spec.project.name, spec.project.environment),
        // The ACME directory certbot uses (domain.acme_server, else Let's Encrypt).
        "acme_server": spec.domain.acme_directory(),
        "acme_is_letsencrypt": spec.domain.acme_server.is_none(),
        "objective3": objective3_derived(spec),
        "loadtest": loadtest_derived(spec),
        // Objective 1: the root device of its AMI (the encrypted volume must be the one it boots from);
        // where its data volume is mounted; the SSM parameters the stack writes for the VM (the app
        // image, read at boot and by the upgrade; the data volume's ID).
        "o1": {
            "root_device": vm_os::root_device(&spec.objective1.ami_parameter),
            // Docker, its CLI and Compose v2 from the AMI's archive.
            "docker_packages": vm_os::docker_packages(&spec.objective1.ami_parameter),
            "os": vm_os::describe(&spec.objective1.ami_parameter),
            "data_dir": O1_DATA_DIR,
            "image_parameter": format!("/{}-{}/app-image", spec.project.name, spec.project.environment),
            "volume_parameter": format!("/{}-{}/data-volume", spec.project.name, spec.project.environment),
        },
        // Objective 2: the target group lets in-flight requests finish in less than the shop's
        // drain time; ALB access logs go to the region's ELB account (null: the log-delivery
        // service principal of regions opened since August 2022).
        "o2": {
            "deregistration_delay": spec.app.drain_seconds * 3 / 4,
            "elb_log_account": elb_log_account(&spec.project.region),
            "root_device": vm_os::root_device(&spec.objective2.ami_parameter),
            "docker_packages": vm_os::docker_packages(&spec.objective2.ami_parameter),
            "os": vm_os::describe(&spec.objective2.ami_parameter),
            // RDS takes the major version (8.4) and upgrades minor versions itself.
            "rds_engine_version": spec.database.engine_version.split('.').take(2).collect::<Vec<_>>().join("."),
            // A rolling update keeps this many in service; CloudFormation needs it below max_size.
            "min_in_service": spec.objective2.desired_capacity.min(spec.objective2.max_size.saturating_sub(1)),
            // The shop's image on ECR: the instances log in with the credential helper.
            "ecr": ecr_image(&spec.app.image),
            // Each instance's database pool: max_size of them fit in the RDS class (spec::capacity).
            "pool_max": crate::spec::capacity::pool_per_instance(spec),
            // The connections alarm: 80 % of the class's estimated max_connections.
            "db_connections_alarm": crate::spec::capacity::max_connections(&spec.database.instance_class).map(|m| m * 4 / 5).unwrap_or(100),
        },
        "secrets": {
            "database_password": strip(&spec.secrets.database_password),
            "secret_key": strip(&spec.secrets.secret_key),
            "admin_password": strip(&spec.secrets.admin_password),
            "database_root_password": strip(&spec.secrets.database_root_password),
        },
    })
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/NAME` as {registry, account, region, repository};
/// null for any other registry.
fn ecr_image(image: &str) -> Value {
    let Some((registry, repository)) = image.split_once('/') else {
        return Value::Null;
    };
    let parts: Vec<&str> = registry.split('.').collect();
    match parts.as_slice() {
        [account, "dkr", "ecr", region, "amazonaws", "com", rest @ ..]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (rest.is_empty() || rest == ["cn"]) =>
        {
            json!({ "registry": registry, "account": account, "region": region, "repository": repository })
        }
        _ => Value::Null,
    }
}

/// Objective 3's computed values: the proxies' namespace, the grace period, the issuer, the
/// ingress body size.
fn objective3_derived(spec: &Spec) -> Value {
    use crate::spec::Routing;
    let o3 = &spec.objective3;
    let gateway = o3.routing == Routing::Gateway;
    let controller_namespace = o3.controller_namespace.clone().unwrap_or_else(|| {
        if gateway {
            "envoy-gateway-system"
        } else {
            "ingress-nginx"
        }
        .to_string()
    });
    let stack = format!("{}-{}", spec.project.name, spec.project.environment);
    let staging = format!("{stack}-letsencrypt-staging");
    let production = format!("{stack}-letsencrypt-production");
    let custom = format!("{stack}-acme");
    let database_ip = o3.database_host.parse::<std::net::Ipv4Addr>().is_ok();
    let body_size_mb = spec.app.max_upload_mb.saturating_add(1);
    json!({
        "prune_allowlist": prune_allowlist(spec),
        // The allowlist as continuation lines of a shell command, one flag per kind.
        "prune_flags": prune_allowlist(spec).iter().map(|k| format!("  --prune-allowlist={k}")).collect::<Vec<_>>().join(" \\\n"),
        "gateway_kinds": GATEWAY_KINDS,
        "gateway": gateway,
        "traefik": !gateway && o3.ingress_class == "traefik",
        "ingress_nginx": !gateway && o3.ingress_class == "nginx",
        // Namespaced issuers, named for the project and environment (two environments share a cluster).
        "issuer_staging": staging,
        "issuer_production": production,
        // domain.acme_server: one Issuer of its own for that directory.
        "issuer_custom": spec.domain.acme_server.as_ref().map(|_| &custom),
        "issuer": if spec.domain.acme_server.is_some() { &custom } else if spec.domain.letsencrypt_staging { &staging } else { &production },
        // The shop's least-privilege user (objective 2's), made by a Job with the master secret; the
        // Job's name follows what it runs, so a changed image or user is a new Job (prune drops the old).
        "app_user": format!("{}_shop", spec.database.user),
        "app_user_job": format!("{}-app-user-{:08x}", spec.project.name, fnv1a(&format!(
            "{}:{}\n{}\n{}:{}/{}", spec.app.image, spec.app.tag, spec.database.user, o3.database_host, spec.database.port, spec.database.name
        )) as u32),
        // Cluster-scoped names carry the project and environment too.
        "pv_name": format!("{stack}-uploads"),
        // A database IP cannot be an ExternalName: a selector-less Service and an EndpointSlice.
        "database_ip": database_ip,
        "database_egress_cidr": if database_ip { format!("{}/32", o3.database_host) } else { o3.vpc_cidr.clone() },
        // The proxies are pods in these subnets; never the load balancer's.
        "trusted_proxies": o3.pod_subnet_cidrs.join(","),
        "swarm_edge_subnet": SWARM_EDGE_SUBNET,
        "body_size_bytes": u64::from(body_size_mb) * 1024 * 1024,
        "addons": {
            "envoy_gateway": crate::addons::ENVOY_GATEWAY.version,
            "cert_manager": crate::addons::CERT_MANAGER.version,
            "external_secrets": crate::addons::EXTERNAL_SECRETS.version,
        },
        "supported_kubernetes": {
            "min": format!("1.{}", crate::addons::supported_minors().0),
            "max": format!("1.{}", crate::addons::supported_minors().1),
        },
        // The cluster autoscaler's minor follows the cluster's.
        "cluster_autoscaler_tag": format!("v{}.0", o3.eks.version),
        "controller_namespace": controller_namespace,
        // preStop pause + the app's drain + 10 s for the process to exit.
        "termination_grace_seconds": o3.prestop_sleep_seconds.saturating_add(spec.app.drain_seconds).saturating_add(10),
        // The cover limit plus 1 MiB for the form fields and multipart framing.
        "body_size_mb": body_size_mb,
        "efs": o3.shared_storage == crate::spec::SharedStorage::EfsCsi,
        "external_secrets": o3.secrets_source == crate::spec::SecretsSource::ExternalSecrets,
        // A secret comes from Secrets Manager (objective 2's master or app secret).
        "secretsmanager": o3.database_secret_arn.is_some() || o3.app_database_secret_arn.is_some(),
    })
}

/// The stop grace of `bookstore loadtest` as the Job runs it: the request timeout (10 s) plus 30 s.
const LOADTEST_STOP_GRACE_SECONDS: u64 = 40;
/// What the Job's deadline allows before the load starts: scheduling, the image pull, START_AT
/// (README.md sets it two minutes ahead).
const LOADTEST_START_ALLOWANCE_SECONDS: u64 = 600;

/// The load-test Job's computed values: the target, the image, the names, the deadline, the gates
/// as the flags write them.
fn loadtest_derived(spec: &Spec) -> Value {
    let l = &spec.loadtest;
    let planned = l.planned_seconds().unwrap_or(0);
    let job = format!("{}-loadtest", spec.project.name);
    let image = l.image.clone().unwrap_or_else(|| {
        crate::image::reference(crate::image::Kind::Cli, &spec.app.image, &spec.app.tag)
    });
    let url = l.target_url(&spec.domain.name);
    json!({
        "port": url_port(&url),
        "url": url,
        "image": image,
        "job_name": job,
        "start_configmap": format!("{job}-start"),
        "last_index": l.shards.saturating_sub(1),
        "planned_seconds": planned,
        "stop_grace_seconds": LOADTEST_STOP_GRACE_SECONDS,
        "start_allowance_seconds": LOADTEST_START_ALLOWANCE_SECONDS,
        "active_deadline_seconds": planned + LOADTEST_STOP_GRACE_SECONDS + LOADTEST_START_ALLOWANCE_SECONDS,
        // Strings, so that a 0 % error budget is not a false `#if`.
        "max_p95": l.gates.max_p95_ms.map(|v| v.to_string()),
        "max_error_rate": l.gates.max_error_rate_percent.map(|v| v.to_string()),
    })
}

/// The TCP port an `http://` or `https://` URL (already checked by the spec) connects to.
fn url_port(url: &str) -> u16 {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let port = match authority.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => authority.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok())
        .unwrap_or(if scheme == "http" { 80 } else { 443 })
}

/// The kinds of the Gateway routing (group/version/Kind), pruned once after switching to an Ingress.
const GATEWAY_KINDS: &[&str] = &[
    "gateway.networking.k8s.io/v1/Gateway",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "gateway.envoyproxy.io/v1alpha1/BackendTrafficPolicy",
    "gateway.envoyproxy.io/v1alpha1/EnvoyProxy",
    "gateway.envoyproxy.io/v1alpha1/ClientTrafficPolicy",
];

/// What `kubectl apply --prune` may delete for objective 3 (one `--prune-allowlist` flag each,
/// group/version/Kind; kubectl does not split a comma-separated list):
/// every kind this spec renders and the HPA (so turning autoscale off removes it), but never the
/// Namespace or a Secret, nor a ConfigMap: the generated ConfigMaps of older settings stay, so
/// `kubectl rollout undo` finds the one its revision names. A custom kind is listed only where its
/// controller is installed.
pub fn prune_allowlist(spec: &Spec) -> Vec<String> {
    use crate::spec::{Routing, SecretsSource};
    let o3 = &spec.objective3;
    let mut kinds: Vec<&str> = vec![
        "core/v1/Service",
        "core/v1/ServiceAccount",
        "core/v1/PersistentVolume",
        "core/v1/PersistentVolumeClaim",
        "apps/v1/Deployment",
        "autoscaling/v2/HorizontalPodAutoscaler",
        "policy/v1/PodDisruptionBudget",
        "networking.k8s.io/v1/NetworkPolicy",
        "networking.k8s.io/v1/Ingress",
        "discovery.k8s.io/v1/EndpointSlice",
        "batch/v1/Job",
        "cert-manager.io/v1/Issuer",
    ];
    match o3.routing {
        Routing::Gateway => kinds.extend(GATEWAY_KINDS),
        Routing::Ingress if o3.ingress_class == "traefik" => {
            kinds.push("traefik.io/v1alpha1/Middleware")
        }
        Routing::Ingress => {}
    }
    if o3.secrets_source == SecretsSource::ExternalSecrets {
        kinds.extend([
            "external-secrets.io/v1/SecretStore",
            "external-secrets.io/v1/ExternalSecret",
        ]);
    }
    kinds.into_iter().map(String::from).collect()
}

/// The Elastic Load Balancing account that writes ALB access logs in regions opened before
/// August 2022 (AWS ELB user guide, "Enable access logs"); newer regions use a service principal.
fn elb_log_account(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "127311923021",
        "us-east-2" => "033677994240",
        "us-west-1" => "027434742980",
        "us-west-2" => "797873946194",
        "af-south-1" => "098369216593",
        "ap-east-1" => "754344448648",
        "ap-southeast-3" => "589379963580",
        "ap-south-1" => "718504428378",
        "ap-northeast-3" => "383597477331",
        "ap-northeast-2" => "600734575887",
        "ap-southeast-1" => "114774131450",
        "ap-southeast-2" => "783225319266",
        "ap-northeast-1" => "582318560864",
        "ca-central-1" => "985666609251",
        "eu-central-1" => "054676820928",
        "eu-west-1" => "156460612806",
        "eu-west-2" => "652711504416",
        "eu-south-1" => "635631232127",
        "eu-west-3" => "009996457667",
        "eu-north-1" => "897822967062",
        "me-south-1" => "076674570225",
        "sa-east-1" => "507241528517",
        "us-gov-west-1" => "048591011584",
        "us-gov-east-1" => "190560391635",
        _ => return None,
    })
}

fn registry(source: &Source) -> Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json_helper));
    hb.register_helper("base64", Box::new(base64_helper));
    hb.register_helper("indent", Box::new(indent_helper));
    hb.register_helper("gzip_base64", Box::new(gzip_base64_helper));
    hb.register_helper("fnv", Box::new(fnv_helper));
    hb.register_helper("shell_quote", Box::new(shell_quote_helper));
    for rel in source.list()? {
        if let Some(name) = rel
            .strip_prefix("partials/")
            .and_then(|r| r.strip_suffix(".hbs"))
        {
            let text = source.read(&rel)?;
            hb.register_partial(name, text)
                .map_err(|e| anyhow!("partial `{rel}` in the {source}: {e}"))?;
        }
    }
    Ok(hb)
}

/// Renders one objective entirely in memory; nothing touches the disk. `objective_dir` (where the
/// files will go) is visible only to the manifest's `next` command, as `objective_dir`, so that
/// the files themselves never depend on it.
pub fn render(
    spec: &Spec,
    source: &Source,
    objective: Objective,
    objective_dir: &str,
) -> Result<Rendered> {
    let mut hb = registry(source)?;
    let manifest = source.manifest(objective)?;
    let mut ctx = json!({
        "spec": serde_json::to_value(spec)?,
        "derived": derived(spec),
        "tool": { "name": "bookstore", "version": env!("CARGO_PKG_VERSION") },
        "files": {},
    });
    let mut files = Vec::with_capacity(manifest.files.len());
    for entry in &manifest.files {
        let rel = format!("{objective}/{}", entry.template);
        let text = source.read(&rel)?;
        hb.register_template_string(&rel, text)
            .map_err(|e| anyhow!("template `{rel}` in the {source} does not parse: {e}"))?;
        let content = hb
            .render(&rel, &ctx)
            .map_err(|e| anyhow!("rendering `{rel}` failed: {e}"))?;
        ctx["files"][&entry.key] = Value::String(content.clone());
        files.push(RenderedFile {
            path: entry.output.clone(),
            mode: entry.mode_bits()?,
            content,
        });
    }
    ctx["objective_dir"] = Value::String(objective_dir.to_string());
    let next = hb
        .render_template(&manifest.next, &ctx)
        .with_context(|| format!("rendering `next` of {objective}/blueprint.yaml"))?;
    Ok(Rendered {
        objective,
        files,
        next: next.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::indent;

    #[test]
    fn shell_quote_keeps_one_word() {
        assert_eq!(
            super::shell_quote("o'brien@example.com"),
            r"'o'\''brien@example.com'"
        );
        assert_eq!(super::shell_quote("plain"), "'plain'");
    }

    #[test]
    fn url_ports() {
        assert_eq!(super::url_port("https://shop.example.com"), 443);
        assert_eq!(super::url_port("http://shop.example.com/x:1"), 80);
        assert_eq!(super::url_port("http://shop.example.com:8080/"), 8080);
        assert_eq!(super::url_port("https://[2001:db8::1]:8443/a"), 8443);
        assert_eq!(super::url_port("https://[2001:db8::1]/a"), 443);
    }

    #[test]
    fn indent_keeps_first_line_and_blank_lines() {
        assert_eq!(indent("a\n\nb\n", 2), "a\n\n  b");
        assert_eq!(indent("x", 4), "x");
    }
}

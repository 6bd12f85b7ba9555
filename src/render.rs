//! Renders an objective's blueprints from a spec, in memory, with handlebars in strict mode.

use crate::blueprints::{Objective, Source};
use crate::spec::Spec;
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
handlebars_helper!(indent_helper: |s: str, n: u64| indent(s, n as usize));
handlebars_helper!(shell_quote_helper: |s: str| shell_quote(s));

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
        // Objective 2: the target group lets in-flight requests finish in less than the shop's
        // drain time; ALB access logs go to the region's ELB account (null: the log-delivery
        // service principal of regions opened since August 2022).
        "o2": {
            "deregistration_delay": spec.app.drain_seconds * 3 / 4,
            "elb_log_account": elb_log_account(&spec.project.region),
            // Ubuntu AMIs boot from /dev/sda1; Debian and Amazon Linux from /dev/xvda.
            "root_device": if spec.objective2.ami_parameter.contains("/ubuntu/") { "/dev/sda1" } else { "/dev/xvda" },
            // RDS takes the major version (8.4) and upgrades minor versions itself.
            "rds_engine_version": spec.database.engine_version.split('.').take(2).collect::<Vec<_>>().join("."),
            // A rolling update keeps this many in service; CloudFormation needs it below max_size.
            "min_in_service": spec.objective2.desired_capacity.min(spec.objective2.max_size.saturating_sub(1)),
        },
        "secrets": {
            "database_password": strip(&spec.secrets.database_password),
            "secret_key": strip(&spec.secrets.secret_key),
            "admin_password": strip(&spec.secrets.admin_password),
            "database_root_password": strip(&spec.secrets.database_root_password),
        },
    })
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
    json!({
        "gateway": gateway,
        "controller_namespace": controller_namespace,
        // preStop pause + the app's drain + 10 s for the process to exit.
        "termination_grace_seconds": o3.prestop_sleep_seconds.saturating_add(spec.app.drain_seconds).saturating_add(10),
        "cluster_issuer": if spec.domain.letsencrypt_staging { "letsencrypt-staging" } else { "letsencrypt-production" },
        // The cover limit plus 1 MiB for the form fields and multipart framing.
        "body_size_mb": spec.app.max_upload_mb.saturating_add(1),
        "efs": o3.shared_storage == crate::spec::SharedStorage::EfsCsi,
        "external_secrets": o3.secrets_source == crate::spec::SecretsSource::ExternalSecrets,
    })
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
    fn indent_keeps_first_line_and_blank_lines() {
        assert_eq!(indent("a\n\nb\n", 2), "a\n\n  b");
        assert_eq!(indent("x", 4), "x");
    }
}

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
        "letsencrypt_staging_flag": if spec.domain.letsencrypt_staging { "--staging" } else { "" },
        "secrets": {
            "database_password": strip(&spec.secrets.database_password),
            "secret_key": strip(&spec.secrets.secret_key),
            "admin_password": strip(&spec.secrets.admin_password),
            "database_root_password": strip(&spec.secrets.database_root_password),
        },
    })
}

fn registry(source: &Source) -> Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json_helper));
    hb.register_helper("base64", Box::new(base64_helper));
    hb.register_helper("indent", Box::new(indent_helper));
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
    fn indent_keeps_first_line_and_blank_lines() {
        assert_eq!(indent("a\n\nb\n", 2), "a\n\n  b");
        assert_eq!(indent("x", 4), "x");
    }
}

//! Just enough of the compose file format to run a rendered service without Docker: its
//! `environment`, `secrets` and `volumes`, and `${VAR:-default}` interpolation.

use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::Value;
use std::collections::HashMap;

/// One service of a compose file.
#[derive(Debug, Clone, Default)]
pub struct Service {
    /// `environment:` in file order; `None` for `KEY:` without a value (taken from the host).
    pub environment: Vec<(String, Option<String>)>,
    /// Secret names (mounted at `/run/secrets/NAME`).
    pub secrets: Vec<String>,
    /// Bind mounts: (host path, container path).
    pub volumes: Vec<(String, String)>,
}

fn parse(text: &str) -> Result<Value> {
    serde_yaml::from_str(text).context("the rendered compose file is not valid YAML")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads service `name` from a compose file.
pub fn service(text: &str, name: &str) -> Result<Service> {
    let doc = parse(text)?;
    let svc = doc
        .get("services")
        .and_then(|s| s.get(name))
        .ok_or_else(|| anyhow!("the compose file has no service `{name}`"))?;
    let mut out = Service::default();
    match svc.get("environment") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = scalar(k)
                    .ok_or_else(|| anyhow!("service {name}: a non-string key in environment"))?;
                let v = match v {
                    Value::Null => None,
                    other => Some(scalar(other).ok_or_else(|| {
                        anyhow!("service {name}: environment {k} is not a scalar")
                    })?),
                };
                out.environment.push((k, v));
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items {
                let s = scalar(item).unwrap_or_default();
                match s.split_once('=') {
                    Some((k, v)) => out.environment.push((k.to_string(), Some(v.to_string()))),
                    None => out.environment.push((s, None)),
                }
            }
        }
        None => {}
        Some(_) => bail!("service {name}: environment is neither a mapping nor a list"),
    }
    if let Some(Value::Sequence(items)) = svc.get("secrets") {
        for item in items {
            let name = scalar(item)
                .or_else(|| item.get("source").and_then(scalar))
                .ok_or_else(|| anyhow!("service {name}: a secret without a name"))?;
            out.secrets.push(name);
        }
    }
    if let Some(Value::Sequence(items)) = svc.get("volumes") {
        for item in items {
            let Some(s) = scalar(item) else { continue };
            let mut parts = s.split(':');
            if let (Some(host), Some(container)) = (parts.next(), parts.next()) {
                if host.starts_with('/') {
                    out.volumes.push((host.to_string(), container.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// The top-level `secrets:`: (name, host file).
pub fn secret_files(text: &str) -> Result<Vec<(String, String)>> {
    let doc = parse(text)?;
    let mut out = Vec::new();
    if let Some(Value::Mapping(m)) = doc.get("secrets") {
        for (k, v) in m {
            let name = scalar(k).unwrap_or_default();
            let file = v
                .get("file")
                .and_then(scalar)
                .ok_or_else(|| anyhow!("compose secret {name} has no `file:`"))?;
            out.push((name, file));
        }
    }
    Ok(out)
}

/// Compose interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`.
pub fn interpolate(s: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| anyhow!("unclosed ${{ in {s:?}"))?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let (name, default, if_empty) = if let Some((n, d)) = expr.split_once(":-") {
                (n, Some(d), true)
            } else if let Some((n, d)) = expr.split_once('-') {
                (n, Some(d), false)
            } else {
                (expr, None, false)
            };
            match (vars.get(name), default) {
                (Some(v), Some(d)) if v.is_empty() && if_empty => out.push_str(d),
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {}
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if let Some(v) = vars.get(&rest[..end]) {
                out.push_str(v);
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The packages a `#cloud-config` file installs (`packages:`), in order.
pub fn cloud_config_packages(user_data: &str) -> Result<Vec<String>> {
    let doc = parse(user_data).context("the rendered user-data is not valid YAML")?;
    Ok(match doc.get("packages") {
        Some(Value::Sequence(list)) => list.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    })
}

/// The content of `path` in a `#cloud-config` file's `write_files`.
pub fn cloud_config_file(user_data: &str, path: &str) -> Result<Option<String>> {
    let doc = parse(user_data).context("the rendered user-data is not valid YAML")?;
    let Some(Value::Sequence(files)) = doc.get("write_files") else {
        return Ok(None);
    };
    let Some(file) = files
        .iter()
        .find(|f| f.get("path").and_then(scalar).as_deref() == Some(path))
    else {
        return Ok(None);
    };
    let content = file.get("content").and_then(scalar);
    match file.get("encoding").and_then(scalar).as_deref() {
        None | Some("text/plain") => Ok(content),
        Some("gz+b64" | "gzip+base64" | "gz+base64" | "gzip+b64") => {
            use base64::Engine as _;
            use std::io::Read as _;
            let packed = base64::engine::general_purpose::STANDARD
                .decode(content.unwrap_or_default().trim())
                .with_context(|| format!("{path}: its gz+b64 content is not base64"))?;
            let mut text = String::new();
            flate2::read::GzDecoder::new(packed.as_slice())
                .read_to_string(&mut text)
                .with_context(|| format!("{path}: its gz+b64 content is not gzip text"))?;
            Ok(Some(text))
        }
        Some(other) => anyhow::bail!("{path}: encoding {other} is not rehearsed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        let mut vars = HashMap::new();
        vars.insert("A".to_string(), "x".to_string());
        vars.insert("E".to_string(), String::new());
        let i = |s| interpolate(s, &vars).unwrap();
        assert_eq!(i("${A:-d}/${B:-d}/${E:-d}/${E-d}/$A/$$"), "x/d/d//x/$");
    }
}

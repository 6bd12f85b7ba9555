//! Reading rendered Kubernetes manifests: one [`Doc`] per YAML document of a file, with typed
//! getters that answer a [`RenderedError`] naming the file, the line and column of the key, the
//! key path and the reason.

use crate::rehearse::rendered::RenderedError;
use serde_yaml::Value;

/// One YAML document of a rendered file.
#[derive(Debug, Clone)]
pub struct Doc {
    file: String,
    text: String,
    /// Lines of the file before this document.
    line0: usize,
    value: Value,
}

/// Every non-empty document of `text` (named `file` in messages).
pub fn docs(file: &str, text: &str) -> Result<Vec<Doc>, RenderedError> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let lines: Vec<&str> = text.lines().collect();
    let mut push = |from: usize, to: usize| -> Result<(), RenderedError> {
        let body = lines[from..to].join("\n");
        let value: Value = serde_yaml::from_str(&body).map_err(|e| RenderedError {
            file: file.to_string(),
            line: e.location().map(|l| (l.line() + from, l.column())),
            path: "(document)".into(),
            reason: format!("not valid YAML: {e}"),
        })?;
        if !value.is_null() {
            out.push(Doc {
                file: file.to_string(),
                text: body,
                line0: from,
                value,
            });
        }
        Ok(())
    };
    for (i, l) in lines.iter().enumerate() {
        if l.trim_end() == "---" {
            push(start, i)?;
            start = i + 1;
        }
    }
    push(start, lines.len())?;
    Ok(out)
}

/// The documents of `kind` among `docs`.
pub fn of_kind<'a>(docs: &'a [Doc], kind: &str) -> Vec<&'a Doc> {
    docs.iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect()
}

impl Doc {
    /// A [`RenderedError`] about `path` in this document.
    pub fn err(&self, path: &str, reason: impl Into<String>) -> RenderedError {
        RenderedError {
            file: self.file.clone(),
            line: crate::spec::locate_key_path(&self.text, path).map(|(l, c)| (l + self.line0, c)),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// `metadata.name` (empty when absent).
    pub fn name(&self) -> String {
        self.get("metadata.name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// The value at `path` (`a.b[0].c`), if present and not null.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut v = &self.value;
        for part in path.split('.') {
            let (key, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                v = v.get(key)?;
            }
            while let Some(r) = rest.strip_prefix('[') {
                let (n, tail) = r.split_once(']')?;
                v = v.get(n.parse::<usize>().ok()?)?;
                rest = tail;
            }
        }
        (!v.is_null()).then_some(v)
    }

    /// The value at `path`, or an error saying it is missing.
    pub fn req(&self, path: &str) -> Result<&Value, RenderedError> {
        self.get(path)
            .ok_or_else(|| self.err(path, "missing; `bookstore gen` renders it"))
    }

    /// The sequence at `path` (empty when absent).
    pub fn seq(&self, path: &str) -> Result<Vec<&Value>, RenderedError> {
        match self.get(path) {
            None => Ok(Vec::new()),
            Some(Value::Sequence(s)) => Ok(s.iter().collect()),
            Some(_) => Err(self.err(path, "must be a list")),
        }
    }

    /// A string or number at `path`, as text.
    pub fn text(&self, path: &str) -> Result<String, RenderedError> {
        scalar(self.req(path)?).ok_or_else(|| self.err(path, "must be a string"))
    }

    /// A string at `path` when present.
    pub fn opt_text(&self, path: &str) -> Result<Option<String>, RenderedError> {
        match self.get(path) {
            None => Ok(None),
            Some(_) => self.text(path).map(Some),
        }
    }

    /// A whole number >= 0 at `path`; `default` when absent.
    pub fn count(&self, path: &str, default: Option<u32>) -> Result<u32, RenderedError> {
        match (self.get(path), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.err(path, "missing; `bookstore gen` renders it")),
            (Some(Value::Number(n)), _) if n.as_u64().is_some_and(|n| n <= u32::MAX as u64) => {
                Ok(n.as_u64().expect("checked") as u32)
            }
            (Some(v), _) => Err(self.err(
                path,
                format!(
                    "{} is not a whole number >= 0; write a number such as 2 (no quotes)",
                    show(v)
                ),
            )),
        }
    }
}

/// A scalar as text.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value as a message shows it: `"abc"`, `12`, `a list`.
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        other => scalar(other).unwrap_or_else(|| "null".into()),
    }
}

/// A CPU quantity (`250m`, `0.5`, `1`) in millicores.
pub fn millicores(q: &str) -> Option<i64> {
    let q = q.trim();
    let m = match q.strip_suffix('m') {
        Some(n) => n.parse::<f64>().ok()?,
        None => q.parse::<f64>().ok()? * 1000.0,
    };
    (m.is_finite() && m >= 0.0).then(|| m.ceil() as i64)
}

/// A byte quantity (`6Mi`, `6m` as ingress-nginx writes it, `6291456`) in bytes.
pub fn bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(q.len());
    let (n, unit) = q.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" | "m" => 1024.0 * 1024.0,
        "Gi" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// A duration (`30s`, `1m`, `1h30m`, `500ms`) in seconds.
pub fn seconds(d: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = d.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..split].parse().ok()?;
        let tail = &rest[split..];
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        total += n * match &tail[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &tail[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_durations() {
        assert_eq!(millicores("250m"), Some(250));
        assert_eq!(millicores("0.1"), Some(100));
        assert_eq!(millicores("2"), Some(2000));
        assert_eq!(millicores("abc"), None);
        assert_eq!(bytes("6Mi"), Some(6 * 1024 * 1024));
        assert_eq!(bytes("6m"), Some(6 * 1024 * 1024));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("6 parsecs"), None);
        assert_eq!(seconds("1m30s"), Some(90.0));
        assert_eq!(seconds("500ms"), Some(0.5));
        assert_eq!(seconds("soon"), None);
    }

    #[test]
    fn documents_know_their_lines() {
        let text = "# c\nkind: A\nspec:\n  x: 1\n---\nkind: B\nspec:\n  y: \"abc\"\n";
        let d = docs("f.yaml", text).unwrap();
        assert_eq!(d.len(), 2);
        let b = of_kind(&d, "B")[0];
        let e = b.count("spec.y", None).unwrap_err();
        assert_eq!(e.line, Some((8, 3)));
        assert!(e.reason.contains("\"abc\" is not a whole number"), "{e}");
        assert_eq!(of_kind(&d, "A")[0].count("spec.x", None), Ok(1));
    }
}

//! Layered specs: several files (later ones override earlier ones; mappings merged, lists
//! replaced) and `--set PATH=VALUE` flags, merged into one [`Spec`], with every problem and every
//! final value traced back to the file, line and column (or the flag) it came from.

use super::locate::{self, Step};
use super::syntax::{explain, parse_syntax, path_string};
use super::{validate, Problem, Spec, SpecError, SpecSource};
use serde_yaml::{Mapping, Value};

/// Most unknown keys listed one by one; the rest are counted.
const MAX_UNKNOWN_LISTED: usize = 50;

/// One layer: a file's text, or a `--set` flag.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where it came from.
    pub source: SpecSource,
    text: Option<String>,
    value: Value,
}

/// The layers of one spec, in order (later ones win).
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: Vec<Layer>,
}

/// Where a final value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file or flag; `None`: the built-in default.
    pub source: Option<SpecSource>,
    /// 1-based (line, column) in the file.
    pub position: Option<(usize, usize)>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.source, self.position) {
            (None, _) => f.write_str("default"),
            (Some(s), Some((l, c))) => write!(f, "{s}:{l}:{c}"),
            (Some(s), None) => write!(f, "{s}"),
        }
    }
}

impl Layers {
    /// Adds a file's (or the embedded default's) text as the next layer.
    pub fn push_text(&mut self, text: &str, source: SpecSource) -> Result<(), SpecError> {
        let value = parse_syntax(text).map_err(|p| SpecError {
            source: source.clone(),
            problems: vec![p],
        })?;
        self.layers.push(Layer {
            source,
            text: Some(text.to_string()),
            value,
        });
        Ok(())
    }

    /// Adds a `--set PATH=VALUE` flag as the next layer.
    pub fn push_set(&mut self, flag: &str) -> Result<(), SpecError> {
        let source = SpecSource::Set(flag.to_string());
        let fail = |message: String| SpecError {
            source: source.clone(),
            problems: vec![Problem {
                path: String::new(),
                line: None,
                column: None,
                message,
                source: None,
            }],
        };
        let Some((path, raw)) = flag.split_once('=') else {
            return Err(fail(
                "expected PATH=VALUE, e.g. `--set objective2.max_size=10`".into(),
            ));
        };
        let path = path.trim();
        if path.is_empty() || path.contains('[') || path.split('.').any(str::is_empty) {
            return Err(fail(format!(
                "`{path}` is not a key path such as `objective2.max_size`; a list is set whole: `--set objective1.allowed_cidrs=[10.0.0.0/8]`"
            )));
        }
        let mut value = if raw.trim().is_empty() {
            Value::Null
        } else {
            parse_syntax(raw).map_err(|p| fail(format!("the value is not YAML: {}", p.message)))?
        };
        for key in path.rsplit('.') {
            let mut m = Mapping::new();
            m.insert(Value::String(key.to_string()), value);
            value = Value::Mapping(m);
        }
        self.layers.push(Layer {
            source,
            text: None,
            value,
        });
        Ok(())
    }

    /// Where the spec came from: the single layer, or all of them.
    pub fn source(&self) -> SpecSource {
        match self.layers.as_slice() {
            [one] => one.source.clone(),
            all => SpecSource::Layers(all.iter().map(|l| l.source.clone()).collect()),
        }
    }

    /// Merges the layers, checks keys, types and meaning, and reports every problem found.
    pub fn resolve(&self) -> Result<Spec, SpecError> {
        let mut merged = Value::Mapping(Mapping::new());
        for layer in &self.layers {
            merge(&mut merged, layer.value.clone());
        }
        let schema = serde_yaml::to_value(Spec::default()).expect("the spec serialises");
        let mut problems = Vec::new();
        let mut unknown = 0usize;
        strip_unknown(&mut merged, &schema, "", &mut |path, message| {
            unknown += 1;
            if unknown <= MAX_UNKNOWN_LISTED {
                problems.push(self.problem(path, message, false));
            }
        });
        if unknown > MAX_UNKNOWN_LISTED {
            problems.push(Problem {
                path: String::new(),
                line: None,
                column: None,
                message: format!("and {} more unknown keys", unknown - MAX_UNKNOWN_LISTED),
                source: None,
            });
        }
        match serde_path_to_error::deserialize::<_, Spec>(merged) {
            Ok(spec) => {
                for p in validate::check(&spec) {
                    problems.push(self.problem(&p.path, &p.message, false));
                }
                if problems.is_empty() {
                    return Ok(spec);
                }
            }
            Err(err) => {
                let path = path_string(err.path());
                let (path, message) = explain(path, &err.into_inner().to_string());
                problems.push(self.problem(&path, &message, true));
            }
        }
        let order = |p: &Problem| {
            let layer = self
                .layers
                .iter()
                .position(|l| Some(&l.source) == p.source.as_ref())
                .unwrap_or(usize::MAX);
            (
                layer,
                p.line.unwrap_or(usize::MAX),
                p.column,
                p.path.clone(),
            )
        };
        problems.sort_by_key(order);
        if self.layers.len() == 1 {
            for p in &mut problems {
                p.source = None;
            }
        }
        Err(SpecError {
            source: self.source(),
            problems,
        })
    }

    /// A problem at `path`, placed where the path (or its deepest parent) was last set.
    fn problem(&self, path: &str, message: &str, at_value: bool) -> Problem {
        let origin = self.origin_or_parent(path, at_value);
        Problem {
            path: path.to_string(),
            line: origin.position.map(|p| p.0),
            column: origin.position.map(|p| p.1),
            message: message.to_string(),
            source: origin
                .source
                .or_else(|| self.layers.last().map(|l| l.source.clone())),
        }
    }

    /// Where `path` was last set, or else its deepest parent.
    fn origin_or_parent(&self, path: &str, at_value: bool) -> Origin {
        let steps = locate::steps(path);
        for n in (0..=steps.len()).rev() {
            if let Some(o) = self.origin_of(&steps[..n], path, at_value && n == steps.len()) {
                return o;
            }
        }
        Origin {
            source: None,
            position: None,
        }
    }

    /// Where the final value at `path` came from (`None` source: the built-in default).
    pub fn origin(&self, path: &str) -> Origin {
        let steps = locate::steps(path);
        self.origin_of(&steps, path, false).unwrap_or(Origin {
            source: None,
            position: None,
        })
    }

    fn origin_of(&self, steps: &[Step<'_>], full: &str, at_value: bool) -> Option<Origin> {
        let layer = self
            .layers
            .iter()
            .rev()
            .find(|l| lookup(&l.value, steps).is_some())?;
        let position = layer.text.as_deref().and_then(|text| {
            if steps.is_empty() {
                return first_content_line(text).map(|l| (l, 1));
            }
            let prefix = locate::join(steps);
            let _ = full;
            if at_value {
                locate::locate_value(text, &prefix)
            } else {
                locate::locate(text, &prefix)
            }
        });
        Some(Origin {
            source: Some(layer.source.clone()),
            position,
        })
    }
}

fn first_content_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#') && t != "---"
        })
        .map(|i| i + 1)
}

/// The value at `steps`, if the layer sets it.
fn lookup<'v>(value: &'v Value, steps: &[Step<'_>]) -> Option<&'v Value> {
    let mut v = value;
    for step in steps {
        v = match (step, v) {
            (Step::Key(k), Value::Mapping(m)) => m.get(*k)?,
            (Step::Index(i), Value::Sequence(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Later over earlier: mappings merged key by key, anything else replaced; a null over a mapping
/// (`objective2:` with nothing below it) leaves the mapping as it is.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Mapping(_), Value::Null) => {}
        (b, o) => *b = o,
    }
}

/// Removes keys the schema does not have, reporting each with a suggestion. An empty mapping in
/// the schema is a free-form map (`app.env`).
fn strip_unknown(
    value: &mut Value,
    schema: &Value,
    path: &str,
    report: &mut dyn FnMut(&str, &str),
) {
    let (Value::Mapping(m), Value::Mapping(s)) = (value, schema) else {
        return;
    };
    if s.is_empty() {
        return;
    }
    let valid: Vec<&str> = s.keys().filter_map(Value::as_str).collect();
    let mut remove = Vec::new();
    for (k, v) in m.iter_mut() {
        let name = match k {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        };
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match s.get(k) {
            Some(sub) => strip_unknown(v, sub, &child, report),
            None => {
                report(&child, &unknown_key_message(&name, &valid));
                remove.push(k.clone());
            }
        }
    }
    for k in remove {
        m.remove(&k);
    }
}

/// `unknown key `x`; did you mean `y`? (valid keys here: ...)`.
pub fn unknown_key_message(unknown: &str, valid: &[&str]) -> String {
    let best = valid
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .min();
    let mut out = format!("unknown key `{unknown}`");
    match best {
        Some((d, k)) if d <= (unknown.len() / 2).max(2) => {
            out.push_str(&format!("; did you mean `{k}`?"))
        }
        _ => out.push_str("; remove it"),
    }
    if !valid.is_empty() {
        out.push_str(&format!(" (valid keys here: {})", valid.join(", ")));
    }
    out
}

/// Every leaf of the final spec with its value (compact JSON) and origin, for `--show-origin`.
pub fn show_origin(spec: &Spec, layers: &Layers) -> Vec<(String, String, Origin)> {
    let value = serde_yaml::to_value(spec).expect("the spec serialises");
    let mut out = Vec::new();
    leaves(&value, String::new(), &mut |path, v| {
        let shown = serde_json::to_string(v).unwrap_or_default();
        out.push((path.to_string(), shown, layers.origin(path)));
    });
    out
}

fn leaves(value: &Value, path: String, f: &mut dyn FnMut(&str, &Value)) {
    match value {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                leaves(v, child, f);
            }
        }
        _ => f(&path, value),
    }
}

//! The spec: loading one YAML file, reporting bad input precisely, and checking its meaning.

pub mod capacity;
mod locate;
mod model;
mod validate;

/// Where a key path sits in YAML text (also used for rendered files the rehearsal reads).
pub(crate) use locate::locate as locate_key_path;
pub use model::*;
pub use validate::{is_domain, is_email, is_ssm_ref, parse_version};

use std::fmt;
use std::path::{Path, PathBuf};

/// The commented default spec that `bookstore init` writes and `gen` falls back to.
pub const DEFAULT_SPEC_YAML: &str = include_str!("default.yaml");

/// Where a spec came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    /// A file on disk.
    File(PathBuf),
    /// The default spec embedded in the binary.
    Embedded,
}

impl fmt::Display for SpecSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecSource::File(p) => write!(f, "{}", p.display()),
            SpecSource::Embedded => f.write_str("<embedded default spec>"),
        }
    }
}

/// One problem found in a spec, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `objective2.min_size` (empty for the document itself).
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A spec that could not be read, parsed or accepted; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Where the spec came from.
    pub source: SpecSource,
    /// All problems, in document order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} problem{} in {}:",
            n,
            if n == 1 { "" } else { "s" },
            self.source
        )?;
        for p in &self.problems {
            writeln!(f, "  {}", p.render(&self.source))?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

impl Problem {
    /// `file:line:column: path: message`.
    pub fn render(&self, source: &SpecSource) -> String {
        let mut s = source.to_string();
        if let Some(l) = self.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = self.column {
                s.push_str(&format!(":{c}"));
            }
        }
        s.push_str(": ");
        if !self.path.is_empty() {
            s.push_str(&format!("`{}`: ", self.path));
        }
        s.push_str(&self.message);
        s
    }
}

/// Parses and checks a spec's text. `source` is only used in messages.
pub fn parse(text: &str, source: SpecSource) -> Result<Spec, SpecError> {
    let fail = |problems| SpecError {
        source: source.clone(),
        problems,
    };
    let spec = parse_syntax(text).map_err(|p| fail(vec![p]))?;
    let mut problems = validate::check(&spec);
    if problems.is_empty() {
        return Ok(spec);
    }
    for p in &mut problems {
        if let Some((line, col)) = locate::locate(text, &p.path) {
            p.line = Some(line);
            p.column = Some(col);
        }
    }
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column, p.path.clone()));
    Err(fail(problems))
}

/// Reads and checks the spec at `path`.
pub fn load_file(path: &Path) -> Result<Spec, SpecError> {
    let source = SpecSource::File(path.to_path_buf());
    let bytes = std::fs::read(path).map_err(|e| SpecError {
        source: source.clone(),
        problems: vec![Problem {
            path: String::new(),
            line: None,
            column: None,
            message: format!("cannot read the spec: {e}"),
        }],
    })?;
    parse_bytes(&bytes, source)
}

/// Parses and checks a spec given as raw bytes (which must be UTF-8).
pub fn parse_bytes(bytes: &[u8], source: SpecSource) -> Result<Spec, SpecError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        SpecError {
            source: source.clone(),
            problems: vec![Problem {
                path: String::new(),
                line: Some(line),
                column: Some(column),
                message: format!(
                    "the spec is not UTF-8 text (byte 0x{:02X} here); save it as UTF-8",
                    bytes[e.valid_up_to()]
                ),
            }],
        }
    })?;
    parse(text, source)
}

/// The embedded default spec, parsed.
pub fn embedded_default() -> Spec {
    parse(DEFAULT_SPEC_YAML, SpecSource::Embedded).expect("the embedded default spec is valid")
}

fn parse_syntax(text: &str) -> Result<Spec, Problem> {
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !meaningful {
        return Err(Problem {
            path: String::new(),
            line: Some(1),
            column: Some(1),
            message: "the spec is empty; run `bookstore init` for a commented starting point"
                .into(),
        });
    }
    if let Some((line, col)) = first_tab_indent(text) {
        return Err(Problem {
            path: String::new(),
            line: Some(line),
            column: Some(col),
            message: "a tab is used for indentation; YAML allows only spaces there, so replace the tab with spaces".into(),
        });
    }
    let de = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Spec>(de) {
        Ok(spec) => Ok(spec),
        Err(err) => {
            let path = path_string(err.path());
            let inner = err.into_inner();
            let (line, column) = match inner.location() {
                Some(loc) => (Some(loc.line()), Some(loc.column())),
                None => (None, None),
            };
            let (path, message) = explain(path, &inner.to_string());
            // serde reports a duplicate at its mapping; point at the second occurrence instead.
            let (line, column) = if message.starts_with("duplicate key") {
                locate::second_occurrence(text, &path)
                    .map_or((line, column), |(l, c)| (Some(l), Some(c)))
            } else {
                (line, column)
            };
            Err(Problem {
                path,
                line,
                column,
                message,
            })
        }
    }
}

/// Finds a tab in leading whitespace of a non-comment line.
fn first_tab_indent(text: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        for (j, ch) in line.char_indices() {
            match ch {
                '\t' => return Some((i + 1, j + 1)),
                ' ' => continue,
                _ => break,
            }
        }
    }
    None
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    if s == "?" {
        s.clear();
    }
    s
}

/// Turns serde_yaml's message into one that says what to do, without echoing secret values.
/// Returns the (possibly refined) key path and the message.
fn explain(path: String, raw: &str) -> (String, String) {
    // serde_yaml appends " at line L column C" (reported separately) and prefixes the path.
    let mut msg = match raw.find(" at line ") {
        Some(i) => &raw[..i],
        None => raw,
    };
    if let Some((head, tail)) = msg.split_once(": ") {
        if !head.contains(char::is_whitespace) && !head.contains('`') {
            msg = tail;
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (unknown, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = tail
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let best = expected
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
        if !expected.is_empty() {
            out.push_str(&format!(" (valid keys here: {})", expected.join(", ")));
        }
        return (path, out);
    }
    if path == "secrets" || path.starts_with("secrets.") {
        let msg = "invalid value (not shown: it may be a secret); write a reference such as `ssm:/bookstore/database-password`";
        return (path, msg.into());
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        let full = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        return (
            full,
            format!("duplicate key `{key}`; keep only one of them"),
        );
    }
    if msg.starts_with("duplicate entry") {
        return (path, format!("{msg}; keep only one of them"));
    }
    if let Some((got, want)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        let want = match want {
            "u8" | "u32" | "u64" | "usize" => "a whole number (no quotes)".to_string(),
            "u16" => "a number from 1 to 65535".to_string(),
            "a boolean" => "`true` or `false`".to_string(),
            w if w.starts_with("struct ") => {
                "a mapping of keys (`key: value` lines below it)".to_string()
            }
            w if w.starts_with("a map") => "a mapping (`KEY: value` lines below it)".to_string(),
            w => w.to_string(),
        };
        return (path, format!("expected {want}, found {got}"));
    }
    if let Some((got, want)) = msg
        .strip_prefix("invalid value: ")
        .and_then(|m| m.split_once(", expected "))
    {
        let want = match want {
            "u16" => "a number from 1 to 65535",
            "u32" => "a whole number from 0 to 4294967295",
            w => w,
        };
        return (
            path,
            format!("expected {want}, found {}", got.replace('`', "")),
        );
    }
    if msg.starts_with("did not find expected")
        || msg.starts_with("mapping values are not allowed")
        || msg.starts_with("found ")
        || msg.starts_with("could not find expected")
    {
        return (
            path,
            format!("YAML syntax error: {msg}; check brackets, quotes and indentation here"),
        );
    }
    (path, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_matches_rust_defaults() {
        assert_eq!(embedded_default(), Spec::default());
    }
}

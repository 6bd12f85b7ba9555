//! The spec: loading one YAML file, reporting bad input precisely, and checking its meaning.

mod bounded;
pub mod capacity;
mod guard;
mod layers;
pub mod loadtest;
mod locate;
mod model;
mod objective3;
mod syntax;
mod validate;
pub mod vm_os;

pub use guard::MAX_SPEC_BYTES;
pub use layers::{show_origin, Layers, Origin};

pub use loadtest::{Loadtest, LoadtestGates, LoadtestResources, LoadtestScenario};
/// Where a key path sits in YAML text (also used for rendered files the rehearsal reads).
pub(crate) use locate::locate as locate_key_path;
pub use model::*;
pub use objective3::*;
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
    /// A `--set PATH=VALUE` flag.
    Set(String),
    /// Several layers, in order.
    Layers(Vec<SpecSource>),
}

impl fmt::Display for SpecSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecSource::File(p) => write!(f, "{}", p.display()),
            SpecSource::Embedded => f.write_str("<embedded default spec>"),
            SpecSource::Set(flag) => write!(f, "--set {flag}"),
            SpecSource::Layers(all) => {
                let names: Vec<String> = all.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(" + "))
            }
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
    /// Where the problem is when it is not the error's own source (one of several layers).
    pub source: Option<SpecSource>,
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
        let mut s = self.source.as_ref().unwrap_or(source).to_string();
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
    let mut layers = Layers::default();
    layers.push_text(text, source)?;
    layers.resolve()
}

/// Reads and checks the spec at `path`.
pub fn load_file(path: &Path) -> Result<Spec, SpecError> {
    let source = SpecSource::File(path.to_path_buf());
    let bytes = guard::read_file(path).map_err(|p| SpecError {
        source: source.clone(),
        problems: vec![p],
    })?;
    parse_bytes(&bytes, source)
}

/// Reads a spec file as text (a regular file, at most [`MAX_SPEC_BYTES`], UTF-8).
pub fn read_text(path: &Path) -> Result<String, SpecError> {
    let source = SpecSource::File(path.to_path_buf());
    let bytes = guard::read_file(path).map_err(|p| SpecError {
        source: source.clone(),
        problems: vec![p],
    })?;
    utf8(bytes, &source)
}

/// Parses and checks a spec given as raw bytes (which must be UTF-8).
pub fn parse_bytes(bytes: &[u8], source: SpecSource) -> Result<Spec, SpecError> {
    let text = utf8(bytes.to_vec(), &source)?;
    parse(&text, source)
}

fn utf8(bytes: Vec<u8>, source: &SpecSource) -> Result<String, SpecError> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let good = &bytes[..valid];
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
                    bytes[valid]
                ),
                source: None,
            }],
        }
    })
}

/// Loads layered specs: `files` in order (none: `default_text` as `default_source`), then each
/// `--set PATH=VALUE` flag. Returns the spec and the layers (for origins).
pub fn load_layers(files: &[PathBuf], sets: &[String]) -> Result<(Spec, Layers), SpecError> {
    let mut layers = Layers::default();
    if files.is_empty() {
        layers.push_text(DEFAULT_SPEC_YAML, SpecSource::Embedded)?;
    }
    for file in files {
        let text = read_text(file)?;
        layers.push_text(&text, SpecSource::File(file.clone()))?;
    }
    for flag in sets {
        layers.push_set(flag)?;
    }
    Ok((layers.resolve()?, layers))
}

/// The embedded default spec, parsed.
pub fn embedded_default() -> Spec {
    parse(DEFAULT_SPEC_YAML, SpecSource::Embedded).expect("the embedded default spec is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_matches_rust_defaults() {
        assert_eq!(embedded_default(), Spec::default());
    }
}

//! Where blueprints come from (embedded in the binary, or a directory) and each objective's manifest.

use anyhow::{bail, Context, Result};
use rust_embed::RustEmbed;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(RustEmbed)]
#[folder = "blueprints/"]
struct Embedded;

/// The deployment objectives and the load-test Job, each rendered into `out/<name>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Objective {
    /// One VM: docker-compose, NGINX, certbot, user-data, CloudFormation.
    Objective1,
    /// Auto-scaling VMs: ALB, launch template, ASG, RDS, EFS.
    Objective2,
    /// Kubernetes (and a Docker Swarm stack).
    Objective3,
    /// The load-test Job: `bookstore loadtest` generators as a Kubernetes Indexed Job.
    Loadtest,
}

impl Objective {
    /// All objectives in order (the load-test Job last).
    pub const ALL: [Objective; 4] = [
        Objective::Objective1,
        Objective::Objective2,
        Objective::Objective3,
        Objective::Loadtest,
    ];

    /// Folder name under `blueprints/` and `out/`.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Objective1 => "objective1",
            Objective::Objective2 => "objective2",
            Objective::Objective3 => "objective3",
            Objective::Loadtest => "loadtest",
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One declared output: which template renders which file, with what mode.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Name under which later templates see this file's rendered text (`files.<key>`).
    pub key: String,
    /// Template path, relative to the objective's blueprint folder.
    pub template: String,
    /// Output path, relative to `out/<objective>/`.
    pub output: String,
    /// Octal file mode, e.g. `"0644"` or `"0755"`.
    pub mode: String,
}

/// An objective's `blueprint.yaml`: the ordered files and the command to run next.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The deploy step printed after `gen` (a template).
    pub next: String,
    /// Files in render order.
    pub files: Vec<FileEntry>,
}

impl FileEntry {
    /// The parsed octal mode.
    pub fn mode_bits(&self) -> Result<u32> {
        u32::from_str_radix(self.mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| {
                format!(
                    "mode `{}` of `{}` is not an octal file mode like \"0644\"",
                    self.mode, self.output
                )
            })
    }
}

/// A set of blueprints: the embedded ones or a directory (see `bookstore blueprints export`).
#[derive(Debug, Clone)]
pub enum Source {
    /// Compiled into the binary from `blueprints/`.
    Embedded,
    /// Read from this directory, laid out like `blueprints/`.
    Dir(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Embedded => f.write_str("embedded blueprints"),
            Source::Dir(d) => write!(f, "blueprints from {}", d.display()),
        }
    }
}

impl Source {
    /// Reads one file, by `/`-separated path relative to the blueprint root.
    pub fn read(&self, rel: &str) -> Result<String> {
        let bytes: Cow<'static, [u8]> = match self {
            Source::Embedded => {
                Embedded::get(rel)
                    .with_context(|| format!("no blueprint `{rel}` in the embedded set"))?
                    .data
            }
            Source::Dir(root) => {
                let path = root.join(rel);
                Cow::Owned(
                    std::fs::read(&path)
                        .with_context(|| format!("cannot read blueprint {}", path.display()))?,
                )
            }
        };
        String::from_utf8(bytes.into_owned())
            .with_context(|| format!("blueprint `{rel}` is not UTF-8"))
    }

    /// Every file path, `/`-separated and sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = match self {
            Source::Embedded => Embedded::iter().map(|p| p.into_owned()).collect(),
            Source::Dir(root) => {
                if !root.is_dir() {
                    bail!("blueprint directory {} does not exist; create one with `bookstore blueprints export {}`", root.display(), root.display());
                }
                let mut v = Vec::new();
                walk(root, root, &mut v)?;
                v
            }
        };
        out.sort();
        Ok(out)
    }

    /// Reads and parses `<objective>/blueprint.yaml`.
    pub fn manifest(&self, objective: Objective) -> Result<Manifest> {
        let rel = format!("{objective}/blueprint.yaml");
        let text = self.read(&rel)?;
        let manifest: Manifest = serde_yaml::from_str(&text)
            .with_context(|| format!("{rel} in the {self} is not a valid manifest"))?;
        for f in &manifest.files {
            f.mode_bits()?;
            safe_relative(&f.output).with_context(|| format!("{rel}: output `{}`", f.output))?;
            safe_relative(&f.template)
                .with_context(|| format!("{rel}: template `{}`", f.template))?;
        }
        Ok(manifest)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("walked under root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Rejects absolute paths and `..`, so a manifest cannot write outside its folder.
pub fn safe_relative(p: &str) -> Result<()> {
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == ".." || s.is_empty()) {
        bail!("must be a relative path inside the folder, without `..`");
    }
    Ok(())
}

/// Writes the embedded blueprints to `dir` for customising; refuses to overwrite files unless `force`.
pub fn export(dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
    let files = Source::Embedded.list()?;
    if !force {
        let existing: Vec<_> = files
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.exists())
            .collect();
        if let Some(first) = existing.first() {
            bail!(
                "{} already exists ({} file(s) would be overwritten); pass --force to overwrite",
                first.display(),
                existing.len()
            );
        }
    }
    let mut written = Vec::new();
    for rel in files {
        let path = dir.join(&rel);
        let text = Source::Embedded.read(&rel)?;
        crate::output::write_atomic(&path, text.as_bytes(), 0o644)?;
        written.push(path);
    }
    Ok(written)
}

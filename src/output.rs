//! Writing rendered objectives atomically, and checking committed output for staleness.

use crate::render::Rendered;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Writes one file atomically (temp file beside it, then rename), creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bookstore-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes each objective into `out/<objective>/`: all of them into temp folders first, then each
/// swapped into place by rename, so a failure never leaves a half-written folder.
pub fn write_all(out: &Path, rendered: &[Rendered]) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut staged = Vec::new();
    let mut written = Vec::new();
    for r in rendered {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.tmp-", r.objective))
            .tempdir_in(out)
            .with_context(|| format!("cannot create a temporary folder in {}", out.display()))?;
        for f in &r.files {
            let path = tmp.path().join(&f.path);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&path, &f.content)
                .with_context(|| format!("cannot write {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(f.mode))?;
            written.push(out.join(r.objective.name()).join(&f.path));
        }
        staged.push((tmp, out.join(r.objective.name())));
    }
    for (tmp, target) in staged {
        let old = if target.exists() {
            let old = out.join(format!(
                ".{}.old-{}",
                target.file_name().unwrap_or_default().to_string_lossy(),
                std::process::id()
            ));
            fs::rename(&target, &old)
                .with_context(|| format!("cannot move {} aside", target.display()))?;
            Some(old)
        } else {
            None
        };
        let tmp_path = tmp.keep();
        if let Err(e) = fs::rename(&tmp_path, &target) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &target);
            }
            let _ = fs::remove_dir_all(&tmp_path);
            return Err(e).with_context(|| {
                format!("cannot move the rendered files into {}", target.display())
            });
        }
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
        if let Some(old) = old {
            fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
        }
    }
    Ok(written)
}

/// One difference between rendered and committed output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Rendered but absent on disk.
    Missing(String),
    /// On disk but no longer rendered.
    Extra(String),
    /// Content differs; holds a unified diff.
    Changed(String, String),
    /// Executable bit differs.
    Mode(String, u32, u32),
}

/// Compares rendered objectives with what `out/` holds; empty means fresh.
pub fn check(out: &Path, rendered: &[Rendered]) -> Result<Vec<Drift>> {
    let mut drift = Vec::new();
    for r in rendered {
        let dir = out.join(r.objective.name());
        let mut on_disk = BTreeMap::new();
        if dir.is_dir() {
            collect(&dir, &dir, &mut on_disk)?;
        }
        for f in &r.files {
            let shown = format!("{}/{}", r.objective, f.path);
            match on_disk.remove(&f.path) {
                None => drift.push(Drift::Missing(shown)),
                Some(path) => {
                    let current = fs::read_to_string(&path).unwrap_or_default();
                    if current != f.content {
                        let diff = similar::TextDiff::from_lines(&current, &f.content)
                            .unified_diff()
                            .context_radius(3)
                            .header(&format!("a/{shown}"), &format!("b/{shown}"))
                            .to_string();
                        drift.push(Drift::Changed(shown.clone(), diff));
                    }
                    let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
                    if (mode & 0o111 != 0) != (f.mode & 0o111 != 0) {
                        drift.push(Drift::Mode(shown, mode, f.mode));
                    }
                }
            }
        }
        for rel in on_disk.into_keys() {
            drift.push(Drift::Extra(format!("{}/{rel}", r.objective)));
        }
    }
    Ok(drift)
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, path);
        }
    }
    Ok(())
}

//! The rendered files a rehearsal runs: rendered now from the spec, or read from a directory
//! the user rendered (and maybe edited) before (`--rendered out/objective2`). A rendered value
//! the rehearsal cannot use is a [`RenderedError`]: bad input, exit 2, with the file, the line,
//! the key path and the reason.

use super::Options;
use crate::blueprints::Objective;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A rendered file the rehearsal cannot use (bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{at}: {path}: {reason}", at = match .line { Some((l, c)) => format!(":{l}:{c}"), None => String::new() })]
pub struct RenderedError {
    /// The file, as the user knows it.
    pub file: String,
    /// 1-based (line, column) of the key, when found.
    pub line: Option<(usize, usize)>,
    /// The key path, e.g. `Resources.CpuScalingPolicy.Properties.TargetTrackingConfiguration.TargetValue`.
    pub path: String,
    /// What is wrong and what to do.
    pub reason: String,
}

/// An objective's rendered files by path relative to its folder (`k8s/hpa.yaml`).
#[derive(Debug, Clone)]
pub struct RenderedFiles {
    files: HashMap<String, String>,
    dir: Option<PathBuf>,
    objective: Objective,
}

impl RenderedFiles {
    /// `opts.rendered` when given, else the spec rendered with the embedded blueprints.
    pub fn load(opts: &Options, objective: Objective) -> Result<RenderedFiles> {
        match &opts.rendered {
            None => Ok(RenderedFiles {
                files: super::objective1::rendered(opts, objective)?,
                dir: None,
                objective,
            }),
            Some(dir) => Self::read_dir(dir, objective),
        }
    }

    fn read_dir(dir: &Path, objective: Objective) -> Result<RenderedFiles> {
        let bad = |reason: String| RenderedError {
            file: dir.display().to_string(),
            line: None,
            path: "(directory)".into(),
            reason,
        };
        if !dir.is_dir() {
            return Err(bad(format!(
                "not a directory; render one with `bookstore gen {objective}` and pass its folder, e.g. --rendered out/{objective}"
            ))
            .into());
        }
        let mut files = HashMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in
                std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
            {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    stack.push(p);
                } else if e.file_type()?.is_file() {
                    let rel = p
                        .strip_prefix(dir)
                        .expect("below dir")
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    let meta = e.metadata()?;
                    if meta.len() > 16 * 1024 * 1024 {
                        return Err(bad(format!(
                            "{rel} is {} bytes; rendered files are far smaller",
                            meta.len()
                        ))
                        .into());
                    }
                    let text = std::fs::read_to_string(&p)
                        .map_err(|err| bad(format!("{rel} is not readable UTF-8 text: {err}")))?;
                    files.insert(rel, text);
                }
            }
        }
        Ok(RenderedFiles {
            files,
            dir: Some(dir.to_path_buf()),
            objective,
        })
    }

    /// The text of `path`, or a [`RenderedError`] saying it is missing.
    pub fn get(&self, path: &str) -> Result<&str, RenderedError> {
        self.files
            .get(path)
            .map(String::as_str)
            .ok_or_else(|| RenderedError {
                file: self.label(path),
                line: None,
                path: "(file)".into(),
                reason: match &self.dir {
                    Some(_) => format!("missing; `bookstore gen {}` renders it", self.objective),
                    None => "the blueprints render no such file".into(),
                },
            })
    }

    /// The text of `path` when it exists.
    pub fn find(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// Every path, sorted.
    pub fn paths(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.files.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// How messages name `path`: the real file, or what `gen` would write.
    pub fn label(&self, path: &str) -> String {
        match &self.dir {
            Some(d) => d.join(path).display().to_string(),
            None => format!(
                "out/{}/{path} (as rendered now from the spec)",
                self.objective
            ),
        }
    }

    /// True when the files come from a directory (`--rendered`).
    pub fn from_directory(&self) -> bool {
        self.dir.is_some()
    }
}

/// True when `e` (or a cause) is bad rendered input.
pub fn is_bad_rendered(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<RenderedError>().is_some())
}

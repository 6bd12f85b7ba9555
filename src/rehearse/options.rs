//! How a rehearsal is run from a library or a test ([`Options`]), and where it keeps its files
//! ([`WorkDir`]).

use super::{autoscale, objective1, Scaling};
use crate::spec::Spec;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of a rehearsal run from a library or a test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The spec whose rendered files are rehearsed.
    pub spec: Spec,
    /// A binary with the `serve` subcommand (this one, or `bookstore` under test).
    pub exe: PathBuf,
    /// Work directory to keep; `None`: a temp dir removed on drop.
    pub workdir: Option<PathBuf>,
    /// Objective 2: instances to start with (0: the rendered `DesiredCapacity`).
    pub instances: usize,
    /// Demo books to seed.
    pub seed_books: u32,
    /// The longest real time between two health checks of an instance by the load balancer
    /// stand-in (the rendered interval divided by the time scale, when that is shorter).
    pub health_interval: Duration,
    /// Print progress lines on stderr.
    pub verbose: bool,
    /// Rehearse the files rendered in this directory instead of rendering the spec.
    pub rendered: Option<PathBuf>,
    /// Platform seconds per real second.
    pub time_scale: autoscale::TimeScale,
    /// Each instance's CPU capacity (`None`: the objective's default).
    pub instance_cpu: Option<f64>,
    /// Who scales (the library default: [`Scaling::Manual`]; the CLI's: the autoscaler).
    pub scaling: Scaling,
    /// Port of the autoscaler's status server (0: any free port).
    pub status_port: u16,
    /// Objective 1: where the certificate comes from.
    pub certificates: objective1::Certificates,
}

impl Options {
    /// Defaults: the current executable, a temp dir, the rendered desired capacity, 60 books,
    /// health checks at least every second, real time, manual scaling.
    pub fn new(spec: Spec) -> Result<Options> {
        Ok(Options {
            spec,
            exe: std::env::current_exe().context("cannot find the running executable")?,
            workdir: None,
            instances: 0,
            seed_books: 60,
            health_interval: Duration::from_secs(1),
            verbose: false,
            rendered: None,
            time_scale: autoscale::TimeScale::REAL,
            instance_cpu: None,
            scaling: Scaling::Manual,
            status_port: 0,
            certificates: objective1::Certificates::SelfSigned,
        })
    }
}

/// The rehearsal's directory: kept when the user named it, else removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    pub(super) path: PathBuf,
    pub(super) _temp: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub(super) fn new(keep: Option<&Path>) -> Result<WorkDir> {
        match keep {
            Some(p) => {
                std::fs::create_dir_all(p)
                    .with_context(|| format!("cannot create {}", p.display()))?;
                Ok(WorkDir {
                    path: std::fs::canonicalize(p)?,
                    _temp: None,
                })
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("bookstore-rehearsal-")
                    .tempdir()?;
                Ok(WorkDir {
                    path: t.path().to_path_buf(),
                    _temp: Some(t),
                })
            }
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a host path of the VM lives in the rehearsal: `<work>/host/<path>`.
    pub fn host(&self, vm_path: &str) -> PathBuf {
        self.path.join("host").join(vm_path.trim_start_matches('/'))
    }
}

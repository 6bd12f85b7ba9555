//! The commands that check a spec before a deploy: `validate`, `gen --explain/--strict`, the
//! render notes of `gen`, `cost` and `preflight`.

use crate::blueprints::{Objective, Source};
use crate::cli::{bad, load_layers, render_all, Failure, GenArgs, SpecArgs, Target};
use crate::render::Rendered;
use crate::spec::{self, Spec, SpecSource};
use anstream::{eprintln, print, println};
use anstyle::{AnsiColor, Style};
use anyhow::anyhow;
use anyhow::Context;
use clap::ValueEnum;
use std::path::Path;
use std::process::ExitCode;

/// One objective (no `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OneObjective {
    /// One VM.
    Objective1,
    /// Auto-scaling VMs.
    Objective2,
    /// Kubernetes (EKS).
    Objective3,
}

impl From<OneObjective> for Objective {
    fn from(o: OneObjective) -> Self {
        match o {
            OneObjective::Objective1 => Objective::Objective1,
            OneObjective::Objective2 => Objective::Objective2,
            OneObjective::Objective3 => Objective::Objective3,
        }
    }
}

/// Arguments of `cost`.
#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Which objective to price.
    pub objective: OneObjective,
    /// The spec layers and overrides.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// What the spec does not say.
    #[command(flatten)]
    pub assume: crate::cost::Assumptions,
}

/// Arguments of `preflight`.
#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// Which objective to check.
    pub objective: OneObjective,
    /// The spec layers and overrides.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Only the checks that need no account, cluster or network.
    #[arg(long)]
    pub offline: bool,
    /// The DNS server to ask about the domain (default: the first in /etc/resolv.conf).
    #[arg(long, value_name = "IP:PORT")]
    pub dns_server: Option<std::net::SocketAddr>,
}

/// `bookstore preflight`.
pub fn preflight(args: &PreflightArgs) -> Result<ExitCode, Failure> {
    let (spec, layers) = load_layers(&args.spec)?;
    eprintln!("spec: {}", layers.source());
    let opts = crate::preflight::Options {
        offline: args.offline,
        dns_server: args.dns_server,
    };
    let checks = crate::preflight::run(&spec, args.objective.into(), &opts)?;
    print!("{}", crate::preflight::format(&checks));
    let failed = checks
        .iter()
        .filter(|c| c.status == crate::preflight::Status::Fail)
        .count();
    if failed == 0 {
        println!("preflight: no check failed");
        return Ok(ExitCode::SUCCESS);
    }
    println!("preflight: {failed} check(s) failed");
    Ok(ExitCode::from(1))
}

/// `bookstore cost`.
pub fn cost(args: &CostArgs) -> Result<ExitCode, Failure> {
    let (spec, layers) = load_layers(&args.spec)?;
    eprintln!("spec: {}", layers.source());
    let e = crate::cost::estimate(&spec, args.objective.into(), &args.assume)
        .map_err(|m| bad(anyhow!(m)))?;
    print!("{}", crate::cost::format(&e));
    Ok(ExitCode::SUCCESS)
}

/// Prints the warnings of [`crate::preflight::render_notes`]; its errors are bad input.
pub fn render_notes(spec: &Spec, rendered: &[Rendered]) -> Result<(), Failure> {
    let (errors, warnings) = crate::preflight::render_notes(spec, rendered);
    let warn = Style::new().bold().fg_color(Some(AnsiColor::Yellow.into()));
    for w in &warnings {
        eprintln!("{warn}warning{warn:#}: {w}");
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(bad(anyhow!(
        "{} problem(s) in the rendered output:\n  {}",
        errors.len(),
        errors.join("\n  ")
    )))
}

pub fn validate(args: &SpecArgs, show_origin: bool) -> Result<ExitCode, Failure> {
    let (spec, layers) = load_layers(args)?;
    let rendered = render_all(&spec, &Source::Embedded, Target::All, Path::new("out"))
        .context("rendering the spec in memory failed")?;
    render_notes(&spec, &rendered)?;
    if show_origin {
        let rows = spec::show_origin(&spec, &layers);
        let width = rows
            .iter()
            .map(|r| r.0.len() + r.1.len() + 3)
            .max()
            .unwrap_or(0);
        for (path, value, origin) in rows {
            let left = format!("{path} = {value}");
            println!("{left:<width$}  # {origin}");
        }
    }
    println!("{}: the spec is valid", layers.source());
    Ok(ExitCode::SUCCESS)
}

/// `--explain` and `--strict`.
pub fn fidelity(args: &GenArgs, source: &Source, layers: &spec::Layers) -> Result<(), Failure> {
    if !args.explain && !args.strict {
        return Ok(());
    }
    let user_set = |field: &str| {
        layers
            .origin(field)
            .source
            .is_some_and(|s| s != SpecSource::Embedded)
    };
    let mut violations = Vec::new();
    for o in args.target.objectives() {
        let rows = crate::explain::report(source, o)?;
        if args.explain {
            print!("{}", crate::explain::format(o, &rows, &user_set));
        }
        if args.strict {
            violations.extend(crate::explain::strict_violations(o, &rows, &user_set));
        }
    }
    if violations.is_empty() {
        return Ok(());
    }
    Err(bad(anyhow!(
        "--strict: {} field(s) you set would be ignored; remove them or render another objective:\n  {}",
        violations.len(),
        violations.join("\n  ")
    )))
}

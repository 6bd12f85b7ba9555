//! `bookstore image build|push`: the shop's image (or the CLI's) from `app/Dockerfile`, with
//! docker or podman, named from the spec (`app.image`:`app.tag`). Registry logins stay the
//! user's: this module never reads, asks for or stores a credential.

mod engine;

pub use engine::{
    build_step, pick_engine, reference, registry, revision, shell_quote, Engine, Kind, Labels,
    Step, DOCKERFILE, DRY_RUN_STAGE,
};

use crate::cli::{load_spec, Failure};
use anstream::{eprintln, println};
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// `bookstore image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the image with docker or podman (the Dockerfile's Rust stage, or a prebuilt binary).
    #[command(after_help = "Examples:
  bookstore image build                       # ghcr.io/OWNER/bookstore-app:TAG from ./bookstore.yaml
  bookstore image build --cli                 # the load generator's image (ghcr.io/OWNER/bookstore:TAG)
  bookstore image build --dry-run             # print the commands only
  cargo build --release --locked -p bookstore-app
  bookstore image build --binary target/release/bookstore-app   # skip the in-image compile")]
    Build(BuildArgs),
    /// Push the built image to its registry (log in first with `docker login` / `podman login`).
    #[command(after_help = "Examples:
  podman login ghcr.io && bookstore image push
  bookstore image push --cli --dry-run")]
    Push(PushArgs),
}

/// What both subcommands take.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The spec whose `app.image` and `app.tag` name the image (default: ./bookstore.yaml, else
    /// the embedded default).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// The `bookstore` CLI's image (the load generator), named beside the shop's:
    /// `REGISTRY/OWNER/bookstore:TAG`.
    #[arg(long)]
    pub cli: bool,
    /// The container engine (default: docker when its daemon answers, else podman).
    #[arg(long, value_enum)]
    pub engine: Option<Engine>,
    /// Print the commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `image build`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub common: Common,
    /// The repository checkout to build from (the directory holding app/Dockerfile).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub context: PathBuf,
    /// Put this binary in the image instead of compiling it in the Dockerfile's Rust stage. It
    /// must be a Linux binary for the image's platform linked against glibc 2.36 or older
    /// (`cargo build --release --locked` on Debian 12).
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
    /// Build for this platform, e.g. `linux/arm64` (default: the engine's own).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

/// Arguments of `image push`.
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub common: Common,
}

/// Runs `image build` or `image push`.
pub fn run(command: &ImageCommand) -> Result<ExitCode, Failure> {
    match command {
        ImageCommand::Build(args) => build(args),
        ImageCommand::Push(args) => push(args),
    }
}

fn kind(common: &Common) -> Kind {
    if common.cli {
        Kind::Cli
    } else {
        Kind::App
    }
}

fn build(args: &BuildArgs) -> Result<ExitCode, Failure> {
    let (spec, source) = load_spec(args.common.spec.as_deref())?;
    let kind = kind(&args.common);
    let reference = reference(kind, &spec.app.image, &spec.app.tag);
    if !args.context.join(DOCKERFILE).is_file() {
        return Err(Failure::BadInput(anyhow!(
            "{} has no {DOCKERFILE}; run this in a checkout of the bookstore repository, or pass \
             --context DIR",
            args.context.display()
        )));
    }
    if let Some(bin) = &args.binary {
        if !bin.is_file() {
            return Err(Failure::BadInput(anyhow!(
                "--binary {}: no such file; build it with `cargo build --release --locked -p {}`",
                bin.display(),
                crate_of(kind)
            )));
        }
    }
    let engine = pick_engine(args.common.engine)?;
    let labels = Labels {
        version: spec.app.tag.clone(),
        revision: revision(&args.context),
    };
    eprintln!("spec: {source}");
    eprintln!("image: {reference} (Dockerfile target `{}`)", kind.target());

    if args.common.dry_run {
        let stage = args.binary.as_ref().map(|bin| {
            println!(
                "ctx=$(mktemp -d) && mkdir \"$ctx/out\" && cp {} \"$ctx/out/{}\"",
                shell_quote(&bin.display().to_string()),
                kind.binary()
            );
            DRY_RUN_STAGE.to_string()
        });
        let step = build_step(
            engine,
            kind,
            &reference,
            &args.context,
            &labels,
            args.platform.as_deref(),
            stage.as_deref(),
        );
        println!("{step}");
        return Ok(ExitCode::SUCCESS);
    }

    let staged = match &args.binary {
        Some(bin) => Some(stage_binary(bin, kind)?),
        None => None,
    };
    let step = build_step(
        engine,
        kind,
        &reference,
        &args.context,
        &labels,
        args.platform.as_deref(),
        staged
            .as_ref()
            .map(|d| d.path().to_str().unwrap_or_default()),
    );
    execute(&step).map_err(|e| match &args.binary {
        Some(_) => Failure::Failed(e),
        None => Failure::Failed(anyhow!(
            "{e:#}\nthe Rust build stage pulls the `rust` image: without a registry, compile on \
             Debian 12 (`cargo build --release --locked -p {}`) and pass --binary",
            crate_of(kind)
        )),
    })?;
    eprintln!("built {reference}");
    eprintln!(
        "next: `bookstore image push{}` (after `{} login {}`)",
        if kind == Kind::Cli { " --cli" } else { "" },
        engine.program(),
        registry(&reference)
    );
    Ok(ExitCode::SUCCESS)
}

fn crate_of(kind: Kind) -> &'static str {
    match kind {
        Kind::App => "bookstore-app",
        Kind::Cli => "bookstore",
    }
}

/// Copies the binary to `DIR/out/NAME` in a fresh temporary directory (the build stage's layout).
fn stage_binary(bin: &Path, kind: Kind) -> Result<tempfile::TempDir, Failure> {
    let dir = tempfile::Builder::new()
        .prefix("bookstore-image-")
        .tempdir()
        .context("cannot create a temporary directory for the binary")?;
    let out = dir.path().join("out");
    std::fs::create_dir(&out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::copy(bin, out.join(kind.binary()))
        .with_context(|| format!("cannot copy {} into {}", bin.display(), out.display()))?;
    Ok(dir)
}

fn push(args: &PushArgs) -> Result<ExitCode, Failure> {
    let (spec, source) = load_spec(args.common.spec.as_deref())?;
    let kind = kind(&args.common);
    let reference = reference(kind, &spec.app.image, &spec.app.tag);
    let engine = pick_engine(args.common.engine)?;
    let step = Step {
        argv: vec![engine.program().into(), "push".into(), reference.clone()],
    };
    eprintln!("spec: {source}");
    let default = crate::spec::embedded_default();
    if spec.app.image == default.app.image {
        eprintln!(
            "note: {} is the project's published image; to publish your own, set app.image in \
             your spec (e.g. ghcr.io/YOU/bookstore-app)",
            default.app.image
        );
    }
    if args.common.dry_run {
        println!("{step}");
        return Ok(ExitCode::SUCCESS);
    }
    let present = Command::new(engine.program())
        .args(["image", "inspect", &reference])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        return Err(Failure::Failed(anyhow!(
            "{reference} is not built here; run `bookstore image build{}` first",
            if kind == Kind::Cli { " --cli" } else { "" }
        )));
    }
    execute(&step).map_err(|e| {
        Failure::Failed(anyhow!(
            "{e:#}\nif the registry refused you, log in first: `{} login {}` (the engine keeps \
             the credentials; bookstore never reads or stores them)",
            engine.program(),
            registry(&reference)
        ))
    })?;
    eprintln!("pushed {reference}");
    Ok(ExitCode::SUCCESS)
}

/// Prints the command, runs it with the terminal attached and fails unless it exits 0.
fn execute(step: &Step) -> anyhow::Result<()> {
    eprintln!("+ {step}");
    let status = Command::new(&step.argv[0])
        .args(&step.argv[1..])
        .status()
        .with_context(|| format!("cannot run {}", step.argv[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("`{}` failed ({status})", step.argv[..2].join(" ")))
    }
}

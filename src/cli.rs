//! The command line: clap definitions and the commands behind them.

use crate::blueprints::{self, Objective, Source};
pub use crate::cli_checks::{CostArgs, OneObjective, PreflightArgs};
use crate::output::{self, Drift};
use crate::render::{self, Rendered};
use crate::spec::{self, Spec, SpecError, SpecSource};
use anstream::{eprintln, println};
use anstyle::{AnsiColor, Style};
use anyhow::{anyhow, Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const ABOUT: &str =
    "Render, run and load-test the bookstore monolith: one VM, auto-scaling VMs, Kubernetes.";

const EXAMPLES: &str = "\
Examples:
  bookstore init                      # write a commented bookstore.yaml
  bookstore gen all                   # render out/objective1..3 and out/loadtest from ./bookstore.yaml (or the default spec)
  bookstore gen objective1 --spec prod.yaml --out deploy
  bookstore gen all --check           # exit 1 with a diff when out/ is stale
  bookstore validate --spec prod.yaml # report every problem in a spec
  bookstore blueprints export my-bp   # eject the templates, then: bookstore gen all --blueprints my-bp
  bookstore completions bash > /etc/bash_completion.d/bookstore";

/// The `bookstore` command.
#[derive(Debug, Parser)]
#[command(name = "bookstore", version, about = ABOUT, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a fully commented spec to start from.
    #[command(after_help = "Examples:\n  bookstore init\n  bookstore init prod.yaml --force")]
    Init {
        /// Where to write it.
        #[arg(default_value = "bookstore.yaml")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Render the deployment artifacts of one objective, or all of them, from the spec.
    #[command(
        after_help = "Examples:\n  bookstore gen all\n  bookstore gen objective2 --spec prod.yaml --out deploy\n  bookstore gen loadtest              # out/loadtest: the Indexed Job of load generators\n  bookstore gen all --check\n  bookstore gen objective1 --blueprints my-blueprints"
    )]
    Gen(GenArgs),
    /// Check a spec and report every problem in it.
    #[command(
        after_help = "Examples:\n  bookstore validate\n  bookstore validate --spec prod.yaml\n  bookstore validate --spec base.yaml --spec prod.yaml --set objective2.max_size=10 --show-origin"
    )]
    Validate {
        /// The spec layers and overrides.
        #[command(flatten)]
        spec: SpecArgs,
        /// Print every final value with the file:line:column (or flag) it came from.
        #[arg(long)]
        show_origin: bool,
    },
    /// Estimate the monthly on-demand cost of an objective from the spec (offline, pinned prices).
    #[command(
        after_help = "Examples:\n  bookstore cost objective2\n  bookstore cost objective2 --spec prod.yaml --set objective2.max_size=10\n  bookstore cost objective3 --lcu 2"
    )]
    Cost(CostArgs),
    /// Check what would make a deploy fail or a certificate hang: ok / warn / fail, exit 0 / 1.
    #[command(
        after_help = "Examples:\n  bookstore preflight objective1\n  bookstore preflight objective2 --spec prod.yaml\n  bookstore preflight objective3 --offline\n\nUses `aws` and `kubectl` read-only (get/describe calls); --offline runs only the checks that need no account."
    )]
    Preflight(PreflightArgs),
    /// Work with the blueprint templates.
    #[command(subcommand)]
    Blueprints(BlueprintsCommand),
    #[cfg(feature = "serve")]
    /// Run the shop itself (the same as the `bookstore-app` binary); arguments pass through.
    #[command(
        disable_help_flag = true,
        after_help = "Examples:\n  BOOKSTORE_DATABASE_URL=mysql://shop@127.0.0.1:3306/shop bookstore serve\n  bookstore serve migrate\n  bookstore serve seed --books 1000\n  bookstore serve --help"
    )]
    Serve {
        /// Arguments for the shop: `[--config FILE] [serve|migrate|seed --books N]`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    #[cfg(feature = "serve")]
    /// Run the rendered files of an objective on this machine, on loopback: MariaDB, the shop,
    /// nginx (for objective 2 a load balancer and N instances; for objective 3 the Deployment's
    /// pods behind its route, scaled by its HPA), with the differences from AWS printed. Needs nginx, MariaDB and openssl installed.
    #[command(
        after_help = "Examples:\n  bookstore rehearse objective1                # certbot against pebble; prints the URL, its CA\n  bookstore rehearse objective1 --dns-points-at 127.0.0.2  # DNS elsewhere: see the retries\n  bookstore rehearse objective2 --time-scale 12  # scales by its rendered policies; a platform minute takes 5 s\n  bookstore rehearse objective2 --manual --instances 3  # type + / - to scale out / in\n  bookstore rehearse objective2 --rendered out/objective2 --instance-cpu 0.1\n  bookstore rehearse objective2 --spec prod.yaml --duration 5m\n  bookstore rehearse objective3 --time-scale 12  # the Deployment's pods scaled by the rendered HPA\n  bookstore rehearse objective3 --manual --instances 2  # kubectl scale by hand: + / -\n  bookstore loadtest --url https://127.0.0.1:PORT --insecure --expect-instances 3\n\nNeeds nginx, mariadb-server and openssl installed (their services may stay stopped); objective 1's certificate flow also pebble, certbot and bind9-dnsutils (or --self-signed)."
    )]
    Rehearse(crate::rehearse::RehearseArgs),
    #[cfg(feature = "loadtest")]
    /// Drive goose shoppers at a deployment and prove how many instances served them.
    #[command(after_help = bookstore_loadtests::EXAMPLES)]
    Loadtest(Box<bookstore_loadtests::LoadtestCli>),
    /// Build or push the shop's container image (or the CLI's) with docker or podman.
    #[command(subcommand)]
    Image(crate::image::ImageCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  bookstore completions bash > ~/.local/share/bash-completion/completions/bookstore\n  bookstore completions zsh > ~/.zfunc/_bookstore"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `bookstore blueprints ...`
#[derive(Debug, Subcommand)]
pub enum BlueprintsCommand {
    /// Write the embedded blueprints to a directory, to customise and render with `--blueprints DIR`.
    #[command(
        after_help = "Examples:\n  bookstore blueprints export my-blueprints\n  bookstore gen all --blueprints my-blueprints"
    )]
    Export {
        /// Target directory.
        dir: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// List the embedded blueprint files.
    #[command(after_help = "Examples:\n  bookstore blueprints list")]
    List,
}

/// What `gen` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// One VM.
    Objective1,
    /// Auto-scaling VMs.
    Objective2,
    /// Kubernetes and Docker Swarm.
    Objective3,
    /// The load-test Job (a Kubernetes Indexed Job of `bookstore loadtest` generators).
    Loadtest,
    /// Every objective and the load-test Job.
    All,
}

impl Target {
    pub(crate) fn objectives(self) -> Vec<Objective> {
        match self {
            Target::Objective1 => vec![Objective::Objective1],
            Target::Objective2 => vec![Objective::Objective2],
            Target::Objective3 => vec![Objective::Objective3],
            Target::Loadtest => vec![Objective::Loadtest],
            Target::All => Objective::ALL.to_vec(),
        }
    }
}

/// Where the spec comes from: files layered in order, then `--set` overrides.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SpecArgs {
    /// A spec file; repeat to layer them (later files override earlier ones: mappings merged,
    /// lists replaced). Default: ./bookstore.yaml, else the embedded default.
    #[arg(long = "spec", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Override one value after the files, e.g. `--set objective2.max_size=10` (the value is YAML;
    /// a list is set whole: `--set objective1.allowed_cidrs=[10.0.0.0/8]`).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
}

/// Arguments of `gen`.
#[derive(Debug, clap::Args)]
pub struct GenArgs {
    /// Which objective(s) to render.
    pub target: Target,
    /// The spec layers and overrides.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Output root; each objective gets its own folder in it.
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Render from this blueprint directory instead of the embedded set.
    #[arg(long, value_name = "DIR")]
    pub blueprints: Option<PathBuf>,
    /// Write nothing; exit 1 with a unified diff when the output folder is stale.
    #[arg(long)]
    pub check: bool,
    /// Print, per objective, every spec field and what the target does with it.
    #[arg(long)]
    pub explain: bool,
    /// Refuse (exit 2) when a field your spec sets is ignored by an objective being rendered.
    #[arg(long)]
    pub strict: bool,
}

/// A command's failure, sorted into bad input (exit 2) and everything else (exit 1).
#[derive(Debug)]
pub enum Failure {
    /// The user's input was wrong: spec, paths, refusing to overwrite.
    BadInput(anyhow::Error),
    /// Something failed while doing the work.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

impl From<SpecError> for Failure {
    fn from(e: SpecError) -> Self {
        Failure::BadInput(anyhow!(e))
    }
}

/// Bad input (exit 2).
pub(crate) fn bad(e: impl Into<anyhow::Error>) -> Failure {
    Failure::BadInput(e.into())
}

/// Parses the process arguments and runs; returns the exit code.
pub fn main() -> ExitCode {
    run_with(std::env::args_os())
}

/// Parses `args` (args[0] is the program name) and runs; returns the exit code.
pub fn run_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let err_style = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
    match run(cli) {
        Ok(code) => code,
        Err(Failure::BadInput(e)) => {
            eprintln!("{err_style}error{err_style:#}: {}", chain(&e));
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("{err_style}error{err_style:#}: {}", chain(&e));
            ExitCode::from(1)
        }
    }
}

fn chain(e: &anyhow::Error) -> String {
    let mut s = e.to_string().trim_end().to_string();
    for cause in e.chain().skip(1) {
        s.push_str(&format!("\n  caused by: {}", cause.to_string().trim_end()));
    }
    s
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Init { path, force } => init(&path, force),
        Command::Gen(args) => gen(&args),
        Command::Validate { spec, show_origin } => crate::cli_checks::validate(&spec, show_origin),
        Command::Preflight(args) => crate::cli_checks::preflight(&args),
        Command::Cost(args) => crate::cli_checks::cost(&args),
        Command::Blueprints(BlueprintsCommand::Export { dir, force }) => {
            let written = blueprints::export(&dir, force).map_err(bad)?;
            println!(
                "wrote {} blueprint files to {}",
                written.len(),
                dir.display()
            );
            println!(
                "next: edit them, then `bookstore gen all --blueprints {}`",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Blueprints(BlueprintsCommand::List) => {
            for f in Source::Embedded.list()? {
                println!("{f}");
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "serve")]
        Command::Serve { args } => {
            let argv = std::iter::once(OsString::from("bookstore serve")).chain(args);
            Ok(bookstore_app::cli_main(argv))
        }
        #[cfg(feature = "serve")]
        Command::Rehearse(args) => crate::rehearse::run(&args),
        #[cfg(feature = "loadtest")]
        Command::Loadtest(args) => Ok(bookstore_loadtests::main(*args)),
        Command::Image(command) => crate::image::run(&command),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "bookstore", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init(path: &Path, force: bool) -> Result<ExitCode, Failure> {
    if path.exists() && !force {
        return Err(bad(anyhow!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    output::write_atomic(path, spec::DEFAULT_SPEC_YAML.as_bytes(), 0o644)?;
    println!("wrote {}", path.display());
    println!("next: edit it, then `bookstore gen all`");
    Ok(ExitCode::SUCCESS)
}

/// Finds and loads the spec: `--spec`, else `./bookstore.yaml`, else the embedded default.
pub fn load_spec(explicit: Option<&Path>) -> Result<(Spec, SpecSource), Failure> {
    let args = SpecArgs {
        files: explicit.map(Path::to_path_buf).into_iter().collect(),
        sets: Vec::new(),
    };
    let (spec, layers) = load_layers(&args)?;
    Ok((spec, layers.source()))
}

/// Loads layered specs: the `--spec` files (else `./bookstore.yaml`, else the embedded
/// default), then the `--set` flags.
pub fn load_layers(args: &SpecArgs) -> Result<(Spec, spec::Layers), Failure> {
    let local = Path::new("bookstore.yaml");
    let files = if args.files.is_empty() && local.exists() {
        vec![local.to_path_buf()]
    } else {
        args.files.clone()
    };
    Ok(spec::load_layers(&files, &args.sets)?)
}

/// Renders every objective of `target` in memory, for the output root `out`.
pub fn render_all(
    spec: &Spec,
    source: &Source,
    target: Target,
    out: &Path,
) -> Result<Vec<Rendered>> {
    target
        .objectives()
        .into_iter()
        .map(|o| render::render(spec, source, o, &out.join(o.name()).display().to_string()))
        .collect()
}

fn gen(args: &GenArgs) -> Result<ExitCode, Failure> {
    let (spec, layers) = load_layers(&args.spec)?;
    let spec_source = layers.source();
    let source = match &args.blueprints {
        Some(dir) if !dir.is_dir() => {
            return Err(bad(anyhow!(
                "blueprint directory {} does not exist; create one with `bookstore blueprints export {}`",
                dir.display(),
                dir.display()
            )))
        }
        Some(dir) => Source::Dir(dir.clone()),
        None => Source::Embedded,
    };
    eprintln!("spec: {spec_source}");
    eprintln!("blueprints: {source}");
    let rendered = render_all(&spec, &source, args.target, &args.out)
        .context("rendering failed; nothing was written")?;
    crate::cli_checks::render_notes(&spec, &rendered)?;
    crate::cli_checks::fidelity(args, &source, &layers)?;
    if args.check {
        return check(&args.out, &rendered);
    }
    output::write_all(&args.out, &rendered).with_context(|| {
        format!(
            "writing into {} failed; its previous contents are unchanged",
            args.out.display()
        )
    })?;
    print_table(&args.out, &rendered);
    Ok(ExitCode::SUCCESS)
}

fn check(out: &Path, rendered: &[Rendered]) -> Result<ExitCode, Failure> {
    let drift = output::check(out, rendered)?;
    if drift.is_empty() {
        println!("{} is up to date", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    for d in &drift {
        match d {
            Drift::Missing(p) => println!("missing: {p}"),
            Drift::Extra(p) => println!("no longer rendered: {p}"),
            Drift::Mode(p, was, want) => {
                println!("mode of {p}: {was:o} on disk, {want:o} rendered")
            }
            Drift::Changed(_, diff) => print!("{diff}"),
        }
    }
    eprintln!(
        "{} is stale ({} difference(s)); run `bookstore gen all --out {}` and commit the result",
        out.display(),
        drift.len(),
        out.display()
    );
    Ok(ExitCode::from(1))
}

fn print_table(out: &Path, rendered: &[Rendered]) {
    let bold = Style::new().bold();
    let rows: Vec<(String, String, usize)> = rendered
        .iter()
        .flat_map(|r| {
            r.files.iter().map(move |f| {
                (
                    out.join(r.objective.name())
                        .join(&f.path)
                        .display()
                        .to_string(),
                    format!("{:04o}", f.mode),
                    f.content.len(),
                )
            })
        })
        .collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    println!(
        "{bold}{:<width$}  {:>4}  {:>7}{bold:#}",
        "FILE", "MODE", "BYTES"
    );
    for (path, mode, size) in &rows {
        println!("{path:<width$}  {mode:>4}  {size:>7}");
    }
    println!();
    println!("{bold}next{bold:#}:");
    for r in rendered {
        println!("  # {}", r.objective);
        for line in r.next.lines() {
            println!("  {line}");
        }
    }
}

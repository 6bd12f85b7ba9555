//! `bookstore loadtest`: a run (the flags of [`LoadtestArgs`]), or `merge` / `collect` of the
//! results of shards.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::collect::CollectArgs;
use crate::merge::Merged;
use crate::{LoadtestArgs, LoadtestError, EXIT_ERROR, EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE};

/// `bookstore loadtest [FLAGS] | merge PATH... | collect --job NAME`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = crate::EXAMPLES
)]
pub struct LoadtestCli {
    /// Merge or collect the results of shards instead of running.
    #[command(subcommand)]
    pub tool: Option<Tool>,
    /// The run's flags.
    #[command(flatten)]
    pub run: Option<LoadtestArgs>,
}

/// What to do with shards' results.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Tool {
    /// Merge the result files of a run's shards (files, directories of them, or saved
    /// `kubectl logs` with marked results) into one report, with its verdict, gates and exit
    /// status. Exit 1 when a shard is missing or ended early (the rest is still reported), 2
    /// when the files are not shards of one run.
    #[command(
        after_help = "Examples:\n  bookstore loadtest merge shard-0.json shard-1.json shard-2.json --report out/load\n  bookstore loadtest merge results/ --report out/load\n  kubectl logs -l job-name=loadtest --tail=-1 --prefix > all.log; bookstore loadtest merge all.log"
    )]
    Merge(MergeArgs),
    /// Gather the results the pods of a Kubernetes Indexed Job printed (--result-stdout) with
    /// `kubectl logs` into OUT/shard-I.json, and merge them.
    #[command(
        after_help = "Examples:\n  bookstore loadtest collect --job bookstore-loadtest --namespace bookstore --report out/load\n  bookstore loadtest collect --job bookstore-loadtest --context prod --out results"
    )]
    Collect(CollectArgs),
}

/// `merge`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// Result files, or directories holding them.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Write report.html, timeline.json and chart.svg of the merged run to this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Runs `bookstore loadtest ...` and returns its exit status.
pub fn main(cli: LoadtestCli) -> ExitCode {
    match (cli.tool, cli.run) {
        (Some(Tool::Merge(m)), _) => finish(crate::merge::merge(&m.paths, m.report.as_deref())),
        (Some(Tool::Collect(c)), _) => collect(&c),
        (None, Some(run)) => crate::run(run),
        (None, None) => {
            eprintln!("error: give --url URL to run a load test, or `merge` / `collect` (see bookstore loadtest --help)");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn collect(args: &CollectArgs) -> ExitCode {
    let got = match crate::collect::collect(args) {
        Ok(g) => g,
        Err(e) => return error(e),
    };
    for n in &got.notes {
        eprintln!("warning: {n}");
    }
    for f in &got.files {
        eprintln!("wrote {}", f.display());
    }
    if got.files.is_empty() {
        eprintln!(
            "error: no pod of the Job {} printed a result (the warnings above say why)",
            args.job
        );
        return ExitCode::from(EXIT_ERROR);
    }
    finish(crate::merge::merge(&got.files, args.report.as_deref()))
}

/// Prints the merged report and gives the exit status a single run would, or 1 when shards
/// are missing or ended early.
fn finish(merged: Result<Merged, LoadtestError>) -> ExitCode {
    let m = match merged {
        Ok(m) => m,
        Err(e) => return error(e),
    };
    for s in &m.skipped {
        eprintln!("note: skipped {s}");
    }
    print!("{}", m.report.summary());
    if !m.problems.is_empty() {
        for p in &m.problems {
            eprintln!("error: {p}");
        }
        return ExitCode::from(EXIT_ERROR);
    }
    let failed = m.report.failed_gates();
    if failed.is_empty() {
        return ExitCode::from(EXIT_OK);
    }
    for g in failed {
        eprintln!("error: gate failed: {}", g.message);
    }
    ExitCode::from(EXIT_GATE_FAILED)
}

fn error(e: LoadtestError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

//! goose scenarios that shop at a bookstore deployment, and the proof that it scaled: how many
//! instances served *at the same time*, beside what the platform decided.
//!
//! [`main`] is `bookstore loadtest` (a run, `merge` or `collect`); [`run`] is a run;
//! [`execute`] is the same run for tests, returning the [`Report`] instead of printing it.
//! Exit status of [`run`]: [`EXIT_OK`] when every gate holds, [`EXIT_GATE_FAILED`] when a gate
//! fails, [`EXIT_ERROR`] when the run could not be made or did not finish (its report is still
//! printed), [`EXIT_USAGE`] for bad flags.

pub mod aggregate;
pub mod args;
pub mod charts;
pub mod clock;
pub mod collect;
mod commands;
pub mod execute;
pub mod files;
pub mod gates;
pub mod html;
pub mod merge;
pub mod pages;
pub mod platform;
pub mod record;
pub mod report;
pub mod result_file;
pub mod safety;
pub mod scenarios;
pub mod shape;
pub mod shard;
pub mod timeline;
mod trust;
pub mod verdict;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use aggregate::Aggregate;
pub use args::{parse_duration, LoadtestArgs, EXAMPLES};
pub use commands::{main, LoadtestCli, MergeArgs, Tool};
pub use execute::{execute, execute_live};
pub use gates::{Gate, Limits};
pub use record::Recorder;
pub use report::{EndedBy, Report};
pub use scenarios::ScenarioKind;
pub use shape::{Stages, Think};
pub use timeline::{InstanceSeen, Totals, Window};
pub use trust::Resolve;
pub use verdict::Verdict;

/// Every gate held.
pub const EXIT_OK: u8 = 0;
/// The run could not be made (unreachable URL, not the shop, the platform CLI failed, goose
/// failed) or did not finish (Ctrl-C, the safety timeout).
pub const EXIT_ERROR: u8 = 1;
/// Bad flags (the message names the flag).
pub const EXIT_USAGE: u8 = 2;
/// The run was made and a gate failed.
pub const EXIT_GATE_FAILED: u8 = 3;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The flags do not make sense together.
    #[error("{0}")]
    BadArgs(String),
    /// The first request got no answer.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What went wrong, with a hint.
        reason: String,
    },
    /// Something answered, but not the bookstore.
    #[error("{url} answered HTTP {status} without an X-Bookstore-Instance header: it is not the bookstore (check the URL, and that the proxy passes the header through)")]
    NotTheShop {
        /// The URL.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// The platform (`--watch-*`) could not be read before the run.
    #[error("{0}")]
    Platform(String),
    /// goose refused the configuration or failed.
    #[error("goose: {0}")]
    Goose(String),
    /// A report file could not be written.
    #[error("cannot write the report to {path}: {reason}")]
    Report {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LoadtestError {
    /// The exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadtestError::BadArgs(_) => EXIT_USAGE,
            _ => EXIT_ERROR,
        }
    }
}

/// Runs `bookstore loadtest` with its own tokio runtime: progress on stderr, the summary on
/// stdout, and the exit status.
pub fn run(args: LoadtestArgs) -> ExitCode {
    if let Err(e) = args::validate(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(e.exit_code());
    }
    let rt = match runtime(args.threads) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    // goose prints "All N users launched." with println! even when quiet; keep it off the
    // terminal so the progress display stays whole. The summary is printed afterwards.
    // (Only for a terminal: a test harness or a pipe keeps its stdout.)
    let hush = (progress || std::io::stdout().is_terminal()).then(StdoutHush::new);
    let result = rt.block_on(execute(&args, progress));
    drop(hush);
    // Users still running after a safety timeout end with the runtime, without waiting.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            print!("{}", report.summary());
            if let Some(r) = &report.result {
                if args.shard.is_some() {
                    eprintln!(
                        "shard {} of run {}: the above is this generator's share ({}); merge every shard's result for the whole run: bookstore loadtest merge",
                        r.shard, r.run_id, r.shard_stages
                    );
                }
                if args.result_stdout {
                    print!("{}", r.to_marked());
                }
            }
            match report.ended_by {
                EndedBy::Plan => {}
                EndedBy::Interrupted => {
                    eprintln!("error: stopped by Ctrl-C before the planned end; the report above has everything gathered until then");
                    return ExitCode::from(EXIT_ERROR);
                }
                EndedBy::SafetyTimeout => {
                    eprintln!(
                        "error: users had not finished {} s after the planned end (--stop-grace); stopped, and the report above has everything gathered until then",
                        args.grace().as_secs()
                    );
                    return ExitCode::from(EXIT_ERROR);
                }
            }
            let failed = report.failed_gates();
            if failed.is_empty() {
                ExitCode::from(EXIT_OK)
            } else {
                for g in failed {
                    eprintln!("error: gate failed: {}", g.message);
                }
                ExitCode::from(EXIT_GATE_FAILED)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The generator's runtime: `threads` workers (default: one per CPU this process may use). One
/// thread gets a current-thread runtime, which on one CPU makes 1.2-1.8 times the requests per
/// CPU-second of a multi-thread runtime with one worker (measured with `--only-path /healthz`).
fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}

/// Points file descriptor 1 at /dev/null until dropped.
struct StdoutHush {
    #[cfg(unix)]
    saved: Option<libc::c_int>,
}

impl StdoutHush {
    fn new() -> StdoutHush {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        {
            // SAFETY: plain fd calls on descriptors this function owns or that stay open.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null < 0 {
                    return StdoutHush { saved: None };
                }
                let saved = libc::dup(1);
                if saved < 0 || libc::dup2(null, 1) < 0 {
                    libc::close(null);
                    if saved >= 0 {
                        libc::close(saved);
                    }
                    return StdoutHush { saved: None };
                }
                libc::close(null);
                StdoutHush { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        StdoutHush {}
    }
}

impl Drop for StdoutHush {
    fn drop(&mut self) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        #[cfg(unix)]
        if let Some(saved) = self.saved.take() {
            // SAFETY: `saved` is the descriptor duplicated in `new`.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}

//! The bookstore shop: a warp + mysql_async web store built to run as many identical instances.
//!
//! Entry points: [`cli_main`] (the `bookstore-app` binary and `bookstore serve`), and [`start`] for tests.

pub mod auth;
pub mod config;
pub mod db;
pub mod healthcheck;
pub mod metrics;
pub mod request;
pub mod routes;
pub mod server;
pub mod uploads;
pub mod views;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use config::{Config, ConfigError};
pub use server::{start, RunningApp};

/// `bookstore-app [serve|migrate|seed --books N] [--config FILE]`
#[derive(Debug, Parser)]
#[command(
    name = "bookstore-app",
    version,
    about = "The bookstore shop (warp + MySQL)"
)]
pub struct Cli {
    /// An env-style file of BOOKSTORE_* settings; the environment wins over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do (serve by default).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the schema up to date and serve the shop (the default).
    Serve,
    /// Bring the schema up to date, seed the delivery providers and the admin, and exit.
    Migrate,
    /// Bring the schema up to date and load demo books.
    Seed {
        /// How many demo books the demo seller should have.
        #[arg(long, default_value_t = 100)]
        books: u32,
    },
    /// As the administrator of BOOKSTORE_DATABASE_URL (e.g. RDS's master user), create or update
    /// the shop's own least-privilege user on that database, with the password in FILE.
    CreateAppUser {
        /// The shop's user name (letters, digits, underscores; at most 32).
        #[arg(long)]
        user: String,
        /// A file holding its password.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
}

/// Parses the command line (`args[0]` is the program name), builds a tokio runtime and runs.
/// Exits 2 on bad usage or configuration, 1 on failure, 0 otherwise.
pub fn cli_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bookstore-app: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bookstore-app: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let res = rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate => prepare(&config).await.map(|_| ()),
            Command::Seed { books } => {
                let db = prepare(&config).await?;
                let added = db.seed_demo_books(books).await?;
                tracing::info!(
                    "seeded {added} demo books (the demo seller now has at least {books})"
                );
                db.close().await;
                Ok(())
            }
            Command::CreateAppUser {
                user,
                password_file,
            } => {
                let password = std::fs::read_to_string(&password_file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", password_file.display()))?;
                let db = db::Db::new(&config)?;
                db.wait_until_reachable(&config.database_url, config.db_wait)
                    .await?;
                let res = db
                    .ensure_app_user(&user, password.trim_end_matches(['\n', '\r']))
                    .await;
                db.close().await;
                res
            }
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("bookstore-app: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn prepare(config: &Config) -> anyhow::Result<db::Db> {
    let db = db::Db::new(config)?;
    db.wait_until_reachable(&config.database_url, config.db_wait)
        .await?;
    db.migrate().await?;
    db.seed_basics(config.admin.as_ref()).await?;
    Ok(db)
}

/// Serves until SIGTERM or Ctrl-C, then drains within `BOOKSTORE_DRAIN_SECONDS`.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut app = start(config).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let fatal = tokio::select! {
        _ = term.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
        msg = app.fatal() => Some(msg),
    };
    if let Some(msg) = fatal {
        app.shutdown().await;
        anyhow::bail!("giving up: {msg}");
    }
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    let clean = app.shutdown().await;
    tracing::info!(clean, "stopped");
    Ok(())
}

//! `bookstore-loadtest`: `bookstore loadtest` alone (a run, `merge`, `collect`), without the
//! rest of the CLI. The crate's tests run shards with it as separate processes.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bookstore-loadtest",
    version,
    about = "Drive goose shoppers at a deployment and prove how many instances served them; merge shards."
)]
struct Cli {
    #[command(flatten)]
    loadtest: bookstore_loadtests::LoadtestCli,
}

fn main() -> std::process::ExitCode {
    bookstore_loadtests::main(Cli::parse().loadtest)
}

//! `bookstore rehearse objective1|objective2`: runs what `gen` renders on this machine, on
//! loopback, before anyone pays for AWS. The shop instances are this binary's `serve`,
//! configured from the rendered compose file and user-data; nginx runs the rendered site files;
//! MariaDB stands in for MySQL/RDS and a directory for EFS. Every difference from AWS is a
//! substitution listed in [`Differences`] and printed.

mod app_env;
pub mod autoscale;
mod cli;
mod compose;
mod differences;
pub mod mariadb;
pub mod nginx;
pub mod objective1;
pub mod objective2;
pub mod objective3;
mod options;
mod port_owner;
pub mod rendered;
pub mod supervise;
mod terminal;

use anyhow::Result;
pub use app_env::AppEnv;
use app_env::{db_user_and_name, generate_secrets, provision_database, with_db_address};
pub use cli::{check_prerequisites, parse_duration, run, RehearseArgs, Which};
pub use differences::{Difference, Differences};
pub use options::{Options, WorkDir};
use terminal::wait_for_stop;

/// A rehearsal that `+`/`-` on the terminal can scale.
pub trait HandScaled {
    /// Who scales.
    fn mode(&self) -> Scaling;
    /// The desired capacity (instances or replicas).
    fn desired(&self) -> u32;
    /// Scale by hand to `desired`; what happened, in words.
    fn set_desired_by_hand(&self, desired: u32, typed: &str) -> Result<String>;
}

/// Who changes the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// A person (or a test) through the rehearsal's API or `+`/`-`; logged as `manual`.
    Manual,
    /// The autoscaler, by the rendered policies.
    Autoscaler,
}

/// A progress line on stderr, when `verbose`.
fn say(verbose: bool, msg: impl AsRef<str>) {
    if verbose {
        anstream::eprintln!("rehearse: {}", msg.as_ref());
    }
}

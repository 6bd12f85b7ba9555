//! Semantic checks that run after parsing; they collect every problem instead of stopping at the first.

mod checker;
mod cluster;
mod formats;
mod loadtest;
mod objective3;
mod shared;
mod vms;

pub use formats::{is_domain, is_email, is_ssm_ref, parse_version};

use super::{Problem, Spec};

/// Checks the meaning of a parsed spec and returns every problem (empty when it is fine).
pub fn check(spec: &Spec) -> Vec<Problem> {
    let mut c = checker::Checker {
        problems: Vec::new(),
    };
    shared::check(&mut c, spec);
    vms::check(&mut c, spec);
    objective3::check(&mut c, spec);
    loadtest::check(&mut c, spec);
    c.problems
}

//! `bookstore preflight`: what would make a deploy fail or a certificate hang, checked before
//! anything is spent. Offline checks always run; account checks use `aws` and `kubectl` read-only.

pub mod offline;

use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Would make the deploy fail.
    Fail,
    /// Not checked (say why in the reason).
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        })
    }
}

/// One check and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// Why, and what to do.
    pub reason: String,
}

impl Check {
    /// A check result.
    pub fn new(name: impl Into<String>, status: Status, reason: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            reason: reason.into(),
        }
    }
}

/// What `gen` and `validate` say before a deploy: errors (user-data over EC2's limit) and
/// warnings (user-data near it; reserved example names, fine for a demo, refused by `preflight`).
pub fn render_notes(
    spec: &crate::spec::Spec,
    rendered: &[crate::render::Rendered],
) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for c in offline::user_data(rendered) {
        match c.status {
            Status::Fail => errors.push(format!("{}: {}", c.name, c.reason)),
            Status::Warn => warnings.push(format!("{}: {}", c.name, c.reason)),
            _ => {}
        }
    }
    for c in offline::reserved_examples(spec) {
        if c.status == Status::Fail {
            warnings.push(format!(
                "`{}`: {} (fine for a demo; `bookstore preflight` fails on it)",
                c.name, c.reason
            ));
        }
    }
    (errors, warnings)
}

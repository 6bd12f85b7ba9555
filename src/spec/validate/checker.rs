//! The problem collector the checks share, with its small helpers.

use super::formats::{is_email, is_ssm_ref};
use crate::spec::Problem;
use ipnet::Ipv4Net;

/// Collects every problem found, in the order the checks run.
pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
            source: None,
        });
    }

    pub(super) fn require(&mut self, ok: bool, path: &str, message: impl FnOnce() -> String) {
        if !ok {
            self.fail(path, message());
        }
    }

    pub(super) fn range(&mut self, path: &str, value: u32, lo: u32, hi: u32, what: &str) {
        self.require((lo..=hi).contains(&value), path, || {
            format!("{what} must be between {lo} and {hi}, got {value}")
        });
    }

    pub(super) fn non_empty(&mut self, path: &str, value: &str) -> bool {
        let ok = !value.trim().is_empty();
        self.require(ok, path, || "must not be empty".into());
        ok
    }

    pub(super) fn pattern(&mut self, path: &str, value: &str, ok: bool, what: &str) {
        if self.non_empty(path, value) {
            self.require(ok, path, || format!("`{value}` is not {what}"));
        }
    }

    pub(super) fn port(&mut self, path: &str, value: u16) {
        self.require(value != 0, path, || {
            "port 0 is not a usable port; pick one in 1..=65535".into()
        });
    }

    pub(super) fn cidr(&mut self, path: &str, value: &str) -> Option<Ipv4Net> {
        match value.parse::<Ipv4Net>() {
            Ok(net) if net.trunc() == net => Some(net),
            Ok(net) => {
                self.fail(
                    path,
                    format!(
                        "`{value}` has host bits set; the network is `{}`",
                        net.trunc()
                    ),
                );
                None
            }
            Err(_) => {
                self.fail(
                    path,
                    format!("`{value}` is not an IPv4 CIDR such as `10.0.0.0/16`"),
                );
                None
            }
        }
    }

    pub(super) fn email(&mut self, path: &str, value: &str) {
        self.pattern(
            path,
            value,
            is_email(value),
            "an e-mail address (name@example.com)",
        );
    }

    pub(super) fn secret_ref(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(
                path,
                "must not be empty; write a reference such as `ssm:/bookstore/secret-key`",
            );
        } else if !is_ssm_ref(value) {
            // Never echo the value: it may be the secret itself.
            self.fail(
                path,
                "this is not a reference and looks like a secret value (not shown); store the value with \
                 `aws ssm put-parameter --type SecureString --name /bookstore/NAME --value ...` and write \
                 `ssm:/bookstore/NAME` here",
            );
        }
    }
}

/// `min <= want <= max` for a size triple such as the auto-scaling group's.
pub(super) fn sizes(
    c: &mut Checker,
    section: &str,
    min: (&str, u32),
    want: (&str, u32),
    max: (&str, u32),
) {
    if min.1 < 1 {
        c.fail(format!("{section}.{}", min.0), "must be at least 1");
    }
    if min.1 > want.1 {
        c.fail(
            format!("{section}.{}", want.0),
            format!(
                "{} ({}) is below {} ({}); need {} <= {} <= {}",
                want.0, want.1, min.0, min.1, min.0, want.0, max.0
            ),
        );
    }
    if want.1 > max.1 {
        c.fail(
            format!("{section}.{}", max.0),
            format!(
                "{} ({}) is below {} ({}); need {} <= {} <= {}",
                max.0, max.1, want.0, want.1, min.0, want.0, max.0
            ),
        );
    } else if min.1 > max.1 {
        c.fail(
            format!("{section}.{}", max.0),
            format!("{} ({}) is below {} ({})", max.0, max.1, min.0, min.1),
        );
    }
}

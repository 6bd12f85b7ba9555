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
/// warnings (user-data near it; a template too large to deploy inline; reserved example names,
/// fine for a demo, refused by `preflight`).
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
    for c in offline::template_size(spec, rendered) {
        if c.status == Status::Warn {
            warnings.push(format!("{}: {}", c.name, c.reason));
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

pub mod account;
pub mod dns;

use crate::blueprints::{Objective, Source};
use crate::spec::Spec;
use std::net::SocketAddr;
use std::time::Duration;

/// How preflight runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run only the checks that need no account, cluster or network.
    pub offline: bool,
    /// The DNS server to ask (default: the first of /etc/resolv.conf).
    pub dns_server: Option<SocketAddr>,
}

/// Runs every check for `objective`.
pub fn run(spec: &Spec, objective: Objective, opts: &Options) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let rendered = crate::render::render(spec, &Source::Embedded, objective, "out")?;
    checks.extend(offline::user_data(std::slice::from_ref(&rendered)));
    checks.extend(offline::template_size(
        spec,
        std::slice::from_ref(&rendered),
    ));
    let report = crate::explain::report(&Source::Embedded, objective)?;
    let honoured = |field: &str| {
        report.iter().any(|(f, fid)| {
            f == field
                && !matches!(
                    fid,
                    crate::explain::Fidelity::Ignored(_) | crate::explain::Fidelity::Unlisted
                )
        })
    };
    for c in offline::reserved_examples(spec) {
        if honoured(&c.name) {
            checks.push(c);
        }
    }
    let s = &spec.secrets;
    let refs: Vec<(&str, &str)> = [
        ("secrets.database_password", s.database_password.as_str()),
        ("secrets.secret_key", s.secret_key.as_str()),
        ("secrets.admin_password", s.admin_password.as_str()),
        (
            "secrets.database_root_password",
            s.database_root_password.as_str(),
        ),
    ]
    .into_iter()
    .filter(|(f, _)| honoured(f))
    .collect();
    if opts.offline {
        let skipped = "skipped (--offline): the SSM parameters, the hosted zone, the image, the DNS record, the stack";
        checks.push(Check::new(
            "account checks",
            Status::Skip,
            if objective == Objective::Objective3 {
                format!("{skipped}, the cluster's CRDs")
            } else {
                skipped.to_string()
            },
        ));
        return Ok(checks);
    }
    if account::identity(&mut checks) {
        account::ssm_parameters(spec, &refs, &mut checks);
        if objective != Objective::Objective3 {
            account::hosted_zone(spec, &mut checks);
        }
        account::image(spec, &mut checks);
    } else {
        checks.push(Check::new("account checks", Status::Skip, "skipped without working `aws` credentials: the SSM parameters, the hosted zone, the image, the stack"));
    }
    let aws_ok = checks
        .iter()
        .any(|c| c.name == "aws credentials" && c.status == Status::Ok);
    checks.push(dns_check(spec, objective, opts, aws_ok));
    if objective == Objective::Objective3 {
        account::crds(spec, &mut checks);
        account::controllers(spec, &mut checks);
    }
    Ok(checks)
}

fn dns_check(spec: &Spec, objective: Objective, opts: &Options, aws_ok: bool) -> Check {
    let name = format!("DNS {}", spec.domain.name);
    let Some(server) = opts.dns_server.or_else(dns::system_server) else {
        return Check::new(
            name,
            Status::Skip,
            "no DNS server: none in /etc/resolv.conf and no --dns-server",
        );
    };
    let answer = match dns::resolve_a(server, &spec.domain.name, Duration::from_secs(3)) {
        Ok(a) => a,
        Err(e) => return Check::new(name, Status::Warn, format!("not checked: {e}")),
    };
    let addrs: Vec<String> = match &answer {
        dns::Answer::Addresses(a) => a.iter().map(ToString::to_string).collect(),
        dns::Answer::NoSuchName => Vec::new(),
    };
    let stack = format!("{}-{}", spec.project.name, spec.project.environment);
    if objective == Objective::Objective1 {
        let ip = if aws_ok {
            account::stack_output(spec, &format!("{stack}-vm"), "PublicIp")
        } else {
            None
        };
        return match (ip, addrs.is_empty()) {
            (Some(ip), _) if addrs.contains(&ip) => Check::new(name, Status::Ok, format!("resolves to {ip}, the VM's Elastic IP (stack {stack}-vm)")),
            (Some(ip), true) => Check::new(name, Status::Fail, format!("does not resolve; point an A record at {ip} (the VM's Elastic IP): certbot cannot get a certificate until then")),
            (Some(ip), false) => Check::new(name, Status::Fail, format!("resolves to {}, not the VM's Elastic IP {ip}: certbot cannot get a certificate until the A record points at {ip}", addrs.join(", "))),
            (None, true) => Check::new(name, Status::Warn, "does not resolve yet; right after the deploy, point an A record at the stack's PublicIp output (certbot retries for 5 minutes)"),
            (None, false) => Check::new(name, Status::Warn, format!("resolves to {}; the stack is not deployed yet, so after the deploy make sure this is its PublicIp output", addrs.join(", "))),
        };
    }
    if objective == Objective::Objective2 && spec.domain.hosted_zone_id.is_some() {
        return Check::new(
            name,
            Status::Ok,
            format!(
                "the stack creates the alias record in {} (today: {})",
                spec.domain.hosted_zone_id.as_deref().unwrap_or(""),
                if addrs.is_empty() {
                    "no address".into()
                } else {
                    addrs.join(", ")
                }
            ),
        );
    }
    if addrs.is_empty() {
        Check::new(name, Status::Warn, "does not resolve yet; after the deploy point it at the load balancer (the README's DNS step); the certificate waits for it")
    } else {
        Check::new(
            name,
            Status::Ok,
            format!(
                "resolves to {}; make sure that is the load balancer after the deploy",
                addrs.join(", ")
            ),
        )
    }
}

/// The checks as lines, `ok|warn|fail|skip  name  reason`.
pub fn format(checks: &[Check]) -> String {
    let w = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    checks
        .iter()
        .map(|c| {
            format!(
                "{:<4}  {:<w$}  {}\n",
                c.status.to_string(),
                c.name,
                c.reason
            )
        })
        .collect()
}

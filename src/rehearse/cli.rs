//! `bookstore rehearse`: its flags, the checks of what the machine must have, and the run on a
//! terminal.

use super::supervise::find_tool;
use super::terminal::{scale_by_hand, Banner};
use super::{autoscale, objective1, objective2, objective3, rendered, Options, Scaling};
use anyhow::{anyhow, bail, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Which deployment to rehearse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// One VM: MariaDB, one shop instance, nginx with TLS.
    Objective1,
    /// Auto-scaling VMs: MariaDB (RDS), a shared directory (EFS), N instances each behind its
    /// own nginx, and a TLS load balancer (the ALB) in front.
    Objective2,
    /// Kubernetes: the rendered Deployment's pods as processes, its Service and HTTPRoute (or
    /// Ingress) as a loopback router, scaled by the rendered HorizontalPodAutoscaler.
    Objective3,
}

/// Flags of `bookstore rehearse`.
#[derive(Debug, Clone, clap::Args)]
pub struct RehearseArgs {
    /// Which objective's rendered files to run.
    pub objective: Which,
    /// The spec (default: ./bookstore.yaml, else the embedded default).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Objective 2: instances to start with (default: the spec's desired capacity); objective
    /// 3: pods to start with (default: the Deployment's replicas, else 1).
    #[arg(long, value_name = "N")]
    pub instances: Option<usize>,
    /// Stop after this long, such as 90s or 5m (default: run until Ctrl-C).
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Demo books to load into the empty database.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub seed_books: u32,
    /// Keep the configs, secrets, logs and data here (default: a temp dir, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Objective 1: a self-signed certificate instead of the rendered certbot flow against a
    /// local ACME server (pebble).
    #[arg(long)]
    pub self_signed: bool,
    /// Objective 1: where the domain's A record points at start, a loopback address (127.0.0.1:
    /// this rehearsal; say 127.0.0.2 to see what the VM does while DNS points elsewhere).
    #[arg(long, value_name = "ADDR")]
    pub dns_points_at: Option<std::net::Ipv4Addr>,
    /// Rehearse the files already rendered in DIR (e.g. out/objective2, hand edits included)
    /// instead of rendering the spec.
    #[arg(long, value_name = "DIR")]
    pub rendered: Option<PathBuf>,
    /// Platform seconds per real second, e.g. 12: one platform minute takes 5 s. Every period,
    /// window, warm-up, delay and grace period of the platform is divided by it.
    #[arg(long, value_name = "N", default_value = "1")]
    pub time_scale: autoscale::TimeScale,
    /// Each instance's CPU capacity in CPUs, e.g. 0.25 (enforced with a cgroup quota where the
    /// machine allows it, measured only otherwise) [default: objective 2: 0.25; objective 3:
    /// the rendered CPU limit, else the CPU request].
    #[arg(long, value_name = "CORES")]
    pub instance_cpu: Option<f64>,
    /// Scale by hand (`+`/`-` on stdin, each step logged as `manual`) instead of by the
    /// rendered scaling policies.
    #[arg(long)]
    pub manual: bool,
    /// Port of the autoscaler's loopback status server (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub status_port: u16,
}

/// Parses `90`, `90s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s or 5m"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    })
}

/// Fails with one clear message when a tool the rehearsal needs is missing.
pub fn check_prerequisites() -> Result<()> {
    let needed = [
        ("nginx", "nginx"),
        ("mariadbd", "mariadb-server"),
        ("mariadb-install-db", "mariadb-server"),
        ("mariadb", "mariadb-client"),
        ("openssl", "openssl"),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|(tool, _)| find_tool(tool).is_none())
        .map(|(tool, pkg)| format!("{tool} (Debian/Ubuntu package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the rehearsal runs nginx and MariaDB on this machine, and these are missing: {}; \
             install them, e.g. `sudo apt-get install nginx mariadb-server openssl` (their system \
             services may stay stopped: the rehearsal starts its own on free loopback ports)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// `bookstore rehearse ...`: starts the rehearsal, prints the URL and the differences from
/// AWS, runs until Ctrl-C (or `--duration`), then stops everything.
pub fn run(args: &RehearseArgs) -> Result<ExitCode, crate::cli::Failure> {
    use crate::cli::Failure;
    let (spec, source) = crate::cli::load_spec(args.spec.as_deref())?;
    if let Some(c) = args.instance_cpu {
        if !c.is_finite() || !(0.01..=1024.0).contains(&c) {
            return Err(Failure::BadInput(anyhow!(
                "--instance-cpu {c}: give each instance's CPU capacity in CPUs, between 0.01 and 1024 (e.g. 0.25)"
            )));
        }
    }
    check_prerequisites()?;
    anstream::eprintln!("spec: {source}");
    let mut opts = Options::new(spec)?;
    opts.workdir = args.workdir.clone();
    opts.seed_books = args.seed_books;
    opts.verbose = true;
    opts.rendered = args.rendered.clone();
    opts.time_scale = args.time_scale;
    opts.instance_cpu = args.instance_cpu;
    opts.status_port = args.status_port;
    opts.scaling = if args.manual {
        Scaling::Manual
    } else {
        Scaling::Autoscaler
    };
    if let Some(n) = args.instances {
        opts.instances = n.max(1);
    }
    if args.objective != Which::Objective1 && (args.self_signed || args.dns_points_at.is_some()) {
        return Err(crate::cli::Failure::BadInput(anyhow!(
            "--self-signed and --dns-points-at are for objective 1 (objective 2's certificate is the load balancer's)"
        )));
    }
    if let Some(addr) = args.dns_points_at.filter(|a| !a.is_loopback()) {
        return Err(crate::cli::Failure::BadInput(anyhow!(
            "--dns-points-at {addr}: a rehearsal sends traffic only to this machine; give a loopback \
             address (127.0.0.1 is the rehearsal, 127.0.0.2 \"elsewhere\")"
        )));
    }
    opts.certificates = if args.self_signed {
        objective1::Certificates::SelfSigned
    } else {
        objective1::Certificates::Acme(objective1::AcmeOptions {
            dns_points_at: args.dns_points_at.unwrap_or(std::net::Ipv4Addr::LOCALHOST),
            retry_every: None,
        })
    };
    // A rendered file the rehearsal cannot use is bad input (exit 2).
    let sorted = |e: anyhow::Error| {
        if rendered::is_bad_rendered(&e) {
            Failure::BadInput(e)
        } else {
            Failure::Failed(e)
        }
    };
    let stop_hint = match args.duration {
        Some(d) => format!("stops after {d:?} or on Ctrl-C"),
        None => "Ctrl-C stops everything".to_string(),
    };
    match args.objective {
        Which::Objective1 => objective1::run(&opts, args.duration)?,
        Which::Objective2 => {
            let r = objective2::Rehearsal::start(&opts).map_err(sorted)?;
            Banner {
                differences: r.differences().render(),
                headline: format!(
                    "the shop (objective 2, {} instance(s) behind the load balancer) runs at {}  (self-signed certificate; {stop_hint})",
                    r.instance_ids().len(),
                    r.https_url()
                ),
                http_label: "http (redirects)",
                http_url: r.http_url(),
                https_url: r.https_url(),
                status_url: r.status_url(),
                decisions: &r.decisions_path(),
                workdir: r.workdir(),
                autoscaler: "the group scales by its rendered policies",
                unit: "an instance",
                removal: "it drains first",
            }
            .print(r.mode());
            scale_by_hand(&r, args.duration)?;
            anstream::eprintln!("rehearse: stopping (every instance drains first)");
            drop(r);
        }
        Which::Objective3 => {
            let r = objective3::Rehearsal::start(&opts).map_err(sorted)?;
            Banner {
                differences: r.differences().render_from("a real cluster"),
                headline: format!(
                    "the shop (objective 3, {} pod(s) of Deployment {} behind {}) runs at {}  (self-signed certificate; {stop_hint})",
                    r.replicas(),
                    r.workload().name,
                    r.route().what,
                    r.https_url()
                ),
                http_label: "http",
                http_url: r.http_url(),
                https_url: r.https_url(),
                status_url: r.status_url(),
                decisions: &r.decisions_path(),
                workdir: r.workdir(),
                autoscaler: "the HPA scales the Deployment",
                unit: "a pod",
                removal: "it is terminated as the kubelet does",
            }
            .print(r.mode());
            scale_by_hand(&r, args.duration)?;
            anstream::eprintln!(
                "rehearse: stopping (every pod is terminated: preStop, SIGTERM, drain)"
            );
            drop(r);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}

//! `bookstore rehearse objective1` on a terminal: the differences, the URLs and how to trust
//! the certificate, then commands on stdin until Ctrl-C (or `--duration`).

use super::{Rehearsal, Renewal};
use crate::rehearse::Options;
use anyhow::Result;
use std::net::Ipv4Addr;
use std::time::Duration;

/// What a line typed on stdin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    /// `renew`: a forced renewal, as certbot.timer runs it.
    Renew,
    /// `obtain`: the obtain script now, as `systemctl start bookstore-certificate` would.
    Obtain,
    /// `dns ADDR`: the domain's A record.
    Dns(Ipv4Addr),
    /// An empty line.
    Nothing,
}

const HELP: &str = "type `renew` (a forced renewal, as certbot.timer runs it), `obtain` (run the obtain script now), \
                    or `dns ADDR` (point the domain's A record at a loopback address: 127.0.0.1 is here)";

fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(Command::Nothing),
        ["renew"] => Ok(Command::Renew),
        ["obtain"] => Ok(Command::Obtain),
        ["dns", addr] => addr
            .parse()
            .map(Command::Dns)
            .map_err(|_| format!("{addr:?} is not an IPv4 address")),
        _ => Err(format!("{line:?} is not a command; {HELP}")),
    }
}

/// Starts the rehearsal, prints what it is, and runs until Ctrl-C, SIGTERM or `limit`.
pub fn run(opts: &Options, limit: Option<Duration>) -> Result<()> {
    let r = Rehearsal::start(opts)?;
    let stop_hint = match limit {
        Some(d) => format!("stops after {d:?} or on Ctrl-C"),
        None => "Ctrl-C stops everything".to_string(),
    };
    anstream::println!("{}", r.differences().render());
    match r.ca_cert() {
        None => {
            anstream::println!(
                "the shop (objective 1) runs at {}  (self-signed certificate; {stop_hint})",
                r.https_url()
            );
            anstream::println!("  http (redirects): {}", r.http_url());
        }
        Some(ca) => {
            anstream::println!(
                "the shop (objective 1) runs at {}  (certificate from pebble; {stop_hint})",
                r.domain_url()
            );
            anstream::println!(
                "  {} resolves to 127.0.0.1 only for clients told so; trust {}:",
                r.domain(),
                ca.display()
            );
            anstream::println!(
                "    curl --cacert {} --resolve {}:{}:127.0.0.1 {}/",
                ca.display(),
                r.domain(),
                r.https_port(),
                r.domain_url()
            );
            anstream::println!(
                "    bookstore loadtest --url {} --resolve {}:127.0.0.1 --ca-cert {}",
                r.domain_url(),
                r.domain(),
                ca.display()
            );
            anstream::println!("  http (ACME webroot, then redirects): {}", r.http_url());
            anstream::println!(
                "  certificate runs: {}/logs/bookstore-certificate.log, renewals: {}/logs/certbot.log",
                r.workdir().display(),
                r.workdir().display()
            );
            print_certificate_state(&r);
            anstream::println!("  {HELP}");
        }
    }
    anstream::println!(
        "  admin: {} / password in {}",
        r.admin_email(),
        r.admin_password_file().display()
    );
    anstream::println!("  configs, secrets and logs: {}", r.workdir().display());
    if r.ca_cert().is_some() {
        commands(&r, limit)?;
    } else {
        crate::rehearse::wait_for_stop(limit)?;
    }
    anstream::eprintln!("rehearse: stopping (the shop drains first)");
    drop(r);
    Ok(())
}

fn print_certificate_state(r: &Rehearsal) {
    if r.tls_enabled() {
        match r.served_serial() {
            Ok(serial) => {
                anstream::println!("  nginx serves the TLS site, certificate serial {serial}")
            }
            Err(e) => anstream::println!("  nginx serves the TLS site ({e:#})"),
        }
    } else {
        let every = r.retry_every().unwrap_or_default();
        anstream::println!(
            "  no certificate yet: nginx serves the bootstrap site (\"waiting for the TLS certificate\"); \
             the obtain script runs again every {every:?}"
        );
    }
}

fn execute(r: &Rehearsal, cmd: Command) {
    let result = match cmd {
        Command::Nothing => return,
        Command::Renew => r.renew_now().map(|Renewal { before, after }| {
            format!("renewed: nginx now serves serial {after} (was {before}), reloaded by the deploy hook")
        }),
        Command::Obtain => r.obtain_now().map(|run| {
            format!("bookstore-certificate: {}", run.last_line())
        }),
        Command::Dns(addr) => r
            .point_dns_at(addr)
            .map(|()| format!("{} now resolves to {addr} (for pebble and the obtain script)", r.domain())),
    };
    match result {
        Ok(msg) => anstream::println!("{msg}"),
        Err(e) => anstream::eprintln!("{e:#}"),
    }
}

/// Reads commands from stdin until Ctrl-C, SIGTERM or `limit`.
fn commands(r: &Rehearsal, limit: Option<Duration>) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        while stdin.read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(line.trim().to_string()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let deadline = limit.map(|d| tokio::time::Instant::now() + d);
        let mut stdin_open = true;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = sleep => break,
                line = rx.recv(), if stdin_open => match line {
                    None => stdin_open = false,
                    Some(line) => match parse(&line) {
                        Ok(cmd) => execute(r, cmd),
                        Err(msg) => anstream::eprintln!("{msg}"),
                    },
                },
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(" renew "), Ok(Command::Renew));
        assert_eq!(parse("obtain"), Ok(Command::Obtain));
        assert_eq!(
            parse("dns 127.0.0.2"),
            Ok(Command::Dns(Ipv4Addr::new(127, 0, 0, 2)))
        );
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert!(parse("dns nowhere").unwrap_err().contains("not an IPv4"));
        assert!(parse("+").unwrap_err().contains("renew"));
    }
}

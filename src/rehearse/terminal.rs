//! A rehearsal on the terminal: runs until Ctrl-C, SIGTERM or `--duration`; objectives 2 and 3
//! print what runs where ([`Banner`]) and, with `--manual`, take `+` / `-` lines on stdin to
//! scale by hand ([`HandScaled`]).

use super::{HandScaled, Scaling};
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// Waits for Ctrl-C / SIGTERM, or `limit` when given.
pub fn wait_for_stop(limit: Option<Duration>) -> Result<()> {
    until_stopped(limit, None)
}

/// Runs until Ctrl-C, SIGTERM or `limit`; each line typed on stdin (trimmed) goes to `on_line`
/// when given (stdin is not read otherwise).
fn until_stopped(limit: Option<Duration>, mut on_line: Option<&mut dyn FnMut(&str)>) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if on_line.is_some() {
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
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let deadline = limit.map(|d| tokio::time::Instant::now() + d);
        let mut stdin_open = on_line.is_some();
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
                line = rx.recv(), if stdin_open => match (line, on_line.as_mut()) {
                    (Some(line), Some(f)) => f(&line),
                    _ => stdin_open = false,
                },
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

/// Runs until Ctrl-C, SIGTERM or `limit`. With `--manual`, `+` / `-` lines on stdin scale by
/// hand; otherwise the autoscaler is in charge and typed lines are answered with a reminder.
pub fn scale_by_hand(r: &dyn HandScaled, limit: Option<Duration>) -> Result<()> {
    until_stopped(
        limit,
        Some(&mut |line: &str| {
            let step = match line {
                "" => return,
                "+" => 1i64,
                "-" => -1,
                other => {
                    anstream::eprintln!("type `+` or `-` (not {other:?})");
                    return;
                }
            };
            if r.mode() == Scaling::Autoscaler {
                anstream::eprintln!("the autoscaler is in charge (the rendered policies decide); restart with --manual to scale by hand");
                return;
            }
            let want = (r.desired() as i64 + step).max(0) as u32;
            match r.set_desired_by_hand(want, line) {
                Ok(what) => anstream::println!("{what}"),
                Err(e) => anstream::eprintln!("cannot scale: {e:#}"),
            }
        }),
    )
}

/// What the terminal shows of a scaled rehearsal (objectives 2 and 3) before it runs.
pub struct Banner<'a> {
    /// The differences, rendered.
    pub differences: String,
    /// The first line: what runs at which URL.
    pub headline: String,
    /// What the HTTP URL does, e.g. `http (redirects)`.
    pub http_label: &'a str,
    /// The HTTP URL.
    pub http_url: String,
    /// The HTTPS URL (for the load test hint).
    pub https_url: String,
    /// The autoscaler's status server.
    pub status_url: String,
    /// The decision log.
    pub decisions: &'a Path,
    /// Configs, secrets and logs.
    pub workdir: &'a Path,
    /// Who scales, when the autoscaler does, e.g. `the HPA scales the Deployment`.
    pub autoscaler: &'a str,
    /// One unit of capacity, e.g. `an instance`.
    pub unit: &'a str,
    /// What happens to a removed unit, e.g. `it drains first`.
    pub removal: &'a str,
}

impl Banner<'_> {
    /// Prints it; `mode` says which of the scaling hints applies.
    pub fn print(&self, mode: Scaling) {
        anstream::println!("{}", self.differences);
        anstream::println!("{}", self.headline);
        anstream::println!("  {}: {}", self.http_label, self.http_url);
        anstream::println!("autoscaler: {}", self.status_url);
        anstream::println!(
            "  decisions: {} (also GET {}decisions, {}status)",
            self.decisions.display(),
            self.status_url,
            self.status_url
        );
        anstream::println!("  configs, secrets and logs: {}", self.workdir.display());
        match mode {
            Scaling::Autoscaler => anstream::println!(
                "  {}; put load on it (bookstore loadtest --url {} --insecure ...) and watch",
                self.autoscaler,
                self.https_url
            ),
            Scaling::Manual => {
                let (unit, removal) = (self.unit, self.removal);
                anstream::println!(
                    "  scale it by hand: type `+` Enter to add {unit}, `-` Enter to remove one ({removal})"
                )
            }
        }
    }
}

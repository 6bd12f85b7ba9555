//! `bookstore rehearse objective2` on the terminal: runs until Ctrl-C, SIGTERM or `--duration`;
//! with `--manual`, `+` / `-` lines on stdin scale the group by hand.

use super::Rehearsal;
use crate::rehearse::{HandScaled, Scaling};
use anyhow::Result;
use std::time::Duration;

/// Runs until Ctrl-C, SIGTERM or `limit`. With `--manual`, `+` / `-` lines on stdin scale the
/// group by hand; otherwise the autoscaler is in charge and typed lines are answered with a
/// reminder.
pub fn interactive(r: &dyn HandScaled, limit: Option<Duration>) -> Result<()> {
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
                line = rx.recv(), if stdin_open => {
                    let Some(line) = line else {
                        stdin_open = false;
                        continue;
                    };
                    let step = match line.as_str() {
                        "" => continue,
                        "+" => 1i64,
                        "-" => -1,
                        other => {
                            anstream::eprintln!("type `+` or `-` (not {other:?})");
                            continue;
                        }
                    };
                    if r.mode() == Scaling::Autoscaler {
                        anstream::eprintln!("the autoscaler is in charge (the rendered policies decide); restart with --manual to scale by hand");
                        continue;
                    }
                    let want = (r.desired() as i64 + step).max(0) as u32;
                    match r.set_desired_by_hand(want, &line) {
                        Ok(what) => anstream::println!("{what}"),
                        Err(e) => anstream::eprintln!("cannot scale: {e:#}"),
                    }
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })
}

impl HandScaled for Rehearsal {
    fn mode(&self) -> Scaling {
        self.mode()
    }
    fn desired(&self) -> u32 {
        self.desired()
    }
    fn set_desired_by_hand(&self, desired: u32, typed: &str) -> Result<String> {
        self.set_desired_by_hand(desired, typed)
    }
}

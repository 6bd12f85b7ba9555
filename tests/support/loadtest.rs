//! `bookstore loadtest` as a child process of a test (writing its report to a directory), and
//! waiting for a condition with a deadline.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (with SIGKILL) if the test ends before it did.
pub struct Spawned(pub Option<Child>);

impl Spawned {
    pub fn running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn take(&mut self) -> Child {
        self.0.take().expect("still owned")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `bookstore loadtest` as a child process, writing its report into `report` and its output
/// to `report/output.log`.
pub fn loadtest(url: &str, report: &Path, args: &[&str]) -> Spawned {
    std::fs::create_dir_all(report).unwrap();
    let log = std::fs::File::create(report.join("output.log")).unwrap();
    Spawned(Some(
        Command::new(crate::support::exe::bookstore())
            .args(["loadtest", "--url", url, "--insecure", "--no-progress"])
            .args([
                "--max-error-rate",
                "0",
                "--timeout",
                "30s",
                "--window",
                "2s",
                "--report",
            ])
            .arg(report)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("run bookstore loadtest"),
    ))
}

/// Waits for a load test to finish; returns its report (timeline.json) and output.
pub fn finish(mut child: Spawned, report: &Path, what: &str) -> (Value, String) {
    let status = child.take().wait().expect("wait for the load test");
    let text = std::fs::read_to_string(report.join("output.log")).unwrap_or_default();
    assert!(
        status.success(),
        "the {what} load test failed ({status}):\n{text}"
    );
    let json = std::fs::read_to_string(report.join("timeline.json")).expect("timeline.json");
    (serde_json::from_str(&json).unwrap(), text)
}

/// Waits up to `limit` for `cond`, failing with `what`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

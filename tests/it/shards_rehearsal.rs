//! Issue 13's acceptance against the product itself: three `bookstore loadtest --shard I/3`
//! processes started together against `bookstore rehearse objective2` (three instances behind the
//! rendered nginx), merged by `bookstore loadtest merge`: the sum of the parts, and the verdict a
//! single run of the same load gives.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn timeline(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("timeline.json")).expect("timeline.json"))
        .expect("JSON")
}

#[test]
fn three_shards_against_the_objective2_rehearsal_merge_into_one_run() {
    use bookstore::rehearse::{objective2, Options};
    if !crate::support::validators::require_all(&[
        "nginx",
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
        "openssl",
    ]) {
        return;
    }
    let mut o = Options::new(bookstore::spec::embedded_default()).expect("options");
    o.exe = crate::support::exe::bookstore();
    o.instances = 3;
    o.seed_books = 20;
    o.health_interval = Duration::from_millis(500);
    let r = objective2::Rehearsal::start(&o).expect("start objective 2");
    let url = r.https_url();

    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let load = [
        "loadtest",
        "--url",
        &url,
        "--insecure",
        "--scenario",
        "browse",
        "--users",
        "9",
        "--ramp",
        "0s",
        "--duration",
        "6s",
        "--window",
        "2s",
        "--timeout",
        "30s",
        "--no-progress",
        "--expect-instances",
        "3",
        "--max-error-rate",
        "0",
    ];
    let bookstore = || {
        let mut c = Command::new(crate::support::exe::bookstore());
        c.args(load).stdin(Stdio::null());
        c
    };

    // One run of the whole load.
    let single = d.join("single");
    let out = bookstore()
        .args(["--report", single.to_str().unwrap()])
        .output()
        .expect("run");
    assert!(out.status.success(), "single run: {}", show(&out));
    let one = timeline(&single);

    // Three shards as three processes, starting together a few seconds from now.
    let results = d.join("results");
    std::fs::create_dir(&results).unwrap();
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 6;
    let start = String::from_utf8(
        Command::new("date")
            .args(["-u", "-d", &format!("@{at}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("date")
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let file = results.join(format!("shard-{i}.json"));
            bookstore()
                .args(["--shard", &format!("{i}/3"), "--start-at", &start])
                .args(["--result", file.to_str().unwrap()])
                .args(["--report", d.join(format!("part-{i}")).to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a shard")
        })
        .collect();
    let mut parts = Vec::new();
    for (i, s) in shards.into_iter().enumerate() {
        let out = s.wait_with_output().expect("shard");
        assert!(out.status.success(), "shard {i}: {}", show(&out));
        parts.push(timeline(&d.join(format!("part-{i}"))));
    }

    let merged = d.join("merged");
    let out = Command::new(crate::support::exe::bookstore())
        .args(["loadtest", "merge", results.to_str().unwrap(), "--report"])
        .arg(&merged)
        .output()
        .expect("merge");
    assert!(out.status.success(), "merge: {}", show(&out));
    let m = timeline(&merged);

    // The sum of the parts: requests, errors, and every instance's requests.
    let sum = |key: &str| -> u64 {
        parts
            .iter()
            .map(|p| p["totals"][key].as_u64().unwrap())
            .sum()
    };
    assert!(sum("requests") > 0, "the shards sent nothing");
    assert_eq!(
        m["totals"]["requests"].as_u64(),
        Some(sum("requests")),
        "{}",
        show(&out)
    );
    assert_eq!(m["totals"]["errors"].as_u64(), Some(0), "{}", show(&out));
    assert_eq!(sum("errors"), 0);
    for inst in m["instances"].as_array().expect("instances") {
        let name = inst["name"].as_str().unwrap();
        let parts_said: u64 = parts
            .iter()
            .flat_map(|p| p["instances"].as_array().unwrap().iter())
            .filter(|i| i["name"] == name)
            .map(|i| i["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(inst["requests"].as_u64(), Some(parts_said), "{name}");
    }
    // Users: 3 + 3 + 3 at once, as the single run's 9.
    assert_eq!(m["totals"]["peak_users"], 9);
    assert_eq!(m["totals"]["peak_users"], one["totals"]["peak_users"]);
    // The verdict of one run: the three instances served at the same time, no scaling.
    for key in ["initial", "peak", "scaled_out", "scaled_in"] {
        assert_eq!(
            m["verdict"][key],
            one["verdict"][key],
            "verdict {key}: {}",
            show(&out)
        );
    }
    assert_eq!(m["verdict"]["peak"], 3, "{}", show(&out));
    // The same gates with the same outcome (their messages count each run's own requests).
    let gates = |t: &Value| -> Vec<(Value, Value, Value, Value)> {
        t["gates"]
            .as_array()
            .expect("gates")
            .iter()
            .map(|g| {
                (
                    g["flag"].clone(),
                    g["passed"].clone(),
                    g["limit"].clone(),
                    g["actual"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(gates(&m), gates(&one), "gates");
    assert_eq!(
        gates(&m).len(),
        2,
        "--max-error-rate and --expect-instances"
    );
    assert_eq!(m["shards"]["merged"], serde_json::json!([0, 1, 2]));
}

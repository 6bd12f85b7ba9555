//! Shards as separate processes (`bookstore-loadtest`, the same code as `bookstore loadtest`)
//! against the real shop behind nginx on loopback; `merge` and `collect` (with a stand-in
//! `kubectl` on PATH printing the real CLI's output shapes) put them together.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bookstore_loadtests::report::EndedBy;
use bookstore_loadtests::result_file::{extract_marked, ShardResult};
use bookstore_loadtests::shard::{for_shard, Shard};
use bookstore_loadtests::{LoadtestArgs, Recorder};
use serde_json::Value;

use crate::support::{start_instance, Nginx, Shop};

const BIN: &str = env!("CARGO_BIN_EXE_bookstore-loadtest");

fn bin(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c
}

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

fn results_in(files: &[PathBuf]) -> Vec<ShardResult> {
    files
        .iter()
        .flat_map(|f| {
            let bytes = std::fs::read(f).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("-----BEGIN") {
                extract_marked(&text).expect("marked result")
            } else {
                vec![ShardResult::from_json(&bytes).expect("result JSON")]
            }
        })
        .collect()
}

/// Three shards started together with --start-at, merged: the totals are the sum of the
/// parts, and the verdict, users and gates are those of one run of the same load. Without one
/// shard, merge names it, still reports the rest, and exits 1.
#[test]
fn three_shards_merge_into_the_sum_of_their_parts_and_the_verdict_of_one_run() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let shop = rt.block_on(Shop::start("shard-node-1"));
    let node2 = rt.block_on(start_instance(
        &shop.db,
        shop.uploads.path(),
        "shard-node-2",
        0,
    ));
    let nginx = Nginx::start(&[shop.app.addr.port(), node2.addr.port()], false);
    let url = format!("http://127.0.0.1:{}", nginx.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let load = [
        "--url",
        &url,
        "--scenario",
        "browse",
        "--users",
        "6",
        "--ramp",
        "0s",
        "--duration",
        "4s",
        "--window",
        "1s",
        "--recycle",
        "1s",
        "--timeout",
        "30s",
        "--no-progress",
        "--expect-instances",
        "2",
        "--threads",
        "1",
    ];

    // One run of the whole load.
    let single = d.join("single");
    let o = bin(&load)
        .args(["--report", single.to_str().unwrap()])
        .output()
        .expect("run");
    assert!(o.status.success(), "single run: {}", show(&o));
    let one = timeline(&single);

    // Three shards, as three processes, starting together a few seconds from now.
    let results = d.join("results");
    std::fs::create_dir(&results).unwrap();
    let start_at = chrono::Utc::now() + chrono::Duration::seconds(6);
    let start = start_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let start_ms = start_at.timestamp_millis() / 1000 * 1000;
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let mut c = bin(&load);
            c.args(["--shard", &format!("{i}/3"), "--start-at", &start]);
            if i == 1 {
                // The form that survives `kubectl logs`: stdout, between markers.
                c.arg("--result-stdout")
                    .stdout(std::fs::File::create(results.join("shard-1.log")).unwrap());
            } else {
                c.args([
                    "--result",
                    results.join(format!("shard-{i}.json")).to_str().unwrap(),
                ])
                .stdout(Stdio::null());
            }
            c.stderr(Stdio::piped()).spawn().expect("start a shard")
        })
        .collect();
    for (i, s) in shards.into_iter().enumerate() {
        let o = s.wait_with_output().expect("shard");
        assert!(o.status.success(), "shard {i}: {}", show(&o));
    }
    let files: Vec<PathBuf> = ["shard-0.json", "shard-1.log", "shard-2.json"]
        .iter()
        .map(|f| results.join(f))
        .collect();
    let parts = results_in(&files);
    assert_eq!(parts.len(), 3);
    let ids: Vec<&str> = parts.iter().map(|p| p.run_id.as_str()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    // The shop shares this host's clock: each shard's bounds on the offset hold 0.
    for p in &parts {
        let c = p.clock.expect("the shop sends a Date header");
        assert!(c.min_ms <= 0 && 0 <= c.max_ms, "shard {}: {c:?}", p.shard);
    }
    // Each waited for --start-at before its load began.
    let starts: Vec<i64> = parts.iter().map(|p| p.aggregate.started_ms).collect();
    assert!(
        starts.iter().all(|&s| s >= start_ms),
        "{starts:?} before {start_ms}"
    );
    let stages: Vec<&str> = parts.iter().map(|p| p.shard_stages.as_str()).collect();
    assert_eq!(stages, ["2:0s,2:4s", "2:0s,2:4s", "2:0s,2:4s"]);

    let merged_dir = d.join("merged");
    let o = bin(&["merge", results.to_str().unwrap(), "--report"])
        .arg(&merged_dir)
        .output()
        .expect("merge");
    assert!(o.status.success(), "merge: {}", show(&o));
    let m = timeline(&merged_dir);
    let sum = |f: &dyn Fn(&ShardResult) -> u64| parts.iter().map(f).sum::<u64>();
    let requests = sum(&|p| p.aggregate.requests());
    let errors = sum(&|p| p.aggregate.windows.iter().map(|w| w.errors).sum());
    assert!(requests > 50, "{requests} requests");
    assert_eq!(m["totals"]["requests"], requests, "{}", show(&o));
    assert_eq!(m["totals"]["errors"], errors);
    let windows: u64 = m["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(windows, requests);
    for inst in m["instances"].as_array().unwrap() {
        let name = inst["name"].as_str().unwrap();
        let parts_said = sum(&|p| {
            p.aggregate
                .instances
                .get(name)
                .map_or(0, |i| i.served.ok + i.served.errors)
        });
        assert_eq!(inst["requests"], parts_said, "{name}");
    }
    // The same verdict, users and gates as the single run.
    for key in ["peak", "initial", "scaled_out", "scaled_in"] {
        assert_eq!(m["verdict"][key], one["verdict"][key], "verdict {key}");
    }
    assert_eq!(m["verdict"]["peak"], 2);
    assert_eq!(m["totals"]["peak_users"], 6, "the shards' users add up");
    assert_eq!(m["totals"]["peak_users"], one["totals"]["peak_users"]);
    assert_eq!(m["gates"], one["gates"].clone(), "gates");
    assert_eq!(m["shards"]["merged"], serde_json::json!([0, 1, 2]));
    assert_eq!(
        m["shards"]["clock_spread_ms"],
        Value::Null,
        "the clocks agree"
    );
    assert!(merged_dir.join("chart.svg").exists());
    let html = std::fs::read_to_string(merged_dir.join("report.html")).expect("report.html");
    assert!(html.contains("shards: 3 of 3 merged"), "{html}");

    // Shard 2 lost: named, the rest reported, exit 1.
    let two = d.join("two");
    std::fs::create_dir(&two).unwrap();
    for f in ["shard-0.json", "shard-1.log"] {
        std::fs::copy(results.join(f), two.join(f)).unwrap();
    }
    let partial = d.join("partial");
    let o = bin(&["merge", two.to_str().unwrap(), "--report"])
        .arg(&partial)
        .output()
        .expect("merge");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("shard 2 of 3 missing") && err.contains("covers shards 0, 1 only"),
        "{err}"
    );
    let p = timeline(&partial);
    assert_eq!(p["shards"]["missing"], serde_json::json!([2]));
    let two_parts = parts[0].aggregate.requests() + parts[1].aggregate.requests();
    assert_eq!(p["totals"]["requests"], two_parts);
    assert!(String::from_utf8_lossy(&o.stdout).contains("MISSING shard(s) 2"));

    rt.block_on(async move {
        node2.shutdown().await;
        shop.app.shutdown().await;
        drop(shop.db);
    });
    drop(nginx);
}

/// A synthetic shard of a run of `users` users (the data made up, the files real).
fn synthetic(a: &LoadtestArgs, index: usize, count: usize, requests: usize) -> ShardResult {
    let mut a = a.clone();
    a.shard = Some(Shard { index, count });
    let mine = for_shard(&a).expect("shard");
    let rec = Recorder::new(Duration::from_secs(1));
    for i in 0..requests {
        let name = if i % 2 == 0 { "pod-a" } else { "pod-b" };
        rec.record(
            i % 3,
            Duration::from_millis(2 + i as u64 % 40),
            Some(name),
            i % 25 != 0,
        );
    }
    ShardResult::new(&a, &mine, None, EndedBy::Plan, rec.aggregate(), None)
}

fn base() -> LoadtestArgs {
    let mut a = LoadtestArgs::for_url("http://127.0.0.1:9");
    a.users = 9;
    a.window = Duration::from_secs(1);
    a.start_at = Some("2026-12-02T16:00:00Z".parse().unwrap());
    a
}

/// Shards of different runs or configurations are refused (exit 2), naming what differs.
#[test]
fn shards_of_different_configurations_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, r: &ShardResult| {
        std::fs::write(d.join(name), r.to_json()).unwrap();
        d.join(name)
    };
    let a = write("a.json", &synthetic(&base(), 0, 2, 30));
    let mut other = base();
    other.users = 12;
    let b = write("b.json", &synthetic(&other, 1, 2, 30));
    let mut later = base();
    later.start_at = Some("2026-12-02T17:00:00Z".parse().unwrap());
    let c = write("c.json", &synthetic(&later, 1, 2, 30));
    let mut three = base();
    three.max_p95 = Some(300.0);
    let e = write("e.json", &synthetic(&three, 1, 2, 30));
    let ok = write("ok.json", &synthetic(&base(), 1, 2, 30));
    for (file, says) in [
        (&b, "--stages (or --users/--ramp/--duration) differs (\"9:10s,9:60s\" against \"12:10s,12:60s\")"),
        (&c, "--start-at differs"),
        (&e, "--max-p95 differs (null against 300.0)"),
    ] {
        let o = bin(&["merge"]).arg(&a).arg(file).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says) && err.contains("not shards of one run"), "{err}");
    }
    let o = bin(&["merge"]).arg(&a).arg(&ok).output().unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("shards: 2 of 2 merged"));
    // The same shard twice counts once; two different results for one index are refused.
    std::fs::copy(&ok, d.join("ok-again.json")).unwrap();
    let o = bin(&["merge"])
        .args([&a, &ok, &d.join("ok-again.json")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 1/2 again"));
    let retried = write("retried.json", &synthetic(&base(), 1, 2, 31));
    let o = bin(&["merge"]).args([&a, &ok, &retried]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("both hold shard 1/2 with different data"));
    // Not a result at all.
    std::fs::write(d.join("notes.json"), "{\"hello\": 1}").unwrap();
    let o = bin(&["merge"]).arg(d.join("notes.json")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a bookstore-loadtest-result"));
}

/// `kubectl` on PATH, as the real one answers `get pods -l job-name=... -o json` (a List of
/// Pods with the Job's labels and the completion-index annotation) and `logs POD` (what the
/// pod printed; "Error from server (NotFound)" for an unknown pod). Every call is logged.
const KUBECTL: &str = r#"#!/bin/sh
echo "kubectl $*" >> "$CALL_LOG"
while [ $# -gt 0 ]; do
  case "$1" in --context|--namespace) shift 2 ;; *) break ;; esac
done
case "$1" in
get) cat "$STUB_DIR/pods.json" ;;
logs)
  if [ -f "$STUB_DIR/$2.log" ]; then cat "$STUB_DIR/$2.log"
  else echo "Error from server (NotFound): pods \"$2\" not found" >&2; exit 1; fi ;;
*) echo "kubectl: unexpected call: $*" >&2; exit 1 ;;
esac
"#;

fn pod(job: &str, name: &str, index: usize, phase: &str, created: &str) -> Value {
    let uid = "2d4c7a4e-1f55-4c0e-9a63-3f1b9c1d2e77";
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()},
            "creationTimestamp": created,
            "finalizers": ["batch.kubernetes.io/job-tracking"],
            "generateName": format!("{job}-{index}-"),
            "labels": {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-completion-index": index.to_string(),
                "batch.kubernetes.io/job-name": job,
                "controller-uid": uid,
                "job-name": job
            },
            "name": name,
            "namespace": "load",
            "ownerReferences": [{"apiVersion": "batch/v1", "blockOwnerDeletion": true, "controller": true,
                                  "kind": "Job", "name": job, "uid": uid}],
            "resourceVersion": "4242",
            "uid": format!("{name}-uid")
        },
        "spec": {"containers": [{"name": "loadtest", "image": "ghcr.io/example/bookstore:1",
                  "env": [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                      "apiVersion": "v1",
                      "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]}],
                 "restartPolicy": "Never", "subdomain": job},
        "status": {"phase": phase, "startTime": created}
    })
}

/// collect: pods found by the Job's label, each shard read from the pod that succeeded (a
/// retried index has a failed pod too), written to OUT/shard-I.json and merged; a pod still
/// running is named and its shard reported missing (exit 1); once it has finished, exit 0.
#[test]
fn collect_reads_the_jobs_pods_with_kubectl_and_merges_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin_dir = d.join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let kubectl = bin_dir.join("kubectl");
    std::fs::write(&kubectl, KUBECTL).unwrap();
    let mut perm = std::fs::metadata(&kubectl).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&kubectl, perm).unwrap();
    let stub = d.join("stub");
    std::fs::create_dir(&stub).unwrap();
    let shards: Vec<ShardResult> = (0..3)
        .map(|i| synthetic(&base(), i, 3, 40 + i * 7))
        .collect();
    let log = |r: &ShardResult| format!("bookstore loadtest: summary...\n{}", r.to_marked());
    std::fs::write(stub.join("lt-0-x7k2p.log"), log(&shards[0])).unwrap();
    std::fs::write(
        stub.join("lt-1-a1b2c.log"),
        "error: cannot reach http://shop: timed out\n",
    )
    .unwrap();
    std::fs::write(stub.join("lt-1-q9w8e.log"), log(&shards[1])).unwrap();
    std::fs::write(stub.join("lt-2-m3n4b.log"), "").unwrap();
    let write_pods = |third: &str| {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "items": [
                pod("lt", "lt-0-x7k2p", 0, "Succeeded", "2026-12-02T15:58:01Z"),
                pod("lt", "lt-1-a1b2c", 1, "Failed", "2026-12-02T15:58:01Z"),
                pod("lt", "lt-1-q9w8e", 1, "Succeeded", "2026-12-02T15:58:40Z"),
                pod("lt", "lt-2-m3n4b", 2, third, "2026-12-02T15:58:02Z"),
            ],
            "kind": "List",
            "metadata": {"resourceVersion": ""}
        });
        std::fs::write(
            stub.join("pods.json"),
            serde_json::to_vec_pretty(&list).unwrap(),
        )
        .unwrap();
    };
    let calls = d.join("calls.log");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let collect = |out: &str| {
        bin(&[
            "collect",
            "--job",
            "lt",
            "--namespace",
            "load",
            "--context",
            "kind-test",
            "--out",
        ])
        .arg(d.join(out))
        .arg("--report")
        .arg(d.join(format!("{out}-report")))
        .env("PATH", &path)
        .env("CALL_LOG", &calls)
        .env("STUB_DIR", &stub)
        .output()
        .unwrap()
    };

    write_pods("Running");
    let o = collect("first");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("pod lt-2-m3n4b (Running) printed no result: it has not finished"),
        "{err}"
    );
    assert!(err.contains("shard 2 of 3 missing"), "{err}");
    let got = results_in(&[d.join("first/shard-0.json"), d.join("first/shard-1.json")]);
    assert_eq!(
        got[1].aggregate, shards[1].aggregate,
        "the succeeded pod's result"
    );
    assert!(!d.join("first/shard-2.json").exists());
    let log = std::fs::read_to_string(&calls).unwrap();
    assert!(
        log.contains(
            "kubectl --context kind-test --namespace load get pods -l job-name=lt -o json"
        ),
        "{log}"
    );
    assert!(
        log.contains("kubectl --context kind-test --namespace load logs lt-1-q9w8e"),
        "{log}"
    );
    assert!(
        !log.contains("logs lt-1-a1b2c"),
        "the failed pod is not read when one succeeded: {log}"
    );

    std::fs::write(stub.join("lt-2-m3n4b.log"), log_of(&shards[2])).unwrap();
    write_pods("Succeeded");
    let o = collect("second");
    assert!(o.status.success(), "{}", show(&o));
    let t = timeline(&d.join("second-report"));
    let total: u64 = shards.iter().map(|s| s.aggregate.requests()).sum();
    assert_eq!(t["totals"]["requests"], total);
    assert_eq!(t["shards"]["merged"], serde_json::json!([0, 1, 2]));

    // No pods at all: says so.
    std::fs::write(
        stub.join("pods.json"),
        r#"{"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}}"#,
    )
    .unwrap();
    let o = collect("third");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("no pods with the label job-name=lt in namespace load"));
}

fn log_of(r: &ShardResult) -> String {
    format!("done\n{}", r.to_marked())
}

//! `bookstore loadtest` as a user runs it: bad load shapes refused with exit 2, Ctrl-C keeping
//! what was gathered, stand-in `aws` and `kubectl` (printing the real CLIs' JSON shapes) joined
//! into the timeline, a shop process killed with SIGKILL mid-run, and stages up and down
//! against the objective 2 rehearsal adding and removing instances.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bookstore_loadtests::{execute_live, LoadtestArgs, Recorder, Report, ScenarioKind};

/// The binary under test (a private copy: a concurrent build must not swap it mid-test).
fn bookstore() -> Command {
    let mut c = Command::new(crate::support::exe::bookstore());
    c.stdin(Stdio::null());
    c
}

/// Waits until `cond` holds, polling every 20 ms; fails after `limit`, saying `what`.
fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to exit, killing it after `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stand-in shop on loopback: every request gets 200 with an `X-Bookstore-Instance` taken in
/// turn from the names the test sets (keep-alive, like nginx in front of them).
struct Stub {
    port: u16,
    names: Arc<Mutex<Vec<String>>>,
    served: Arc<AtomicU64>,
    first: Arc<std::sync::OnceLock<Instant>>,
}

impl Stub {
    fn start(names: &[&str]) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let names = Arc::new(Mutex::new(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
        let served = Arc::new(AtomicU64::new(0));
        let first = Arc::new(std::sync::OnceLock::new());
        let (n, c, f) = (names.clone(), served.clone(), first.clone());
        std::thread::spawn(move || {
            let turn = Arc::new(AtomicU64::new(0));
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (n, c, f, turn) = (n.clone(), c.clone(), f.clone(), turn.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut out = stream;
                    loop {
                        let mut line = String::new();
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        let name = {
                            let names = n.lock().unwrap();
                            let i = turn.fetch_add(1, Ordering::Relaxed) as usize;
                            names[i % names.len()].clone()
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        f.get_or_init(Instant::now);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\nX-Bookstore-Instance: {name}\r\nContent-Length: 2\r\n\r\nok"
                        );
                        if out.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Stub {
            port,
            names,
            served,
            first,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, names: &[&str]) {
        *self.names.lock().unwrap() = names.iter().map(|s| s.to_string()).collect();
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// At least 300 requests served and `windows` whole one-second windows since the first:
    /// a platform change made after this lands after the load test's first window, however
    /// fast the machine serves (300 requests alone took under 0.1 s on a quiet CI machine).
    fn load_flowed_for(&self, windows: u64) -> bool {
        self.served() >= 300
            && self
                .first
                .get()
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(1000 * windows + 500))
    }
}

#[test]
fn bad_load_shapes_exit_2_naming_the_flag() {
    for (args, says) in [
        (vec!["--stages", "10:1m,,5:1m"], "--stages"),
        (vec!["--stages", "10:1m,5:1.5m"], "--stages"),
        (vec!["--think", "3s..1s"], "--think"),
        (vec!["--think", "later"], "--think"),
        (
            vec!["--scenario", "shop", "--url", "https://shop.example.com"],
            "--yes-write",
        ),
    ] {
        let mut cmd = bookstore();
        cmd.args(["loadtest", "--no-progress"]);
        if !args.contains(&"--url") {
            cmd.args(["--url", "http://127.0.0.1:1"]);
        }
        let out = cmd.args(&args).output().expect("run bookstore");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing runs");
    }
}

#[test]
fn ctrl_c_reports_everything_gathered_so_far() {
    let stub = Stub::start(&["i-1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = bookstore()
        .args(["loadtest", "--url", &stub.url(), "--scenario", "browse"])
        .args(["--only-path", "/healthz", "--users", "2", "--ramp", "0"])
        .args([
            "--duration",
            "5m",
            "--window",
            "1s",
            "--no-progress",
            "--threads",
            "1",
        ])
        .arg("--report")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bookstore loadtest");
    until(Duration::from_secs(30), "requests to flow", || {
        stub.served() >= 300
    });
    // SAFETY: signalling our own child by its id.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("stopped early by Ctrl-C"), "{stdout}");
    assert!(stderr.contains("stopped by Ctrl-C"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("timeline.json")).expect("timeline.json written"),
    )
    .expect("JSON");
    assert_eq!(json["ended_by"], "interrupted");
    let requests = json["totals"]["requests"].as_u64().unwrap();
    assert!(requests >= 300, "{requests} requests reported\n{stdout}");
    assert!(
        json["duration_s"].as_f64().unwrap() < 120.0,
        "it stopped early"
    );
    assert!(dir.path().join("report.html").exists());
}

/// A directory of stand-in CLIs that print the JSON files of `state` and log their arguments.
fn stand_ins(bin: &Path, state: &Path) {
    let s = state.display();
    let aws = format!(
        "#!/bin/sh\n# Stand-in for the AWS CLI v2: prints what the test put in {s}.\necho \"aws $*\" >> {s}/calls.log\n\
         case \"$2\" in\n  describe-auto-scaling-groups) cat {s}/groups.json ;;\n  describe-scaling-activities) cat {s}/activities.json ;;\n  *) echo \"aws: unexpected $*\" >&2; exit 252 ;;\nesac\n"
    );
    let kubectl = format!(
        "#!/bin/sh\n# Stand-in for kubectl: prints what the test put in {s}.\necho \"kubectl $*\" >> {s}/calls.log\n\
         case \"$2\" in\n  hpa) cat {s}/hpa.json ;;\n  deployment/*) cat {s}/deployment.json ;;\n  pods) cat {s}/pods.json ;;\n  events) cat {s}/events.json ;;\n  *) echo \"kubectl: unexpected $*\" >&2; exit 1 ;;\nesac\n"
    );
    for (name, text) in [("aws", aws), ("kubectl", kubectl)] {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
    }
}

/// Writes a state file atomically (the stand-in may be reading it).
fn put(state: &Path, name: &str, text: &str) {
    let tmp = state.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, state.join(name)).unwrap();
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn asg_group(desired: u32, instances: &[(&str, &str)]) -> String {
    let inst: Vec<String> = instances
        .iter()
        .map(|(id, st)| format!(r#"{{"InstanceId":"{id}","InstanceType":"t3.small","AvailabilityZone":"eu-west-1a","LifecycleState":"{st}","HealthStatus":"Healthy","ProtectedFromScaleIn":false}}"#))
        .collect();
    format!(
        r#"{{"AutoScalingGroups":[{{"AutoScalingGroupName":"bookstore-asg","MinSize":2,"MaxSize":6,"DesiredCapacity":{desired},"DefaultCooldown":300,"AvailabilityZones":["eu-west-1a"],"HealthCheckType":"ELB","HealthCheckGracePeriod":300,"Instances":[{}],"TerminationPolicies":["Default"]}}]}}"#,
        inst.join(",")
    )
}

/// UTC now (+ `plus_ms`), as the CLIs print times.
fn utc(plus_ms: i64, fmt: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    bookstore_loadtests::timeline::at(now + plus_ms)
        .format(fmt)
        .to_string()
}

/// How many times the stand-ins were called with `what` in their arguments.
fn calls(state: &Path, what: &str) -> usize {
    std::fs::read_to_string(state.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

/// Runs `bookstore loadtest` with the stand-ins on PATH; returns timeline.json.
fn run_watching(
    stub: &Stub,
    watch: &[&str],
    bin: &Path,
    during: impl FnOnce(),
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = bookstore()
        .args(["loadtest", "--url", &stub.url(), "--scenario", "browse"])
        .args([
            "--only-path",
            "/healthz",
            "--stages",
            "4:0s,4:12s",
            "--window",
            "1s",
        ])
        .args(["--watch-every", "200ms", "--no-progress", "--threads", "1"])
        .args(["--expect-instances", "4", "--expect-scale-out"])
        .args(watch)
        .arg("--report")
        .arg(dir.path())
        .env("PATH", path_with(bin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bookstore loadtest");
    during();
    let status = wait_exit(&mut child, Duration::from_secs(90));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("\nplatform: "), "{out}");
    serde_json::from_slice(&std::fs::read(dir.path().join("timeline.json")).unwrap()).unwrap()
}

#[test]
fn stand_in_aws_autoscaling_is_joined_into_the_timeline() {
    let bin = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    stand_ins(bin.path(), state.path());
    let two = [("i-0aaa", "InService"), ("i-0bbb", "InService")];
    put(state.path(), "groups.json", &asg_group(2, &two));
    put(state.path(), "activities.json", r#"{"Activities":[]}"#);
    let stub = Stub::start(&["i-0aaa", "i-0bbb"]);
    let json = run_watching(&stub, &["--watch-asg", "bookstore-asg"], bin.path(), || {
        until(Duration::from_secs(30), "the load to flow", || {
            stub.load_flowed_for(2)
        });
        let at = utc(0, "%Y-%m-%dT%H:%M:%SZ");
        let start = utc(1000, "%Y-%m-%dT%H:%M:%S%.3fZ");
        let cause = format!("At {at} a monitor alarm TargetTracking-bookstore-asg-AlarmHigh-4f1c in state ALARM triggered policy bookstore-cpu-target changing the desired capacity from 2 to 4.  At {at} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 2 to 4.");
        let acts: Vec<String> = ["i-0ccc", "i-0ddd"]
            .iter()
            .map(|id| format!(r#"{{"ActivityId":"act-{id}","AutoScalingGroupName":"bookstore-asg","Description":"Launching a new EC2 instance: {id}","Cause":"{cause}","StartTime":"{start}","StatusCode":"InProgress","Progress":30,"Details":"{{}}"}}"#))
            .collect();
        put(
            state.path(),
            "activities.json",
            &format!(r#"{{"Activities":[{}]}}"#, acts.join(",")),
        );
        put(
            state.path(),
            "groups.json",
            &asg_group(
                4,
                &[two[0], two[1], ("i-0ccc", "Pending"), ("i-0ddd", "Pending")],
            ),
        );
        let polled = calls(state.path(), "describe-auto-scaling-groups");
        until(Duration::from_secs(30), "two polls of the group", || {
            calls(state.path(), "describe-auto-scaling-groups") >= polled + 2
        });
        put(
            state.path(),
            "groups.json",
            &asg_group(
                4,
                &[
                    two[0],
                    two[1],
                    ("i-0ccc", "InService"),
                    ("i-0ddd", "InService"),
                ],
            ),
        );
        stub.set(&["i-0aaa", "i-0bbb", "i-0ccc", "i-0ddd"]);
    });
    let calls = std::fs::read_to_string(state.path().join("calls.log")).unwrap();
    assert!(calls.contains("aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names bookstore-asg --output json"), "{calls}");
    assert!(
        calls.contains(
            "aws autoscaling describe-scaling-activities --auto-scaling-group-name bookstore-asg"
        ),
        "{calls}"
    );
    let p = &json["platform"];
    let d = &p["decisions"][0];
    assert_eq!(
        (d["from"].as_u64(), d["to"].as_u64()),
        (Some(2), Some(4)),
        "{p}"
    );
    assert_eq!(d["added"], serde_json::json!(["i-0ccc", "i-0ddd"]));
    let verdict = json["platform_verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("the group raised desired 2 → 4 at 00:0"),
        "{verdict}"
    );
    assert!(verdict.contains("(a monitor alarm TargetTracking-bookstore-asg-AlarmHigh-4f1c in state ALARM triggered policy bookstore-cpu-target changing the desired capacity from 2 to 4); i-0ccc served its first request at"), "{verdict}");
    assert_eq!(json["verdict"]["peak"], 4);
    assert_eq!(json["verdict"]["initial"], 2);
    let windows = json["windows"].as_array().unwrap();
    assert_eq!(windows.first().unwrap()["platform_desired"], 2);
    assert!(windows
        .iter()
        .any(|w| w["platform_desired"] == 4 && w["platform_in_service"] == 4));
    assert!(
        p["instance_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "i-0ccc" && e["event"] == "Pending → InService"),
        "{p}"
    );
}

#[test]
fn stand_in_kubectl_hpa_is_joined_into_the_timeline() {
    let bin = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    stand_ins(bin.path(), state.path());
    let hpa = |desired: u32, cpu: u32| {
        format!(
            r#"{{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{{"name":"bookstore","namespace":"shop"}},
            "spec":{{"scaleTargetRef":{{"apiVersion":"apps/v1","kind":"Deployment","name":"bookstore"}},"minReplicas":2,"maxReplicas":8,
              "metrics":[{{"type":"Resource","resource":{{"name":"cpu","target":{{"type":"Utilization","averageUtilization":60}}}}}}]}},
            "status":{{"currentReplicas":2,"desiredReplicas":{desired},
              "currentMetrics":[{{"type":"Resource","resource":{{"name":"cpu","current":{{"averageUtilization":{cpu},"averageValue":"120m"}}}}}}]}}}}"#
        )
    };
    let pods = |names: &[(&str, bool)]| {
        let items: Vec<String> = names
            .iter()
            .map(|(n, ready)| format!(r#"{{"metadata":{{"name":"{n}","creationTimestamp":"2026-11-28T08:00:00Z"}},"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"{}"}}]}}}}"#, if *ready { "True" } else { "False" }))
            .collect();
        format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{}]}}"#,
            items.join(",")
        )
    };
    let (p1, p2, p3, p4) = (
        "bookstore-7c9f8d6b5-x2k4q",
        "bookstore-7c9f8d6b5-9zt7m",
        "bookstore-7c9f8d6b5-k8s3n",
        "bookstore-7c9f8d6b5-w4q2p",
    );
    put(state.path(), "hpa.json", &hpa(2, 35));
    put(
        state.path(),
        "deployment.json",
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bookstore"},"spec":{"selector":{"matchLabels":{"app.kubernetes.io/name":"bookstore"}}}}"#,
    );
    put(state.path(), "pods.json", &pods(&[(p1, true), (p2, true)]));
    put(
        state.path(),
        "events.json",
        r#"{"apiVersion":"v1","kind":"List","items":[]}"#,
    );
    let stub = Stub::start(&[p1, p2]);
    let json = run_watching(
        &stub,
        &["--watch-hpa", "shop/bookstore"],
        bin.path(),
        || {
            until(Duration::from_secs(30), "the load to flow", || {
                stub.load_flowed_for(2)
            });
            let now = utc(0, "%Y-%m-%dT%H:%M:%SZ");
            put(state.path(), "hpa.json", &hpa(4, 91));
            put(
                state.path(),
                "events.json",
                &format!(
                    r#"{{"apiVersion":"v1","kind":"List","items":[{{"metadata":{{"name":"bookstore.1","uid":"e-1","creationTimestamp":"{now}"}},"involvedObject":{{"kind":"HorizontalPodAutoscaler","name":"bookstore","namespace":"shop"}},"reason":"SuccessfulRescale","message":"New size: 4; reason: cpu resource utilization (percentage of request) above target","firstTimestamp":"{now}","lastTimestamp":"{now}","count":1,"type":"Normal"}}]}}"#
                ),
            );
            put(
                state.path(),
                "pods.json",
                &pods(&[(p1, true), (p2, true), (p3, false), (p4, false)]),
            );
            let polled = calls(state.path(), "get hpa");
            until(Duration::from_secs(30), "two polls of the HPA", || {
                calls(state.path(), "get hpa") >= polled + 2
            });
            put(
                state.path(),
                "pods.json",
                &pods(&[(p1, true), (p2, true), (p3, true), (p4, true)]),
            );
            stub.set(&[p1, p2, p3, p4]);
        },
    );
    let calls = std::fs::read_to_string(state.path().join("calls.log")).unwrap();
    for want in [
        "kubectl get hpa bookstore -n shop -o json",
        "kubectl get deployment/bookstore -n shop -o json",
        "kubectl get pods -n shop -l app.kubernetes.io/name=bookstore -o json",
        "kubectl get events -n shop --field-selector involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=bookstore -o json",
    ] {
        assert!(calls.contains(want), "{want}\n{calls}");
    }
    let verdict = json["platform_verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("the HPA raised desired 2 → 4 at 00:0"),
        "{verdict}"
    );
    assert!(
        verdict.contains(
            "(cpu resource utilization (percentage of request) above target); bookstore-7c9f8d6b5-"
        ),
        "{verdict}"
    );
    assert!(verdict.contains("served its first request at"), "{verdict}");
    assert_eq!(json["verdict"]["peak"], 4);
    let m = &json["platform"]["metrics"];
    assert!(
        m.as_array()
            .unwrap()
            .iter()
            .any(|p| p["value"] == 91.0 && p["target"] == 60.0),
        "{m}"
    );
}

/// `bookstore serve` on its own database; its port read from its "listening" log line.
struct ServeProcess {
    child: Child,
    port: u16,
}

fn serve(db_url: &str, uploads: &Path, instance: &str) -> ServeProcess {
    let env = |c: &mut Command| {
        c.env("BOOKSTORE_DATABASE_URL", db_url)
            .env("BOOKSTORE_LISTEN", "127.0.0.1:0")
            .env(
                "BOOKSTORE_SECRET_KEY",
                "proof-test-secret-key-proof-test-secret-key",
            )
            .env("BOOKSTORE_UPLOADS_DIR", uploads)
            .env("BOOKSTORE_INSTANCE_ID", instance)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
    };
    let mut seed = bookstore();
    env(&mut seed);
    let out = seed
        .args(["serve", "seed", "--books", "30"])
        .output()
        .expect("seed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = bookstore();
    env(&mut cmd);
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bookstore serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(line.clone());
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("bookstore serve says where it listens");
    let line = strip_ansi(&line);
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line}"));
    let port = addr
        .rsplit(':')
        .next()
        .unwrap()
        .trim_matches(|c: char| !c.is_ascii_digit());
    ServeProcess {
        child,
        port: port.parse().unwrap_or_else(|_| panic!("port in {line}")),
    }
}

/// `text` without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn load(url: &str, stages: &str, window_s: u64) -> LoadtestArgs {
    let mut a = LoadtestArgs::for_url(url);
    a.scenario = ScenarioKind::Browse;
    a.stages = Some(bookstore_loadtests::shape::parse_stages(stages).unwrap());
    a.window = Duration::from_secs(window_s);
    a.recycle = Duration::from_secs(1);
    a.timeout = Duration::from_secs(30);
    a.no_progress = true;
    a
}

/// Runs `a` on its own runtime in a thread; returns the run and the live recorder.
fn start_load(a: LoadtestArgs) -> (std::thread::JoinHandle<Report>, Arc<Recorder>) {
    let live: Arc<Mutex<Option<Arc<Recorder>>>> = Arc::default();
    let l = live.clone();
    let run = std::thread::spawn(move || {
        runtime()
            .block_on(execute_live(&a, false, move |r| {
                *l.lock().unwrap() = Some(r)
            }))
            .expect("the load test runs")
    });
    let mut rec = None;
    until(Duration::from_secs(60), "the load test to start", || {
        rec = live.lock().unwrap().clone();
        rec.is_some()
    });
    (run, rec.unwrap())
}

#[test]
fn a_shop_killed_with_sigkill_mid_run_gives_counted_errors_and_the_run_ends() {
    let rt = runtime();
    let db = rt.block_on(bookstore_test_support::TestDb::new());
    let uploads = tempfile::tempdir().unwrap();
    let mut shop = serve(&db.url, uploads.path(), "doomed");
    let url = format!("http://127.0.0.1:{}", shop.port);
    let mut a = load(&url, "3:0s,3:8s", 1);
    a.max_error_rate = Some(1.0);
    a.gate_whole_run = true;
    let t0 = Instant::now();
    let (run, rec) = start_load(a);
    until(Duration::from_secs(60), "requests before the kill", || {
        rec.requests() >= 100
    });
    let before = rec.requests();
    // Before the kill and after it: the thread that records a failure may run before this one
    // reads the clock again.
    let before_kill_ms = rec.epoch_now_ms();
    shop.child.kill().expect("SIGKILL");
    let killed_ms = rec.epoch_now_ms();
    shop.child.wait().expect("reaped");
    let report = run.join().expect("no panic");
    let s = report.summary();
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}\n{s}",
        t0.elapsed()
    );
    assert_eq!(report.ended_by, bookstore_loadtests::EndedBy::Plan, "{s}");
    assert!(
        report.totals.requests > before,
        "requests went on after the kill: {s}"
    );
    assert!(report.totals.errors > 0, "{s}");
    assert!(
        report
            .errors_by_reason
            .iter()
            .any(|(r, _)| r.contains("cannot connect: Connection refused")),
        "{s}"
    );
    // Windows that ended before the kill are clean; after it, nothing answered.
    let w = report.aggregate.window_ms as i64;
    for win in &report.aggregate.windows {
        if (win.index + 1) * w <= before_kill_ms {
            assert_eq!(win.errors, 0, "window {} before the kill\n{s}", win.index);
        }
        if win.index * w >= killed_ms + 1000 {
            assert_eq!(win.ok_with_instance(), 0, "answers after the kill\n{s}");
            assert_eq!(win.errors, win.requests, "{s}");
        }
    }
    assert!(
        report.aggregate.instances["doomed"]
            .served
            .last_ok_ms
            .unwrap()
            <= killed_ms + 500,
        "{s}"
    );
    let failed = report.failed_gates();
    assert_eq!(failed.len(), 1, "{s}");
    assert_eq!(failed[0].flag, "--max-error-rate");
    drop(db);
}

fn tools_present() -> bool {
    crate::support::validators::require_all(&[
        "nginx",
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
        "openssl",
    ])
}

#[test]
fn stages_up_and_down_against_the_objective2_rehearsal_show_scale_out_and_scale_in() {
    use bookstore::rehearse::{objective2, Options};
    if !tools_present() {
        return;
    }
    let mut o = Options::new(bookstore::spec::embedded_default()).expect("options");
    o.exe = crate::support::exe::bookstore();
    o.instances = 1;
    o.seed_books = 20;
    o.health_interval = Duration::from_millis(500);
    let r = Arc::new(objective2::Rehearsal::start(&o).expect("start objective 2"));

    // Low, high, low: the group grows to three while the load is high and shrinks after.
    let mut a = load(&r.https_url(), "3:0s,3:10s,9:0s,9:20s,3:0s,3:16s", 2);
    a.insecure = true;
    a.expect_instances = Some(3);
    a.expect_scale_out = true;
    a.expect_scale_in = Some(1);
    let (run, rec) = start_load(a);
    let secs = |rec: &Recorder| f64::from(rec.now_ms()) / 1000.0;
    until(Duration::from_secs(60), "the high stage", || {
        secs(&rec) >= 11.0
    });
    let added = [r.add_instance().unwrap(), r.add_instance().unwrap()];
    for id in &added {
        r.wait_in_service(id, Duration::from_secs(30)).unwrap();
    }
    until(Duration::from_secs(60), "the low stage", || {
        secs(&rec) >= 31.0
    });
    // Both at once: each drains (the deregistration delay and the shop's drain) before it goes.
    let removals: Vec<_> = added
        .iter()
        .map(|id| {
            let (r, id) = (r.clone(), id.clone());
            std::thread::spawn(move || (r.remove_instance_id(&id).unwrap(), id))
        })
        .collect();
    for h in removals {
        let (drained, id) = h.join().expect("no panic");
        assert!(drained, "{id} drained");
    }
    let report = run.join().expect("no panic");
    let s = report.summary();
    eprintln!("{s}");
    let v = &report.verdict;
    assert!(v.scaled_out && v.scaled_in, "{s}");
    assert_eq!((v.initial, v.peak, v.final_serving), (1, 3, 1), "{s}");
    let mut grew: Vec<String> = v
        .changes
        .iter()
        .filter(|c| c.kind == bookstore_loadtests::verdict::ChangeKind::ScaleOut)
        .flat_map(|c| c.added.clone())
        .collect();
    grew.sort();
    let mut added_sorted = added.to_vec();
    added_sorted.sort();
    assert_eq!(grew, added_sorted, "{s}");
    assert!(v.text.contains("; scaled in: 3 → 1 at "), "{s}");
    assert_eq!(report.totals.errors, 0, "{:?}", report.errors_by_reason);
    assert!(report.passed(), "{s}");
    assert_eq!(report.steady_stages.len(), 3, "{s}");
}

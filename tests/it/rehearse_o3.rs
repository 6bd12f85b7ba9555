//! The objective 3 rehearsal: the rendered Deployment's pods as processes behind the rendered
//! route, scaled by the rendered HorizontalPodAutoscaler under a stepped load (low -> high ->
//! low) with `bookstore loadtest`; rendered files the HPA cannot use stopping it before
//! anything runs.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use crate::autoscale::{decisions, finish, loadtest, wait_for};
use crate::rehearse::{bookstore_exe, options, tools_present};
use crate::support::decisions::{
    check_added_came_in_service, check_explained, check_served, evaluations, events, scales, Words,
};
use crate::support::rehearsal::{check_refused, BadRendered};
use bookstore::rehearse::autoscale::TimeScale;
use bookstore::rehearse::{objective3, Scaling};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[test]
fn objective3_scales_out_by_its_hpa_under_a_stepped_load_and_back_in_without_failed_requests() {
    if !tools_present() {
        return;
    }
    let mut o = options(0); // the Deployment's replicas (none: 1, then the HPA's minimum)
                            // A small Deployment: 2 to 4 pods of 100m each (the HPA's percentage is of the request,
                            // and each pod gets its request as its CPU quota).
    o.spec.objective3.min_replicas = 2;
    o.spec.objective3.max_replicas = 4;
    o.spec.objective3.cpu_request = "100m".into();
    o.scaling = Scaling::Autoscaler;
    // 20 platform seconds per real second: a sync every 0.75 s, the 300 s scale-down window 15 s.
    o.time_scale = TimeScale::new(20.0).unwrap();
    let r = objective3::Rehearsal::start(&o).expect("start objective 3 with its HPA");
    assert!(
        r.cpu_meter().enforced(),
        "the acceptance test needs enforced CPU quotas (root on cgroup v1): {}",
        r.cpu_meter().describe()
    );
    let hpa = r.hpa().expect("the rendered HPA").clone();
    let (min, max) = (hpa.min, hpa.max);
    assert_eq!((min, max), (2, 4), "the rendered HPA");
    let text = r.differences().render_from("a real cluster");
    for needle in [
        "HorizontalPodAutoscaler bookstore",
        "preStop sleep 5 s",
        "cert-manager is not run",
        "PodDisruptionBudget bookstore",
        "a distinct loopback port per pod",
        "BOOKSTORE_INSTANCE_ID",
    ] {
        assert!(
            text.contains(needle),
            "differences lack {needle:?}:\n{text}"
        );
    }
    let log = r.decisions_path();
    wait_for(
        "the HPA to raise the Deployment to minReplicas",
        Duration::from_secs(120),
        || r.pods().iter().filter(|p| p.ready).count() == min as usize,
    );
    // Each pod's metrics port is its own loopback port, and the pod's name is its instance id.
    let pods = r.pods();
    let metrics: Vec<u16> = pods.iter().map(|p| p.ports[&9100]).collect();
    assert_ne!(metrics[0], metrics[1]);
    let work = tempfile::tempdir().unwrap();
    let report_dir = work.path().join("report");

    // One load test, three stages: 1 shopper for 20 s, 48 for 40 s (log-ins hash passwords),
    // 1 for 80 s (through the scale-in); each waits 0.5-1 s between pages. 16 shoppers kept two
    // pods at 40-68% of their request, around the 60% target (+10% tolerance), so whether they
    // scaled out was chance (issue 20); 32 held them at 74-88% on a busy machine, 48 need more
    // than the two pods' 200m.
    let started = std::time::Instant::now();
    let mut load = loadtest(
        &r.https_url(),
        &report_dir,
        &[
            "--scenario",
            "mix",
            "--stages",
            "1:0s,1:20s,48:2s,48:40s,1:0s,1:80s",
            "--think",
            "500ms..1s",
        ],
    );
    let at = |secs: u64| started + Duration::from_secs(secs);
    wait_for(
        "three evaluations under the low stage",
        Duration::from_secs(60),
        || evaluations(&log) >= 3 && std::time::Instant::now() >= at(15),
    );
    assert_eq!(r.replicas(), min, "the low stage alone must not scale out");

    let mut peak = min;
    wait_showing(
        "the Deployment to scale out to 3 or more in the high stage",
        Duration::from_secs(70),
        &log,
        || {
            peak = peak.max(r.replicas());
            peak >= 3
        },
    );
    let deadline = at(62);
    wait_for("the end of the high stage", Duration::from_secs(70), || {
        peak = peak.max(r.replicas());
        std::time::Instant::now() >= deadline
    });

    // Back in the low stage: the HPA returns to minReplicas while the load still runs.
    wait_showing(
        "the Deployment to scale back in to minReplicas",
        Duration::from_secs(75),
        &log,
        || {
            peak = peak.max(r.replicas());
            assert!(
                load.running(),
                "the load test ended before the scale-in; decisions:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            r.replicas() == min && r.pods().len() == min as usize
        },
    );
    let (report, out) = finish(load, &report_dir, "stepped");
    eprintln!("{out}");

    // Zero failed requests, scale-in included (the run also gates on --max-error-rate 0).
    assert_eq!(report["totals"]["errors"], 0, "{}", report["totals"]);
    assert!(
        report["totals"]["requests"].as_u64().unwrap() > 100,
        "{}",
        report["totals"]
    );

    // The decision log explains every change.
    let lines = decisions(&log);
    let scales = scales(&lines);
    let words = Words {
        policy: "bookstore",
        up: "scale-up",
        down: "scale-down",
    };
    let (mut saw_out, mut saw_in) = (false, false);
    for (i, s) in &scales {
        let (cur, des) = (
            s["current"].as_u64().unwrap(),
            s["desired"].as_u64().unwrap(),
        );
        assert_eq!(s["autoscaler"], "hpa");
        assert!(des <= max as u64, "above maxReplicas: {s}");
        let rule = s["rule"].as_str().unwrap();
        if cur == des {
            assert!(rule.contains("creating replacements"), "{s}");
            continue;
        }
        if cur < min as u64 {
            // Creation (1, the API server's default) and the HPA's raise to minReplicas.
            assert!(
                rule.contains("defaults it to 1") || rule.contains("below minReplicas"),
                "{s}"
            );
            continue;
        }
        assert!(des >= min as u64, "below minReplicas: {s}");
        let word = check_explained(&lines, *i, &words);
        saw_out |= des > cur;
        saw_in |= des < cur;
        assert!(rule.starts_with(&format!("{word} {cur} -> {des}")), "{s}");
    }
    assert!(saw_out && saw_in, "a scale-up and a scale-down: {scales:?}");
    assert!(
        lines.iter().any(|l| l["kind"] == "evaluation"
            && l["rule"]
                .as_str()
                .unwrap_or("")
                .contains("stabilisation window")),
        "the scale-down stabilisation window is never explained"
    );
    assert!(peak >= 3 && peak <= max, "peak replicas {peak}");
    // Every removed pod left the endpoints before it was terminated; every added one was Ready.
    for (_, s) in &scales {
        for id in s["instances_removed"].as_array().unwrap() {
            let e = events(&lines, id.as_str().unwrap());
            let at = |ev: &str| e.iter().rposition(|x| x == ev);
            assert!(
                e.last().map(String::as_str) == Some("terminated"),
                "{id}: {e:?}"
            );
            if at("in_service").is_some() {
                // Out of the endpoints after the deletion, before the termination.
                assert!(at("draining") < at("out_of_service"), "{id}: {e:?}");
            }
        }
        check_added_came_in_service(&lines, s);
    }
    let served = report["instances"].as_array().map(Vec::len).unwrap_or(0);
    assert!(served >= 3, "the load test saw {served} pods");
    let all_pods: Vec<String> = scales
        .iter()
        .flat_map(|(_, s)| s["instances_added"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for i in report["instances"].as_array().unwrap() {
        let id = i["name"].as_str().unwrap_or_default();
        assert!(
            all_pods.iter().any(|p| p == id),
            "{i} is not a pod the log created ({all_pods:?})"
        );
    }

    // The status server serves the same log and the settled Deployment.
    let url = r.status_url();
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let get = |path: &str| {
        bookstore::rehearse::supervise::http_get(port, path, Duration::from_secs(5)).unwrap()
    };
    // The rehearsal still evaluates (every 15 platform seconds), so the log may grow between
    // the request and the file read.
    let before = decisions(&log).len();
    let (code, body) = get("/decisions?from=0");
    assert_eq!(code, 200);
    check_served(&body, &log, before);
    let status: Value = serde_json::from_str(&get("/status").1).unwrap();
    // Run 7 of issue 20's ten runs ended here with 3: a scale-out under one shopper, 60 s after
    // the scale-in; the evaluations that led to it say why.
    assert_eq!(
        status["desired"],
        min,
        "{status}\nthe last decisions:\n{}",
        last_decisions(&log, 12)
    );
    assert_eq!(status["autoscaler"], "hpa");
    assert_eq!(
        status["instances"].as_array().unwrap().len(),
        min as usize,
        "{status}"
    );
}

/// [`wait_for`], and on a timeout the last decisions of `log` (the HPA's evaluations say why).
fn wait_showing(what: &str, limit: Duration, log: &Path, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}; the last decisions:\n{}",
            last_decisions(log, 16)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of the decision log, one JSON object a line.
fn last_decisions(log: &Path, n: usize) -> String {
    let all = decisions(log);
    all[all.len().saturating_sub(n)..]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `bookstore gen objective3` into a temp dir, with `edit` applied to its `file`.
fn rendered_with(
    file: &str,
    edit: impl Fn(&str) -> Option<String>,
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bookstore_exe())
        .args(["gen", "objective3", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = dir.path().join("objective3");
    let path = rendered.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    match edit(&text) {
        Some(edited) => {
            assert_ne!(edited, text, "the edit changed nothing");
            std::fs::write(&path, edited).unwrap();
        }
        None => std::fs::remove_file(&path).unwrap(),
    }
    (dir, rendered)
}

#[test]
fn rendered_hpa_files_the_rehearsal_cannot_use_stop_it_before_anything_runs() {
    if !tools_present() {
        return;
    }
    type Edit = fn(&str) -> Option<String>;
    let cases: [(&str, Edit, &str, &str, Option<&str>); 4] = [
        (
            "target \"abc\"",
            |t| Some(t.replacen("averageUtilization: 60", "averageUtilization: \"abc\"", 1)),
            "spec.metrics[0].resource.target.averageUtilization",
            "\"abc\" is not a whole number",
            Some("averageUtilization: \"abc\""),
        ),
        (
            "maxReplicas below minReplicas",
            |t| Some(t.replacen("maxReplicas: 10", "maxReplicas: 1", 1)),
            "spec.maxReplicas",
            "maxReplicas 1 is less than minReplicas 2",
            Some("maxReplicas: 1"),
        ),
        (
            "a Pods policy of \"many\"",
            |t| Some(t.replacen("value: 4", "value: many", 1)),
            "spec.behavior.scaleUp.policies[0].value",
            "\"many\" is not a whole number",
            Some("value: many"),
        ),
        (
            "no HPA",
            |_| None,
            "(file)",
            "no HorizontalPodAutoscaler to run",
            None,
        ),
    ];
    for (what, edit, key, reason, edited_line) in cases {
        let (_keep, rendered) = rendered_with("k8s/hpa.yaml", edit);
        check_refused(
            &bookstore_exe(),
            &BadRendered {
                what,
                objective: "objective3",
                rendered: &rendered,
                file: "k8s/hpa.yaml",
                key,
                reason,
                edited_line,
            },
        );
    }
}

#[test]
fn the_rendered_route_redirects_limits_bodies_and_a_deleted_pod_leaves_the_endpoints_first() {
    if !tools_present() {
        return;
    }
    let mut o = options(2);
    o.scaling = Scaling::Manual;
    o.time_scale = TimeScale::new(10.0).unwrap();
    let r = objective3::Rehearsal::start(&o).expect("start objective 3 by hand");
    assert!(r.hpa().is_none());
    let http_port: u16 = r.http_url().rsplit(':').next().unwrap().parse().unwrap();
    let (code, _) =
        bookstore::rehearse::supervise::http_get(http_port, "/books", Duration::from_secs(5))
            .unwrap();
    assert_eq!(code, 301, "plain HTTP answers the HTTPRoute's redirect");
    assert_eq!(
        r.route().body_limit,
        Some(6 * 1024 * 1024),
        "BackendTrafficPolicy requestBuffer.limit"
    );
    let before = r.pods();
    assert_eq!(before.len(), 2);
    for p in &before {
        assert!(p.name.starts_with("bookstore-"), "{}", p.name);
    }
    // Scale in by hand: the newest pod goes; it leaves the endpoints before SIGTERM.
    let said = r.scale_by_hand(1, "-").unwrap();
    let gone = &before[1].name;
    assert!(said.contains(gone.as_str()), "{said}");
    wait_for("the pod to be terminated", Duration::from_secs(60), || {
        r.pods().len() == 1
    });
    let lines = decisions(&r.decisions_path());
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l["kind"] == "instance" && l["instance"] == gone.as_str())
        .map(|l| l["event"].as_str().unwrap())
        .collect();
    assert!(
        events.ends_with(&["draining", "out_of_service", "terminated"]),
        "{events:?}"
    );
    let shop_log =
        std::fs::read_to_string(r.workdir().join("pods").join(gone).join("shop.log")).unwrap();
    assert!(
        shop_log.to_lowercase().contains("drain"),
        "the shop drained on SIGTERM:\n{shop_log}"
    );
    let manual: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "manual").collect();
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert!(
        r.scale_by_hand(0, "-").is_err(),
        "zero replicas are refused"
    );

    // The container dies: the kubelet restarts it (after its back-off), the pod leaves the
    // endpoints meanwhile and comes back once its probes pass.
    let pod = r.pods().remove(0);
    assert!(pod.pid > 0 && pod.restarts == 0, "{pod:?}");
    let killed = Command::new("kill")
        .args(["-KILL", &pod.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let events = || -> Vec<String> {
        decisions(&r.decisions_path())
            .iter()
            .filter(|l| l["kind"] == "instance" && l["instance"] == pod.name.as_str())
            .map(|l| l["event"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for(
        "the container to be restarted, Ready and back in the endpoints",
        Duration::from_secs(60),
        || {
            r.pods()
                .first()
                .is_some_and(|p| p.restarts == 1 && p.ready && p.pid != pod.pid)
                && events().ends_with(&["out_of_service".to_string(), "in_service".to_string()])
        },
    );
}

/// The rendered files of `spec` as the rehearsal reads them.
fn read_rendered(
    spec: bookstore::spec::Spec,
) -> (
    objective3::workload::Workload,
    objective3::route::Route,
    bookstore::rehearse::autoscale::hpa::HpaSpec,
) {
    use bookstore::rehearse::rendered::RenderedFiles;
    let o = bookstore::rehearse::Options::new(spec).unwrap();
    let files = RenderedFiles::load(&o, bookstore::blueprints::Objective::Objective3).unwrap();
    let w = objective3::workload::Workload::read(&files).unwrap();
    let r = objective3::route::Route::read(&files).unwrap();
    let h = objective3::hpa_manifest::read(&files, &w.name).unwrap();
    (w, r, h)
}

#[test]
fn reads_the_deployment_route_and_hpa_as_rendered_for_gateway_and_ingress() {
    use bookstore::rehearse::autoscale::hpa::{PolicyKind, Select, Target};
    let (w, r, h) = read_rendered(bookstore::spec::embedded_default());
    assert_eq!((w.name.as_str(), w.replicas), ("bookstore", None));
    assert_eq!((w.cpu_request, w.cpu_limit), (Some(250), None));
    assert_eq!((w.prestop_sleep, w.grace), (5.0, 35.0));
    let ready = w.readiness.clone().unwrap();
    assert_eq!(
        (ready.path.as_str(), ready.port, ready.period, ready.failure),
        ("/readyz", 8080, 10.0, 2)
    );
    assert_eq!(w.liveness.as_ref().map(|p| p.failure), Some(3));
    assert_eq!(w.ports.get("metrics"), Some(&9100));
    assert_eq!(w.config["BOOKSTORE_DRAIN_SECONDS"], "20");
    assert_eq!(w.service, ("bookstore".to_string(), 80));
    assert_eq!(w.service_port, 8080);
    assert_eq!(w.pdb, Some(("bookstore".into(), "minAvailable 1".into())));
    assert_eq!(r.redirect, Some(301));
    assert_eq!(r.hsts.as_deref(), Some("max-age=63072000"));
    assert_eq!(r.body_limit, Some(6 * 1024 * 1024));
    assert_eq!((h.min, h.max), (2, 10));
    assert_eq!(h.metrics[0].target, Target::Utilization(60));
    assert_eq!(h.behavior.up.policies[0].kind, PolicyKind::Pods);
    assert_eq!(h.behavior.down.select, Select::Min);
    assert_eq!(h.behavior.down.stabilization_secs, 300);

    // eu-staging: Traefik Ingress with Middlewares, other HPA behaviour.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs");
    let spec = bookstore::spec::load_file(&dir.join("eu-staging.yaml")).unwrap();
    let (w, r, h) = read_rendered(spec);
    assert!(r.what.starts_with("Ingress"), "{}", r.what);
    assert_eq!(r.redirect, Some(301));
    assert!(r.hsts.is_some() && r.body_limit.is_some(), "{r:?}");
    assert_eq!((w.cpu_request, w.prestop_sleep), (Some(500), 8.0));
    assert_eq!((h.min, h.max), (3, 20));
    assert_eq!(h.behavior.up.stabilization_secs, 15);
    assert_eq!(h.behavior.down.policies[0].value, 20);
}

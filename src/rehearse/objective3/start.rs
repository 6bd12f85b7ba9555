//! Starting the objective 3 rehearsal: read the rendered files (stopping on a value the
//! rehearsal cannot use before anything runs), then MariaDB, the Secret and volumes, the router,
//! the decision log and its status server, the Deployment's first pods and the HPA.

use super::database::{make_tls, Job};
use super::hpa_manifest;
use super::route::{Route, Router};
use super::workload::{Volume, Workload};
use super::{controller, By, Cluster, Rehearsal, Shared};
use crate::blueprints::Objective;
use crate::rehearse::autoscale::hpa::{
    ControllerFlags, HpaSpec, PolicyKind, Rules, Select, Target,
};
use crate::rehearse::autoscale::{
    Autoscaler, CpuMeter, DecisionLog, PlatformClock, Status, StatusBoard, StatusServer, TimeScale,
};
use crate::rehearse::mariadb::LocalMariaDb;
use crate::rehearse::nginx::{self, Nginx};
use crate::rehearse::rendered::{RenderedError, RenderedFiles};
use crate::rehearse::supervise::with_free_port;
use crate::rehearse::{provision_database, say, Differences, Options, Scaling, WorkDir};
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl Rehearsal {
    /// Reads the rendered objective 3 files (from the spec, or `opts.rendered`), starts
    /// MariaDB, the router, the Deployment's pods (its `replicas`, else 1 as the API server
    /// defaults it; `opts.instances` overrides) and, with [`Scaling::Autoscaler`], the HPA; waits
    /// until the first pods are Ready. A rendered file the rehearsal cannot use stops it before
    /// anything starts, with a [`RenderedError`].
    pub fn start(opts: &Options) -> Result<Rehearsal> {
        let files = RenderedFiles::load(opts, Objective::Objective3)?;
        let workload = Workload::read(&files)?;
        let route = Route::read(&files)?;
        if route.backend.0 != workload.service.0
            || (route.backend.1 != 0 && route.backend.1 != workload.service.1)
        {
            return Err(RenderedError {
                file: files.label("k8s/routing.yaml"),
                line: None,
                path: "backendRefs".into(),
                reason: format!(
                    "{} sends to Service {}:{}; the rendered Service is {}:{}",
                    route.what,
                    route.backend.0,
                    route.backend.1,
                    workload.service.0,
                    workload.service.1
                ),
            }
            .into());
        }
        let hpa = match opts.scaling {
            Scaling::Autoscaler => Some(hpa_manifest::read(&files, &workload.name)?),
            Scaling::Manual => None,
        };
        let cores = opts.instance_cpu.unwrap_or_else(|| {
            workload.cpu_limit.or(workload.cpu_request).unwrap_or(250) as f64 / 1000.0
        });
        let meter = CpuMeter::new(cores)?;
        let work = WorkDir::new(opts.workdir.as_deref())?;
        let mut diffs = Differences::default();
        let ts = opts.time_scale;

        let job = Job::read(&files)?;
        say(
            opts.verbose,
            "starting MariaDB (the database outside the cluster)",
        );
        let (db, config_maps) = start_database(&workload, work.path(), &mut diffs)?;
        let template = super::template::Template::new(
            &workload,
            &opts.exe,
            work.path(),
            db.port(),
            config_maps,
            &mut diffs,
        )?;
        let first_ports: BTreeMap<u16, u16> = workload.ports.values().map(|p| (*p, 0)).collect();
        let seed_env = template.env(&workload, "seed", &first_ports, &mut diffs)?;
        match &job {
            Some(job) => {
                say(
                    opts.verbose,
                    "running the Job that creates the shop's database user",
                );
                job.run(&db, &template, work.path(), &mut diffs)?;
            }
            None => {
                provision_database(&db, &seed_env)?;
            }
        }
        say(
            opts.verbose,
            format!("seeding {} demo books", opts.seed_books),
        );
        seed_env.seed(&opts.exe, work.path(), opts.seed_books)?;

        let tls = nginx::tls_files(&work.path().join("tls"), &route.host.replace('*', "shop"))?;
        let router_at = |http_port, https_port, endpoints_port| Router {
            http_port,
            https_port,
            endpoints_port,
            tls: tls.clone(),
        };
        let (endpoints_port, endpoints) = with_free_port(|p| {
            let conf = router_at(0, 0, p).endpoints_conf(&[], 0);
            Ok((
                p,
                Nginx::start("endpoints", &work.path().join("endpoints"), &conf, "1", p)?,
            ))
        })?;
        let (http_port, https_port, gateway) = with_free_port(|http| {
            with_free_port(|https| {
                let conf = router_at(http, https, endpoints_port).gateway_conf(&route);
                let g = Nginx::start(
                    "gateway",
                    &work.path().join("gateway"),
                    &conf,
                    "auto",
                    https,
                )?;
                Ok((http, https, g))
            })
        })?;
        let router = router_at(http_port, https_port, endpoints_port);
        add_differences(
            &mut diffs,
            &workload,
            &route,
            hpa.as_ref(),
            &meter,
            &router,
            ts,
            opts.scaling,
        );

        let clock = PlatformClock::start(ts);
        let log =
            DecisionLog::create(&work.path().join("decisions.jsonl"), Autoscaler::Hpa, clock)?;
        let initial = match opts.instances {
            0 => workload.replicas.unwrap_or(1),
            n => n as u32,
        };
        let board = StatusBoard::new(Status {
            objective: "objective3".into(),
            autoscaler: Autoscaler::Hpa,
            time_scale: ts.factor(),
            min: hpa.as_ref().map(|h| h.min).unwrap_or(1),
            max: hpa.as_ref().map(|h| h.max).unwrap_or(initial),
            desired: initial,
            instances: Vec::new(),
        });
        let status = StatusServer::start(opts.status_port, log.clone(), board.clone())?;
        let shared = Arc::new(Shared {
            cluster: Mutex::new(Cluster {
                pods: BTreeMap::new(),
                next_seq: 1,
                replicas: 0,
                endpoints: Some(endpoints),
                routed: Vec::new(),
                generation: 0,
            }),
            workload,
            hpa,
            template,
            router,
            meter,
            clock,
            log,
            board,
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            verbose: opts.verbose,
        });
        let mut r = Rehearsal {
            shared,
            controller: None,
            status: Some(status),
            gateway: Some(gateway),
            route,
            db: Some(db),
            diffs,
            mode: opts.scaling,
            work,
        };
        let rule = match (opts.instances, r.shared.workload.replicas) {
            (0, Some(n)) => format!("0 -> {n}: the Deployment is created with replicas {n}"),
            (0, None) => "0 -> 1: the Deployment is created without replicas (the HPA owns the count); the API server defaults it to 1".to_string(),
            (n, _) => format!("0 -> {n}: started with {n} pod(s) (the rehearsal's --instances)"),
        };
        r.shared.set_replicas(initial, rule, By::Hpa);
        let first_ready = Duration::from_secs(180);
        r.wait_ready(initial as usize, first_ready)?;
        r.controller = Some(controller::spawn(r.shared.clone())?);
        Ok(r)
    }
}

/// (ConfigMap, key) -> value.
type ConfigMapValues = BTreeMap<(String, String), String>;

/// MariaDB as the Deployment's settings want it: TLS only, with a CA of its own in the ConfigMap
/// the pods read `BOOKSTORE_DATABASE_CA_FILE` from, when `BOOKSTORE_DATABASE_TLS=verify`;
/// plaintext otherwise. Returns the ConfigMap values it fills.
fn start_database(
    w: &Workload,
    work: &std::path::Path,
    diffs: &mut Differences,
) -> Result<(LocalMariaDb, ConfigMapValues)> {
    let setting = |k: &str| {
        w.env
            .iter()
            .find_map(|(n, v)| match v {
                super::workload::EnvSource::Value(v) if n == k => Some(v.clone()),
                _ => None,
            })
            .or_else(|| w.config.get(k).cloned())
    };
    let mut config_maps = BTreeMap::new();
    if setting("BOOKSTORE_DATABASE_TLS").as_deref() != Some("verify") {
        diffs.add(
            "database TLS",
            "as rendered: none",
            "none (plaintext on loopback)",
        );
        return Ok((LocalMariaDb::start_in(&work.join("mariadb"))?, config_maps));
    }
    let tls = make_tls(&work.join("database-tls"))?;
    if let Some(ca_file) = setting("BOOKSTORE_DATABASE_CA_FILE") {
        let (cm, key) = w
            .mounts
            .iter()
            .find_map(|(path, v)| match v {
                Volume::ConfigMap { name, items } => items
                    .iter()
                    .find(|(_, f)| format!("{path}/{f}") == ca_file)
                    .map(|(k, _)| (name.clone(), k.clone())),
                _ => None,
            })
            .ok_or_else(|| {
                anyhow::anyhow!("BOOKSTORE_DATABASE_CA_FILE={ca_file}: no ConfigMap key of the Deployment is mounted there")
            })?;
        config_maps.insert((cm.clone(), key), std::fs::read_to_string(&tls.ca)?);
        diffs.add(
            format!("ConfigMap {cm} ({ca_file})"),
            "the RDS certificate authorities of the region (README.md's command)",
            format!(
                "{}: the rehearsal's own CA, made with openssl",
                tls.ca.display()
            ),
        );
    }
    diffs.add(
        "database TLS",
        "RDS: require_secure_transport, a certificate for the database's host name from AWS's RDS CA",
        "MariaDB with --require-secure-transport=ON and a certificate for 127.0.0.1 signed by that CA; the shop verifies it (BOOKSTORE_DATABASE_TLS=verify)",
    );
    let db = LocalMariaDb::start_tls_in(&work.join("mariadb"), tls)?;
    Ok((db, config_maps))
}

fn rules_text(r: &Rules) -> String {
    let ps: Vec<String> = r
        .policies
        .iter()
        .map(|p| match p.kind {
            PolicyKind::Pods => format!("{} pods per {} s", p.value, p.period_secs),
            PolicyKind::Percent => format!("{}% per {} s", p.value, p.period_secs),
        })
        .collect();
    let select = match r.select {
        Select::Max => "Max",
        Select::Min => "Min",
        Select::Disabled => "Disabled",
    };
    format!(
        "stabilization {} s, {}, selectPolicy {select}",
        r.stabilization_secs,
        ps.join(" and ")
    )
}

/// Every difference from a real cluster.
#[allow(clippy::too_many_arguments)]
fn add_differences(
    d: &mut Differences,
    w: &Workload,
    route: &Route,
    hpa: Option<&HpaSpec>,
    meter: &CpuMeter,
    router: &Router,
    ts: TimeScale,
    scaling: Scaling,
) {
    d.add("cluster", "an EKS cluster: API server, scheduler, kubelets on nodes, a CNI, kube-proxy", "none: this process plays the ReplicaSet, EndpointSlice and HPA controllers and one kubelet per pod; no scheduling, no nodes, no NetworkPolicy enforcement, no Pod Security Admission");
    d.add("pods", format!("containers of the image in Deployment {} (pulled, run as uid 10001, read-only root, memory limit)", w.name), "`bookstore serve` processes of this binary (image ignored, no user switch, no memory limit), each in its own CPU group");
    d.add(
        "time",
        "real time",
        if ts.factor() == 1.0 {
            "real time (speed it up with --time-scale N)".to_string()
        } else {
            format!("{} platform seconds per real second (--time-scale): probe periods, the preStop sleep, the HPA sync period, stabilization windows and policy periods are divided by it; probe timeouts, the grace period and the load stay real", ts.factor())
        },
    );
    d.add(
        "pod CPU",
        format!(
            "request {}m{}; usage from metrics-server (cAdvisor)",
            w.cpu_request.unwrap_or(0),
            w.cpu_limit
                .map(|l| format!(", limit {l}m"))
                .unwrap_or_else(|| ", no limit (a pod may use a whole node)".into())
        ),
        meter.describe(),
    );
    d.add(
        "ConfigMap",
        format!("{}, hash-suffixed by kustomize", w.config_source),
        "the same variables, set directly in each pod's environment",
    );
    for (k, v) in [
        ("startup", &w.startup),
        ("readiness", &w.readiness),
        ("liveness", &w.liveness),
    ] {
        if let Some(p) = v {
            d.add(
                format!("{k} probe"),
                format!(
                    "GET {} on port {} every {} s, timeout {} s, failureThreshold {}",
                    p.path, p.port, p.period, p.timeout, p.failure
                ),
                format!(
                    "the same on the pod's loopback port every {} (timeout real), same thresholds",
                    ts.describe(p.period)
                ),
            );
        }
    }
    d.add(
        "pod termination",
        format!("endpoints drop the pod, preStop sleep {} s, SIGTERM, SIGKILL {} s after the deletion", w.prestop_sleep, w.grace),
        format!("the endpoints nginx drops the pod and reloads (awaited), preStop sleep {}, SIGTERM, SIGKILL {} s after the deletion (the grace period stays real: the shop's drain is real)", ts.describe(w.prestop_sleep), w.grace),
    );
    d.add(
        format!("Service {}:{}", w.service.0, w.service.1),
        format!("ClusterIP; kube-proxy to the Ready pods' port {}", w.service_port),
        format!("an endpoints nginx (127.0.0.1:{}) whose upstream is the Ready pods, rewritten and reloaded on every readiness change", router.endpoints_port),
    );
    d.add(
        route.what.clone(),
        format!(
            "{} for {}: {}, body limit {}, timeouts {}",
            if route.what.starts_with("HTTPRoute") { "Envoy Gateway (NLB in front)" } else { "the ingress controller" },
            route.host,
            route.redirect.map(|c| format!("HTTP answers {c} to HTTPS")).unwrap_or_else(|| "HTTP served".into()),
            route.body_limit.map(|b| format!("{b} bytes")).unwrap_or_else(|| "none".into()),
            match (route.request_timeout, route.backend_timeout) {
                (None, None) => "the proxy's defaults".to_string(),
                (r, b) => format!("request {r:?} s, backend {b:?} s"),
            }
        ),
        format!(
            "a gateway nginx: 127.0.0.1:{} ({}) and 127.0.0.1:{} (TLS), any Host, same body limit, proxy_read_timeout {} s{}",
            router.http_port,
            route.redirect.map(|c| format!("{c} to HTTPS")).unwrap_or_else(|| "served".into()),
            router.https_port,
            route.backend_timeout.or(route.request_timeout).unwrap_or(60.0),
            route.hsts.as_ref().map(|h| format!(", Strict-Transport-Security {h}")).unwrap_or_default()
        ),
    );
    d.add(
        "certificate",
        "cert-manager gets it from Let's Encrypt (HTTP-01)",
        "cert-manager is not run: a self-signed certificate",
    );
    d.add(
        "metrics port",
        "each pod's own IP, same port",
        "a distinct loopback port per pod (see /status and the pods' ports)",
    );
    if let Some((name, rule)) = &w.pdb {
        d.add(format!("PodDisruptionBudget {name}"), format!("{rule}: limits evictions (node drains, upgrades)"), "noted only: no node is drained here, and the HPA's scale-in is not an eviction (as on a cluster)");
    }
    match (scaling, hpa) {
        (Scaling::Autoscaler, Some(h)) => {
            let f = ControllerFlags::default();
            let targets: Vec<String> = h
                .metrics
                .iter()
                .map(|m| match m.target {
                    Target::Utilization(t) => format!("cpu {t}% of request"),
                    Target::AverageValue(t) => format!("cpu {t}m per pod"),
                })
                .collect();
            d.add(
                format!("HorizontalPodAutoscaler {}", h.name),
                format!("{} to {} replicas, {}; up: {}; down: {}; synced every {} s by kube-controller-manager", h.min, h.max, targets.join(", "), rules_text(&h.behavior.up), rules_text(&h.behavior.down), f.sync_period_secs),
                format!("the rehearsal's HPA controller (same algorithm, tolerance {}, CPU initialization {} s, initial readiness delay {} s) every {}; every sync goes to decisions.jsonl and the status URL", f.tolerance, f.cpu_initialization_secs, f.initial_readiness_delay_secs, ts.describe(f.sync_period_secs)),
            );
            d.add(
                "metrics-server",
                "CPU per pod over its scrape window",
                super::cpu_window::describe(ts, f.sync_period_secs),
            );
        }
        _ => d.add(
            "replicas",
            "the HPA (or spec.replicas)",
            "scaled by hand (--manual: `+`/`-`), each step logged as `manual`; no HPA acts",
        ),
    }
}

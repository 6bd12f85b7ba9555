//! Objective 3 on loopback: the rendered Kubernetes files run without a cluster. Each pod of
//! the rendered Deployment is a `bookstore serve` process (the image is not pulled) with the
//! Deployment's env, ConfigMap and Secret files, probed as the kubelet probes it
//! ([`pods`]: startup, readiness, liveness; restart on liveness failure), terminated as the
//! kubelet terminates it (out of the endpoints first, then the preStop sleep, SIGTERM, SIGKILL at
//! the end of the grace period). The Service and the HTTPRoute (or Ingress) are a loopback router
//! ([`route`]) whose endpoints are the Ready pods. The rendered HorizontalPodAutoscaler
//! ([`hpa_manifest`]) is run by `rehearse::autoscale::hpa` once per sync period of platform time
//! ([`controller`]), on CPU measured from each pod's CPU group; every decision goes to
//! `<workdir>/decisions.jsonl` and the status server.

mod controller;
mod cpu_window;
mod database;
pub mod hpa_manifest;
mod pods;
pub mod route;
mod start;
mod template;
pub mod workload;
pub mod yaml;

use super::autoscale::hpa::HpaSpec;
use super::autoscale::{
    CpuGroup, CpuMeter, DecisionLog, Entry, PlatformClock, StatusBoard, StatusServer,
};
use super::mariadb::LocalMariaDb;
use super::nginx::Nginx;
use super::{Differences, Scaling, WorkDir};
use anyhow::{bail, Result};
use route::{Route, Router};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use workload::Workload;

/// One pod as the control plane sees it.
#[derive(Debug)]
struct PodState {
    name: String,
    /// Container port -> its loopback port.
    ports: BTreeMap<u16, u16>,
    /// The loopback port the Service sends to.
    serving_port: u16,
    /// The container runs (`status.startTime`); `None` while Pending.
    started: Option<Instant>,
    /// The startup probe passed (or there is none).
    startup_done: bool,
    /// The Ready condition and its last transition.
    ready: bool,
    transition: Instant,
    /// A deletion timestamp is set.
    deleting: bool,
    /// Its kubelet took it out of the endpoints (terminating).
    unrouted: bool,
    restarts: u32,
    /// The container's process (0 before it starts).
    pid: u32,
    /// Its CPU group (shared with its kubelet thread).
    cpu: Option<Arc<CpuGroup>>,
    /// Its CPU readings at past syncs, for metrics-server's windows.
    usage: cpu_window::UsageWindow,
}

#[derive(Debug)]
struct Cluster {
    pods: BTreeMap<u32, PodState>,
    next_seq: u32,
    /// The Deployment's `spec.replicas`.
    replicas: u32,
    endpoints: Option<Nginx>,
    /// Loopback ports in the endpoints nginx.
    routed: Vec<u16>,
    generation: u64,
}

/// Who asked for a replica change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Hpa,
    Person,
}

/// What the kubelet threads, the HPA and the API share.
#[derive(Debug)]
struct Shared {
    cluster: Mutex<Cluster>,
    workload: Workload,
    hpa: Option<HpaSpec>,
    /// The pod template's values after the rehearsal's substitutions (per pod: name, ports).
    template: template::Template,
    router: Router,
    meter: CpuMeter,
    clock: PlatformClock,
    log: DecisionLog,
    board: StatusBoard,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    verbose: bool,
}

fn lock(m: &Mutex<Cluster>) -> MutexGuard<'_, Cluster> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running objective 3 rehearsal; dropping it stops the HPA, the router, every pod (each
/// terminated as the kubelet does) and MariaDB.
#[derive(Debug)]
pub struct Rehearsal {
    shared: Arc<Shared>,
    controller: Option<JoinHandle<()>>,
    status: Option<StatusServer>,
    gateway: Option<Nginx>,
    route: Route,
    db: Option<LocalMariaDb>,
    diffs: Differences,
    mode: Scaling,
    work: WorkDir,
}

/// A pod as [`Rehearsal::pods`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Its name (also its `BOOKSTORE_INSTANCE_ID`).
    pub name: String,
    /// Ready and not being deleted: in the Service's endpoints.
    pub ready: bool,
    /// Being terminated.
    pub deleting: bool,
    /// Container restarts.
    pub restarts: u32,
    /// The container's process id (0 before it starts).
    pub pid: u32,
    /// `http://127.0.0.1:PORT` of the container's serving port.
    pub url: String,
    /// Container port -> loopback port.
    pub ports: BTreeMap<u16, u16>,
}

impl Rehearsal {
    /// `https://127.0.0.1:PORT`: the gateway's HTTPS listener.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.shared.router.https_port)
    }

    /// `http://127.0.0.1:PORT`: the gateway's HTTP listener (the redirect).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.shared.router.http_port)
    }

    /// The status server's URL (`/decisions`, `/status`).
    pub fn status_url(&self) -> String {
        self.status
            .as_ref()
            .map(StatusServer::url)
            .unwrap_or_default()
    }

    /// The decision log file.
    pub fn decisions_path(&self) -> PathBuf {
        self.shared.log.path()
    }

    /// The Deployment's replica count.
    pub fn replicas(&self) -> u32 {
        lock(&self.shared.cluster).replicas
    }

    /// Every pod, deleting ones included.
    pub fn pods(&self) -> Vec<PodView> {
        lock(&self.shared.cluster)
            .pods
            .values()
            .map(|p| PodView {
                name: p.name.clone(),
                ready: p.ready && !p.deleting,
                deleting: p.deleting,
                restarts: p.restarts,
                pid: p.pid,
                url: format!("http://127.0.0.1:{}", p.serving_port),
                ports: p.ports.clone(),
            })
            .collect()
    }

    /// The rendered HPA, when the rehearsal runs it.
    pub fn hpa(&self) -> Option<&HpaSpec> {
        self.shared.hpa.as_ref()
    }

    /// The rendered Deployment and what it needs.
    pub fn workload(&self) -> &Workload {
        &self.shared.workload
    }

    /// The rendered route.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// How pod CPU is capped and measured.
    pub fn cpu_meter(&self) -> &CpuMeter {
        &self.shared.meter
    }

    /// Who scales.
    pub fn mode(&self) -> Scaling {
        self.mode
    }

    /// Every difference from a real cluster.
    pub fn differences(&self) -> &Differences {
        &self.diffs
    }

    /// Configs, secrets, logs and data.
    pub fn workdir(&self) -> &Path {
        self.work.path()
    }

    /// Runs SQL as root on the database server.
    pub fn sql(&self, sql: &str) -> Result<String> {
        match &self.db {
            Some(db) => db.sql(sql),
            None => bail!("the database is stopped"),
        }
    }

    /// `kubectl scale --replicas N` (logged as `manual`); refused outside the HPA's limits
    /// while an HPA runs.
    pub fn scale_by_hand(&self, replicas: u32, typed: &str) -> Result<String> {
        if let Some(h) = &self.shared.hpa {
            if replicas > h.max || replicas < h.min {
                bail!(
                    "the HPA {} keeps {} to {} replicas; {replicas} is outside",
                    h.name,
                    h.min,
                    h.max
                );
            }
        }
        if replicas == 0 {
            bail!("at least one replica (the rehearsal does not scale to zero)");
        }
        let current = self.replicas();
        let names =
            self.shared
                .set_replicas(replicas, format!("manual: {typed} typed"), By::Person);
        Ok(match replicas.cmp(&current) {
            std::cmp::Ordering::Greater => format!("creating {}", names.join(", ")),
            std::cmp::Ordering::Less => format!("terminating {}", names.join(", ")),
            std::cmp::Ordering::Equal => "no change".into(),
        })
    }

    /// Waits until `n` pods are Ready in the endpoints and none is being deleted.
    pub fn wait_ready(&self, n: usize, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let pods = self.pods();
            if pods.iter().filter(|p| p.ready).count() == n && pods.len() == n {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{n} ready pods expected within {limit:?}; pods: {pods:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl super::HandScaled for Rehearsal {
    fn mode(&self) -> Scaling {
        self.mode
    }
    fn desired(&self) -> u32 {
        self.replicas()
    }
    fn set_desired_by_hand(&self, desired: u32, typed: &str) -> Result<String> {
        self.scale_by_hand(desired, typed)
    }
}

impl Shared {
    /// Appends to the decision log; a failure to write is reported, not fatal.
    fn record(&self, e: Entry) {
        if let Err(err) = self.log.record(e) {
            super::say(true, format!("cannot write the decision log: {err:#}"));
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        let s = &self.shared;
        s.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.controller.take() {
            let _ = t.join();
        }
        // Every pod thread terminates its pod (in parallel) when it sees the stop.
        loop {
            let threads = std::mem::take(&mut *s.threads.lock().unwrap_or_else(|e| e.into_inner()));
            if threads.is_empty() {
                break;
            }
            for t in threads {
                let _ = t.join();
            }
        }
        if let Some(mut g) = self.gateway.take() {
            g.stop();
        }
        if let Some(mut ep) = lock(&s.cluster).endpoints.take() {
            ep.stop();
        }
        self.status.take();
        if let Some(mut db) = self.db.take() {
            db.stop();
        }
    }
}

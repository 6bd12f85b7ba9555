//! Objective 2 on loopback: MariaDB as RDS, one shared directory as EFS, shop instances each
//! configured as the rendered user-data configures them (its compose file and the runtime.env
//! its boot script writes) behind its own nginx running the rendered instance config, and a TLS
//! nginx in front playing the ALB ([`front`]): HTTP->HTTPS redirect, health checks on the
//! target group's path (polled here; healthy instances are registered by rewriting the router's
//! upstream and reloading it), passive failover with `proxy_next_upstream`.
//!
//! The auto-scaling group is played by the rendered scaling policies ([`scaler`], with the
//! target tracking algorithm of `rehearse::autoscale`), or by hand (`--manual`, or the
//! [`Rehearsal::add_instance`] / [`Rehearsal::remove_instance`] API). Each instance's shop and
//! nginx run in the instance's CPU group. Every decision and instance event goes to
//! `<workdir>/decisions.jsonl` and the loopback status server. Scale-in deregisters the
//! instance, waits the rendered deregistration delay (time-scaled), then stops it (SIGTERM: the
//! shop drains in-flight requests).

pub mod cloudformation;
mod front;
mod group;
mod launch;
mod scaler;
mod start;

use super::autoscale::{
    CpuGroup, CpuMeter, DecisionLog, Entry, Manual, PlatformClock, StatusBoard, StatusServer,
    UsageSampler,
};
use super::mariadb::LocalMariaDb;
use super::nginx::Nginx;
use super::supervise::Supervised;
use super::{Differences, Scaling, WorkDir};
use anyhow::{anyhow, bail, Result};
pub use cloudformation::HealthCheck;
use front::Front;
use launch::Launch;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COMPOSE_PATH: &str = "/opt/bookstore/docker-compose.yml";
const NGINX_PATH: &str = "/etc/bookstore/nginx/bookstore.conf";
const BOOT_PATH: &str = "/usr/local/sbin/bookstore-boot";
const STACK_ENV_PATH: &str = "/etc/bookstore/stack.env";
/// Each instance's CPU capacity unless `--instance-cpu` says otherwise.
pub const DEFAULT_INSTANCE_CPU: f64 = 0.25;

/// The ALB's view of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Registered, not yet passed `HealthyThresholdCount` checks.
    Initial,
    /// In service.
    Healthy,
    /// Failed `UnhealthyThresholdCount` checks in a row.
    Unhealthy,
    /// Deregistered; draining, then terminated.
    Draining,
}

/// One running instance: its shop and nginx (in its CPU group) and the ALB's view of it.
#[derive(Debug)]
struct Instance {
    id: String,
    app_port: u16,
    nginx_port: u16,
    nginx_changes: Vec<(String, String)>,
    state: TargetState,
    ok_streak: u32,
    fail_streak: u32,
    /// Failed liveness checks (`/healthz`) in a row: bookstore-liveness's count.
    live_fail_streak: u32,
    /// When the launch began.
    launched_at: Instant,
    /// When the launch lifecycle hook completed (`InService`; the warm-up starts).
    in_service_at: Instant,
    /// The load balancer has routed to it at least once.
    routed_once: bool,
    sampler: UsageSampler,
    app: Supervised,
    nginx: Nginx,
    /// Last: removed after the processes stopped.
    cpu: CpuGroup,
}

#[derive(Debug)]
struct Fleet {
    instances: BTreeMap<u32, Instance>,
    /// Launches in flight: sequence number -> (id, since).
    pending: BTreeMap<u32, (String, Instant)>,
    next_seq: u32,
    router: Option<Nginx>,
    routed: Vec<u16>,
    generation: u64,
    /// The group's desired capacity.
    desired: u32,
}

impl Fleet {
    /// Instances that are not being terminated, plus launches in flight.
    fn live(&self) -> u32 {
        (self
            .instances
            .values()
            .filter(|i| i.state != TargetState::Draining)
            .count()
            + self.pending.len()) as u32
    }
}

/// Who asked for a capacity change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Autoscaler,
    Person,
}

/// What the health checks, the autoscaler, the launch and drain workers and the API share.
#[derive(Debug)]
struct Shared {
    fleet: Mutex<Fleet>,
    launch: Launch,
    front: Front,
    health: HealthCheck,
    scaling: cloudformation::Scaling,
    meter: CpuMeter,
    clock: PlatformClock,
    log: DecisionLog,
    board: StatusBoard,
    /// The deregistration delay in real time.
    deregistration: Duration,
    stop: AtomicBool,
    workers: Mutex<Vec<JoinHandle<()>>>,
    verbose: bool,
    /// Instances the group replaced as unhealthy (by its HealthCheckType).
    replaced: std::sync::atomic::AtomicU32,
}

fn lock(m: &Mutex<Fleet>) -> MutexGuard<'_, Fleet> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running objective 2 rehearsal; dropping it stops the autoscaler, the load balancer, every
/// instance (drained) and MariaDB.
#[derive(Debug)]
pub struct Rehearsal {
    shared: Arc<Shared>,
    poller: Option<JoinHandle<()>>,
    scaler: Option<JoinHandle<()>>,
    status: Option<StatusServer>,
    alb: Option<Nginx>,
    http_port: u16,
    https_port: u16,
    db: Mutex<LocalMariaDb>,
    database: String,
    diffs: Differences,
    mode: Scaling,
    work: WorkDir,
}

impl Rehearsal {
    /// Launches one more instance (app + its nginx), registers it with the load balancer and
    /// returns its id once its launch completed (logged as a `manual` step); it takes traffic
    /// once it passed the health checks ([`Rehearsal::wait_in_service`]).
    pub fn add_instance(&self) -> Result<String> {
        let s = &self.shared;
        let (seq, id, current) = {
            let mut f = lock(&s.fleet);
            let seq = f.next_seq;
            f.next_seq += 1;
            let id = format!("i-rehearsal-{seq}");
            f.pending.insert(seq, (id.clone(), Instant::now()));
            let current = f.desired;
            f.desired += 1;
            (seq, id, current)
        };
        s.record(Entry::Manual(Manual {
            current,
            desired: current + 1,
            rule: format!("manual: add_instance() launches {id}"),
        }));
        s.launch_instance(seq, &id)?;
        Ok(id)
    }

    /// Scale-in by hand: deregisters the oldest instance, drains it and stops it; returns its
    /// id.
    pub fn remove_instance(&self) -> Result<String> {
        let id = {
            let f = lock(&self.shared.fleet);
            f.instances
                .values()
                .find(|i| i.state != TargetState::Draining)
                .map(|i| i.id.clone())
                .ok_or_else(|| anyhow!("no instance to remove"))?
        };
        self.remove_instance_id(&id)?;
        Ok(id)
    }

    /// Deregisters and stops instance `id` (a `manual` step). Returns whether the shop
    /// finished its drain cleanly.
    pub fn remove_instance_id(&self, id: &str) -> Result<bool> {
        let s = &self.shared;
        let current = {
            let mut f = lock(&s.fleet);
            let i = f
                .instances
                .values_mut()
                .find(|i| i.id == id)
                .ok_or_else(|| anyhow!("no instance {id}"))?;
            if i.state == TargetState::Draining {
                bail!("{id} is already being terminated");
            }
            i.state = TargetState::Draining;
            let current = f.desired;
            f.desired = current.saturating_sub(1);
            current
        };
        s.record(Entry::Manual(Manual {
            current,
            desired: current.saturating_sub(1),
            rule: format!("manual: remove {id}"),
        }));
        s.drain_instance(id)
    }

    /// Waits until instance `id` takes traffic from the load balancer.
    pub fn wait_in_service(&self, id: &str, limit: Duration) -> Result<()> {
        let s = &self.shared;
        let deadline = Instant::now() + limit;
        loop {
            let (in_service, generation) = {
                let f = lock(&s.fleet);
                match f.instances.values().find(|i| i.id == id) {
                    Some(i) => (f.routed.contains(&i.nginx_port), f.generation),
                    None if f.pending.values().any(|(p, _)| p == id) => (false, 0),
                    None => bail!("no instance {id}"),
                }
            };
            if in_service {
                return s.wait_generation(generation);
            }
            if Instant::now() >= deadline {
                bail!("{id} did not pass the health checks within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ids of the instances that are not draining.
    pub fn instance_ids(&self) -> Vec<String> {
        lock(&self.shared.fleet)
            .instances
            .values()
            .filter(|i| i.state != TargetState::Draining)
            .map(|i| i.id.clone())
            .collect()
    }

    /// (id, state, `http://127.0.0.1:PORT` of its nginx) for every instance.
    pub fn targets(&self) -> Vec<(String, TargetState, String)> {
        lock(&self.shared.fleet)
            .instances
            .values()
            .map(|i| {
                (
                    i.id.clone(),
                    i.state,
                    format!("http://127.0.0.1:{}", i.nginx_port),
                )
            })
            .collect()
    }

    /// How many instances the group replaced as unhealthy, by the rendered `HealthCheckType`:
    /// `ELB` on the target group's check after the grace period, `EC2` on bookstore-liveness.
    pub fn replaced(&self) -> u32 {
        self.shared
            .replaced
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The group's desired capacity.
    pub fn desired(&self) -> u32 {
        lock(&self.shared.fleet).desired
    }

    /// The rendered group and policies the rehearsal follows.
    pub fn scaling(&self) -> &cloudformation::Scaling {
        &self.shared.scaling
    }

    /// Who scales.
    pub fn mode(&self) -> Scaling {
        self.mode
    }

    /// `https://127.0.0.1:PORT`: the load balancer.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// `http://127.0.0.1:PORT`: the load balancer's port 80 stand-in (301 to HTTPS).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `http://127.0.0.1:PORT/`: the autoscaler's status server (`/decisions`, `/status`).
    pub fn status_url(&self) -> String {
        self.status
            .as_ref()
            .map(StatusServer::url)
            .unwrap_or_default()
    }

    /// The decision log file.
    pub fn decisions_path(&self) -> std::path::PathBuf {
        self.shared.log.path()
    }

    /// The substitutions made to the rendered files (the instance nginx lines as made for the
    /// first running instance; every instance gets its own ports).
    pub fn differences(&self) -> Differences {
        let mut d = self.diffs.clone();
        if let Some(i) = lock(&self.shared.fleet).instances.values().next() {
            for (rendered, rehearsed) in &i.nginx_changes {
                d.add(
                    format!("instance nginx/bookstore.conf ({})", i.id),
                    format!("`{rendered}`"),
                    format!("`{rehearsed}`"),
                );
            }
        }
        d
    }

    /// The health check as rendered.
    pub fn health_check(&self) -> &HealthCheck {
        &self.shared.health
    }

    /// How instance CPU is capped and measured.
    pub fn cpu_meter(&self) -> &CpuMeter {
        &self.shared.meter
    }

    /// Configs, secrets, logs and data.
    pub fn workdir(&self) -> &Path {
        self.work.path()
    }

    /// The shared uploads directory (the EFS stand-in).
    pub fn uploads_dir(&self) -> &Path {
        &self.shared.launch.uploads_host
    }

    /// The shop's database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs SQL as root on the database server.
    pub fn sql(&self, sql: &str) -> Result<String> {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).sql(sql)
    }

    /// Stops the database server (a fault).
    pub fn stop_database(&self) {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }

    /// Starts the database server again on the same port and data.
    pub fn start_database(&self) -> Result<()> {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).start()
    }

    /// True while every instance's shop process runs (no restarts happened).
    pub fn all_running(&self) -> bool {
        lock(&self.shared.fleet)
            .instances
            .values_mut()
            .all(|i| i.app.is_running())
    }

    /// Scale by hand to `desired` (clamped to the group's limits): `+`/`-` on the terminal.
    /// Returns what happened, in words.
    pub fn set_desired_by_hand(&self, desired: u32, typed: &str) -> Result<String> {
        let g = &self.shared.scaling.group;
        if desired > g.max {
            bail!(
                "the group is at MaxSize {} (AWS refuses a desired capacity above it)",
                g.max
            );
        }
        if desired < g.min {
            bail!(
                "the group is at MinSize {} (AWS refuses a desired capacity below it)",
                g.min
            );
        }
        let current = self.desired();
        let ids = self
            .shared
            .set_desired(desired, format!("manual: {typed} typed"), By::Person)?;
        Ok(match desired.cmp(&current) {
            std::cmp::Ordering::Greater => format!("launching {}", ids.join(", ")),
            std::cmp::Ordering::Less => format!("draining and terminating {}", ids.join(", ")),
            std::cmp::Ordering::Equal => "no change".to_string(),
        })
    }
}

impl super::HandScaled for Rehearsal {
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

impl Drop for Rehearsal {
    fn drop(&mut self) {
        let s = &self.shared;
        s.stop.store(true, Ordering::SeqCst);
        for t in [self.scaler.take(), self.poller.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.join();
        }
        let workers = std::mem::take(&mut *s.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in workers {
            let _ = w.join();
        }
        if let Some(mut alb) = self.alb.take() {
            alb.stop();
        }
        let mut f = lock(&s.fleet);
        if let Some(mut router) = f.router.take() {
            router.stop();
        }
        // SIGTERM to every shop at once, so that they drain in parallel.
        for i in f.instances.values() {
            let _ = i.app.signal("TERM");
        }
        let instances = std::mem::take(&mut f.instances);
        drop(f);
        for (_, i) in instances {
            let Instance {
                mut app,
                mut nginx,
                cpu,
                ..
            } = i;
            app.stop();
            nginx.stop();
            drop(cpu);
        }
        self.status.take();
    }
}

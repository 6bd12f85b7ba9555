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
mod launch;
mod scaler;

use super::autoscale::{
    Autoscaler, CpuGroup, CpuMeter, DecisionLog, Entry, InstanceEvent, InstanceEventKind,
    InstanceState, Manual, PlatformClock, Scale, Status, StatusBoard, StatusServer, UsageSampler,
};
use super::mariadb::LocalMariaDb;
use super::nginx::{self, Nginx};
use super::rendered::RenderedFiles;
use super::supervise::{http_get, with_free_port, Supervised};
use super::{
    compose, generate_secrets, provision_database, say, Differences, Options, Scaling, WorkDir,
};
use crate::blueprints::Objective;
use anyhow::{anyhow, bail, Result};
pub use cloudformation::HealthCheck;
use front::Front;
use launch::Launch;
use std::collections::{BTreeMap, HashMap};
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
    /// Renders objective 2 from the spec (or reads `opts.rendered`), starts MariaDB, the
    /// instances (`opts.instances`, else the rendered `DesiredCapacity`), the load balancer, the
    /// decision log's status server and, with [`Scaling::Autoscaler`], the autoscaler; waits
    /// until every instance is in service. A rendered file the rehearsal cannot use stops it
    /// before anything starts, with a [`super::rendered::RenderedError`].
    pub fn start(opts: &Options) -> Result<Rehearsal> {
        let files = RenderedFiles::load(opts, Objective::Objective2)?;
        let cfn_label = files.label("cloudformation.yaml");
        let template =
            cloudformation::Template::parse(&cfn_label, files.get("cloudformation.yaml")?)?;
        let health = template.health_check()?;
        let scaling = template.scaling(opts.scaling == Scaling::Autoscaler)?;
        let user_data = files.get("user-data.yaml")?;
        let from_user_data = |path: &str| -> Result<String> {
            compose::cloud_config_file(user_data, path)?
                .ok_or_else(|| anyhow!("{} writes no {path}", files.label("user-data.yaml")))
        };
        let compose_text = from_user_data(COMPOSE_PATH)?;
        let site = from_user_data(NGINX_PATH)?;
        let boot = from_user_data(BOOT_PATH)?;
        let stack_env: HashMap<String, String> = from_user_data(STACK_ENV_PATH)?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (standalone, embedded, path) in [
            ("docker-compose.yml", &compose_text, COMPOSE_PATH),
            ("nginx/bookstore.conf", &site, NGINX_PATH),
        ] {
            if files.find(standalone).is_some_and(|s| s != embedded) {
                bail!(
                    "{} differs from the copy {} writes to {path}",
                    files.label(standalone),
                    files.label("user-data.yaml")
                );
            }
        }
        let meter = CpuMeter::new(opts.instance_cpu.unwrap_or(DEFAULT_INSTANCE_CPU))?;
        let work = WorkDir::new(opts.workdir.as_deref())?;
        let mut diffs = Differences::default();

        say(opts.verbose, "starting MariaDB (the RDS stand-in)");
        let db = LocalMariaDb::start_in(&work.path().join("mariadb"))?;
        diffs.add(
            "database",
            "RDS MySQL 8.4 Multi-AZ (Database.Endpoint.Address:3306)",
            format!("MariaDB on 127.0.0.1:{}", db.port()),
        );
        generate_secrets(&compose_text, &work, &mut diffs)?;
        let nginx_svc = compose::service(&compose_text, "nginx")?;
        let app_svc = compose::service(&compose_text, "app")?;
        let uploads_host = app_svc
            .volumes
            .first()
            .map(|(h, _)| work.host(h))
            .ok_or_else(|| anyhow!("the compose app service mounts no uploads directory"))?;
        std::fs::create_dir_all(&uploads_host)?;
        diffs.add(
            "shared uploads (EFS, mounted with TLS at /srv/bookstore/uploads)",
            "EFS access point",
            format!(
                "{} (one directory for every instance)",
                uploads_host.display()
            ),
        );
        let nginx_mounts = nginx_svc
            .volumes
            .iter()
            .map(|(h, c)| (c.clone(), work.host(h)))
            .collect();
        let launch = Launch {
            exe: opts.exe.clone(),
            compose: compose_text.clone(),
            site,
            stack_env,
            boot,
            db_port: db.port(),
            work: work.path().to_path_buf(),
            uploads_host,
            nginx_mounts,
        };

        // The database as the first instance would find it: schema, admin, demo books.
        let probe = launch.env("i-rehearsal-seed", 0, &mut diffs)?;
        let (_, database) = provision_database(&db, &probe)?;
        say(
            opts.verbose,
            format!("seeding {} demo books", opts.seed_books),
        );
        probe.seed(&opts.exe, work.path(), opts.seed_books)?;
        diffs.add(
            "BOOKSTORE_INSTANCE_ID",
            "the EC2 instance ID (IMDSv2), via runtime.env",
            "i-rehearsal-N",
        );
        diffs.add(
            "instance containers",
            "app + nginx containers on a compose network",
            "`bookstore serve` and Debian nginx as child processes",
        );

        let tls = nginx::tls_files(&work.path().join("tls"), &opts.spec.domain.name)?;
        // The router, then the client-facing load balancer; each binds its own ports, and a
        // port taken by someone else in the meantime is replaced by another.
        let front_with = |http_port, https_port, router_port| Front {
            tls: tls.clone(),
            http_port,
            https_port,
            router_port,
            targets_log: work.path().join("router/logs/targets.log"),
            verbose: opts.verbose,
        };
        let (router_port, router) = with_free_port(|p| {
            let conf = front_with(0, 0, p).router_conf(&[], 0);
            Ok((
                p,
                Nginx::start("router", &work.path().join("router"), &conf, "1", p)?,
            ))
        })?;
        let (http_port, https_port, alb) = with_free_port(|http| {
            with_free_port(|https| {
                let conf = front_with(http, https, router_port).alb_conf();
                let alb = Nginx::start(
                    "load balancer",
                    &work.path().join("alb"),
                    &conf,
                    "auto",
                    https,
                )?;
                Ok((http, https, alb))
            })
        })?;
        let front = front_with(http_port, https_port, router_port);
        diffs.add(
            "load balancer",
            "ALB: 80 -> 301 to 443, HTTPS with ACM certificate",
            format!(
                "nginx 127.0.0.1:{http_port} -> 301 to 127.0.0.1:{https_port}, self-signed certificate, \
                 then a router nginx (127.0.0.1:{router_port}) holding the target list"
            ),
        );
        let ts = opts.time_scale;
        let interval = ts
            .real_secs(health.interval_on_aws as f64)
            .min(opts.health_interval);
        diffs.add(
            "target group health check",
            format!(
                "{} every {} s, healthy after {}, unhealthy after {}",
                health.path, health.interval_on_aws, health.healthy, health.unhealthy
            ),
            format!(
                "{} every {:?} (real) by the rehearsal, same thresholds; all unhealthy -> route to all (fail open, as the ALB does)",
                health.path, interval
            ),
        );
        diffs.add(
            "deregistration delay",
            format!(
                "{} s (ends early when the target has no in-flight request)",
                health.deregistration_delay
            ),
            format!(
                "{}, always waited in full, then SIGTERM (the shop drains its in-flight requests)",
                ts.describe(health.deregistration_delay as f64)
            ),
        );
        scaler::add_differences(&mut diffs, &scaling, &meter, opts);

        let clock = PlatformClock::start(ts);
        let log = DecisionLog::create(
            &work.path().join("decisions.jsonl"),
            Autoscaler::TargetTracking,
            clock,
        )?;
        let initial = match opts.instances {
            0 => scaling.desired,
            n => n as u32,
        };
        let board = StatusBoard::new(Status {
            objective: "objective2".into(),
            autoscaler: Autoscaler::TargetTracking,
            time_scale: ts.factor(),
            min: scaling.group.min,
            max: scaling.group.max,
            desired: initial,
            instances: Vec::new(),
        });
        let status = StatusServer::start(opts.status_port, log.clone(), board.clone())?;
        let shared = Arc::new(Shared {
            fleet: Mutex::new(Fleet {
                instances: BTreeMap::new(),
                pending: BTreeMap::new(),
                next_seq: 1,
                router: Some(router),
                routed: Vec::new(),
                generation: 0,
                desired: 0,
            }),
            launch,
            front,
            deregistration: ts.real_secs(health.deregistration_delay as f64),
            health,
            scaling,
            meter,
            clock,
            log,
            board,
            stop: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
            verbose: opts.verbose,
        });
        let mut r = Rehearsal {
            shared,
            poller: None,
            scaler: None,
            status: Some(status),
            alb: Some(alb),
            http_port,
            https_port,
            db: Mutex::new(db),
            database,
            diffs,
            mode: opts.scaling,
            work,
        };
        r.poller = Some(scaler::spawn_health_checks(r.shared.clone(), interval));
        let rule = if opts.instances == 0 {
            format!(
                "0 -> {initial}: the stack creates {} with DesiredCapacity {initial}",
                r.shared.scaling.group_id
            )
        } else {
            format!(
                "0 -> {initial}: started with {initial} instance(s) (the rehearsal's --instances; rendered DesiredCapacity {})",
                r.shared.scaling.desired
            )
        };
        let ids = r.shared.set_desired(initial, rule, By::Autoscaler)?;
        for id in &ids {
            r.wait_in_service(id, Duration::from_secs(120))?;
        }
        if opts.scaling == Scaling::Autoscaler {
            r.scaler = Some(scaler::spawn_autoscaler(r.shared.clone())?);
        }
        Ok(r)
    }

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

impl Shared {
    /// Appends to the decision log; a failure to write is reported, not fatal.
    fn record(&self, e: Entry) {
        if let Err(err) = self.log.record(e) {
            say(true, format!("cannot write the decision log: {err:#}"));
        }
    }

    fn event(&self, id: &str, event: InstanceEventKind) {
        self.record(Entry::Instance(InstanceEvent {
            instance: id.to_string(),
            event,
        }));
    }

    /// Waits until the router answers with `generation` (its new workers run).
    fn wait_generation(&self, generation: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok((200, body)) = http_get(
                self.front.router_port,
                "/__rehearsal/generation",
                Duration::from_secs(1),
            ) {
                if body.trim().parse::<u64>().is_ok_and(|g| g >= generation) {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the load balancer did not reload within 10 s")
    }

    /// Sets the group's desired capacity and starts launching or terminating instances to
    /// match (in worker threads); logs the change (`scale`, or `manual` when a person asked)
    /// with the instances it adds or removes, whose ids it returns.
    fn set_desired(self: &Arc<Self>, desired: u32, rule: String, by: By) -> Result<Vec<String>> {
        let (current, added, removed) = {
            let mut f = lock(&self.fleet);
            let current = f.desired;
            f.desired = desired;
            let live = f.live();
            let mut added = Vec::new();
            for _ in live..desired {
                let seq = f.next_seq;
                f.next_seq += 1;
                let id = format!("i-rehearsal-{seq}");
                f.pending.insert(seq, (id.clone(), Instant::now()));
                added.push((seq, id));
            }
            // Scale-in: the oldest instances go first.
            let mut removed = Vec::new();
            let excess = live.saturating_sub(desired) as usize;
            for i in f
                .instances
                .values_mut()
                .filter(|i| i.state != TargetState::Draining)
                .take(excess)
            {
                i.state = TargetState::Draining;
                removed.push(i.id.clone());
            }
            (current, added, removed)
        };
        let ids: Vec<String> = added
            .iter()
            .map(|(_, id)| id.clone())
            .chain(removed.iter().cloned())
            .collect();
        self.board.update(|s| s.desired = desired);
        match by {
            By::Autoscaler => self.record(Entry::Scale(Scale {
                current,
                desired,
                rule: rule.clone(),
                instances_added: added.iter().map(|(_, id)| id.clone()).collect(),
                instances_removed: removed.clone(),
            })),
            By::Person => self.record(Entry::Manual(Manual {
                current,
                desired,
                rule: if ids.is_empty() {
                    rule.clone()
                } else {
                    format!("{rule}: {}", ids.join(", "))
                },
            })),
        }
        if current != desired || !ids.is_empty() {
            say(
                self.verbose,
                match by {
                    By::Autoscaler => format!("auto-scaling group: {rule}"),
                    By::Person => format!("auto-scaling group: {current} -> {desired}: {rule}"),
                },
            );
        }
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (seq, id) in added {
            let s = self.clone();
            workers.push(std::thread::spawn(move || {
                if let Err(e) = s.launch_instance(seq, &id) {
                    say(true, format!("{id}: launch failed: {e:#}"));
                }
            }));
        }
        for id in removed {
            let s = self.clone();
            workers.push(std::thread::spawn(move || {
                if let Err(e) = s.drain_instance(&id) {
                    say(true, format!("{id}: termination failed: {e:#}"));
                }
            }));
        }
        workers.retain(|w| !w.is_finished());
        Ok(ids)
    }

    /// Starts the instance reserved as `seq`/`id` and registers it with the load balancer.
    fn launch_instance(&self, seq: u32, id: &str) -> Result<()> {
        self.event(id, InstanceEventKind::Launched);
        self.board.set_instance(id, InstanceState::Pending);
        let started = self.launch.start_instance(id, &self.meter);
        let mut f = lock(&self.fleet);
        f.pending.remove(&seq);
        match started {
            Ok(inst) if !self.stop.load(Ordering::SeqCst) => {
                say(
                    self.verbose,
                    format!(
                        "{id}: launched (app 127.0.0.1:{}, nginx 127.0.0.1:{}); InService after {:.1} s; registered",
                        inst.app_port,
                        inst.nginx_port,
                        inst.launched_at.elapsed().as_secs_f64()
                    ),
                );
                f.instances.insert(seq, inst);
                Ok(())
            }
            Ok(inst) => {
                drop(f);
                drop(inst);
                self.event(id, InstanceEventKind::Terminated);
                Ok(())
            }
            Err(e) => {
                drop(f);
                self.event(id, InstanceEventKind::Terminated);
                self.board.remove_instance(id);
                Err(e)
            }
        }
    }

    /// Deregisters instance `id` (already marked draining), waits the deregistration delay,
    /// stops it and removes it. Returns whether the shop finished its drain cleanly.
    fn drain_instance(&self, id: &str) -> Result<bool> {
        let generation = {
            let mut f = lock(&self.fleet);
            self.front.reconcile(&mut f)?
        };
        self.event(id, InstanceEventKind::Draining);
        self.board.set_instance(id, InstanceState::Draining);
        say(self.verbose, format!("{id}: deregistered; draining"));
        if let Some(g) = generation {
            self.wait_generation(g)?;
        }
        let until = Instant::now() + self.deregistration;
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        let inst = {
            let mut f = lock(&self.fleet);
            let seq = f
                .instances
                .iter()
                .find(|(_, i)| i.id == id)
                .map(|(s, _)| *s)
                .ok_or_else(|| anyhow!("{id} is gone"))?;
            f.instances.remove(&seq).expect("instance present")
        };
        let Instance {
            mut app,
            mut nginx,
            cpu,
            ..
        } = inst;
        let (status, in_time) = app.stop();
        nginx.stop();
        drop(cpu);
        say(
            self.verbose,
            format!(
                "{id}: terminated ({})",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into())
            ),
        );
        self.event(id, InstanceEventKind::Terminated);
        self.board.remove_instance(id);
        Ok(in_time && status.is_some_and(|s| s.success()))
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

/// Runs until Ctrl-C, SIGTERM or `limit`. With `--manual`, `+` / `-` lines on stdin scale the
/// group by hand; otherwise the autoscaler is in charge and typed lines are answered with a
/// reminder.
pub fn interactive(r: &Rehearsal, limit: Option<Duration>) -> Result<()> {
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

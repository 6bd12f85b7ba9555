//! Objective 2 on loopback: MariaDB as RDS, one shared directory as EFS, N shop instances each
//! configured as the rendered user-data configures them (its compose file and the runtime.env
//! its boot script writes) behind its own nginx running the rendered instance config, and a TLS
//! nginx in front playing the ALB: HTTP->HTTPS redirect, health checks on the target group's
//! path (polled by the supervisor, which registers healthy instances by rewriting the front's
//! upstream and reloading it), passive failover with `proxy_next_upstream`. Adding and
//! removing instances plays the auto-scaling group; a removed instance is deregistered first,
//! then drains on SIGTERM.

use super::mariadb::LocalMariaDb;
use super::nginx::{self, Nginx, Rewrites, TlsFiles};
use super::objective1::{file, rendered, wait_ready};
use super::supervise::{free_port, http_get, Supervised};
use super::{
    compose, generate_secrets, provision_database, say, AppEnv, Differences, Options, WorkDir,
};
use crate::blueprints::Objective;
use anyhow::{anyhow, bail, Context, Result};
use serde_yaml::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const COMPOSE_PATH: &str = "/opt/bookstore/docker-compose.yml";
const NGINX_PATH: &str = "/etc/bookstore/nginx/bookstore.conf";
const BOOT_PATH: &str = "/usr/local/sbin/bookstore-boot";
const STACK_ENV_PATH: &str = "/etc/bookstore/stack.env";

/// The target group's health check, read from the rendered CloudFormation template.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// `HealthCheckPath`.
    pub path: String,
    /// `HealthyThresholdCount`.
    pub healthy: u32,
    /// `UnhealthyThresholdCount`.
    pub unhealthy: u32,
    /// `HealthCheckIntervalSeconds` as rendered.
    pub interval_on_aws: u64,
    /// `deregistration_delay.timeout_seconds` as rendered.
    pub deregistration_delay: u64,
}

fn target_group(cfn: &str) -> Result<HealthCheck> {
    let doc: Value =
        serde_yaml::from_str(cfn).context("the rendered cloudformation.yaml is not valid YAML")?;
    let tg = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .and_then(|m| {
            m.values().find(|r| {
                r.get("Type").and_then(Value::as_str)
                    == Some("AWS::ElasticLoadBalancingV2::TargetGroup")
            })
        })
        .and_then(|r| r.get("Properties"))
        .ok_or_else(|| {
            anyhow!("cloudformation.yaml has no AWS::ElasticLoadBalancingV2::TargetGroup")
        })?;
    let num = |k: &str, d: u64| -> u64 {
        match tg.get(k) {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(d),
            Some(Value::String(s)) => s.parse().unwrap_or(d),
            _ => d,
        }
    };
    let dereg = tg
        .get("TargetGroupAttributes")
        .and_then(Value::as_sequence)
        .and_then(|attrs| {
            attrs.iter().find(|a| {
                a.get("Key").and_then(Value::as_str) == Some("deregistration_delay.timeout_seconds")
            })
        })
        .and_then(|a| a.get("Value"))
        .and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .unwrap_or(300);
    Ok(HealthCheck {
        path: tg
            .get("HealthCheckPath")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string(),
        healthy: num("HealthyThresholdCount", 5) as u32,
        unhealthy: num("UnhealthyThresholdCount", 2) as u32,
        interval_on_aws: num("HealthCheckIntervalSeconds", 30),
        deregistration_delay: dereg,
    })
}

/// `printf FORMAT ARGS... >/etc/bookstore/runtime.env` in the rendered boot script, evaluated
/// with the shell variables `vars`: the variables the compose file takes from the host.
fn runtime_env(boot: &str, vars: &HashMap<String, String>) -> Result<HashMap<String, String>> {
    let lines: Vec<&str> = boot.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.contains(">/etc/bookstore/runtime.env"))
        .ok_or_else(|| {
            anyhow!("the rendered boot script does not write /etc/bookstore/runtime.env")
        })?;
    let mut start = end;
    while start > 0 && lines[start - 1].trim_end().ends_with('\\') {
        start -= 1;
    }
    let command: String = lines[start..=end]
        .iter()
        .map(|l| l.trim().trim_end_matches('\\'))
        .collect::<Vec<_>>()
        .join(" ");
    let words = shell_words(&command, vars)?;
    let (fmt, args) = match words.split_first() {
        Some((p, rest)) if p == "printf" && !rest.is_empty() => (&rest[0], &rest[1..]),
        _ => bail!("the rendered boot script writes runtime.env with something other than printf: {command}"),
    };
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('s')) => {
                chars.next();
                out.push_str(args.next().map(String::as_str).unwrap_or(""));
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Splits a simple shell command into words (quotes, `$VAR`, `${VAR}`), up to a redirection.
fn shell_words(s: &str, vars: &HashMap<String, String>) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let expand = |chars: &mut std::iter::Peekable<std::str::Chars>, out: &mut String| {
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced {
            chars.next();
        }
        out.push_str(vars.get(&name).map(String::as_str).unwrap_or(""));
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '$' => expand(&mut chars, &mut cur),
                        _ => cur.push(c),
                    }
                }
            }
            '$' => {
                in_word = true;
                expand(&mut chars, &mut cur);
            }
            '>' => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

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

#[derive(Debug)]
struct Instance {
    id: String,
    app_port: u16,
    nginx_port: u16,
    nginx_changes: Vec<(String, String)>,
    state: TargetState,
    ok_streak: u32,
    fail_streak: u32,
    app: Supervised,
    nginx: Nginx,
}

#[derive(Debug)]
struct Fleet {
    instances: BTreeMap<u32, Instance>,
    next_seq: u32,
    router: Option<Nginx>,
    routed: Vec<u16>,
    generation: u64,
}

/// Everything needed to launch another instance (the launch template).
#[derive(Debug)]
struct Launch {
    exe: PathBuf,
    compose: String,
    site: String,
    stack_env: HashMap<String, String>,
    boot: String,
    db_port: u16,
    work: PathBuf,
    uploads_host: PathBuf,
    nginx_mounts: Vec<(String, PathBuf)>,
    verbose: bool,
}

/// A running objective 2 rehearsal; dropping it stops the load balancer, every instance
/// (drained) and MariaDB.
#[derive(Debug)]
pub struct Rehearsal {
    fleet: Arc<Mutex<Fleet>>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    launch: Arc<Launch>,
    health: HealthCheck,
    front: Front,
    alb: Option<Nginx>,
    http_port: u16,
    https_port: u16,
    db: Mutex<LocalMariaDb>,
    database: String,
    diffs: Differences,
    work: WorkDir,
}

fn lock(m: &Mutex<Fleet>) -> MutexGuard<'_, Fleet> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Rehearsal {
    /// Renders objective 2 from the spec, starts MariaDB, `opts.instances` instances and the
    /// load balancer, and waits until every instance is in service.
    pub fn start(opts: &Options) -> Result<Rehearsal> {
        let work = WorkDir::new(opts.workdir.as_deref())?;
        let files = rendered(opts, Objective::Objective2)?;
        let user_data = file(&files, "user-data.yaml")?;
        let from_user_data = |path: &str| -> Result<String> {
            compose::cloud_config_file(user_data, path)?
                .ok_or_else(|| anyhow!("user-data.yaml writes no {path}"))
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
            if files.get(standalone).is_some_and(|s| s != embedded) {
                bail!("out/objective2/{standalone} differs from the copy user-data.yaml writes to {path}");
            }
        }
        let health = target_group(file(&files, "cloudformation.yaml")?)?;
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
        let launch = Arc::new(Launch {
            exe: opts.exe.clone(),
            compose: compose_text.clone(),
            site,
            stack_env,
            boot,
            db_port: db.port(),
            work: work.path().to_path_buf(),
            uploads_host,
            nginx_mounts,
            verbose: opts.verbose,
        });

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
        let (http_port, https_port, router_port) = (free_port()?, free_port()?, free_port()?);
        diffs.add(
            "load balancer",
            "ALB: 80 -> 301 to 443, HTTPS with ACM certificate",
            format!(
                "nginx 127.0.0.1:{http_port} -> 301 to 127.0.0.1:{https_port}, self-signed certificate, \
                 then a router nginx (127.0.0.1:{router_port}) holding the target list"
            ),
        );
        diffs.add(
            "target group health check",
            format!(
                "{} every {} s, healthy after {}, unhealthy after {}",
                health.path, health.interval_on_aws, health.healthy, health.unhealthy
            ),
            format!(
                "{} every {:?} by the rehearsal, same thresholds; all unhealthy -> route to all (fail open, as the ALB does)",
                health.path, opts.health_interval
            ),
        );
        diffs.add(
            "deregistration delay",
            format!("{} s", health.deregistration_delay),
            "1 s after the load balancer reloaded (the shop's own drain finishes in-flight requests)",
        );
        diffs.add("auto-scaling group", "target tracking on CPU", "add_instance / remove_instance (`+` / `-` on the terminal); scale-in removes the oldest");

        let fleet = Arc::new(Mutex::new(Fleet {
            instances: BTreeMap::new(),
            next_seq: 1,
            router: None,
            routed: Vec::new(),
            generation: 0,
        }));
        let mut r = Rehearsal {
            fleet,
            stop: Arc::new(AtomicBool::new(false)),
            poller: None,
            launch,
            health,
            front: Front {
                tls,
                http_port,
                https_port,
                router_port,
                verbose: opts.verbose,
            },
            alb: None,
            http_port,
            https_port,
            db: Mutex::new(db),
            database,
            diffs,
            work,
        };
        {
            let conf = r.front.router_conf(&[], 0);
            let router = Nginx::start(
                "router",
                &r.work.path().join("router"),
                &conf,
                "1",
                router_port,
            )?;
            lock(&r.fleet).router = Some(router);
            let conf = r.front.alb_conf();
            r.alb = Some(Nginx::start(
                "load balancer",
                &r.work.path().join("alb"),
                &conf,
                "auto",
                https_port,
            )?);
        }
        r.poller = Some(r.spawn_health_checks(opts.health_interval));
        let mut ids = Vec::new();
        for _ in 0..opts.instances.max(1) {
            ids.push(r.add_instance()?);
        }
        for id in &ids {
            r.wait_in_service(id, Duration::from_secs(60))?;
        }
        Ok(r)
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
                    std::thread::sleep(Duration::from_millis(100));
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the load balancer did not reload within 10 s")
    }

    fn spawn_health_checks(&self, interval: Duration) -> JoinHandle<()> {
        let fleet = self.fleet.clone();
        let stop = self.stop.clone();
        let hc = self.health.clone();
        let front = self.front.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let targets: Vec<(u32, u16)> = lock(&fleet)
                    .instances
                    .iter()
                    .filter(|(_, i)| i.state != TargetState::Draining)
                    .map(|(s, i)| (*s, i.nginx_port))
                    .collect();
                let results: Vec<(u32, bool)> = targets
                    .into_iter()
                    .map(|(s, port)| {
                        let ok = matches!(
                            http_get(port, &hc.path, Duration::from_secs(2)),
                            Ok((200, _))
                        );
                        (s, ok)
                    })
                    .collect();
                {
                    let mut f = lock(&fleet);
                    for (s, ok) in results {
                        let Some(i) = f.instances.get_mut(&s) else {
                            continue;
                        };
                        if i.state == TargetState::Draining {
                            continue;
                        }
                        if ok {
                            i.ok_streak += 1;
                            i.fail_streak = 0;
                            if i.state != TargetState::Healthy && i.ok_streak >= hc.healthy {
                                i.state = TargetState::Healthy;
                            }
                        } else {
                            i.fail_streak += 1;
                            i.ok_streak = 0;
                            if i.state == TargetState::Healthy && i.fail_streak >= hc.unhealthy {
                                i.state = TargetState::Unhealthy;
                                say(
                                    front.verbose,
                                    format!("health check: {} is unhealthy", i.id),
                                );
                            }
                        }
                    }
                    if let Err(e) = front.reconcile(&mut f) {
                        say(true, format!("load balancer reload failed: {e:#}"));
                    }
                }
                let spent = started.elapsed();
                let mut left = interval.saturating_sub(spent);
                while left > Duration::ZERO && !stop.load(Ordering::SeqCst) {
                    let step = left.min(Duration::from_millis(50));
                    std::thread::sleep(step);
                    left = left.saturating_sub(step);
                }
            }
        })
    }

    /// Launches one more instance (app + its nginx), registers it with the load balancer and
    /// returns its id; it takes traffic once it passed the health checks.
    pub fn add_instance(&self) -> Result<String> {
        let seq = {
            let mut f = lock(&self.fleet);
            f.next_seq += 1;
            f.next_seq - 1
        };
        let id = format!("i-rehearsal-{seq}");
        let inst = self.launch.start_instance(&id)?;
        say(
            self.launch.verbose,
            format!(
                "{id}: launched (app 127.0.0.1:{}, nginx 127.0.0.1:{}); registered",
                inst.app_port, inst.nginx_port
            ),
        );
        lock(&self.fleet).instances.insert(seq, inst);
        Ok(id)
    }

    /// Waits until instance `id` takes traffic from the load balancer.
    pub fn wait_in_service(&self, id: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let (in_service, generation) = {
                let f = lock(&self.fleet);
                let i = f
                    .instances
                    .values()
                    .find(|i| i.id == id)
                    .ok_or_else(|| anyhow!("no instance {id}"))?;
                (f.routed.contains(&i.nginx_port), f.generation)
            };
            if in_service {
                return self.wait_generation(generation);
            }
            if Instant::now() >= deadline {
                bail!("{id} did not pass the health checks within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scale-in: deregisters the oldest instance from the load balancer, waits for the reload,
    /// then stops it (SIGTERM: the shop drains in-flight requests) and returns its id.
    pub fn remove_instance(&self) -> Result<String> {
        let id = {
            let f = lock(&self.fleet);
            f.instances
                .values()
                .find(|i| i.state != TargetState::Draining)
                .map(|i| i.id.clone())
                .ok_or_else(|| anyhow!("no instance to remove"))?
        };
        self.remove_instance_id(&id)?;
        Ok(id)
    }

    /// Deregisters and stops instance `id`. Returns whether the shop finished its drain cleanly.
    pub fn remove_instance_id(&self, id: &str) -> Result<bool> {
        let generation = {
            let mut f = lock(&self.fleet);
            let i = f
                .instances
                .values_mut()
                .find(|i| i.id == id)
                .ok_or_else(|| anyhow!("no instance {id}"))?;
            i.state = TargetState::Draining;
            self.front.reconcile(&mut f)?
        };
        say(self.launch.verbose, format!("{id}: deregistered; draining"));
        if let Some(g) = generation {
            self.wait_generation(g)?;
        }
        std::thread::sleep(Duration::from_secs(1));
        let inst = {
            let mut f = lock(&self.fleet);
            let seq = *f
                .instances
                .iter()
                .find(|(_, i)| i.id == id)
                .map(|(s, _)| s)
                .expect("instance present");
            f.instances.remove(&seq).expect("instance present")
        };
        let Instance {
            mut app, mut nginx, ..
        } = inst;
        let (status, in_time) = app.stop();
        nginx.stop();
        say(
            self.launch.verbose,
            format!(
                "{id}: terminated ({})",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into())
            ),
        );
        Ok(in_time && status.is_some_and(|s| s.success()))
    }

    /// Ids of the instances that are not draining.
    pub fn instance_ids(&self) -> Vec<String> {
        lock(&self.fleet)
            .instances
            .values()
            .filter(|i| i.state != TargetState::Draining)
            .map(|i| i.id.clone())
            .collect()
    }

    /// (id, state, `http://127.0.0.1:PORT` of its nginx) for every instance.
    pub fn targets(&self) -> Vec<(String, TargetState, String)> {
        lock(&self.fleet)
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

    /// `https://127.0.0.1:PORT`: the load balancer.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// `http://127.0.0.1:PORT`: the load balancer's port 80 stand-in (301 to HTTPS).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The substitutions made to the rendered files (the instance nginx lines as made for the
    /// first running instance; every instance gets its own ports).
    pub fn differences(&self) -> Differences {
        let mut d = self.diffs.clone();
        if let Some(i) = lock(&self.fleet).instances.values().next() {
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
        &self.health
    }

    /// Configs, secrets, logs and data.
    pub fn workdir(&self) -> &Path {
        self.work.path()
    }

    /// The shared uploads directory (the EFS stand-in).
    pub fn uploads_dir(&self) -> &Path {
        &self.launch.uploads_host
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
        lock(&self.fleet)
            .instances
            .values_mut()
            .all(|i| i.app.is_running())
    }
}

/// The load balancer's configuration: what the health-check thread and the scaling calls share.
///
/// Two nginx play the ALB: the client-facing one (TLS, port 80 redirect) is never reloaded,
/// so clients keep their connections as they would with an ALB; it proxies to a router that
/// holds the target list and is reloaded on every registration change (nginx OSS cannot change
/// an upstream without a reload, and a reload closes idle client connections, which a client
/// may be reusing at that very moment; the front retries such a closed idle connection itself).
#[derive(Debug, Clone)]
struct Front {
    tls: TlsFiles,
    http_port: u16,
    https_port: u16,
    router_port: u16,
    verbose: bool,
}

impl Front {
    /// The client-facing config: 80 -> 301 to 443, TLS, everything to the router.
    fn alb_conf(&self) -> String {
        let (http, https, router) = (self.http_port, self.https_port, self.router_port);
        format!(
            "# bookstore rehearse: the ALB's listeners (never reloaded).\n\
             # Kept connections to the router: one that a router reload closes while idle is\n\
             # retried, POST included (the router never drops a request it has read).\n\
             upstream bookstore_alb_router {{\n\
             \x20   server 127.0.0.1:{router} max_fails=0;\n\
             \x20   keepalive 64;\n\
             }}\n\n\
             server {{\n\
             \x20   listen 127.0.0.1:{http};\n\
             \x20   location / {{\n\
             \x20       return 301 https://127.0.0.1:{https}$request_uri;\n\
             \x20   }}\n\
             }}\n\n\
             server {{\n\
             \x20   listen 127.0.0.1:{https} ssl http2;\n\
             \x20   ssl_certificate {cert};\n\
             \x20   ssl_certificate_key {key};\n\
             \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
             \x20   ssl_session_cache shared:ALB:10m;\n\
             \x20   client_max_body_size 0;\n\
             \x20   keepalive_requests 100000;\n\
             \x20   location / {{\n\
             \x20       proxy_pass http://bookstore_alb_router;\n\
             \x20       proxy_http_version 1.1;\n\
             \x20       proxy_set_header Connection \"\";\n\
             \x20       proxy_set_header Host $http_host;\n\
             \x20       proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             \x20       proxy_set_header X-Forwarded-Proto https;\n\
             \x20       proxy_set_header X-Forwarded-Port {https};\n\
             \x20       proxy_request_buffering on;\n\
             \x20       proxy_next_upstream error non_idempotent;\n\
             \x20       proxy_next_upstream_tries 3;\n\
             \x20       proxy_connect_timeout 2s;\n\
             \x20       proxy_read_timeout 60s;\n\
             \x20   }}\n\
             }}\n",
            cert = self.tls.cert.display(),
            key = self.tls.key.display(),
        )
    }

    /// The router config: the target list, or 503 while there is none.
    fn router_conf(&self, targets: &[u16], generation: u64) -> String {
        let router = self.router_port;
        let upstream = if targets.is_empty() {
            String::new()
        } else {
            let servers: String = targets
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
                .collect();
            format!("upstream bookstore_alb_targets {{\n{servers}    keepalive 64;\n}}\n\n")
        };
        let route = if targets.is_empty() {
            "        return 503;\n".to_string()
        } else {
            "        proxy_pass http://bookstore_alb_targets;\n".to_string()
        };
        format!(
            "# bookstore rehearse: the ALB's target group (generation {generation}); rewritten on\n\
             # every registration change and reloaded.\n\
             {upstream}\
             server {{\n\
             \x20   listen 127.0.0.1:{router};\n\
             \x20   client_max_body_size 0;\n\
             \x20   location = /__rehearsal/generation {{\n\
             \x20       access_log off;\n\
             \x20       return 200 \"{generation}\";\n\
             \x20   }}\n\
             \x20   location / {{\n\
             {route}\
             \x20       proxy_http_version 1.1;\n\
             \x20       proxy_set_header Connection \"\";\n\
             \x20       proxy_set_header Host $http_host;\n\
             \x20       proxy_set_header X-Forwarded-For $http_x_forwarded_for;\n\
             \x20       proxy_set_header X-Forwarded-Proto $http_x_forwarded_proto;\n\
             \x20       proxy_set_header X-Forwarded-Port $http_x_forwarded_port;\n\
             \x20       proxy_next_upstream error timeout;\n\
             \x20       proxy_next_upstream_tries 3;\n\
             \x20       proxy_connect_timeout 2s;\n\
             \x20       proxy_read_timeout 60s;\n\
             \x20   }}\n\
             }}\n"
        )
    }

    /// Recomputes which targets get traffic and reloads the front when that changed. Returns
    /// the generation to wait for, if a reload happened.
    fn reconcile(&self, fleet: &mut Fleet) -> Result<Option<u64>> {
        let live: Vec<&Instance> = fleet
            .instances
            .values()
            .filter(|i| i.state != TargetState::Draining)
            .collect();
        let mut routed: Vec<u16> = live
            .iter()
            .filter(|i| i.state == TargetState::Healthy)
            .map(|i| i.nginx_port)
            .collect();
        if routed.is_empty() {
            // The ALB routes to every target when none is healthy (fail open).
            routed = live
                .iter()
                .filter(|i| i.state == TargetState::Unhealthy)
                .map(|i| i.nginx_port)
                .collect();
        }
        if routed == fleet.routed {
            return Ok(None);
        }
        fleet.generation += 1;
        let conf = self.router_conf(&routed, fleet.generation);
        fleet
            .router
            .as_ref()
            .expect("the router runs")
            .reload(&conf)?;
        let names: Vec<&str> = fleet
            .instances
            .values()
            .filter(|i| routed.contains(&i.nginx_port))
            .map(|i| i.id.as_str())
            .collect();
        say(
            self.verbose,
            format!("load balancer: routing to [{}]", names.join(", ")),
        );
        fleet.routed = routed;
        Ok(Some(fleet.generation))
    }
}

impl Launch {
    /// The environment of instance `id`: the rendered compose file's app service, with the
    /// host values the boot script writes to runtime.env.
    fn env(&self, id: &str, listen_port: u16, diffs: &mut Differences) -> Result<AppEnv> {
        let mut shell = self.stack_env.clone();
        shell.insert("instance_id".into(), id.to_string());
        let host_env = runtime_env(&self.boot, &shell)?;
        let work = WorkDir {
            path: self.work.clone(),
            _temp: None,
        };
        AppEnv::from_compose(
            &self.compose,
            &host_env,
            &work,
            self.db_port,
            listen_port,
            diffs,
        )
    }

    fn start_instance(&self, id: &str) -> Result<Instance> {
        let dir = self.work.join("instances").join(id);
        std::fs::create_dir_all(&dir)?;
        let app_port = free_port()?;
        let env = self.env(id, app_port, &mut Differences::default())?;
        let mut app = env.spawn(&self.exe, &dir, &format!("{id} shop"), &dir.join("app.log"))?;
        wait_ready(app_port, "/healthz", &mut app, Duration::from_secs(120))?;
        let nginx_port = free_port()?;
        let rw = Rewrites {
            ports: [(80, nginx_port)].into_iter().collect(),
            tls: None,
            redirect: None,
            upstream: Some(format!("127.0.0.1:{app_port}")),
            real_ip_from: Some("127.0.0.1".into()),
            paths: self.nginx_mounts.clone(),
            legacy_http2: nginx::needs_legacy_http2(),
        };
        let prefix = dir.join("nginx");
        let (conf, changes) = nginx::rewrite_listing(&self.site, &rw, &prefix.join("logs"))?;
        let nginx = Nginx::start(&format!("{id} nginx"), &prefix, &conf, "1", nginx_port)?;
        Ok(Instance {
            id: id.to_string(),
            app_port,
            nginx_port,
            nginx_changes: changes,
            state: TargetState::Initial,
            ok_streak: 0,
            fail_streak: 0,
            app,
            nginx,
        })
    }
}

impl Drop for Rehearsal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
        if let Some(mut alb) = self.alb.take() {
            alb.stop();
        }
        let mut f = lock(&self.fleet);
        if let Some(mut router) = f.router.take() {
            router.stop();
        }
        // SIGTERM to every shop at once, so that they drain in parallel.
        for i in f.instances.values() {
            let _ = i.app.signal("TERM");
        }
        let instances = std::mem::take(&mut f.instances);
        drop(f);
        for (_, mut i) in instances {
            i.app.stop();
            i.nginx.stop();
        }
    }
}

/// Runs until Ctrl-C, SIGTERM or `limit`, reading `+` / `-` lines from stdin to scale.
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
                line = rx.recv(), if stdin_open => match line.as_deref() {
                    Some("+") => match r.add_instance() {
                        Ok(id) => anstream::println!("{id} launched; it takes traffic after {} health checks", r.health.healthy),
                        Err(e) => anstream::eprintln!("cannot add an instance: {e:#}"),
                    },
                    Some("-") => match r.remove_instance() {
                        Ok(id) => anstream::println!("{id} drained and terminated"),
                        Err(e) => anstream::eprintln!("cannot remove an instance: {e:#}"),
                    },
                    None => {
                        stdin_open = false;
                        continue;
                    }
                    Some("") => {}
                    Some(other) => anstream::eprintln!("type `+` or `-` (not {other:?})"),
                },
            }
            let states: Vec<String> = r.targets().iter().map(|(id, s, _)| format!("{id}: {s:?}")).collect();
            anstream::println!("targets: {}", states.join(", "));
        }
        Ok::<(), anyhow::Error>(())
    })
}

//! `bookstore rehearse objective1|objective2`: runs what `gen` renders on this machine, on
//! loopback, before anyone pays for AWS. The shop instances are this binary's `serve`,
//! configured from the rendered compose file and user-data; nginx runs the rendered site files;
//! MariaDB stands in for MySQL/RDS and a directory for EFS. Every difference from AWS is a
//! substitution listed in [`Differences`] and printed.

pub mod autoscale;
mod compose;
pub mod mariadb;
pub mod nginx;
pub mod objective1;
pub mod objective2;
pub mod objective3;
pub mod rendered;
pub mod supervise;

use crate::spec::Spec;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;
use supervise::{find_tool, random_hex, run_quick, Supervised};

/// Which deployment to rehearse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// One VM: MariaDB, one shop instance, nginx with TLS.
    Objective1,
    /// Auto-scaling VMs: MariaDB (RDS), a shared directory (EFS), N instances each behind its
    /// own nginx, and a TLS load balancer (the ALB) in front.
    Objective2,
    /// Kubernetes: the rendered Deployment's pods as processes, its Service and HTTPRoute (or
    /// Ingress) as a loopback router, scaled by the rendered HorizontalPodAutoscaler.
    Objective3,
}

/// A rehearsal that `+`/`-` on the terminal can scale.
pub trait HandScaled {
    /// Who scales.
    fn mode(&self) -> Scaling;
    /// The desired capacity (instances or replicas).
    fn desired(&self) -> u32;
    /// Scale by hand to `desired`; what happened, in words.
    fn set_desired_by_hand(&self, desired: u32, typed: &str) -> Result<String>;
}

/// Flags of `bookstore rehearse`.
#[derive(Debug, Clone, clap::Args)]
pub struct RehearseArgs {
    /// Which objective's rendered files to run.
    pub objective: Which,
    /// The spec (default: ./bookstore.yaml, else the embedded default).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Objective 2: instances to start with (default: the spec's desired capacity); objective
    /// 3: pods to start with (default: the Deployment's replicas, else 1).
    #[arg(long, value_name = "N")]
    pub instances: Option<usize>,
    /// Stop after this long, such as 90s or 5m (default: run until Ctrl-C).
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Demo books to load into the empty database.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub seed_books: u32,
    /// Keep the configs, secrets, logs and data here (default: a temp dir, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Objective 1: a self-signed certificate instead of the rendered certbot flow against a
    /// local ACME server (pebble).
    #[arg(long)]
    pub self_signed: bool,
    /// Objective 1: where the domain's A record points at start, a loopback address (127.0.0.1:
    /// this rehearsal; say 127.0.0.2 to see what the VM does while DNS points elsewhere).
    #[arg(long, value_name = "ADDR")]
    pub dns_points_at: Option<std::net::Ipv4Addr>,
    /// Rehearse the files already rendered in DIR (e.g. out/objective2, hand edits included)
    /// instead of rendering the spec.
    #[arg(long, value_name = "DIR")]
    pub rendered: Option<PathBuf>,
    /// Platform seconds per real second, e.g. 12: one platform minute takes 5 s. Every period,
    /// window, warm-up, delay and grace period of the platform is divided by it.
    #[arg(long, value_name = "N", default_value = "1")]
    pub time_scale: autoscale::TimeScale,
    /// Each instance's CPU capacity in CPUs, e.g. 0.25 (enforced with a cgroup quota where the
    /// machine allows it, measured only otherwise) [default: objective 2: 0.25; objective 3:
    /// the rendered CPU limit, else the CPU request].
    #[arg(long, value_name = "CORES")]
    pub instance_cpu: Option<f64>,
    /// Scale by hand (`+`/`-` on stdin, each step logged as `manual`) instead of by the
    /// rendered scaling policies.
    #[arg(long)]
    pub manual: bool,
    /// Port of the autoscaler's loopback status server (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub status_port: u16,
}

/// Who changes the capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// A person (or a test) through the rehearsal's API or `+`/`-`; logged as `manual`.
    Manual,
    /// The autoscaler, by the rendered policies.
    Autoscaler,
}

/// Parses `90`, `90s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s or 5m"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use ms, s, m or h")),
    })
}

/// One substitution the rehearsal makes to a rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What is substituted (a variable, a directive).
    pub what: String,
    /// As rendered, for AWS.
    pub on_aws: String,
    /// In the rehearsal.
    pub here: String,
}

/// The substitutions, each listed once.
#[derive(Debug, Clone, Default)]
pub struct Differences(pub Vec<Difference>);

impl Differences {
    /// Adds a substitution unless the same `what` and `on_aws` is already listed.
    pub fn add(
        &mut self,
        what: impl Into<String>,
        on_aws: impl Into<String>,
        here: impl Into<String>,
    ) {
        let what = what.into();
        let on_aws = on_aws.into();
        if !self.0.iter().any(|d| d.what == what && d.on_aws == on_aws) {
            self.0.push(Difference {
                what,
                on_aws,
                here: here.into(),
            });
        }
    }

    /// The printed list: "differences from AWS: ...".
    pub fn render(&self) -> String {
        self.render_from("AWS")
    }

    /// The printed list: "differences from `platform`: ...".
    pub fn render_from(&self, platform: &str) -> String {
        let mut s = format!("differences from {platform} (everything else runs as rendered):\n");
        for d in &self.0 {
            s.push_str(&format!("  - {}: {} -> {}\n", d.what, d.on_aws, d.here));
        }
        s
    }
}

/// Settings of a rehearsal run from a library or a test.
#[derive(Debug, Clone)]
pub struct Options {
    /// The spec whose rendered files are rehearsed.
    pub spec: Spec,
    /// A binary with the `serve` subcommand (this one, or `bookstore` under test).
    pub exe: PathBuf,
    /// Work directory to keep; `None`: a temp dir removed on drop.
    pub workdir: Option<PathBuf>,
    /// Objective 2: instances to start with (0: the rendered `DesiredCapacity`).
    pub instances: usize,
    /// Demo books to seed.
    pub seed_books: u32,
    /// The longest real time between two health checks of an instance by the load balancer
    /// stand-in (the rendered interval divided by the time scale, when that is shorter).
    pub health_interval: Duration,
    /// Print progress lines on stderr.
    pub verbose: bool,
    /// Rehearse the files rendered in this directory instead of rendering the spec.
    pub rendered: Option<PathBuf>,
    /// Platform seconds per real second.
    pub time_scale: autoscale::TimeScale,
    /// Each instance's CPU capacity (`None`: the objective's default).
    pub instance_cpu: Option<f64>,
    /// Who scales (the library default: [`Scaling::Manual`]; the CLI's: the autoscaler).
    pub scaling: Scaling,
    /// Port of the autoscaler's status server (0: any free port).
    pub status_port: u16,
    /// Objective 1: where the certificate comes from.
    pub certificates: objective1::Certificates,
}

impl Options {
    /// Defaults: the current executable, a temp dir, the rendered desired capacity, 60 books,
    /// health checks at least every second, real time, manual scaling.
    pub fn new(spec: Spec) -> Result<Options> {
        Ok(Options {
            spec,
            exe: std::env::current_exe().context("cannot find the running executable")?,
            workdir: None,
            instances: 0,
            seed_books: 60,
            health_interval: Duration::from_secs(1),
            verbose: false,
            rendered: None,
            time_scale: autoscale::TimeScale::REAL,
            instance_cpu: None,
            scaling: Scaling::Manual,
            status_port: 0,
            certificates: objective1::Certificates::SelfSigned,
        })
    }
}

/// The rehearsal's directory: kept when the user named it, else removed on drop.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl WorkDir {
    fn new(keep: Option<&Path>) -> Result<WorkDir> {
        match keep {
            Some(p) => {
                std::fs::create_dir_all(p)
                    .with_context(|| format!("cannot create {}", p.display()))?;
                Ok(WorkDir {
                    path: std::fs::canonicalize(p)?,
                    _temp: None,
                })
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("bookstore-rehearsal-")
                    .tempdir()?;
                Ok(WorkDir {
                    path: t.path().to_path_buf(),
                    _temp: Some(t),
                })
            }
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a host path of the VM lives in the rehearsal: `<work>/host/<path>`.
    pub fn host(&self, vm_path: &str) -> PathBuf {
        self.path.join("host").join(vm_path.trim_start_matches('/'))
    }
}

/// Fails with one clear message when a tool the rehearsal needs is missing.
pub fn check_prerequisites() -> Result<()> {
    let needed = [
        ("nginx", "nginx"),
        ("mariadbd", "mariadb-server"),
        ("mariadb-install-db", "mariadb-server"),
        ("mariadb", "mariadb-client"),
        ("openssl", "openssl"),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|(tool, _)| find_tool(tool).is_none())
        .map(|(tool, pkg)| format!("{tool} (Debian/Ubuntu package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the rehearsal runs nginx and MariaDB on this machine, and these are missing: {}; \
             install them, e.g. `sudo apt-get install nginx mariadb-server openssl` (their system \
             services may stay stopped: the rehearsal starts its own on free loopback ports)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Writes every top-level compose secret as a file under the work dir's host tree, with a
/// generated value (on AWS: fetched from SSM / Secrets Manager). Returns name -> value.
fn generate_secrets(
    compose_text: &str,
    work: &WorkDir,
    diffs: &mut Differences,
) -> Result<HashMap<String, String>> {
    use std::os::unix::fs::PermissionsExt;
    let mut values = HashMap::new();
    for (name, file) in compose::secret_files(compose_text)? {
        let local = work.host(&file);
        let value = match std::fs::read_to_string(&local) {
            Ok(v) => v,
            Err(_) => {
                std::fs::create_dir_all(local.parent().expect("secret file has a parent"))?;
                let v = random_hex(20)?;
                std::fs::write(&local, &v)?;
                std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o600))?;
                v
            }
        };
        diffs.add(
            format!("secret {name}"),
            format!("{file}, fetched from SSM/Secrets Manager"),
            format!("{} (generated)", local.display()),
        );
        values.insert(name, value);
    }
    Ok(values)
}

/// Replaces `host:port` in a `mysql://` URL.
fn with_db_address(url: &str, addr: &str) -> Result<String> {
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| anyhow!("{url} is not a mysql:// URL"))?;
    let (creds, after) = match rest.rsplit_once('@') {
        Some((c, a)) => (format!("{c}@"), a),
        None => (String::new(), rest),
    };
    let path = after.find('/').map(|i| &after[i..]).unwrap_or("");
    Ok(format!("mysql://{creds}{addr}{path}"))
}

/// (user, database) of a `mysql://user[:pw]@host:port/db` URL.
fn db_user_and_name(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("mysql://")
        .ok_or_else(|| anyhow!("{url} is not a mysql:// URL"))?;
    let (creds, after) = rest
        .rsplit_once('@')
        .ok_or_else(|| anyhow!("the database URL names no user"))?;
    let user = creds.split(':').next().unwrap_or("").to_string();
    let db = after
        .split_once('/')
        .map(|x| x.1)
        .unwrap_or("")
        .split('?')
        .next()
        .unwrap_or("")
        .to_string();
    if user.is_empty() || db.is_empty() {
        bail!("the database URL must name a user and a database");
    }
    Ok((user, db))
}

/// What one app instance gets, derived from the rendered compose service `app`.
#[derive(Debug, Clone)]
pub struct AppEnv {
    /// The variables, after substitution.
    pub vars: BTreeMap<String, String>,
}

impl AppEnv {
    /// Reads the rendered compose file's `app` service and substitutes only what must differ:
    /// the database address, `/run/secrets/*` and bind-mounted paths, the listen address and the
    /// trusted proxy. `host_env` supplies values the compose file takes from the host (empty
    /// `KEY:` entries and `${VAR}` interpolation).
    fn from_compose(
        compose_text: &str,
        host_env: &HashMap<String, String>,
        work: &WorkDir,
        db_port: u16,
        listen_port: u16,
        diffs: &mut Differences,
    ) -> Result<AppEnv> {
        let svc = compose::service(compose_text, "app")?;
        let files: HashMap<String, String> =
            compose::secret_files(compose_text)?.into_iter().collect();
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for s in &svc.secrets {
            let file = files.get(s).ok_or_else(|| {
                anyhow!("compose service app uses secret {s}, which is not declared")
            })?;
            mounts.push((format!("/run/secrets/{s}"), work.host(file)));
        }
        for (host, container) in &svc.volumes {
            let local = work.host(host);
            std::fs::create_dir_all(&local)?;
            mounts.push((container.clone(), local));
        }
        let mut vars = BTreeMap::new();
        for (k, v) in &svc.environment {
            // Compose interpolates its own values; values taken from the host stay as they are.
            let value = match v {
                Some(v) => compose::interpolate(v, host_env)?,
                None => host_env.get(k).cloned().ok_or_else(|| {
                    anyhow!("the rendered compose file takes {k} from the host environment, and nothing rendered sets it")
                })?,
            };
            let new = match k.as_str() {
                "BOOKSTORE_DATABASE_URL" => {
                    let local = with_db_address(&value, &format!("127.0.0.1:{db_port}"))?;
                    diffs.add(k, &value, format!("{local} (MariaDB on loopback)"));
                    local
                }
                "BOOKSTORE_LISTEN" => {
                    let local = format!("127.0.0.1:{listen_port}");
                    diffs.add(k, &value, "127.0.0.1:<free port>");
                    local
                }
                "BOOKSTORE_TRUSTED_PROXIES" => {
                    diffs.add(k, &value, "127.0.0.1/32 (nginx connects over loopback)");
                    "127.0.0.1/32".to_string()
                }
                "BOOKSTORE_DATABASE_TLS" | "BOOKSTORE_DATABASE_CA_FILE" => {
                    diffs.add(
                        k,
                        &value,
                        "not set: the MariaDB stand-in speaks plaintext (the shop's TLS is tested against a TLS MariaDB in its own tests)",
                    );
                    continue;
                }
                _ => match mounts
                    .iter()
                    .find(|(c, _)| value == *c || value.starts_with(&format!("{c}/")))
                {
                    Some((c, local)) => {
                        let local = format!("{}{}", local.display(), &value[c.len()..]);
                        if !k.ends_with("_FILE") {
                            diffs.add(k, &value, &local);
                        }
                        local
                    }
                    None => value,
                },
            };
            vars.insert(k.clone(), new);
        }
        if !vars.contains_key("BOOKSTORE_DATABASE_URL") {
            bail!("the rendered compose file's app service sets no BOOKSTORE_DATABASE_URL");
        }
        Ok(AppEnv { vars })
    }

    /// The database password the instance will use (the `_FILE` secret, or the URL's).
    fn database_password(&self) -> Result<String> {
        if let Some(p) = self.vars.get("BOOKSTORE_DATABASE_PASSWORD") {
            return Ok(p.clone());
        }
        if let Some(f) = self.vars.get("BOOKSTORE_DATABASE_PASSWORD_FILE") {
            return Ok(std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {f}"))?
                .trim_end()
                .to_string());
        }
        let url = &self.vars["BOOKSTORE_DATABASE_URL"];
        let creds = url
            .trim_start_matches("mysql://")
            .rsplit_once('@')
            .map(|x| x.0)
            .unwrap_or("");
        Ok(creds
            .split_once(':')
            .map(|x| x.1.to_string())
            .unwrap_or_default())
    }

    /// Drain time the instance was given.
    fn drain(&self) -> Duration {
        Duration::from_secs(
            self.vars
                .get("BOOKSTORE_DRAIN_SECONDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(20),
        )
    }

    fn command(&self, exe: &Path, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .args(args)
            .env_clear()
            .envs(&self.vars)
            .current_dir(cwd);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd
    }

    /// Starts `exe serve` with exactly these variables; stdout/stderr go to `log`.
    fn spawn(&self, exe: &Path, cwd: &Path, name: &str, log: &Path) -> Result<Supervised> {
        self.spawn_with(exe, cwd, name, log, &|_| {})
    }

    /// [`AppEnv::spawn`], with `prepare` applied to the command first (e.g. a CPU group).
    fn spawn_with(
        &self,
        exe: &Path,
        cwd: &Path,
        name: &str,
        log: &Path,
        prepare: &dyn Fn(&mut Command),
    ) -> Result<Supervised> {
        let mut cmd = self.command(exe, cwd, &[]);
        prepare(&mut cmd);
        Supervised::spawn(
            name,
            cmd,
            log,
            "TERM",
            self.drain() + Duration::from_secs(10),
        )
    }

    /// Runs `exe serve seed --books N` (schema, delivery providers, admin, demo books).
    fn seed(&self, exe: &Path, cwd: &Path, books: u32) -> Result<()> {
        run_quick(
            &mut self.command(exe, cwd, &["seed", "--books", &books.to_string()]),
            Duration::from_secs(300),
        )
        .map(|_| ())
        .context("seeding the database failed")
    }
}

/// Creates the app's database and user in MariaDB as the rendered configuration names them.
fn provision_database(db: &mariadb::LocalMariaDb, env: &AppEnv) -> Result<(String, String)> {
    let (user, name) = db_user_and_name(&env.vars["BOOKSTORE_DATABASE_URL"])?;
    db.provision(&name, &user, &env.database_password()?)?;
    Ok((user, name))
}

fn say(verbose: bool, msg: impl AsRef<str>) {
    if verbose {
        anstream::eprintln!("rehearse: {}", msg.as_ref());
    }
}

/// Waits for Ctrl-C / SIGTERM, or `limit` when given.
fn wait_for_stop(limit: Option<Duration>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let sleep = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = sleep => {}
        }
        Ok::<(), anyhow::Error>(())
    })
}

/// `bookstore rehearse ...`: starts the rehearsal, prints the URL and the differences from
/// AWS, runs until Ctrl-C (or `--duration`), then stops everything.
pub fn run(args: &RehearseArgs) -> Result<ExitCode, crate::cli::Failure> {
    use crate::cli::Failure;
    let (spec, source) = crate::cli::load_spec(args.spec.as_deref())?;
    if let Some(c) = args.instance_cpu {
        if !c.is_finite() || !(0.01..=1024.0).contains(&c) {
            return Err(Failure::BadInput(anyhow!(
                "--instance-cpu {c}: give each instance's CPU capacity in CPUs, between 0.01 and 1024 (e.g. 0.25)"
            )));
        }
    }
    check_prerequisites()?;
    anstream::eprintln!("spec: {source}");
    let mut opts = Options::new(spec)?;
    opts.workdir = args.workdir.clone();
    opts.seed_books = args.seed_books;
    opts.verbose = true;
    opts.rendered = args.rendered.clone();
    opts.time_scale = args.time_scale;
    opts.instance_cpu = args.instance_cpu;
    opts.status_port = args.status_port;
    opts.scaling = if args.manual {
        Scaling::Manual
    } else {
        Scaling::Autoscaler
    };
    if let Some(n) = args.instances {
        opts.instances = n.max(1);
    }
    if args.objective != Which::Objective1 && (args.self_signed || args.dns_points_at.is_some()) {
        return Err(crate::cli::Failure::BadInput(anyhow!(
            "--self-signed and --dns-points-at are for objective 1 (objective 2's certificate is the load balancer's)"
        )));
    }
    if let Some(addr) = args.dns_points_at.filter(|a| !a.is_loopback()) {
        return Err(crate::cli::Failure::BadInput(anyhow!(
            "--dns-points-at {addr}: a rehearsal sends traffic only to this machine; give a loopback \
             address (127.0.0.1 is the rehearsal, 127.0.0.2 \"elsewhere\")"
        )));
    }
    opts.certificates = if args.self_signed {
        objective1::Certificates::SelfSigned
    } else {
        objective1::Certificates::Acme(objective1::AcmeOptions {
            dns_points_at: args.dns_points_at.unwrap_or(std::net::Ipv4Addr::LOCALHOST),
            retry_every: None,
        })
    };
    // A rendered file the rehearsal cannot use is bad input (exit 2).
    let sorted = |e: anyhow::Error| {
        if rendered::is_bad_rendered(&e) {
            Failure::BadInput(e)
        } else {
            Failure::Failed(e)
        }
    };
    let stop_hint = match args.duration {
        Some(d) => format!("stops after {d:?} or on Ctrl-C"),
        None => "Ctrl-C stops everything".to_string(),
    };
    match args.objective {
        Which::Objective1 => objective1::run(&opts, args.duration)?,
        Which::Objective2 => {
            let r = objective2::Rehearsal::start(&opts).map_err(sorted)?;
            anstream::println!("{}", r.differences().render());
            anstream::println!(
                "the shop (objective 2, {} instance(s) behind the load balancer) runs at {}  (self-signed certificate; {stop_hint})",
                r.instance_ids().len(),
                r.https_url()
            );
            anstream::println!("  http (redirects): {}", r.http_url());
            anstream::println!("autoscaler: {}", r.status_url());
            anstream::println!(
                "  decisions: {} (also GET {}decisions, {}status)",
                r.decisions_path().display(),
                r.status_url(),
                r.status_url()
            );
            anstream::println!("  configs, secrets and logs: {}", r.workdir().display());
            match r.mode() {
                Scaling::Autoscaler => anstream::println!(
                    "  the group scales by its rendered policies; put load on it (bookstore loadtest --url {} --insecure ...) and watch",
                    r.https_url()
                ),
                Scaling::Manual => anstream::println!(
                    "  scale it by hand: type `+` Enter to add an instance, `-` Enter to remove one (it drains first)"
                ),
            }
            objective2::interactive(&r, args.duration)?;
            anstream::eprintln!("rehearse: stopping (every instance drains first)");
            drop(r);
        }
        Which::Objective3 => {
            let r = objective3::Rehearsal::start(&opts).map_err(sorted)?;
            anstream::println!("{}", r.differences().render_from("a real cluster"));
            anstream::println!(
                "the shop (objective 3, {} pod(s) of Deployment {} behind {}) runs at {}  (self-signed certificate; {stop_hint})",
                r.replicas(),
                r.workload().name,
                r.route().what,
                r.https_url()
            );
            anstream::println!("  http: {}", r.http_url());
            anstream::println!("autoscaler: {}", r.status_url());
            anstream::println!(
                "  decisions: {} (also GET {}decisions, {}status)",
                r.decisions_path().display(),
                r.status_url(),
                r.status_url()
            );
            anstream::println!("  configs, secrets and logs: {}", r.workdir().display());
            match r.mode() {
                Scaling::Autoscaler => anstream::println!(
                    "  the HPA scales the Deployment; put load on it (bookstore loadtest --url {} --insecure ...) and watch",
                    r.https_url()
                ),
                Scaling::Manual => anstream::println!(
                    "  scale it by hand: type `+` Enter to add a pod, `-` Enter to remove one (it is terminated as the kubelet does)"
                ),
            }
            objective2::interactive(&r, args.duration)?;
            anstream::eprintln!(
                "rehearse: stopping (every pod is terminated: preStop, SIGTERM, drain)"
            );
            drop(r);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_db_address("mysql://bookstore@db:3306/bookstore", "127.0.0.1:5").unwrap(),
            "mysql://bookstore@127.0.0.1:5/bookstore"
        );
        assert_eq!(
            db_user_and_name("mysql://u:p@h:1/shop?x=1").unwrap(),
            ("u".to_string(), "shop".to_string())
        );
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}

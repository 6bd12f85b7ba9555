//! Objective 1 on loopback: MariaDB (the compose file's MySQL service), one shop instance
//! configured as the rendered `docker-compose.yml` configures the app, and nginx running the
//! rendered sites. The certificate comes the VM's way ([`Certificates::Acme`]: the rendered
//! bootstrap site, obtain script, deploy hook and renewal against a local ACME server), or is a
//! self-signed shortcut ([`Certificates::SelfSigned`]).

mod acme_flow;
mod acme_server;
mod certificate;
mod data_volume;
mod interactive;
mod stand_ins;
mod user_data;

pub use certificate::UnitRun;
pub use data_volume::Boot;
pub use interactive::run;

use super::mariadb::LocalMariaDb;
use super::nginx::{self, Nginx, Rewrites};
use super::supervise::{http_get, wait_listening, HeldPort, Supervised};
use super::{
    compose, generate_secrets, provision_database, say, AppEnv, Differences, Options, WorkDir,
};
use crate::blueprints::{Objective, Source};
use crate::spec::Spec;
use acme_server::LocalAcme;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where objective 1's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificates {
    /// A self-signed certificate for the domain and 127.0.0.1, made by the rehearsal: quick, but
    /// the rendered certificate flow does not run.
    SelfSigned,
    /// The rendered flow against pebble, Let's Encrypt's ACME test server.
    Acme(AcmeOptions),
}

/// Settings of the certificate flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeOptions {
    /// Where the domain's A record points (what the DNS answers pebble and the obtain script):
    /// 127.0.0.1 is this rehearsal; another loopback address is "DNS points elsewhere".
    pub dns_points_at: Ipv4Addr,
    /// How often the retry timer runs the obtain script; `None`: as rendered (every 5 minutes).
    pub retry_every: Option<Duration>,
}

impl Default for AcmeOptions {
    fn default() -> Self {
        AcmeOptions {
            dns_points_at: Ipv4Addr::LOCALHOST,
            retry_every: None,
        }
    }
}

/// The rendered files of one objective, by path.
pub(crate) fn rendered(opts: &Options, objective: Objective) -> Result<HashMap<String, String>> {
    rendered_from(&opts.spec, objective)
}

fn rendered_from(spec: &Spec, objective: Objective) -> Result<HashMap<String, String>> {
    let r = crate::render::render(
        spec,
        &Source::Embedded,
        objective,
        &format!("out/{}", objective.name()),
    )
    .context("rendering failed")?;
    Ok(r.files.into_iter().map(|f| (f.path, f.content)).collect())
}

pub(crate) fn file<'a>(files: &'a HashMap<String, String>, path: &str) -> Result<&'a str> {
    files
        .get(path)
        .map(String::as_str)
        .ok_or_else(|| anyhow!("the blueprints render no {path}"))
}

/// Waits until `GET path` on `127.0.0.1:port` answers 200.
pub(crate) fn wait_ready(
    port: u16,
    path: &str,
    proc: &mut Supervised,
    limit: Duration,
) -> Result<()> {
    wait_listening(port, proc, limit)?;
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200, _)) = http_get(port, path, Duration::from_secs(2)) {
            return Ok(());
        }
        if !proc.is_running() || Instant::now() >= deadline {
            bail!(
                "the shop on port {port} did not become ready; the end of {}:\n{}",
                proc.log().display(),
                proc.log_tail(15)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running objective 1 rehearsal; dropping it stops the certificate timer, nginx, the shop
/// (drained), the ACME server and MariaDB.
#[derive(Debug)]
pub struct Rehearsal {
    boot: Boot,
    acme: Option<acme_flow::Acme>,
    nginx: Nginx,
    app: Supervised,
    db: LocalMariaDb,
    diffs: Differences,
    env: AppEnv,
    domain: String,
    http_port: u16,
    https_port: u16,
    app_port: u16,
    database: String,
    admin_email: String,
    admin_password_file: PathBuf,
    /// The HTTP and HTTPS ports' claims: the bootstrap site leaves the HTTPS port unbound until
    /// the obtain script's reload, for seconds or (DNS not yet pointing here) for good.
    _ports: [HeldPort; 2],
    work: WorkDir,
}

impl Rehearsal {
    /// Renders objective 1 from the spec and starts it. With [`Certificates::Acme`] the first
    /// run of the obtain script has finished when this returns (successful or not: see
    /// [`Rehearsal::tls_enabled`]); the retry timer goes on in the background.
    pub fn start(opts: &Options) -> Result<Rehearsal> {
        let work = WorkDir::new(opts.workdir.as_deref())?;
        let mut diffs = Differences::default();
        let domain = opts.spec.domain.name.clone();
        // nginx binds these only once the shop is up; held until then, claimed for good.
        let mut held = [HeldPort::new()?, HeldPort::new()?];
        let (http_port, https_port) = (held[0].port(), held[1].port());
        // The ACME server comes first: its URL is rendered into the certbot scripts.
        let (spec, server) = match &opts.certificates {
            Certificates::SelfSigned => (opts.spec.clone(), None),
            Certificates::Acme(_) => {
                acme_flow::check_prerequisites()?;
                say(opts.verbose, "starting pebble and pebble-challtestsrv");
                let server = LocalAcme::start(&work.path().join("acme"), http_port)?;
                let mut spec = opts.spec.clone();
                acme_flow::differences(&spec, &server, http_port, &mut diffs);
                spec.domain.acme_server = Some(server.directory_url());
                spec.domain.letsencrypt_staging = false;
                (spec, Some(server))
            }
        };
        let files = rendered_from(&spec, Objective::Objective1)?;
        let compose_text = file(&files, "docker-compose.yml")?;
        let user_data = file(&files, "user-data.yaml")?;
        let data_mount = data_volume::mount_point(&user_data::UserData::parse(user_data)?);
        let boot = data_volume::boot(&work, user_data, data_mount.as_deref(), &mut diffs)?;
        say(
            opts.verbose,
            match boot {
                Boot::First => "the VM's first boot (a new work directory)",
                Boot::Kept => "the same VM as the last run (the user-data is unchanged)",
                Boot::Replaced => "a replaced VM (the user-data changed): a new root volume",
            },
        );

        diffs.add(
            "operating system",
            format!(
                "the AMI's own packages, from its archive (user-data.yaml `packages:` {})",
                compose::cloud_config_packages(user_data)?.join(", ")
            ),
            format!(
                "this machine's nginx {} and certbot, no Docker (the packages are not installed)",
                nginx::local_version()
                    .map(|(a, b, c)| format!("{a}.{b}.{c}"))
                    .unwrap_or_else(|| "(version unknown)".into())
            ),
        );
        say(
            opts.verbose,
            "starting MariaDB (the compose file's MySQL service)",
        );
        let mysql_dir = data_volume::mysql_dir(compose_text, &work)?;
        let db = LocalMariaDb::start_in(&mysql_dir)?;
        diffs.add(
            "database",
            "MySQL 8.4 container `db` (compose network only)",
            format!(
                "MariaDB on 127.0.0.1:{} (data in {}/data)",
                db.port(),
                mysql_dir.display()
            ),
        );
        generate_secrets(compose_text, &work, &mut diffs)?;

        // The shop binds it only after the database is provisioned and seeded; held until then.
        let mut app_port_held = HeldPort::new()?;
        let app_port = app_port_held.port();
        // The compose file interpolates from /opt/bookstore/.env, which bookstore-setup writes
        // on the VM (the EC2 instance ID); the rehearsal has no .env, so compose defaults apply.
        let host_env = HashMap::new();
        let env = AppEnv::from_compose(
            compose_text,
            &host_env,
            &work,
            db.port(),
            app_port,
            &mut diffs,
        )?;
        diffs.add(
            "BOOKSTORE_INSTANCE_ID",
            "the EC2 instance ID, from the .env bookstore-setup writes",
            "the compose file's default (no .env)",
        );
        diffs.add(
            "scripts/upgrade.sh",
            "bookstore-upgrade: runs the image SSM parameter names (app.image:app.tag), back on the previous one if it is not ready",
            "not run: no image, the shop is this binary (a new app.tag changes nothing here but that parameter)",
        );
        diffs.add(
            "container",
            "the app image, user 10001, no capabilities",
            format!("`{} serve` as a child process", opts.exe.display()),
        );
        let (user, database) = provision_database(&db, &env)?;
        check_db_service(compose_text, &user, &database)?;

        say(
            opts.verbose,
            format!("seeding {} demo books", opts.seed_books),
        );
        env.seed(&opts.exe, work.path(), opts.seed_books)?;
        std::fs::create_dir_all(work.path().join("logs"))?;
        app_port_held.release();
        let mut app = env.spawn(
            &opts.exe,
            work.path(),
            "the shop",
            &work.path().join("logs/app.log"),
        )?;
        wait_ready(app_port, "/readyz", &mut app, Duration::from_secs(120))?;
        say(
            opts.verbose,
            format!("the shop is ready on 127.0.0.1:{app_port}"),
        );

        std::fs::create_dir_all(work.host("/var/www/letsencrypt"))?;
        let ports = Ports {
            http: http_port,
            https: https_port,
            app: app_port,
        };
        held.iter_mut().for_each(HeldPort::release);
        let (nginx, acme) = match (&opts.certificates, server) {
            (Certificates::Acme(a), Some(server)) => {
                let (nginx, acme) =
                    acme_flow::start(opts, a, &files, &work, &domain, ports, server, &mut diffs)?;
                (nginx, Some(acme))
            }
            _ => (
                start_self_signed(opts, &files, &work, &domain, ports, &mut diffs)?,
                None,
            ),
        };

        let admin_password_file = env
            .vars
            .get("BOOKSTORE_ADMIN_PASSWORD_FILE")
            .map(PathBuf::from)
            .unwrap_or_default();
        Ok(Rehearsal {
            boot,
            acme,
            nginx,
            app,
            db,
            diffs,
            admin_email: env
                .vars
                .get("BOOKSTORE_ADMIN_EMAIL")
                .cloned()
                .unwrap_or_default(),
            env,
            domain,
            http_port,
            https_port,
            app_port,
            database,
            admin_password_file,
            _ports: held,
            work,
        })
    }

    /// `https://127.0.0.1:PORT`: the shop through the rendered nginx (once TLS is on). A client
    /// that verifies the certificate uses [`Rehearsal::domain_url`] instead.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }

    /// `https://DOMAIN:PORT`, the name the certificate is for; only this machine knows it
    /// resolves to 127.0.0.1 (curl `--resolve`, `bookstore loadtest --resolve`).
    pub fn domain_url(&self) -> String {
        format!("https://{}:{}", self.domain, self.https_port)
    }

    /// The domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The HTTPS port on 127.0.0.1 (the rendered `listen 443`).
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// `http://127.0.0.1:PORT`: nginx's port 80 stand-in (ACME webroot, then 301 to HTTPS).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The shop itself, without nginx.
    pub fn app_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    /// The substitutions made to the rendered files.
    pub fn differences(&self) -> &Differences {
        &self.diffs
    }

    /// Configs, secrets, logs and data.
    pub fn workdir(&self) -> &Path {
        self.work.path()
    }

    /// Where nginx serves ACME challenges from (the rendered webroot, relocated).
    pub fn acme_webroot(&self) -> PathBuf {
        self.work.host("/var/www/letsencrypt")
    }

    /// The admin account's email.
    pub fn admin_email(&self) -> &str {
        &self.admin_email
    }

    /// The file holding the generated admin password.
    pub fn admin_password_file(&self) -> &Path {
        &self.admin_password_file
    }

    /// The environment the shop runs with.
    pub fn app_env(&self) -> &AppEnv {
        &self.env
    }

    /// The database server.
    pub fn db(&self) -> &LocalMariaDb {
        &self.db
    }

    /// The shop's database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// nginx's error log so far.
    pub fn nginx_error_log(&self) -> String {
        self.nginx.error_log()
    }

    /// Whether this run kept the work directory's VM, replaced it, or was the first.
    pub fn boot(&self) -> &Boot {
        &self.boot
    }

    /// True while the shop process runs.
    pub fn app_running(&mut self) -> bool {
        self.app.is_running()
    }
}

/// A renewal: the served certificate's serial before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// Before the renewal.
    pub before: String,
    /// After the deploy hook reloaded nginx.
    pub after: String,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    http: u16,
    https: u16,
    app: u16,
}

/// nginx with the rendered `bookstore.conf` and a self-signed certificate made here.
fn start_self_signed(
    opts: &Options,
    files: &HashMap<String, String>,
    work: &WorkDir,
    domain: &str,
    ports: Ports,
    diffs: &mut Differences,
) -> Result<Nginx> {
    let site = file(files, "nginx/bookstore.conf")?;
    let tls = nginx::tls_files(&work.path().join("tls"), domain)?;
    let rw = Rewrites {
        tls: Some(tls.clone()),
        redirect: Some((
            format!("https://{domain}"),
            format!("https://127.0.0.1:{}", ports.https),
        )),
        ..rewrites(work, ports)
    };
    note_http2(site, &rw, diffs);
    let prefix = work.path().join("nginx");
    let (conf, changes) = nginx::rewrite_listing(site, &rw, &prefix.join("logs"))?;
    diffs.add(
        "nginx certificate",
        format!("Let's Encrypt, /etc/letsencrypt/live/{domain}/"),
        format!(
            "self-signed for {domain} and 127.0.0.1, {} (the certbot flow does not run: rehearse without --self-signed for it)",
            tls.cert.display()
        ),
    );
    for (rendered, rehearsed) in changes {
        diffs.add(
            "nginx/bookstore.conf",
            format!("`{rendered}`"),
            format!("`{rehearsed}`"),
        );
    }
    say(
        opts.verbose,
        "starting nginx with the rendered nginx/bookstore.conf",
    );
    Nginx::start("nginx", &prefix, &conf, "1", ports.https)
}

/// The substitutions both ways share: loopback ports, the shop's address, `host/` paths.
fn rewrites(work: &WorkDir, ports: Ports) -> Rewrites {
    Rewrites {
        ports: [(80, ports.http), (443, ports.https)].into_iter().collect(),
        tls: None,
        redirect: None,
        upstream: Some(format!("127.0.0.1:{}", ports.app)),
        real_ip_from: None,
        paths: vec![("/".to_string(), work.host("/"))],
        legacy_http2: nginx::needs_legacy_http2(),
    }
}

fn note_http2(site: &str, rw: &Rewrites, diffs: &mut Differences) {
    if rw.legacy_http2 && site.lines().any(|l| l.trim() == "http2 on;") {
        diffs.add(
            "nginx http2",
            "`http2 on;` (the spec's nginx is 1.25.1 or newer)",
            "`listen ... ssl http2` (the installed nginx is older)",
        );
    }
}

/// The compose file's database service must create the database and user the app connects as.
fn check_db_service(compose_text: &str, user: &str, database: &str) -> Result<()> {
    let Ok(db) = compose::service(compose_text, "db") else {
        return Ok(());
    };
    let get = |k: &str| {
        db.environment
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.clone())
    };
    for (k, want) in [("MYSQL_DATABASE", database), ("MYSQL_USER", user)] {
        match get(k) {
            Some(v) if v == want => {}
            other => bail!(
                "docker-compose.yml: the db service's {k} is {other:?}, but the app's BOOKSTORE_DATABASE_URL uses {want:?}"
            ),
        }
    }
    Ok(())
}

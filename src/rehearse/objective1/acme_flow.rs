//! The certificate flow of the VM, started and driven: both sites where the user-data installs
//! them, the bootstrap site enabled as `bookstore-setup` enables it, the obtain script's first run
//! and its retry timer, renewals, and the DNS answer.

use super::acme_server::LocalAcme;
use super::certificate::{self, RetryTimer, UnitRun, VmCertificates};
use super::user_data::UserData;
use super::{file, note_http2, rewrites, stand_ins, AcmeOptions, Ports, Rehearsal, Renewal};
use crate::rehearse::nginx::{self, Nginx, Rewrites};
use crate::rehearse::port_owner::{self, Listener};
use crate::rehearse::supervise::{find_tool, run_quick};
use crate::rehearse::{say, Differences, Options, WorkDir};
use crate::spec::Spec;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The certificate flow's running parts; the timer stops first.
#[derive(Debug)]
pub(super) struct Acme {
    _timer: RetryTimer,
    vm: Arc<VmCertificates>,
    server: LocalAcme,
    retry_every: Duration,
}

impl Rehearsal {
    /// The root certificate a client must trust: pebble's (new at every start); `None` with a
    /// self-signed certificate.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.acme.as_ref().map(|a| a.server.issuing_root())
    }

    /// True once nginx serves the TLS site (always, with a self-signed certificate): the switch
    /// is over and nginx itself listens on the HTTPS port (a connection alone could be another
    /// process's, which the rehearsal would then report as TLS).
    pub fn tls_enabled(&self) -> bool {
        self.acme.as_ref().is_none_or(|a| a.vm.switched_to_tls())
            && port_owner::listener(self.https_port, self.nginx.pid()) == Listener::Tree
    }

    /// How often the retry timer runs the obtain script (`None`: no certificate flow).
    pub fn retry_every(&self) -> Option<Duration> {
        self.acme.as_ref().map(|a| a.retry_every)
    }

    /// The journal of `bookstore-certificate` (every run of the obtain script) or `certbot`
    /// (renewals), each line stamped with the time since the flow started.
    pub fn certificate_journal(&self, unit: &str) -> String {
        self.acme
            .as_ref()
            .map(|a| a.vm.journal(unit))
            .unwrap_or_default()
    }

    fn acme(&self) -> Result<&Acme> {
        self.acme
            .as_ref()
            .ok_or_else(|| anyhow!("this rehearsal uses a self-signed certificate (no ACME flow)"))
    }

    /// Runs the obtain script now, as `systemctl start bookstore-certificate` would; once it
    /// succeeds, waits until nginx serves TLS.
    pub fn obtain_now(&self) -> Result<UnitRun> {
        self.acme()?.vm.obtain()
    }

    /// Points the domain's A record at `addr` (a loopback address) in the DNS pebble and the
    /// obtain script ask.
    pub fn point_dns_at(&self, addr: Ipv4Addr) -> Result<()> {
        check_loopback(addr)?;
        self.acme()?.server.point_domain_at(&self.domain, addr)
    }

    /// The serial number of the certificate in `live/DOMAIN/cert.pem`.
    pub fn live_serial(&self) -> Result<String> {
        certificate::serial_of(&self.acme()?.vm.live_dir().join("cert.pem"))
    }

    /// The serial number of the certificate nginx serves for the domain.
    pub fn served_serial(&self) -> Result<String> {
        served_serial(
            self.https_port,
            &self.domain,
            &self.work.path().join("tls-probe"),
        )
    }

    /// A forced renewal as Debian's certbot.timer runs it (`certbot -q renew`, plus
    /// `--force-renewal`), with the rendered deploy hook; waits until nginx serves the new
    /// certificate. Returns the served serial before and after.
    pub fn renew_now(&self) -> Result<Renewal> {
        let before = self.served_serial()?;
        let run = self.acme()?.vm.renew(true)?;
        if !run.ok {
            bail!(
                "certbot renew failed; its output:\n{}\n(journal: {})",
                run.output.trim(),
                self.work.path().join("logs/certbot.log").display()
            );
        }
        let live = self.live_serial()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let served = self.served_serial()?;
            if served == live {
                return Ok(Renewal {
                    before,
                    after: served,
                });
            }
            if Instant::now() >= deadline {
                bail!(
                    "certbot renewed the certificate (serial {live}), but nginx still serves {served} \
                     20 s later: the deploy hook did not reload nginx; see {}",
                    self.work.path().join("logs/certbot.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The VM's way: both sites where the user-data installs them, the bootstrap site enabled as
/// `bookstore-setup` enables it, nginx started on it, then the obtain script's first run and
/// its retry timer.
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    opts: &Options,
    a: &AcmeOptions,
    files: &HashMap<String, String>,
    work: &WorkDir,
    domain: &str,
    ports: Ports,
    server: LocalAcme,
    diffs: &mut Differences,
) -> Result<(Nginx, Acme)> {
    let ud = UserData::parse(file(files, "user-data.yaml")?)?;
    let rw = Rewrites {
        redirect: Some((
            format!("https://{domain}"),
            format!("https://{domain}:{}", ports.https),
        )),
        ..rewrites(work, ports)
    };
    let prefix = work.path().join("nginx");
    for name in ["nginx/bookstore.conf", "nginx/bootstrap.conf"] {
        let site = file(files, name)?;
        note_http2(site, &rw, diffs);
        let (conf, changes) = nginx::rewrite_listing(site, &rw, &prefix.join("logs"))?;
        for (rendered, rehearsed) in changes {
            diffs.add(name, format!("`{rendered}`"), format!("`{rehearsed}`"));
        }
        let local = work.host(ud.path_of(site, name)?);
        std::fs::create_dir_all(local.parent().expect("an absolute path has a parent"))?;
        std::fs::write(&local, conf)?;
    }
    // What bookstore-setup does before the first certificate; the obtain script switches it.
    let enabled = "/etc/nginx/sites-enabled/bookstore.conf";
    let obtain = file(files, "certbot/obtain-certificate.sh")?;
    if !obtain.contains(enabled) {
        bail!("the rendered obtain script does not switch {enabled}, which the bootstrap site is enabled as");
    }
    let bootstrap_at = ud.path_of(file(files, "nginx/bootstrap.conf")?, "nginx/bootstrap.conf")?;
    std::fs::create_dir_all(work.host("/etc/nginx/sites-enabled"))?;
    let _ = std::fs::remove_file(work.host(enabled));
    std::os::unix::fs::symlink(work.host(bootstrap_at), work.host(enabled))?;
    diffs.add(
        "scripts/setup.sh",
        "run by cloud-init: mounts the data volume, secrets, `bookstore-upgrade` (`docker compose up`), enables the bootstrap site, starts the timers",
        format!("not run: the rehearsal starts the shop itself and links {enabled} to the bootstrap site as it does"),
    );
    diffs.add(
        "nginx main config",
        "Debian's /etc/nginx/nginx.conf, including sites-enabled/*",
        format!(
            "{}/nginx.conf, including (through site.conf) {}",
            prefix.display(),
            work.host(enabled).display()
        ),
    );
    say(
        opts.verbose,
        "starting nginx with the rendered nginx/bootstrap.conf (bookstore.conf once the certificate exists)",
    );
    let nginx = Nginx::start_including("nginx", &prefix, &work.host(enabled), "1", ports.http)?;

    let host = |p: &str| work.host(p);
    let vm = VmCertificates::install(
        certificate::Setup {
            work,
            user_data: &ud,
            obtain,
            deploy_hook: file(files, "certbot/deploy-hook-reload-nginx.sh")?,
            domain,
            targets: stand_ins::Targets {
                dir: work.path().join("stand-ins"),
                public_ip: Ipv4Addr::LOCALHOST,
                dns_port: server.dns_port(),
                nginx_prefix: prefix.clone(),
                certbot_dirs: [
                    host("/etc/letsencrypt"),
                    host("/var/lib/letsencrypt"),
                    host("/var/log/letsencrypt"),
                ],
                acme_ca: server.listener_ca(),
                timer_disabled: work.path().join("bookstore-certificate.timer.disabled"),
                reloads: work.path().join("logs/nginx-reloads"),
            },
        },
        diffs,
    )?;
    check_loopback(a.dns_points_at)?;
    server.point_domain_at(domain, a.dns_points_at)?;
    diffs.add(
        format!("DNS for {domain}"),
        "public DNS: your A record, pointing at the Elastic IP",
        format!(
            "pebble-challtestsrv on 127.0.0.1:{} answers {} (the instance's public address here is 127.0.0.1)",
            server.dns_port(),
            a.dns_points_at
        ),
    );
    let schedule = ud.timer(certificate::OBTAIN_TIMER)?;
    let retry_every = a.retry_every.unwrap_or(schedule.every);
    diffs.add(
        "bookstore-certificate.timer",
        format!(
            "the obtain script {:?} after boot, then every {:?} until it succeeds",
            schedule.first, schedule.every
        ),
        format!("once at start, then every {retry_every:?}; `obtain` runs it now"),
    );

    let vm = Arc::new(vm);
    say(
        opts.verbose,
        "bookstore-certificate: running the rendered obtain script",
    );
    let first = vm.obtain()?;
    if let Listener::Others(pids) = port_owner::listener(ports.https, nginx.pid()) {
        bail!(
            "another process listens on the HTTPS port 127.0.0.1:{} that nginx was to bind once the \
             certificate came ({}): Address already in use",
            ports.https,
            pids.iter()
                .map(|p| format!("PID {p}: {}", port_owner::command_line(*p)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    say(
        opts.verbose,
        format!("bookstore-certificate: {}", first.last_line()),
    );
    let verbose = opts.verbose;
    let timer = RetryTimer::start(vm.clone(), retry_every, move |run| match run {
        Ok(r) => say(
            verbose,
            format!("bookstore-certificate.timer: {}", r.last_line()),
        ),
        Err(e) => say(verbose, format!("bookstore-certificate.timer: {e:#}")),
    })?;
    Ok((
        nginx,
        Acme {
            _timer: timer,
            vm,
            server,
            retry_every,
        },
    ))
}

/// The ACME server, its CA and the HTTP-01 port, as the rehearsal changes them.
pub(super) fn differences(
    spec: &Spec,
    server: &LocalAcme,
    http_port: u16,
    diffs: &mut Differences,
) {
    diffs.add(
        "ACME server (domain.acme_server)",
        spec.domain.acme_directory(),
        format!(
            "pebble, Let's Encrypt's test server, at {} (validates at once, never rejects a good nonce; 90-day certificates)",
            server.directory_url()
        ),
    );
    diffs.add(
        "the certificate's CA",
        match (&spec.domain.acme_server, spec.domain.letsencrypt_staging) {
            (None, false) => "Let's Encrypt (trusted by browsers)",
            (None, true) => "Let's Encrypt's staging CA (untrusted)",
            (Some(_), _) => "your ACME server's CA",
        },
        format!(
            "pebble's root, new at every start: {} (curl --cacert, bookstore loadtest --ca-cert)",
            server.issuing_root().display()
        ),
    );
    diffs.add(
        "HTTP-01 validation",
        "the CA fetches http://DOMAIN/.well-known/acme-challenge/ on port 80 from the internet",
        format!("pebble fetches it from 127.0.0.1:{http_port} (nginx's port 80 here)"),
    );
}

/// Fails unless `addr` is a loopback address: the rehearsal sends traffic nowhere else.
fn check_loopback(addr: Ipv4Addr) -> Result<()> {
    if !addr.is_loopback() {
        bail!("{addr} is not a loopback address (127.x.y.z); the rehearsal sends traffic only to this machine, so point the DNS at 127.0.0.1 (here) or another 127.x address (elsewhere)");
    }
    Ok(())
}

/// Fails with one clear message when a tool of the certificate flow is missing.
pub(super) fn check_prerequisites() -> Result<()> {
    let needed = [
        ("pebble", "pebble"),
        ("pebble-challtestsrv", "pebble"),
        ("certbot", "certbot"),
        ("dig", "bind9-dnsutils"),
        ("curl", "curl"),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|(tool, _)| find_tool(tool).is_none())
        .map(|(tool, pkg)| format!("{tool} (package {pkg})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the certificate rehearsal runs certbot against Let's Encrypt's test server, and these are missing: {}; \
             install them (`sudo apt-get install pebble certbot bind9-dnsutils curl`), or rehearse with --self-signed",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The serial of the certificate served on `127.0.0.1:port` for `domain` (SNI), by openssl.
fn served_serial(port: u16, domain: &str, scratch: &Path) -> Result<String> {
    let openssl = find_tool("openssl").ok_or_else(|| anyhow!("openssl is not installed"))?;
    let shown = run_quick(
        Command::new(&openssl)
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-servername", domain]),
        Duration::from_secs(20),
    )
    .context("openssl s_client could not connect")?;
    let begin = shown
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| anyhow!("127.0.0.1:{port} served no certificate"))?;
    let end = shown[begin..]
        .find("-----END CERTIFICATE-----")
        .map(|i| begin + i + "-----END CERTIFICATE-----".len())
        .ok_or_else(|| anyhow!("a truncated certificate from 127.0.0.1:{port}"))?;
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(scratch)?;
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pem = scratch.join(format!("served-{n}.pem"));
    std::fs::write(&pem, &shown[begin..end])?;
    let serial = certificate::serial_of(&pem);
    let _ = std::fs::remove_file(&pem);
    serial
}

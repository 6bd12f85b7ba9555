//! The VM's certificate machinery, run as rendered: the obtain script as
//! `bookstore-certificate.service` runs it (and its timer retries it), and `certbot renew` as
//! Debian's `certbot.service` runs it, with the rendered deploy hook. VM paths in the scripts move
//! under the work dir's `host/` tree, and the commands a rehearsal cannot run as the VM does are
//! stand-ins ([`super::stand_ins`]); both are listed as differences.

use super::stand_ins::{self, Targets};
use super::user_data::UserData;
use crate::rehearse::nginx;
use crate::rehearse::supervise::{find_tool, run_quick, Supervised};
use crate::rehearse::{Differences, WorkDir};
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The VM directories the certificate flow uses, which the rehearsal keeps under `host/`.
const RELOCATED: &[&str] = &[
    "/etc/letsencrypt",
    "/var/lib/letsencrypt",
    "/var/log/letsencrypt",
    "/var/www/letsencrypt",
    "/etc/nginx",
];

/// Any other path under these is refused: the rehearsal never writes to this machine's system.
const SYSTEM: &[&str] = &[
    "/etc/", "/var/", "/usr/", "/opt/", "/srv/", "/run/", "/home/", "/root/", "/boot/",
];

/// The obtain service's unit, as the user-data writes it.
const OBTAIN_SERVICE: &str = "/etc/systemd/system/bookstore-certificate.service";
/// Its timer.
pub const OBTAIN_TIMER: &str = "/etc/systemd/system/bookstore-certificate.timer";
/// Debian's renewal service (installed with certbot, on the VM and here).
const CERTBOT_SERVICE: &str = "/lib/systemd/system/certbot.service";
/// Its command when the unit file cannot be read.
const CERTBOT_RENEW: &str = "/usr/bin/certbot -q renew --no-random-sleep-on-renew";

/// One run of a unit: did it succeed, and what it printed.
#[derive(Debug, Clone)]
pub struct UnitRun {
    /// Exit status 0.
    pub ok: bool,
    /// stdout and stderr, interleaved.
    pub output: String,
}

impl UnitRun {
    /// Its last non-empty line (the obtain script's verdict).
    pub fn last_line(&self) -> &str {
        self.output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no output)")
    }
}

/// The installed scripts and the means to run them.
#[derive(Debug)]
pub struct VmCertificates {
    obtain: PathBuf,
    renew: Vec<String>,
    path_env: String,
    logs: PathBuf,
    timer_disabled: PathBuf,
    nginx_pid: PathBuf,
    reloads: PathBuf,
    live: PathBuf,
    started: Instant,
    one_at_a_time: Mutex<()>,
}

/// What [`VmCertificates::install`] needs to know about the rest of the rehearsal.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The rehearsal's directory.
    pub work: &'a WorkDir,
    /// The rendered user-data (where each file goes, the units).
    pub user_data: &'a UserData,
    /// The rendered `certbot/obtain-certificate.sh`.
    pub obtain: &'a str,
    /// The rendered `certbot/deploy-hook-reload-nginx.sh`.
    pub deploy_hook: &'a str,
    /// The domain.
    pub domain: &'a str,
    /// What the stand-ins act on.
    pub targets: Targets,
}

impl VmCertificates {
    /// Puts the rendered scripts where the user-data puts them (under `host/`), with the VM
    /// directories relocated, and writes the stand-ins.
    pub fn install(s: Setup<'_>, diffs: &mut Differences) -> Result<VmCertificates> {
        use std::os::unix::fs::PermissionsExt;
        let ud = s.user_data;
        let obtain_at = ud.path_of(s.obtain, "certbot/obtain-certificate.sh")?;
        let exec = ud.unit_setting(OBTAIN_SERVICE, "ExecStart")?;
        if exec != obtain_at {
            bail!(
                "{OBTAIN_SERVICE} runs `{exec}`, but the obtain script is installed at {obtain_at}"
            );
        }
        let hook_at = ud.path_of(s.deploy_hook, "certbot/deploy-hook-reload-nginx.sh")?;
        let host = s.work.host("/");
        for (vm_path, text, name) in [
            (obtain_at, s.obtain, "certbot/obtain-certificate.sh"),
            (
                hook_at,
                s.deploy_hook,
                "certbot/deploy-hook-reload-nginx.sh",
            ),
        ] {
            let (text, used) = relocate(text, &host).with_context(|| format!("rendered {name}"))?;
            for prefix in used {
                diffs.add(
                    name,
                    format!("`{prefix}`"),
                    s.work.host(prefix).display().to_string(),
                );
            }
            let local = s.work.host(vm_path);
            std::fs::create_dir_all(local.parent().expect("an absolute path has a parent"))?;
            std::fs::write(&local, text)?;
            std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o755))?;
        }
        for d in &s.targets.certbot_dirs {
            std::fs::create_dir_all(d)?;
        }
        stand_ins::install(&s.targets, diffs)?;

        let (renew, source) = certbot_service();
        let mut renew: Vec<String> = renew.split_whitespace().map(str::to_string).collect();
        if renew.first().is_some_and(|p| p.ends_with("/certbot")) {
            renew[0] = s.targets.dir.join("certbot").display().to_string();
        }
        diffs.add(
            "certbot.timer",
            format!("twice a day: `{}` ({source})", renew_command(&renew)),
            "not scheduled; `renew` runs it now with --force-renewal (pebble's certificates would not be due)",
        );
        let logs = s.work.path().join("logs");
        std::fs::create_dir_all(&logs)?;
        Ok(VmCertificates {
            obtain: s.work.host(obtain_at),
            renew,
            path_env: format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                s.targets.dir.display()
            ),
            logs,
            timer_disabled: s.targets.timer_disabled.clone(),
            nginx_pid: s.targets.nginx_prefix.join("nginx.pid"),
            reloads: s.targets.reloads.clone(),
            live: s.work.host(&format!("/etc/letsencrypt/live/{}", s.domain)),
            started: Instant::now(),
            one_at_a_time: Mutex::new(()),
        })
    }

    /// Runs the obtain script once, as `systemctl start bookstore-certificate.service` would.
    pub fn obtain(&self) -> Result<UnitRun> {
        self.run(
            "bookstore-certificate",
            Command::new(&self.obtain),
            Duration::from_secs(180),
        )
    }

    /// Runs `certbot renew` as Debian's certbot.service does, with `--force-renewal` when
    /// `force` (a pebble certificate is never due); certbot runs the deploy hook after it.
    pub fn renew(&self, force: bool) -> Result<UnitRun> {
        let mut cmd = Command::new(&self.renew[0]);
        cmd.args(&self.renew[1..]);
        if force {
            cmd.arg("--force-renewal");
        }
        self.run("certbot", cmd, Duration::from_secs(180))
    }

    /// False once the obtain script has disabled its timer (it succeeded).
    pub fn timer_enabled(&self) -> bool {
        !self.timer_disabled.exists()
    }

    /// True once the obtain script has succeeded and nginx has finished the reload it asked for.
    pub fn switched_to_tls(&self) -> bool {
        // A run in progress holds the lock until its reload is over.
        !self.timer_enabled() && self.one_at_a_time.try_lock().is_ok()
    }

    fn nginx_master(&self) -> Option<u32> {
        std::fs::read_to_string(&self.nginx_pid)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn reload_count(&self) -> usize {
        std::fs::read_to_string(&self.reloads)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// `live/DOMAIN/` in the rehearsal's `/etc/letsencrypt`.
    pub fn live_dir(&self) -> &Path {
        &self.live
    }

    /// The journal of a unit so far (`logs/UNIT.log`).
    pub fn journal(&self, unit: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{unit}.log"))).unwrap_or_default()
    }

    /// Runs one unit's command with a service's environment (a minimal PATH, the stand-ins
    /// first), one at a time; appends its output to `logs/UNIT.log`, each line stamped.
    fn run(&self, unit: &str, mut cmd: Command, limit: Duration) -> Result<UnitRun> {
        let _one = self
            .one_at_a_time
            .lock()
            .map_err(|_| anyhow!("a certificate run panicked"))?;
        cmd.env_clear()
            .env("PATH", &self.path_env)
            .env("LANG", "C.UTF-8")
            .current_dir("/");
        let master = self.nginx_master();
        let workers = master.map(nginx::workers_of).unwrap_or_default();
        let reloads = self.reload_count();
        let out = self.logs.join(format!(".{unit}.run"));
        let _ = std::fs::remove_file(&out);
        let mut proc = Supervised::spawn(unit, cmd, &out, "TERM", Duration::from_secs(10))?;
        let status = proc.wait_exit(limit);
        if status.is_none() {
            proc.stop();
        }
        let mut output = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        if status.is_none() {
            output.push_str(&format!("(stopped: still running after {limit:?})\n"));
        }
        let stamp = format!("+{:.1}s {unit}:", self.started.elapsed().as_secs_f64());
        let mut journal = String::new();
        for line in output.lines() {
            journal.push_str(&format!("{stamp} {line}\n"));
        }
        let mut ok = status.is_some_and(|s| s.success());
        // `systemctl reload nginx` only signals; the run is over when the old workers are gone.
        if let (Some(master), true) = (master, self.reload_count() > reloads) {
            if let Err(e) = nginx::wait_workers_replaced(master, &workers, Duration::from_secs(60))
            {
                output.push_str(&format!("(the reload it asked for: {e:#})\n"));
                ok = false;
            }
        }
        journal.push_str(&format!(
            "{stamp} ({})\n",
            match status {
                Some(s) if s.success() => "succeeded".to_string(),
                Some(s) => format!("failed: {s}"),
                None => "timed out".to_string(),
            }
        ));
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{unit}.log")))?
            .write_all(journal.as_bytes())?;
        Ok(UnitRun { ok, output })
    }
}

/// `bookstore-certificate.timer`: runs the obtain script every `every` until the script
/// disables the timer (or the rehearsal stops).
#[derive(Debug)]
pub struct RetryTimer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RetryTimer {
    /// Starts it; `report` gets each run's result.
    pub fn start(
        vm: Arc<VmCertificates>,
        every: Duration,
        report: impl Fn(Result<UnitRun>) + Send + 'static,
    ) -> Result<RetryTimer> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("certificate-timer".into())
            .spawn(move || loop {
                let due = Instant::now() + every;
                while Instant::now() < due {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50).min(every));
                }
                if flag.load(Ordering::SeqCst) || !vm.timer_enabled() {
                    return;
                }
                report(vm.obtain());
            })?;
        Ok(RetryTimer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for RetryTimer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The serial number of the PEM certificate at `path` (uppercase hex, as openssl prints it).
pub fn serial_of(path: &Path) -> Result<String> {
    let openssl = find_tool("openssl").ok_or_else(|| anyhow!("openssl is not installed"))?;
    let out = run_quick(
        Command::new(openssl)
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(path),
        Duration::from_secs(20),
    )?;
    out.trim()
        .strip_prefix("serial=")
        .map(str::to_string)
        .ok_or_else(|| anyhow!("openssl printed no serial for {}", path.display()))
}

/// Debian's `certbot.service` command and where it was read.
fn certbot_service() -> (String, String) {
    std::fs::read_to_string(CERTBOT_SERVICE)
        .ok()
        .and_then(|unit| {
            unit.lines()
                .find_map(|l| l.trim().strip_prefix("ExecStart=").map(str::to_string))
        })
        .map(|c| (c, format!("Debian's {CERTBOT_SERVICE}")))
        .unwrap_or_else(|| {
            (
                CERTBOT_RENEW.to_string(),
                "Debian's certbot.service".to_string(),
            )
        })
}

fn renew_command(argv: &[String]) -> String {
    let mut v = argv.to_vec();
    if let Some(p) = v.first_mut() {
        *p = "certbot".into();
    }
    v.join(" ")
}

/// True when `c` may continue a path token.
fn in_path(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-/".contains(c)
}

/// Rewrites the [`RELOCATED`] directories in a rendered script to `host/...`; returns the text
/// and the prefixes that occurred. Fails on any other system path, so nothing outside the work
/// dir is touched.
fn relocate(text: &str, host: &Path) -> Result<(String, Vec<&'static str>)> {
    let host = host.display().to_string();
    let host = host.trim_end_matches('/');
    let mut out = String::with_capacity(text.len() + 256);
    let mut used = Vec::new();
    let mut rest = text;
    'scan: while !rest.is_empty() {
        let boundary = out.chars().last().is_none_or(|c| !in_path(c));
        if boundary && rest.starts_with('/') {
            for prefix in RELOCATED {
                let after = &rest[prefix.len().min(rest.len())..];
                if rest.starts_with(prefix)
                    && after.chars().next().is_none_or(|c| !in_path(c) || c == '/')
                {
                    out.push_str(host);
                    out.push_str(prefix);
                    rest = after;
                    if !used.contains(prefix) {
                        used.push(*prefix);
                    }
                    continue 'scan;
                }
            }
            if let Some(sys) = SYSTEM.iter().find(|s| rest.starts_with(**s)) {
                let path: String = rest.chars().take_while(|c| in_path(*c)).collect();
                bail!(
                    "it uses {path} (under {sys}), which the rehearsal does not relocate; \
                     it would change this machine instead of the rehearsal's copy"
                );
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok((out, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocates_the_certificate_directories_only() {
        let script = "webroot=/var/www/letsencrypt\n[ -s \"/etc/letsencrypt/live/$d/x\" ]\nln -sfn /etc/nginx/a /etc/nginx/b\necho http://169.254.169.254/latest/api/token /bin/sh\n";
        let (out, used) = relocate(script, Path::new("/w/host/")).unwrap();
        assert_eq!(
            out,
            "webroot=/w/host/var/www/letsencrypt\n[ -s \"/w/host/etc/letsencrypt/live/$d/x\" ]\nln -sfn /w/host/etc/nginx/a /w/host/etc/nginx/b\necho http://169.254.169.254/latest/api/token /bin/sh\n"
        );
        assert_eq!(
            used,
            ["/var/www/letsencrypt", "/etc/letsencrypt", "/etc/nginx"]
        );
        // A longer name is not the directory; an unrelocated system path is refused.
        assert!(relocate("cp x /etc/nginxx/y\n", Path::new("/w")).is_err());
        let err = relocate("rm -f /etc/passwd\n", Path::new("/w")).unwrap_err();
        assert!(err.to_string().contains("/etc/passwd"), "{err}");
    }
}

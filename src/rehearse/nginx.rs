//! Debian's nginx on loopback with a rendered site file, rewritten by a short, explicit list of
//! substitutions (listen ports, certificate, upstream addresses, paths).

pub mod proxy;

use super::supervise::{
    find_tool, run_quick, running_as_root, send_signal, wait_listening, Supervised,
};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A self-signed certificate for the domain and 127.0.0.1, and RFC 7919 DH parameters.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// ffdhe2048 DH parameters.
    pub dhparam: PathBuf,
}

/// Makes the self-signed certificate and DH parameters in `dir` with openssl.
pub fn tls_files(dir: &Path, domain: &str) -> Result<TlsFiles> {
    std::fs::create_dir_all(dir)?;
    let files = TlsFiles {
        cert: dir.join("fullchain.pem"),
        key: dir.join("privkey.pem"),
        dhparam: dir.join("ffdhe2048.pem"),
    };
    let openssl = find_tool("openssl").ok_or_else(|| anyhow!("openssl is not installed"))?;
    run_quick(
        Command::new(&openssl)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7",
            ])
            .arg("-subj")
            .arg(format!("/CN={domain}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{domain},IP:127.0.0.1"))
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert),
        Duration::from_secs(60),
    )
    .context("openssl could not make a self-signed certificate")?;
    run_quick(
        Command::new(&openssl)
            .args([
                "genpkey",
                "-genparam",
                "-algorithm",
                "DH",
                "-pkeyopt",
                "group:ffdhe2048",
                "-out",
            ])
            .arg(&files.dhparam),
        Duration::from_secs(60),
    )
    .context("openssl could not write DH parameters")?;
    Ok(files)
}

/// What to change in a rendered site file.
#[derive(Debug, Default, Clone)]
pub struct Rewrites {
    /// Rendered listen port -> loopback port; IPv6 listens are dropped.
    pub ports: HashMap<u16, u16>,
    /// Certificate files in place of the Let's Encrypt ones; `None`: the `ssl_*` files move by
    /// `paths` like `root` and `alias`.
    pub tls: Option<TlsFiles>,
    /// (`https://DOMAIN`, `https://127.0.0.1:PORT`) in `return` redirects.
    pub redirect: Option<(String, String)>,
    /// Address that replaces every `server` line of every `upstream` block.
    pub upstream: Option<String>,
    /// Replaces the address of every `set_real_ip_from`.
    pub real_ip_from: Option<String>,
    /// (path prefix as rendered, local directory) for `root` and `alias` (and the `ssl_*` files
    /// when `tls` is `None`).
    pub paths: Vec<(String, PathBuf)>,
    /// The local nginx predates `http2 on;` (1.25.1): use `listen ... http2` instead.
    pub legacy_http2: bool,
}

/// The installed nginx's version, from `nginx -v`.
pub fn local_version() -> Option<(u32, u32, u32)> {
    let out = Command::new(find_tool("nginx")?).arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = text
        .split("nginx/")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// True when the installed nginx needs `listen ... http2` rather than `http2 on;`.
pub fn needs_legacy_http2() -> bool {
    local_version().is_some_and(|v| v < (1, 25, 1))
}

/// One directive on one line: (indent, name, arguments without the `;`).
fn directive(line: &str) -> Option<(&str, &str, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.is_empty() {
        return None;
    }
    let indent = &line[..line.len() - trimmed.len()];
    let name_end = trimmed.find(|c: char| c.is_whitespace() || c == ';' || c == '{')?;
    let args = trimmed[name_end..].trim().strip_suffix(';')?.trim();
    Some((indent, &trimmed[..name_end], args))
}

/// `NAME PATH REST;` with PATH moved by the first matching [`Rewrites::paths`] entry.
fn relocated(rw: &Rewrites, indent: &str, name: &str, path: &str, rest: &str) -> Option<String> {
    rw.paths
        .iter()
        .find(|(p, _)| path.starts_with(p.as_str()))
        .map(|(p, local)| {
            format!(
                "{indent}{name} {}{}{rest};",
                local.display(),
                &path[p.len()..]
            )
        })
}

/// Applies `rw` to a rendered site file. Fails when a listen port has no mapping.
pub fn rewrite(conf: &str, rw: &Rewrites, logs: &Path) -> Result<String> {
    Ok(rewrite_listing(conf, rw, logs)?.0)
}

/// [`rewrite`], plus every changed line as (rendered, rehearsed), for the printed differences.
pub fn rewrite_listing(
    conf: &str,
    rw: &Rewrites,
    logs: &Path,
) -> Result<(String, Vec<(String, String)>)> {
    let mut changes = Vec::new();
    let mut out = String::with_capacity(conf.len() + 512);
    let http2_on = conf.lines().any(|l| l.trim() == "http2 on;");
    let mut in_upstream = false;
    for line in conf.lines() {
        let t = line.trim_start();
        if t.starts_with("upstream ") && t.ends_with('{') {
            in_upstream = true;
        } else if in_upstream && t.starts_with('}') {
            in_upstream = false;
        }
        let Some((indent, name, args)) = directive(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (first, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(" {}", rest.trim())
        };
        let replaced: Option<String> = match name {
            "listen" if first.starts_with('[') => Some(format!(
                "{indent}# (rehearsal: IPv6 listen dropped) {}",
                line.trim()
            )),
            "listen" => {
                let port: u16 = first
                    .rsplit(':')
                    .next()
                    .unwrap_or(first)
                    .parse()
                    .map_err(|_| anyhow!("cannot read the port of `{}`", line.trim()))?;
                let local = rw
                    .ports
                    .get(&port)
                    .ok_or_else(|| anyhow!("no loopback port for `listen {port}`"))?;
                let http2 = if rw.legacy_http2
                    && http2_on
                    && rest.contains("ssl")
                    && !rest.contains("http2")
                {
                    " http2"
                } else {
                    ""
                };
                Some(format!("{indent}listen 127.0.0.1:{local}{rest}{http2};"))
            }
            "http2" if rw.legacy_http2 && args == "on" => Some(format!(
                "{indent}# (rehearsal: `http2 on;` needs nginx 1.25.1; `listen ... http2` instead)"
            )),
            "ssl_certificate" | "ssl_trusted_certificate" => rw
                .tls
                .as_ref()
                .map(|t| format!("{indent}{name} {};", t.cert.display()))
                .or_else(|| relocated(rw, indent, name, first, &rest)),
            "ssl_certificate_key" => rw
                .tls
                .as_ref()
                .map(|t| format!("{indent}{name} {};", t.key.display()))
                .or_else(|| relocated(rw, indent, name, first, &rest)),
            "ssl_dhparam" => rw
                .tls
                .as_ref()
                .map(|t| format!("{indent}{name} {};", t.dhparam.display()))
                .or_else(|| relocated(rw, indent, name, first, &rest)),
            "return" => rw.redirect.as_ref().and_then(|(from, to)| {
                args.contains(from.as_str())
                    .then(|| format!("{indent}return {};", args.replace(from.as_str(), to)))
            }),
            "server" if in_upstream => rw
                .upstream
                .as_ref()
                .map(|a| format!("{indent}server {a}{rest};")),
            "set_real_ip_from" => rw
                .real_ip_from
                .as_ref()
                .map(|a| format!("{indent}set_real_ip_from {a};")),
            "root" | "alias" => relocated(rw, indent, name, first, &rest),
            "access_log" | "error_log" if first.starts_with('/') => {
                let base = Path::new(first)
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                Some(format!(
                    "{indent}{name} {}{rest};",
                    logs.join(base).display()
                ))
            }
            _ => None,
        };
        if let Some(new) = &replaced {
            changes.push((line.trim().to_string(), new.trim().to_string()));
        }
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    Ok((out, changes))
}

/// The nginx.conf around a site file: everything nginx writes goes into `prefix`.
pub fn main_conf(prefix: &Path, site: &Path, workers: &str) -> String {
    let p = prefix.display();
    // As root the workers would switch to `nobody`, who cannot read the private key.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "# bookstore rehearse: the main config around the rendered site file\n\
         {user}worker_processes {workers};\n\
         daemon off;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/logs/error.log warn;\n\
         events {{\n    worker_connections 4096;\n}}\n\
         http {{\n\
         \x20   include /etc/nginx/mime.types;\n\
         \x20   default_type application/octet-stream;\n\
         \x20   sendfile on;\n\
         \x20   access_log {p}/logs/access.log;\n\
         \x20   client_body_temp_path {p}/tmp/client_body;\n\
         \x20   proxy_temp_path {p}/tmp/proxy;\n\
         \x20   fastcgi_temp_path {p}/tmp/fastcgi;\n\
         \x20   uwsgi_temp_path {p}/tmp/uwsgi;\n\
         \x20   scgi_temp_path {p}/tmp/scgi;\n\
         \x20   include {site};\n\
         }}\n",
        site = site.display()
    )
}

/// The worker processes of the nginx master `master` now.
pub fn workers_of(master: u32) -> Vec<u32> {
    let master = master.to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`: comm may hold spaces, so read after the last ')'.
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
        (ppid == master).then_some(pid)
    })
    .collect()
}

/// Waits until a reload of `master` has finished: every worker in `old` (from [`workers_of`]
/// before the SIGHUP) has exited, so only workers with the new configuration accept connections.
pub fn wait_workers_replaced(master: u32, old: &[u32], limit: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let now = workers_of(master);
        if !now.is_empty() && !now.iter().any(|w| old.contains(w)) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!("nginx did not finish reloading within {limit:?} (workers before {old:?}, now {now:?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running nginx with its prefix directory.
#[derive(Debug)]
pub struct Nginx {
    prefix: PathBuf,
    proc: Supervised,
}

impl Nginx {
    /// Writes `site` (already rewritten) into `prefix`, checks it with `nginx -t`, starts nginx
    /// and waits until it listens on `wait_port`.
    pub fn start(
        name: &str,
        prefix: &Path,
        site: &str,
        workers: &str,
        wait_port: u16,
    ) -> Result<Nginx> {
        Self::start_with(name, prefix, site, workers, wait_port, &|_| {})
    }

    /// [`Nginx::start`], with `prepare` applied to the nginx command before it is spawned (for
    /// example to start it in an instance's CPU group).
    pub fn start_with(
        name: &str,
        prefix: &Path,
        site: &str,
        workers: &str,
        wait_port: u16,
        prepare: &dyn Fn(&mut Command),
    ) -> Result<Nginx> {
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(prefix.join(sub))?;
        }
        let site_path = prefix.join("site.conf");
        std::fs::write(&site_path, site)?;
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, main_conf(prefix, &site_path, workers))?;
        let nginx = find_tool("nginx").ok_or_else(|| anyhow!("nginx is not installed"))?;
        let check = Command::new(&nginx)
            .arg("-t")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf)
            .output()?;
        if !check.status.success() {
            bail!(
                "nginx -t rejects the rehearsal's {name} config {}:\n{}",
                site_path.display(),
                String::from_utf8_lossy(&check.stderr).trim()
            );
        }
        let mut cmd = Command::new(&nginx);
        cmd.arg("-p").arg(prefix).arg("-c").arg(&conf);
        prepare(&mut cmd);
        // QUIT: graceful shutdown (the official image's stop signal).
        let mut proc = Supervised::spawn(
            name,
            cmd,
            &prefix.join("logs/stderr.log"),
            "QUIT",
            Duration::from_secs(30),
        )?;
        wait_listening(wait_port, &mut proc, Duration::from_secs(20))?;
        Ok(Nginx {
            prefix: prefix.to_path_buf(),
            proc,
        })
    }

    /// Like [`Nginx::start`], with a site file that includes `site_path` where it is (say, a
    /// `sites-enabled/` symlink that a rendered script switches); [`Nginx::reload`] is not used
    /// then: whoever switches the site sends SIGHUP to the master (`PREFIX/nginx.pid`).
    pub fn start_including(
        name: &str,
        prefix: &Path,
        site_path: &Path,
        workers: &str,
        wait_port: u16,
    ) -> Result<Nginx> {
        let include = format!("include {};\n", site_path.display());
        Self::start(name, prefix, &include, workers, wait_port)
    }

    /// Replaces the site file, checks it and reloads (SIGHUP: new workers, old ones finish
    /// their requests).
    pub fn reload(&self, site: &str) -> Result<()> {
        let site_path = self.prefix.join("site.conf");
        let tmp = self.prefix.join("site.conf.new");
        std::fs::write(&tmp, site)?;
        std::fs::rename(&tmp, &site_path)?;
        send_signal(self.proc.pid(), "HUP")
    }

    /// The master process's id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// True when the master runs exactly `workers` worker processes and none of them is an old
    /// one finishing its connections after a reload ("worker process is shutting down").
    pub fn workers_settled(&self, workers: usize) -> bool {
        let children = super::supervise::children_of(self.pid());
        let working: Vec<&String> = children
            .iter()
            .filter(|c| c.contains("worker process"))
            .collect();
        working.len() == workers && working.iter().all(|c| !c.contains("shutting down"))
    }

    /// Stops gracefully (SIGQUIT), killing after 30 s.
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// The prefix directory (config, logs).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_what_is_listed() {
        let conf = "upstream app {\n    server 10.0.0.1:8080;\n    keepalive 8;\n}\nserver {\n    listen 443 ssl;\n    listen [::]:443 ssl;\n    http2 on;\n    ssl_certificate /etc/le/cert.pem;\n    location /a/ { root /var/www/a; }\n    location / { return 301 https://shop.test$request_uri; }\n}\n";
        let rw = Rewrites {
            ports: [(443, 8443)].into_iter().collect(),
            tls: Some(TlsFiles {
                cert: "/t/c.pem".into(),
                key: "/t/k.pem".into(),
                dhparam: "/t/d.pem".into(),
            }),
            redirect: Some(("https://shop.test".into(), "https://127.0.0.1:8443".into())),
            upstream: Some("127.0.0.1:9000".into()),
            real_ip_from: None,
            paths: vec![("/var/www".into(), "/w".into())],
            legacy_http2: true,
        };
        let out = rewrite(conf, &rw, Path::new("/logs")).unwrap();
        assert!(out.contains("    server 127.0.0.1:9000;\n    keepalive 8;"));
        assert!(out.contains("listen 127.0.0.1:8443 ssl http2;"));
        assert!(out.contains("# (rehearsal: IPv6 listen dropped) listen [::]:443 ssl;"));
        assert!(!out.contains("\n    http2 on;"));
        assert!(out.contains("ssl_certificate /t/c.pem;"));
        // One-line blocks are not directives of their own: left alone.
        assert!(out.contains("root /var/www/a;"));
        assert!(rewrite("server {\n    listen 81;\n}\n", &rw, Path::new("/l")).is_err());
    }
}

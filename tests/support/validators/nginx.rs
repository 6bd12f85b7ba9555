//! nginx -t on a rendered site config, in a throwaway prefix with test TLS files.

use super::*;

pub(super) struct TlsFiles {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) dhparam: PathBuf,
}

/// A throwaway self-signed certificate (one day, CN=test) and RFC 7919 ffdhe2048 DH parameters.
pub(super) fn tls_files(dir: &Path, domain: &str) -> Result<TlsFiles, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = TlsFiles {
        cert: dir.join("fullchain.pem"),
        key: dir.join("privkey.pem"),
        dhparam: dir.join("dhparam.pem"),
    };
    let cert = run(
        tool("openssl")?
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
            ])
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{domain}"))
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert),
        TIMEOUT,
    )?;
    if !cert.success() {
        return Err(cert.report("openssl could not make a test certificate"));
    }
    let dh = run(
        tool("openssl")?
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
        TIMEOUT,
    )?;
    if !dh.success() {
        return Err(dh.report("openssl could not write DH parameters"));
    }
    Ok(files)
}

/// One nginx directive on one line: (indent, name, arguments without the `;`, trailing text).
pub(super) fn directive(line: &str) -> Option<(&str, &str, &str)> {
    let code = strip_comment(line);
    let trimmed = code.trim_start();
    if trimmed.is_empty() {
        return None;
    }
    let indent = &code[..code.len() - trimmed.len()];
    let name_end = trimmed.find(|c: char| c.is_whitespace() || c == ';' || c == '{')?;
    let name = &trimmed[..name_end];
    let rest = trimmed[name_end..].trim();
    let args = rest.strip_suffix(';')?.trim();
    Some((indent, name, args))
}

/// The line without its `#` comment (a `#` inside quotes, or inside a word such as `$1#x`, is
/// not a comment).
pub(super) fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q && previous != '\\' => quote = None,
            (None, '#') if previous.is_whitespace() || previous == ';' || i == 0 => {
                return &line[..i]
            }
            _ => {}
        }
        previous = c;
    }
    line
}

/// Points certificate/key/dhparam paths at the test files and absolute log paths into `logs`.
pub(super) fn rewrite_files(conf: &str, tls: &TlsFiles, logs: &Path) -> String {
    let mut out = String::with_capacity(conf.len() + 256);
    for line in conf.lines() {
        let replaced = directive(line).and_then(|(indent, name, args)| {
            let file = match name {
                "ssl_certificate" | "ssl_trusted_certificate" | "ssl_client_certificate" => {
                    Some(&tls.cert)
                }
                "ssl_certificate_key" => Some(&tls.key),
                "ssl_dhparam" => Some(&tls.dhparam),
                _ => None,
            };
            if let Some(file) = file {
                return Some(format!("{indent}{name} {};", file.display()));
            }
            if name == "access_log" || name == "error_log" {
                let mut words = args.splitn(2, char::is_whitespace);
                let target = words.next().unwrap_or("");
                let params = words.next().unwrap_or("");
                if target.starts_with('/') {
                    let base = Path::new(target)
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy();
                    return Some(format!(
                        "{indent}{name} {} {params};",
                        logs.join(&*base).display()
                    ));
                }
            }
            None
        });
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

pub(super) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The nginx.conf around a rendered site config: everything nginx writes goes into `prefix`.
pub(super) fn main_conf(prefix: &Path, site: &Path) -> String {
    let p = prefix.display();
    // As root the workers would switch to `nobody`, who cannot read the 0700 temp dir.
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "# written by tests/support/validators/nginx.rs around the rendered site config\n\
         {user}worker_processes 1;\n\
         daemon off;\n\
         pid {p}/nginx.pid;\n\
         error_log {p}/logs/error.log info;\n\
         events {{\n    worker_connections 256;\n}}\n\
         http {{\n\
         \x20   include /etc/nginx/mime.types;\n\
         \x20   default_type application/octet-stream;\n\
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

/// A prefix directory with nginx.conf, the (rewritten) site config, TLS files, logs, temp dirs.
pub(super) struct Prefix {
    pub(super) dir: tempfile::TempDir,
    pub(super) conf: PathBuf,
    /// The nginx that runs it ([`nginx_for`]).
    pub(super) nginx: PathBuf,
}

/// The nginx a site config is meant for: one with `http2 on;` (nginx 1.25.1 or later, such as
/// the 1.26.3 of Debian 13, the default AMI) runs on Debian 13's nginx ([`debian13_bin`]), any
/// other on this machine's (Debian 12's 1.22, where `listen ... http2` is not yet deprecated).
pub(super) fn nginx_for(site_conf: &str) -> Result<PathBuf, String> {
    if site_conf
        .lines()
        .any(|l| strip_comment(l).trim() == "http2 on;")
    {
        let nginx = debian13_bin().join("nginx");
        return if is_executable(&nginx) {
            Ok(nginx)
        } else {
            Err(format!(
                "the config uses `http2 on;` (nginx 1.25.1+), and Debian 13's nginx is not at {}: \
                 run scripts/debian13-tools",
                nginx.display()
            ))
        };
    }
    tool_path("nginx").ok_or_else(|| "validator `nginx` is not installed (run scripts/test)".into())
}

pub(super) fn prefix_with(
    dir: tempfile::TempDir,
    site_conf: &str,
    domain: &str,
) -> Result<Prefix, String> {
    let root = dir.path();
    for sub in ["logs", "tmp", "tls"] {
        fs::create_dir_all(root.join(sub)).map_err(|e| format!("cannot create {sub}: {e}"))?;
    }
    let tls = tls_files(&root.join("tls"), domain)?;
    let site = root.join("site.conf");
    write(&site, rewrite_files(site_conf, &tls, &root.join("logs")))?;
    let conf = root.join("nginx.conf");
    write(&conf, main_conf(root, &site))?;
    let nginx = nginx_for(site_conf)?;
    Ok(Prefix { dir, conf, nginx })
}

pub(super) fn nginx_cmd(prefix: &Prefix) -> Result<Command, String> {
    let mut cmd = Command::new(&prefix.nginx);
    cmd.arg("-p")
        .arg(prefix.dir.path())
        .arg("-c")
        .arg(&prefix.conf);
    Ok(cmd)
}

/// `nginx -t` ([`nginx_for`]: Debian 13's or this machine's) on a rendered site config (the `server`/`upstream`/`map` blocks that go
/// in `/etc/nginx/sites-enabled/`), included into a minimal nginx.conf in a throwaway prefix.
/// `ssl_certificate`, `ssl_certificate_key`, `ssl_trusted_certificate` and `ssl_dhparam` are
/// pointed at a throwaway self-signed certificate and DH parameters; absolute log paths are
/// moved into the prefix. Other paths (includes, webroots) are checked as written.
/// `[warn]` lines count as failures too.
pub fn nginx_t(conf: &Path) -> Result<(), String> {
    let prefix = prefix_with(tempdir("nginx")?, &read(conf)?, "test.invalid")?;
    let run = run(nginx_cmd(&prefix)?.arg("-t"), TIMEOUT)?;
    let all = format!("{}{}", run.stdout, run.stderr);
    if run.success() && all.contains("test is successful") && !all.contains("[warn]") {
        Ok(())
    } else {
        let site = read(&prefix.dir.path().join("site.conf")).unwrap_or_default();
        Err(format!(
            "{}\n--- site config as tested ---\n{site}",
            run.report(&format!("nginx -t rejected {}", conf.display()))
        ))
    }
}

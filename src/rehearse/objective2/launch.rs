//! The launch template: everything needed to start one more instance as the rendered user-data
//! starts it (its compose file, the runtime.env its boot script writes, its nginx site), with
//! the instance's shop and nginx in the instance's CPU group, and the boot script's lifecycle
//! hook (`/readyz` through the instance's nginx) as the moment the instance is `InService`.

use super::Instance;
use crate::rehearse::autoscale::{CpuMeter, UsageSampler};
use crate::rehearse::nginx::{self, Nginx, Rewrites};
use crate::rehearse::objective1::wait_ready;
use crate::rehearse::supervise::{http_get, with_free_port};
use crate::rehearse::{AppEnv, Differences, WorkDir};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything needed to launch another instance.
#[derive(Debug)]
pub(super) struct Launch {
    pub(super) exe: PathBuf,
    pub(super) compose: String,
    pub(super) site: String,
    pub(super) stack_env: HashMap<String, String>,
    pub(super) boot: String,
    pub(super) db_port: u16,
    pub(super) work: PathBuf,
    pub(super) uploads_host: PathBuf,
    pub(super) nginx_mounts: Vec<(String, PathBuf)>,
}

impl Launch {
    /// The environment of instance `id`: the rendered compose file's app service, with the
    /// host values the boot script writes to runtime.env.
    pub(super) fn env(
        &self,
        id: &str,
        listen_port: u16,
        diffs: &mut Differences,
    ) -> Result<AppEnv> {
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

    /// Starts instance `id` (its shop, then its nginx, both in its CPU group) and waits for
    /// what the boot script waits for before completing the launch lifecycle hook: `/readyz`
    /// through the instance's nginx.
    pub(super) fn start_instance(&self, id: &str, meter: &CpuMeter) -> Result<Instance> {
        let launched_at = Instant::now();
        let dir = self.work.join("instances").join(id);
        std::fs::create_dir_all(&dir)?;
        let cpu = meter.group(id)?;
        let (app_port, mut app) = with_free_port(|app_port| {
            let env = self.env(id, app_port, &mut Differences::default())?;
            let mut app = env.spawn_with(
                &self.exe,
                &dir,
                &format!("{id} shop"),
                &dir.join("app.log"),
                &|cmd| cpu.prepare(cmd),
            )?;
            cpu.track(app.pid())?;
            wait_ready(app_port, "/healthz", &mut app, Duration::from_secs(120))?;
            Ok((app_port, app))
        })?;
        let prefix = dir.join("nginx");
        let (nginx_port, nginx, changes) = with_free_port(|nginx_port| {
            let rw = Rewrites {
                ports: [(80, nginx_port)].into_iter().collect(),
                tls: None,
                redirect: None,
                upstream: Some(format!("127.0.0.1:{app_port}")),
                real_ip_from: Some("127.0.0.1".into()),
                paths: self.nginx_mounts.clone(),
                legacy_http2: nginx::needs_legacy_http2(),
            };
            let (conf, changes) = nginx::rewrite_listing(&self.site, &rw, &prefix.join("logs"))?;
            let nginx = Nginx::start_with(
                &format!("{id} nginx"),
                &prefix,
                &conf,
                "1",
                nginx_port,
                &|cmd| cpu.prepare(cmd),
            )?;
            Ok((nginx_port, nginx, changes))
        })?;
        cpu.track(nginx.pid())?;
        // The lifecycle hook: bookstore-boot completes it once /readyz answers through nginx.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok((200, _)) = http_get(nginx_port, "/readyz", Duration::from_secs(2)) {
                break;
            }
            if !app.is_running() || Instant::now() >= deadline {
                bail!(
                    "{id}: /readyz did not answer 200 through its nginx within 120 s (the boot script would abandon the launch); the end of {}:\n{}",
                    app.log().display(),
                    app.log_tail(15)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut sampler = UsageSampler::new();
        sampler.sample(cpu.usage().unwrap_or_default(), launched_at, cpu.cores());
        Ok(Instance {
            id: id.to_string(),
            app_port,
            nginx_port,
            nginx_changes: changes,
            state: super::TargetState::Initial,
            ok_streak: 0,
            fail_streak: 0,
            live_fail_streak: 0,
            launched_at,
            in_service_at: Instant::now(),
            routed_once: false,
            sampler,
            app,
            nginx,
            cpu,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_the_boot_scripts_printf() {
        let boot = "x=1\nprintf 'A=%s\\nB=%s\\n' \"$instance_id\" \\\n  \"${REGION}-x\" >/etc/bookstore/runtime.env\n";
        let vars: HashMap<String, String> = [("instance_id", "i-9"), ("REGION", "eu")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = runtime_env(boot, &vars).unwrap();
        assert_eq!(env["A"], "i-9");
        assert_eq!(env["B"], "eu-x");
        assert!(runtime_env("echo hi\n", &vars).is_err());
    }
}

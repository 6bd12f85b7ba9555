//! What one shop instance is given: the rendered compose service `app`'s environment with only
//! the loopback substitutions, its generated secrets, and its database.

use super::supervise::{random_hex, run_quick, Supervised};
use super::{compose, mariadb, Differences, WorkDir};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Writes every top-level compose secret as a file under the work dir's host tree, with a
/// generated value (on AWS: fetched from SSM / Secrets Manager). Returns name -> value.
pub(super) fn generate_secrets(
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
pub(super) fn with_db_address(url: &str, addr: &str) -> Result<String> {
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
pub(super) fn db_user_and_name(url: &str) -> Result<(String, String)> {
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
    pub(super) fn from_compose(
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
    pub(super) fn database_password(&self) -> Result<String> {
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
    pub(super) fn drain(&self) -> Duration {
        Duration::from_secs(
            self.vars
                .get("BOOKSTORE_DRAIN_SECONDS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(20),
        )
    }

    pub(super) fn command(&self, exe: &Path, cwd: &Path, args: &[&str]) -> Command {
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
    pub(super) fn spawn(
        &self,
        exe: &Path,
        cwd: &Path,
        name: &str,
        log: &Path,
    ) -> Result<Supervised> {
        self.spawn_with(exe, cwd, name, log, &|_| {})
    }

    /// [`AppEnv::spawn`], with `prepare` applied to the command first (e.g. a CPU group).
    pub(super) fn spawn_with(
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
    pub(super) fn seed(&self, exe: &Path, cwd: &Path, books: u32) -> Result<()> {
        run_quick(
            &mut self.command(exe, cwd, &["seed", "--books", &books.to_string()]),
            Duration::from_secs(300),
        )
        .map(|_| ())
        .context("seeding the database failed")
    }
}

/// Creates the app's database and user in MariaDB as the rendered configuration names them.
pub(super) fn provision_database(
    db: &mariadb::LocalMariaDb,
    env: &AppEnv,
) -> Result<(String, String)> {
    let (user, name) = db_user_and_name(&env.vars["BOOKSTORE_DATABASE_URL"])?;
    db.provision(&name, &user, &env.database_password()?)?;
    Ok((user, name))
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
    }
}

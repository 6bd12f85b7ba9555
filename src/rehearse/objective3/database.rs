//! The database side of the objective 3 rehearsal: a MariaDB that speaks TLS only, with a
//! certificate for 127.0.0.1 from a CA made here with openssl (the stand-in for RDS and its
//! region's CA bundle), and the rendered Job of `k8s/database-user.yaml` run once before the
//! first pod, as the Job controller would: `create-app-user` as the administrator, whose
//! password only the Job mounts.

use super::template::Template;
use super::workload::{mounts, one, Volume};
use super::yaml;
use crate::rehearse::mariadb::ServerTls;
use crate::rehearse::rendered::{RenderedError, RenderedFiles};
use crate::rehearse::supervise::{find_tool, random_hex, run_quick};
use crate::rehearse::{db_user_and_name, with_db_address, AppEnv, Differences};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const JOB_FILE: &str = "k8s/database-user.yaml";

/// Makes `ca.pem`/`ca.key` and a server certificate for 127.0.0.1 signed by it in `dir`.
pub(super) fn make_tls(dir: &Path) -> Result<ServerTls> {
    std::fs::create_dir_all(dir)?;
    let openssl = find_tool("openssl").ok_or_else(|| anyhow!("openssl is not installed"))?;
    let run = |args: &[&str]| -> Result<()> {
        run_quick(
            Command::new(&openssl).current_dir(dir).args(args),
            Duration::from_secs(60),
        )
        .map(|_| ())
        .with_context(|| format!("openssl {}", args.join(" ")))
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "7",
        "-subj",
        "/CN=bookstore rehearsal database CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "7",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    Ok(ServerTls {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

/// The rendered Job: its name, container args, literal env and mounts.
#[derive(Debug)]
pub(super) struct Job {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    mounts: Vec<(String, Volume)>,
}

impl Job {
    /// Reads the Job of `k8s/database-user.yaml`; `None` when kustomization.yaml does not apply it.
    pub(super) fn read(files: &RenderedFiles) -> Result<Option<Job>, RenderedError> {
        if !super::workload::applied(files, JOB_FILE)? {
            return Ok(None);
        }
        let label = files.label(JOB_FILE);
        let docs = yaml::docs(&label, files.get(JOB_FILE)?)?;
        let d = one(&docs, "Job", &label)?;
        let c = "spec.template.spec.containers[0]";
        let mut args = Vec::new();
        for (i, _) in d.seq(&format!("{c}.args"))?.iter().enumerate() {
            args.push(d.text(&format!("{c}.args[{i}]"))?);
        }
        let mut env = Vec::new();
        for (i, _) in d.seq(&format!("{c}.env"))?.iter().enumerate() {
            let p = format!("{c}.env[{i}]");
            let value = d
                .text(&format!("{p}.value"))
                .map_err(|_| d.err(&p, "only literal `value`s are rehearsed in the Job's env"))?;
            env.push((d.text(&format!("{p}.name"))?, value));
        }
        Ok(Some(Job {
            name: d.name(),
            args,
            env,
            mounts: mounts(d, "spec.template.spec", c)?,
        }))
    }

    /// Makes the administrator the Job logs in as (what RDS's master user is: every privilege,
    /// with GRANT OPTION) and the database, then runs the Job's container command as
    /// `bookstore serve ...` with its env, the database address and mounted paths mapped here.
    /// Secrets the pods also mount get the pods' values; others (the master password) new ones.
    pub(super) fn run(
        &self,
        db: &crate::rehearse::mariadb::LocalMariaDb,
        template: &Template,
        work: &Path,
        diffs: &mut Differences,
    ) -> Result<()> {
        let dir = work.join("jobs").join(&self.name);
        let mut local: Vec<(String, PathBuf)> = Vec::new();
        let mut generated: BTreeMap<(String, String), String> = BTreeMap::new();
        for (path, v) in &self.mounts {
            let (kind, name, items) = match v {
                Volume::Secret { secret, items } => ("secret", secret, items),
                Volume::ConfigMap { name, items } => ("configmap", name, items),
                other => bail!("the Job mounts {other:?} at {path}; the rehearsal runs Secrets and ConfigMaps only"),
            };
            let vdir = dir.join(kind).join(name);
            std::fs::create_dir_all(&vdir)?;
            for (key, file) in items {
                let value = match kind {
                    "secret" => match template.secrets.get(&(name.clone(), key.clone())) {
                        Some(v) => v.clone(),
                        None => {
                            let v = random_hex(20)?;
                            generated.insert((name.clone(), key.clone()), v.clone());
                            v
                        }
                    },
                    _ => template.config_map_value(name, key)?,
                };
                std::fs::write(vdir.join(file), value)?;
            }
            local.push((path.clone(), vdir));
        }
        // A mounted path -> its local directory.
        let map = |v: &str| match local
            .iter()
            .find(|(c, _)| v == c || v.starts_with(&format!("{c}/")))
        {
            Some((c, l)) => format!("{}{}", l.display(), &v[c.len()..]),
            None => v.to_string(),
        };
        let mut vars = BTreeMap::new();
        for (k, v) in &self.env {
            let new = if k == "BOOKSTORE_DATABASE_URL" {
                with_db_address(v, &format!("127.0.0.1:{}", db.port()))?
            } else {
                map(v)
            };
            vars.insert(k.clone(), new);
        }
        let url = vars
            .get("BOOKSTORE_DATABASE_URL")
            .ok_or_else(|| anyhow!("the Job {} sets no BOOKSTORE_DATABASE_URL", self.name))?;
        let (admin, database) = db_user_and_name(url)?;
        let password_file = vars
            .get("BOOKSTORE_DATABASE_PASSWORD_FILE")
            .ok_or_else(|| {
                anyhow!(
                    "the Job {} sets no BOOKSTORE_DATABASE_PASSWORD_FILE",
                    self.name
                )
            })?;
        let password = std::fs::read_to_string(password_file)?;
        let ident = |s: &str| format!("`{}`", s.replace('`', "``"));
        let lit = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
        db.sql(&format!(
            "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; \
             CREATE USER IF NOT EXISTS {u}@'%' IDENTIFIED BY {p}; \
             GRANT ALL PRIVILEGES ON *.* TO {u}@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;",
            db = ident(&database),
            u = lit(&admin),
            p = lit(password.trim_end()),
        ))
        .with_context(|| format!("cannot create the administrator {admin}"))?;
        let env = AppEnv { vars };
        let args: Vec<String> = self.args.iter().map(|a| map(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        std::fs::create_dir_all(&dir)?;
        run_quick(
            &mut env.command(&template.exe, &dir, &args),
            Duration::from_secs(120),
        )
        .with_context(|| format!("the Job {} failed", self.name))?;
        diffs.add(
            format!("Job {}", self.name),
            "a pod of the image, run by the Job controller when the apply creates it (the shop's pods retry their login meanwhile)",
            format!(
                "`bookstore serve {}` run once before the first pod, with the Job's env and mounts (in {}); its administrator `{admin}` made in MariaDB with every privilege and GRANT OPTION, as RDS makes its master user",
                self.args.join(" "),
                dir.display()
            ),
        );
        for (secret, key) in generated.keys() {
            diffs.add(
                format!("Secret {secret} key {key} (the Job's only)"),
                "created by README.md's command from Secrets Manager or SSM",
                "a generated value",
            );
        }
        Ok(())
    }
}

//! The pod template with the rehearsal's substitutions: the Deployment's env, ConfigMap and
//! Secret values for one pod, with the database address, listen addresses (a loopback port per
//! container port), trusted proxies and mounted paths mapped to this machine.

use super::workload::{EnvSource, Volume, Workload};
use crate::rehearse::supervise::random_hex;
use crate::rehearse::{with_db_address, AppEnv, Differences};
use anyhow::{anyhow, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The pod template with the rehearsal's substitutions: what every pod gets.
#[derive(Debug)]
pub(super) struct Template {
    pub(super) exe: PathBuf,
    pub(super) work: PathBuf,
    pub(super) db_port: u16,
    /// Container path -> local directory, for each mounted volume but emptyDirs.
    pub(super) mounts: Vec<(String, PathBuf)>,
    /// emptyDir mount paths (a directory per pod).
    pub(super) empty_dirs: Vec<String>,
    /// (secret, key) -> value.
    pub(super) secrets: HashMap<(String, String), String>,
    /// (ConfigMap, key) -> value: what the README's commands would put in them.
    pub(super) config_maps: BTreeMap<(String, String), String>,
}

impl Template {
    /// Generates the Secret's values (on a cluster: created from SSM by README.md's command)
    /// and the volumes' directories.
    pub(super) fn new(
        w: &Workload,
        exe: &Path,
        work: &Path,
        db_port: u16,
        config_maps: BTreeMap<(String, String), String>,
        diffs: &mut Differences,
    ) -> Result<Template> {
        use std::os::unix::fs::PermissionsExt;
        let mut secrets: HashMap<(String, String), String> = HashMap::new();
        let value = |secrets: &mut HashMap<(String, String), String>,
                     secret: &str,
                     key: &str|
         -> Result<String> {
            if let Some(v) = secrets.get(&(secret.to_string(), key.to_string())) {
                return Ok(v.clone());
            }
            let v = random_hex(20)?;
            secrets.insert((secret.to_string(), key.to_string()), v.clone());
            Ok(v)
        };
        let mut mounts = Vec::new();
        let mut empty_dirs = Vec::new();
        for (path, v) in &w.mounts {
            match v {
                Volume::Secret { secret, items } => {
                    let dir = work.join("secrets").join(secret);
                    std::fs::create_dir_all(&dir)?;
                    for (key, file) in items {
                        let f = dir.join(file);
                        std::fs::write(&f, value(&mut secrets, secret, key)?)?;
                        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))?;
                    }
                    diffs.add(
                        format!("Secret {secret} (mounted at {path})"),
                        "created by README.md's command from SSM Parameter Store, files from the kubelet",
                        format!("{} (generated values)", dir.display()),
                    );
                    mounts.push((path.clone(), dir));
                }
                Volume::Claim(claim) => {
                    let dir = work.join("volumes").join(claim);
                    std::fs::create_dir_all(&dir)?;
                    diffs.add(
                        format!("PersistentVolumeClaim {claim} (mounted at {path})"),
                        "ReadWriteMany volume (EFS/NFS) shared by every pod",
                        format!("{} (one directory for every pod)", dir.display()),
                    );
                    mounts.push((path.clone(), dir));
                }
                Volume::ConfigMap { name, items } => {
                    let dir = work.join("configmaps").join(name);
                    std::fs::create_dir_all(&dir)?;
                    for (key, file) in items {
                        let v = config_maps.get(&(name.clone(), key.clone())).ok_or_else(|| {
                            anyhow!("the pods mount key {key} of ConfigMap {name}, which nothing rendered or rehearsed fills")
                        })?;
                        std::fs::write(dir.join(file), v)?;
                    }
                    mounts.push((path.clone(), dir));
                }
                Volume::EmptyDir => empty_dirs.push(path.clone()),
            }
        }
        for (_, src) in &w.env {
            if let EnvSource::SecretKey { secret, key } = src {
                value(&mut secrets, secret, key)?;
            }
        }
        Ok(Template {
            exe: exe.to_path_buf(),
            work: work.to_path_buf(),
            db_port,
            mounts,
            empty_dirs,
            secrets,
            config_maps,
        })
    }

    /// The value of `key` in ConfigMap `name`.
    pub(super) fn config_map_value(&self, name: &str, key: &str) -> Result<String> {
        self.config_maps
            .get(&(name.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| anyhow!("nothing fills key {key} of ConfigMap {name}"))
    }

    /// The environment of pod `name` whose container ports are mapped by `ports`.
    pub(super) fn env(
        &self,
        w: &Workload,
        name: &str,
        ports: &BTreeMap<u16, u16>,
        diffs: &mut Differences,
    ) -> Result<AppEnv> {
        let pod_dir = self.work.join("pods").join(name);
        let mut vars: BTreeMap<String, String> = w.config.clone();
        for (k, src) in &w.env {
            let v = match src {
                EnvSource::Value(v) => v.clone(),
                EnvSource::PodName => {
                    diffs.add(format!("{k} (fieldRef metadata.name)"), "the pod's name", "the pod's name, made up as the ReplicaSet does (<deployment>-<template hash>-<5 chars>)");
                    name.to_string()
                }
                EnvSource::Namespace => w.namespace.clone(),
                EnvSource::PodIp => "127.0.0.1".into(),
                EnvSource::SecretKey { secret, key } => self
                    .secrets
                    .get(&(secret.clone(), key.clone()))
                    .cloned()
                    .ok_or_else(|| anyhow!("no value for secret {secret} key {key}"))?,
            };
            vars.insert(k.clone(), v);
        }
        for (k, v) in vars.iter_mut() {
            let new = if k == "BOOKSTORE_DATABASE_URL" {
                let local = with_db_address(v, &format!("127.0.0.1:{}", self.db_port))?;
                diffs.add(k, v.as_str(), format!("{local} (MariaDB on loopback)"));
                local
            } else if k == "BOOKSTORE_TRUSTED_PROXIES" {
                diffs.add(
                    k,
                    v.as_str(),
                    "127.0.0.1/32 (the router connects over loopback)",
                );
                "127.0.0.1/32".into()
            } else if let Some(local) = listen_address(v, ports) {
                diffs.add(
                    k,
                    v.as_str(),
                    "127.0.0.1:<a free port per pod> (pods share this machine's network)",
                );
                local
            } else if let Some((c, local)) = self
                .mounts
                .iter()
                .find(|(c, _)| *v == *c || v.starts_with(&format!("{c}/")))
            {
                format!("{}{}", local.display(), &v[c.len()..])
            } else if let Some(c) = self
                .empty_dirs
                .iter()
                .find(|c| *v == **c || v.starts_with(&format!("{c}/")))
            {
                format!("{}{}", pod_dir.join("emptydir").display(), &v[c.len()..])
            } else {
                continue;
            };
            *v = new;
        }
        Ok(AppEnv { vars })
    }
}

/// `0.0.0.0:P` or `:P` where P is a container port -> `127.0.0.1:<its loopback port>`.
fn listen_address(v: &str, ports: &BTreeMap<u16, u16>) -> Option<String> {
    let (host, port) = v.rsplit_once(':')?;
    if !matches!(host, "" | "0.0.0.0" | "[::]" | "127.0.0.1") {
        return None;
    }
    let local = ports.get(&port.parse().ok()?)?;
    Some(format!("127.0.0.1:{local}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_map_to_the_pods_ports() {
        let ports: BTreeMap<u16, u16> = [(8080, 40001), (9100, 40002)].into_iter().collect();
        assert_eq!(
            listen_address("0.0.0.0:8080", &ports).as_deref(),
            Some("127.0.0.1:40001")
        );
        assert_eq!(
            listen_address(":9100", &ports).as_deref(),
            Some("127.0.0.1:40002")
        );
        assert_eq!(listen_address("0.0.0.0:1234", &ports), None);
        assert_eq!(listen_address("mysql://db:8080", &ports), None);
    }
}

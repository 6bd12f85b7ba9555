//! Objective 1's VM and its data on the rehearsal's disk. The VM's root volume is `<work>/host`;
//! the EBS data volume is the directory under it that the rendered `bookstore-mount-data` mounts.
//! A rehearsal re-run on the same work directory boots the same VM when the rendered user-data is
//! the one it booted with before (CloudFormation keeps an instance whose launch template did not
//! change), else a replaced VM: a new root volume, on which only the data volume (re-attached,
//! or restored from its snapshot) and the SSM parameters' values (fetched again) survive.

use super::super::{compose, Differences, WorkDir};
use super::user_data::UserData;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Where the user-data installs the script that mounts the data volume.
const MOUNT_SCRIPT: &str = "/usr/local/sbin/bookstore-mount-data";
/// Where the VM keeps the secrets fetched from SSM (kept across a replacement: SSM keeps them).
const SECRETS_DIR: &str = "/etc/bookstore/secrets";
/// The user-data this work directory's VM booted with.
const BOOTED_WITH: &str = "vm/user-data.yaml";

/// How the rehearsal's VM came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// A new work directory: the stack's first VM.
    First,
    /// The same user-data as last time: CloudFormation keeps the VM and its root volume.
    Kept,
    /// Another user-data: a new VM and root volume; the data volume is all that is kept.
    Replaced,
}

/// The data volume's mount point: the `mount_point=` of the rendered `bookstore-mount-data`
/// (`None` when the user-data mounts no data volume: everything is on the root volume).
pub fn mount_point(ud: &UserData) -> Option<String> {
    ud.content_at(MOUNT_SCRIPT)
        .ok()?
        .lines()
        .find_map(|l| l.trim().strip_prefix("mount_point="))
        .map(|p| p.trim_matches(['"', '\'']).to_string())
        .filter(|p| p.starts_with('/'))
}

/// Boots the rehearsal's VM on `work`: on a replacement, removes everything under `<work>/host`
/// except the data volume and the secrets, then records `user_data` as the one booted with.
pub fn boot(
    work: &WorkDir,
    user_data: &str,
    data_mount: Option<&str>,
    diffs: &mut Differences,
) -> Result<Boot> {
    let marker = work.path().join(BOOTED_WITH);
    let boot = match std::fs::read_to_string(&marker) {
        Err(_) => Boot::First,
        Ok(before) if before == user_data => Boot::Kept,
        Ok(_) => Boot::Replaced,
    };
    let kept = match data_mount {
        Some(m) => format!("the data volume at {m} is kept, and the secrets (SSM keeps them)"),
        None => "only the secrets are kept (SSM keeps them): the user-data mounts no data volume, the database was on the root volume".to_string(),
    };
    match boot {
        Boot::First => {}
        Boot::Kept => diffs.add(
            "VM",
            "kept by CloudFormation: the launch template (user-data, AMI) did not change",
            format!(
                "kept: the rendered user-data is the one {} booted with",
                work.path().display()
            ),
        ),
        Boot::Replaced => {
            let mut keep = vec![work.host(SECRETS_DIR)];
            keep.extend(data_mount.map(|m| work.host(m)));
            wipe_except(&work.path().join("host"), &keep)?;
            diffs.add(
                "VM",
                "replaced by CloudFormation: the user-data changed (a new root volume)",
                format!("replaced: {}/host wiped; {kept}", work.path().display()),
            );
        }
    }
    if let Some(m) = data_mount {
        diffs.add(
            "data volume",
            format!("encrypted EBS gp3 volume mounted at {m}, snapshotted daily"),
            format!("{} (a directory)", work.host(m).display()),
        );
    }
    std::fs::create_dir_all(marker.parent().expect("a parent"))?;
    std::fs::write(&marker, user_data)
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(boot)
}

/// Where MySQL's datadir is: the db service's bind mount for `/var/lib/mysql`, else its named
/// volume under Docker's directory on the root volume.
pub fn mysql_dir(compose_text: &str, work: &WorkDir) -> Result<PathBuf> {
    let db = compose::service(compose_text, "db")?;
    Ok(db
        .volumes
        .iter()
        .find(|(_, container)| container == "/var/lib/mysql")
        .map(|(host, _)| work.host(host))
        .unwrap_or_else(|| work.host("/var/lib/docker/volumes")))
}

/// Removes everything under `root` but the paths in `keep` (and the directories leading to them).
fn wipe_except(root: &Path, keep: &[PathBuf]) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for e in entries {
        let path = e?.path();
        if keep.iter().any(|k| k == &path) {
            continue;
        }
        if keep.iter().any(|k| k.starts_with(&path)) {
            wipe_except(&path, keep)?;
        } else if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        } else {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_keeps_only_the_data_volume_and_the_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::new(Some(dir.path())).unwrap();
        for p in [
            "/srv/bookstore/mysql/ibdata1",
            "/etc/bookstore/secrets/key",
            "/etc/nginx/x",
            "/var/lib/docker/volumes/v",
        ] {
            let f = work.host(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, "x").unwrap();
        }
        let mut d = Differences::default();
        assert_eq!(
            boot(&work, "a", Some("/srv/bookstore"), &mut d).unwrap(),
            Boot::First
        );
        assert_eq!(
            boot(&work, "a", Some("/srv/bookstore"), &mut d).unwrap(),
            Boot::Kept
        );
        assert!(work.host("/etc/nginx/x").exists());
        assert_eq!(
            boot(&work, "b", Some("/srv/bookstore"), &mut d).unwrap(),
            Boot::Replaced
        );
        assert!(work.host("/srv/bookstore/mysql/ibdata1").exists());
        assert!(work.host("/etc/bookstore/secrets/key").exists());
        assert!(!work.host("/etc/nginx").exists());
        assert!(!work.host("/var/lib/docker").exists());
        // Without a data volume, MySQL's named volume goes with the root volume.
        assert_eq!(boot(&work, "c", None, &mut d).unwrap(), Boot::Replaced);
        assert!(!work.host("/srv").exists());
    }
}

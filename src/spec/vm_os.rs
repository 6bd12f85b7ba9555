//! The operating system that an SSM public AMI parameter names, and what objectives 1 and 2 take
//! from its archive: Docker with Compose v2 (both), nginx (objective 1), the root device.
//!
//! The VMs install their packages from the AMI's own archive (cloud-init `packages:`), so the
//! archive decides what runs: Debian 12's `docker-compose` is Compose v1 (1.29, end of life) and
//! has no `docker compose`; Ubuntu 24.04's nginx (1.24) does not know `http2 on;`. The table
//! below was read off the archives on 2026-12-02 (deb.debian.org for Debian; Ubuntu's from its
//! package pages).

use std::fmt;

/// A distribution family the VM scripts support (they use apt, dpkg and systemd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Debian,
    Ubuntu,
}

/// The OS of an AMI parameter: family and release (`13`, `24.04`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmOs {
    pub family: Family,
    pub release: String,
}

/// What one release's archive ships that the VMs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archive {
    pub family: Family,
    pub release: &'static str,
    /// nginx's version in the archive (objective 1 runs the archive's nginx).
    pub nginx: &'static str,
    /// Docker, its CLI and Compose v2 (`docker compose`); empty: the archive has no Compose v2.
    pub docker_packages: &'static [&'static str],
}

/// The releases known here, oldest first.
pub const ARCHIVES: &[Archive] = &[
    Archive {
        family: Family::Debian,
        release: "12",
        nginx: "1.22.1",
        docker_packages: &[],
    },
    Archive {
        family: Family::Debian,
        release: "13",
        nginx: "1.26.3",
        // docker.io 26.1.5 no longer carries the CLI; docker-compose 2.26.1 is the CLI plugin.
        docker_packages: &["docker.io", "docker-cli", "docker-compose"],
    },
    Archive {
        family: Family::Ubuntu,
        release: "22.04",
        nginx: "1.18.0",
        docker_packages: &["docker.io", "docker-compose-v2"],
    },
    Archive {
        family: Family::Ubuntu,
        release: "24.04",
        nginx: "1.24.0",
        docker_packages: &["docker.io", "docker-compose-v2"],
    },
];

/// The default AMI parameter of both objectives' spec (Debian 13, x86-64).
pub const DEFAULT_AMI_PARAMETER: &str = "/aws/service/debian/release/13/latest/amd64";

impl fmt::Display for VmOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            Family::Debian => write!(f, "Debian {}", self.release),
            Family::Ubuntu => write!(f, "Ubuntu {}", self.release),
        }
    }
}

impl VmOs {
    /// The OS an SSM public parameter names: `/aws/service/debian/release/N/...` or
    /// `/aws/service/canonical/ubuntu/server/YY.MM/...`; `None` for anything else.
    pub fn from_ami_parameter(parameter: &str) -> Option<VmOs> {
        let release_after = |prefix: &str| -> Option<String> {
            let rest = parameter.strip_prefix(prefix)?;
            let release = rest.split('/').next()?;
            (!release.is_empty() && release.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
                .then(|| release.to_string())
        };
        if let Some(release) = release_after("/aws/service/debian/release/") {
            return Some(VmOs {
                family: Family::Debian,
                release,
            });
        }
        release_after("/aws/service/canonical/ubuntu/server/").map(|release| VmOs {
            family: Family::Ubuntu,
            release,
        })
    }

    /// This release's row of [`ARCHIVES`], when known.
    pub fn archive(&self) -> Option<&'static Archive> {
        ARCHIVES
            .iter()
            .find(|a| a.family == self.family && a.release == self.release)
    }

    /// The root device its AMIs boot from: Canonical's Ubuntu images `/dev/sda1`, Debian's
    /// `/dev/xvda`.
    pub fn root_device(&self) -> &'static str {
        match self.family {
            Family::Debian => "/dev/xvda",
            Family::Ubuntu => "/dev/sda1",
        }
    }
}

/// The root device of the AMIs a parameter names, for both objectives. A block device mapping
/// for any other name adds a spare disk and leaves the AMI's own small root volume in use.
/// Amazon Linux (refused by `validate`, still rendered) boots from `/dev/xvda` as Debian does.
pub fn root_device(ami_parameter: &str) -> &'static str {
    VmOs::from_ami_parameter(ami_parameter).map_or("/dev/xvda", |os| os.root_device())
}

/// The Docker packages cloud-init installs on the VM, for the templates. An AMI the table does
/// not know (refused by `validate`) gets the newest Debian's list.
pub fn docker_packages(ami_parameter: &str) -> &'static [&'static str] {
    VmOs::from_ami_parameter(ami_parameter)
        .and_then(|os| os.archive())
        .filter(|a| !a.docker_packages.is_empty())
        .map_or(newest_debian().docker_packages, |a| a.docker_packages)
}

fn newest_debian() -> &'static Archive {
    ARCHIVES
        .iter()
        .rev()
        .find(|a| a.family == Family::Debian)
        .expect("a Debian row")
}

/// Why the VMs cannot run on the AMI a parameter names, with what to use instead; `None` when
/// they can.
pub fn unsupported(ami_parameter: &str) -> Option<String> {
    let arch = if ami_parameter.contains("arm64") {
        "arm64"
    } else {
        "amd64"
    };
    let instead = format!(
        "use `/aws/service/debian/release/13/latest/{arch}` (Debian 13) or an Ubuntu 22.04/24.04 \
         parameter such as `/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id`"
    );
    let Some(os) = VmOs::from_ami_parameter(ami_parameter) else {
        return Some(format!(
            "names an AMI that is neither Debian nor Ubuntu; the VMs install Docker, Compose v2 \
             and nginx with apt from the AMI's archive: {instead}"
        ));
    };
    match os.archive() {
        None => Some(format!(
            "names {os}, a release this version of bookstore does not know (it knows {}): {instead}",
            ARCHIVES
                .iter()
                .map(|a| format!("{}", VmOs { family: a.family, release: a.release.into() }))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(a) if a.docker_packages.is_empty() => Some(format!(
            "names {os}, whose archive has only Compose v1 (`docker-compose` 1.29, end of life \
             since 2023) and no `docker compose`, which the VM scripts run: {instead}"
        )),
        Some(_) => None,
    }
}

/// The OS an AMI parameter names, for the READMEs ("Debian 13").
pub fn describe(ami_parameter: &str) -> String {
    VmOs::from_ami_parameter(ami_parameter)
        .map_or_else(|| "the AMI's OS".to_string(), |os| os.to_string())
}

/// The nginx version `ami_parameter`'s archive installs, when known.
pub fn nginx_version(ami_parameter: &str) -> Option<&'static str> {
    VmOs::from_ami_parameter(ami_parameter)
        .and_then(|os| os.archive())
        .map(|a| a.nginx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_name_their_release() {
        let os = VmOs::from_ami_parameter("/aws/service/debian/release/13/latest/arm64").unwrap();
        assert_eq!(os.to_string(), "Debian 13");
        assert_eq!(os.archive().unwrap().nginx, "1.26.3");
        let os = VmOs::from_ami_parameter(
            "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
        )
        .unwrap();
        assert_eq!(os.to_string(), "Ubuntu 24.04");
        assert_eq!(os.root_device(), "/dev/sda1");
        assert_eq!(
            VmOs::from_ami_parameter(
                "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
            ),
            None
        );
        assert_eq!(
            VmOs::from_ami_parameter("/aws/service/debian/release//latest/amd64"),
            None
        );
    }

    #[test]
    fn only_releases_with_compose_v2_are_supported() {
        assert_eq!(unsupported(DEFAULT_AMI_PARAMETER), None);
        assert_eq!(
            unsupported("/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id"),
            None
        );
        let d12 = unsupported("/aws/service/debian/release/12/latest/arm64").unwrap();
        assert!(
            d12.contains("Debian 12") && d12.contains("Compose v1"),
            "{d12}"
        );
        assert!(
            d12.contains("/aws/service/debian/release/13/latest/arm64"),
            "{d12}"
        );
        let d14 = unsupported("/aws/service/debian/release/14/latest/amd64").unwrap();
        assert!(
            d14.contains("does not know") && d14.contains("Debian 13"),
            "{d14}"
        );
        let al =
            unsupported("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
                .unwrap();
        assert!(al.contains("neither Debian nor Ubuntu"), "{al}");
    }

    #[test]
    fn every_supported_release_installs_compose_v2() {
        assert_eq!(
            docker_packages(DEFAULT_AMI_PARAMETER),
            ["docker.io", "docker-cli", "docker-compose"]
        );
        assert_eq!(
            docker_packages("/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"),
            ["docker.io", "docker-compose-v2"]
        );
    }
}

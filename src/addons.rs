//! The cluster add-ons objective 3 installs, pinned, with the Kubernetes minors each supports.
//!
//! Read from the projects' own support matrices on 2026-12-02: Envoy Gateway's compatibility
//! matrix (v1.9: Kubernetes 1.33 to 1.36, end of life 2027-02-14; v1.8 ended 2026-11-08) and
//! cert-manager's supported releases (v1.21, released 2026-07-08: Kubernetes 1.33 to 1.36; v1.20
//! and older cover at most 1.35, and 1.19 is out of support). `bookstore validate` refuses an
//! `objective3.eks.version` outside what every gated add-on supports. The External Secrets
//! Operator supports only its newest minor and tests one Kubernetes version, so it is pinned but
//! does not gate the version.

use serde::Serialize;

/// One pinned add-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Addon {
    /// Its name, as in the README.
    pub name: &'static str,
    /// The pinned release (Helm chart version).
    pub version: &'static str,
    /// Oldest supported Kubernetes minor (1.x).
    pub min_minor: u32,
    /// Newest supported Kubernetes minor (1.x).
    pub max_minor: u32,
    /// Whether `validate` refuses a Kubernetes version outside its range.
    pub gates_version: bool,
}

/// Envoy Gateway (the Gateway API controller, `routing: gateway`).
pub const ENVOY_GATEWAY: Addon = Addon {
    name: "Envoy Gateway",
    version: "v1.9.2",
    min_minor: 33,
    max_minor: 36,
    gates_version: true,
};

/// cert-manager (Let's Encrypt certificates).
pub const CERT_MANAGER: Addon = Addon {
    name: "cert-manager",
    version: "v1.21.2",
    min_minor: 33,
    max_minor: 36,
    gates_version: true,
};

/// The External Secrets Operator (`secrets_source: external_secrets`).
pub const EXTERNAL_SECRETS: Addon = Addon {
    name: "External Secrets Operator",
    version: "2.8.0",
    min_minor: 35,
    max_minor: 35,
    gates_version: false,
};

/// Every pinned add-on.
pub const ALL: [Addon; 3] = [ENVOY_GATEWAY, CERT_MANAGER, EXTERNAL_SECRETS];

/// The Kubernetes minors (1.x) that every gating add-on supports, inclusive.
pub fn supported_minors() -> (u32, u32) {
    ALL.iter()
        .filter(|a| a.gates_version)
        .fold((0, u32::MAX), |(lo, hi), a| {
            (lo.max(a.min_minor), hi.min(a.max_minor))
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gating_addons_overlap() {
        let (lo, hi) = super::supported_minors();
        assert!(lo <= hi, "no Kubernetes minor fits every pinned add-on");
        assert_eq!((lo, hi), (33, 36));
    }
}

//! `--ca-cert` and `--resolve`: reaching a deployment whose certificate comes from a private CA,
//! under a name only this machine resolves (a rehearsal's ACME test CA and the spec's domain).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// `--resolve HOST:ADDR`: connect to ADDR whenever a URL names HOST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The host name, as URLs name it.
    pub host: String,
    /// Where to connect instead of what DNS says.
    pub addr: IpAddr,
}

impl Resolve {
    /// The address for reqwest's `resolve` (port 0: the URL's port).
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, 0)
    }
}

/// Parses `HOST:ADDR` (`shop.example.com:127.0.0.1`, `shop.example.com:::1`).
pub fn parse_resolve(s: &str) -> Result<Resolve, String> {
    let (host, addr) = s
        .split_once(':')
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| format!("{s:?} is not HOST:ADDR, such as shop.example.com:127.0.0.1"))?;
    let addr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{addr:?} in {s:?} is not an IP address"))?;
    Ok(Resolve {
        host: host.to_ascii_lowercase(),
        addr,
    })
}

/// The certificates in the PEM file given to `--ca-cert`.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = format!("--ca-cert {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what}: cannot read it: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{what}: no `-----BEGIN CERTIFICATE-----` block in it"
        ));
    }
    Ok(certs)
}

/// A TLS configuration that trusts the system's roots and the CA certificates in `ca_cert`.
pub fn tls_config(ca_cert: &Path) -> Result<rustls::ClientConfig, String> {
    let what = format!("--ca-cert {}", ca_cert.display());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        read_ca(ca_cert)?,
        provider.clone(),
    )
    .map_err(|e| format!("{what}: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{what}: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_and_ca_flags() {
        let r = parse_resolve("Shop.Example.com:127.0.0.1").unwrap();
        assert_eq!(r.host, "shop.example.com");
        assert_eq!(r.socket_addr().to_string(), "127.0.0.1:0");
        assert_eq!(
            parse_resolve("shop.example.com:[::1]")
                .unwrap()
                .addr
                .to_string(),
            "::1"
        );
        assert!(parse_resolve("shop.example.com").is_err());
        assert!(parse_resolve(":127.0.0.1").is_err());
        assert!(parse_resolve("shop.example.com:nowhere").is_err());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(read_ca(&empty)
            .unwrap_err()
            .contains("no `-----BEGIN CERTIFICATE-----`"));
        assert!(read_ca(&dir.path().join("missing.pem"))
            .unwrap_err()
            .contains("cannot read it"));
    }
}

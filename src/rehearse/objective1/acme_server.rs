//! Let's Encrypt's ACME test server on loopback: Debian's `pebble`, validating HTTP-01 challenges
//! against the rehearsal's nginx, with `pebble-challtestsrv` as the DNS server it (and the
//! rendered script's DNS check) resolves the domain with. Everything listens on 127.0.0.1.

use crate::rehearse::supervise::{find_tool, free_port, run_quick, wait_listening, Supervised};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Let's Encrypt's certificate lifetime (pebble's default is five years).
const VALIDITY_SECONDS: u64 = 90 * 24 * 3600;

/// pebble and pebble-challtestsrv, stopped on drop.
#[derive(Debug)]
pub struct LocalAcme {
    dir: PathBuf,
    acme_port: u16,
    dns_port: u16,
    dns_management_port: u16,
    // Declared last: dropped (stopped) after the ports are no longer needed.
    _pebble: Supervised,
    _dns: Supervised,
}

impl LocalAcme {
    /// Starts both in `dir` (configs, certificates, logs). pebble validates HTTP-01 challenges
    /// on `http01_port`, where the rehearsal's nginx serves the rendered port-80 site.
    pub fn start(dir: &Path, http01_port: u16) -> Result<LocalAcme> {
        std::fs::create_dir_all(dir)?;
        listener_certificate(dir)?;
        // The ports are found free, then bound by the children: retry if another process took
        // one in between.
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(dir, http01_port) {
                Ok(acme) => return Ok(acme),
                Err(e)
                    if format!("{e:#}")
                        .to_lowercase()
                        .contains("address already in use") =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts failed"))
    }

    fn try_start(dir: &Path, http01_port: u16) -> Result<LocalAcme> {
        let (dns_port, dns_management_port) = (free_port()?, free_port()?);
        let challtestsrv = find_tool("pebble-challtestsrv")
            .ok_or_else(|| anyhow!("pebble-challtestsrv is not installed"))?;
        let mut cmd = Command::new(challtestsrv);
        // DNS only (the HTTP-01 answers come from nginx), IPv4 only (nginx listens on 127.0.0.1).
        cmd.args([
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-defaultIPv6",
            "",
        ])
        .args(["-defaultIPv4", "127.0.0.1"])
        .arg("-dns01")
        .arg(format!("127.0.0.1:{dns_port}"))
        .arg("-management")
        .arg(format!("127.0.0.1:{dns_management_port}"));
        let mut dns = Supervised::spawn(
            "pebble-challtestsrv",
            cmd,
            &dir.join("pebble-challtestsrv.log"),
            "TERM",
            Duration::from_secs(5),
        )?;
        wait_listening(dns_management_port, &mut dns, Duration::from_secs(20))?;
        wait_listening(dns_port, &mut dns, Duration::from_secs(20))?;

        let (acme_port, management_port) = (free_port()?, free_port()?);
        let config = dir.join("pebble-config.json");
        let json = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.join("listener.pem"),
                "privateKey": dir.join("listener-key.pem"),
                "httpPort": http01_port,
                // TLS-ALPN-01 is not used (certbot --webroot answers HTTP-01); nothing listens here.
                "tlsPort": free_port()?,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": VALIDITY_SECONDS,
            }
        });
        std::fs::write(&config, serde_json::to_string_pretty(&json)?)?;
        let pebble = find_tool("pebble").ok_or_else(|| anyhow!("pebble is not installed"))?;
        let mut cmd = Command::new(pebble);
        cmd.arg("-config")
            .arg(&config)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            .arg("-strict=false")
            // Validate at once instead of after a random 0-15 s, and never reject a good nonce:
            // Let's Encrypt does neither.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        let mut pebble = Supervised::spawn(
            "pebble",
            cmd,
            &dir.join("pebble.log"),
            "TERM",
            Duration::from_secs(5),
        )?;
        wait_listening(management_port, &mut pebble, Duration::from_secs(30))?;
        wait_listening(acme_port, &mut pebble, Duration::from_secs(30))?;

        // The root that signs the certificates: pebble makes a new one at every start.
        let curl = find_tool("curl").ok_or_else(|| anyhow!("curl is not installed"))?;
        run_quick(
            Command::new(curl)
                .args(["-fsS", "-m", "10", "--cacert"])
                .arg(dir.join("listener-ca.pem"))
                .arg("-o")
                .arg(dir.join("issuing-root.pem"))
                .arg(format!("https://127.0.0.1:{management_port}/roots/0")),
            Duration::from_secs(20),
        )
        .context("cannot fetch pebble's root certificate")?;
        Ok(LocalAcme {
            dir: dir.to_path_buf(),
            acme_port,
            dns_port,
            dns_management_port,
            _pebble: pebble,
            _dns: dns,
        })
    }

    /// The ACME directory URL, as certbot's `--server` takes it.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The CA of pebble's own HTTPS listener (certbot trusts it through `REQUESTS_CA_BUNDLE`).
    pub fn listener_ca(&self) -> PathBuf {
        self.dir.join("listener-ca.pem")
    }

    /// The root certificate of the certificates pebble issues: what a client must trust.
    pub fn issuing_root(&self) -> PathBuf {
        self.dir.join("issuing-root.pem")
    }

    /// The DNS server (UDP and TCP) on 127.0.0.1.
    pub fn dns_port(&self) -> u16 {
        self.dns_port
    }

    /// Makes the DNS answer `addr`, and only `addr`, to A queries for `domain`.
    pub fn point_domain_at(&self, domain: &str, addr: Ipv4Addr) -> Result<()> {
        let host = serde_json::json!({ "host": domain });
        self.manage("/clear-a", &host)?;
        let record = serde_json::json!({ "host": domain, "addresses": [addr.to_string()] });
        self.manage("/add-a", &record)
    }

    /// One POST to pebble-challtestsrv's management API.
    fn manage(&self, path: &str, body: &serde_json::Value) -> Result<()> {
        let body = body.to_string();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.dns_management_port));
        let timeout = Duration::from_secs(5);
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        let status = reply.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            bail!(
                "pebble-challtestsrv refused POST {path} {body}: {}",
                reply.lines().next().unwrap_or("no answer")
            );
        }
        Ok(())
    }
}

/// A throwaway CA and, signed by it, the certificate pebble's HTTPS listener serves for
/// 127.0.0.1 (the Debian package ships no test certificates).
fn listener_certificate(dir: &Path) -> Result<()> {
    let openssl = find_tool("openssl").ok_or_else(|| anyhow!("openssl is not installed"))?;
    let run = |args: &[&str]| {
        run_quick(
            Command::new(&openssl).current_dir(dir).args(args),
            Duration::from_secs(60),
        )
        .with_context(|| format!("openssl {} failed", args[0]))
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
        "/CN=bookstore rehearsal: pebble listener CA",
        "-keyout",
        "listener-ca-key.pem",
        "-out",
        "listener-ca.pem",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "listener-key.pem",
        "-out",
        "listener.csr",
    ])?;
    std::fs::write(
        dir.join("listener.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "listener.csr",
        "-CA",
        "listener-ca.pem",
        "-CAkey",
        "listener-ca-key.pem",
        "-CAcreateserial",
        "-days",
        "7",
        "-extfile",
        "listener.ext",
        "-out",
        "listener.pem",
    ])?;
    Ok(())
}

//! A minimal DNS client (one A query over UDP), so preflight can ask a given server — the
//! resolver in /etc/resolv.conf, or one on loopback in the tests.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The answer to an A query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name's IPv4 addresses (empty: the name exists without an A record).
    Addresses(Vec<Ipv4Addr>),
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
}

/// The first `nameserver` of /etc/resolv.conf, port 53.
pub fn system_server() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Skips a (possibly compressed) name at `i`; returns the index after it.
fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *b.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        i += 1 + len;
    }
}

/// Asks `server` for `name`'s A records.
pub fn resolve_a(server: SocketAddr, name: &str, timeout: Duration) -> Result<Answer, String> {
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let id = (std::process::id() as u16) ^ 0x5a5a;
    sock.send_to(&query(name, id), server)
        .map_err(|e| format!("cannot reach the DNS server {server}: {e}"))?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock
        .recv_from(&mut buf)
        .map_err(|e| format!("no answer from the DNS server {server} within {timeout:?}: {e}"))?;
    let b = &buf[..n];
    if n < 12 || u16::from_be_bytes([b[0], b[1]]) != id {
        return Err(format!("a malformed answer from {server}"));
    }
    match b[3] & 0x0F {
        0 => {}
        3 => return Ok(Answer::NoSuchName),
        code => {
            return Err(format!(
                "the DNS server {server} answered with error code {code}"
            ))
        }
    }
    let qd = u16::from_be_bytes([b[4], b[5]]);
    let an = u16::from_be_bytes([b[6], b[7]]);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i).ok_or("a truncated answer")? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        i = skip_name(b, i).ok_or("a truncated answer")?;
        let head = b.get(i..i + 10).ok_or("a truncated answer")?;
        let (kind, len) = (
            u16::from_be_bytes([head[0], head[1]]),
            u16::from_be_bytes([head[8], head[9]]) as usize,
        );
        let data = b.get(i + 10..i + 10 + len).ok_or("a truncated answer")?;
        if kind == 1 && len == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Ok(Answer::Addresses(out))
}

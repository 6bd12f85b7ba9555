//! Loopback ports handed to servers that bind them themselves (nginx, MariaDB, pebble, the shop).
//!
//! A port found free by binding port 0 and closing it is in the kernel's ephemeral range, where
//! the next `bind(0)` of any process and the local end of any outgoing connection (or its
//! TIME_WAIT) may take it before the server binds it. A [`Claim`] is instead:
//! - outside the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so the kernel never
//!   picks it on its own;
//! - locked across processes (`flock` on `/tmp/loopback-ports/PORT`) for as long as the claim
//!   lives, so no other claimer on this machine gets it meanwhile, even while nothing is bound;
//! - bindable on 127.0.0.1 when claimed (a service of this machine holds none of them).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The lowest port handed out (below it: well-known and registered services).
const LOWEST: u16 = 20_000;

/// A port on 127.0.0.1 that no other claimer gets while this lives.
#[derive(Debug)]
pub struct Claim {
    port: u16,
    _lock: File,
}

impl Claim {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Claims a port: outside the ephemeral range, claimed by nobody else, bindable now.
pub fn claim() -> io::Result<Claim> {
    let range = range()?;
    let dir = lock_dir()?;
    let span = u32::from(range.1 - range.0);
    let start = random() % span;
    // A stride coprime to any span that is not a multiple of it: every port is visited once.
    let stride = if span % 7919 == 0 { 1 } else { 7919 };
    for i in 0..span {
        let port = range.0 + ((start + i * stride) % span) as u16;
        if let Some(claim) = try_claim(&dir, port)? {
            return Ok(claim);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "every loopback port in {}..{} is claimed or bound",
            range.0, range.1
        ),
    ))
}

/// How long a port from [`port`] stays claimed: ample time for the server it is handed to to
/// start and bind it (after which the kernel keeps it).
pub const KEPT: Duration = Duration::from_secs(60);

/// At most this many claims are kept by [`port`] (the oldest goes first), so a long test
/// process never runs out of file descriptors.
const KEPT_AT_MOST: usize = 128;

static KEPT_CLAIMS: Mutex<Vec<(Instant, Claim)>> = Mutex::new(Vec::new());

/// A claimed port, kept claimed by this process for [`KEPT`], for callers that hand a bare port
/// number to a server they are about to start.
pub fn port() -> io::Result<u16> {
    let claim = claim()?;
    let port = claim.port();
    let mut kept = KEPT_CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    kept.retain(|(at, _)| at.elapsed() < KEPT);
    if kept.len() >= KEPT_AT_MOST {
        kept.remove(0);
    }
    kept.push((Instant::now(), claim));
    Ok(port)
}

fn try_claim(dir: &Path, port: u16) -> io::Result<Option<Claim>> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(dir.join(port.to_string()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => Ok(None),
            _ => Err(e),
        };
    }
    if TcpListener::bind(("127.0.0.1", port)).is_err() {
        return Ok(None);
    }
    Ok(Some(Claim { port, _lock: lock }))
}

/// `LOWEST..` the kernel's ephemeral range's first port.
fn range() -> io::Result<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".into());
    let low: u16 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(32768);
    if low < LOWEST + 1000 {
        return Err(io::Error::other(format!(
            "the ephemeral port range starts at {low} (/proc/sys/net/ipv4/ip_local_port_range): \
             fewer than 1000 ports are left below it above {LOWEST}; raise its first port to 32768"
        )));
    }
    Ok((LOWEST, low))
}

/// `/tmp/loopback-ports`, shared by every process (and user) of this machine.
fn lock_dir() -> io::Result<PathBuf> {
    let dir = PathBuf::from("/tmp/loopback-ports");
    if !dir.is_dir() {
        match std::fs::create_dir(&dir) {
            Ok(()) => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// A random number from the standard library's per-process hash keys and the clock.
fn random() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_below_the_ephemeral_range_and_bindable() {
        let (_, low) = range().unwrap();
        let c = claim().unwrap();
        assert!((LOWEST..low).contains(&c.port()), "{}", c.port());
        drop(TcpListener::bind(("127.0.0.1", c.port())).unwrap());
    }

    #[test]
    fn a_claimed_port_goes_to_no_other_claimer_until_dropped() {
        let held = claim().unwrap();
        for _ in 0..3000 {
            assert_ne!(port().unwrap(), held.port());
        }
        let p = held.port();
        drop(held);
        assert!(try_claim(&lock_dir().unwrap(), p).unwrap().is_some());
    }

    #[test]
    fn a_bound_port_is_not_claimed() {
        let (_, low) = range().unwrap();
        let c = claim().unwrap();
        let p = c.port();
        drop(c);
        let _bound = TcpListener::bind(("127.0.0.1", p)).unwrap();
        assert!(try_claim(&lock_dir().unwrap(), p).unwrap().is_none());
        assert!(p < low);
    }
}

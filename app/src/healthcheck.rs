//! `bookstore-app healthcheck`: the container image's HEALTHCHECK, without a shell or curl.
//!
//! Asks `GET /healthz` (liveness; `--ready`: `/readyz`, readiness) of the shop listening on
//! `BOOKSTORE_LISTEN` (a wildcard address such as `0.0.0.0:8080` is asked on loopback) and exits
//! 0 when it answers 200, 1 otherwise. Docker reserves exit code 2 for health checks, so bad
//! input is 1 here too, with the reason on stderr.
//!
//! The image's HEALTHCHECK asks liveness (a database outage must not restart the container);
//! Docker Swarm routes only to healthy tasks, so the Swarm stack asks readiness (`--ready`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// `bookstore-app healthcheck [--ready] [--timeout SECONDS]`
#[derive(Debug, Parser)]
#[command(
    name = "bookstore-app healthcheck",
    about = "Exit 0 when /healthz (--ready: /readyz) on BOOKSTORE_LISTEN answers 200 (the image's HEALTHCHECK); 1 otherwise"
)]
pub struct Args {
    /// Ask readiness (`/readyz`: the database answers, not draining) instead of liveness
    /// (`/healthz`).
    #[arg(long)]
    pub ready: bool,
    /// Give up after this many seconds (connect, send and read together).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub timeout: f64,
}

impl Args {
    /// The path asked: `/healthz`, or `/readyz` with `--ready`.
    pub fn path(&self) -> &'static str {
        if self.ready {
            "/readyz"
        } else {
            "/healthz"
        }
    }
}

/// Parses the arguments after `healthcheck` (e.g. a rendered HEALTHCHECK's `--ready`).
pub fn parse<I, T>(args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Args::try_parse_from(
        std::iter::once(OsString::from("healthcheck")).chain(args.into_iter().map(Into::into)),
    )
}

/// Runs the health check when the first argument is `healthcheck`; `None` leaves the command
/// line to the shop's own parser.
pub fn run_if_asked<I, T>(args: I) -> Option<ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut args = args.into_iter().map(Into::into);
    let program = args.next()?;
    let rest: Vec<OsString> = args.collect();
    if rest.first().map(|a| a.as_os_str()) != Some("healthcheck".as_ref()) {
        return None;
    }
    let argv = std::iter::once(program).chain(rest.into_iter().skip(1));
    let parsed = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(if e.use_stderr() { 1 } else { 0 }));
        }
    };
    let listen = std::env::var("BOOKSTORE_LISTEN").ok();
    Some(
        match check(listen.as_deref(), parsed.path(), parsed.timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bookstore-app healthcheck: {e}");
                ExitCode::from(1)
            }
        },
    )
}

/// Asks `path` (`/healthz` or `/readyz`) on the address the shop listens on
/// (`BOOKSTORE_LISTEN`, default `0.0.0.0:8080`); `Err` says why the shop is not healthy.
pub fn check(listen: Option<&str>, path: &str, timeout_secs: f64) -> Result<(), String> {
    let timeout = Duration::try_from_secs_f64(timeout_secs)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| format!("--timeout {timeout_secs} is not a positive number of seconds"))?;
    let listen = listen.unwrap_or("0.0.0.0:8080");
    let bound: SocketAddr = listen
        .parse()
        .map_err(|_| format!("BOOKSTORE_LISTEN={listen:?} is not an address like 0.0.0.0:8080"))?;
    let addr = dial_address(bound);
    let status =
        get_status(addr, path, timeout).map_err(|e| format!("GET http://{addr}{path}: {e}"))?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!(
            "GET http://{addr}{path} answered {status}, not 200"
        ))
    }
}

/// The address to connect to for a listener bound to `bound`: wildcards become loopback.
fn dial_address(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// One HTTP/1.1 request; returns the response's status code.
fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: a server that answers as soon as it has read the request line must not
    // find half a request (the rest would then meet a closed socket).
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: bookstore-app-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    // The status line is all we need: "HTTP/1.1 200 OK".
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while head.len() < 256 && !head.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|s| s.parse().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", line.trim_end()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server that answers its connection with `response`; the request line it
    /// read comes back on the channel.
    fn serve_once(response: &'static str) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Read the whole request head before answering: answering (and closing) after a
            // first partial read made the client's next write fail with a broken pipe.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let _ = tx.send(head.lines().next().unwrap_or_default().to_string());
            let _ = s.write_all(response.as_bytes());
        });
        (addr, rx)
    }

    #[test]
    fn wildcard_addresses_are_asked_on_loopback() {
        assert_eq!(
            dial_address("0.0.0.0:8080".parse().unwrap()).to_string(),
            "127.0.0.1:8080"
        );
        assert_eq!(
            dial_address("[::]:8080".parse().unwrap()).to_string(),
            "[::1]:8080"
        );
        assert_eq!(
            dial_address("10.1.2.3:80".parse().unwrap()).to_string(),
            "10.1.2.3:80"
        );
    }

    #[test]
    fn healthy_only_on_200() {
        let (ok, asked) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(check(Some(&ok.to_string()), "/healthz", 5.0), Ok(()));
        assert_eq!(asked.recv().unwrap(), "GET /healthz HTTP/1.1");
        let (draining, _) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = check(Some(&draining.to_string()), "/healthz", 5.0).unwrap_err();
        assert!(err.contains("answered 503"), "{err}");
    }

    #[test]
    fn says_why_when_nothing_listens_or_input_is_bad() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = check(Some(&format!("127.0.0.1:{port}")), "/healthz", 5.0).unwrap_err();
        assert!(
            err.contains(&format!("http://127.0.0.1:{port}/healthz")),
            "{err}"
        );
        let err = check(Some("localhost"), "/healthz", 5.0).unwrap_err();
        assert!(err.contains("BOOKSTORE_LISTEN=\"localhost\""), "{err}");
        assert!(check(Some("127.0.0.1:1"), "/healthz", 0.0).is_err());
    }

    #[test]
    fn ready_asks_readyz() {
        let args = parse(["--ready", "--timeout", "5"]).unwrap();
        assert_eq!(args.path(), "/readyz");
        assert_eq!(parse(Vec::<String>::new()).unwrap().path(), "/healthz");
        let (shop, asked) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(check(Some(&shop.to_string()), args.path(), 5.0), Ok(()));
        assert_eq!(asked.recv().unwrap(), "GET /readyz HTTP/1.1");
    }

    #[test]
    fn other_commands_are_left_to_the_shop() {
        assert!(run_if_asked(["bookstore-app", "serve"]).is_none());
        assert!(run_if_asked(["bookstore-app"]).is_none());
    }
}

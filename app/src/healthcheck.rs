//! `bookstore-app healthcheck`: the container image's HEALTHCHECK, without a shell or curl.
//!
//! Asks `GET /healthz` of the shop listening on `BOOKSTORE_LISTEN` (a wildcard address such as
//! `0.0.0.0:8080` is asked on loopback) and exits 0 when it answers 200, 1 otherwise. Docker
//! reserves exit code 2 for health checks, so bad input is 1 here too, with the reason on stderr.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// `bookstore-app healthcheck [--timeout SECONDS]`
#[derive(Debug, Parser)]
#[command(
    name = "bookstore-app healthcheck",
    about = "Exit 0 when /healthz on BOOKSTORE_LISTEN answers 200 (the image's HEALTHCHECK); 1 otherwise"
)]
struct Args {
    /// Give up after this many seconds (connect, send and read together).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    timeout: f64,
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
    Some(match check(listen.as_deref(), parsed.timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bookstore-app healthcheck: {e}");
            ExitCode::from(1)
        }
    })
}

/// Asks `/healthz` on the address the shop listens on (`BOOKSTORE_LISTEN`, default
/// `0.0.0.0:8080`); `Err` says why the shop is not healthy.
pub fn check(listen: Option<&str>, timeout_secs: f64) -> Result<(), String> {
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
        get_status(addr, timeout).map_err(|e| format!("GET http://{addr}/healthz: {e}"))?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!(
            "GET http://{addr}/healthz answered {status}, not 200"
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
fn get_status(addr: SocketAddr, timeout: Duration) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: bookstore-app-healthcheck\r\nConnection: close\r\n\r\n"
    )?;
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

    /// A one-shot server that answers every connection with `response`.
    fn serve_once(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
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
            let _ = s.write_all(response.as_bytes());
        });
        addr
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
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(check(Some(&ok.to_string()), 5.0), Ok(()));
        let draining = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let err = check(Some(&draining.to_string()), 5.0).unwrap_err();
        assert!(err.contains("answered 503"), "{err}");
    }

    #[test]
    fn says_why_when_nothing_listens_or_input_is_bad() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = check(Some(&format!("127.0.0.1:{port}")), 5.0).unwrap_err();
        assert!(
            err.contains(&format!("http://127.0.0.1:{port}/healthz")),
            "{err}"
        );
        let err = check(Some("localhost"), 5.0).unwrap_err();
        assert!(err.contains("BOOKSTORE_LISTEN=\"localhost\""), "{err}");
        assert!(check(Some("127.0.0.1:1"), 0.0).is_err());
    }

    #[test]
    fn other_commands_are_left_to_the_shop() {
        assert!(run_if_asked(["bookstore-app", "serve"]).is_none());
        assert!(run_if_asked(["bookstore-app"]).is_none());
    }
}

//! The autoscaler's loopback status server (a tiny blocking HTTP/1.1 server on 127.0.0.1):
//! `GET /decisions` (the decision log as `application/x-ndjson`), `GET /decisions?from=N`
//! (lines N.. only, so a poller asks for what it has not seen) and `GET /status` (one JSON
//! object: capacity and every instance's state).
//!
//! API (stable): [`StatusServer::start`], [`StatusServer::url`]; stops when dropped.

use super::decisions::{DecisionLog, StatusBoard};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running status server.
#[derive(Debug)]
pub struct StatusServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StatusServer {
    /// Listens on `127.0.0.1:port` (0: a port the OS chooses) and serves `log` and `board`.
    pub fn start(port: u16, log: DecisionLog, board: StatusBoard) -> Result<StatusServer> {
        let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| {
            format!("cannot listen on 127.0.0.1:{port} for the autoscaler's status (choose another --status-port, or 0 for any free port)")
        })?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("autoscaler-status".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let (log, board) = (log.clone(), board.clone());
                        // One short-lived thread per connection: a slow poller holds up no one.
                        let _ = std::thread::Builder::new()
                            .name("autoscaler-status-conn".into())
                            .spawn(move || {
                                let _ = serve(conn, &log, &board);
                            });
                    }
                })?
        };
        Ok(StatusServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Decisions(usize),
    Status,
    Index,
    BadFrom(String),
    NotFound,
}

fn route(target: &str) -> Route {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        "/decisions" => {
            let from = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("from="))
                .unwrap_or("0");
            match from.parse() {
                Ok(n) => Route::Decisions(n),
                Err(_) => Route::BadFrom(from.to_string()),
            }
        }
        "/status" => Route::Status,
        "/" => Route::Index,
        _ => Route::NotFound,
    }
}

fn serve(conn: TcpStream, log: &DecisionLog, board: &StatusBoard) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 0 && header.trim_end() != "" {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        )
    } else {
        match route(target) {
            Route::Decisions(from) => {
                let mut body = String::new();
                for l in log.lines_from(from) {
                    body.push_str(&l);
                    body.push('\n');
                }
                ("200 OK", "application/x-ndjson", body)
            }
            Route::Status => (
                "200 OK",
                "application/json",
                serde_json::to_string(&board.get())? + "\n",
            ),
            Route::Index => (
                "200 OK",
                "text/plain",
                "bookstore rehearsal autoscaler\n  GET /decisions          the decision log (JSON lines)\n  GET /decisions?from=N   lines N.. (0-based)\n  GET /status             capacity and instances\n".to_string(),
            ),
            Route::BadFrom(v) => (
                "400 Bad Request",
                "text/plain",
                format!("from={v} is not a line number (0, 1, ...)\n"),
            ),
            Route::NotFound => (
                "404 Not Found",
                "text/plain",
                "not found: try /decisions or /status\n".to_string(),
            ),
        }
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        w.write_all(body.as_bytes())?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::clock::{PlatformClock, TimeScale};
    use super::super::decisions::*;
    use super::*;
    use std::io::Read;

    fn get(url_port: u16, path: &str) -> (String, String) {
        let mut s = TcpStream::connect(("127.0.0.1", url_port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    #[test]
    fn serves_the_log_from_an_index_and_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let log = DecisionLog::create(
            &dir.path().join("d.jsonl"),
            Autoscaler::Hpa,
            PlatformClock::start(TimeScale::REAL),
        )
        .unwrap();
        for (n, id) in ["a", "b", "c"].iter().enumerate() {
            log.record(Entry::Manual(Manual {
                current: n as u32,
                desired: n as u32 + 1,
                rule: format!("manual: + typed ({id})"),
            }))
            .unwrap();
        }
        let board = StatusBoard::new(Status {
            objective: "objective3".into(),
            autoscaler: Autoscaler::Hpa,
            time_scale: 12.0,
            min: 2,
            max: 10,
            desired: 3,
            instances: Vec::new(),
        });
        board.set_instance("bookstore-7c9f8d6b5-x2k4q", InstanceState::WarmingUp);
        let server = StatusServer::start(0, log, board).unwrap();
        assert!(server.url().starts_with("http://127.0.0.1:"));
        let (head, body) = get(server.port(), "/decisions");
        assert!(
            head.contains("200 OK") && head.contains("application/x-ndjson"),
            "{head}"
        );
        assert_eq!(body.lines().count(), 3);
        let (_, body) = get(server.port(), "/decisions?from=2");
        assert_eq!(body.lines().count(), 1);
        assert!(body.contains("(c)"));
        let (_, body) = get(server.port(), "/decisions?from=9");
        assert_eq!(body, "");
        let (head, _) = get(server.port(), "/decisions?from=x");
        assert!(head.contains("400"), "{head}");
        let (head, body) = get(server.port(), "/status");
        assert!(head.contains("application/json"));
        let s: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(s["autoscaler"], "hpa");
        assert_eq!(s["instances"][0]["state"], "warming_up");
        assert_eq!(s["desired"], 3);
        let (head, _) = get(server.port(), "/nope");
        assert!(head.contains("404"));
        drop(server);
    }

    #[test]
    fn routes() {
        assert_eq!(route("/decisions"), Route::Decisions(0));
        assert_eq!(route("/decisions?from=12"), Route::Decisions(12));
        assert_eq!(route("/decisions?x=1&from=3"), Route::Decisions(3));
        assert_eq!(route("/status"), Route::Status);
        assert_eq!(route("/statusx"), Route::NotFound);
    }
}

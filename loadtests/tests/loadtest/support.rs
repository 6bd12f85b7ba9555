//! Test helpers: a database per test, shop instances on loopback, nginx in front of them,
//! a self-signed certificate, short load-test flags.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bookstore_app::{start, Config, RunningApp};
use bookstore_loadtests::{LoadtestArgs, ScenarioKind};

pub use bookstore_test_support::TestDb;

/// A port on 127.0.0.1 held bound but not listening: no other socket can take it (a port only
/// found free can be taken by anything on a busy machine before it is used), and a connection
/// to it is refused, as by a stopped instance. Dropping it frees the port for whoever binds it
/// next, an instant later.
pub struct ReservedPort {
    fd: OwnedFd,
    /// The port.
    pub port: u16,
}

impl ReservedPort {
    /// Binds a fresh loopback port without listening on it.
    pub fn new() -> ReservedPort {
        let mut addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: a new socket this function owns at once, and `addr`/`len` describe a live
        // sockaddr_in of the size given.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(raw);
            let sa = (&raw mut addr).cast::<libc::sockaddr>();
            assert_eq!(
                libc::bind(fd.as_raw_fd(), sa, len),
                0,
                "bind 127.0.0.1:0: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(
                libc::getsockname(fd.as_raw_fd(), sa, &raw mut len),
                0,
                "getsockname: {}",
                std::io::Error::last_os_error()
            );
            ReservedPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }

    /// Frees the port for the process about to bind it, and returns it.
    pub fn release(self) -> u16 {
        let port = self.port;
        drop(self.fd);
        port
    }

    /// Starts listening on the port it held (no instant in which another process could take it).
    pub fn listen(self) -> std::net::TcpListener {
        // SAFETY: `fd` is a bound TCP socket this value owns.
        let rc = unsafe { libc::listen(self.fd.as_raw_fd(), 128) };
        assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
        std::net::TcpListener::from(self.fd)
    }
}

#[test]
fn a_reserved_port_refuses_connections_and_cannot_be_taken_until_released() {
    use std::io::ErrorKind;
    use std::net::{TcpListener, TcpStream};
    let r = ReservedPort::new();
    let err = TcpStream::connect(("127.0.0.1", r.port)).expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    let err = TcpListener::bind(("127.0.0.1", r.port)).expect_err("the port is held");
    assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
    let port = r.release();
    TcpListener::bind(("127.0.0.1", port)).expect("free once released");
    let r = ReservedPort::new();
    let port = r.port;
    let _listening = r.listen();
    TcpStream::connect(("127.0.0.1", port)).expect("accepted once it listens");
}

/// Starts a shop instance on `port` (0: any) and waits until it is ready.
pub async fn start_instance(db: &TestDb, uploads: &Path, instance: &str, port: u16) -> RunningApp {
    let mut c = Config::for_tests(&db.url, uploads);
    c.instance_id = instance.to_string();
    c.listen = format!("127.0.0.1:{port}").parse().expect("address");
    c.drain = Duration::from_secs(2);
    let app = start(c).await.expect("start the shop");
    assert!(
        app.wait_ready(Duration::from_secs(60)).await,
        "instance {instance} did not become ready"
    );
    app
}

/// One ready instance on a fresh database with demo books.
pub struct Shop {
    /// The running instance.
    pub app: RunningApp,
    /// Its database.
    pub db: TestDb,
    /// Its uploads directory.
    pub uploads: tempfile::TempDir,
}

impl Shop {
    /// Starts it.
    pub async fn start(instance: &str) -> Shop {
        let db = TestDb::new().await;
        let uploads = tempfile::tempdir().expect("tempdir");
        let app = start_instance(&db, uploads.path(), instance, 0).await;
        app.state
            .db
            .seed_demo_books(60)
            .await
            .expect("seed demo books");
        Shop { app, db, uploads }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        self.app.url()
    }
}

/// Waits until `cond` holds, polling every 20 ms; fails the test after `limit`, saying `what`.
pub async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stand-in for the shop on loopback: answers every request with 200 and an
/// `X-Bookstore-Instance` taken in turn from the names the test sets (an instance that is
/// listed in `failing` answers 500), like a round-robin load balancer in front of them.
pub struct StubShop {
    /// Its port.
    pub port: u16,
    /// The instances answering, in turn.
    pub names: Arc<Mutex<Vec<String>>>,
    /// Instances that answer HTTP 500.
    pub failing: Arc<Mutex<Vec<String>>>,
    /// Requests answered.
    pub served: Arc<AtomicU64>,
    /// When set, requests are read and never answered (a hung deployment).
    pub hang: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StubShop {
    /// Starts it with these instances answering.
    pub async fn start(names: &[&str]) -> StubShop {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let names = Arc::new(Mutex::new(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ));
        let failing: Arc<Mutex<Vec<String>>> = Arc::default();
        let served = Arc::new(AtomicU64::new(0));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (n, f, c, h) = (names.clone(), failing.clone(), served.clone(), hang.clone());
        let task = tokio::spawn(async move {
            let turn = Arc::new(AtomicU64::new(0));
            while let Ok((mut s, _)) = listener.accept().await {
                let (n, f, c, h, turn) = (n.clone(), f.clone(), c.clone(), h.clone(), turn.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(2048);
                    let mut chunk = [0u8; 2048];
                    loop {
                        // One request: read up to the blank line (GET requests carry no body).
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        if h.load(Ordering::Relaxed) {
                            std::future::pending::<()>().await;
                        }
                        let name = {
                            let names = n.lock().unwrap();
                            if names.is_empty() {
                                None
                            } else {
                                let i = turn.fetch_add(1, Ordering::Relaxed) as usize;
                                Some(names[i % names.len()].clone())
                            }
                        };
                        let Some(name) = name else {
                            // Nobody in service: the connection is refused from now on.
                            return;
                        };
                        let status = if f.lock().unwrap().contains(&name) {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nX-Bookstore-Instance: {name}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
                        );
                        c.fetch_add(1, Ordering::Relaxed);
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        StubShop {
            port,
            names,
            failing,
            served,
            hang,
            task,
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the instances answering from now on.
    pub fn set(&self, names: &[&str]) {
        *self.names.lock().unwrap() = names.iter().map(|s| s.to_string()).collect();
    }
}

impl Drop for StubShop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback HTTP server answering GET requests with what `answer(path)` returns:
/// (status, content type, body).
pub struct TinyServer {
    /// Its port.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

type Answer = dyn Fn(&str) -> (u16, &'static str, String) + Send + Sync;

impl TinyServer {
    /// Starts it.
    pub async fn start(answer: Arc<Answer>) -> TinyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 2048];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, ctype, body) = answer(&path);
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        TinyServer { port, task }
    }

    /// Its base URL, with a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Short, quiet load-test flags for `url`.
pub fn args(url: &str, scenario: ScenarioKind, users: usize, secs: u64) -> LoadtestArgs {
    let mut a = LoadtestArgs::for_url(url);
    a.scenario = scenario;
    a.users = users;
    a.ramp = Duration::from_secs(1);
    a.duration = Duration::from_secs(secs);
    a.window = Duration::from_secs(1);
    a.recycle = Duration::from_secs(1);
    // Generous: the shop is a debug build (argon2 is slow there) sharing the CPUs with other tests.
    a.timeout = Duration::from_secs(30);
    a.no_progress = true;
    a
}

/// nginx on loopback: the workspace's test support.
pub use bookstore_test_support::Nginx;

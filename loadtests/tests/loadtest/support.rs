//! Test helpers: a database per test, shop instances on loopback, nginx in front of them,
//! a self-signed certificate, short load-test flags.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bookstore_app::{start, Config, RunningApp};
use bookstore_loadtests::{LoadtestArgs, ScenarioKind};

pub use bookstore_app::testing::TestDb;

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

/// Fails unless `tool` is installed, saying how to get it.
pub fn require(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("`{tool}` is not installed; these tests need it: apt-get install -y {package}");
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Debian's nginx on 127.0.0.1 in a throwaway prefix, balancing `upstreams`.
pub struct Nginx {
    /// The port nginx listens on.
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx; with `tls`, HTTPS with a fresh self-signed certificate. nginx binds its port
    /// itself: when something took the port in the instant between, it tries another.
    pub fn start(upstreams: &[u16], tls: bool) -> Nginx {
        let nginx = require("nginx", "nginx");
        for _attempt in 0..5 {
            match Nginx::spawn(&nginx, ReservedPort::new().release(), upstreams, tls) {
                Ok(n) => return n,
                Err(log) if log.contains("Address already in use") => {
                    eprintln!("nginx: its port was taken, trying another:\n{log}");
                }
                Err(log) => panic!("nginx exited {log}"),
            }
        }
        panic!("nginx: five ports in a row were taken");
    }

    /// Runs nginx on `port` in a fresh prefix until it listens; if it exits, its status and log.
    fn spawn(nginx: &Path, port: u16, upstreams: &[u16], tls: bool) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        let listen = if tls {
            self_signed(p);
            format!(
                "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {0}/cert.pem;\n        ssl_certificate_key {0}/key.pem;",
                p.display()
            )
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        let servers: String = upstreams
            .iter()
            .map(|u| format!("        server 127.0.0.1:{u} max_fails=1 fail_timeout=1s;\n"))
            .collect();
        let user = if running_as_root() {
            "user root;\n"
        } else {
            ""
        };
        let d = p.display();
        let conf = format!(
            "{user}worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n\
             client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n    scgi_temp_path {d}/tmp/scgi;\n\
             upstream shop {{\n{servers}        keepalive 16;\n    }}\n\
             server {{\n        {listen}\n        client_max_body_size 4m;\n\
             location / {{\n            proxy_pass http://shop;\n            proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n            proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $remote_addr;\n\
             proxy_next_upstream error timeout http_502 http_503;\n            proxy_connect_timeout 1s;\n        }}\n    }}\n}}\n"
        );
        std::fs::write(p.join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { port, child, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = n.child.try_wait() {
                return Err(format!("({status}):\n{}", n.error_log()));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(n);
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within 15 s:\n{}",
                n.error_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// nginx's error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master, which takes its worker down with it (SIGKILL would orphan the
    /// worker), then SIGKILL only if it has not exited within 10 s.
    fn drop(&mut self) {
        // Already reaped (its PID may be another process's by now): nothing to stop.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its id.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 (cert.pem, key.pem in `dir`).
fn self_signed(dir: &Path) {
    let openssl = require("openssl", "openssl");
    let out = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

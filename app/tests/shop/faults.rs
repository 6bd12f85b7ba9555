//! Faults: the database appears late, goes away and returns; SIGTERM during a slow request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A MariaDB server of the test's own, stopped, hung and restarted at will.
pub use bookstore_test_support::MariaDb as OwnMariaDb;

/// `bookstore_requests_in_flight` of the shop on `port` (0 when it does not answer).
fn in_flight(port: u16) -> u32 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix("bookstore_requests_in_flight "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn status(http: &reqwest::Client, url: &str) -> u16 {
    match http.get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// The status of a GET and how long it took; a 503 must come quickly, not after a hang.
async fn timed_status(http: &reqwest::Client, url: &str) -> (u16, Duration) {
    let t0 = Instant::now();
    (status(http, url).await, t0.elapsed())
}

/// Asserts a quick 503 (within `bound`).
async fn quick_503(http: &reqwest::Client, url: &str, bound: Duration) {
    let (code, took) = timed_status(http, url).await;
    assert_eq!(code, 503, "{url}");
    assert!(
        took < bound,
        "{url}: the 503 took {took:?} (bound {bound:?})"
    );
}

async fn wait_for_status(http: &reqwest::Client, url: &str, want: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if status(http, url).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_starts_before_the_database_and_follows_its_outages() {
    let port = free_port();
    let mut maria = tokio::task::spawn_blocking(move || OwnMariaDb::install(port))
        .await
        .unwrap();
    let uploads = tempfile::tempdir().unwrap();
    // The app starts first, pointing at a port where nothing listens yet.
    let app = bookstore_app::start(config(
        &format!("{}/shop", maria.url()),
        uploads.path(),
        "early",
    ))
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = app.url();
    assert_eq!(
        status(&http, &format!("{base}/healthz")).await,
        200,
        "alive without a database"
    );
    assert_eq!(
        status(&http, &format!("{base}/readyz")).await,
        503,
        "not ready without a database"
    );
    quick_503(&http, &format!("{base}/books"), Duration::from_secs(2)).await;

    maria = tokio::task::spawn_blocking(move || {
        maria.start();
        maria
    })
    .await
    .unwrap();
    let db = TestDb::on(&maria.url()).await; // just to prove the server answers
    drop(db);
    // The app's database must exist: create it now.
    let pool = mysql_async::Pool::new(maria.url().as_str());
    {
        use mysql_async::prelude::*;
        let mut c = pool.get_conn().await.unwrap();
        c.query_drop("CREATE DATABASE IF NOT EXISTS shop")
            .await
            .unwrap();
    }
    pool.disconnect().await.ok();
    assert!(
        app.wait_ready(Duration::from_secs(60)).await,
        "the app never became ready"
    );
    assert!(
        wait_for_status(
            &http,
            &format!("{base}/readyz"),
            200,
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(status(&http, &format!("{base}/books")).await, 200);

    // The database goes away: readyz says 503, healthz stays 200.
    maria = tokio::task::spawn_blocking(move || {
        maria.stop();
        maria
    })
    .await
    .unwrap();
    assert!(
        wait_for_status(
            &http,
            &format!("{base}/readyz"),
            503,
            Duration::from_secs(20)
        )
        .await,
        "readyz stayed up"
    );
    assert_eq!(status(&http, &format!("{base}/healthz")).await, 200);
    // (The catalog may still come from its one-second cache; a book page needs the database.)
    quick_503(&http, &format!("{base}/books/1"), Duration::from_secs(2)).await;

    // It comes back: the app recovers without a restart.
    let maria = tokio::task::spawn_blocking(move || {
        maria.start();
        maria
    })
    .await
    .unwrap();
    assert!(
        wait_for_status(
            &http,
            &format!("{base}/readyz"),
            200,
            Duration::from_secs(30)
        )
        .await,
        "readyz never recovered"
    );
    assert!(
        wait_for_status(
            &http,
            &format!("{base}/books"),
            200,
            Duration::from_secs(10)
        )
        .await
    );
    app.shutdown().await;
    tokio::task::spawn_blocking(move || drop(maria))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_request_finish_then_exits_zero() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let port = free_port();
    let log: PathBuf = uploads.path().join("app.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bookstore-app"))
        .env("BOOKSTORE_DATABASE_URL", &db.url)
        .env("BOOKSTORE_LISTEN", format!("127.0.0.1:{port}"))
        .env("BOOKSTORE_UPLOADS_DIR", uploads.path().join("covers"))
        .env("BOOKSTORE_SECRET_KEY", "0123456789abcdef0123456789abcdef")
        .env("BOOKSTORE_DRAIN_SECONDS", "10")
        .env("BOOKSTORE_INSTANCE_ID", "drainer")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn bookstore-app");
    let http = reqwest::Client::new();
    let ready = wait_for_status(
        &http,
        &format!("http://127.0.0.1:{port}/readyz"),
        200,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        ready,
        "app not ready: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let result = tokio::task::spawn_blocking(move || {
        // A slow client: headers and half of the body now, the rest after SIGTERM.
        let body = "email=slow%40shop.test&password=slow-password";
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            &body[..10]
        )
        .unwrap();
        s.flush().unwrap();
        // Wait (no fixed sleep) until the shop serves the slow request: its metrics count it
        // in flight next to the metrics request itself.
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_flight(port) < 2 {
            assert!(Instant::now() < deadline, "the slow request never reached the shop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        // Then until the listener is closed (the drain started).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut refused = false;
        while !refused && Instant::now() < deadline {
            refused = TcpStream::connect(("127.0.0.1", port)).is_err();
            if !refused {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "exited before the slow request finished");
        s.write_all(&body.as_bytes()[10..]).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let deadline = Instant::now() + Duration::from_secs(15);
        let code = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (refused, resp, code)
    })
    .await
    .unwrap();
    let (refused, resp, code) = result;
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        resp.starts_with("HTTP/1.1 403"),
        "the slow request got no full answer: {resp:?}\n{logs}"
    );
    assert!(resp
        .to_ascii_lowercase()
        .contains("x-bookstore-instance: drainer"));
    assert!(
        refused,
        "new connections were still accepted while draining"
    );
    assert_eq!(code, Some(0), "exit code after SIGTERM; logs:\n{logs}");
    assert!(logs.contains("draining"));
}

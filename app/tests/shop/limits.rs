//! Limits of issue 17 (6, 8): the upload limit comes from BOOKSTORE_MAX_UPLOAD_MB, bodies are read
//! only after routing and the session check, and a cap on concurrent requests sheds the excess.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

async fn start_with(
    f: impl FnOnce(&mut bookstore_app::Config),
) -> (bookstore_app::RunningApp, TestDb, tempfile::TempDir) {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let mut cfg = config(&db.url, uploads.path(), "limits");
    f(&mut cfg);
    let app = bookstore_app::start(cfg).await.unwrap();
    assert!(app.wait_ready(Duration::from_secs(60)).await);
    (app, db, uploads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_configured_upload_limit_is_the_shops_limit() {
    let (app, db, _uploads) = start_with(|c| c.max_upload_mb = 8).await;
    let c = Client::new(&app.url());
    c.register("Uma", "uma@shop.test", "uma-password").await;
    // Just under 8 MiB (more than the old hard-coded 2 MB cover / 3 MB body) is accepted.
    let mut cover = png();
    cover.resize(8 * 1024 * 1024 - 1024, 0);
    let ok = c
        .add_book_raw("Big but allowed", "1", "1", Some(("big.png", cover)))
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let mut over = png();
    over.resize(8 * 1024 * 1024 + 10, 0);
    let refused = c
        .add_book_raw("Too big", "1", "1", Some(("over.png", over)))
        .await;
    assert_eq!(refused.status, 413);
    assert!(refused.body.contains("8 MiB"), "{}", refused.body);
    let books: i64 = db.scalar("SELECT COUNT(*) FROM books").await;
    assert_eq!(books, 1);
    assert!(app.shutdown().await);
}

/// Sends a request's head and `body` over a raw connection and returns the status line.
async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_are_refused_before_they_are_read_and_excess_requests_are_shed() {
    let (app, _db, _uploads) = start_with(|c| c.max_concurrent_requests = 3).await;
    let addr = app.addr;
    // An anonymous upload of 50 MiB is redirected to /login without its body being read.
    let t0 = Instant::now();
    let head = "POST /books/new HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 52428800\r\n\r\n";
    let status = raw(addr, head, b"--b\r\n").await;
    assert!(status.contains(" 303 "), "{status}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // A urlencoded form above 64 KiB is refused (413) whatever its route.
    let head = "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 70000\r\n\r\n";
    let status = raw(addr, head, &vec![b'a'; 70000]).await;
    assert!(status.contains(" 413 "), "{status}");
    // Three clients that announce a body and never send it hold the three permits...
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.available_requests() > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled requests never held the permits ({} free)",
            app.state.available_requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...so a page is shed at once (503) while /healthz still answers.
    let c = Client::new(&app.url());
    let deadline = Instant::now() + Duration::from_secs(10);
    let shed = loop {
        let t0 = Instant::now();
        let p = c.get("/books").await;
        if p.status == 503 || Instant::now() > deadline {
            break (p.status, t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(shed.0, 503, "the fourth request was not shed");
    assert!(
        shed.1 < Duration::from_secs(1),
        "shedding took {:?}",
        shed.1
    );
    assert_eq!(c.get("/healthz").await.status, 200);
    drop(stalled);
    // Once they hang up, pages answer again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.get("/books").await.status != 200 {
        assert!(Instant::now() < deadline, "pages never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.shutdown().await);
}

/// Dribbles `head` one byte every 100 ms (then keeps sending header bytes) until the server
/// closes the connection; returns how long that took, or None when it was still open after 20 s.
async fn dribble_until_closed(addr: std::net::SocketAddr, head: &'static [u8]) -> Option<Duration> {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let t0 = Instant::now();
    let mut bytes = head.iter().copied().chain(std::iter::repeat(b'a'));
    let mut buf = [0u8; 1024];
    while t0.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(n) if n > 0 => {}
                _ => return Some(t0.elapsed()),
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                let b = bytes.next().unwrap();
                if wr.write_all(&[b]).await.is_err() {
                    return Some(t0.elapsed());
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_client_is_disconnected_within_the_header_and_body_bounds() {
    let bound = Duration::from_secs(2);
    let (app, _db, _uploads) = start_with(|c| {
        c.header_read_timeout = bound;
        c.body_read_timeout = bound;
    })
    .await;
    let addr = app.addr;
    // Slowloris: headers sent a byte at a time, never finished, from a few connections at once.
    let slow: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(dribble_until_closed(
                addr,
                b"GET /books HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            ))
        })
        .collect();
    // Meanwhile the shop serves everyone else.
    let c = Client::new(&app.url());
    for _ in 0..5 {
        assert_eq!(c.get("/books").await.status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for s in slow {
        let took = s
            .await
            .unwrap()
            .expect("a slow client was never disconnected");
        assert!(
            took >= bound && took < bound + Duration::from_secs(3),
            "disconnected after {took:?} (bound {bound:?})"
        );
    }
    // A connection that sends nothing at all is closed too.
    let took = dribble_until_closed(addr, b"")
        .await
        .expect("a silent connection was never closed");
    assert!(took < bound + Duration::from_secs(3), "{took:?}");
    // A body that never arrives is answered 408 within the body bound, freeing its permit.
    let t0 = Instant::now();
    let head = "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n";
    let status = raw(addr, head, b"email=").await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(
        t0.elapsed() < bound + Duration::from_secs(3),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        app.state.available_requests(),
        app.state.config.max_concurrent_requests
    );
    assert_eq!(c.get("/books").await.status, 200);
    assert!(app.shutdown().await);
}

//! Documented outcomes: an unreachable URL and a URL that is not the shop fail fast (exit 1,
//! before goose starts); an instance shut down mid-run gives counted errors with their reason,
//! and the run still ends on time.

use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use bookstore_loadtests::{execute, execute_live, LoadtestError, Recorder, ScenarioKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{args, until, ReservedPort, Shop};

#[tokio::test]
async fn unreachable_url_fails_fast_with_a_clear_message() {
    // Bound but not listening: refused, and no one else can listen there meanwhile.
    let closed = ReservedPort::new();
    let url = format!("http://127.0.0.1:{}", closed.port);
    let t0 = Instant::now();
    let err = execute(&args(&url, ScenarioKind::Mix, 2, 5), false)
        .await
        .expect_err("nothing listens there");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "took {:?}",
        t0.elapsed()
    );
    assert!(matches!(err, LoadtestError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("cannot reach {url}: ")), "{msg}");
    assert!(msg.contains("refused"), "{msg}");
}

#[tokio::test]
async fn a_url_that_is_not_the_shop_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        // Answers a few requests, like any web server that is not the bookstore.
        for _ in 0..8 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
                .await;
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let err = execute(&args(&url, ScenarioKind::Browse, 2, 5), false)
        .await
        .expect_err("not the shop");
    assert!(
        matches!(err, LoadtestError::NotTheShop { status: 200, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("it is not the bookstore"), "{err}");
    server.abort();
}

/// A graceful shutdown mid-run (the kill with SIGKILL is in the root crate's tests/it/proof.rs,
/// against a `bookstore serve` process).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_shut_down_mid_run_gives_counted_errors_and_the_run_ends() {
    let shop = Shop::start("doomed").await;
    let mut a = args(&shop.url(), ScenarioKind::Browse, 3, 5);
    a.ramp = Duration::from_secs(0);
    a.max_error_rate = Some(1.0);
    a.gate_whole_run = true;
    let t0 = Instant::now();
    let live: Arc<Mutex<Option<Arc<Recorder>>>> = Arc::default();
    let l = live.clone();
    let run = tokio::spawn(async move {
        execute_live(&a, false, move |r| *l.lock().unwrap() = Some(r)).await
    });
    let mut rec = None;
    until(
        Duration::from_secs(30),
        "requests before the shutdown",
        || {
            rec = live.lock().unwrap().clone();
            rec.as_ref().is_some_and(|r| r.requests() >= 100)
        },
    )
    .await;
    let rec = rec.expect("recorder");
    let down_ms = rec.epoch_now_ms();
    shop.app.shutdown().await;

    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("no panic")
        .expect("the run completes: errors are results, not failures");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    let s = report.summary();
    assert!(report.totals.errors > 0, "{s}");
    assert!(report.totals.requests > report.totals.errors, "{s}");
    assert!(
        report
            .errors_by_reason
            .iter()
            .any(|(r, _)| r.contains("cannot connect")),
        "{s}"
    );
    // Windows that ended before the shutdown are clean; the errors come after it.
    let w_ms = report.aggregate.window_ms as i64;
    for w in &report.aggregate.windows {
        if (w.index + 1) * w_ms <= down_ms {
            assert_eq!(w.errors, 0, "window {} before the shutdown\n{s}", w.index);
        }
    }
    assert!(
        report
            .aggregate
            .windows
            .iter()
            .any(|w| (w.index + 1) * w_ms > down_ms && w.errors > 0),
        "{s}"
    );
    let failed = report.failed_gates();
    assert_eq!(failed.len(), 1, "{s}");
    assert_eq!(failed[0].flag, "--max-error-rate");
    drop(shop.db);
}

/// A server that closes every keep-alive connection when its second request arrives, without an
/// answer (what a reloading nginx does to connections idle at that instant, every time): each
/// such GET goes out once more on a new connection, counted as a retry, and nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_on_a_keep_alive_connection_the_server_closed_is_sent_again() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                for request in 1.. {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    head.clear();
                    if request == 2 {
                        return; // closed with the request unanswered
                    }
                    let ok = b"HTTP/1.1 200 OK\r\nX-Bookstore-Instance: a\r\nContent-Length: 2\r\n\r\nok";
                    if s.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let mut a = args(&url, ScenarioKind::Browse, 2, 3);
    a.only_path = Some("/healthz".into());
    let report = execute(&a, false).await.expect("the run");
    server.abort();
    assert!(report.totals.requests > 20, "{}", report.summary());
    assert_eq!(report.totals.errors, 0, "{}", report.summary());
    assert!(report.totals.retries > 10, "{}", report.summary());
    assert!(
        report
            .summary()
            .contains("GETs sent again on a new connection (the server had closed the idle one)"),
        "{}",
        report.summary()
    );
}

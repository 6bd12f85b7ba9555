//! Documented outcomes: an unreachable URL and a URL that is not the shop fail fast (exit 1,
//! before goose starts); an instance killed mid-run gives counted errors with their reason,
//! and the run still ends on time.

use std::time::{Duration, Instant};

use bookstore_loadtests::{execute, LoadtestError, ScenarioKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{args, free_port, Shop};

#[tokio::test]
async fn unreachable_url_fails_fast_with_a_clear_message() {
    let url = format!("http://127.0.0.1:{}", free_port());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_mid_run_gives_counted_errors_and_the_run_ends() {
    let shop = Shop::start("doomed").await;
    let mut a = args(&shop.url(), ScenarioKind::Browse, 3, 5);
    a.ramp = Duration::from_secs(0);
    a.max_error_rate = Some(1.0);
    let t0 = Instant::now();
    let run = tokio::spawn(async move { execute(&a, false).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    // The windows after the kill hold the errors; the first ones are clean.
    assert_eq!(report.windows[0].errors, 0, "{s}");
    assert!(report.windows.iter().skip(3).any(|w| w.errors > 0), "{s}");
    let failed = report.failed_gates();
    assert_eq!(failed.len(), 1, "{s}");
    assert_eq!(failed[0].flag, "--max-error-rate");
    drop(shop.db);
}

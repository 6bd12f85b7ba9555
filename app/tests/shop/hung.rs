//! A hung database (SIGSTOP, not a clean stop) during a purchase race across three instances:
//! with the default configuration, pages answer 503 within the shop's bound on waiting for the
//! database (`BOOKSTORE_DB_ACQUIRE_TIMEOUT_SECONDS`, `BOOKSTORE_DB_QUERY_TIMEOUT_SECONDS`), and
//! afterwards stock, purchases and payments reconcile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::faults::OwnMariaDb;

/// The shop's default bound on waiting for the database, for a connection or for queries.
const DB_BOUND: Duration = Duration::from_secs(bookstore_app::config::DEFAULT_DB_TIMEOUT_SECONDS);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_database_gets_quick_503s_and_the_books_reconcile() {
    const STOCK: i64 = 40;
    let port = free_port();
    let maria = tokio::task::spawn_blocking(move || {
        let mut m = OwnMariaDb::install(port);
        m.start();
        m
    })
    .await
    .unwrap();
    let db = TestDb::on(&maria.url()).await;
    let uploads = tempfile::tempdir().unwrap();
    let mut apps = Vec::new();
    for i in 0..3 {
        // The defaults: no test-only timeouts.
        let cfg = config(&db.url, uploads.path(), &format!("hung-{i}"));
        assert_eq!(
            (cfg.db_acquire_timeout, cfg.db_query_timeout),
            (DB_BOUND, DB_BOUND)
        );
        let app = bookstore_app::start(cfg).await.unwrap();
        assert!(app.wait_ready(Duration::from_secs(60)).await);
        apps.push(app);
    }
    let urls: Vec<String> = apps.iter().map(|a| a.url()).collect();
    let seller = Client::new(&urls[0]);
    seller
        .register("Hank", "hank@shop.test", "hank-password")
        .await;
    let book = seller
        .add_book("Frozen", "3", &STOCK.to_string(), None)
        .await;

    // Thirty signed-in buyers (sessions made in the database), each on one of the instances.
    let key = apps[0].state.config.secret_key.clone();
    let mut buyers = Vec::new();
    for i in 0..30 {
        db.exec(
            "INSERT INTO users (name, email, password_hash) VALUES (?, ?, 'x')",
            (format!("h{i}"), format!("h{i}@shop.test")),
        )
        .await;
        let id: u64 = db
            .scalar(&format!(
                "SELECT id FROM users WHERE email = 'h{i}@shop.test'"
            ))
            .await;
        let token = bookstore_app::db::random_token();
        db.exec(
            "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, NOW() + INTERVAL 1 DAY)",
            (bookstore_app::auth::token_hash(&token), id),
        )
        .await;
        let csrf_cookie = bookstore_app::db::random_token();
        let csrf = bookstore_app::auth::csrf_token(&key, &csrf_cookie, Some(&token));
        buyers.push((
            format!("bs_session={token}; bs_csrf={csrf_cookie}"),
            csrf,
            urls[i % 3].clone(),
        ));
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Each buyer buys one copy and pays, over and over, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|(cookie, csrf, base)| {
            let (http, stop) = (http.clone(), stop.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let r = http
                        .post(format!("{base}/books/{book}/buy"))
                        .header("cookie", &cookie)
                        .form(&[("csrf", csrf.as_str())])
                        .send()
                        .await;
                    let Ok(r) = r else { continue };
                    codes.push(r.status().as_u16());
                    let Some(pay) = r
                        .headers()
                        .get("location")
                        .map(|l| l.to_str().unwrap().to_string())
                    else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if let Ok(r) = http
                        .post(format!("{base}{pay}"))
                        .header("cookie", &cookie)
                        .form(&[("csrf", csrf.as_str()), ("method", "card")])
                        .send()
                        .await
                    {
                        codes.push(r.status().as_u16());
                    }
                }
                codes
            })
        })
        .collect();
    // Let the race run until some copies are sold, then hang the database.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.scalar::<i64>("SELECT COUNT(*) FROM payments").await < 5 {
        assert!(Instant::now() < deadline, "the race never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    maria.signal("STOP");
    let probe = reqwest::Client::builder()
        .timeout(DB_BOUND * 3)
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        for base in &urls {
            let t0 = Instant::now();
            let code = probe
                .get(format!("{base}/books/{book}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            let took = t0.elapsed();
            slowest = slowest.max(took);
            assert_eq!(
                code, 503,
                "round {round}, {base}: a hung database must give 503"
            );
        }
    }
    maria.signal("CONT");
    assert!(
        slowest < DB_BOUND + Duration::from_millis(1500),
        "a 503 took {slowest:?} while the database hung (the bound is {DB_BOUND:?})"
    );
    // Every instance recovers without a restart, and the race goes on for a moment.
    for base in &urls {
        let deadline = Instant::now() + Duration::from_secs(60);
        while probe
            .get(format!("{base}/books/{book}"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(Instant::now() < deadline, "{base} never recovered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut codes = Vec::new();
    for t in tasks {
        codes.extend(t.await.unwrap());
    }
    for c in &codes {
        assert!([303, 409, 503].contains(c), "unexpected status {c}");
    }
    // The books reconcile: every copy is either in stock or in a live order, never both or
    // neither; every paid order has exactly one payment of its total, and no payment is orphaned.
    let stock: i64 = db
        .scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
        .await;
    let ordered: i64 = db
        .scalar("SELECT COALESCE(SUM(quantity), 0) FROM purchases WHERE status <> 'expired'")
        .await;
    assert_eq!(stock + ordered, STOCK, "stock {stock} + ordered {ordered}");
    assert!(stock >= 0);
    let paid: i64 = db
        .scalar("SELECT COUNT(*) FROM purchases WHERE status IN ('paid', 'shipped')")
        .await;
    let payments: i64 = db.scalar("SELECT COUNT(*) FROM payments").await;
    let matching: i64 = db
        .scalar(
            "SELECT COUNT(*) FROM payments pm JOIN purchases p ON p.id = pm.purchase_id \
             WHERE p.status IN ('paid', 'shipped') AND pm.amount_cents = p.total_cents",
        )
        .await;
    assert_eq!((payments, matching), (paid, paid));
    assert!(paid >= 5);
    for app in apps {
        app.shutdown().await;
    }
    drop(db);
    tokio::task::spawn_blocking(move || drop(maria))
        .await
        .unwrap();
}

//! One instance: a short mix run completes cleanly, really buys and sells, sees one instance;
//! the documented cleanup removes every row it wrote and gives the stock back.

use bookstore_loadtests::{execute, safety, ScenarioKind};
use mysql_async::prelude::Queryable;

use crate::support::{args, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mix_run_on_one_instance_buys_sells_and_sees_one_instance() {
    let shop = Shop::start("solo").await;
    let stock_before = shop
        .db
        .scalar::<i64>("SELECT CAST(SUM(stock) AS SIGNED) FROM books")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = args(&shop.url(), ScenarioKind::Mix, 6, 6);
    a.expect_instances = Some(2);
    a.max_error_rate = Some(0.0);
    a.report = Some(dir.path().join("report"));
    let report = execute(&a, false).await.expect("the run completes");

    let t = &report.totals;
    println!("{}", report.summary());
    assert!(t.requests > 50, "too few requests: {}", report.summary());
    assert_eq!(t.errors, 0, "unexpected errors:\n{}", report.summary());
    assert!(
        report.errors_by_reason.is_empty(),
        "{:?}",
        report.errors_by_reason
    );

    // The timeline shows one instance, in every window with traffic.
    assert_eq!(report.instances.len(), 1);
    assert_eq!(report.instances[0].name, "solo");
    assert!(report
        .windows
        .iter()
        .filter(|w| w.requests > 0)
        .all(|w| w.instances == 1 && w.per_instance["solo"].share == 100.0));
    assert!(report.windows.len() >= 6, "1 s windows over ~7 s");
    assert!(!report.verdict.scaled_out);
    assert!(
        report
            .verdict
            .text
            .starts_with("did not scale out: 1 instance served at once the whole run (solo)"),
        "{}",
        report.verdict.text
    );

    // Real purchases, paid and shipped, and books put on sale with a cover.
    let shipped = shop
        .db
        .scalar::<i64>(
            "SELECT COUNT(*) FROM purchases p JOIN payments y ON y.purchase_id = p.id \
             JOIN delivery_assignments d ON d.purchase_id = p.id WHERE p.status = 'shipped'",
        )
        .await;
    assert!(
        shipped >= 1,
        "no shipped purchase in the database:\n{}",
        report.summary()
    );
    // Connections: each browser and the seller opened at least one, and every shopper journey
    // starts on a new one (a shipped purchase is a whole journey); each carried a request.
    assert!(
        t.connections >= shipped as u64 + 4 && t.connections <= t.requests,
        "{} connections for {shipped} shipped purchases, 3 browsers, 1 seller and {} requests",
        t.connections,
        t.requests
    );
    let shoppers = shop
        .db
        .scalar::<i64>("SELECT COUNT(*) FROM users WHERE email LIKE 'shopper-%@loadtest.invalid'")
        .await;
    assert!(shoppers >= 1);
    let sold = shop
        .db
        .scalar::<i64>("SELECT COUNT(*) FROM books WHERE title LIKE '[loadtest] Load test book %' AND cover IS NOT NULL AND price_cents = 1375")
        .await;
    assert!(
        sold >= 1,
        "no book put on sale and edited:\n{}",
        report.summary()
    );

    // Gates: the error-rate gate holds, --expect-instances 2 fails and says so.
    let failed = report.failed_gates();
    assert_eq!(failed.len(), 1, "{:?}", report.gates);
    assert_eq!(failed[0].flag, "--expect-instances");
    assert!(
        failed[0]
            .message
            .contains("at most 1 instance served at the same time, fewer than expected"),
        "{}",
        failed[0].message
    );

    // The report directory: ours, goose's, the JSON timeline, the chart.
    let d = dir.path().join("report");
    let html = std::fs::read_to_string(d.join("report.html")).expect("report.html");
    assert!(html.starts_with("<!doctype html>"), "not HTML");
    assert!(
        html.contains("<svg") && html.contains("did not scale out"),
        "no verdict or chart"
    );
    assert!(
        html.contains("href=\"goose.html\""),
        "goose's report is linked"
    );
    let goose = std::fs::read_to_string(d.join("goose.html")).expect("goose's goose.html");
    assert!(
        goose.contains("<html") || goose.contains("<!DOCTYPE"),
        "not HTML"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("timeline.json")).expect("timeline.json"))
            .expect("valid JSON");
    assert_eq!(json["verdict"]["peak"], 1);
    assert!(
        json["aggregate"]["windows"][0]["latency"].is_string(),
        "HDR histograms kept"
    );
    assert!(json["windows"].as_array().is_some_and(|w| !w.is_empty()));
    let svg = std::fs::read_to_string(d.join("chart.svg")).expect("chart.svg");
    assert!(
        svg.contains("<svg") && svg.contains("requests per second"),
        "chart without series"
    );

    // The summary table names windows, the verdict and the failed gate.
    let s = report.summary();
    assert!(s.contains("verdict: did not scale out"), "{s}");
    assert!(s.contains("gate FAILED: --expect-instances 2"), "{s}");
    shop.app.shutdown().await;

    // The cleanup in loadtests/README.md: nothing marked stays, the stock is back.
    let (pool, mut c) = shop.db.conn().await;
    c.query_drop(safety::CLEANUP_SQL)
        .await
        .expect("cleanup.sql runs");
    drop(c);
    pool.disconnect().await.ok();
    for (what, sql) in [
        (
            "accounts",
            "SELECT COUNT(*) FROM users WHERE email LIKE '%@loadtest.invalid'",
        ),
        (
            "books",
            "SELECT COUNT(*) FROM books WHERE title LIKE '[loadtest]%'",
        ),
        ("purchases", "SELECT COUNT(*) FROM purchases"),
        ("payments", "SELECT COUNT(*) FROM payments"),
        (
            "courier choices",
            "SELECT COUNT(*) FROM delivery_assignments",
        ),
    ] {
        assert_eq!(shop.db.scalar::<i64>(sql).await, 0, "load-test {what} left");
    }
    let stock_after = shop
        .db
        .scalar::<i64>("SELECT CAST(SUM(stock) AS SIGNED) FROM books")
        .await;
    assert_eq!(stock_after, stock_before, "the stock shoppers took is back");
    assert!(
        shop.db
            .scalar::<i64>("SELECT COUNT(*) FROM users WHERE email = 'seller@demo.invalid'")
            .await
            == 1,
        "real accounts stay"
    );
}

/// `--only-path` (the benchmark's mode): browsers fetch that one URL and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_path_requests_that_path_alone() {
    let shop = Shop::start("only").await;
    let mut a = args(&shop.url(), ScenarioKind::Browse, 3, 2);
    a.only_path = Some("/healthz".into());
    let report = execute(&a, false).await.expect("the run completes");
    assert!(report.totals.requests > 20, "{}", report.summary());
    assert_eq!(report.totals.errors, 0, "{}", report.summary());

    // A path the shop does not have: every request fails, under that path's name.
    a.only_path = Some("/no-such-page".into());
    a.duration = std::time::Duration::from_secs(1);
    let report = execute(&a, false).await.expect("the run completes");
    assert_eq!(
        report.totals.errors,
        report.totals.requests,
        "{}",
        report.summary()
    );
    let reasons: Vec<&str> = report
        .errors_by_reason
        .iter()
        .map(|(r, _)| r.as_str())
        .collect();
    assert!(
        !reasons.is_empty()
            && reasons
                .iter()
                .all(|r| r.starts_with("GET /no-such-page: HTTP 404")),
        "{reasons:?}"
    );

    // Not a path: refused before any request.
    a.only_path = Some("healthz".into());
    let err = execute(&a, false).await.expect_err("refused");
    assert!(err.to_string().contains("must start with /"), "{err}");
    shop.app.shutdown().await;
}

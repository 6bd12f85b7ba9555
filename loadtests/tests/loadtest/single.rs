//! One instance: a short mix run completes cleanly, really buys and sells, sees one instance.

use bookstore_loadtests::{execute, ScenarioKind};

use crate::support::{args, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mix_run_on_one_instance_buys_sells_and_sees_one_instance() {
    let shop = Shop::start("solo").await;
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
    assert!(t.connections >= 1, "connections are counted");

    // The timeline shows one instance, in every window with traffic.
    assert_eq!(report.instances.len(), 1);
    assert_eq!(report.instances[0].name, "solo");
    assert!(report
        .windows
        .iter()
        .filter(|w| w.requests > 0)
        .all(|w| w.instances == 1 && w.shares.get("solo") == Some(&100.0)));
    assert!(report.windows.len() >= 6, "1 s windows over ~7 s");
    assert!(!report.verdict.scaled_out);
    assert!(
        report
            .verdict
            .text
            .starts_with("did not scale out: 1 instance (solo)"),
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
    let shoppers = shop
        .db
        .scalar::<i64>("SELECT COUNT(*) FROM users WHERE email LIKE 'shopper-%@loadtest.invalid'")
        .await;
    assert!(shoppers >= 1);
    let sold = shop
        .db
        .scalar::<i64>("SELECT COUNT(*) FROM books WHERE title LIKE 'Load test book %' AND cover IS NOT NULL AND price_cents = 1375")
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
        failed[0].message.contains("saw 1 instance (solo)"),
        "{}",
        failed[0].message
    );

    // The report directory: goose's HTML report, the JSON timeline, the chart.
    let d = dir.path().join("report");
    let html = std::fs::read_to_string(d.join("report.html")).expect("goose's report.html");
    assert!(
        html.contains("<html") || html.contains("<!DOCTYPE"),
        "not HTML"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("timeline.json")).expect("timeline.json"))
            .expect("valid JSON");
    assert_eq!(json["verdict"]["total_instances"], 1);
    assert!(json["windows"].as_array().is_some_and(|w| !w.is_empty()));
    let svg = std::fs::read_to_string(d.join("chart.svg")).expect("chart.svg");
    assert!(
        svg.contains("<svg") && svg.contains("requests/s"),
        "chart without series"
    );

    // The summary table names windows, the verdict and the failed gate.
    let s = report.summary();
    assert!(s.contains("verdict: did not scale out"), "{s}");
    assert!(s.contains("gate FAILED: --expect-instances 2"), "{s}");
    shop.app.shutdown().await;
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

//! Scale-out: nginx balances three upstreams of which one runs at first; two start mid-run.

use std::time::Duration;

use bookstore_loadtests::{execute, ScenarioKind};

use crate::support::{args, free_port, start_instance, Nginx, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_out_from_one_to_three_instances_is_proven() {
    let shop = Shop::start("node-1").await;
    let (p2, p3) = (free_port(), free_port());
    let nginx = Nginx::start(&[shop.app.addr.port(), p2, p3], false);
    let url = format!("http://127.0.0.1:{}", nginx.port);

    let mut a = args(&url, ScenarioKind::Browse, 4, 10);
    a.ramp = Duration::from_secs(0);
    a.expect_instances = Some(3);
    a.max_error_rate = Some(0.0);
    let run = tokio::spawn(async move { execute(&a, false).await });

    // Two more instances join the same database after three seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n2 = start_instance(&shop.db, shop.uploads.path(), "node-2", p2).await;
    let n3 = start_instance(&shop.db, shop.uploads.path(), "node-3", p3).await;

    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("no panic")
        .expect("the run completes");
    let s = report.summary();
    println!("{s}");
    assert_eq!(report.totals.errors, 0, "{s}\n{}", nginx.error_log());

    let v = &report.verdict;
    assert!(v.scaled_out, "{s}");
    assert_eq!((v.initial_instances, v.total_instances), (1, 3), "{s}");
    assert!(
        v.text
            .starts_with("scaled out from 1 to 3 instances; first new instance (node-"),
        "{}",
        v.text
    );
    assert!(v.p95_before_ms.is_some() && v.p95_after_ms.is_some(), "{s}");

    // First seen: node-1 at the start, the others after they started (about 3 s in).
    let names: Vec<&str> = report.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names[0], "node-1", "{s}");
    assert!(
        names.contains(&"node-2") && names.contains(&"node-3"),
        "{s}"
    );
    assert!(report.instances[0].first_seen_s < 1.0, "{s}");
    for i in &report.instances[1..] {
        assert!(
            (2.5..10.0).contains(&i.first_seen_s),
            "{} first seen at {} s\n{s}",
            i.name,
            i.first_seen_s
        );
    }
    // The first window has one instance, the last three, each with a fair share.
    let busy: Vec<_> = report.windows.iter().filter(|w| w.requests > 0).collect();
    assert_eq!(busy[0].instances, 1, "{s}");
    // (The last window can be a short tail of a few requests; judge the last busy one.)
    let last = busy
        .iter()
        .rev()
        .find(|w| w.requests >= 20)
        .expect("busy windows");
    assert_eq!(last.instances, 3, "{s}");
    assert!(last.shares.values().all(|&p| p > 5.0), "{s}");
    assert!(
        report.passed(),
        "--expect-instances 3 holds: {:?}",
        report.gates
    );

    drop(nginx);
    for app in [n2, n3, shop.app] {
        app.shutdown().await;
    }
}

//! Through nginx with a self-signed certificate: --insecure works, without it the run
//! refuses to start and says why.

use std::time::Duration;

use bookstore_loadtests::{execute, LoadtestError, ScenarioKind};

use crate::support::{args, Nginx, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_with_a_self_signed_certificate_needs_insecure() {
    let shop = Shop::start("tls-node").await;
    let nginx = Nginx::start(&[shop.app.addr.port()], true);
    let url = format!("https://127.0.0.1:{}", nginx.port);

    let refused = execute(&args(&url, ScenarioKind::Browse, 2, 1), false).await;
    match refused {
        Err(e @ LoadtestError::Unreachable { .. }) => {
            assert!(e.to_string().contains("--insecure"), "{e}")
        }
        other => panic!("expected a certificate error, got {other:?}"),
    }

    let mut a = args(&url, ScenarioKind::Shop, 2, 3);
    a.insecure = true;
    a.ramp = Duration::from_secs(0);
    let report = execute(&a, false).await.expect("the run completes");
    let s = report.summary();
    assert!(report.totals.requests > 5, "{s}");
    assert_eq!(report.totals.errors, 0, "{s}\n{}", nginx.error_log());
    assert_eq!(report.instances.len(), 1, "{s}");
    assert_eq!(report.instances[0].name, "tls-node");
    drop(nginx);
    shop.app.shutdown().await;
}

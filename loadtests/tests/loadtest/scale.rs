//! Scale-out behind nginx: three upstreams of which one serves at first; two more join once
//! the load is flowing. The verdict counts instances serving at the same time.
//!
//! The two later instances are started (and ready) before the load, behind ports nginx lists
//! that refuse connections until they join: joining then takes no time, so the run's fixed
//! length cannot end before they have served, however slowly a busy machine starts a shop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bookstore_loadtests::{execute_live, Recorder, ScenarioKind};
use tokio::net::TcpStream;

use crate::support::{args, start_instance, until, Nginx, ReservedPort, Shop};

/// Opens the port `held` refused connections on, relaying each connection to the instance at
/// `to`: from now on the instance is one of nginx's upstreams.
fn join(held: ReservedPort, to: SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = held.listen();
    listener.set_nonblocking(true).expect("non-blocking");
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    tokio::spawn(async move {
        while let Ok((mut from, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut instance) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut from, &mut instance).await;
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_out_from_one_to_three_instances_is_proven() {
    let shop = Shop::start("node-1").await;
    // Held until the instances join: refused meanwhile, and no one else can take them.
    let (r2, r3) = (ReservedPort::new(), ReservedPort::new());
    let nginx = Nginx::start(&[shop.app.addr.port(), r2.port, r3.port], false);
    let url = format!("http://127.0.0.1:{}", nginx.port);
    let (n2, n3) = tokio::join!(
        start_instance(&shop.db, shop.uploads.path(), "node-2", 0),
        start_instance(&shop.db, shop.uploads.path(), "node-3", 0)
    );

    let mut a = args(&url, ScenarioKind::Browse, 4, 15);
    a.ramp = Duration::from_secs(0);
    a.expect_instances = Some(3);
    a.expect_scale_out = true;
    a.max_error_rate = Some(0.0);
    let live: Arc<Mutex<Option<Arc<Recorder>>>> = Arc::default();
    let l = live.clone();
    let run = tokio::spawn(async move {
        execute_live(&a, false, move |r| *l.lock().unwrap() = Some(r)).await
    });

    // Two more instances of the same database join once node-1 alone has served a few windows
    // (by time, not by a request count a busy machine may reach late in the run).
    let mut rec = None;
    until(Duration::from_secs(60), "the load to flow", || {
        rec = live.lock().unwrap().clone();
        rec.as_ref()
            .is_some_and(|r| r.requests() >= 20 && r.now_ms() >= 2500)
    })
    .await;
    let rec = rec.expect("recorder");
    let joined_s = f64::from(rec.now_ms()) / 1000.0;
    let relays = [join(r2, n2.addr), join(r3, n3.addr)];

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
    assert_eq!((v.initial, v.peak), (1, 3), "{s}");
    assert_eq!(v.initial_names, vec!["node-1".to_string()], "{s}");
    let out = v.first_scale_out.as_ref().expect("a scale-out");
    assert!(
        out.at_s >= joined_s,
        "scale-out at {} before the start at {joined_s}\n{s}",
        out.at_s
    );
    assert!(
        v.text
            .starts_with("scaled out: 1 → 3 instances serving at once; node-"),
        "{}",
        v.text
    );
    assert!(v.p95_before_ms.is_some() && v.p95_peak_ms.is_some(), "{s}");

    // First seen: node-1 at the start, the others only after they were started.
    let names: Vec<&str> = report.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names[0], "node-1", "{s}");
    assert!(
        names.contains(&"node-2") && names.contains(&"node-3"),
        "{s}"
    );
    assert!(report.instances[0].first_seen_s < 1.0, "{s}");
    for i in &report.instances[1..] {
        assert!(
            i.first_seen_s >= joined_s,
            "{} first seen at {} s, started at {joined_s} s\n{s}",
            i.name,
            i.first_seen_s
        );
    }
    // The judged windows: one serving at first, three at the end, each with a fair share.
    let judged: Vec<_> = report.windows.iter().filter(|w| w.judged).collect();
    assert_eq!(judged[0].serving.len(), 1, "{s}");
    let last = judged
        .iter()
        .rev()
        .find(|w| w.phase == bookstore_loadtests::timeline::Phase::Steady)
        .expect("a steady window");
    assert_eq!(last.serving.len(), 3, "{s}");
    assert!(last.per_instance.values().all(|i| i.share > 5.0), "{s}");
    assert!(report.passed(), "gates: {:?}", report.gates);

    drop(nginx);
    for r in relays {
        r.abort();
    }
    for app in [n2, n3, shop.app] {
        app.shutdown().await;
    }
}

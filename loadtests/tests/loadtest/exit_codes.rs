//! `run`, as `bookstore loadtest` calls it: exit 0 when gates hold, 3 when one fails, 1 when
//! the run cannot be made, 2 for bad flags. Plain threads: `run` builds its own runtime.

use std::process::ExitCode;
use std::time::Duration;

use bookstore_loadtests::{run, ScenarioKind, EXIT_ERROR, EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE};
use clap::Parser;

use crate::support::{args, ReservedPort, Shop};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: bookstore_loadtests::LoadtestArgs,
}

#[test]
fn flags_parse_with_defaults() {
    let cli = Cli::try_parse_from(["loadtest", "--url", "http://127.0.0.1:8080"]).expect("parse");
    let a = cli.args;
    assert_eq!(a.users, 10);
    assert_eq!(a.threads, None, "one thread per CPU unless asked");
    assert_eq!(a.ramp, Duration::from_secs(10));
    assert_eq!(a.duration, Duration::from_secs(60));
    assert_eq!(a.window, Duration::from_secs(10));
    assert_eq!(a.scenario, ScenarioKind::Mix);
    let cli = Cli::try_parse_from([
        "loadtest",
        "--url",
        "https://x.test",
        "--users",
        "50",
        "--ramp",
        "30s",
        "--duration",
        "5m",
        "--scenario",
        "shop",
        "--throttle",
        "100",
        "--insecure",
        "--report",
        "out",
        "--window",
        "500ms",
        "--max-p95",
        "250",
        "--max-error-rate",
        "0.5",
        "--expect-instances",
        "3",
        "--threads",
        "1",
    ])
    .expect("parse");
    let a = cli.args;
    assert_eq!(
        (a.users, a.throttle, a.expect_instances, a.threads),
        (50, Some(100), Some(3), Some(1))
    );
    assert_eq!(a.duration, Duration::from_secs(300));
    assert_eq!(a.window, Duration::from_millis(500));
    assert!(a.insecure);
    assert!(Cli::try_parse_from(["loadtest", "--url", "x", "--ramp", "soon"]).is_err());
    assert!(Cli::try_parse_from(["loadtest", "--url", "x", "--scenario", "dance"]).is_err());

    let cli = Cli::try_parse_from([
        "loadtest",
        "--url",
        "http://127.0.0.1:1",
        "--stages",
        "2:0s,2:40s,12:0s,12:60s,2:0s,2:60s",
        "--think",
        "1s..3s",
        "--watch-hpa",
        "shop/bookstore",
        "--expect-scale-in",
        "2",
    ])
    .expect("parse");
    let a = cli.args;
    assert_eq!(a.plan().total(), Duration::from_secs(160));
    assert_eq!(a.think.map(|t| t.to_string()).as_deref(), Some("1s..3s"));
    assert_eq!(a.watch_hpa, Some(("shop".into(), "bookstore".into())));
}

/// A bad --stages or --think is refused with exit 2 and a message naming the flag.
#[test]
fn bad_load_shapes_are_refused_naming_the_flag() {
    for (flag, value, says) in [
        ("--stages", "10:1m,,5:1m", "stage 2"),
        ("--stages", "ten:1m", "not a number of users"),
        ("--stages", "10:1m,5:500ms", "whole seconds"),
        ("--think", "3s..1s", "shortest pause comes first"),
        ("--think", "soon", "not a duration"),
        ("--watch-hpa", "bookstore", "NAMESPACE/NAME"),
    ] {
        let e = match Cli::try_parse_from(["loadtest", "--url", "http://127.0.0.1:1", flag, value])
        {
            Ok(_) => panic!("{flag} {value} was accepted"),
            Err(e) => e,
        };
        assert_eq!(e.exit_code(), 2, "{flag} {value}");
        let msg = e.to_string();
        assert!(
            msg.contains(flag) && msg.contains(says),
            "{flag} {value}: {msg}"
        );
    }
    let e = match Cli::try_parse_from([
        "loadtest", "--url", "http://x", "--stages", "1:1s", "--users", "3",
    ]) {
        Ok(_) => panic!("--stages with --users was accepted"),
        Err(e) => e,
    };
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("--stages"), "{e}");
}

#[test]
fn exit_codes_say_ok_gate_failed_or_error() {
    assert_eq!(EXIT_OK, 0);
    assert_eq!((EXIT_GATE_FAILED, EXIT_ERROR), (3, 1));
    // Bound but not listening: refused, and no one else can listen there meanwhile.
    let closed = ReservedPort::new();
    let down = format!("http://127.0.0.1:{}", closed.port);
    assert_eq!(
        run(args(&down, ScenarioKind::Browse, 1, 1)),
        ExitCode::from(EXIT_ERROR)
    );
    // --threads 0 is refused before any runtime is built (tokio would panic on it): bad usage.
    let mut zero = args(&down, ScenarioKind::Browse, 1, 1);
    zero.threads = Some(0);
    assert_eq!(run(zero), ExitCode::from(EXIT_USAGE));
    // Writing to a shop that is not on this machine needs --yes-write.
    let elsewhere = args("https://shop.example.com", ScenarioKind::Shop, 1, 1);
    assert_eq!(run(elsewhere), ExitCode::from(EXIT_USAGE));

    // The shop runs on a runtime of its own while `run` makes its own.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let shop = rt.block_on(Shop::start("exit-node"));
    let url = shop.url();
    let mut a = args(&url, ScenarioKind::Browse, 2, 1);
    a.ramp = Duration::ZERO;
    a.expect_instances = Some(1);
    // Both runtimes: one thread (current-thread) and two workers (multi-thread).
    a.threads = Some(1);
    assert_eq!(run(a.clone()), ExitCode::from(EXIT_OK));
    a.threads = Some(2);
    assert_eq!(run(a.clone()), ExitCode::from(EXIT_OK));
    a.threads = None;
    a.expect_instances = Some(2);
    assert_eq!(run(a.clone()), ExitCode::from(EXIT_GATE_FAILED));
    a.expect_instances = None;
    a.max_p95 = Some(0.0001);
    assert_eq!(run(a), ExitCode::from(EXIT_GATE_FAILED));
    rt.block_on(async move {
        shop.app.shutdown().await;
        drop(shop.db);
    });
}

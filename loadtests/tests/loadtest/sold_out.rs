//! A shopper who loses the last copy to another between the book page and the buy: the real
//! shop refuses the buy (HTTP 409) and sells nothing, and the load test counts that as the
//! right answer it is, not as an error of the deployment.

use std::time::{Duration, Instant};

use bookstore_loadtests::{execute, ScenarioKind};
use mysql_async::prelude::Queryable;

use crate::support::{args, Shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buy_that_loses_the_last_copy_is_counted_and_is_not_an_error() {
    let shop = Shop::start("solo").await;
    shop.db.exec("UPDATE books SET stock = 1", ()).await;
    // Another shopper takes every last copy and has not committed yet: the shop's pages still
    // show the copies (consistent reads), and a buy's guarded UPDATE waits for these row locks.
    let (pool, mut rival) = shop.db.conn().await;
    rival.query_drop("BEGIN").await.expect("begin");
    rival
        .query_drop("UPDATE books SET stock = 0")
        .await
        .expect("take the copies");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = args(&shop.url(), ScenarioKind::Shop, 1, 20);
    a.max_error_rate = Some(0.0);
    a.report = Some(dir.path().join("report"));
    let run = tokio::spawn(async move { execute(&a, false).await });

    // The shopper's buy is waiting for the rival's locks; then the rival commits.
    let deadline = Instant::now() + Duration::from_secs(18);
    loop {
        let waiting = buys_running(&mut rival).await;
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no buy waited for the rival's locks within 18 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rival.query_drop("COMMIT").await.expect("commit");
    // The refused buy sold nothing; then the shelves are restocked for the rest of the run.
    let mut purchases = None;
    for _ in 0..250 {
        let in_stock: i64 = rival
            .query_first("SELECT COUNT(*) FROM books WHERE stock > 0")
            .await
            .expect("stock")
            .unwrap_or(-1);
        assert_eq!(in_stock, 0, "the rival took every copy");
        let active = buys_running(&mut rival).await;
        if active == 0 {
            purchases = rival
                .query_first::<i64, _>("SELECT COUNT(*) FROM purchases")
                .await
                .expect("purchases");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rival
        .query_drop("UPDATE books SET stock = 1000")
        .await
        .expect("restock");
    drop(rival);
    pool.disconnect().await.ok();
    assert_eq!(purchases, Some(0), "the refused buy created no purchase");

    let report = run
        .await
        .expect("the run's task")
        .expect("the run passes its 0% error gate");
    let t = &report.totals;
    println!("{}", report.summary());
    assert_eq!(t.sold_out, 1, "{}", report.summary());
    assert_eq!(t.errors, 0, "{}", report.summary());
    assert!(
        report.summary().contains(
            "1 buy found the copies gone since the book page (HTTP 409 from the shop; not errors)"
        ),
        "{}",
        report.summary()
    );
    // The shopper went on: later journeys bought, paid and shipped.
    let shipped = shop
        .db
        .scalar::<i64>("SELECT COUNT(*) FROM purchases WHERE status = 'shipped'")
        .await;
    assert!(shipped >= 1, "no purchase after the restock");
}

/// The shop's buys whose guarded stock UPDATE is running or waiting for a lock.
async fn buys_running(c: &mut mysql_async::Conn) -> i64 {
    c.query_first(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE INFO LIKE 'UPDATE books SET stock = stock - %'",
    )
    .await
    .expect("processlist")
    .unwrap_or(0)
}

//! Two instances on one database and one uploads directory behave as one shop.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_sessions_and_covers() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let a = bookstore_app::start(config(&db.url, uploads.path(), "instance-a"))
        .await
        .unwrap();
    let b = bookstore_app::start(config(&db.url, uploads.path(), "instance-b"))
        .await
        .unwrap();
    assert!(
        a.wait_ready(Duration::from_secs(60)).await && b.wait_ready(Duration::from_secs(60)).await
    );

    let on_a = Client::new(&a.url());
    on_a.register("Ivy", "ivy@shop.test", "ivy-password").await;
    let book = on_a
        .add_book("Shared cover", "7", "2", Some(("c.png", png())))
        .await;
    // The same browser (same cookies) now talks to instance B.
    let on_b = on_a.with_base(&b.url());
    let orders = on_b.get("/orders").await;
    assert_eq!(orders.status, 200, "the session made on A is valid on B");
    assert_eq!(orders.instance.as_deref(), Some("instance-b"));
    assert!(orders.body.contains("Ivy"));
    let page = on_b.get(&format!("/books/{book}")).await;
    let cover = &page.body[page.body.find("/uploads/").expect("cover link")..];
    let cover = &cover[..cover.find('"').unwrap()];
    let img = on_b
        .http
        .get(format!("{}{cover}", b.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["x-bookstore-instance"], "instance-b");
    assert_eq!(img.bytes().await.unwrap().as_ref(), png().as_slice());
    // A form rendered by A can be posted to B (shared key).
    let buyer = Client::new(&a.url());
    buyer.register("Jon", "jon@shop.test", "jon-password").await;
    let form_on_a = buyer.get(&format!("/books/{book}")).await;
    assert_eq!(form_on_a.instance.as_deref(), Some("instance-a"));
    let bought = buyer
        .with_base(&b.url())
        .post(
            &format!("/books/{book}/buy"),
            &[("csrf", &form_on_a.csrf())],
        )
        .await;
    assert_eq!(bought.status, 303);
    // Both ran migrations against the same schema at once without harm.
    let versions: i64 = db.scalar("SELECT COUNT(*) FROM schema_migrations").await;
    assert_eq!(versions, bookstore_app::db::MIGRATIONS.len() as i64);
    let providers: i64 = db.scalar("SELECT COUNT(*) FROM delivery_providers").await;
    assert_eq!(providers, 4);
    assert!(a.shutdown().await && b.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_instances_migrate_one_database_at_once() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let mut apps = Vec::new();
    for i in 0..10 {
        apps.push(
            bookstore_app::start(config(&db.url, uploads.path(), &format!("i{i}")))
                .await
                .unwrap(),
        );
    }
    for app in &apps {
        assert!(
            app.wait_ready(Duration::from_secs(120)).await,
            "an instance never became ready"
        );
    }
    let tables: i64 = db
        .scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()")
        .await;
    assert_eq!(tables, 9);
    let admins: i64 = db.scalar("SELECT COUNT(*) FROM users WHERE is_admin").await;
    assert_eq!(admins, 1);
    for app in apps {
        app.shutdown().await;
    }
}

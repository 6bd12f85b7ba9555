//! Issue 14 item 3: the database password rotates under a running shop. The shop logs in as a
//! user of its own, reads the password from `BOOKSTORE_DATABASE_PASSWORD_FILE`, and when the
//! server refuses a login (error 1045) re-reads that file instead of waiting for a restart.
//! The user is made by `bookstore-app create-app-user` (what objective 2's first boot runs as RDS's
//! master user), which is also how its password is changed.

use std::time::{Duration, Instant};

use bookstore_app::db::Db;
use bookstore_app::start;
use mysql_async::prelude::*;

use crate::common::*;

/// Runs `sql` as the test server's administrator.
async fn admin(sql: &str) {
    let pool = mysql_async::Pool::new(bookstore_test_support::server_url().as_str());
    let mut c = pool
        .get_conn()
        .await
        .expect("connect as the test server's admin");
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(c);
    pool.disconnect().await.ok();
}

/// Ends every session of `user` (what a failover or the pool's idle timeout does), so that the
/// next queries need new logins.
async fn kill_sessions(user: &str) {
    let pool = mysql_async::Pool::new(bookstore_test_support::server_url().as_str());
    let mut c = pool.get_conn().await.expect("admin");
    let ids: Vec<u64> = c
        .exec(
            "SELECT id FROM information_schema.processlist WHERE user = ?",
            (user,),
        )
        .await
        .expect("processlist");
    for id in ids {
        let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
    }
    drop(c);
    pool.disconnect().await.ok();
}

async fn readyz(http: &reqwest::Client, base: &str) -> u16 {
    match http.get(format!("{base}/readyz")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_password_is_re_read_from_its_file_within_seconds() {
    let db = TestDb::new().await;
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let user = format!("rot_{}", &name[name.len() - 8..]);
    let uploads = tempfile::tempdir().unwrap();
    // The administrator's view of the shop's database (RDS's master user on AWS).
    let master = Db::new(&config(&db.url, uploads.path(), "admin")).unwrap();
    master
        .ensure_app_user(&user, "first-password-0123")
        .await
        .expect("create the shop's user");
    // Idempotent: a second boot runs it again.
    master
        .ensure_app_user(&user, "first-password-0123")
        .await
        .expect("again");

    let opts = mysql_async::Opts::from_url(&db.url).unwrap();
    let url = format!(
        "mysql://{user}@{}:{}/{name}",
        opts.ip_or_hostname(),
        opts.tcp_port()
    );
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("database_password");
    std::fs::write(&file, "first-password-0123\n").unwrap();
    let mut cfg = config(&url, uploads.path(), "rotation");
    cfg.database_password = Some("first-password-0123".into());
    cfg.database_password_file = Some(file.clone());
    let app = start(cfg).await.expect("start");
    assert!(app.wait_ready(Duration::from_secs(60)).await, "not ready");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = app.url();

    // Least privilege: its own database's rows and schema, nothing server-wide.
    let as_shop = mysql_async::Pool::new(
        mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url).unwrap())
            .pass(Some("first-password-0123")),
    );
    let mut c = as_shop.get_conn().await.expect("log in as the shop's user");
    let refused = c.query_drop("CREATE DATABASE bs_not_allowed").await;
    assert!(refused.is_err(), "the shop's user may create databases");
    let refused = c.query_drop("SELECT COUNT(*) FROM mysql.user").await;
    assert!(refused.is_err(), "the shop's user reads mysql.user");
    drop(c);
    as_shop.disconnect().await.ok();

    // The rotation: the server changes the password, the pool's sessions go away; the file
    // still holds the old one, so logins fail (this shows the old password is really gone).
    master
        .ensure_app_user(&user, "second-password-456")
        .await
        .expect("change the password");
    kill_sessions(&user).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&http, &base).await != 503 {
        assert!(Instant::now() < deadline, "the old password still logs in");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The new password reaches the file (the secrets refresh writes it atomically).
    let tmp = secrets.path().join(".database_password.new");
    std::fs::write(&tmp, "second-password-456\n").unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    let written = Instant::now();
    while readyz(&http, &base).await != 200 {
        assert!(
            written.elapsed() < Duration::from_secs(10),
            "the shop did not log in with the new password within 10 s of the file changing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = written.elapsed();
    eprintln!("recovered {took:?} after the password file changed");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Pages that need the database answer again.
    let page = Client::new(&base).get("/").await;
    assert_eq!(page.status, 200, "{}", page.body);

    assert!(app.shutdown().await, "drain");
    master.close().await;
    admin(&format!("DROP USER '{user}'@'%'")).await;
    drop(db);
}

/// Objective 2 renders the pool size into the URL (`?pool_min=0&pool_max=N`): such a pool keeps
/// its idle connections like the default one instead of reconnecting for every query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_sized_in_the_url_reuses_its_connections() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let url = format!("{}?pool_min=0&pool_max=4", db.url);
    let pool = Db::new(&config(&url, uploads.path(), "pool")).unwrap();
    assert_eq!(pool.max, 4);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut c = pool.conn().await.expect("connect");
        let id: Option<u64> = c.query_first("SELECT CONNECTION_ID()").await.unwrap();
        ids.push(id.unwrap());
        drop(c);
        // The pool takes a returned connection back in the background.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "a new connection per query: {ids:?}"
    );
    pool.close().await;
}

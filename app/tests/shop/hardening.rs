//! Issue 17 item 9: metrics off the public port, CSP and no-store, lists that say when they are
//! cut off, sessions and cookies that do what the user asked.

use std::time::Duration;

use crate::common::*;

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_served_on_their_own_address_only() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let mut cfg = config(&db.url, uploads.path(), "metrics");
    cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = bookstore_app::start(cfg).await.unwrap();
    assert!(app.wait_ready(Duration::from_secs(60)).await);
    let c = Client::new(&app.url());
    assert_eq!(c.get("/books").await.status, 200);
    assert_eq!(c.get("/metrics").await.status, 404, "public port");
    let m = Client::new(&format!("http://{}", app.metrics_addr.unwrap()))
        .get("/metrics")
        .await;
    assert_eq!(m.status, 200);
    assert!(
        m.body
            .contains("bookstore_requests_total{method=\"GET\",route=\"/books\",status=\"200\"} 1"),
        "{}",
        m.body
    );
    assert!(app.shutdown().await);
    // Without a metrics address, the shop's port answers /metrics to a direct loopback client
    // only, never through a proxy.
    let t = spawn_app().await;
    let c = Client::new(&t.url());
    assert_eq!(c.get("/metrics").await.status, 200);
    let proxied = c
        .http
        .get(format!("{}/metrics", t.url()))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status().as_u16(), 404);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_carry_csp_and_forms_are_never_stored() {
    let t = spawn_app().await;
    let r = reqwest::get(format!("{}/login", t.url())).await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let csp = h("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h("cache-control").as_deref(), Some("no-store"));
    let body = r.text().await.unwrap();
    assert!(body.contains("name=\"csrf\""));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_session_cookie_does_not_log_the_user_straight_out() {
    let t = spawn_app().await;
    Client::new(&t.url())
        .register("Stella", "stella@shop.test", "stella-password")
        .await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookies = format!("bs_session={}; bs_csrf={}", "a".repeat(64), "b".repeat(64));
    let page = plain
        .get(format!("{}/login", t.url()))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();
    let page = Page {
        status: 200,
        location: None,
        instance: None,
        body: page.text().await.unwrap(),
    };
    let r = plain
        .post(format!("{}/login", t.url()))
        .header("cookie", &cookies)
        .form(&[
            ("csrf", page.csrf().as_str()),
            ("email", "stella@shop.test"),
            ("password", "stella-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let sessions: Vec<String> = set_cookies(&r)
        .into_iter()
        .filter(|c| c.starts_with("bs_session="))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(!sessions[0].starts_with("bs_session=;"), "{sessions:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registering_while_signed_in_ends_the_old_session() {
    let t = spawn_app().await;
    let c = Client::new(&t.url());
    c.register("First", "first@shop.test", "first-password")
        .await;
    c.register("Second", "second@shop.test", "second-password")
        .await;
    let first: i64 = t
        .db
        .scalar("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'first@shop.test'")
        .await;
    assert_eq!(first, 0, "the first account's session is still alive");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn long_lists_say_they_are_cut_off() {
    let t = spawn_app().await;
    t.db.exec(
        "INSERT INTO users (name, email, password_hash) \
         SELECT CONCAT('u', seq), CONCAT('u', seq, '@bulk.test'), 'x' FROM seq_1_to_1001",
        (),
    )
    .await;
    let admin = Client::new(&t.url());
    assert_eq!(
        admin
            .login("admin@shop.test", "admin-password")
            .await
            .status,
        303
    );
    let page = admin.get("/admin/users").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Only the newest 1000 are listed here."),
        "no cut-off notice"
    );
    assert!(page.body.contains("u1001@bulk.test") && !page.body.contains("admin@shop.test"));
    t.stop().await;
}

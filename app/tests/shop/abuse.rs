//! The abuse paths of issue 17, each with the concurrency that used to break it: login throttling
//! under a burst, pool starvation by a login/registration flood, unpaid orders holding stock,
//! a seller's stale edit undoing sales, and admin seeding.

use std::time::{Duration, Instant};

use crate::common::*;

/// The value of the hidden input `name` in a page.
fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let i = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in page:\n{}", page.body));
    let rest = &page.body[i + marker.len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_wrong_passwords_gets_at_most_the_limit_evaluated() {
    let t = spawn_app().await;
    let base = t.url();
    Client::new(&base)
        .register("Victim", "victim@shop.test", "victim-password")
        .await;
    let attacker = Client::new(&base);
    let csrf = attacker.get("/login").await.csrf();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (c, csrf) = (attacker.clone(), csrf.clone());
            tokio::spawn(async move {
                let pw = format!("wrong-{i}");
                c.post(
                    "/login",
                    &[
                        ("csrf", &csrf),
                        ("email", "victim@shop.test"),
                        ("password", &pw),
                    ],
                )
                .await
                .status
            })
        })
        .collect();
    let (mut evaluated, mut throttled) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            401 => evaluated += 1,
            429 => throttled += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(
        evaluated <= 5,
        "{evaluated} passwords were checked; the limit is 5 ({throttled} throttled)"
    );
    assert_eq!(evaluated + throttled, 200);
    // The owner is throttled too (the window holds), then it clears with the window.
    let owner = Client::new(&base);
    assert_eq!(
        owner
            .login("victim@shop.test", "victim-password")
            .await
            .status,
        429
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_answer_while_logins_and_registrations_flood() {
    let t = spawn_app().await;
    let base = t.url();
    let seller = Client::new(&base);
    seller
        .register("Sam", "sam@shop.test", "sam-password")
        .await;
    let book = seller.add_book("Steady", "5", "5", None).await;
    let flooder = Client::new(&base);
    let csrf = flooder.get("/login").await.csrf();
    let flood_done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 200 logins for unknown e-mails (each hashes a dummy password) and 40 registrations, each
    // from its own forwarded address so that no per-client throttle stops them early.
    let mut flood = Vec::new();
    for i in 0..240u32 {
        let (c, csrf) = (flooder.clone(), csrf.clone());
        flood.push(tokio::spawn(async move {
            let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            let email = format!("flood{i}@shop.test");
            let form: Vec<(&str, &str)> = if i % 6 == 0 {
                vec![
                    ("csrf", &csrf),
                    ("name", "Flood"),
                    ("email", &email),
                    ("password", "flood-password"),
                ]
            } else {
                vec![
                    ("csrf", &csrf),
                    ("email", &email),
                    ("password", "wrong-password"),
                ]
            };
            let path = if i % 6 == 0 { "register" } else { "login" };
            c.http
                .post(format!("{}/{path}", c.base))
                .header("x-forwarded-for", ip)
                .form(&form)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let done = flood_done.clone();
    let waiter = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for f in flood {
            statuses.push(f.await.unwrap());
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        statuses
    });
    // A visitor reads a book page (not cached) over and over while the flood lasts.
    let visitor = Client::new(&base);
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    tokio::time::sleep(Duration::from_millis(100)).await;
    while !flood_done.load(std::sync::atomic::Ordering::SeqCst) {
        let t0 = Instant::now();
        let p = visitor.get(&format!("/books/{book}")).await;
        slowest = slowest.max(t0.elapsed());
        assert_eq!(p.status, 200, "{}", p.body);
        probes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = waiter.await.unwrap();
    assert!(
        probes >= 3,
        "the flood ended before the visitor could measure ({probes} probes)"
    );
    assert!(
        slowest < Duration::from_millis(1500),
        "a book page took {slowest:?} during the flood ({probes} probes)"
    );
    // Every flood request got an answer: wrong password, throttled, shed, or registered.
    for s in &statuses {
        assert!([303, 401, 429, 503].contains(s), "flood status {s}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaid_reservations_expire_and_return_the_stock() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let mut cfg = config(&db.url, uploads.path(), "reserve");
    cfg.reservation = Duration::from_secs(2);
    let app = bookstore_app::start(cfg).await.unwrap();
    assert!(app.wait_ready(Duration::from_secs(60)).await);
    let base = app.url();
    let seller = Client::new(&base);
    seller
        .register("Rae", "rae@shop.test", "rae-password")
        .await;
    let book = seller.add_book("Scarce", "9", "1", None).await;
    let hoarder = Client::new(&base);
    hoarder
        .register("Hoarder", "hoarder@shop.test", "hoarder-password")
        .await;
    let csrf = hoarder.get(&format!("/books/{book}")).await.csrf();
    let held = hoarder
        .post(&format!("/books/{book}/buy"), &[("csrf", &csrf)])
        .await;
    assert_eq!(held.status, 303);
    let pay_path = held.location.unwrap();
    let pay_page = hoarder.get(&pay_path).await;
    assert!(
        pay_page.body.contains("Reserved until"),
        "{}",
        pay_page.body
    );
    assert!(hoarder.get("/orders").await.body.contains("reserved until"));
    // Sold out while reserved.
    let buyer = Client::new(&base);
    buyer
        .register("Reader", "reader@shop.test", "reader-password")
        .await;
    let bcsrf = buyer.get(&format!("/books/{book}")).await.csrf();
    assert_eq!(
        buyer
            .post(&format!("/books/{book}/buy"), &[("csrf", &bcsrf)])
            .await
            .status,
        409
    );
    // Once the reservation lapses the copy is back and the other reader gets it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let p = buyer
            .post(&format!("/books/{book}/buy"), &[("csrf", &bcsrf)])
            .await;
        if p.status == 303 || Instant::now() > deadline {
            break p.status;
        }
        assert_eq!(p.status, 409, "{}", p.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got, 303, "the reserved copy never came back");
    // The lapsed order can no longer be paid.
    let pcsrf = hoarder.get("/orders").await.csrf();
    let late = hoarder
        .post(&pay_path, &[("csrf", &pcsrf), ("method", "card")])
        .await;
    assert_eq!(late.status, 409, "{}", late.body);
    let stock: i64 = db
        .scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
        .await;
    let expired: i64 = db
        .scalar("SELECT COUNT(*) FROM purchases WHERE status = 'expired'")
        .await;
    let pending: i64 = db
        .scalar("SELECT COUNT(*) FROM purchases WHERE status = 'pending'")
        .await;
    let payments: i64 = db.scalar("SELECT COUNT(*) FROM payments").await;
    assert_eq!((stock, expired, pending, payments), (0, 1, 1, 0));
    assert!(app.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sellers_edit_applies_its_stock_change_to_sales_made_meanwhile() {
    let t = spawn_app().await;
    let base = t.url();
    let seller = Client::new(&base);
    seller
        .register("Sue", "sue@shop.test", "sue-password")
        .await;
    let book = seller.add_book("Busy", "4", "10", None).await;
    let edit = seller.get(&format!("/books/{book}/edit")).await;
    let (csrf, loaded) = (edit.csrf(), hidden(&edit, "stock_loaded"));
    assert_eq!(loaded, "10");
    let buy = |name: &'static str| {
        let base = base.clone();
        async move {
            let c = Client::new(&base);
            c.register(name, &format!("{name}@shop.test"), "buyer-password")
                .await;
            let csrf = c.get(&format!("/books/{book}")).await.csrf();
            c.post(&format!("/books/{book}/buy"), &[("csrf", &csrf)])
                .await
                .status
        }
    };
    // Three sales after the seller opened the form, then three more racing the save.
    for name in ["b1", "b2", "b3"] {
        assert_eq!(buy(name).await, 303);
    }
    let form = |title: &str, stock: &str| {
        reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .text("title", title.to_string())
            .text("author", "Sue")
            .text("description", "")
            .text("price", "4.00")
            .text("stock", stock.to_string())
            .text("stock_loaded", loaded.clone())
    };
    let path = format!("/books/{book}/edit");
    let (saved, r4, r5, r6) = tokio::join!(
        seller.post_multipart(&path, form("Busy, 2nd ed.", "10")),
        buy("b4"),
        buy("b5"),
        buy("b6"),
    );
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!((r4, r5, r6), (303, 303, 303));
    let stock: i64 =
        t.db.scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
            .await;
    let sold: i64 =
        t.db.scalar("SELECT COALESCE(SUM(quantity), 0) FROM purchases")
            .await;
    assert_eq!(
        (stock, sold),
        (4, 6),
        "the edit left the stock alone, the sales took 6"
    );
    // Adding 5 to what the form showed adds 5 to what is there now.
    let saved = seller
        .post_multipart(&path, form("Busy, 2nd ed.", "15"))
        .await;
    assert_eq!(saved.status, 303);
    let stock: i64 =
        t.db.scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
            .await;
    assert_eq!(stock, 9);
    // Taking away more than is left is refused: the form is stale.
    let stale = seller
        .post_multipart(&path, form("Busy, 2nd ed.", "0"))
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);
    let stock: i64 =
        t.db.scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
            .await;
    assert_eq!(stock, 9);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_seeding_never_promotes_a_stranger_and_uses_the_configured_password() {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().unwrap();
    let run = |admin: Option<(&str, &str)>| {
        let mut cfg = config(&db.url, uploads.path(), "seed");
        cfg.admin = admin.map(|(e, p)| (e.to_string(), p.to_string()));
        async move {
            let app = bookstore_app::start(cfg).await.unwrap();
            assert!(app.wait_ready(Duration::from_secs(60)).await);
            app
        }
    };
    // Mallory registers the admin address before the operator configures it.
    let app = run(None).await;
    Client::new(&app.url())
        .register("Mallory", "boss@shop.test", "mallory-password")
        .await;
    assert!(app.shutdown().await);
    let app = run(Some(("boss@shop.test", "boss-password-1"))).await;
    let admin: i64 = db
        .scalar("SELECT is_admin + 0 FROM users WHERE email = 'boss@shop.test'")
        .await;
    assert_eq!(admin, 0, "the stranger's account was promoted");
    let mallory = Client::new(&app.url());
    assert_eq!(
        mallory
            .login("boss@shop.test", "mallory-password")
            .await
            .status,
        303
    );
    assert_eq!(mallory.get("/admin/users").await.status, 403);
    assert!(app.shutdown().await);
    // The configured password is the admin's password, also after it changes.
    let app = run(Some(("chief@shop.test", "chief-password-1"))).await;
    assert!(app.shutdown().await);
    let app = run(Some(("chief@shop.test", "chief-password-2"))).await;
    let c = Client::new(&app.url());
    assert_eq!(
        c.login("chief@shop.test", "chief-password-1").await.status,
        401
    );
    assert_eq!(
        c.login("chief@shop.test", "chief-password-2").await.status,
        303
    );
    assert_eq!(c.get("/admin/users").await.status, 200);
    assert!(app.shutdown().await);
}

//! Authorization, CSRF, XSS, SQL metacharacters and upload refusals.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn others_cannot_touch_my_purchase_books_or_the_user_list() {
    let t = spawn_app().await;
    let base = t.url();
    let alice = Client::new(&base);
    alice
        .register("Alice", "alice@shop.test", "alice-password")
        .await;
    let book = alice.add_book("Alice's book", "10", "5", None).await;
    let bob = Client::new(&base);
    bob.register("Bob", "bob@shop.test", "bob-password").await;
    // The seller cannot buy their own book, even by posting the form the page does not show.
    let own = alice.get(&format!("/books/{book}")).await;
    assert!(
        !own.body.contains("buy-form"),
        "no buy button for the seller"
    );
    let refused = alice
        .post(&format!("/books/{book}/buy"), &[("csrf", &own.csrf())])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("You cannot buy your own book."));
    let stock: i32 = t.db.scalar("SELECT stock FROM books").await;
    let purchases: i64 = t.db.scalar("SELECT COUNT(*) FROM purchases").await;
    assert_eq!(
        (stock, purchases),
        (5, 0),
        "nothing bought, stock untouched"
    );

    let page = bob.get(&format!("/books/{book}")).await;
    let bought = bob
        .post(&format!("/books/{book}/buy"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(bought.status, 303);
    let purchase = bought.location.unwrap().replace("/pay", "");

    let mallory = Client::new(&base);
    mallory
        .register("Mallory", "mallory@shop.test", "mallory-password")
        .await;
    let csrf = mallory.get("/").await.csrf();
    assert_eq!(mallory.get(&format!("{purchase}/pay")).await.status, 404);
    assert_eq!(
        mallory
            .post(
                &format!("{purchase}/pay"),
                &[("csrf", &csrf), ("method", "card")]
            )
            .await
            .status,
        404
    );
    assert_eq!(
        mallory.get(&format!("{purchase}/delivery")).await.status,
        404
    );
    assert_eq!(
        mallory
            .post(
                &format!("{purchase}/delivery"),
                &[("csrf", &csrf), ("provider_id", "1")]
            )
            .await
            .status,
        404
    );
    let status: String = t.db.scalar("SELECT status FROM purchases").await;
    assert_eq!(status, "pending");
    assert!(!mallory
        .get("/orders")
        .await
        .body
        .contains("Alice&#x27;s book"));

    // Only the seller edits or deletes.
    assert_eq!(
        mallory.get(&format!("/books/{book}/edit")).await.status,
        403
    );
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .text("title", "pwned")
        .text("author", "x")
        .text("price", "0.01")
        .text("stock", "999");
    assert_eq!(
        mallory
            .post_multipart(&format!("/books/{book}/edit"), form)
            .await
            .status,
        403
    );
    assert_eq!(
        mallory
            .post(&format!("/books/{book}/delete"), &[("csrf", &csrf)])
            .await
            .status,
        403
    );
    let title: String =
        t.db.scalar(&format!(
            "SELECT title FROM books WHERE id = {book} AND active"
        ))
        .await;
    assert_eq!(title, "Alice's book");
    // The seller can.
    let acsrf = alice.get(&format!("/books/{book}/edit")).await.csrf();
    let form = reqwest::multipart::Form::new()
        .text("csrf", acsrf.clone())
        .text("title", "Alice's second edition")
        .text("author", "Alice")
        .text("description", "")
        .text("price", "11.00")
        .text("stock", "4");
    assert_eq!(
        alice
            .post_multipart(&format!("/books/{book}/edit"), form)
            .await
            .status,
        303
    );
    assert!(alice
        .get(&format!("/books/{book}"))
        .await
        .body
        .contains("second edition"));
    assert_eq!(
        alice
            .post(&format!("/books/{book}/delete"), &[("csrf", &acsrf)])
            .await
            .status,
        303
    );
    assert_eq!(alice.get(&format!("/books/{book}")).await.status, 404);

    // The user list is for admins only.
    assert_eq!(
        Client::new(&base)
            .get("/admin/users")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(mallory.get("/admin/users").await.status, 403);
    let admin = Client::new(&base);
    assert_eq!(
        admin
            .login("admin@shop.test", "admin-password")
            .await
            .status,
        303
    );
    let users = admin.get("/admin/users").await;
    assert_eq!(users.status, 200);
    assert!(users.body.contains("mallory@shop.test") && users.body.contains("alice@shop.test"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let t = spawn_app().await;
    let base = t.url();
    let c = Client::new(&base);
    // No cookie, no token.
    let p = c
        .post(
            "/register",
            &[
                ("name", "x"),
                ("email", "x@shop.test"),
                ("password", "xxxxxxxxx"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    // Cookie present, wrong token.
    let _ = c.get("/register").await;
    let p = c
        .post(
            "/register",
            &[
                ("csrf", &"0".repeat(64)),
                ("name", "x"),
                ("email", "x@shop.test"),
                ("password", "xxxxxxxxx"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);
    let users: i64 =
        t.db.scalar("SELECT COUNT(*) FROM users WHERE email = 'x@shop.test'")
            .await;
    assert_eq!(users, 0);

    // A token from another browser does not work for this session.
    c.register("Carol", "carol@shop.test", "carol-password")
        .await;
    let book = c.add_book("Guarded", "5", "3", None).await;
    let other = Client::new(&base);
    other
        .register("Dave", "dave@shop.test", "dave-password")
        .await;
    let foreign = Client::new(&base).get("/login").await.csrf();
    let p = other
        .post(&format!("/books/{book}/buy"), &[("csrf", &foreign)])
        .await;
    assert_eq!(p.status, 403);
    let p = other.post(&format!("/books/{book}/buy"), &[]).await;
    assert_eq!(p.status, 403);
    let purchases: i64 = t.db.scalar("SELECT COUNT(*) FROM purchases").await;
    assert_eq!(purchases, 0);
    // Every state-changing route in the route table refuses a forged token, and only accepts POST.
    let mut checked = 0;
    for route in bookstore_app::routes::routes()
        .iter()
        .filter(|r| r.post.is_some())
    {
        let path = route.pattern.replace("{id}", &book.to_string());
        let p = if route.post.as_ref().is_some_and(|a| a.upload) {
            let form = reqwest::multipart::Form::new()
                .text("csrf", foreign.clone())
                .text("title", "Forged");
            other.post_multipart(&path, form).await
        } else {
            other.post(&path, &[("csrf", &foreign)]).await
        };
        assert_eq!(
            p.status, 403,
            "POST {path} with a foreign token: {}",
            p.body
        );
        if route.get.is_none() {
            assert_eq!(other.get(&path).await.status, 405, "GET {path}");
        }
        checked += 1;
    }
    assert_eq!(checked, 9, "the state-changing routes");
    assert_eq!(other.get("/orders").await.status, 200, "still logged in");
    let title: String =
        t.db.scalar(&format!("SELECT title FROM books WHERE id = {book}"))
            .await;
    assert_eq!(title, "Guarded");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn html_in_titles_is_escaped_and_sql_metacharacters_are_harmless() {
    let t = spawn_app().await;
    let base = t.url();
    let c = Client::new(&base);
    c.register(
        "Robert'); DROP TABLE users;--",
        "bobby@shop.test",
        "tables-password",
    )
    .await;
    let evil = "<script>alert('x')</script>";
    let book = c.add_book(evil, "3", "1", None).await;
    c.add_book("Plain Title", "4", "1", None).await;
    for path in [
        format!("/books/{book}"),
        "/books".to_string(),
        "/".to_string(),
        "/my/books".to_string(),
    ] {
        let p = c.get(&path).await;
        assert_eq!(p.status, 200);
        assert!(!p.body.contains(evil), "{path} renders the raw script");
        assert!(
            p.body.contains("&lt;script&gt;"),
            "{path} lacks the escaped title"
        );
    }
    // The admin and Bobby, with Bobby's name stored as typed: the table is intact.
    let users: i64 = t.db.scalar("SELECT COUNT(*) FROM users").await;
    assert_eq!(users, 2, "users table intact");
    let name: String =
        t.db.scalar("SELECT name FROM users WHERE email = 'bobby@shop.test'")
            .await;
    assert_eq!(name, "Robert'); DROP TABLE users;--");
    assert!(c
        .get("/")
        .await
        .body
        .contains("Robert&#x27;); DROP TABLE users;--"));

    for q in [
        "' OR '1'='1",
        "%",
        "_",
        "\\",
        "\"; DROP TABLE books; --",
        "%' UNION SELECT 1,2,3,4,5,6 -- ",
    ] {
        let p = c.get(&format!("/books?q={}", urlencode(q))).await;
        assert_eq!(p.status, 200, "search {q:?}");
        assert!(
            p.body.contains("0 book(s)"),
            "search {q:?} matched: metacharacters must be literal"
        );
    }
    assert!(c.get("/books?q=plain").await.body.contains("1 book(s)"));
    assert!(c.get("/books?page=-1").await.status == 200);
    assert_eq!(c.get("/books/1%20OR%201=1").await.status, 404);
    let books: i64 = t.db.scalar("SELECT COUNT(*) FROM books").await;
    assert_eq!(books, 2);
    let bad = c.login("' OR '1'='1", "' OR '1'='1").await;
    assert_eq!(bad.status, 401);
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_are_refused() {
    let t = spawn_app().await;
    let c = Client::new(&t.url());
    c.register("Uma", "uma@shop.test", "uma-password").await;
    let not_image = c
        .add_book_raw(
            "Fake",
            "1",
            "1",
            Some(("cover.png", b"<?php system($_GET['c']); ?>".to_vec())),
        )
        .await;
    assert_eq!(not_image.status, 415, "{}", not_image.body);
    assert!(not_image.body.contains("must be a PNG"));
    // BOOKSTORE_MAX_UPLOAD_MB (5 by default) for the cover, plus 1 MiB for the whole form.
    let limit = t.app.state.config.max_upload_mb as usize * 1024 * 1024;
    let mut big = png();
    big.resize(limit + 10, 0);
    let too_big = c
        .add_book_raw("Big", "1", "1", Some(("big.png", big)))
        .await;
    assert_eq!(too_big.status, 413);
    let mut huge = png();
    huge.resize(limit + 2 * 1024 * 1024, 0);
    let too_huge = c
        .add_book_raw("Huge", "1", "1", Some(("huge.png", huge)))
        .await;
    assert_eq!(too_huge.status, 413);
    for name in ["../../evil.png", "..\\..\\evil.png", "a/b.png"] {
        let p = c
            .add_book_raw("Traversal", "1", "1", Some((name, png())))
            .await;
        assert_eq!(p.status, 400, "file name {name:?} accepted");
    }
    // A PNG signature followed by garbage is not an image (it used to be stored).
    let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
    fake.extend_from_slice(&[0x41; 4096]);
    let p = c
        .add_book_raw("Fake", "1", "1", Some(("fake.png", fake)))
        .await;
    assert_eq!(p.status, 415, "{}", p.body);
    let books: i64 = t.db.scalar("SELECT COUNT(*) FROM books").await;
    assert_eq!(books, 0);
    let stored: Vec<_> = std::fs::read_dir(t.uploads.path()).unwrap().collect();
    assert!(stored.is_empty(), "nothing is stored: {stored:?}");
    assert!(!t.uploads.path().parent().unwrap().join("evil.png").exists());
    assert_eq!(c.get("/uploads/..%2F..%2Fetc%2Fpasswd").await.status, 404);
    assert_eq!(c.get("/uploads/../Cargo.toml").await.status, 404);
    // A good one is stored under a random name.
    c.add_book("Good", "1", "1", Some(("my cover.png", png())))
        .await;
    let names: Vec<String> = std::fs::read_dir(t.uploads.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].len() == 36 && names[0].ends_with(".png") && !names[0].contains("cover"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_are_throttled_and_cookies_are_hardened() {
    let t = spawn_app().await;
    let base = t.url();
    let plain = reqwest::Client::new();
    let cookie_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let r = plain.get(format!("{base}/login")).send().await.unwrap();
    let c = cookie_of(&r);
    assert!(
        c.contains("bs_csrf=") && c.contains("HttpOnly") && c.contains("SameSite=Lax"),
        "{c}"
    );
    assert!(!c.contains("Secure"), "plain HTTP must not set Secure: {c}");
    // Behind the trusted proxy (127.0.0.1 by default) that terminated TLS: Secure.
    let r = plain
        .get(format!("{base}/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(cookie_of(&r).contains("; Secure"));
    // The same header from an untrusted peer is ignored.
    let mut cfg = config(&t.db.url, t.uploads.path(), "untrusting");
    cfg.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let other = bookstore_app::start(cfg).await.unwrap();
    assert!(other.wait_ready(std::time::Duration::from_secs(60)).await);
    let r = plain
        .get(format!("{}/login", other.url()))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(!cookie_of(&r).contains("Secure"));
    other.shutdown().await;

    let c = Client::new(&base);
    c.register("Tess", "tess@shop.test", "tess-password").await;
    let attacker = Client::new(&base);
    for i in 0..5 {
        let p = attacker
            .login("tess@shop.test", &format!("guess-{i}"))
            .await;
        assert_eq!(p.status, 401);
    }
    let p = attacker.login("tess@shop.test", "tess-password").await;
    assert_eq!(
        p.status, 429,
        "the sixth attempt within 15 minutes is throttled"
    );
    assert!(p.body.contains("Too many failed attempts"));
    t.stop().await;
}

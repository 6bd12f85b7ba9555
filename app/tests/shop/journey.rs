//! The whole shopper journey over HTTP, and the stock race.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journey_register_browse_buy_pay_deliver_and_see_the_order() {
    let t = spawn_app().await;
    let base = t.url();

    let health = Client::new(&base).get("/healthz").await;
    assert_eq!(
        (health.status, health.instance.as_deref()),
        (200, Some("test-a"))
    );
    assert_eq!(Client::new(&base).get("/readyz").await.status, 200);

    let seller = Client::new(&base);
    seller
        .register("Sally Seller", "sally@shop.test", "sally-password")
        .await;
    let book = seller
        .add_book(
            "Cien años de soledad",
            "12.50",
            "5",
            Some(("cover.png", png())),
        )
        .await;

    let buyer = Client::new(&base);
    buyer
        .register("Bob Buyer", "bob@shop.test", "bob-password")
        .await;
    // The same email again (any case) gets a friendly error, not a second account.
    let again = Client::new(&base);
    let csrf = again.get("/register").await.csrf();
    let dup = again
        .post(
            "/register",
            &[
                ("csrf", &csrf),
                ("name", "Bob Two"),
                ("email", "BOB@shop.test"),
                ("password", "another-password"),
            ],
        )
        .await;
    // Refused without saying that the address has an account (see register.rs).
    assert_eq!(dup.status, 422);
    assert!(dup
        .body
        .contains("We could not register this e-mail address"));
    // Log out and in again, as a returning shopper would.
    let home = buyer.get("/").await;
    assert!(
        home.body.contains("Bob Buyer"),
        "home page should greet the user"
    );
    let out = buyer.post("/logout", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, 303);
    assert_eq!(
        buyer.get("/orders").await.location.as_deref(),
        Some("/login")
    );
    let wrong = buyer.login("bob@shop.test", "not-the-password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong email or password"));
    assert_eq!(
        buyer.login("bob@shop.test", "bob-password").await.status,
        303
    );

    let catalog = buyer.get("/books").await;
    assert_eq!(catalog.status, 200);
    assert!(catalog.body.contains("Cien años de soledad"));
    let found = buyer.get("/books?q=soledad").await;
    assert!(found.body.contains(&format!("/books/{book}")));
    let page = buyer.get(&format!("/books/{book}")).await;
    assert!(page.body.contains("12.50") && page.body.contains("/uploads/"));
    let cover = &page.body[page.body.find("/uploads/").unwrap()..];
    let cover = &cover[..cover.find('"').unwrap()];
    let img = buyer
        .http
        .get(format!("{base}{cover}"))
        .send()
        .await
        .unwrap();
    assert_eq!(img.status(), 200);
    assert_eq!(img.headers()["content-type"], "image/png");
    assert_eq!(img.bytes().await.unwrap().as_ref(), png().as_slice());

    // Tampered price/total fields are ignored: the server uses the database's price.
    let bought = buyer
        .post(
            &format!("/books/{book}/buy"),
            &[
                ("csrf", &page.csrf()),
                ("quantity", "2"),
                ("price", "0.01"),
                ("total", "0"),
            ],
        )
        .await;
    assert_eq!(bought.status, 303, "{}", bought.body);
    let pay_path = bought.location.unwrap();
    let purchase: u64 = pay_path
        .trim_start_matches("/purchases/")
        .trim_end_matches("/pay")
        .parse()
        .unwrap();
    let pay_page = buyer.get(&pay_path).await;
    assert!(pay_page.body.contains("$25.00"), "total must be 2 x 12.50");
    let paid = buyer
        .post(
            &pay_path,
            &[
                ("csrf", &pay_page.csrf()),
                ("method", "card"),
                ("amount", "0.01"),
            ],
        )
        .await;
    assert_eq!(
        paid.location.as_deref(),
        Some(format!("/purchases/{purchase}/delivery").as_str())
    );
    let again = buyer
        .post(&pay_path, &[("csrf", &pay_page.csrf()), ("method", "card")])
        .await;
    assert_eq!(again.status, 409, "a purchase is paid once");
    let amount: i64 =
        t.db.scalar(&format!(
            "SELECT amount_cents FROM payments WHERE purchase_id = {purchase}"
        ))
        .await;
    assert_eq!(amount, 2500);

    let delivery = buyer.get(&format!("/purchases/{purchase}/delivery")).await;
    for p in ["DHL", "FedEx", "Envia", "Servientrega"] {
        assert!(delivery.body.contains(p), "provider {p} missing");
    }
    let fedex: u64 =
        t.db.scalar("SELECT id FROM delivery_providers WHERE name = 'FedEx'")
            .await;
    let shipped = buyer
        .post(
            &format!("/purchases/{purchase}/delivery"),
            &[
                ("csrf", &delivery.csrf()),
                ("provider_id", &fedex.to_string()),
            ],
        )
        .await;
    assert_eq!(shipped.status, 303);
    let twice = buyer
        .post(
            &format!("/purchases/{purchase}/delivery"),
            &[
                ("csrf", &delivery.csrf()),
                ("provider_id", &fedex.to_string()),
            ],
        )
        .await;
    assert_eq!(twice.status, 409, "a purchase is delivered once");

    let orders = buyer.get("/orders").await;
    assert_eq!(orders.status, 200);
    assert!(
        orders.body.contains("shipped")
            && orders.body.contains("FedEx")
            && orders.body.contains("$25.00")
    );
    let stock: i32 =
        t.db.scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
            .await;
    assert_eq!(stock, 3);

    let mine = seller.get("/my/books").await;
    assert!(mine.body.contains("Cien años de soledad"));

    let metrics = buyer.get("/metrics").await.body;
    assert!(metrics.contains(
        "bookstore_requests_total{method=\"POST\",route=\"/books/{id}/buy\",status=\"303\"} 1"
    ));
    assert!(metrics.contains("bookstore_request_duration_seconds_bucket{route=\"/books\""));
    assert!(metrics.contains("bookstore_db_pool_connections_in_use"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_buyers_race_for_ten_copies() {
    let t = spawn_app().await;
    let base = t.url();
    let seller = Client::new(&base);
    seller
        .register("Seller", "seller@shop.test", "seller-password")
        .await;
    let book = seller.add_book("Scarce", "9.99", "10", None).await;

    // Fifty signed-in buyers (made directly in the database: argon2 is slow in debug builds).
    let key = t.key();
    let mut buyers = Vec::new();
    for i in 0..50 {
        t.db.exec(
            "INSERT INTO users (name, email, password_hash) VALUES (?, ?, 'x')",
            (format!("b{i}"), format!("b{i}@shop.test")),
        )
        .await;
        let id: u64 =
            t.db.scalar(&format!(
                "SELECT id FROM users WHERE email = 'b{i}@shop.test'"
            ))
            .await;
        let token = bookstore_app::db::random_token();
        t.db
            .exec(
                "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, NOW() + INTERVAL 1 DAY)",
                (bookstore_app::auth::token_hash(&token), id),
            )
            .await;
        let csrf_cookie = bookstore_app::db::random_token();
        let csrf = bookstore_app::auth::csrf_token(&key, &csrf_cookie, Some(&token));
        buyers.push((format!("bs_session={token}; bs_csrf={csrf_cookie}"), csrf));
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(buyers.len()));
    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|(cookie, csrf)| {
            let (http, url, barrier) = (
                http.clone(),
                format!("{base}/books/{book}/buy"),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                http.post(url)
                    .header("cookie", cookie)
                    .form(&[("csrf", csrf.as_str()), ("quantity", "1")])
                    .send()
                    .await
                    .expect("buy")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    let ok = codes.iter().filter(|c| **c == 303).count();
    let sold_out = codes.iter().filter(|c| **c == 409).count();
    assert_eq!((ok, sold_out), (10, 40), "status codes: {codes:?}");
    let stock: i32 =
        t.db.scalar(&format!("SELECT stock FROM books WHERE id = {book}"))
            .await;
    assert_eq!(stock, 0);
    let purchases: i64 =
        t.db.scalar(&format!(
            "SELECT COUNT(*) FROM purchases WHERE book_id = {book}"
        ))
        .await;
    assert_eq!(purchases, 10);
    let page = seller.get(&format!("/books/{book}")).await;
    assert!(page.body.contains("Sold out"));
    t.stop().await;
}

//! `/register` does not tell which e-mail addresses have accounts: a taken address gets the same
//! answer (status and page) as a client throttled after too many refusals, and the throttle is
//! per client address, counted only for refusals.

use bookstore_app::auth::MAX_REGISTER_REFUSALS_PER_IP;

use crate::common::*;

/// Posts the register form from client address `ip` (the test's loopback peer is a trusted
/// proxy, so `X-Forwarded-For` names the client).
async fn register_from(c: &Client, ip: &str, csrf: &str, email: &str) -> Page {
    let r = c
        .http
        .post(format!("{}/register", c.base))
        .header("x-forwarded-for", ip)
        .form(&[
            ("csrf", csrf),
            ("name", "Eve Prober"),
            ("email", email),
            ("password", "eve-password"),
        ])
        .send()
        .await
        .expect("POST /register");
    let status = r.status().as_u16();
    Page {
        status,
        location: None,
        instance: None,
        body: r.text().await.expect("body"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_taken_address_gets_the_same_answer_as_a_throttled_client() {
    let t = spawn_app().await;
    Client::new(&t.url())
        .register("Olga Owner", "taken@shop.test", "olga-password")
        .await;
    let probe = Client::new(&t.url());
    let csrf = probe.get("/register").await.csrf();
    // The taken address: refused, without saying why.
    let taken = register_from(&probe, "10.0.0.66", &csrf, "taken@shop.test").await;
    assert_eq!(taken.status, 422, "{}", taken.body);
    assert!(
        !taken.body.contains("already registered") && !taken.body.contains("Log in instead?"),
        "the refusal names the reason: {}",
        taken.body
    );
    // The probe goes on until its refusals reach the limit...
    for i in 1..MAX_REGISTER_REFUSALS_PER_IP {
        let p = register_from(&probe, "10.0.0.66", &csrf, "taken@shop.test").await;
        assert_eq!(p.status, 422, "refusal {i}: {}", p.body);
    }
    // ...then a free address is refused too, with the very same page (only the echoed address
    // differs), and no account is made.
    let free = register_from(&probe, "10.0.0.66", &csrf, "free@shop.test").await;
    assert_eq!(free.status, taken.status, "{}", free.body);
    assert_eq!(
        free.body.replace("free@shop.test", "ADDRESS"),
        taken.body.replace("taken@shop.test", "ADDRESS"),
        "a throttled client and a taken address must look alike"
    );
    let made: i64 =
        t.db.scalar("SELECT COUNT(*) FROM users WHERE email = 'free@shop.test'")
            .await;
    assert_eq!(made, 0);
    // The throttle is per client address: another address registers the free one.
    let other = Client::new(&t.url());
    let csrf = other.get("/register").await.csrf();
    let ok = register_from(&other, "10.0.0.77", &csrf, "free@shop.test").await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    // Registrations that succeed are not counted: many from one address all go through.
    for i in 0..MAX_REGISTER_REFUSALS_PER_IP + 3 {
        let c = Client::new(&t.url());
        let csrf = c.get("/register").await.csrf();
        let p = register_from(&c, "10.0.0.88", &csrf, &format!("new{i}@shop.test")).await;
        assert_eq!(p.status, 303, "registration {i}: {}", p.body);
    }
    t.stop().await;
}

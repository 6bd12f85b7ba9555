//! `bookstore rehearse`: the rendered objective 1 and objective 2 files running on loopback,
//! driven like a shopper, a load test, an auto-scaling group and a database outage would.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use bookstore::rehearse::{objective1, objective2, Options};
use reqwest::blocking::{multipart, Client};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn tools_present() -> bool {
    crate::support::validators::require_all(&[
        "nginx",
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
        "openssl",
    ])
}

fn options(instances: usize) -> Options {
    let mut o = Options::new(bookstore::spec::embedded_default()).expect("options");
    o.exe = PathBuf::from(env!("CARGO_BIN_EXE_bookstore"));
    o.instances = instances;
    o.seed_books = 20;
    o.health_interval = Duration::from_millis(500);
    o
}

/// A response, read fully.
struct Page {
    status: u16,
    location: Option<String>,
    instance: Option<String>,
    hsts: Option<String>,
    body: String,
}

impl Page {
    /// The value of `<input ... name="NAME" value="...">` (first occurrence).
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\"");
        let i = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} field in page:\n{}", self.body));
        let rest = &self.body[i..];
        let v = &rest[rest.find("value=\"").expect("value attribute") + 7..];
        v[..v.find('"').expect("closing quote")].to_string()
    }

    fn csrf(&self) -> String {
        self.field("csrf")
    }
}

/// A browser: cookies, no automatic redirects, the rehearsal's self-signed certificate.
#[derive(Clone)]
struct Shopper {
    http: Client,
    base: String,
}

impl Shopper {
    fn new(base: &str) -> Shopper {
        Shopper {
            http: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .tls_danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            base: base.to_string(),
        }
    }

    /// Same cookies, another base URL.
    fn at(&self, base: &str) -> Shopper {
        Shopper {
            http: self.http.clone(),
            base: base.to_string(),
        }
    }

    fn read(r: reqwest::blocking::Response) -> Page {
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, instance, hsts) = (
            h("location"),
            h("x-bookstore-instance"),
            h("strict-transport-security"),
        );
        Page {
            status: r.status().as_u16(),
            location,
            instance,
            hsts,
            body: r.text().unwrap_or_default(),
        }
    }

    fn try_get(&self, path: &str) -> reqwest::Result<Page> {
        Ok(Self::read(
            self.http.get(format!("{}{path}", self.base)).send()?,
        ))
    }

    fn get(&self, path: &str) -> Page {
        self.try_get(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    fn try_post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Result<Page> {
        Ok(Self::read(
            self.http
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()?,
        ))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.try_post(path, form)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    fn register(&self, name: &str, email: &str) {
        let csrf = self.get("/register").csrf();
        let p = self.post(
            "/register",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("email", email),
                ("password", "rehearsal-password"),
            ],
        );
        assert_eq!(p.status, 303, "register: {}", p.body);
    }

    fn login(&self, email: &str) -> Page {
        let csrf = self.get("/login").csrf();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", email),
                ("password", "rehearsal-password"),
            ],
        )
    }

    /// Adds a book (with an optional PNG cover); returns its id.
    fn add_book(&self, title: &str, stock: &str, cover: Option<Vec<u8>>) -> u64 {
        let csrf = self.get("/books/new").csrf();
        let mut form = multipart::Form::new()
            .text("csrf", csrf)
            .text("title", title.to_string())
            .text("author", "R. Hearsal")
            .text("description", "Bought on loopback.")
            .text("price", "7.50")
            .text("stock", stock.to_string());
        if let Some(png) = cover {
            form = form.part(
                "cover",
                multipart::Part::bytes(png)
                    .file_name("cover.png")
                    .mime_str("image/png")
                    .expect("mime"),
            );
        }
        let p = Self::read(
            self.http
                .post(format!("{}/books/new", self.base))
                .multipart(form)
                .send()
                .expect("POST /books/new"),
        );
        assert_eq!(p.status, 303, "add book: {}", p.body);
        p.location.expect("location")["/books/".len()..]
            .parse()
            .expect("book id")
    }

    /// Buys one copy; returns the purchase id.
    fn buy(&self, book: u64) -> u64 {
        let page = self.get(&format!("/books/{book}"));
        let p = self.post(
            &format!("/books/{book}/buy"),
            &[("csrf", &page.csrf()), ("quantity", "1")],
        );
        assert_eq!(p.status, 303, "buy: {}", p.body);
        p.location
            .expect("location")
            .trim_start_matches("/purchases/")
            .trim_end_matches("/pay")
            .parse()
            .expect("purchase id")
    }
}

/// A 1x1 PNG.
fn png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]
}

/// The first book link on a catalog page.
fn first_book(body: &str) -> u64 {
    body.split("href=\"/books/")
        .skip(1)
        .find_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .expect("a book link")
}

#[test]
fn objective1_purchase_through_the_rendered_nginx_over_tls() {
    if !tools_present() {
        return;
    }
    let r = objective1::Rehearsal::start(&options(1)).expect("start the objective 1 rehearsal");
    let text = r.differences().render();
    for what in [
        "BOOKSTORE_DATABASE_URL",
        "nginx certificate",
        "nginx listen 80 / 443",
    ] {
        assert!(
            text.contains(what),
            "differences should list {what}:\n{text}"
        );
    }

    // Port 80: ACME challenges from the webroot, everything else 301 to HTTPS.
    let web = Shopper::new(&r.http_url());
    let challenge = r.acme_webroot().join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenge).unwrap();
    std::fs::write(challenge.join("token-1"), "token-1.key").unwrap();
    let acme = web.get("/.well-known/acme-challenge/token-1");
    assert_eq!((acme.status, acme.body.as_str()), (200, "token-1.key"));
    let redirect = web.get("/books?page=2");
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.location.as_deref(),
        Some(format!("{}/books?page=2", r.https_url()).as_str())
    );

    // Port 443: HSTS on pages and on static files, one copy each.
    let shop = Shopper::new(&r.https_url());
    let home = shop.get("/");
    assert_eq!(home.status, 200);
    assert_eq!(
        home.hsts.as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
    assert!(home.instance.is_some(), "X-Bookstore-Instance missing");
    let css = home
        .body
        .split('"')
        .find(|s| s.starts_with("/static/") && s.ends_with(".css"))
        .expect("a stylesheet");
    assert!(shop.get(css).hsts.is_some(), "HSTS on static files too");

    // The whole journey: register, log out, log in, buy, pay, choose delivery, see the order.
    shop.register("Rhea Hearsal", "rhea@rehearsal.test");
    let home = shop.get("/");
    assert!(home.body.contains("Rhea Hearsal"));
    assert_eq!(shop.post("/logout", &[("csrf", &home.csrf())]).status, 303);
    assert_eq!(shop.get("/orders").location.as_deref(), Some("/login"));
    assert_eq!(shop.login("rhea@rehearsal.test").status, 303);
    let book = first_book(&shop.get("/books").body);
    let purchase = shop.buy(book);
    let pay_path = format!("/purchases/{purchase}/pay");
    let pay = shop.get(&pay_path);
    let paid = shop.post(&pay_path, &[("csrf", &pay.csrf()), ("method", "card")]);
    assert_eq!(
        paid.location.as_deref(),
        Some(format!("/purchases/{purchase}/delivery").as_str()),
        "pay: {}",
        paid.body
    );
    let delivery = shop.get(&format!("/purchases/{purchase}/delivery"));
    let provider = delivery.field("provider_id");
    let chosen = shop.post(
        &format!("/purchases/{purchase}/delivery"),
        &[("csrf", &delivery.csrf()), ("provider_id", &provider)],
    );
    assert_eq!(chosen.status, 303, "delivery: {}", chosen.body);
    let orders = shop.get("/orders");
    assert_eq!(orders.status, 200);
    assert!(orders.body.contains(&format!("<td>{purchase}</td>")));
    assert!(orders.hsts.is_some());
    let db = r.database();
    let row = r
        .db()
        .sql(&format!(
            "SELECT p.status, pay.amount_cents, dp.name FROM `{db}`.purchases p \
             JOIN `{db}`.payments pay ON pay.purchase_id = p.id \
             JOIN `{db}`.delivery_assignments da ON da.purchase_id = p.id \
             JOIN `{db}`.delivery_providers dp ON dp.id = da.provider_id WHERE p.id = {purchase}"
        ))
        .expect("query");
    assert_eq!(
        row.lines().count(),
        1,
        "one paid, delivered purchase: {row}"
    );
    assert!(
        orders
            .body
            .contains(row.trim().rsplit('\t').next().unwrap()),
        "the order page shows the courier"
    );
}

//! `bookstore rehearse`: the rendered objective 1 and objective 2 files running on loopback,
//! driven like a shopper, a load test, an auto-scaling group and a database outage would.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use bookstore::rehearse::{objective1, objective2, Options};
use bookstore_loadtests::{LoadtestArgs, ScenarioKind};
use reqwest::blocking::{multipart, Client};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) fn tools_present() -> bool {
    crate::support::validators::require_all(&[
        "nginx",
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
        "openssl",
    ])
}

/// The binary under test, a private copy (see tests/support/exe.rs).
pub(crate) use crate::support::exe::bookstore as bookstore_exe;

pub(crate) fn options(instances: usize) -> Options {
    let mut o = Options::new(bookstore::spec::embedded_default()).expect("options");
    o.exe = bookstore_exe();
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
    /// Every `Strict-Transport-Security` header (a page must carry exactly one).
    hsts: Vec<String>,
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
        let hsts = r
            .headers()
            .get_all("strict-transport-security")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect();
        let (location, instance) = (h("location"), h("x-bookstore-instance"));
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
        "nginx/bookstore.conf: `listen 443 ssl;` -> `listen 127.0.0.1:",
        "operating system: the AMI's own packages, from its archive (user-data.yaml `packages:` docker.io, docker-cli, docker-compose, nginx",
        "nginx/bookstore.conf: `listen [::]:80;` -> `# (rehearsal: IPv6 listen dropped)",
        "nginx/bookstore.conf: `server 127.0.0.1:8080;` -> `server 127.0.0.1:",
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
    assert_eq!(home.hsts, ["max-age=63072000; includeSubDomains"]);
    assert!(home.instance.is_some(), "X-Bookstore-Instance missing");
    let css = home
        .body
        .split('"')
        .find(|s| s.starts_with("/static/") && s.ends_with(".css"))
        .expect("a stylesheet");
    assert_eq!(
        shop.get(css).hsts,
        ["max-age=63072000; includeSubDomains"],
        "HSTS on static files too, one copy"
    );

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
    assert_eq!(orders.hsts.len(), 1, "one HSTS header: {:?}", orders.hsts);
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

/// A short, quiet load test against the rehearsal's load balancer.
fn load_args(url: &str, scenario: ScenarioKind, users: usize, secs: u64) -> LoadtestArgs {
    let mut a = LoadtestArgs::for_url(url);
    a.scenario = scenario;
    a.users = users;
    a.ramp = Duration::from_secs(2);
    a.duration = Duration::from_secs(secs);
    a.window = Duration::from_secs(2);
    a.recycle = Duration::from_secs(1);
    // Generous: the shop is a debug build here and shares the CPUs with the other tests.
    a.timeout = Duration::from_secs(30);
    a.insecure = true;
    a.no_progress = true;
    a
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// With three instances in service: a session started on one instance is valid on the others,
/// and a cover uploaded through one instance is served by every instance's nginx.
fn check_shared_state(r: &objective2::Rehearsal) {
    let targets = r.targets();
    assert_eq!(targets.len(), 3, "three instances: {targets:?}");
    let (first_id, _, first_url) = &targets[0];
    let seller = Shopper::new(first_url);
    seller.register("Sam Shared", "sam@rehearsal.test");
    let book = seller.add_book("Shared Covers", "5", Some(png()));
    let page = seller.get(&format!("/books/{book}"));
    assert_eq!(page.instance.as_deref(), Some(first_id.as_str()));
    let cover = page
        .body
        .split('"')
        .find(|s| s.starts_with("/uploads/"))
        .expect("the book page shows its cover")
        .to_string();
    for (id, _, url) in &targets {
        let there = seller.at(url).get("/my/books");
        assert_eq!(
            (there.status, there.instance.as_deref()),
            (200, Some(id.as_str())),
            "the session from {first_id} on {id}"
        );
        assert!(
            there.body.contains("Shared Covers"),
            "{id} sees the seller's book"
        );
        let img = seller
            .http
            .get(format!("{url}{cover}"))
            .send()
            .expect("GET cover");
        assert_eq!(img.status().as_u16(), 200, "{id} serves {cover}");
        assert_eq!(img.bytes().unwrap().as_ref(), png().as_slice());
    }
}

/// Requests instance `id`'s nginx has logged (health checks are not logged).
fn served(r: &objective2::Rehearsal, id: &str) -> usize {
    std::fs::read_to_string(
        r.workdir()
            .join(format!("instances/{id}/nginx/logs/access.log")),
    )
    .map(|t| t.lines().count())
    .unwrap_or(0)
}

/// Waits up to `limit` for `cond`, failing with `what`.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn objective2_scales_out_and_in_under_load_without_failed_requests() {
    if !tools_present() {
        return;
    }
    let mut o = options(1);
    // The deregistration delay (15 s rendered) takes 1.5 s.
    o.time_scale = bookstore::rehearse::autoscale::TimeScale::new(10.0).unwrap();
    let r = Arc::new(objective2::Rehearsal::start(&o).expect("start objective 2"));
    assert_eq!(r.instance_ids(), vec!["i-rehearsal-1".to_string()]);
    // The load balancer: 301 to HTTPS, TLS, HSTS from the instance's nginx.
    let front = Shopper::new(&r.https_url());
    let home = front.get("/");
    assert_eq!(home.status, 200);
    assert_eq!(home.hsts.len(), 1, "one HSTS header: {:?}", home.hsts);
    let redirect = Shopper::new(&r.http_url()).get("/books");
    assert_eq!(
        (redirect.status, redirect.location),
        (301, Some(format!("{}/books", r.https_url())))
    );

    // Scaling by hand, each step on the load test's own clock (its judged windows are 2 s), not
    // on request counts (how fast those come depends on the machine): 1 -> 3 once i-rehearsal-1
    // alone has served three windows, 3 -> 2 (the oldest drains) once all three have served
    // three more.
    const WINDOW_MS: u32 = 2000;
    let load_done = Arc::new(AtomicBool::new(false));
    let live: Arc<Mutex<Option<Arc<bookstore_loadtests::Recorder>>>> = Arc::default();
    let scaler = {
        let (r, load_done, live) = (r.clone(), load_done.clone(), live.clone());
        std::thread::spawn(move || {
            let load_ms = || live.lock().unwrap().as_ref().map_or(0, |rec| rec.now_ms());
            wait_until(
                "three windows of load on i-rehearsal-1",
                Duration::from_secs(90),
                || load_ms() >= 3 * WINDOW_MS && served(&r, "i-rehearsal-1") >= 20,
            );
            let added = [r.add_instance().unwrap(), r.add_instance().unwrap()];
            for id in &added {
                r.wait_in_service(id, Duration::from_secs(30)).unwrap();
            }
            check_shared_state(&r);
            let grown_ms = load_ms();
            wait_until(
                "three windows of load on the three instances",
                Duration::from_secs(90),
                || {
                    load_ms() >= grown_ms + 3 * WINDOW_MS
                        && added.iter().all(|id| served(&r, id) >= 20)
                },
            );
            assert!(
                !load_done.load(Ordering::SeqCst),
                "the load ended before the scale-in started"
            );
            let clean = r.remove_instance_id("i-rehearsal-1").unwrap();
            (clean, !load_done.load(Ordering::SeqCst))
        })
    };
    let l = live.clone();
    let report = runtime()
        .block_on(bookstore_loadtests::execute_live(
            &load_args(&r.https_url(), ScenarioKind::Mix, 6, 60),
            false,
            move |rec| *l.lock().unwrap() = Some(rec),
        ))
        .expect("load test");
    load_done.store(true, Ordering::SeqCst);
    let (clean, under_load) = scaler.join().expect("scaling thread");
    eprintln!("{}", report.summary());
    assert!(clean, "the removed instance drained within its drain time");
    assert!(under_load, "the scale-in finished after the load ended");
    let v = &report.verdict;
    assert!(v.scaled_out, "verdict: {}", v.text);
    assert_eq!(
        (v.initial, v.peak, v.final_serving),
        (1, 3, 2),
        "verdict: {}",
        v.text
    );
    assert_eq!(
        report.totals.errors, 0,
        "no failed request, scale-in included: {:?}",
        report.errors_by_reason
    );
    assert!(report.totals.requests > 100, "{:?}", report.totals);
    assert_eq!(r.instance_ids().len(), 2);
    // Each step is in the decision log as a person's.
    let manual: Vec<String> = std::fs::read_to_string(r.decisions_path())
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"manual\""))
        .map(str::to_string)
        .collect();
    assert_eq!(manual.len(), 3, "{manual:#?}");
    assert!(
        manual[2].contains("manual: remove i-rehearsal-1"),
        "{}",
        manual[2]
    );
}

#[test]
fn objective2_database_outage_fails_fast_and_recovers_without_losing_purchases() {
    if !tools_present() {
        return;
    }
    let r = Arc::new(objective2::Rehearsal::start(&options(2)).expect("start objective 2"));
    let base = r.https_url();
    let seller = Shopper::new(&base);
    seller.register("Olga Outage", "olga@rehearsal.test");
    let book = seller.add_book("Outage Edition", "100000", None);

    // Buyers that buy one copy again and again through the load balancer; every answer and
    // its latency is recorded.
    #[derive(Default)]
    struct Tally {
        bought: u64,
        unavailable: u64,
        other: Vec<String>,
        slowest: Duration,
        slowest_unavailable: Duration,
        bought_after_recovery: u64,
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let recovered = Arc::new(AtomicBool::new(false));
    let registered = Arc::new(std::sync::Barrier::new(5));
    let buyers: Vec<_> = (0..4)
        .map(|n| {
            let (tally, stop, recovered, base, registered) = (
                tally.clone(),
                stop.clone(),
                recovered.clone(),
                base.clone(),
                registered.clone(),
            );
            std::thread::spawn(move || {
                let me = Shopper::new(&base);
                me.register(&format!("Buyer {n}"), &format!("buyer{n}@rehearsal.test"));
                registered.wait();
                while !stop.load(Ordering::SeqCst) {
                    let t = Instant::now();
                    let page = me.try_get(&format!("/books/{book}"));
                    let outcome = match page {
                        Ok(p) if p.status == 200 => me.try_post(
                            &format!("/books/{book}/buy"),
                            &[("csrf", &p.csrf()), ("quantity", "1")],
                        ),
                        other => other,
                    };
                    let spent = t.elapsed();
                    let mut t = tally.lock().unwrap();
                    t.slowest = t.slowest.max(spent);
                    match outcome {
                        Ok(p) if p.status == 303 => {
                            t.bought += 1;
                            if recovered.load(Ordering::SeqCst) {
                                t.bought_after_recovery += 1;
                            }
                        }
                        Ok(p) if p.status == 503 => {
                            t.unavailable += 1;
                            t.slowest_unavailable = t.slowest_unavailable.max(spent);
                        }
                        Ok(p) => t.other.push(format!("{} {}", p.status, p.body.len())),
                        Err(e) => t.other.push(e.to_string()),
                    }
                    drop(t);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();

    registered.wait();
    let tally_has = |what: &str, limit: Duration, f: &dyn Fn(&Tally) -> bool| {
        wait_until(what, limit, || f(&tally.lock().unwrap()));
    };
    tally_has(
        "purchases before the outage",
        Duration::from_secs(60),
        &|t| t.bought >= 4,
    );
    r.stop_database();
    // Every instance's /readyz reports the outage (the health checks see it too).
    let probe = Shopper::new("http://127.0.0.1");
    for (id, _, url) in r.targets() {
        let ready = probe.at(&url);
        let deadline = Instant::now() + Duration::from_secs(4);
        while ready.get("/readyz").status != 503 {
            assert!(Instant::now() < deadline, "{id}: /readyz still 200");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    tally_has("503s during the outage", Duration::from_secs(60), &|t| {
        t.unavailable >= 8
    });
    r.start_database().expect("restart MariaDB");
    for (id, _, url) in r.targets() {
        let ready = probe.at(&url);
        let deadline = Instant::now() + Duration::from_secs(20);
        while ready.get("/readyz").status != 200 {
            assert!(Instant::now() < deadline, "{id}: /readyz did not recover");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    recovered.store(true, Ordering::SeqCst);
    tally_has(
        "purchases after the recovery",
        Duration::from_secs(60),
        &|t| t.bought_after_recovery >= 4,
    );
    stop.store(true, Ordering::SeqCst);
    for b in buyers {
        b.join().expect("buyer thread");
    }

    let t = tally.lock().unwrap();
    eprintln!(
        "bought {}, 503 {}, other {:?}, slowest {:?}, slowest 503 {:?}, after recovery {}",
        t.bought, t.unavailable, t.other, t.slowest, t.slowest_unavailable, t.bought_after_recovery
    );
    assert!(t.unavailable > 0, "the outage was seen as 503s");
    assert!(t.other.is_empty(), "only 303 or 503: {:?}", t.other);
    // Fast: a shopper learns of the outage within a second and a half (a page and a POST,
    // through TLS and two proxies), not when the database comes back.
    assert!(
        t.slowest_unavailable < Duration::from_millis(1500),
        "503s come fast, slowest {:?}",
        t.slowest_unavailable
    );
    assert!(t.bought_after_recovery > 0, "buying works again");
    assert!(r.all_running(), "no instance restarted");
    let db = r.database();
    let in_db: u64 = r
        .sql(&format!(
            "SELECT COUNT(*) FROM `{db}`.purchases p JOIN `{db}`.users u ON u.id = p.user_id \
             WHERE u.email LIKE 'buyer%@rehearsal.test'"
        ))
        .expect("count purchases")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(in_db, t.bought, "no purchase lost or doubled");
}

#[test]
fn rehearse_command_prints_the_differences_and_leaves_no_process_behind() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("r");
    let mut child = std::process::Command::new(bookstore_exe())
        .args([
            "rehearse",
            "objective2",
            "--instances",
            "2",
            "--seed-books",
            "5",
        ])
        .args(["--duration", "2s", "--workdir"])
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bookstore rehearse");
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bookstore rehearse did not stop after --duration");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "differences from AWS",
        "BOOKSTORE_DATABASE_URL",
        "target group health check: /readyz every 15 s",
        "2 instance(s) behind the load balancer) runs at https://127.0.0.1:",
        "\nautoscaler: http://127.0.0.1:",
        "instance CPU: ",
        "target tracking alarms and formula: ",
        "instance warm-up (CpuScalingPolicy): 120 s (DefaultInstanceWarmup) -> 120 s",
    ] {
        assert!(stdout.contains(want), "stdout lacks {want:?}:\n{stdout}");
    }
    assert!(stderr.contains("i-rehearsal-2: launched"), "{stderr}");
    // Every process it started (MariaDB, nginx masters, shops) is gone.
    let left = processes_in(&dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

pub(crate) use crate::support::rehearsal::processes_in;

#[test]
fn a_rehearsal_killed_with_sigkill_takes_its_processes_with_it() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("r");
    let mut child = std::process::Command::new(bookstore_exe())
        .args(["rehearse", "objective2", "--instances", "2"])
        .args(["--seed-books", "5", "--duration", "5m", "--workdir"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run bookstore rehearse");
    // Wait for the URL line: MariaDB, the load balancers and both instances are up by then.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("runs at https://127.0.0.1:") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(180)).is_err() {
        let _ = child.kill();
        panic!("the rehearsal did not come up within 180 s");
    }
    let running = processes_in(&dir);
    let shops = running.iter().filter(|c| c.ends_with(" serve ")).count();
    assert!(
        shops == 2 && running.iter().any(|c| c.contains("mariadbd")),
        "MariaDB, nginx and two shops should run: {running:?}"
    );

    child.kill().unwrap(); // SIGKILL: no Drop, no clean-up code runs
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = processes_in(&dir);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = processes_in(&dir);
    }
    assert!(
        left.is_empty(),
        "processes outlived the rehearsal: {left:?}"
    );
}

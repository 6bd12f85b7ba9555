//! Objective 1's certificate flow, rehearsed for real: the rendered bootstrap site, obtain script
//! and deploy hook run against pebble (Let's Encrypt's ACME test server), and every HTTPS request
//! here is verified against pebble's root, under the spec's domain.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use crate::support::rehearsal::processes_in;
use bookstore::rehearse::objective1::{AcmeOptions, Certificates, Rehearsal};
use bookstore::rehearse::Options;
use bookstore_loadtests::{LoadtestArgs, Resolve, ScenarioKind};
use reqwest::blocking::Client;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn tools_present() -> bool {
    crate::support::validators::require_all(&[
        "nginx",
        "mariadbd",
        "mariadb-install-db",
        "mariadb",
        "openssl",
        "pebble",
        "pebble-challtestsrv",
        "certbot",
        "dig",
        "curl",
    ])
}

fn options(acme: AcmeOptions) -> Options {
    let mut o = Options::new(bookstore::spec::embedded_default()).expect("options");
    o.exe = crate::support::exe::bookstore();
    o.seed_books = 10;
    o.certificates = Certificates::Acme(acme);
    o
}

/// A browser that trusts only pebble's root and knows the domain is on 127.0.0.1.
fn verified_client(r: &Rehearsal) -> Client {
    let root = std::fs::read(r.ca_cert().expect("an ACME rehearsal")).unwrap();
    Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&root).unwrap()])
        .resolve(r.domain(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `openssl x509` on a DER certificate: `-serial` -> the hex serial, `-issuer` -> the issuer.
fn x509(der: &[u8], what: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cert.der");
    std::fs::write(&file, der).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", what, "-in"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .split_once('=')
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or(text)
}

/// The certificate the server presented for `GET url`.
fn served_certificate(client: &Client, url: &str) -> Vec<u8> {
    let resp = client
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("the TLS peer certificate")
        .to_vec()
}

fn csrf(body: &str) -> String {
    let i = body.find("name=\"csrf\"").expect("a csrf field");
    let v = &body[i..][body[i..].find("value=\"").unwrap() + 7..];
    v[..v.find('"').unwrap()].to_string()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_rendered_flow_obtains_a_certificate_switches_to_tls_and_sells_over_verified_https() {
    if !tools_present() {
        return;
    }
    let r = Rehearsal::start(&options(AcmeOptions::default())).expect("start objective 1");
    assert!(
        r.tls_enabled(),
        "{}",
        r.certificate_journal("bookstore-certificate")
    );

    // Only the ACME server, its CA, ports and the VM's surroundings differ.
    let text = r.differences().render();
    for want in [
        "ACME server (domain.acme_server): https://acme-v02.api.letsencrypt.org/directory -> pebble",
        "the certificate's CA: Let's Encrypt (trusted by browsers) -> pebble's root",
        "HTTP-01 validation:",
        "nginx/bootstrap.conf: `listen 80;` -> `listen 127.0.0.1:",
        "nginx/bookstore.conf: `listen 443 ssl;` -> `listen 127.0.0.1:",
        "stand-in `curl`: the instance metadata service",
        "bookstore-certificate.timer:",
    ] {
        assert!(text.contains(want), "differences lack {want:?}:\n{text}");
    }
    assert!(!text.contains("self-signed"), "{text}");

    // The obtain script ran once, with certbot against pebble, and switched the enabled site.
    let journal = r.certificate_journal("bookstore-certificate");
    assert!(
        journal.contains("Successfully received certificate."),
        "{journal}"
    );
    assert!(
        journal.contains("nginx serves https://shop.example.com"),
        "{journal}"
    );
    let enabled = r
        .workdir()
        .join("host/etc/nginx/sites-enabled/bookstore.conf");
    assert_eq!(
        std::fs::read_link(&enabled).unwrap(),
        r.workdir()
            .join("host/etc/nginx/sites-available/bookstore.conf")
    );

    // Port 80: 301 to the domain's HTTPS URL (only the port differs from the VM).
    let shop = verified_client(&r);
    let plain = shop
        .get(format!(
            "http://{}:{}/books?page=2",
            r.domain(),
            port(&r.http_url())
        ))
        .send()
        .unwrap();
    assert_eq!(plain.status(), 301);
    assert_eq!(
        plain.headers()["location"].to_str().unwrap(),
        format!("{}/books?page=2", r.domain_url())
    );

    // Port 443: pebble's certificate for the domain, chained to pebble's root.
    let der = served_certificate(&shop, &format!("{}/healthz", r.domain_url()));
    assert!(x509(&der, "-issuer").contains("Pebble Intermediate CA"));
    assert!(x509(&der, "-subject").contains("shop.example.com"));
    assert_eq!(x509(&der, "-serial"), r.served_serial().unwrap());
    // Negative control: without pebble's root the same request fails verification.
    let system_roots = Client::builder()
        .resolve(r.domain(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let refused = system_roots
        .get(format!("{}/healthz", r.domain_url()))
        .send();
    assert!(
        refused.is_err(),
        "a certificate not from pebble's root was accepted"
    );

    // A purchase over verified HTTPS: register, buy, pay.
    let url = |p: &str| format!("{}{p}", r.domain_url());
    let page = shop.get(url("/register")).send().unwrap().text().unwrap();
    let registered = shop
        .post(url("/register"))
        .form(&[
            ("csrf", csrf(&page).as_str()),
            ("name", "Cert Buyer"),
            ("email", "cert.buyer@rehearsal.test"),
            ("password", "rehearsal-password"),
        ])
        .send()
        .unwrap();
    assert_eq!(registered.status(), 303);
    let catalog = shop.get(url("/books")).send().unwrap();
    assert!(catalog.headers().contains_key("strict-transport-security"));
    let catalog = catalog.text().unwrap();
    let book: u64 = catalog
        .split("href=\"/books/")
        .skip(1)
        .find_map(|s| s.split('"').next()?.parse().ok())
        .expect("a book link");
    let page = shop
        .get(url(&format!("/books/{book}")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let bought = shop
        .post(url(&format!("/books/{book}/buy")))
        .form(&[("csrf", csrf(&page).as_str()), ("quantity", "1")])
        .send()
        .unwrap();
    assert_eq!(bought.status(), 303);
    let pay_path = bought.headers()["location"].to_str().unwrap().to_string();
    let page = shop.get(url(&pay_path)).send().unwrap().text().unwrap();
    let paid = shop
        .post(url(&pay_path))
        .form(&[("csrf", csrf(&page).as_str()), ("method", "card")])
        .send()
        .unwrap();
    assert_eq!(paid.status(), 303, "pay");
    let db = r.database();
    let rows = r
        .db()
        .sql(&format!(
            "SELECT p.status FROM `{db}`.purchases p JOIN `{db}`.users u ON u.id = p.user_id \
             JOIN `{db}`.payments pay ON pay.purchase_id = p.id \
             WHERE u.email = 'cert.buyer@rehearsal.test'"
        ))
        .unwrap();
    assert_eq!(rows.lines().count(), 1, "one paid purchase: {rows}");

    // The stand-ins the scripts ran with pass shellcheck too.
    if crate::support::validators::require("shellcheck") {
        let stand_ins: Vec<PathBuf> = std::fs::read_dir(r.workdir().join("stand-ins"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(stand_ins.len(), 5, "{stand_ins:?}");
        crate::support::validators::shellcheck(&stand_ins).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

fn access_log_lines(r: &Rehearsal) -> usize {
    std::fs::read_to_string(r.workdir().join("nginx/logs/access.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// The renewal test's users.
const RENEWAL_USERS: u64 = 6;

#[test]
fn a_forced_renewal_under_load_changes_the_serial_without_an_http_or_tls_failure() {
    if !tools_present() {
        return;
    }
    let r = Rehearsal::start(&options(AcmeOptions::default())).expect("start objective 1");
    assert!(
        r.tls_enabled(),
        "{}",
        r.certificate_journal("bookstore-certificate")
    );
    let shop = verified_client(&r);
    let health = format!("{}/healthz", r.domain_url());
    let first = x509(&served_certificate(&shop, &health), "-serial");

    let mut args = LoadtestArgs::for_url(&r.domain_url());
    // Browsers: every request a GET. A POST that goes out on a keep-alive connection at the
    // instant the reload closes it cannot be sent again safely (RFC 9110 9.2.2), by this load
    // test or by a browser; the purchase path over the certificate is the obtain test's.
    args.scenario = ScenarioKind::Browse;
    args.users = RENEWAL_USERS as usize;
    args.ramp = Duration::from_secs(2);
    args.duration = Duration::from_secs(25);
    args.window = Duration::from_secs(2);
    // New connections every second: TLS handshakes keep happening across the reload.
    args.recycle = Duration::from_secs(1);
    args.timeout = Duration::from_secs(30);
    args.no_progress = true;
    args.ca_cert = r.ca_cert();
    args.resolve = vec![Resolve {
        host: r.domain().to_string(),
        addr: Ipv4Addr::LOCALHOST.into(),
    }];
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    };
    // Without --ca-cert the load test refuses the certificate, and says what to do.
    let mut untrusted = args.clone();
    untrusted.ca_cert = None;
    let refused = runtime()
        .block_on(bookstore_loadtests::execute(&untrusted, false))
        .expect_err("a certificate from an unknown CA");
    assert!(refused.to_string().contains("--ca-cert FILE"), "{refused}");
    let load =
        std::thread::spawn(move || runtime().block_on(bookstore_loadtests::execute(&args, false)));

    // Renew once the load is flowing, as certbot.timer would (forced: the certificate is new).
    let quiet = access_log_lines(&r);
    wait_for("load reaching nginx", Duration::from_secs(60), || {
        access_log_lines(&r) > quiet + 50
    });
    let renewal = r.renew_now().expect("certbot renew --force-renewal");
    let during = access_log_lines(&r);
    assert_ne!(renewal.before, renewal.after, "a new certificate");
    assert_eq!(renewal.before, first);
    let now = x509(&served_certificate(&shop, &health), "-serial");
    assert_eq!(
        now, renewal.after,
        "the served certificate is the renewed one"
    );
    let journal = r.certificate_journal("certbot");
    assert!(journal.contains("(succeeded)"), "{journal}");

    let report = load.join().unwrap().expect("the load test ran");
    eprintln!("{}", report.summary());
    assert!(
        access_log_lines(&r) > during + 50,
        "the load went on after the renewal"
    );
    assert!(report.totals.requests > 200, "{:?}", report.totals);
    // No failed request at all: every handshake before, during and after the reload verified
    // against pebble's root. nginx's graceful reload closes the keep-alive connections idle at
    // that instant; a GET that went out on one at that instant is sent again on a new
    // connection (as browsers and curl do), counted in `retries`, not as an error.
    assert_eq!(
        report.totals.errors, 0,
        "failed requests across the renewal: {:?} (retried GETs: {})",
        report.errors_by_reason, report.totals.retries
    );
    eprintln!(
        "GETs sent again after the reload closed their idle connection: {}",
        report.totals.retries
    );
}

#[test]
fn with_dns_pointing_elsewhere_the_bootstrap_page_stays_and_the_log_says_why() {
    if !tools_present() {
        return;
    }
    let r = Rehearsal::start(&options(AcmeOptions {
        dns_points_at: Ipv4Addr::new(127, 0, 0, 2),
        retry_every: Some(Duration::from_millis(500)),
    }))
    .expect("start objective 1");
    assert!(!r.tls_enabled());

    // The bootstrap site answers, nothing listens on 443, no certificate was asked for.
    let plain = Client::new();
    let page = plain.get(format!("{}/books", r.http_url())).send().unwrap();
    assert_eq!(page.status(), 503);
    assert_eq!(
        page.text().unwrap(),
        "waiting for the TLS certificate of shop.example.com\n"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", r.https_port())).is_err());
    assert!(!r.workdir().join("host/etc/letsencrypt/live").exists());

    // The retry timer keeps trying, and each try says why and what to do.
    let failures = || {
        r.certificate_journal("bookstore-certificate")
            .matches("(failed: exit status: 1)")
            .count()
    };
    wait_for(
        "three tries of the obtain script",
        Duration::from_secs(30),
        || failures() >= 3,
    );
    let journal = r.certificate_journal("bookstore-certificate");
    let why = "bookstore-obtain-certificate: shop.example.com resolves to 127.0.0.2, not to this \
               instance (127.0.0.1): point its A record at 127.0.0.1 (output PublicIp) and remove \
               any other; retrying in 5 minutes (the site says \"waiting for the TLS certificate\")";
    assert!(journal.contains(why), "{journal}");
    assert!(
        !journal.contains("certbot"),
        "certbot must not run: {journal}"
    );
    assert_eq!(plain.get(r.http_url()).send().unwrap().status(), 503);

    // Fixing the record is enough: the next try gets the certificate and switches to TLS.
    r.point_dns_at(Ipv4Addr::LOCALHOST).unwrap();
    wait_for(
        "the TLS site after DNS is fixed",
        Duration::from_secs(90),
        || r.tls_enabled(),
    );
    let shop = verified_client(&r);
    let ok = shop
        .get(format!("{}/healthz", r.domain_url()))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[test]
fn rehearse_objective1_prints_the_acme_differences_and_leaves_no_process_behind() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("r");
    let out = Command::new(crate::support::exe::bookstore())
        .args([
            "rehearse",
            "objective1",
            "--seed-books",
            "3",
            "--duration",
            "1s",
        ])
        .arg("--workdir")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run bookstore rehearse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "ACME server (domain.acme_server)",
        "certificate from pebble",
        "--ca-cert",
        "--resolve shop.example.com:127.0.0.1",
        "nginx serves the TLS site, certificate serial",
    ] {
        assert!(stdout.contains(want), "stdout lacks {want:?}:\n{stdout}");
    }
    // pebble, pebble-challtestsrv, nginx, the shop and MariaDB are all gone.
    let left = processes_in(&dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");

    let bad = Command::new(crate::support::exe::bookstore())
        .args(["rehearse", "objective1", "--dns-points-at", "192.0.2.1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("loopback"));
    let bad = Command::new(crate::support::exe::bookstore())
        .args(["rehearse", "objective2", "--self-signed"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

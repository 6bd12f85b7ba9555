//! The container images of `app/Dockerfile`, built and run here with podman.
//!
//! `bookstore image build --engine podman --binary FILE` builds the stages that ship (`app`,
//! `cli`) of the Dockerfile users run, with the binary in place of the Rust build stage: that
//! stage needs a Rust image from a registry, which these machines cannot reach (CI's image
//! workflow runs it on every pull request). The shop's image gets the release binary from
//! `cargo build --release --locked`, the build stage's own command, so the image tested is the one
//! that ships. The CLI's image gets the test profile's `bookstore` (a release build of the CLI
//! would add minutes to every run): its test checks the image around the binary, and
//! scripts/bench-image measures the release image. The Debian base comes from
//! scripts/container-base. The images run against the test MariaDB on loopback
//! (`--network host`). Without podman these tests fail; they never skip.

use crate::support::podman::{
    build_image, free_port, image_facts, image_files, inspect, podman, podman_ok, release_binary,
    run, status_of, unique, wait_for_log, wait_until_read, Image, Removed, REPO,
};
use crate::support::shopper::{png, Shopper};
use bookstore::image::Kind;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The shop's image, uncompressed as podman counts it (measured: 15.2 MB, of which the binary
/// is 10.1 MB and the Debian root 5 MB).
const APP_IMAGE_BUDGET: u64 = 24 * 1024 * 1024;
/// What the base adds to either binary: glibc, libgcc, the CA bundle, users, copyright files.
const ROOT_BUDGET: u64 = 8 * 1024 * 1024;

/// The drain the shop container gets (BOOKSTORE_DRAIN_SECONDS).
const DRAIN: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn unix_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// Labels, user, no tools, and the sizes: the whole image under `budget` (when given) and the
/// root around the binary under `ROOT_BUDGET`.
fn assert_trustworthy(image: &Image, facts: &serde_json::Value, binary: &str, budget: Option<u64>) {
    let labels = &facts["Config"]["Labels"];
    let revision = crate_revision();
    assert_eq!(
        labels["org.opencontainers.image.revision"], revision,
        "{labels}"
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        image.reference.rsplit_once(':').unwrap().1,
        "the version label is the spec's app.tag: {labels}"
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "{labels}"
    );
    assert_eq!(facts["Config"]["User"], "10001:10001");

    let size = facts["Size"].as_u64().expect("image size");
    if let Some(budget) = budget {
        assert!(
            size < budget,
            "{} is {size} bytes, over its budget of {budget}",
            image.reference
        );
    }
    let files = image_files(image);
    let binary_line = files
        .iter()
        .find(|l| l.ends_with(&format!("usr/local/bin/{binary}")))
        .unwrap_or_else(|| panic!("no /usr/local/bin/{binary} in the image:\n{files:#?}"));
    let binary_size: u64 = binary_line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        size - binary_size < ROOT_BUDGET,
        "the root around the binary takes {} bytes, over {ROOT_BUDGET}",
        size - binary_size
    );
    // No shell, package manager or download tool: nothing to run but the binary.
    for tool in [
        "sh", "bash", "dash", "apt", "apt-get", "dpkg", "curl", "wget",
    ] {
        assert!(
            !files
                .iter()
                .any(|l| l.ends_with(&format!("bin/{tool}"))
                    || l.contains(&format!("bin/{tool} -> "))),
            "the image has {tool}"
        );
    }
}

fn crate_revision() -> String {
    bookstore::image::revision(Path::new(REPO))
}

#[test]
fn the_shop_image_is_ready_within_a_second_sells_a_book_and_drains_on_sigterm() {
    let image = build_image(Kind::App, &release_binary("bookstore-app", "bookstore-app"));
    let facts = image_facts(&image);
    assert_trustworthy(&image, &facts, "bookstore-app", Some(APP_IMAGE_BUDGET));
    assert_eq!(
        facts["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/bookstore-app", "healthcheck"]),
        "the HEALTHCHECK runs the shop's own check, without a shell"
    );

    let rt = runtime();
    let db = rt.block_on(bookstore_test_support::TestDb::new());
    let db_env = format!("BOOKSTORE_DATABASE_URL={}", db.url);

    // The image's `migrate` first, so that the timed start below is the scale-out case: a new
    // instance joining a migrated database.
    podman_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "-e",
        &db_env,
        &image.reference,
        "migrate",
    ]);

    let volume = unique("uploads");
    podman_ok(&["volume", "create", &volume]);
    let _volume = Removed("volume", volume.clone());
    let name = unique("shop");
    let _container = Removed("container", name.clone());
    let port = free_port();
    let secret = "image-test-secret-key-0123456789";

    // Readiness is watched from before the container exists, every 10 ms.
    let watcher = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if status_of(port, "/readyz") == Some(200) {
                return Some(SystemTime::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    });
    podman_ok(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--volume",
        &format!("{volume}:/var/lib/bookstore/uploads"),
        "--env",
        &db_env,
        "--env",
        &format!("BOOKSTORE_LISTEN=127.0.0.1:{port}"),
        "--env",
        &format!("BOOKSTORE_SECRET_KEY={secret}"),
        "--env",
        &format!("BOOKSTORE_DRAIN_SECONDS={}", DRAIN.as_secs()),
        "--env",
        "BOOKSTORE_METRICS_LISTEN=127.0.0.1:0",
        "--env",
        "BOOKSTORE_INSTANCE_ID=image-test",
        &image.reference,
    ]);
    let ready = watcher.join().unwrap().unwrap_or_else(|| {
        panic!(
            "the shop never answered /readyz 200:\n{}",
            wait_for_log(&name, "", Duration::ZERO)
        )
    });
    let started: u128 = inspect(&name, "{{.State.StartedAt.UnixNano}}")
        .parse()
        .expect("StartedAt in nanoseconds");
    let start_to_ready = Duration::from_nanos((unix_nanos(ready).saturating_sub(started)) as u64);
    assert!(
        start_to_ready < Duration::from_secs(1),
        "ready {start_to_ready:?} after podman started the container, not within a second"
    );

    // Runs as 10001 on a read-only root.
    let pid = inspect(&name, "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for id in ["Uid:", "Gid:"] {
        let line = status.lines().find(|l| l.starts_with(id)).unwrap();
        assert!(
            line.split_whitespace().skip(1).all(|v| v == "10001"),
            "{line}"
        );
    }
    assert_eq!(inspect(&name, "{{.HostConfig.ReadonlyRootfs}}"), "true");

    // The HEALTHCHECK passes, and can fail: the check is real.
    podman_ok(&["healthcheck", "run", &name]);
    let wrong = run({
        let mut c = podman();
        c.args(["exec", "--env", "BOOKSTORE_LISTEN=127.0.0.1:1", &name])
            .args(["/usr/local/bin/bookstore-app", "healthcheck"]);
        c
    });
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    // No shell to exec into.
    let shell = run({
        let mut c = podman();
        c.args(["exec", &name, "/bin/sh", "-c", "true"]);
        c
    });
    assert!(!shell.status.success(), "the image has a shell");

    // A seller adds a book with a cover (written to the volume on a read-only root), a buyer
    // buys, pays and picks a delivery.
    let base = format!("http://127.0.0.1:{port}");
    let seller = Shopper::new(&base);
    seller.register("Seller", "seller@image.test");
    let book = seller.add_book("Contained", "12.50", 3, png());
    let page = seller.get(&format!("/books/{book}"));
    assert_eq!(page.instance.as_deref(), Some("image-test"));
    let cover = page.upload_path().expect("the book page shows its cover");
    assert_eq!(seller.get(&cover).body, png(), "the cover is served back");
    let buyer = Shopper::new(&base);
    buyer.register("Buyer", "buyer@image.test");
    buyer.buy_pay_and_ship(book);
    let orders = buyer.get("/orders").text();
    assert!(orders.contains("Contained"), "{orders}");
    let stock: i64 = rt.block_on(db.scalar(&format!("SELECT stock FROM books WHERE id = {book}")));
    assert_eq!(stock, 2);
    let mountpoint = podman_ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", &volume]);
    let covers: Vec<_> = std::fs::read_dir(&mountpoint).unwrap().collect();
    assert_eq!(covers.len(), 1, "one cover in the uploads volume");

    // SIGTERM while a request is in flight: it is answered, then the shop exits 0 within the drain.
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(DRAIN)).unwrap();
    let body = "csrf=x&email=nobody%40image.test&password=not-the-password";
    write!(
        client,
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    wait_until_read(port, &client, Duration::from_secs(10));
    let signalled = Instant::now();
    podman_ok(&["kill", "--signal", "TERM", &name]);
    let logs = wait_for_log(&name, "shutting down", DRAIN);
    client.write_all(&body.as_bytes()[10..]).unwrap();
    // (No half-close: hyper closes a connection whose read side ends.)
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 "),
        "the in-flight request got no answer after SIGTERM: {answer:?}\n{logs}"
    );
    let code = podman_ok(&["wait", &name]);
    let stopped = signalled.elapsed();
    assert_eq!(code, "0", "exit code after SIGTERM");
    assert!(
        stopped < DRAIN,
        "took {stopped:?} to stop, over the drain of {DRAIN:?}"
    );

    let logs = wait_for_log(&name, "stopped", Duration::from_secs(5));
    assert!(!logs.contains(secret), "the secret key is in the logs");
    eprintln!("image: start to ready {start_to_ready:?}; SIGTERM to exit {stopped:?}");
}

/// `bookstore serve` (the test binary) on loopback, stopped when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_cli_image_load_tests_a_shop_on_loopback_from_inside_the_container() {
    // The test profile's binary (see the module's comment): no total size budget, only the root's.
    let image = build_image(Kind::Cli, Path::new(env!("CARGO_BIN_EXE_bookstore")));
    let facts = image_facts(&image);
    assert_trustworthy(&image, &facts, "bookstore", None);
    assert_eq!(
        facts["Config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/bookstore"])
    );
    let version = podman_ok(&["run", "--rm", "--read-only", &image.reference, "--version"]);
    assert_eq!(version, format!("bookstore {}", env!("CARGO_PKG_VERSION")));

    // The shop, outside any container, with demo books.
    let rt = runtime();
    let db = rt.block_on(bookstore_test_support::TestDb::new());
    let port = free_port();
    let exe = env!("CARGO_BIN_EXE_bookstore");
    let env = [
        ("BOOKSTORE_DATABASE_URL", db.url.clone()),
        ("BOOKSTORE_LISTEN", format!("127.0.0.1:{port}")),
        (
            "BOOKSTORE_SECRET_KEY",
            "image-test-secret-key-0123456789".into(),
        ),
        ("BOOKSTORE_METRICS_LISTEN", "127.0.0.1:0".into()),
        ("BOOKSTORE_INSTANCE_ID", "loopback-shop".into()),
    ];
    let seeded = run({
        let mut c = Command::new(exe);
        c.args(["serve", "seed", "--books", "20"]).envs(env.clone());
        c
    });
    assert!(seeded.status.success(), "seed: {seeded:?}");
    let uploads = tempfile::tempdir().unwrap();
    let _shop = Serve(
        Command::new(exe)
            .arg("serve")
            .envs(env)
            .env("BOOKSTORE_UPLOADS_DIR", uploads.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bookstore serve"),
    );
    let start = Instant::now();
    while status_of(port, "/readyz") != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the shop never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The load generator in the container writes its report to a volume, as uid 10001.
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(work.path(), Some(10001), Some(10001))
        .expect("chown (tests run as root)");
    let name = unique("loadtest");
    let _container = Removed("container", name.clone());
    let url = format!("http://127.0.0.1:{port}");
    let out = run({
        let mut c = podman();
        c.args(["run", "--name", &name, "--network", "host", "--read-only"])
            .arg("--volume")
            .arg(format!("{}:/work", work.path().display()))
            .args([&image.reference, "loadtest", "--url", &url])
            .args(["--scenario", "browse", "--users", "2", "--ramp", "1s"])
            .args(["--duration", "4s", "--window", "1s", "--no-progress"])
            .args(["--expect-instances", "1", "--max-error-rate", "1"])
            .args(["--report", "/work/report"]);
        c
    });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "loadtest in the container failed:\n{said}"
    );
    assert!(
        said.contains("loopback-shop"),
        "the report names the instance:\n{said}"
    );
    let timeline = std::fs::read_to_string(work.path().join("report/timeline.json"))
        .expect("timeline.json in the mounted report directory");
    assert!(timeline.contains("loopback-shop"), "{timeline}");
}

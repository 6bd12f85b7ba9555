//! A real browser (headless Chromium through chromedriver) walks register -> buy -> pay -> deliver.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};

use crate::common::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headless_chromium_buys_a_book_and_screenshots_the_pages() {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "{CHROMEDRIVER} and {CHROMIUM} are needed: apt-get install -y chromium chromium-driver"
    );
    let t = spawn_app().await;
    let added = t.app.state.db.seed_demo_books(12).await.unwrap();
    assert_eq!(added, 12);

    let port = free_port();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let b = loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a chromedriver session: {e}"),
        }
    };
    let base = t.url();
    let shots = screenshot_dir();

    let res: Result<(), fantoccini::error::CmdError> = async {
        b.goto(&format!("{base}/register")).await?;
        b.find(Locator::Id("name"))
            .await?
            .send_keys("Browser Buyer")
            .await?;
        b.find(Locator::Id("email"))
            .await?
            .send_keys("browser@shop.test")
            .await?;
        b.find(Locator::Id("password"))
            .await?
            .send_keys("browser-password")
            .await?;
        b.find(Locator::Id("register")).await?.click().await?;
        b.wait().for_element(Locator::Id("logout")).await?;

        b.goto(&format!("{base}/books")).await?;
        b.wait().for_element(Locator::Css(".book-card")).await?;
        std::fs::write(shots.join("catalog.png"), b.screenshot().await?).expect("save screenshot");
        b.find(Locator::Css(".book-card a.stretched-link"))
            .await?
            .click()
            .await?;
        b.wait().for_element(Locator::Id("buy")).await?;
        std::fs::write(shots.join("book.png"), b.screenshot().await?).expect("save screenshot");
        b.find(Locator::Id("buy")).await?.click().await?;
        b.wait().for_element(Locator::Id("pay")).await?;
        std::fs::write(shots.join("pay.png"), b.screenshot().await?).expect("save screenshot");
        b.find(Locator::Id("pay")).await?.click().await?;
        b.wait().for_element(Locator::Id("deliver")).await?;
        b.find(Locator::Css("label[for^=provider-]"))
            .await?
            .click()
            .await?;
        b.find(Locator::Id("deliver")).await?.click().await?;
        b.wait().for_element(Locator::Id("orders")).await?;
        std::fs::write(shots.join("orders.png"), b.screenshot().await?).expect("save screenshot");
        let status = b
            .find(Locator::Css("#orders .status"))
            .await?
            .text()
            .await?;
        assert_eq!(status, "shipped");
        Ok(())
    }
    .await;
    let _ = b.close().await;
    res.expect("browser walk");
    for f in ["catalog.png", "book.png", "pay.png", "orders.png"] {
        let len = std::fs::metadata(shots.join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(
            len > 10_000,
            "screenshot {f} is missing or blank ({len} bytes)"
        );
    }
    println!("screenshots saved in {}", shots.display());
    let paid: i64 = t.db.scalar("SELECT COUNT(*) FROM payments").await;
    assert_eq!(paid, 1);
    t.stop().await;
}

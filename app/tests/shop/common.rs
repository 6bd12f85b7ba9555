//! Test helpers: a database per test, a running app on port 0, a cookie-keeping HTTP client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bookstore_app::{start, Config, RunningApp};

pub use bookstore_test_support::TestDb;

/// A test configuration on the given database and uploads directory.
pub fn config(db_url: &str, uploads: &Path, instance: &str) -> Config {
    let mut c = Config::for_tests(db_url, uploads);
    c.instance_id = instance.to_string();
    c.admin = Some(("admin@shop.test".into(), "admin-password".into()));
    c
}

/// A started app that is ready.
pub struct TestApp {
    /// The running app.
    pub app: RunningApp,
    /// Its database (dropped at the end).
    pub db: TestDb,
    /// Its uploads directory.
    pub uploads: tempfile::TempDir,
}

impl TestApp {
    /// Base URL.
    pub fn url(&self) -> String {
        self.app.url()
    }

    /// The CSRF key.
    pub fn key(&self) -> Vec<u8> {
        self.app.state.config.secret_key.clone()
    }

    /// Shuts the app down and drops the database.
    pub async fn stop(self) {
        assert!(self.app.shutdown().await, "drain did not finish in time");
        drop(self.db);
    }
}

/// Starts an app on a fresh database and waits until it is ready.
pub async fn spawn_app() -> TestApp {
    let db = TestDb::new().await;
    let uploads = tempfile::tempdir().expect("tempdir");
    let app = start(config(&db.url, uploads.path(), "test-a"))
        .await
        .expect("start app");
    assert!(
        app.wait_ready(Duration::from_secs(60)).await,
        "app did not become ready"
    );
    TestApp { app, db, uploads }
}

/// A browser-like client: keeps cookies, does not follow redirects.
#[derive(Clone)]
pub struct Client {
    /// The reqwest client.
    pub http: reqwest::Client,
    /// Base URL.
    pub base: String,
}

/// A response, read fully.
pub struct Page {
    /// Status code.
    pub status: u16,
    /// Location header of a redirect.
    pub location: Option<String>,
    /// `X-Bookstore-Instance`.
    pub instance: Option<String>,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let i = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in page:\n{}", self.body));
        let rest = &self.body[i + marker.len()..];
        rest[..rest.find('"').expect("closing quote")].to_string()
    }
}

impl Client {
    /// A new client with an empty cookie jar.
    pub fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Client {
            http,
            base: base.to_string(),
        }
    }

    /// Same cookies, another base URL (another instance).
    pub fn with_base(&self, base: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: base.to_string(),
        }
    }

    async fn read(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, instance) = (h("location"), h("x-bookstore-instance"));
        let body = resp.text().await.expect("body");
        Page {
            status,
            location,
            instance,
            body,
        }
    }

    /// GET a path.
    pub async fn get(&self, path: &str) -> Page {
        Self::read(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    /// POST a urlencoded form.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::read(
            self.http
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// POST a multipart form.
    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Page {
        Self::read(
            self.http
                .post(format!("{}{path}", self.base))
                .multipart(form)
                .send()
                .await
                .expect("POST multipart"),
        )
        .await
    }

    /// Registers and is then logged in.
    pub async fn register(&self, name: &str, email: &str, password: &str) {
        let csrf = self.get("/register").await.csrf();
        let p = self
            .post(
                "/register",
                &[
                    ("csrf", &csrf),
                    ("name", name),
                    ("email", email),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "register failed: {}", p.body);
    }

    /// Logs in; returns the response.
    pub async fn login(&self, email: &str, password: &str) -> Page {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    /// Adds a book through the seller form; returns its id.
    pub async fn add_book(
        &self,
        title: &str,
        price: &str,
        stock: &str,
        cover: Option<(&str, Vec<u8>)>,
    ) -> u64 {
        let p = self.add_book_raw(title, price, stock, cover).await;
        assert_eq!(p.status, 303, "add book failed: {}", p.body);
        p.location.expect("location")["/books/".len()..]
            .parse()
            .expect("book id")
    }

    /// Posts the new-book form and returns the raw response.
    pub async fn add_book_raw(
        &self,
        title: &str,
        price: &str,
        stock: &str,
        cover: Option<(&str, Vec<u8>)>,
    ) -> Page {
        let csrf = self.get("/books/new").await.csrf();
        let mut form = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .text("title", title.to_string())
            .text("author", "Test Author")
            .text("description", "A book for tests.")
            .text("price", price.to_string())
            .text("stock", stock.to_string());
        if let Some((name, data)) = cover {
            form = form.part(
                "cover",
                reqwest::multipart::Part::bytes(data).file_name(name.to_string()),
            );
        }
        self.post_multipart("/books/new", form).await
    }
}

/// A tiny valid PNG (1x1).
pub fn png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]
}

pub use bookstore_test_support::free_port;

/// Where screenshots go: `<workspace>/target/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("create screenshot dir");
    dir
}

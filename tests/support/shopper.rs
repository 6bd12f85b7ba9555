//! A browser-like client of the shop for the integration tests: cookies kept, redirects not
//! followed, forms sent with their CSRF token, as `app/README.md` ("Forms") describes them.

use reqwest::blocking::{multipart, Client, Response};
use std::time::Duration;

/// A response, read fully.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub instance: Option<String>,
    pub body: Vec<u8>,
}

impl Page {
    fn read(r: Response) -> Page {
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, instance) = (header("location"), header("x-bookstore-instance"));
        Page {
            status: r.status().as_u16(),
            location,
            instance,
            body: r.bytes().map(|b| b.to_vec()).unwrap_or_default(),
        }
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of `<input ... name="NAME" value="...">` (the first one).
    pub fn field(&self, name: &str) -> String {
        let body = self.text();
        let marker = format!("name=\"{name}\"");
        let at = body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} field in the page:\n{body}"));
        let rest = &body[at..];
        let value = &rest[rest.find("value=\"").expect("a value attribute") + 7..];
        value[..value.find('"').expect("a closing quote")].to_string()
    }

    /// The form's CSRF token.
    pub fn csrf(&self) -> String {
        self.field("csrf")
    }

    /// The first `src="/uploads/..."` on the page.
    pub fn upload_path(&self) -> Option<String> {
        let body = self.text();
        let at = body.find("\"/uploads/")? + 1;
        Some(body[at..at + body[at..].find('"')?].to_string())
    }
}

/// One shopper (one cookie jar) on one base URL.
pub struct Shopper {
    http: Client,
    base: String,
}

impl Shopper {
    /// A shopper of the shop at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str) -> Shopper {
        Shopper {
            http: Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Page {
        let r = self.http.get(format!("{}{path}", self.base)).send();
        Page::read(r.unwrap_or_else(|e| panic!("GET {path}: {e}")))
    }

    /// `POST path` with a URL-encoded form.
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send();
        Page::read(r.unwrap_or_else(|e| panic!("POST {path}: {e}")))
    }

    /// Registers (and so signs in) a new user.
    pub fn register(&self, name: &str, email: &str) {
        let csrf = self.get("/register").csrf();
        let form = [
            ("csrf", csrf.as_str()),
            ("name", name),
            ("email", email),
            ("password", "image-test-password"),
        ];
        let p = self.post("/register", &form);
        assert_eq!(p.status, 303, "register {email}: {}", p.text());
    }

    /// Adds a book with a PNG cover; returns its id.
    pub fn add_book(&self, title: &str, price: &str, stock: u32, cover: Vec<u8>) -> u64 {
        let csrf = self.get("/books/new").csrf();
        let cover = multipart::Part::bytes(cover)
            .file_name("cover.png")
            .mime_str("image/png")
            .expect("a MIME type");
        let form = multipart::Form::new()
            .text("csrf", csrf)
            .text("title", title.to_string())
            .text("author", "I. Mage")
            .text("description", "Sold from a container.")
            .text("price", price.to_string())
            .text("stock", stock.to_string())
            .part("cover", cover);
        let r = self
            .http
            .post(format!("{}/books/new", self.base))
            .multipart(form)
            .send();
        let p = Page::read(r.expect("POST /books/new"));
        assert_eq!(p.status, 303, "add a book: {}", p.text());
        p.location.expect("a location")["/books/".len()..]
            .parse()
            .expect("a book id")
    }

    /// Buys one copy, pays by card and picks the first delivery provider; returns the purchase id.
    pub fn buy_pay_and_ship(&self, book: u64) -> u64 {
        let csrf = self.get(&format!("/books/{book}")).csrf();
        let bought = self.post(
            &format!("/books/{book}/buy"),
            &[("csrf", &csrf), ("quantity", "1")],
        );
        assert_eq!(bought.status, 303, "buy: {}", bought.text());
        let pay_path = bought.location.expect("the pay page");
        let purchase: u64 = pay_path
            .trim_start_matches("/purchases/")
            .trim_end_matches("/pay")
            .parse()
            .expect("a purchase id");

        let csrf = self.get(&pay_path).csrf();
        let paid = self.post(&pay_path, &[("csrf", &csrf), ("method", "card")]);
        assert_eq!(paid.status, 303, "pay: {}", paid.text());

        let delivery_path = paid.location.expect("the delivery page");
        let delivery = self.get(&delivery_path);
        let (csrf, provider) = (delivery.csrf(), delivery.field("provider_id"));
        let shipped = self.post(
            &delivery_path,
            &[("csrf", &csrf), ("provider_id", &provider)],
        );
        assert_eq!(shipped.status, 303, "choose delivery: {}", shipped.text());
        purchase
    }
}

/// A 1x1 PNG.
pub fn png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]
}

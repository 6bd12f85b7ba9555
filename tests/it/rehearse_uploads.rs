//! The spec's `app.max_upload_mb` reaches every layer of a rehearsal: with 12 (more than the
//! default 5), a real cover just under 12 MiB goes through the rendered nginx to the shop and is
//! served back; one just over it is refused by the shop (413, its own page), and a body over
//! nginx's `client_max_body_size` (the limit + 1 MiB for the form) by nginx itself (413).
#![cfg(all(feature = "serve", feature = "loadtest"))]

use std::time::Duration;

use bookstore::rehearse::objective1;
use reqwest::blocking::{multipart, Client};

use crate::rehearse::{options, tools_present};

const MAX_UPLOAD_MB: u32 = 12;
const MIB: usize = 1024 * 1024;

/// A 1×1 PNG of exactly `size` bytes that decodes: the padding is a private ancillary chunk
/// (`prVt`, which decoders skip), with its CRC, between the header and the pixel data.
fn png_of(size: usize) -> Vec<u8> {
    let tiny = crate::support::shopper::png();
    // Signature (8) + IHDR chunk (4 + 4 + 13 + 4).
    let (head, rest) = tiny.split_at(33);
    let pad = size - tiny.len() - 12;
    let mut chunk = Vec::with_capacity(pad + 12);
    chunk.extend_from_slice(&(pad as u32).to_be_bytes());
    chunk.extend_from_slice(b"prVt");
    chunk.resize(8 + pad, 0);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk[4..]);
    chunk.extend_from_slice(&crc.sum().to_be_bytes());
    let png = [head, &chunk, rest].concat();
    assert_eq!(png.len(), size);
    png
}

/// A response: status, `X-Bookstore-Instance` (set by the shop, never by nginx), body.
struct Answer {
    status: u16,
    instance: Option<String>,
    location: Option<String>,
    body: Vec<u8>,
}

fn answer(r: reqwest::blocking::Response) -> Answer {
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (instance, location) = (h("x-bookstore-instance"), h("location"));
    Answer {
        status: r.status().as_u16(),
        instance,
        location,
        body: r.bytes().map(|b| b.to_vec()).unwrap_or_default(),
    }
}

/// The value of the first `csrf` field on a page.
fn csrf(page: &Answer) -> String {
    let body = String::from_utf8_lossy(&page.body);
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    body[at..at + body[at..].find('"').unwrap()].to_string()
}

#[test]
fn objective1_nginx_and_the_shop_take_the_specs_larger_upload_limit() {
    if !tools_present() {
        return;
    }
    let mut o = options(1);
    o.spec.app.max_upload_mb = MAX_UPLOAD_MB;
    let r = objective1::Rehearsal::start(&o).expect("start the objective 1 rehearsal");
    let http = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let base = r.https_url();
    let get = |path: &str| answer(http.get(format!("{base}{path}")).send().expect(path));
    let page = get("/register");
    let registered = answer(
        http.post(format!("{base}/register"))
            .form(&[
                ("csrf", csrf(&page).as_str()),
                ("name", "Ulla Uploader"),
                ("email", "ulla@rehearsal.test"),
                ("password", "ulla-password"),
            ])
            .send()
            .unwrap(),
    );
    assert_eq!(registered.status, 303);
    let upload = |title: &str, cover: Vec<u8>| {
        let form = multipart::Form::new()
            .text("csrf", csrf(&get("/books/new")))
            .text("title", title.to_string())
            .text("author", "Big Covers")
            .text("description", "A cover near the spec's limit.")
            .text("price", "9.50")
            .text("stock", "3")
            .part(
                "cover",
                multipart::Part::bytes(cover)
                    .file_name("cover.png")
                    .mime_str("image/png")
                    .unwrap(),
            );
        http.post(format!("{base}/books/new"))
            .multipart(form)
            .send()
            .map(answer)
    };

    // Just under the limit: stored, and served back byte for byte.
    let cover = png_of(MAX_UPLOAD_MB as usize * MIB - 4096);
    let saved = upload("Just under", cover.clone()).expect("upload just under the limit");
    assert_eq!(
        saved.status,
        303,
        "{}",
        String::from_utf8_lossy(&saved.body)
    );
    let book = get(saved.location.as_deref().expect("the book's page"));
    let text = String::from_utf8_lossy(&book.body);
    let at = text
        .find("\"/uploads/")
        .expect("the cover on the book page")
        + 1;
    let src = &text[at..at + text[at..].find('"').unwrap()];
    let served = get(src);
    assert_eq!(served.status, 200);
    assert!(served.body == cover, "the cover came back changed");

    // Just over the limit: nginx lets it through (its limit is 1 MiB higher), the shop refuses it.
    let over = upload("Just over", png_of(MAX_UPLOAD_MB as usize * MIB + 10)).expect("upload");
    assert_eq!(over.status, 413);
    assert!(over.instance.is_some(), "the shop's 413, not nginx's");
    assert!(String::from_utf8_lossy(&over.body).contains("12 MiB"));

    // Over nginx's client_max_body_size: nginx refuses it before the shop sees it.
    let way_over = upload(
        "Way over",
        png_of((MAX_UPLOAD_MB as usize + 1) * MIB + 4096),
    );
    match way_over {
        Ok(a) => {
            assert_eq!(a.status, 413);
            assert!(a.instance.is_none(), "nginx's 413, not the shop's");
        }
        // nginx may close the connection while the client still sends the body.
        Err(e) => panic!("nginx's 413 did not reach the client: {e}"),
    }
    let titles = String::from_utf8_lossy(&get("/books").body).to_string();
    assert!(titles.contains("Just under"), "{titles}");
    assert!(
        !titles.contains("Just over") && !titles.contains("Way over"),
        "a refused upload made a book: {titles}"
    );
}

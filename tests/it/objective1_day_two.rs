//! Issue 14, objective 1 on day two: an app upgrade keeps the VM and its data. Re-rendering with
//! another `app.tag` changes neither the user-data nor the launch template (only the SSM parameter
//! the VM reads its image from), and the rehearsal re-run on the same work directory keeps every
//! book, order and cover; a change that does replace the VM keeps them on the data volume.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use super::rehearse::{options, tools_present};
use bookstore::blueprints::{Objective, Source};
use bookstore::rehearse::objective1::{Boot, Rehearsal};
use reqwest::blocking::{multipart, Client};
use std::collections::HashMap;
use std::time::Duration;

fn render(tag: &str, log_level: &str) -> HashMap<String, String> {
    let mut spec = bookstore::spec::embedded_default();
    spec.app.tag = tag.to_string();
    spec.app.log_level = log_level.to_string();
    let r = bookstore::render::render(&spec, &Source::Embedded, Objective::Objective1, "out/o1")
        .expect("render objective 1");
    r.files.into_iter().map(|f| (f.path, f.content)).collect()
}

#[test]
fn another_app_tag_changes_neither_the_user_data_nor_the_launch_template() {
    let a = render("1.0.0", "info");
    let b = render("9.9.9", "info");
    assert_eq!(
        a["user-data.yaml"], b["user-data.yaml"],
        "the user-data must not name the app's tag: a new one would replace the VM"
    );
    let changed: Vec<(&str, &str)> = a["cloudformation.yaml"]
        .lines()
        .zip(b["cloudformation.yaml"].lines())
        .filter(|(x, y)| x != y)
        .collect();
    assert_eq!(changed.len(), 1, "one line differs: {changed:#?}");
    assert!(
        changed[0].1.trim().starts_with("Value: ") && changed[0].1.ends_with(":9.9.9\""),
        "only AppImageParameter's value changes: {changed:?}"
    );
    let cfn = &a["cloudformation.yaml"];
    for needle in [
        "Type: AWS::EC2::Volume\n    DeletionPolicy: Snapshot\n    UpdateReplacePolicy: Snapshot",
        "Type: AWS::EC2::VolumeAttachment",
        "Type: AWS::DLM::LifecyclePolicy",
        "Type: AWS::SSM::Document",
        "Type: AWS::EC2::Image::Id\n",
    ] {
        assert!(cfn.contains(needle), "cloudformation.yaml lacks {needle:?}");
    }
    assert!(
        !cfn.contains("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"),
        "the AMI must not be re-resolved at every deploy"
    );
}

/// A 1x1 PNG.
const PNG: [u8; 70] = [
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

/// A shopper with a cookie jar.
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
                .unwrap(),
            base: base.to_string(),
        }
    }

    fn csrf(&self, path: &str) -> String {
        let body = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let v = &body[body.find("name=\"csrf\"").expect("a csrf field")..];
        let v = &v[v.find("value=\"").unwrap() + 7..];
        v[..v.find('"').unwrap()].to_string()
    }

    /// POSTs the form of the page at `page` to `path`; returns the redirect's location (every
    /// step of the flow answers 303).
    fn post(&self, page: &str, path: &str, form: &[(&str, &str)]) -> String {
        let csrf = self.csrf(page);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(form);
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            303,
            "POST {path}: {}",
            r.text().unwrap()
        );
        r.headers()["location"].to_str().unwrap().to_string()
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }
}

/// What must survive: every book, every purchase, the cover files.
fn shop_state(r: &Rehearsal) -> (String, String, Vec<String>) {
    let db = r.database();
    let q = |sql: &str| r.db().sql(&sql.replace("DB", db)).expect("query");
    let uploads = r.app_env().vars["BOOKSTORE_UPLOADS_DIR"].clone();
    let mut covers: Vec<String> = walk(std::path::Path::new(&uploads));
    covers.sort();
    (
        q("SELECT id, title, stock FROM `DB`.books ORDER BY id"),
        q("SELECT id, status FROM `DB`.purchases ORDER BY id"),
        covers,
    )
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn objective1_upgraded_on_the_same_data_keeps_every_book_and_order() {
    if !tools_present() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut o = options(1);
    o.workdir = Some(work.path().to_path_buf());
    o.spec.app.tag = "1.0.0".into();

    let r = Rehearsal::start(&o).expect("first run");
    assert_eq!(r.boot(), &Boot::First);
    let shop = Shopper::new(&r.https_url());
    shop.post(
        "/register",
        "/register",
        &[
            ("name", "Dee Tootoo"),
            ("email", "dee@rehearsal.test"),
            ("password", "rehearsal-password"),
        ],
    );
    // A book of her own, with a cover ...
    let form = multipart::Form::new()
        .text("csrf", shop.csrf("/books/new"))
        .text("title", "Kept Across Upgrades")
        .text("author", "R. Hearsal")
        .text("description", "On the data volume.")
        .text("price", "7.50")
        .text("stock", "3")
        .part(
            "cover",
            multipart::Part::bytes(PNG.to_vec())
                .file_name("cover.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let added = shop
        .http
        .post(format!("{}/books/new", shop.base))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(added.status().as_u16(), 303, "add a book");
    // ... and a demo book bought (not her own), paid.
    let book = "/books/1";
    let pay = shop.post(book, &format!("{book}/buy"), &[("quantity", "1")]);
    shop.post(&pay, &pay, &[("method", "card")]);
    let before = shop_state(&r);
    assert!(before.1.lines().count() == 1, "one purchase: {}", before.1);
    assert!(!before.2.is_empty(), "the cover was stored");
    drop(r);

    // The upgrade: another tag, the same work directory (the same VM, its data volume).
    o.spec.app.tag = "1.1.0".into();
    let r = Rehearsal::start(&o).expect("the upgraded run");
    let diffs = r.differences().render();
    assert_eq!(
        r.boot(),
        &Boot::Kept,
        "an upgrade must keep the VM:\n{diffs}"
    );
    assert_eq!(shop_state(&r), before, "the upgrade lost data");
    let shop = Shopper::new(&r.https_url());
    shop.post(
        "/login",
        "/login",
        &[
            ("email", "dee@rehearsal.test"),
            ("password", "rehearsal-password"),
        ],
    );
    let (status, orders) = shop.get("/orders");
    assert_eq!(status, 200);
    let purchase = before.1.split('\t').next().unwrap().trim();
    assert!(
        orders.contains(&format!("<td>{purchase}</td>")),
        "her order is listed"
    );
    drop(r);

    // A change that does replace the VM (the user-data changes): the data volume keeps the shop.
    o.spec.app.log_level = "debug".into();
    let r = Rehearsal::start(&o).expect("the replaced VM");
    let diffs = r.differences().render();
    assert_eq!(r.boot(), &Boot::Replaced, "{diffs}");
    assert!(
        diffs.contains("the data volume at /srv/bookstore is kept"),
        "{diffs}"
    );
    assert_eq!(shop_state(&r), before, "the replaced VM lost data");
}

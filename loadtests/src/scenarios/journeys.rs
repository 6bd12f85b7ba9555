//! The journeys: browsers, shoppers and sellers, step by step.

use goose::goose::{GooseUser, TransactionError};
use goose::prelude::TransactionResult;

use super::steps::{
    asset, ensure_client, expect, get, id_in, need_form, post, post_accepting, send, state, think,
    url_for, Body,
};
use super::{Shared, UserState};
use crate::pages::{Doc, FormSel};
use crate::safety;

// ---------- browsers ----------

pub(super) async fn browse(user: &mut GooseUser, sh: &Shared) -> TransactionResult {
    ensure_client(user, sh, false).await?;
    if let Some(only) = &sh.only {
        let url = only.url.clone();
        send(user, sh, reqwest::Method::GET, url, &only.name, Body::Empty).await?;
        return Ok(());
    }
    let mut home = get(user, sh, "/", "GET /").await?;
    let doc = Doc::new(&home.body);
    let (ok, assets) = (doc.has_class("navbar-brand"), doc.assets());
    expect(user, sh, &mut home, ok, "the home page")?;
    // Like a browser with a cache: assets once per connection generation.
    if !state(user).assets_fetched {
        for asset in assets {
            self::asset(user, sh, &asset, "GET /static/...").await?;
        }
        state(user).assets_fetched = true;
    }
    let mut catalog = get(user, sh, "/books", "GET /books").await?;
    let doc = Doc::new(&catalog.body);
    let (ok, links, mut cards) = (doc.has_tag("h1"), doc.page_links(), doc.book_cards());
    expect(user, sh, &mut catalog, ok, "the catalog")?;
    if let Some(link) = state(user).pick(&links).cloned() {
        let mut page = get(user, sh, &link, "GET /books?page=").await?;
        let more = Doc::new(&page.body).book_cards();
        expect(
            user,
            sh,
            &mut page,
            !more.is_empty(),
            "a catalog page with books",
        )?;
        cards = more;
    }
    // Search for a word of a title on the page.
    let word = state(user)
        .pick(&cards)
        .and_then(|c| {
            c.title
                .split_whitespace()
                .find(|w| w.len() >= 4 && w.bytes().all(|b| b.is_ascii_alphanumeric()))
        })
        .unwrap_or("River")
        .to_string();
    let mut found = get(user, sh, &format!("/books?q={word}"), "GET /books?q=").await?;
    let ok = Doc::new(&found.body)
        .text_of_tag("h1")
        .is_some_and(|h| h.contains("matching"));
    expect(user, sh, &mut found, ok, "search results")?;
    if let Some(card) = state(user).pick(&cards).cloned() {
        let mut book = get(user, sh, &format!("/books/{}", card.id), "GET /books/{id}").await?;
        let ok = Doc::new(&book.body).has_id("book-title");
        expect(user, sh, &mut book, ok, "a book page")?;
        if let Some(cover) = card.cover.filter(|c| c.starts_with("/uploads/")) {
            asset(user, sh, &cover, "GET /uploads/...").await?;
        }
    }
    Ok(())
}

// ---------- accounts ----------

const PASSWORD: &str = "loadtest-password";

fn email(user: &mut GooseUser, sh: &Shared, role: &str) -> String {
    let index = user.weighted_users_index;
    let iteration = state(user).iteration;
    safety::email(role, &sh.run_id, index, iteration)
}

/// Registers a new account with the current cookie jar; ends signed in.
async fn register(user: &mut GooseUser, sh: &Shared, email: &str, name: &str) -> TransactionResult {
    let mut page = get(user, sh, "/register", "GET /register").await?;
    let form = need_form(
        user,
        sh,
        &mut page,
        FormSel::Action("/register"),
        "the register form",
    )?;
    let mut home = post(
        user,
        sh,
        &form.action,
        "POST /register",
        vec![
            ("csrf", form.csrf),
            ("name", name.to_string()),
            ("email", email.to_string()),
            ("password", PASSWORD.to_string()),
        ],
    )
    .await?;
    let ok = home.path == "/" && Doc::new(&home.body).has_id("logout");
    expect(user, sh, &mut home, ok, "the home page, signed in")
}

// ---------- shoppers ----------

pub(super) async fn shop(user: &mut GooseUser, sh: &Shared) -> TransactionResult {
    // A new shopper: a new cookie jar and new connections.
    ensure_client(user, sh, true).await?;
    let email = email(user, sh, "shopper");
    register(user, sh, &email, "Load Test Shopper").await?;

    // Log out and back in, as returning customers do.
    let mut home = get(user, sh, "/", "GET /").await?;
    let form = need_form(
        user,
        sh,
        &mut home,
        FormSel::Action("/logout"),
        "the log-out button",
    )?;
    let mut out = post(
        user,
        sh,
        &form.action,
        "POST /logout",
        vec![("csrf", form.csrf)],
    )
    .await?;
    let ok = !Doc::new(&out.body).has_id("logout");
    expect(user, sh, &mut out, ok, "the home page, signed out")?;
    let mut login = get(user, sh, "/login", "GET /login").await?;
    let form = need_form(
        user,
        sh,
        &mut login,
        FormSel::Action("/login"),
        "the log-in form",
    )?;
    let mut back = post(
        user,
        sh,
        &form.action,
        "POST /login",
        vec![
            ("csrf", form.csrf),
            ("email", email.clone()),
            ("password", PASSWORD.to_string()),
        ],
    )
    .await?;
    let ok = Doc::new(&back.body).has_id("logout");
    expect(user, sh, &mut back, ok, "the home page, signed in")?;

    // Find a book in stock.
    let mut catalog = get(user, sh, "/books", "GET /books").await?;
    let doc = Doc::new(&catalog.body);
    let cards: Vec<_> = doc
        .book_cards()
        .into_iter()
        .filter(|c| !c.sold_out)
        .collect();
    let (links, mut cards) = (doc.page_links(), cards);
    if let Some(link) = state(user).pick(&links).cloned() {
        let page = get(user, sh, &link, "GET /books?page=").await?;
        let more: Vec<_> = Doc::new(&page.body)
            .book_cards()
            .into_iter()
            .filter(|c| !c.sold_out)
            .collect();
        if !more.is_empty() {
            cards = more;
        }
    }
    let card = state(user).pick(&cards).cloned();
    expect(user, sh, &mut catalog, card.is_some(), "a book in stock")?;
    let card = card.expect("checked");
    let mut book = get(user, sh, &format!("/books/{}", card.id), "GET /books/{id}").await?;
    let form = need_form(user, sh, &mut book, FormSel::Id("buy-form"), "the buy form")?;

    // Buy, pay, choose a courier. Other shoppers may have taken the last copies since the book
    // page showed them: the shop then answers 409 and sells nothing, which is right, and the
    // shopper, as a person would, leaves it there.
    let mut pay = post_accepting(
        user,
        sh,
        &form.action,
        "POST /books/{id}/buy",
        vec![("csrf", form.csrf), ("quantity", "1".into())],
        &[409],
    )
    .await?;
    if pay.status == 409 {
        let sold_out = crate::pages::describe(&pay.body).contains("not enough copies");
        expect(
            user,
            sh,
            &mut pay,
            sold_out,
            "the payment page, or that the copies are gone",
        )?;
        sh.rec.sold_out();
        return Ok(());
    }
    let order = id_in(&pay.path, "/purchases/", "/pay");
    expect(user, sh, &mut pay, order.is_some(), "the payment page")?;
    let order = order.expect("checked");
    let form = need_form(
        user,
        sh,
        &mut pay,
        FormSel::Action(&format!("/purchases/{order}/pay")),
        "the payment form",
    )?;
    let mut delivery = post(
        user,
        sh,
        &form.action,
        "POST /purchases/{id}/pay",
        vec![("csrf", form.csrf), ("method", "card".into())],
    )
    .await?;
    let providers = Doc::new(&delivery.body).radio_values("provider_id");
    let ok = delivery.path == format!("/purchases/{order}/delivery") && !providers.is_empty();
    expect(user, sh, &mut delivery, ok, "the courier choice")?;
    let form = need_form(
        user,
        sh,
        &mut delivery,
        FormSel::Action(&format!("/purchases/{order}/delivery")),
        "the courier form",
    )?;
    let provider = state(user).pick(&providers).cloned().unwrap_or_default();
    let mut orders = post(
        user,
        sh,
        &form.action,
        "POST /purchases/{id}/delivery",
        vec![("csrf", form.csrf), ("provider_id", provider)],
    )
    .await?;
    let status = Doc::new(&orders.body).order_status(order);
    let ok = orders.path == "/orders" && status.as_deref() == Some("shipped");
    expect(user, sh, &mut orders, ok, "the order shipped in my orders")?;
    Ok(())
}

// ---------- sellers ----------

/// A 1x1 PNG, the smallest real cover.
const COVER_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0,
    0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

fn book_form(
    csrf: String,
    title: &str,
    price: &str,
    cover: bool,
) -> Result<reqwest::multipart::Form, Box<TransactionError>> {
    let mut form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("title", title.to_string())
        .text("author", "Load Test Author")
        .text("description", "Written by the load test.")
        .text("price", price.to_string())
        .text("stock", "5");
    if cover {
        let part = reqwest::multipart::Part::bytes(COVER_PNG)
            .file_name("cover.png")
            .mime_str("image/png")
            .map_err(|e| Box::new(TransactionError::Reqwest(e)))?;
        form = form.part("cover", part);
    }
    Ok(form)
}

pub(super) async fn sell(user: &mut GooseUser, sh: &Shared) -> TransactionResult {
    let new_seller = user
        .get_session_data::<UserState>()
        .is_none_or(|st| !st.seller);
    ensure_client(user, sh, new_seller).await?;
    if new_seller {
        let email = email(user, sh, "seller");
        register(user, sh, &email, "Load Test Seller").await?;
        state(user).seller = true;
    }
    let index = user.weighted_users_index;
    let title = safety::title(&sh.run_id, index, state(user).iteration);
    let mut new = get(user, sh, "/books/new", "GET /books/new").await?;
    let form = need_form(
        user,
        sh,
        &mut new,
        FormSel::Action("/books/new"),
        "the new book form",
    )?;
    let body = Body::Multipart(book_form(form.csrf, &title, "12.50", true)?);
    think(user, sh).await?;
    let url = url_for(user, &form.action)?;
    let mut book = send(
        user,
        sh,
        reqwest::Method::POST,
        url,
        "POST /books/new",
        body,
    )
    .await?;
    let id = id_in(&book.path, "/books/", "");
    let ok =
        id.is_some() && Doc::new(&book.body).text_of_id("book-title").as_deref() == Some(&title);
    expect(user, sh, &mut book, ok, "the new book's page")?;
    let id = id.expect("checked");

    let mut edit = get(
        user,
        sh,
        &format!("/books/{id}/edit"),
        "GET /books/{id}/edit",
    )
    .await?;
    let form = need_form(
        user,
        sh,
        &mut edit,
        FormSel::Action(&format!("/books/{id}/edit")),
        "the edit form",
    )?;
    let body = Body::Multipart(book_form(form.csrf, &title, "13.75", false)?);
    think(user, sh).await?;
    let url = url_for(user, &form.action)?;
    let mut saved = send(
        user,
        sh,
        reqwest::Method::POST,
        url,
        "POST /books/{id}/edit",
        body,
    )
    .await?;
    let ok = saved.path == format!("/books/{id}") && saved.body.contains("$13.75");
    expect(user, sh, &mut saved, ok, "the book page with the new price")?;

    let mut mine = get(user, sh, "/my/books", "GET /my/books").await?;
    let ok = mine.body.contains(&format!("href=\"/books/{id}\""));
    expect(user, sh, &mut mine, ok, "the book in my books")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_is_a_png() {
        assert!(COVER_PNG.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}

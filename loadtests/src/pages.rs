//! Reading the shop's pages with a real HTML parser: CSRF tokens, form actions, links, messages.
//!
//! `scraper::Html` is not `Send`, so every function parses and extracts in one go and returns
//! owned data; nothing parsed lives across an `.await`.

use scraper::{ElementRef, Html, Selector};

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid selector")
}

fn text(e: ElementRef<'_>) -> String {
    e.text()
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A form on a page: where it posts and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    /// The `action` attribute.
    pub action: String,
    /// The value of the hidden `csrf` input (empty when absent).
    pub csrf: String,
}

/// The first form matching `selector` (e.g. `form[action="/login"]`, `#buy-form`).
pub fn form(html: &str, selector: &str) -> Option<Form> {
    let doc = Html::parse_document(html);
    let f = doc.select(&sel(selector)).next()?;
    let csrf = f
        .select(&sel(r#"input[name="csrf"]"#))
        .next()
        .and_then(|i| i.value().attr("value"))
        .unwrap_or("")
        .to_string();
    Some(Form {
        action: f.value().attr("action").unwrap_or("").to_string(),
        csrf,
    })
}

/// A book card on the home or catalog page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookCard {
    /// The book's id.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// True when it shows the "sold out" badge.
    pub sold_out: bool,
    /// The cover image's URL.
    pub cover: Option<String>,
}

/// The book cards of a home or catalog page.
pub fn book_cards(html: &str) -> Vec<BookCard> {
    let doc = Html::parse_document(html);
    let link = sel(r#"a[href^="/books/"]"#);
    let title = sel(".card-title");
    let badge = sel(".badge");
    let img = sel("img");
    doc.select(&sel(".book-card"))
        .filter_map(|card| {
            let href = card.select(&link).next()?.value().attr("href")?;
            let id = href.strip_prefix("/books/")?.parse::<u64>().ok()?;
            Some(BookCard {
                id,
                title: card.select(&title).next().map(text).unwrap_or_default(),
                sold_out: card
                    .select(&badge)
                    .any(|b| text(b).eq_ignore_ascii_case("sold out")),
                cover: card
                    .select(&img)
                    .next()
                    .and_then(|i| i.value().attr("src"))
                    .map(str::to_string),
            })
        })
        .collect()
}

/// The links of the catalog's pagination.
pub fn page_links(html: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    doc.select(&sel(".pagination a.page-link"))
        .filter_map(|a| a.value().attr("href").map(str::to_string))
        .collect()
}

/// The stylesheets and scripts a page loads from the shop itself.
pub fn assets(html: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let mut out: Vec<String> = doc
        .select(&sel(r#"link[rel="stylesheet"]"#))
        .filter_map(|l| l.value().attr("href"))
        .chain(
            doc.select(&sel("script[src]"))
                .filter_map(|s| s.value().attr("src")),
        )
        .filter(|h| h.starts_with('/'))
        .map(str::to_string)
        .collect();
    out.dedup();
    out
}

/// The text of the first element matching `selector`, whitespace collapsed.
pub fn text_of(html: &str, selector: &str) -> Option<String> {
    let doc = Html::parse_document(html);
    let found = doc.select(&sel(selector)).next().map(text);
    found
}

/// True when an element matches `selector`.
pub fn has(html: &str, selector: &str) -> bool {
    let doc = Html::parse_document(html);
    let found = doc.select(&sel(selector)).next().is_some();
    found
}

/// The values of the radio buttons named `name`.
pub fn radio_values(html: &str, name: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let s = sel(&format!(r#"input[type="radio"][name="{name}"]"#));
    let out = doc
        .select(&s)
        .filter_map(|i| i.value().attr("value").map(str::to_string))
        .collect();
    out
}

/// The status cell of order `id` on the orders page.
pub fn order_status(html: &str, id: u64) -> Option<String> {
    let doc = Html::parse_document(html);
    let cell = sel("td");
    let status = sel(".status");
    let found = doc.select(&sel("#orders tbody tr")).find_map(|row| {
        let first = row.select(&cell).next().map(text)?;
        if first == id.to_string() {
            row.select(&status).next().map(text)
        } else {
            None
        }
    });
    found
}

/// Why a page is not the one expected, in the shop's own words when it has some:
/// the form error, the error page's message, or the title.
pub fn describe(html: &str) -> String {
    let doc = Html::parse_document(html);
    for s in ["#form-error", "#error-message", ".alert-danger", "title"] {
        if let Some(e) = doc.select(&sel(s)).next() {
            let t = text(e);
            if !t.is_empty() {
                return t.chars().take(120).collect();
            }
        }
    }
    "an empty or non-HTML page".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"<html><head><title>Catalog · BookStore</title>
      <link rel="stylesheet" href="/static/bootstrap.min.css"><link rel="stylesheet" href="/static/app.css"></head>
      <body><form action="/logout" method="post"><input type="hidden" name="csrf" value="abc"></form>
      <div class="card h-100 shadow-sm book-card"><a href="/books/7"><img src="/uploads/x.png" class="cover"></a>
      <div class="card-body"><h6 class="card-title"><a href="/books/7">The  River</a></h6>
      <span class="badge text-bg-secondary">sold out</span></div></div>
      <div class="card book-card"><a href="/books/8"><img src="/static/cover.svg"></a><h6 class="card-title">B</h6></div>
      <ul class="pagination"><li><a class="page-link" href="/books?page=2">2</a></li></ul>
      <script src="/static/bootstrap.bundle.min.js"></script></body></html>"#;

    #[test]
    fn reads_cards_forms_links_and_assets() {
        let cards = book_cards(CATALOG);
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].id, 7);
        assert_eq!(cards[0].title, "The River");
        assert!(cards[0].sold_out);
        assert!(!cards[1].sold_out);
        assert_eq!(
            form(CATALOG, r#"form[action="/logout"]"#),
            Some(Form {
                action: "/logout".into(),
                csrf: "abc".into()
            })
        );
        assert_eq!(page_links(CATALOG), vec!["/books?page=2".to_string()]);
        assert_eq!(assets(CATALOG).len(), 3);
        assert_eq!(describe(CATALOG), "Catalog · BookStore");
    }

    #[test]
    fn finds_order_status_and_errors() {
        let html = r#"<table id="orders"><tbody><tr><td>12</td><td>x</td><td><span class="badge status">shipped</span></td></tr></tbody></table>
          <div class="alert alert-danger" id="form-error">Wrong email or password.</div>"#;
        assert_eq!(order_status(html, 12).as_deref(), Some("shipped"));
        assert_eq!(order_status(html, 13), None);
        assert_eq!(describe(html), "Wrong email or password.");
    }
}

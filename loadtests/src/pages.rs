//! Reading the shop's pages with a real HTML parser: CSRF tokens, form actions, links, messages.
//!
//! A page is parsed once into a [`Doc`] and everything a step needs is read from it. `Doc` is not
//! `Send` (`scraper::Html` is not), so callers parse and extract in a block without an `.await`
//! and keep only the owned results.

use std::sync::LazyLock;

use scraper::{ElementRef, Html, Selector};

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid selector")
}

/// A selector compiled once for the whole run.
macro_rules! fixed {
    ($s:expr) => {{
        static SEL: LazyLock<Selector> = LazyLock::new(|| sel($s));
        &*SEL
    }};
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

/// One parsed page.
pub struct Doc(Html);

impl Doc {
    /// Parses a whole HTML document (never fails: broken HTML parses as a browser would).
    pub fn parse(html: &str) -> Doc {
        Doc(Html::parse_document(html))
    }

    /// The first form matching `selector` (e.g. `form[action="/login"]`, `#buy-form`).
    pub fn form(&self, selector: &str) -> Option<Form> {
        let f = self.0.select(&sel(selector)).next()?;
        let csrf = f
            .select(fixed!(r#"input[name="csrf"]"#))
            .next()
            .and_then(|i| i.value().attr("value"))
            .unwrap_or("")
            .to_string();
        Some(Form {
            action: f.value().attr("action").unwrap_or("").to_string(),
            csrf,
        })
    }

    /// The book cards of a home or catalog page.
    pub fn book_cards(&self) -> Vec<BookCard> {
        self.0
            .select(fixed!(".book-card"))
            .filter_map(|card| {
                let href = card
                    .select(fixed!(r#"a[href^="/books/"]"#))
                    .next()?
                    .value()
                    .attr("href")?;
                let id = href.strip_prefix("/books/")?.parse::<u64>().ok()?;
                Some(BookCard {
                    id,
                    title: card
                        .select(fixed!(".card-title"))
                        .next()
                        .map(text)
                        .unwrap_or_default(),
                    sold_out: card
                        .select(fixed!(".badge"))
                        .any(|b| text(b).eq_ignore_ascii_case("sold out")),
                    cover: card
                        .select(fixed!("img"))
                        .next()
                        .and_then(|i| i.value().attr("src"))
                        .map(str::to_string),
                })
            })
            .collect()
    }

    /// The links of the catalog's pagination.
    pub fn page_links(&self) -> Vec<String> {
        self.0
            .select(fixed!(".pagination a.page-link"))
            .filter_map(|a| a.value().attr("href").map(str::to_string))
            .collect()
    }

    /// The stylesheets and scripts a page loads from the shop itself.
    pub fn assets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .select(fixed!(r#"link[rel="stylesheet"]"#))
            .filter_map(|l| l.value().attr("href"))
            .chain(
                self.0
                    .select(fixed!("script[src]"))
                    .filter_map(|s| s.value().attr("src")),
            )
            .filter(|h| h.starts_with('/'))
            .map(str::to_string)
            .collect();
        out.dedup();
        out
    }

    /// The text of the first element matching `selector`, whitespace collapsed.
    pub fn text_of(&self, selector: &str) -> Option<String> {
        self.0.select(&sel(selector)).next().map(text)
    }

    /// True when an element matches `selector`.
    pub fn has(&self, selector: &str) -> bool {
        self.0.select(&sel(selector)).next().is_some()
    }

    /// The values of the radio buttons named `name`.
    pub fn radio_values(&self, name: &str) -> Vec<String> {
        let s = sel(&format!(r#"input[type="radio"][name="{name}"]"#));
        self.0
            .select(&s)
            .filter_map(|i| i.value().attr("value").map(str::to_string))
            .collect()
    }

    /// The status cell of order `id` on the orders page.
    pub fn order_status(&self, id: u64) -> Option<String> {
        let id = id.to_string();
        self.0.select(fixed!("#orders tbody tr")).find_map(|row| {
            let first = row.select(fixed!("td")).next().map(text)?;
            if first == id {
                row.select(fixed!(".status")).next().map(text)
            } else {
                None
            }
        })
    }

    /// Why a page is not the one expected, in the shop's own words when it has some:
    /// the form error, the error page's message, or the title.
    pub fn describe(&self) -> String {
        let found = [
            fixed!("#form-error"),
            fixed!("#error-message"),
            fixed!(".alert-danger"),
            fixed!("title"),
        ];
        for s in found {
            if let Some(e) = self.0.select(s).next() {
                let t = text(e);
                if !t.is_empty() {
                    return t.chars().take(120).collect();
                }
            }
        }
        "an empty or non-HTML page".into()
    }
}

/// [`Doc::describe`] of an unparsed page.
pub fn describe(html: &str) -> String {
    Doc::parse(html).describe()
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
        let doc = Doc::parse(CATALOG);
        let cards = doc.book_cards();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].id, 7);
        assert_eq!(cards[0].title, "The River");
        assert!(cards[0].sold_out);
        assert!(!cards[1].sold_out);
        assert_eq!(
            doc.form(r#"form[action="/logout"]"#),
            Some(Form {
                action: "/logout".into(),
                csrf: "abc".into()
            })
        );
        assert_eq!(doc.page_links(), vec!["/books?page=2".to_string()]);
        assert_eq!(doc.assets().len(), 3);
        assert_eq!(doc.describe(), "Catalog · BookStore");
        assert!(doc.has(".pagination") && !doc.has("#logout"));
        assert_eq!(doc.text_of(".card-title").as_deref(), Some("The River"));
    }

    #[test]
    fn finds_order_status_and_errors() {
        let html = r#"<table id="orders"><tbody><tr><td>12</td><td>x</td><td><span class="badge status">shipped</span></td></tr></tbody></table>
          <div class="alert alert-danger" id="form-error">Wrong email or password.</div>"#;
        let doc = Doc::parse(html);
        assert_eq!(doc.order_status(12).as_deref(), Some("shipped"));
        assert_eq!(doc.order_status(13), None);
        assert_eq!(describe(html), "Wrong email or password.");
    }
}

//! Reading the shop's pages: CSRF tokens, form actions, links, book cards, messages.
//!
//! No DOM is built. [`Tokens`] walks the HTML once, tag by tag, borrowing from the page; each
//! question a step asks ([`Doc::form`], [`Doc::book_cards`], ...) is one pass that stops as soon
//! as it has its answer. Comments, `<script>` and `<style>` bodies are skipped, attribute values
//! may be quoted either way or bare, character references are decoded, and an element's text
//! ends at its matching end tag (same-named elements nested inside are counted). That is
//! enough for the shop's pages, which are well-formed; broken markup yields fewer answers,
//! never a panic.

use std::borrow::Cow;

mod tokens;

pub use tokens::{decode, Tag, Tok, Tokens};

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

/// Which form: by its action or by its id.
#[derive(Debug, Clone, Copy)]
pub enum FormSel<'s> {
    /// `form[action="..."]`.
    Action(&'s str),
    /// `form#id`.
    Id(&'s str),
}

/// One page, read on demand.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a>(&'a str);

impl<'a> Doc<'a> {
    /// A page's HTML (never fails: broken HTML gives fewer answers).
    pub fn new(html: &'a str) -> Doc<'a> {
        Doc(html)
    }

    fn tokens(&self) -> Tokens<'a> {
        Tokens::new(self.0)
    }

    /// The first form matching `which`.
    pub fn form(&self, which: FormSel<'_>) -> Option<Form> {
        let mut t = self.tokens();
        while let Some(tok) = t.next() {
            let Tok::Start(tag) = tok else { continue };
            if !tag.is("form") {
                continue;
            }
            let hit = match which {
                FormSel::Action(a) => tag.attr("action").is_some_and(|v| v == a),
                FormSel::Id(id) => tag.has_id(id),
            };
            if !hit {
                continue;
            }
            let action = tag.attr("action").unwrap_or_default().into_owned();
            let mut csrf = String::new();
            for inner in t.by_ref() {
                match inner {
                    Tok::End(n) if n.eq_ignore_ascii_case("form") => break,
                    Tok::Start(i)
                        if i.is("input") && i.attr("name").is_some_and(|n| n == "csrf") =>
                    {
                        csrf = i.attr("value").unwrap_or_default().into_owned();
                        break;
                    }
                    _ => {}
                }
            }
            return Some(Form { action, csrf });
        }
        None
    }

    /// The book cards of a home or catalog page.
    pub fn book_cards(&self) -> Vec<BookCard> {
        let mut out = Vec::new();
        let mut t = self.tokens();
        while let Some(tok) = t.next() {
            let Tok::Start(tag) = tok else { continue };
            if tag.empty || !tag.has_class("book-card") {
                continue;
            }
            let (mut id, mut title, mut sold_out, mut cover) = (None, String::new(), false, None);
            let mut depth = 1usize;
            while let Some(inner) = t.next() {
                match inner {
                    Tok::End(n) if n.eq_ignore_ascii_case(tag.name) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Start(i) => {
                        if id.is_none() && i.is("a") {
                            id = i
                                .attr("href")
                                .and_then(|h| h.strip_prefix("/books/")?.parse::<u64>().ok());
                        }
                        if cover.is_none() && i.is("img") {
                            cover = i.attr("src").map(Cow::into_owned);
                        }
                        if !i.empty && i.has_class("card-title") {
                            title = t.text_until_end(i.name);
                        } else if !i.empty && i.has_class("badge") {
                            sold_out |= t.text_until_end(i.name).eq_ignore_ascii_case("sold out");
                        } else if i.is(tag.name) && !i.empty {
                            depth += 1;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(id) = id {
                out.push(BookCard {
                    id,
                    title,
                    sold_out,
                    cover,
                });
            }
        }
        out
    }

    /// The links of the catalog's pagination (`a.page-link`).
    pub fn page_links(&self) -> Vec<String> {
        self.tokens()
            .filter_map(|tok| match tok {
                Tok::Start(a) if a.is("a") && a.has_class("page-link") => {
                    a.attr("href").map(Cow::into_owned)
                }
                _ => None,
            })
            .collect()
    }

    /// The stylesheets and scripts a page loads from the shop itself.
    pub fn assets(&self) -> Vec<String> {
        let mut sheets = Vec::new();
        let mut scripts = Vec::new();
        for tok in self.tokens() {
            let Tok::Start(tag) = tok else { continue };
            if tag.is("link") && tag.attr("rel").is_some_and(|r| r == "stylesheet") {
                sheets.extend(tag.attr("href").map(Cow::into_owned));
            } else if tag.is("script") {
                scripts.extend(tag.attr("src").map(Cow::into_owned));
            }
        }
        let mut out: Vec<String> = sheets
            .into_iter()
            .chain(scripts)
            .filter(|h| h.starts_with('/'))
            .collect();
        out.dedup();
        out
    }

    fn text_where(&self, pick: impl Fn(&Tag<'_>) -> bool) -> Option<String> {
        let mut t = self.tokens();
        while let Some(tok) = t.next() {
            if let Tok::Start(tag) = tok {
                if pick(&tag) {
                    return Some(if tag.empty {
                        String::new()
                    } else {
                        t.text_until_end(tag.name)
                    });
                }
            }
        }
        None
    }

    /// The text of the element with this id, whitespace collapsed.
    pub fn text_of_id(&self, id: &str) -> Option<String> {
        self.text_where(|t| t.has_id(id))
    }

    /// The text of the first element named `tag` (e.g. `h1`).
    pub fn text_of_tag(&self, tag: &str) -> Option<String> {
        self.text_where(|t| t.is(tag))
    }

    /// True when an element has this id.
    pub fn has_id(&self, id: &str) -> bool {
        self.tokens()
            .any(|tok| matches!(tok, Tok::Start(t) if t.has_id(id)))
    }

    /// True when an element has this class.
    pub fn has_class(&self, class: &str) -> bool {
        self.tokens()
            .any(|tok| matches!(tok, Tok::Start(t) if t.has_class(class)))
    }

    /// True when an element named `tag` exists.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tokens()
            .any(|tok| matches!(tok, Tok::Start(t) if t.is(tag)))
    }

    /// The values of the radio buttons named `name`.
    pub fn radio_values(&self, name: &str) -> Vec<String> {
        self.tokens()
            .filter_map(|tok| match tok {
                Tok::Start(i)
                    if i.is("input")
                        && i.attr("type")
                            .is_some_and(|t| t.eq_ignore_ascii_case("radio"))
                        && i.attr("name").is_some_and(|n| n == name) =>
                {
                    i.attr("value").map(Cow::into_owned)
                }
                _ => None,
            })
            .collect()
    }

    /// The status cell (`.status`) of order `id` in the `#orders` table.
    pub fn order_status(&self, id: u64) -> Option<String> {
        let id = id.to_string();
        let mut t = self.tokens();
        // Into the table.
        loop {
            match t.next()? {
                Tok::Start(tag) if tag.has_id("orders") => break,
                _ => continue,
            }
        }
        let mut first_cell: Option<String> = None;
        while let Some(tok) = t.next() {
            match tok {
                Tok::End(n) if n.eq_ignore_ascii_case("table") => return None,
                Tok::Start(tag) if tag.is("tr") => first_cell = None,
                Tok::Start(tag) if tag.is("td") && first_cell.is_none() => {
                    first_cell = Some(t.text_until_end("td"));
                }
                Tok::Start(tag) if !tag.empty && tag.has_class("status") => {
                    let text = t.text_until_end(tag.name);
                    if first_cell.as_deref() == Some(id.as_str()) {
                        return Some(text);
                    }
                }
                Tok::Start(tag) if tag.is("thead") => t.skip_element("thead"),
                _ => {}
            }
        }
        None
    }

    /// Why a page is not the one expected, in the shop's own words when it has some:
    /// the form error, the error page's message, an alert, or the title.
    pub fn describe(&self) -> String {
        let found = [
            self.text_of_id("form-error"),
            self.text_of_id("error-message"),
            self.text_where(|t| t.has_class("alert-danger")),
            self.text_of_tag("title"),
        ];
        for t in found.into_iter().flatten() {
            if !t.is_empty() {
                return t.chars().take(120).collect();
            }
        }
        "an empty or non-HTML page".into()
    }
}

/// [`Doc::describe`] of a page.
pub fn describe(html: &str) -> String {
    Doc::new(html).describe()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"<!doctype html><html><head><title>Catalog · BookStore</title>
      <link rel="stylesheet" href="/static/bootstrap.min.css"><link rel="stylesheet" href="/static/app.css"></head>
      <body><!-- <div id="logout"> in a comment --><form action="/logout" method="post"><input type="hidden" name="csrf" value="abc"></form>
      <div class="card h-100 shadow-sm book-card"><a href="/books/7"><img src="/uploads/x.png" class="cover" alt="Cover of The &amp; River"></a>
      <div class="card-body"><h6 class="card-title"><a href="/books/7">The  &amp;  River</a></h6>
      <span class="badge text-bg-secondary">sold out</span></div></div>
      <div class="card book-card"><a href=/books/8><img src='/static/cover.svg'></a><h6 class="card-title">B &#x27;s</h6></div>
      <ul class="pagination"><li><a class="page-link" href="/books?page=2&amp;q=x">2</a></li></ul>
      <script>if (a < b && "</div>") {}</script>
      <script src="/static/bootstrap.bundle.min.js"></script></body></html>"#;

    #[test]
    fn reads_cards_forms_links_and_assets() {
        let doc = Doc::new(CATALOG);
        let cards = doc.book_cards();
        assert_eq!(cards.len(), 2, "{cards:?}");
        assert_eq!(cards[0].id, 7);
        assert_eq!(cards[0].title, "The & River");
        assert!(cards[0].sold_out);
        assert_eq!(cards[0].cover.as_deref(), Some("/uploads/x.png"));
        assert!(!cards[1].sold_out);
        assert_eq!(cards[1].title, "B 's");
        assert_eq!(cards[1].cover.as_deref(), Some("/static/cover.svg"));
        assert_eq!(
            doc.form(FormSel::Action("/logout")),
            Some(Form {
                action: "/logout".into(),
                csrf: "abc".into()
            })
        );
        assert_eq!(doc.form(FormSel::Action("/login")), None);
        assert_eq!(doc.page_links(), vec!["/books?page=2&q=x".to_string()]);
        assert_eq!(
            doc.assets(),
            vec![
                "/static/bootstrap.min.css".to_string(),
                "/static/app.css".into(),
                "/static/bootstrap.bundle.min.js".into()
            ]
        );
        assert_eq!(doc.describe(), "Catalog · BookStore");
        assert!(doc.has_class("pagination") && !doc.has_id("logout"));
        assert_eq!(doc.text_of_tag("h6").as_deref(), Some("The & River"));
    }

    #[test]
    fn finds_order_status_and_errors() {
        let html = r#"<table id="orders"><thead><tr><th>#</th><th class="status">Status</th></tr></thead>
          <tbody><tr><td>12</td><td>x</td><td><span class="badge status">shipped</span></td></tr>
          <tr><td>13</td><td>y</td><td><span class="badge status">paid</span></td></tr></tbody></table>
          <div class="alert alert-danger" id="form-error">Wrong email or password.</div>
          <form id="buy-form" action="/books/3/buy"><input name=csrf value=tok123><input type="radio" name="provider_id" value="2"><input type=radio name=provider_id value=4></form>"#;
        let doc = Doc::new(html);
        assert_eq!(doc.order_status(12).as_deref(), Some("shipped"));
        assert_eq!(doc.order_status(13).as_deref(), Some("paid"));
        assert_eq!(doc.order_status(14), None);
        assert_eq!(describe(html), "Wrong email or password.");
        assert_eq!(
            doc.form(FormSel::Id("buy-form")),
            Some(Form {
                action: "/books/3/buy".into(),
                csrf: "tok123".into()
            })
        );
        assert_eq!(doc.radio_values("provider_id"), vec!["2", "4"]);
    }

    #[test]
    fn broken_markup_gives_fewer_answers_not_a_panic() {
        for html in [
            "",
            "<",
            "<<<",
            "<a href=\"/books/1",
            "<div class=\"book-card\"><a href=\"/books/x\">",
            "<!--",
            "<script>",
            "&#xZZ; &#99999999; &",
            "<form action=\"/x\"><input name=\"csrf\" value=\"",
            "<title>é</title",
            "<table id=orders><tr><td>1",
        ] {
            let d = Doc::new(html);
            let _ = (
                d.book_cards(),
                d.page_links(),
                d.assets(),
                d.describe(),
                d.order_status(1),
            );
            let _ = d.form(FormSel::Action("/x"));
        }
        assert_eq!(decode("a&amp;b&#65;&#x42;&bogus;&"), "a&bAB&bogus;&");
    }
}

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

/// A start tag: its name and the raw text of its attributes.
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    /// The element name, as written.
    pub name: &'a str,
    attrs: &'a str,
    /// `<x/>` or a void element (img, input, link, ...): no end tag follows.
    pub empty: bool,
}

const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

impl<'a> Tag<'a> {
    /// True when the element is named `n` (ASCII case ignored).
    pub fn is(&self, n: &str) -> bool {
        self.name.eq_ignore_ascii_case(n)
    }

    /// The value of attribute `want`, decoded; `Some("")` for a bare attribute.
    pub fn attr(&self, want: &str) -> Option<Cow<'a, str>> {
        let b = self.attrs.as_bytes();
        let mut i = 0;
        while i < b.len() {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
                i += 1;
            }
            let name = &self.attrs[start..i];
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let value = if i < b.len() && b[i] == b'=' {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    let vs = i + 1;
                    let ve = self.attrs[vs..]
                        .bytes()
                        .position(|c| c == q)
                        .map_or(b.len(), |p| vs + p);
                    i = (ve + 1).min(b.len());
                    &self.attrs[vs..ve]
                } else {
                    let vs = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    &self.attrs[vs..i]
                }
            } else {
                ""
            };
            if name.is_empty() {
                i += 1;
                continue;
            }
            if name.eq_ignore_ascii_case(want) {
                return Some(decode(value));
            }
        }
        None
    }

    /// True when the `class` attribute lists `class`.
    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|x| x == class))
    }

    /// True when the `id` attribute is `id`.
    pub fn has_id(&self, id: &str) -> bool {
        self.attr("id").is_some_and(|v| v == id)
    }
}

/// One piece of a page.
#[derive(Debug, Clone, Copy)]
pub enum Tok<'a> {
    /// A start tag.
    Start(Tag<'a>),
    /// An end tag, by name.
    End(&'a str),
    /// Text between tags (not decoded).
    Text(&'a str),
}

/// The pieces of a page, in order; cloning it is cheap (a position in the page).
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    html: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    /// Walks `html` from the start.
    pub fn new(html: &'a str) -> Tokens<'a> {
        Tokens { html, pos: 0 }
    }

    /// Skips to the end of the element whose start tag was just read, returning its text.
    fn text_until_end(&mut self, name: &str) -> String {
        let mut depth = 1usize;
        let mut out = String::new();
        for t in self.by_ref() {
            match t {
                Tok::Start(tag) if tag.is(name) && !tag.empty => depth += 1,
                Tok::End(n) if n.eq_ignore_ascii_case(name) => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Tok::Text(s) => {
                    out.push(' ');
                    out.push_str(s);
                }
                _ => {}
            }
        }
        collapse(&decode(&out))
    }

    /// Skips to the end of the element whose start tag was just read.
    fn skip_element(&mut self, name: &str) {
        let mut depth = 1usize;
        for t in self.by_ref() {
            match t {
                Tok::Start(tag) if tag.is(name) && !tag.empty => depth += 1,
                Tok::End(n) if n.eq_ignore_ascii_case(name) => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        let html = self.html;
        loop {
            let rest = &html[self.pos..];
            if rest.is_empty() {
                return None;
            }
            let Some(lt) = rest.find('<') else {
                self.pos = html.len();
                return Some(Tok::Text(rest));
            };
            if lt > 0 {
                self.pos += lt;
                return Some(Tok::Text(&rest[..lt]));
            }
            if rest.starts_with("<!--") {
                self.pos += rest.find("-->").map_or(rest.len(), |e| e + 3);
                continue;
            }
            let b = rest.as_bytes();
            if b.len() > 1 && (b[1] == b'!' || b[1] == b'?') {
                self.pos += rest.find('>').map_or(rest.len(), |e| e + 1);
                continue;
            }
            let closing = b.len() > 1 && b[1] == b'/';
            let name_start = if closing { 2 } else { 1 };
            let name_len = rest[name_start..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'-')
                .count();
            if name_len == 0 {
                // A lone `<` in text.
                self.pos += 1;
                return Some(Tok::Text("<"));
            }
            let name = &rest[name_start..name_start + name_len];
            let end = tag_end(rest, name_start + name_len);
            self.pos += end;
            if closing {
                return Some(Tok::End(name));
            }
            let inner = &rest[name_start + name_len..end - 1];
            let self_closing = inner.trim_end().ends_with('/');
            let tag = Tag {
                name,
                attrs: inner,
                empty: self_closing || VOID.iter().any(|v| name.eq_ignore_ascii_case(v)),
            };
            if tag.is("script") || tag.is("style") {
                // Raw text: skip to the end tag.
                let close = format!("</{}", name.to_ascii_lowercase());
                let body = &html[self.pos..];
                let at = find_ci(body, &close).unwrap_or(body.len());
                self.pos += at;
            }
            return Some(Tok::Start(tag));
        }
    }
}

/// The index just past the `>` that ends a tag starting at 0, honouring quoted values.
fn tag_end(s: &str, from: usize) -> usize {
    let b = s.as_bytes();
    let mut i = from;
    let mut quote = 0u8;
    while i < b.len() {
        let c = b[i];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'"' || c == b'\'' {
            quote = c;
        } else if c == b'>' {
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.len();
    hay.as_bytes()
        .windows(n)
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Decodes character references (`&amp;`, `&#39;`, `&#x27;`, ...).
pub fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let semi = rest[..rest.len().min(12)].find(';');
        let decoded = semi.and_then(|e| {
            let ent = &rest[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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

//! The pieces of a page, tag by tag, borrowed from its text: no DOM.

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
    pub(super) fn text_until_end(&mut self, name: &str) -> String {
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
    pub(super) fn skip_element(&mut self, name: &str) {
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

pub(super) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

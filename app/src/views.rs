//! HTML rendering: handlebars templates (strict mode, HTML-escaped) and static assets, embedded in the binary.

use handlebars::Handlebars;
use rust_embed::RustEmbed;
use serde_json::{Map, Value};

#[derive(RustEmbed)]
#[folder = "templates/"]
struct Templates;

/// Bootstrap 5 (vendored from the npm package) and the shop's own assets.
#[derive(RustEmbed)]
#[folder = "static/"]
pub struct Static;

/// The template registry.
pub struct Views {
    hb: Handlebars<'static>,
}

impl Views {
    /// Registers every embedded template; `book_cards` is also a partial.
    pub fn new() -> anyhow::Result<Views> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        for name in Templates::iter() {
            let file = Templates::get(&name).expect("listed template exists");
            let text = std::str::from_utf8(&file.data)?;
            let stem = name.trim_end_matches(".hbs");
            hb.register_template_string(stem, text)?;
            if stem == "book_cards" {
                hb.register_partial(stem, text)?;
            }
        }
        Ok(Views { hb })
    }

    /// Renders `template` with `data` inside the layout; `common` holds the layout's fields.
    pub fn page(
        &self,
        template: &str,
        mut data: Value,
        common: Map<String, Value>,
    ) -> anyhow::Result<String> {
        if let Value::Object(obj) = &mut data {
            for (k, v) in &common {
                obj.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let body = self.hb.render(template, &data)?;
        self.layout(&body, common)
    }

    /// Renders one template on its own (no layout).
    pub fn fragment(&self, template: &str, data: &Value) -> anyhow::Result<String> {
        Ok(self.hb.render(template, data)?)
    }

    /// Wraps already rendered (and escaped) HTML in the layout.
    pub fn layout(&self, body: &str, mut common: Map<String, Value>) -> anyhow::Result<String> {
        // The layout is rendered around a marker that the body is spliced into, so a large body
        // is copied once. Everything before the marker is escaped, so it cannot contain `<!--`.
        const MARK: &str = "<!--bookstore:body-->";
        common.insert("body".into(), Value::String(MARK.into()));
        let shell = self.hb.render("layout", &Value::Object(common))?;
        let at = shell
            .find(MARK)
            .ok_or_else(|| anyhow::anyhow!("the layout lost its body"))?;
        let mut out = String::with_capacity(shell.len() + body.len());
        out.push_str(&shell[..at]);
        out.push_str(body);
        out.push_str(&shell[at + MARK.len()..]);
        Ok(out)
    }
}

/// Content type of a static asset by extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_compiles_and_escapes() {
        let v = Views::new().unwrap();
        let common =
            json!({"title": "<t>", "user": null, "csrf": "c", "instance": "i", "flash": null});
        let html = v
            .page(
                "error",
                json!({"status": 404, "message": "<script>alert(1)</script>"}),
                common.as_object().unwrap().clone(),
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;t&gt; · BookStore"));
    }
}

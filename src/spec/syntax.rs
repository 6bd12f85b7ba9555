//! YAML text to a checked [`Value`], and serde's messages turned into ones that say what to do.

use super::bounded::{Budget, Seed};
use super::{guard, locate, Problem};
use serde::de::DeserializeSeed;
use serde_yaml::Value;

/// Parses one layer's text into a [`Value`] (bounded; duplicate keys refused).
pub fn parse_syntax(text: &str) -> Result<Value, Problem> {
    let meaningful = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
    if !meaningful {
        return Err(Problem {
            path: String::new(),
            line: Some(1),
            column: Some(1),
            message: "the spec is empty; run `bookstore init` for a commented starting point"
                .into(),
            source: None,
        });
    }
    guard::check_text(text)?;
    let budget = Budget::default();
    let de = serde_yaml::Deserializer::from_str(text);
    let seed = Seed {
        budget: &budget,
        path: String::new(),
    };
    let err = match seed.deserialize(de) {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let path = budget.error_path.borrow().clone().unwrap_or_default();
    let (line, column) = match err.location() {
        Some(loc) => (Some(loc.line()), Some(loc.column())),
        None => (None, None),
    };
    let raw = err.to_string();
    if raw.contains("more than one document") {
        let line = guard::second_document(text);
        return Err(Problem {
            path: String::new(),
            line,
            column: line.map(|_| 1),
            message: "a second YAML document starts here (`---`); a spec is one document, so remove the `---` and what follows, or layer files with several `--spec` flags".into(),
            source: None,
        });
    }
    if raw.contains("repetition limit exceeded") || raw.contains("expands to more than") {
        return Err(Problem {
            path: String::new(),
            line,
            column,
            message: format!(
                "the spec holds, or its YAML aliases expand to, more than {} values or {} MiB of text (a spec has a few hundred values); YAML aliases (`*name`) repeat what their anchor (`&name`) holds, so write the values out instead of nesting aliases",
                super::bounded::MAX_NODES,
                super::bounded::MAX_BYTES / 1024 / 1024
            ),
            source: None,
        });
    }
    let (path, message) = explain(path, &raw);
    // The parser reports a duplicate at its mapping; point at the second occurrence instead.
    let (line, column) = if message.starts_with("duplicate key") {
        locate::second_occurrence(text, &path).map_or((line, column), |(l, c)| (Some(l), Some(c)))
    } else {
        (line, column)
    };
    Err(Problem {
        path,
        line,
        column,
        message,
        source: None,
    })
}

/// Key path of a typed deserialization error.
pub fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    if s == "?" {
        s.clear();
    }
    s
}

/// Turns serde_yaml's message into one that says what to do, without echoing secret values.
/// Returns the (possibly refined) key path and the message.
pub fn explain(path: String, raw: &str) -> (String, String) {
    // serde_yaml appends " at line L column C" (reported separately) and prefixes the path.
    let mut msg = match raw.find(" at line ") {
        Some(i) => &raw[..i],
        None => raw,
    };
    if let Some((head, tail)) = msg.split_once(": ") {
        if !head.contains(char::is_whitespace) && !head.contains('`') {
            msg = tail;
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (unknown, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = tail
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let best = expected
            .iter()
            .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
            .min();
        let mut out = format!("unknown key `{unknown}`");
        match best {
            Some((d, k)) if d <= (unknown.len() / 2).max(2) => {
                out.push_str(&format!("; did you mean `{k}`?"))
            }
            _ => out.push_str("; remove it"),
        }
        if !expected.is_empty() {
            out.push_str(&format!(" (valid keys here: {})", expected.join(", ")));
        }
        return (path, out);
    }
    if path == "secrets" || path.starts_with("secrets.") {
        let msg = "invalid value (not shown: it may be a secret); write a reference such as `ssm:/bookstore/database-password`";
        return (path, msg.into());
    }
    if let Some(rest) = msg.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        let full = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        return (
            full,
            format!("duplicate key `{key}`; keep only one of them"),
        );
    }
    if msg.starts_with("duplicate entry") {
        return (path, format!("{msg}; keep only one of them"));
    }
    if let Some((got, want)) = msg
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        let want = match want {
            "u8" | "u32" | "u64" | "usize" => "a whole number (no quotes)".to_string(),
            "u16" => "a number from 1 to 65535".to_string(),
            "a boolean" => "`true` or `false`".to_string(),
            w if w.starts_with("struct ") => {
                "a mapping of keys (`key: value` lines below it)".to_string()
            }
            w if w.starts_with("a map") => "a mapping (`KEY: value` lines below it)".to_string(),
            w => w.to_string(),
        };
        return (path, format!("expected {want}, found {got}"));
    }
    if let Some((got, want)) = msg
        .strip_prefix("invalid value: ")
        .and_then(|m| m.split_once(", expected "))
    {
        let want = match want {
            "u16" => "a number from 1 to 65535",
            "u32" => "a whole number from 0 to 4294967295",
            w => w,
        };
        return (
            path,
            format!("expected {want}, found {}", got.replace('`', "")),
        );
    }
    if msg.starts_with("did not find expected")
        || msg.starts_with("mapping values are not allowed")
        || msg.starts_with("found ")
        || msg.starts_with("could not find expected")
    {
        return (
            path,
            format!("YAML syntax error: {msg}; check brackets, quotes and indentation here"),
        );
    }
    (path, msg.to_string())
}

//! Hostile input: bounded reading of a spec file and cheap checks that run before the YAML
//! parser, so that no spec can make `bookstore` hang, exhaust memory or panic.

use super::Problem;
use std::io::Read;
use std::path::Path;

/// The largest spec accepted, in bytes. A full commented spec is about 12 KiB.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

/// Deepest nesting of mappings and sequences accepted; a spec is at most 5 levels deep.
pub const MAX_DEPTH: usize = 32;

fn whole_file(message: String) -> Problem {
    Problem {
        path: String::new(),
        line: None,
        column: None,
        message,
        source: None,
    }
}

fn at(line: usize, column: usize, message: String) -> Problem {
    Problem {
        path: String::new(),
        line: Some(line),
        column: Some(column),
        message,
        source: None,
    }
}

/// Reads a spec file: only a regular file (following symlinks), at most [`MAX_SPEC_BYTES`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, Problem> {
    let meta =
        std::fs::metadata(path).map_err(|e| whole_file(format!("cannot read the spec: {e}")))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, pipe or socket)"
        };
        return Err(whole_file(format!(
            "is {what}; pass a YAML file, e.g. `--spec bookstore.yaml` (`bookstore init` writes one)"
        )));
    }
    let too_big = || {
        whole_file(format!(
            "the spec is larger than {} MiB; a spec is a few KiB of YAML, so check that this is the right file",
            MAX_SPEC_BYTES / 1024 / 1024
        ))
    };
    if meta.len() > MAX_SPEC_BYTES {
        return Err(too_big());
    }
    let file =
        std::fs::File::open(path).map_err(|e| whole_file(format!("cannot read the spec: {e}")))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read the spec: {e}")))?;
    // The file may have grown since `metadata`.
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Refuses text the YAML parser handles badly or not at all: control characters, tabs in
/// indentation and nesting deeper than [`MAX_DEPTH`] (the parser is quadratic in it).
pub fn check_text(text: &str) -> Result<(), Problem> {
    if text.len() as u64 > MAX_SPEC_BYTES {
        return Err(whole_file(format!(
            "the spec is larger than {} MiB",
            MAX_SPEC_BYTES / 1024 / 1024
        )));
    }
    for (i, line) in text.lines().enumerate() {
        if let Some((col, ch)) = line
            .chars()
            .enumerate()
            .find(|(_, ch)| ch.is_control() && *ch != '\t' && *ch != '\r')
        {
            return Err(at(
                i + 1,
                col + 1,
                format!(
                    "a control character (U+{:04X}) is not allowed in YAML text; remove it",
                    ch as u32
                ),
            ));
        }
        for (j, ch) in line.char_indices() {
            match ch {
                '\t' => return Err(at(i + 1, j + 1, "a tab is used for indentation; YAML allows only spaces there, so replace the tab with spaces".into())),
                ' ' => continue,
                _ => break,
            }
        }
    }
    check_depth(text)
}

/// Tracks block nesting by indentation and flow nesting by brackets (outside quotes and
/// comments); refuses the first place deeper than [`MAX_DEPTH`].
fn check_depth(text: &str) -> Result<(), Problem> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if flow == 0 {
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // `- - - x` nests sequences on one line.
            let dashes = trimmed
                .split(' ')
                .take_while(|t| *t == "-" || t.is_empty())
                .filter(|t| *t == "-")
                .count();
            if indents.len() + dashes > MAX_DEPTH {
                return Err(too_deep(i + 1, indent + 1));
            }
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (j, ch) in line.char_indices() {
            match (quote, ch) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"') | (None, '\'') if flow > 0 || prev == ' ' || prev == ':' => {
                    quote = Some(ch)
                }
                (None, '#') if prev == ' ' || prev == '\t' => break,
                (None, '[') | (None, '{') => {
                    flow += 1;
                    if indents.len() + flow > MAX_DEPTH {
                        return Err(too_deep(i + 1, j + 1));
                    }
                }
                (None, ']') | (None, '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = ch;
        }
    }
    Ok(())
}

fn too_deep(line: usize, column: usize) -> Problem {
    at(
        line,
        column,
        format!(
            "the spec nests deeper than {MAX_DEPTH} levels here; a bookstore spec is at most 5 levels deep, so check the brackets and indentation"
        ),
    )
}

/// Where the second YAML document starts (its `---` line), for a message about several documents.
pub fn second_document(text: &str) -> Option<usize> {
    let mut content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            if content {
                return Some(i + 1);
            }
        } else if !t.trim_start().is_empty() && !t.trim_start().starts_with('#') {
            content = true;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_blocks_and_brackets() {
        assert!(check_depth("a:\n  b: [1, [2, {c: 3}]]\n").is_ok());
        let deep = format!("a: {}{}\n", "[".repeat(40), "]".repeat(40));
        assert_eq!(check_depth(&deep).unwrap_err().line, Some(1));
        let quoted = format!("a: \"{}\"\n", "[".repeat(40));
        assert!(check_depth(&quoted).is_ok());
        let blocks: String = (0..40)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(check_depth(&blocks).unwrap_err().line, Some(33));
    }

    #[test]
    fn second_document_is_found_after_content() {
        assert_eq!(second_document("---\na: 1\n---\nb: 2\n"), Some(3));
        assert_eq!(second_document("---\na: 1\n"), None);
    }
}

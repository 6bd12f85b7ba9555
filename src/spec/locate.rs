//! Finds where a key path sits in block-style YAML text, for messages about checks that run
//! after parsing (serde_yaml does not keep positions).

/// One step of a key path.
#[derive(Debug, PartialEq)]
pub enum Step<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

/// Splits `a.b[1].c` into steps.
pub fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Step::Key(key));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let (num, tail) = r.split_once(']').unwrap_or((r, ""));
            if let Ok(n) = num.parse() {
                out.push(Step::Index(n));
            }
            rest = tail;
        }
    }
    out
}

/// Returns the 1-based (line, column) of the deepest part of `path` found in `text`.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    let mut start = 0usize;
    let mut parent_indent: isize = -1;
    // The line of the sequence item found by the previous step: its first key sits after the
    // dash, two columns in.
    let mut item_line: Option<usize> = None;
    for step in steps(path) {
        let mut child_indent: Option<usize> = None;
        let mut seq_seen = 0usize;
        let mut hit = None;
        for (i, raw) in lines.iter().enumerate().skip(start) {
            let mut trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
                continue;
            }
            let mut indent = raw.len() - trimmed.len();
            if item_line == Some(i) {
                if let Some(body) = trimmed.strip_prefix("- ") {
                    trimmed = body.trim_start();
                    indent = raw.len() - trimmed.len();
                }
            }
            if (indent as isize) <= parent_indent {
                break;
            }
            let ci = *child_indent.get_or_insert(indent);
            if indent != ci {
                continue;
            }
            match step {
                Step::Key(k) => {
                    let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
                    let col = indent + (trimmed.len() - body.len());
                    if let Some(after) = body.strip_prefix(k) {
                        let after = after.trim_start_matches(' ');
                        if after.starts_with(':') {
                            hit = Some((i, col));
                            break;
                        }
                    }
                }
                Step::Index(n) => {
                    if trimmed.starts_with("- ") || trimmed == "-" {
                        if seq_seen == n {
                            // Point at the item's value, and let a following key step search
                            // the item's own mapping (which is indented past the dash).
                            hit = Some((i, indent + 2));
                            break;
                        }
                        seq_seen += 1;
                    }
                }
            }
        }
        match hit {
            Some((i, col)) => {
                found = Some((i + 1, col + 1));
                parent_indent = match step {
                    Step::Key(_) => col as isize,
                    Step::Index(_) => col as isize - 2,
                };
                // A sequence item's first key is on the dash line itself.
                item_line = matches!(step, Step::Index(_)).then_some(i);
                start = if matches!(step, Step::Index(_)) {
                    i
                } else {
                    i + 1
                };
            }
            None => break,
        }
    }
    found
}

/// Joins steps back into a key path.
pub fn join(steps: &[Step<'_>]) -> String {
    let mut s = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Like [`locate`], but points at the value when it is on the key's line (`key: value`).
pub fn locate_value(text: &str, path: &str) -> Option<(usize, usize)> {
    let (line, col) = locate(text, path)?;
    let Some(Step::Key(key)) = steps(path).pop() else {
        return Some((line, col));
    };
    let raw = text.lines().nth(line - 1)?;
    let after_key = raw.get(col - 1..)?.strip_prefix(key)?;
    let after_colon = after_key.trim_start_matches(' ').strip_prefix(':')?;
    let value = after_colon.trim_start_matches(' ');
    if value.is_empty() || value.starts_with('#') {
        return Some((line, col));
    }
    Some((line, raw.len() - value.len() + 1))
}

/// Where the second `key:` of a duplicated key path sits (same indentation, same parent block).
pub fn second_occurrence(text: &str, path: &str) -> Option<(usize, usize)> {
    let (first_line, col) = locate(text, path)?;
    let key = path.rsplit('.').next()?;
    let indent = col - 1;
    for (i, raw) in text.lines().enumerate().skip(first_line) {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let this = raw.len() - trimmed.len();
        if this < indent {
            break;
        }
        if this == indent
            && trimmed
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start_matches(' ').starts_with(':'))
        {
            return Some((i + 1, indent + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::locate;

    const DOC: &str = "\
# comment
project:
  name: x   # trailing
objective2:
  min_size: 3
  network:
    public_subnet_cidrs:
      - 10.0.0.0/24
      - 10.0.1.0/24
  max_size: 2
";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(DOC, "project.name"), Some((3, 3)));
        assert_eq!(locate(DOC, "objective2.max_size"), Some((10, 3)));
        assert_eq!(
            locate(DOC, "objective2.network.public_subnet_cidrs[1]"),
            Some((9, 9))
        );
    }

    #[test]
    fn finds_keys_inside_sequence_items() {
        let doc = "spec:\n  metrics:\n    - type: Resource\n      resource:\n        target:\n          averageUtilization: 60\n    - type: Pods\n      pods: {}\n";
        assert_eq!(locate(doc, "spec.metrics[0].type"), Some((3, 7)));
        assert_eq!(
            locate(doc, "spec.metrics[0].resource.target.averageUtilization"),
            Some((6, 11))
        );
        assert_eq!(locate(doc, "spec.metrics[1].pods"), Some((8, 7)));
    }

    #[test]
    fn falls_back_to_the_deepest_parent() {
        assert_eq!(locate(DOC, "objective2.target_cpu_percent"), Some((4, 1)));
        assert_eq!(locate(DOC, "objective1.instance_type"), None);
    }
}

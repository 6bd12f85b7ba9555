//! `gen … --explain`: per objective, every spec field and what the target does with it —
//! honoured (where), degraded (how) or ignored (why) — and `--strict`, which refuses a field the
//! user set that the rendered objective ignores. Where a field is honoured is read from the
//! blueprints; why it is not comes from [`table`].

pub mod table;

use crate::blueprints::{Objective, Source};
use crate::spec::Spec;
use anyhow::Result;
use std::collections::{BTreeMap, BTreeSet};
use table::Treatment;

/// What an objective does with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fidelity {
    /// Read by these blueprint files.
    Honoured(Vec<String>),
    /// Read by these files, but only partly in effect.
    Degraded(Vec<String>, &'static str),
    /// Not read, and why.
    Ignored(String),
    /// Not read and not explained (a test keeps this from happening).
    Unlisted,
}

/// Every field of the spec as a dotted path (a list or a free-form map is one field).
pub fn fields() -> Vec<String> {
    let value = serde_yaml::to_value(Spec::default()).expect("the spec serialises");
    let mut out = Vec::new();
    leaves(&value, "", &mut out);
    out
}

fn leaves(value: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(m) if !m.is_empty() && path != "app.env" => {
            for (k, v) in m {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                leaves(v, &child, out);
            }
        }
        _ => out.push(path.to_string()),
    }
}

/// `spec.*` and `derived.*` paths in a template's text.
pub fn template_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["spec.", "derived."] {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(tail.len());
            let path = tail[..end].trim_end_matches('.');
            let word_start =
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            // Prose such as "from the spec." is not a path.
            if word_start && path.len() > prefix.len() {
                out.insert(path.to_string());
            }
            rest = &tail[end.max(1)..];
        }
    }
    out
}

/// The blueprint files of `objective`: its folder and the partials it uses.
fn files_of(source: &Source, objective: Objective) -> Result<Vec<(String, String)>> {
    let all = source.list()?;
    let mut files = Vec::new();
    for rel in all
        .iter()
        .filter(|r| r.starts_with(&format!("{}/", objective.name())))
    {
        files.push((rel.clone(), source.read(rel)?));
    }
    let mut seen = BTreeSet::new();
    let mut i = 0;
    while i < files.len() {
        let text = files[i].1.clone();
        for part in text.split("{{>").skip(1) {
            let name: String = part
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            let rel = format!("partials/{name}.hbs");
            if all.contains(&rel) && seen.insert(rel.clone()) {
                files.push((rel.clone(), source.read(&rel)?));
            }
        }
        i += 1;
    }
    Ok(files)
}

/// For each spec field `objective`'s blueprints read (directly or through a `derived.*` value),
/// the files that read it.
pub fn reads(source: &Source, objective: Objective) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let fields = fields();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in files_of(source, objective)? {
        let file = rel.trim_end_matches(".hbs").to_string();
        for path in template_paths(&text) {
            let targets: Vec<String> = if let Some(p) = path.strip_prefix("spec.") {
                fields
                    .iter()
                    .filter(|f| {
                        *f == p
                            || f.starts_with(&format!("{p}."))
                            || p.starts_with(&format!("{f}."))
                    })
                    .cloned()
                    .collect()
            } else {
                table::DERIVED
                    .iter()
                    .filter(|(d, _)| path.starts_with(d))
                    .flat_map(|(_, fs)| fs.iter().map(|f| f.to_string()))
                    .collect()
            };
            for t in targets {
                out.entry(t).or_default().insert(file.clone());
            }
        }
    }
    Ok(out)
}

/// Every field with what `objective` does with it.
pub fn report(source: &Source, objective: Objective) -> Result<Vec<(String, Fidelity)>> {
    let reads = reads(source, objective)?;
    Ok(fields()
        .into_iter()
        .map(|f| {
            let files: Option<Vec<String>> = reads.get(&f).map(|s| s.iter().cloned().collect());
            let row = table::lookup(&f, objective.name());
            let fid = match (files, row) {
                (Some(files), Some(Treatment::Degraded(how))) => Fidelity::Degraded(files, how),
                (Some(files), _) => Fidelity::Honoured(files),
                (None, Some(Treatment::Ignored(why))) => Fidelity::Ignored(why.to_string()),
                (None, _) => match own_objective(&f) {
                    Some(o) if o != objective.name() => {
                        Fidelity::Ignored(format!("a setting of {o} only"))
                    }
                    None if objective == Objective::Loadtest => {
                        Fidelity::Ignored(table::LOADTEST_DEPLOYS_NOTHING.to_string())
                    }
                    _ => Fidelity::Unlisted,
                },
            };
            (f, fid)
        })
        .collect())
}

/// `objectiveN` for a field under `objectiveN.`, `loadtest` for one under `loadtest.`.
pub fn own_objective(field: &str) -> Option<&str> {
    let head = field.split('.').next()?;
    (head.starts_with("objective") || head == Objective::Loadtest.name()).then_some(head)
}

/// The report as text; `user_set` marks fields the user's spec sets.
pub fn format(
    objective: Objective,
    rows: &[(String, Fidelity)],
    user_set: &dyn Fn(&str) -> bool,
) -> String {
    let mut out = format!(
        "{}: what the target does with each spec field (* set by your spec)\n",
        objective.name()
    );
    for (field, fid) in rows {
        let mark = if user_set(field) { "*" } else { " " };
        let (status, detail) = match fid {
            Fidelity::Honoured(files) => ("honoured", files.join(", ")),
            Fidelity::Degraded(files, how) => ("degraded", format!("{how} ({})", files.join(", "))),
            Fidelity::Ignored(why) => ("ignored", why.clone()),
            Fidelity::Unlisted => (
                "unlisted",
                "not read and not explained: a bug in the fidelity table".into(),
            ),
        };
        out.push_str(&format!("{mark} {field:<44} {status:<9} {detail}\n"));
    }
    out
}

/// Fields the user set that `objective` ignores, other objectives' own sections excepted (and,
/// for the load-test Job, which deploys nothing, every section but `loadtest`).
pub fn strict_violations(
    objective: Objective,
    rows: &[(String, Fidelity)],
    user_set: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    rows.iter()
        .filter(|(f, fid)| {
            user_set(f)
                && matches!(fid, Fidelity::Ignored(_) | Fidelity::Unlisted)
                && own_objective(f).is_none_or(|o| o == objective.name())
                && (objective != Objective::Loadtest || own_objective(f).is_some())
        })
        .map(|(f, fid)| match fid {
            Fidelity::Ignored(why) => format!("`{f}` is ignored by {}: {why}", objective.name()),
            _ => format!("`{f}` is not read by {}", objective.name()),
        })
        .collect()
}

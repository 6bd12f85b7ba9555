//! `gen --explain` / `--strict` and the fidelity table: the table must agree with what the
//! blueprints (blueprints/**/*.hbs) actually read, in both directions.

use bookstore::blueprints::{Objective, Source};
use bookstore::explain::{self, table, Fidelity};
use std::collections::BTreeSet;
use std::path::Path;

fn hbs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hbs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hbs") {
            out.push(path);
        }
    }
}

/// `derived.*` values that do not depend on the spec.
const SPEC_FREE: &[&str] = &[
    "derived.objective3.addons",
    "derived.objective3.gateway_kinds",
    "derived.objective3.swarm_edge_subnet",
    "derived.objective3.supported_kubernetes",
    "derived.loadtest.stop_grace_seconds",
    "derived.loadtest.start_allowance_seconds",
];

#[test]
fn every_path_a_template_reads_is_a_spec_field_or_a_listed_derived_value() {
    let fields = explain::fields();
    let mut files = Vec::new();
    hbs_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("blueprints"),
        &mut files,
    );
    assert!(files.len() > 30, "found only {} templates", files.len());
    let mut unknown = BTreeSet::new();
    for f in &files {
        for path in explain::template_paths(&std::fs::read_to_string(f).unwrap()) {
            let known = match path.strip_prefix("spec.") {
                Some(p) => fields.iter().any(|k| {
                    k == p || k.starts_with(&format!("{p}.")) || p.starts_with(&format!("{k}."))
                }),
                None => {
                    path == "derived.objective3"
                        || table::DERIVED.iter().any(|(d, _)| path.starts_with(d))
                        || SPEC_FREE.iter().any(|d| path.starts_with(d))
                }
            };
            if !known {
                unknown.insert(format!("{}: {path}", f.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "templates read paths the fidelity table does not know:\n{unknown:#?}"
    );
}

#[test]
fn the_table_agrees_with_what_each_objective_reads() {
    let mut problems = Vec::new();
    for o in Objective::ALL {
        let reads = explain::reads(&Source::Embedded, o).unwrap();
        for (field, fid) in explain::report(&Source::Embedded, o).unwrap() {
            if fid == Fidelity::Unlisted {
                problems.push(format!(
                    "{o}: `{field}` is not read and the table does not say why"
                ));
            }
        }
        for (field, obj, t) in table::TABLE {
            if *obj != o.name() {
                continue;
            }
            assert!(
                explain::fields().iter().any(|f| f == field),
                "table row for unknown field `{field}`"
            );
            match (t, reads.contains_key(*field)) {
                (table::Treatment::Ignored(_), true) => problems.push(format!(
                    "{o}: `{field}` is listed as ignored but {:?} read it",
                    reads[*field]
                )),
                (table::Treatment::Degraded(_), false) => problems.push(format!(
                    "{o}: `{field}` is listed as degraded but nothing reads it"
                )),
                _ => {}
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

fn bookstore(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let run = super::support::exe::run_in(dir, args);
    (run.code, run.stdout, run.stderr)
}

#[test]
fn explain_marks_user_set_fields_and_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = bookstore(
        dir.path(),
        &[
            "gen",
            "objective3",
            "--explain",
            "--set",
            "objective2.target_requests_per_instance=100",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let line = |field: &str| {
        out.lines()
            .find(|l| l[2..].starts_with(&format!("{field} ")))
            .unwrap_or_else(|| panic!("no {field} in:\n{out}"))
            .to_string()
    };
    let l = line("objective2.target_requests_per_instance");
    assert!(
        l.starts_with("* ")
            && l.contains(" ignored ")
            && l.ends_with("a setting of objective2 only"),
        "{l}"
    );
    let l = line("app.max_upload_mb");
    assert!(
        l.starts_with("  ")
            && l.contains(" honoured ")
            && l.contains("objective3/k8s/routing.yaml"),
        "{l}"
    );
    let l = line("database.multi_az");
    assert!(
        l.contains(" ignored ") && l.contains("external database"),
        "{l}"
    );
}

#[test]
fn strict_refuses_a_set_field_the_objective_ignores_but_not_other_objectives_sections() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = bookstore(
        dir.path(),
        &[
            "gen",
            "objective3",
            "--strict",
            "--set",
            "domain.hosted_zone_id=Z0123456789ABCDEFGHIJ",
            "--set",
            "objective1.root_volume_gb=30",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--strict: 1 field(s) you set would be ignored"),
        "{err}"
    );
    assert!(
        err.contains(
            "`domain.hosted_zone_id` is ignored by objective3: objective 3 creates no DNS records"
        ),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
    let (code, _, err) = bookstore(
        dir.path(),
        &[
            "gen",
            "objective2",
            "--strict",
            "--set",
            "domain.hosted_zone_id=Z0123456789ABCDEFGHIJ",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bookstore(dir.path(), &["gen", "all", "--strict", "--out", "o"]);
    assert_eq!(
        code, 0,
        "the embedded default sets nothing of the user's: {err}"
    );
}

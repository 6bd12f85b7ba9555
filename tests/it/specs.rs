//! The specs the rendering tests use: the default and two that differ from it in every section.

use bookstore::blueprints::Source;
use bookstore::cli::{render_all, Target};
use bookstore::render::Rendered;
use bookstore::spec::{self, Spec, SpecSource};
use std::path::{Path, PathBuf};

/// (name, spec) for every test spec.
pub fn all() -> Vec<(&'static str, Spec)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs");
    vec![
        ("default", spec::embedded_default()),
        ("eu-staging", load(&dir.join("eu-staging.yaml"))),
        ("small-ap", load(&dir.join("small-ap.yaml"))),
    ]
}

fn load(path: &Path) -> Spec {
    spec::load_file(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Every objective rendered from `spec` with the embedded blueprints.
pub fn render(spec: &Spec) -> Vec<Rendered> {
    render_all(spec, &Source::Embedded, Target::All, Path::new("out")).expect("renders")
}

/// Renders `spec` into a fresh temp dir and returns it (kept alive by the caller).
pub fn render_to_dir(spec: &Spec) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    bookstore::output::write_all(&out, &render(spec)).unwrap();
    (dir, out)
}

/// The text of one rendered file.
pub fn file<'a>(rendered: &'a [Rendered], objective: &str, path: &str) -> &'a str {
    rendered
        .iter()
        .find(|r| r.objective.name() == objective)
        .and_then(|r| r.files.iter().find(|f| f.path == path))
        .map(|f| f.content.as_str())
        .unwrap_or_else(|| panic!("{objective}/{path} was not rendered"))
}

#[test]
fn test_specs_differ_from_the_default_in_every_section() {
    let default = serde_json::to_value(Spec::default()).unwrap();
    for (name, spec) in all().into_iter().skip(1) {
        let v = serde_json::to_value(&spec).unwrap();
        for (section, value) in default.as_object().unwrap() {
            assert_ne!(
                &v[section], value,
                "{name}: section `{section}` equals the default"
            );
        }
    }
    let _ = SpecSource::Embedded;
}

#[test]
fn test_specs_render_each_network_branch_of_objective2() {
    // (new VPC, VPC endpoints): the validators and tests/it/objective2.rs see each branch.
    let branches: std::collections::BTreeSet<(bool, bool)> = all()
        .iter()
        .map(|(_, s)| {
            let n = &s.objective2.network;
            (n.existing_vpc_id.is_none(), n.vpc_endpoints)
        })
        .collect();
    for branch in [(true, false), (true, true), (false, true)] {
        assert!(
            branches.contains(&branch),
            "no test spec renders (new VPC, endpoints) = {branch:?}: {branches:?}"
        );
    }
}

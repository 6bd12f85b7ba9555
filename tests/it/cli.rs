//! The real binary: init, gen, --check, exit codes, blueprints export, completions, atomicity.

use assert_cmd::Command;
use predicates::prelude::*;
use std::fs;
use std::path::Path;

fn bookstore(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("bookstore").expect("binary built");
    cmd.current_dir(dir).env("NO_COLOR", "1");
    cmd
}

#[test]
fn init_writes_a_commented_spec_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote bookstore.yaml"));
    let text = fs::read_to_string(dir.path().join("bookstore.yaml")).unwrap();
    assert_eq!(text, bookstore::spec::DEFAULT_SPEC_YAML);
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 40
    );
    bookstore(dir.path())
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "bookstore.yaml already exists; pass --force to overwrite it",
        ));
    fs::write(dir.path().join("bookstore.yaml"), "changed").unwrap();
    bookstore(dir.path())
        .args(["init", "--force"])
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(dir.path().join("bookstore.yaml")).unwrap(),
        bookstore::spec::DEFAULT_SPEC_YAML
    );
}

#[test]
fn gen_says_which_spec_it_used() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .args(["gen", "all"])
        .assert()
        .success()
        .stderr(predicate::str::contains("spec: <embedded default spec>"))
        .stdout(predicate::str::contains(
            "out/objective1/cloudformation.yaml",
        ))
        .stdout(predicate::str::contains("aws cloudformation deploy"));
    fs::write(
        dir.path().join("bookstore.yaml"),
        "project:\n  name: local\n",
    )
    .unwrap();
    bookstore(dir.path())
        .args(["gen", "objective1", "--out", "o"])
        .assert()
        .success()
        .stderr(predicate::str::contains("spec: bookstore.yaml"));
    assert!(
        fs::read_to_string(dir.path().join("o/objective1/cloudformation.yaml"))
            .unwrap()
            .contains("local")
    );
    fs::write(dir.path().join("other.yaml"), "project:\n  name: other\n").unwrap();
    bookstore(dir.path())
        .args(["gen", "objective1", "--spec", "other.yaml", "--out", "o"])
        .assert()
        .success()
        .stderr(predicate::str::contains("spec: other.yaml"));
}

#[test]
fn bad_spec_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("bad.yaml"),
        "objective1:\n  instanse_type: t3.small\n",
    )
    .unwrap();
    bookstore(dir.path())
        .args(["gen", "all", "--spec", "bad.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.yaml:2:3: `objective1.instanse_type`: unknown key `instanse_type`; did you mean `instance_type`?"));
    assert!(!dir.path().join("out").exists());
    bookstore(dir.path())
        .args(["gen", "all", "--spec", "missing.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "missing.yaml: cannot read the spec",
        ));
}

#[test]
fn usage_errors_exit_2_and_help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .args(["gen", "objective9"])
        .assert()
        .code(2);
    for sub in [
        &["--help"][..],
        &["gen", "--help"],
        &["init", "--help"],
        &["validate", "--help"],
        &["blueprints", "export", "--help"],
        &["completions", "--help"],
        &["loadtest", "--help"],
        &["rehearse", "--help"],
    ] {
        bookstore(dir.path())
            .args(sub)
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:"));
    }
    // loadtest's help is the library's own (one copy of the examples and exit statuses).
    #[cfg(feature = "loadtest")]
    bookstore(dir.path())
        .args(["loadtest", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "taskset -c 1 bookstore loadtest --url http://127.0.0.1:8080 --scenario browse --threads 1",
        ))
        .stdout(predicate::str::contains("Exit status: 0 every gate held"));
}

#[test]
fn check_detects_stale_output_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .args(["gen", "all"])
        .assert()
        .success();
    bookstore(dir.path())
        .args(["gen", "all", "--check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("out is up to date"));
    let conf = dir.path().join("out/objective1/nginx/bookstore.conf");
    let text = fs::read_to_string(&conf).unwrap();
    let rendered_line = text
        .lines()
        .find(|l| l.trim() == "server_tokens off;")
        .expect("the rendered config turns server_tokens off")
        .to_string();
    let edited_line = rendered_line.replace("off;", "on;");
    fs::write(
        &conf,
        text.replacen("server_tokens off;", "server_tokens on;", 1),
    )
    .unwrap();
    fs::write(dir.path().join("out/objective1/stray.txt"), "x").unwrap();
    bookstore(dir.path())
        .args(["gen", "all", "--check"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "--- a/objective1/nginx/bookstore.conf",
        ))
        // The hand edit is the removed line, what would be rendered the added one, each whole.
        .stdout(predicate::str::contains(format!("\n-{}\n", edited_line)))
        .stdout(predicate::str::contains(format!("\n+{}\n", rendered_line)))
        .stdout(predicate::str::contains(
            "no longer rendered: objective1/stray.txt",
        ))
        .stderr(predicate::str::contains("out is stale"));
    // --check writes nothing.
    assert!(fs::read_to_string(&conf)
        .unwrap()
        .contains("server_tokens on;"));
}

#[test]
fn gen_replaces_the_folder_and_keeps_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("out/objective1")).unwrap();
    fs::write(dir.path().join("out/objective1/old-file"), "x").unwrap();
    bookstore(dir.path())
        .args(["gen", "objective1"])
        .assert()
        .success();
    assert!(!dir.path().join("out/objective1/old-file").exists());
    let script = dir
        .path()
        .join("out/objective1/certbot/obtain-certificate.sh");
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("objective1")]);
}

#[test]
fn a_failing_render_leaves_out_untouched() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .args(["gen", "all"])
        .assert()
        .success();
    let before = snapshot_tree(&dir.path().join("out"));
    bookstore(dir.path())
        .args(["blueprints", "export", "bp"])
        .assert()
        .success();
    // A template that references a field the spec does not have fails in strict mode.
    let readme = dir.path().join("bp/objective3/README.md.hbs");
    fs::write(&readme, "{{spec.no_such_field}}\n").unwrap();
    bookstore(dir.path())
        .args(["gen", "all", "--blueprints", "bp"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "rendering failed; nothing was written",
        ))
        .stderr(predicate::str::contains("no_such_field"));
    assert_eq!(snapshot_tree(&dir.path().join("out")), before);
}

#[test]
fn exported_blueprints_render_the_same_as_embedded_ones() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .args(["blueprints", "export", "bp"])
        .assert()
        .success();
    bookstore(dir.path())
        .args(["blueprints", "export", "bp"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --force to overwrite"));
    bookstore(dir.path())
        .args(["gen", "all", "--out", "a"])
        .assert()
        .success();
    bookstore(dir.path())
        .args(["gen", "all", "--out", "b", "--blueprints", "bp"])
        .assert()
        .success();
    assert_eq!(
        snapshot_tree(&dir.path().join("a")),
        snapshot_tree(&dir.path().join("b"))
    );
    // A customised blueprint shows up in the output.
    let readme = dir.path().join("bp/objective2/README.md.hbs");
    let text = fs::read_to_string(&readme).unwrap();
    fs::write(
        &readme,
        format!("{text}\nCustomised for {{{{spec.domain.name}}}}.\n"),
    )
    .unwrap();
    bookstore(dir.path())
        .args(["gen", "objective2", "--out", "b", "--blueprints", "bp"])
        .assert()
        .success();
    assert!(
        fs::read_to_string(dir.path().join("b/objective2/README.md"))
            .unwrap()
            .contains("Customised for shop.example.com.")
    );
    bookstore(dir.path())
        .args(["gen", "all", "--blueprints", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "blueprint directory nope does not exist",
        ));
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        bookstore(dir.path())
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("gen"));
    }
}

#[test]
fn validate_reports_ok_for_the_default() {
    let dir = tempfile::tempdir().unwrap();
    bookstore(dir.path())
        .arg("validate")
        .assert()
        .success()
        .stdout(predicate::str::contains("the spec is valid"));
}

fn snapshot_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

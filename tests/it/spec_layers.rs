//! Layered specs through the real binary: `--spec` files merged in order, `--set` overrides,
//! problems placed in the layer they come from, and `validate --show-origin`.

use std::collections::BTreeMap;
use std::path::Path;

const BASE: &str = "\
project:
  name: shop
objective2:
  min_size: 3
  max_size: 8
  desired_capacity: 3
objective1:
  allowed_cidrs: [10.0.0.0/8, 192.168.0.0/16]
";

const PROD: &str = "\
objective2:
  max_size: 7
objective1:
  allowed_cidrs:
    - 203.0.113.0/24
";

fn bookstore(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let run = super::support::exe::run_in(dir, args);
    (run.code, run.stdout, run.stderr)
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// `validate --show-origin` as path -> (value, origin).
fn origins(stdout: &str) -> BTreeMap<String, (String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (left, origin) = l.split_once("  # ")?;
            let (path, value) = left.split_once(" = ")?;
            Some((
                path.to_string(),
                (value.trim().to_string(), origin.to_string()),
            ))
        })
        .collect()
}

#[test]
fn later_files_override_earlier_ones_maps_merged_lists_replaced_then_set() {
    let dir = dir_with(&[("base.yaml", BASE), ("prod.yaml", PROD)]);
    let (code, out, err) = bookstore(
        dir.path(),
        &[
            "validate",
            "--spec",
            "base.yaml",
            "--spec",
            "prod.yaml",
            "--set",
            "objective2.desired_capacity=4",
            "--show-origin",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let o = origins(&out);
    let get = |p: &str| {
        o.get(p)
            .cloned()
            .unwrap_or_else(|| panic!("no {p} in:\n{out}"))
    };
    assert_eq!(
        get("project.name"),
        ("\"shop\"".into(), "base.yaml:2:3".into())
    );
    assert_eq!(
        get("objective2.min_size"),
        ("3".into(), "base.yaml:4:3".into())
    );
    assert_eq!(
        get("objective2.max_size"),
        ("7".into(), "prod.yaml:2:3".into())
    );
    assert_eq!(
        get("objective2.desired_capacity"),
        ("4".into(), "--set objective2.desired_capacity=4".into())
    );
    assert_eq!(
        get("objective1.allowed_cidrs"),
        ("[\"203.0.113.0/24\"]".into(), "prod.yaml:4:3".into())
    );
    assert_eq!(
        get("objective2.target_cpu_percent"),
        ("50".into(), "default".into())
    );
    assert!(
        out.ends_with(
            "base.yaml + prod.yaml + --set objective2.desired_capacity=4: the spec is valid\n"
        ),
        "{out}"
    );
}

#[test]
fn problems_from_every_layer_are_reported_together_where_they_were_set() {
    let prod = "objective2:\n  max_size: 2\n  instanse_type: t3.large\n";
    let dir = dir_with(&[("base.yaml", BASE), ("prod.yaml", prod)]);
    let (code, _, err) = bookstore(
        dir.path(),
        &[
            "validate",
            "--spec",
            "base.yaml",
            "--spec",
            "prod.yaml",
            "--set",
            "objective2.max_sise=10",
            "--set",
            "domain.letsencrypt_email=nobody",
        ],
    );
    assert_eq!(code, 2, "{err}");
    let keys = "instance_type, ami_parameter, min_size, desired_capacity, max_size, target_cpu_percent, target_requests_per_instance, root_volume_gb, health_check_grace_seconds, instance_warmup_seconds, certificate_arn, nginx_image, aws_cli_image, network";
    assert_eq!(
        err,
        format!(
            "error: 4 problems in base.yaml + prod.yaml + --set objective2.max_sise=10 + --set domain.letsencrypt_email=nobody:\n  \
             prod.yaml:2:3: `objective2.max_size`: max_size (2) is below desired_capacity (3); need min_size <= desired_capacity <= max_size\n  \
             prod.yaml:3:3: `objective2.instanse_type`: unknown key `instanse_type`; did you mean `instance_type`? (valid keys here: {keys})\n  \
             --set objective2.max_sise=10: `objective2.max_sise`: unknown key `max_sise`; did you mean `max_size`? (valid keys here: {keys})\n  \
             --set domain.letsencrypt_email=nobody: `domain.letsencrypt_email`: `nobody` is not an e-mail address (name@example.com)\n"
        )
    );
}

#[test]
fn a_set_flag_with_a_wrong_type_or_no_value_is_named() {
    let dir = dir_with(&[]);
    let (code, _, err) = bookstore(
        dir.path(),
        &["validate", "--set", "objective2.min_size=abc"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("  --set objective2.min_size=abc: `objective2.min_size`: expected a whole number (no quotes), found string \"abc\"\n"),
        "{err}"
    );
    let (code, _, err) = bookstore(dir.path(), &["validate", "--set", "objective2.min_size"]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "--set objective2.min_size: expected PATH=VALUE, e.g. `--set objective2.max_size=10`"
        ),
        "{err}"
    );
}

#[test]
fn gen_renders_the_merged_spec() {
    let dir = dir_with(&[("base.yaml", BASE), ("prod.yaml", PROD)]);
    let (code, _, err) = bookstore(
        dir.path(),
        &[
            "gen",
            "objective2",
            "--spec",
            "base.yaml",
            "--spec",
            "prod.yaml",
            "--set",
            "objective2.max_size=9",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("spec: base.yaml + prod.yaml + --set objective2.max_size=9"),
        "{err}"
    );
    let cfn =
        std::fs::read_to_string(dir.path().join("out/objective2/cloudformation.yaml")).unwrap();
    assert!(cfn.contains("MaxSize: \"9\""), "MaxSize 9 not rendered");
}

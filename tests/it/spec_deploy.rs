//! Issue 14 items 11-12: `validate` and `gen` check the rendered user-data against EC2's 16 KiB
//! limit (with the number) and warn about reserved example names, which `preflight` refuses.

use bookstore::blueprints::Source;
use bookstore::cli::{render_all, Target};
use bookstore::spec::{parse, SpecSource};
use std::path::Path;

fn bookstore(dir: &Path, args: &[&str]) -> (i32, String) {
    let run = super::support::exe::run_in(dir, args);
    (run.code, run.stderr)
}

/// The size of objective `n`'s rendered user-data for `text`, through the library.
fn user_data_size(text: &str, n: usize) -> usize {
    let spec = parse(text, SpecSource::Embedded).expect("valid spec");
    let rendered = render_all(&spec, &Source::Embedded, Target::All, Path::new("out")).unwrap();
    rendered[n - 1]
        .files
        .iter()
        .find(|f| f.path == "user-data.yaml")
        .expect("user-data.yaml")
        .content
        .len()
}

const OWN: &str =
    "domain:\n  name: shop.bookstore-rs.dev\n  letsencrypt_email: ops@bookstore-rs.dev\n";

#[test]
fn user_data_over_16_kib_is_refused_with_the_number_and_gen_writes_nothing() {
    let mut text = String::from(OWN);
    text.push_str("app:\n  env:\n");
    // Incompressible values: objective 1's compose file is gzipped in the user-data.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..80 {
        let mut value = String::new();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push_str(&format!("{x:016x}"));
        }
        text.push_str(&format!("    FEATURE_FLAG_{i:02}: \"{value}\"\n"));
    }
    let size = user_data_size(&text, 1);
    assert!(
        size > 16384,
        "the test spec should exceed the limit, got {size}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.yaml"), &text).unwrap();
    let wanted = format!(
        "objective1 user-data size: user-data.yaml is {size} bytes of EC2's 16384-byte limit ({}%); EC2 refuses the launch",
        size * 100 / 16384
    );
    let (code, err) = bookstore(dir.path(), &["validate", "--spec", "big.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&wanted), "expected `{wanted}` in:\n{err}");
    let (code, err) = bookstore(dir.path(), &["gen", "all", "--spec", "big.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&wanted), "{err}");
    assert!(
        !dir.path().join("out").exists(),
        "gen wrote files for a refused spec"
    );
}

#[test]
fn the_default_spec_renders_with_warnings_for_the_example_names() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = bookstore(dir.path(), &["gen", "all"]);
    assert_eq!(code, 0, "{err}");
    // Objective 1's scripts are gzipped now: the default is well under the limit, no warning.
    let size = user_data_size(bookstore::spec::DEFAULT_SPEC_YAML, 1);
    assert!(size < 15360, "objective 1's user-data is {size} bytes");
    assert!(!err.contains("user-data size"), "{err}");
    assert!(
        err.contains("warning: `domain.letsencrypt_email`: `ops@example.com` is at a reserved example domain; Let's Encrypt refuses to register it"),
        "{err}"
    );
    assert!(
        err.contains("warning: `domain.name`: `shop.example.com` is a reserved example name"),
        "{err}"
    );
    assert!(
        err.contains("(fine for a demo; `bookstore preflight` fails on it)"),
        "{err}"
    );
    assert!(dir.path().join("out/objective1/user-data.yaml").exists());
}

#[test]
fn user_data_within_a_kib_of_the_limit_is_a_warning_with_the_number() {
    // One app.env value sized to land objective 1's user-data about 500 bytes under 16 KiB. The
    // value is incompressible (user-data gzips the larger files), so the size grows linearly.
    let pad = |n: usize| {
        let mut x: u32 = 12345;
        let value: String = (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x >> 16) as usize % 36])
            })
            .collect();
        format!("{OWN}app:\n  env:\n    PADDING: \"{value}\"\n")
    };
    let (base, probe) = (user_data_size(&pad(0), 1), user_data_size(&pad(1000), 1));
    let per_char = (probe - base) as f64 / 1000.0;
    let text = pad(((15_850 - base) as f64 / per_char) as usize);
    let size = user_data_size(&text, 1);
    assert!(
        (15_361..16_384).contains(&size),
        "the padded spec gives {size}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("near.yaml"), &text).unwrap();
    let (code, err) = bookstore(dir.path(), &["validate", "--spec", "near.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "warning: objective1 user-data size: user-data.yaml is {size} bytes of EC2's 16384-byte limit"
        )),
        "{err}"
    );
}

#[test]
fn own_names_give_no_example_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("own.yaml"), OWN).unwrap();
    let (code, err) = bookstore(dir.path(), &["validate", "--spec", "own.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("reserved example"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

//! Hostile specs through the real binary: each is refused with exit 2 and a message, within a
//! time limit and under a 512 MiB address-space limit, without a panic.

use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `bookstore validate --spec SPEC` under `ulimit -v` with a 20 s timeout.
fn validate(dir: &Path, spec: &str) -> (Option<i32>, String, Duration) {
    let bin = env!("CARGO_BIN_EXE_bookstore");
    let started = Instant::now();
    let out = assert_cmd::Command::new("sh")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args([
            "-c",
            "ulimit -v 524288 && exec \"$0\" validate --spec \"$1\"",
        ])
        .arg(bin)
        .arg(spec)
        .timeout(Duration::from_secs(20))
        .output()
        .expect("run bookstore");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, started.elapsed())
}

/// Writes `bytes` to `name` in a temporary directory and expects a refusal containing `wanted`.
fn refused(name: &str, bytes: &[u8], wanted: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    refused_path(dir.path(), name, wanted);
}

fn refused_path(dir: &Path, spec: &str, wanted: &str) {
    let (code, stderr, took) = validate(dir, spec);
    assert_eq!(
        code,
        Some(2),
        "exit code (None: killed by the timeout) for {spec}; stderr:\n{stderr}"
    );
    assert!(stderr.contains(wanted), "expected `{wanted}` in:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < Duration::from_secs(10), "{spec} took {took:?}");
}

#[test]
fn a_file_over_4_mib_is_refused() {
    let mut text = b"project:\n  name: shop\n# ".to_vec();
    text.resize(5 * 1024 * 1024, b'x');
    text.push(b'\n');
    refused(
        "huge.yaml",
        &text,
        "huge.yaml: the spec is larger than 4 MiB",
    );
}

#[test]
fn dev_zero_and_dev_urandom_are_refused_without_reading_them() {
    for dev in ["/dev/zero", "/dev/urandom"] {
        refused_path(
            Path::new("/"),
            dev,
            &format!("{dev}: is not a regular file (a device, pipe or socket); pass a YAML file"),
        );
    }
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("specs")).unwrap();
    refused_path(
        dir.path(),
        "specs",
        "specs: is a directory; pass a YAML file",
    );
}

#[test]
fn a_yaml_alias_bomb_is_refused_in_bounded_time_and_memory() {
    // Nine levels of nine aliases each: 9^9 (387 million) strings when expanded.
    let mut text = String::from(
        "a0: &a0 [\"xxxxxxxxxxxxxxxx\", \"xxxxxxxxxxxxxxxx\", \"xxxxxxxxxxxxxxxx\"]\n",
    );
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    text.push_str("objective1:\n  allowed_cidrs: *a9\n");
    refused(
        "bomb.yaml",
        text.as_bytes(),
        "YAML aliases (`*name`) repeat what their anchor (`&name`) holds",
    );
    // Aliases to big strings are bounded by bytes, not only by count.
    let big = "y".repeat(1024 * 1024);
    let mut text = format!("s: &s \"{big}\"\nl: [");
    text.push_str(&["*s"; 40].join(", "));
    text.push_str("]\n");
    refused("wide.yaml", text.as_bytes(), "16 MiB of text");
}

#[test]
fn deep_nesting_is_refused_quickly() {
    let text = format!(
        "app:\n  env: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused(
        "deep.yaml",
        text.as_bytes(),
        "deep.yaml:2:38: the spec nests deeper than 32 levels here",
    );
    let blocks: String = (0..200)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    refused(
        "blocks.yaml",
        blocks.as_bytes(),
        "blocks.yaml:33:33: the spec nests deeper than 32 levels here",
    );
}

#[test]
fn a_nul_byte_is_refused_with_its_position() {
    refused(
        "nul.yaml",
        b"project:\n  name: sh\0op\n",
        "nul.yaml:2:11: a control character (U+0000) is not allowed in YAML text; remove it",
    );
}

#[test]
fn a_tab_in_indentation_is_refused() {
    refused(
        "tab.yaml",
        b"project:\n\tname: shop\n",
        "tab.yaml:2:1: a tab is used for indentation",
    );
}

#[test]
fn a_duplicate_key_is_refused_at_its_second_occurrence() {
    refused(
        "dup.yaml",
        b"app:\n  port: 8080\n  port: 9090\n",
        "dup.yaml:3:3: `app.port`: duplicate key `port`; keep only one of them",
    );
}

#[test]
fn several_documents_are_refused_at_the_second() {
    refused(
        "multi.yaml",
        b"project:\n  name: a\n---\nproject:\n  name: b\n",
        "multi.yaml:3:1: a second YAML document starts here (`---`)",
    );
}

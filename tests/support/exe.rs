//! The `bookstore` binary under test, as a private copy for this test process: a concurrent build
//! into the shared target dir (one without the `serve` feature, say) cannot swap it mid-test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs [`bookstore`] with `args` in `dir` (`NO_COLOR=1`) and waits for it.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(bookstore())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run bookstore");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Where the copies live: the target's own temp dir, never `/tmp`.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("bookstore-exe")
}

/// This process's copy, made once: a hard link to the built binary (a rebuild replaces the file
/// rather than writing into it, so the link keeps this build) or a copy where linking fails.
/// Copies left by test processes that are gone are removed first.
pub fn bookstore() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_bookstore"));
        let dir = dir();
        std::fs::create_dir_all(&dir).expect("create the dir for the binary copies");
        remove_stale(&dir, "bookstore-");
        // Copies the earlier per-file helpers left in /tmp (135 MB each).
        for prefix in [
            "bookstore-rehearse-",
            "bookstore-certs-",
            "bookstore-proof-",
        ] {
            remove_stale(&std::env::temp_dir(), prefix);
        }
        let copy = dir.join(format!("bookstore-{}", std::process::id()));
        let _ = std::fs::remove_file(&copy);
        if std::fs::hard_link(built, &copy).is_err() {
            std::fs::copy(built, &copy).expect("copy the bookstore binary");
        }
        let serves = std::process::Command::new(&copy)
            .args(["serve", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            serves,
            "{} has no `serve` command: it was rebuilt without the default features; run \
             `cargo build -p bookstore` and the tests again",
            built.display()
        );
        copy
    })
    .clone()
}

/// Removes `<dir>/<prefix><pid>` files whose process no longer runs.
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[test]
fn the_copy_is_made_once_and_stale_copies_go() {
    let dir = dir();
    std::fs::create_dir_all(&dir).unwrap();
    // A PID above the kernel's maximum (4194304) never runs.
    let stale = dir.join("bookstore-4194305");
    std::fs::write(&stale, b"stale").unwrap();
    let live = dir.join(format!("bookstore-live-{}", std::process::id()));
    std::fs::write(&live, b"not a pid").unwrap();
    remove_stale(&dir, "bookstore-");
    assert!(!stale.exists(), "a copy of a dead process stays");
    assert!(live.exists(), "a name that is no PID was removed");
    std::fs::remove_file(&live).unwrap();
    let exe = bookstore();
    assert_eq!(exe, bookstore(), "a second call makes another copy");
    assert!(
        exe.starts_with(dir),
        "{} is outside the target's temp dir",
        exe.display()
    );
    // The copy runs (its size is not compared with the built binary: a rebuild during the
    // run, which the copy exists to survive, changes the built one).
    let version = std::process::Command::new(&exe)
        .arg("--version")
        .output()
        .expect("run the copy");
    assert!(
        version.status.success()
            && String::from_utf8_lossy(&version.stdout).starts_with("bookstore "),
        "{version:?}"
    );
}

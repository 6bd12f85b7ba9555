//! The `bookstore-app` binary's subcommands and configuration errors.

use std::process::Command;

use crate::common::*;

fn app(db_url: Option<&str>, uploads: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bookstore-app"));
    c.env_clear()
        .env("BOOKSTORE_UPLOADS_DIR", uploads)
        .env("RUST_LOG", "warn");
    if let Some(u) = db_url {
        c.env("BOOKSTORE_DATABASE_URL", u);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_seed_work_and_bad_configuration_exits_2() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.clone();
    let d = dir.path().to_path_buf();
    let (migrate, seed, seed_again, no_url, bad_listen, from_file) =
        tokio::task::spawn_blocking(move || {
            let migrate = app(Some(&url), &d).arg("migrate").output().unwrap();
            let seed = app(Some(&url), &d)
                .args(["seed", "--books", "7"])
                .output()
                .unwrap();
            let seed_again = app(Some(&url), &d)
                .args(["seed", "--books", "7"])
                .output()
                .unwrap();
            let no_url = app(None, &d).arg("migrate").output().unwrap();
            let bad_listen = app(Some(&url), &d)
                .env("BOOKSTORE_LISTEN", "nowhere")
                .output()
                .unwrap();
            let file = d.join("bookstore.env");
            std::fs::write(&file, format!("# settings\nBOOKSTORE_DATABASE_URL={url}\n")).unwrap();
            let from_file = app(None, &d)
                .args(["migrate", "--config"])
                .arg(&file)
                .output()
                .unwrap();
            (migrate, seed, seed_again, no_url, bad_listen, from_file)
        })
        .await
        .unwrap();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(migrate.status.success(), "migrate: {}", err(&migrate));
    assert!(seed.status.success(), "seed: {}", err(&seed));
    assert!(seed_again.status.success());
    let books: i64 = db.scalar("SELECT COUNT(*) FROM books").await;
    assert_eq!(books, 7, "seeding is idempotent");
    assert_eq!(no_url.status.code(), Some(2));
    assert!(err(&no_url).contains("BOOKSTORE_DATABASE_URL"));
    assert_eq!(bad_listen.status.code(), Some(2));
    assert!(err(&bad_listen).contains("BOOKSTORE_LISTEN"));
    assert!(from_file.status.success(), "--config: {}", err(&from_file));
}

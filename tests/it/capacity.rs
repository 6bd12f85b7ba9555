//! Issue 14 item 5: each objective 2 instance's database pool is sized from the spec and the RDS
//! class, and a spec whose instances at full scale would exhaust the database is refused.

use super::specs;
use assert_cmd::Command;
use bookstore::spec::capacity::{max_connections, pool_per_instance, RESERVED_CONNECTIONS};
use predicates::prelude::*;

#[test]
fn every_spec_renders_a_pool_that_fits_at_max_size() {
    for (name, spec) in specs::all() {
        let pool = pool_per_instance(&spec);
        let max = max_connections(&spec.database.instance_class).expect("a known class");
        assert!(
            spec.objective2.max_size * pool <= max - RESERVED_CONNECTIONS,
            "{name}: {} × {pool} > {max}",
            spec.objective2.max_size
        );
        let rendered = specs::render(&spec);
        let boot = specs::file(&rendered, "objective2", "scripts/boot.sh");
        assert!(
            boot.contains(&format!("?pool_min=0&pool_max={pool}\\n")),
            "{name}: the instance's URL does not carry pool_max={pool}"
        );
        // The shop accepts the rendered URL (a pool_max below the default pool_min would not be).
        let url = format!("mysql://shop@db.internal:3306/shop?pool_min=0&pool_max={pool}");
        let vars = [("BOOKSTORE_DATABASE_URL".to_string(), url)].into();
        if let Err(e) = bookstore_app::Config::from_vars(&vars) {
            panic!("{name}: {e}");
        }
    }
    // The default spec: db.t4g.micro (about 64) and up to 6 instances get 9 each, not 16.
    let spec = bookstore::spec::embedded_default();
    assert_eq!(pool_per_instance(&spec), 9);
}

#[test]
fn a_pool_that_would_exhaust_the_database_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.yaml"),
        "database:\n  instance_class: db.t4g.micro\nobjective2:\n  max_size: 20\n",
    )
    .unwrap();
    Command::cargo_bin("bookstore")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["validate", "--spec", "big.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "`objective2.max_size`: 20 instances × a pool of 4 connections = 80 connections, but `db.t4g.micro` allows about 64 \
             (max_connections = DBInstanceClassMemory/12582880, estimated at 75 % of 1 GiB) less 10 kept free = 54; \
             lower objective2.max_size to 13 or choose a larger database.instance_class",
        ));
    // A larger class takes the same group.
    std::fs::write(
        dir.path().join("ok.yaml"),
        "database:\n  instance_class: db.t4g.medium\nobjective2:\n  max_size: 20\n",
    )
    .unwrap();
    Command::cargo_bin("bookstore")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .args(["validate", "--spec", "ok.yaml"])
        .assert()
        .success();
}

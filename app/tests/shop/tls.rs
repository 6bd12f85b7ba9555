//! Issue 14 item 8: TLS to the database. A MariaDB of the test's own with a certificate from a CA
//! the test makes (openssl) and `require_secure_transport` (what objective 2's RDS parameter group
//! sets); the shop with `BOOKSTORE_DATABASE_TLS=verify` connects over TLS verifying that CA, and
//! refuses a server without TLS or with a certificate from another CA.

use std::path::Path;

use bookstore_app::config::DatabaseTls;
use bookstore_app::db::Db;
use bookstore_test_support::{openssl, MariaDb};
use mysql_async::prelude::*;

use crate::common::*;

/// A CA `NAME.pem`/`NAME.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// A MariaDB of the test's own with TLS only (`require_secure_transport`), its certificate for
/// 127.0.0.1 signed by the CA `ca` in `dir`.
fn tls_mariadb(dir: &Path) -> MariaDb {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    let file = |name: &str| dir.join(name).display().to_string();
    MariaDb::start_with(&[
        "--require-secure-transport=ON".into(),
        format!("--ssl-ca={}", file("ca.pem")),
        format!("--ssl-cert={}", file("server.pem")),
        format!("--ssl-key={}", file("server.key")),
    ])
}

/// A pool for `url` with the given TLS setting (no connection yet).
fn db(url: &str, tls: Option<DatabaseTls>, uploads: &Path) -> Db {
    let mut c = config(url, uploads, "tls");
    c.database_tls = tls;
    Db::new(&c).expect("pool")
}

/// The session's TLS version, or the error of connecting.
async fn tls_version(db: &Db) -> Result<String, String> {
    let mut c = db.conn().await.map_err(|e| e.to_string())?;
    let row: Option<(String, String)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.map(|r| r.1).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_verifies_the_database_ca_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    make_ca(dir.path(), "other-ca");
    let server = tls_mariadb(dir.path());
    let url = format!("{}/mysql", server.url());
    let uploads = tempfile::tempdir().unwrap();
    let verify = |ca: &str| {
        Some(DatabaseTls {
            ca_file: Some(dir.path().join(ca)),
        })
    };

    // TLS, the chain and the IP address verified against the test's CA.
    let ok = db(&url, verify("ca.pem"), uploads.path());
    let version = tls_version(&ok).await.expect("a TLS session");
    assert!(version.starts_with("TLSv1."), "{version:?}");
    ok.close().await;

    // The server refuses plaintext (require_secure_transport, as RDS's parameter group sets).
    let plain = db(&url, None, uploads.path());
    let err = tls_version(&plain).await.expect_err("plaintext accepted");
    // MySQL says "insecure transport are prohibited" (3159); MariaDB denies the login (1045).
    let e = err.to_lowercase();
    assert!(
        e.contains("insecure transport") || e.contains("access denied"),
        "{err}"
    );
    plain.close().await;

    // Another CA's certificate is refused.
    let wrong = db(&url, verify("other-ca.pem"), uploads.path());
    let err = tls_version(&wrong)
        .await
        .expect_err("an unknown CA accepted");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    wrong.close().await;

    // A server without TLS (the shared test server) is refused, never used in plaintext.
    let db_without_tls = TestDb::new().await;
    let no_tls = db(&db_without_tls.url, verify("ca.pem"), uploads.path());
    let err = tls_version(&no_tls).await.expect_err("plaintext used");
    assert!(
        err.to_lowercase().contains("tls") || err.to_lowercase().contains("ssl"),
        "{err}"
    );
    no_tls.close().await;
}

#[test]
fn tls_settings_are_checked_up_front() {
    let vars = |pairs: &[(&str, &str)]| {
        let mut m: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.insert(
            "BOOKSTORE_DATABASE_URL".into(),
            "mysql://u@db:3306/shop".into(),
        );
        m
    };
    let err = bookstore_app::Config::from_vars(&vars(&[("BOOKSTORE_DATABASE_TLS", "yes")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("BOOKSTORE_DATABASE_TLS=\"yes\""), "{err}");
    let err = bookstore_app::Config::from_vars(&vars(&[(
        "BOOKSTORE_DATABASE_CA_FILE",
        "/nonexistent/ca.pem",
    )]))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("BOOKSTORE_DATABASE_TLS is not `verify`"),
        "{err}"
    );
    let err = bookstore_app::Config::from_vars(&vars(&[
        ("BOOKSTORE_DATABASE_TLS", "verify"),
        ("BOOKSTORE_DATABASE_CA_FILE", "/nonexistent/ca.pem"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot read /nonexistent/ca.pem"), "{err}");
    let c =
        bookstore_app::Config::from_vars(&vars(&[("BOOKSTORE_DATABASE_TLS", "verify")])).unwrap();
    assert_eq!(c.database_tls, Some(DatabaseTls { ca_file: None }));
}

//! The objective 3 rehearsal runs the rendered database side: MariaDB serves TLS only
//! (`require_secure_transport`, a certificate from a CA made with openssl) and that CA fills the
//! ConfigMap the pods verify it with; the rendered Job creates the shop's least-privilege user as
//! the administrator, and the pods log in as that user. Every one of those differences from RDS
//! is printed.
#![cfg(all(feature = "serve", feature = "loadtest"))]

use crate::rehearse::{options, tools_present};
use bookstore::rehearse::{objective3, Scaling};
use bookstore::spec::Spec;

#[test]
fn the_rehearsal_runs_the_user_job_and_the_pods_verify_the_databases_tls() {
    if !tools_present() {
        return;
    }
    let mut o = options(1);
    o.scaling = Scaling::Manual;
    let r = objective3::Rehearsal::start(&o).expect("start objective 3");
    let spec = Spec::default();
    let shop_user = format!("{}_shop", spec.database.user);
    // Ready means /readyz pinged the database: over TLS, since the server takes nothing else.
    assert!(r.pods().iter().all(|p| p.ready), "{:?}", r.pods());
    assert_eq!(
        r.sql("SELECT @@require_secure_transport").unwrap().trim(),
        "1"
    );
    let ssl = r.sql("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'").unwrap();
    let accepted: u64 = ssl.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(accepted > 0, "{ssl}");
    // The Job's user: rows and migrations on the shop's database only, nothing global.
    let grants = r
        .sql(&format!("SHOW GRANTS FOR '{shop_user}'@'%'"))
        .expect("the Job created the shop's user");
    assert!(
        grants.contains(&format!("ON `{}`.*", spec.database.name))
            && grants.contains("SELECT, INSERT, UPDATE, DELETE")
            && !grants.contains("ALL PRIVILEGES")
            && !grants.contains("GRANT OPTION"),
        "{grants}"
    );
    // The administrator is the Job's alone; the pods' URL names the shop's user.
    let url = &r.workload().config["BOOKSTORE_DATABASE_URL"];
    assert!(url.starts_with(&format!("mysql://{shop_user}@")), "{url}");
    let text = r.differences().render_from("a real cluster");
    for needle in [
        "database TLS",
        "require-secure-transport=ON",
        "ConfigMap bookstore-database-ca (/etc/ssl/database/ca.pem)",
        "the rehearsal's own CA, made with openssl",
        "Job bookstore-app-user-",
        "create-app-user --user bookstore_shop",
        "Secret bookstore-database-master key password",
    ] {
        assert!(
            text.contains(needle),
            "differences lack {needle:?}:\n{text}"
        );
    }
}

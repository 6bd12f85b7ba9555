//! Issue 14, rehearsed: a database outage of minutes under load replaces no instance, because
//! the rendered group replaces on liveness (`HealthCheckType: EC2` + bookstore-liveness on
//! `/healthz`), not on the database-dependent `/readyz`. The control runs the same outage with
//! the former `HealthCheckType: ELB` and must see replacements, so the test can tell the two apart.

use super::rehearse::{options, tools_present};
use bookstore::rehearse::autoscale::TimeScale;
use bookstore::rehearse::objective2::Rehearsal;
use reqwest::blocking::Client;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Platform seconds per real second: the target group's 15 s checks every second.
const SCALE: f64 = 15.0;

/// A copy of the committed out/objective2 with the group's health check type set to `kind`.
fn rendered_with(kind: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("out/objective2"),
        dir.path(),
    );
    let cfn = dir.path().join("cloudformation.yaml");
    let text = std::fs::read_to_string(&cfn).unwrap();
    assert!(text.contains("HealthCheckType: EC2\n"), "the rendered type");
    std::fs::write(
        &cfn,
        text.replace(
            "HealthCheckType: EC2\n",
            &format!("HealthCheckType: {kind}\n"),
        ),
    )
    .unwrap();
    dir
}

/// Stops the database for `outage` platform seconds while shoppers browse, starts it again and
/// waits until every instance is ready. Returns (instances replaced, requests answered 200
/// after the recovery).
fn outage_under_load(kind: &str, outage: f64) -> (u32, u64) {
    let dir = rendered_with(kind);
    let mut o = options(2);
    o.rendered = Some(dir.path().to_path_buf());
    o.time_scale = TimeScale::new(SCALE).unwrap();
    o.health_interval = Duration::from_secs_f64(15.0 / SCALE);
    let r = Arc::new(Rehearsal::start(&o).expect("start objective 2"));
    // Past HealthCheckGracePeriod (120 s), so that the ELB control may replace.
    std::thread::sleep(Duration::from_secs_f64(130.0 / SCALE));

    let stop = Arc::new(AtomicBool::new(false));
    let ok_after = Arc::new(AtomicU64::new(0));
    let recovered = Arc::new(AtomicBool::new(false));
    let shoppers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, ok_after, recovered, base) = (
                stop.clone(),
                ok_after.clone(),
                recovered.clone(),
                r.https_url(),
            );
            std::thread::spawn(move || {
                let http = Client::builder()
                    .tls_danger_accept_invalid_certs(true)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(resp) = http.get(format!("{base}/")).send() {
                        if resp.status().as_u16() == 200 && recovered.load(Ordering::SeqCst) {
                            ok_after.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(1));
    r.stop_database();
    std::thread::sleep(Duration::from_secs_f64(outage / SCALE));
    r.start_database().expect("restart MariaDB");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = Client::new();
    loop {
        let targets = r.targets();
        let all = !targets.is_empty()
            && targets.iter().all(|(_, _, url)| {
                ready
                    .get(format!("{url}/readyz"))
                    .send()
                    .is_ok_and(|x| x.status().as_u16() == 200)
            });
        if all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kind}: the instances did not recover"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    recovered.store(true, Ordering::SeqCst);
    // A few more checks: a late replacement would show here.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    for s in shoppers {
        s.join().unwrap();
    }
    let replaced = r.replaced();
    eprintln!(
        "{kind}: {replaced} replaced, {} answers 200 after the recovery",
        ok_after.load(Ordering::SeqCst)
    );
    (replaced, ok_after.load(Ordering::SeqCst))
}

#[test]
fn a_database_outage_of_minutes_under_load_replaces_no_instance() {
    if !tools_present() {
        return;
    }
    // Two platform minutes (8 s real): more than the target group's 45 s to unhealthy.
    let (replaced, served) = outage_under_load("EC2", 120.0);
    assert_eq!(
        replaced, 0,
        "liveness must not replace on a database outage"
    );
    assert!(served > 0, "the shop recovered by itself");
    // Control: the former ELB health check on /readyz replaces the fleet for the same outage.
    let (replaced, _) = outage_under_load("ELB", 120.0);
    assert!(
        replaced > 0,
        "the ELB control replaced nothing: the rehearsal would not see the difference"
    );
}

/// The shop's database password rotated under load, as the objective 2 README's "rotate" does it
/// (the new password reaches each instance's file, then the database): a few seconds of failed
/// new logins at most, no instance replaced. Every session is killed at both steps, so that
/// every request needs a new login (on AWS open connections would keep working).
#[test]
fn a_password_rotation_under_load_costs_seconds_and_replaces_no_instance() {
    if !tools_present() {
        return;
    }
    let mut o = options(2);
    o.time_scale = TimeScale::new(SCALE).unwrap();
    o.health_interval = Duration::from_secs_f64(15.0 / SCALE);
    let r = Arc::new(Rehearsal::start(&o).expect("start objective 2"));
    let failed: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let served = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let shoppers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, failed, served, base) =
                (stop.clone(), failed.clone(), served.clone(), r.https_url());
            std::thread::spawn(move || {
                let http = Client::builder()
                    .tls_danger_accept_invalid_certs(true)
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                while !stop.load(Ordering::SeqCst) {
                    match http.get(format!("{base}/")).send() {
                        Ok(x) if x.status().as_u16() == 200 => {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => failed.lock().unwrap().push(Instant::now()),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    let kill_sessions = |r: &Rehearsal| {
        let ids = r
            .sql("SELECT GROUP_CONCAT(id) FROM information_schema.processlist WHERE user = 'bookstore_shop'")
            .unwrap();
        let ids: Vec<&str> = ids
            .trim()
            .split(',')
            .filter(|s| !s.is_empty() && *s != "NULL")
            .collect();
        for id in &ids {
            let _ = r.sql(&format!("KILL CONNECTION {id}"));
        }
        ids.len()
    };
    std::thread::sleep(Duration::from_secs(2));
    let before = served.load(Ordering::SeqCst);
    assert!(before > 0, "no load before the rotation");

    // 1. The new password reaches the instance's file (bookstore-fetch-secrets, in place).
    let file = r
        .workdir()
        .join("host/etc/bookstore/secrets/database_password");
    assert!(file.exists(), "{}", file.display());
    std::fs::write(&file, "rotated-password-0123456789").unwrap();
    assert!(kill_sessions(&r) > 0, "the shop had no session to end");
    std::thread::sleep(Duration::from_millis(500));
    // 2. ... then the database (bookstore-boot's create-app-user).
    r.sql("ALTER USER 'bookstore_shop'@'%' IDENTIFIED BY 'rotated-password-0123456789'")
        .unwrap();
    let changed = Instant::now();
    kill_sessions(&r);
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    for s in shoppers {
        s.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    let late: Vec<Duration> = failed
        .iter()
        .filter(|t| **t > changed)
        .map(|t| t.duration_since(changed))
        .collect();
    eprintln!(
        "{} failed requests in all, {} after the database changed (last {:?}); {} served",
        failed.len(),
        late.len(),
        late.last(),
        served.load(Ordering::SeqCst)
    );
    assert!(
        late.iter().all(|d| *d < Duration::from_secs(3)),
        "failures went on after the database had the new password: {late:?}"
    );
    assert!(
        served.load(Ordering::SeqCst) > before,
        "the shop serves after the rotation"
    );
    assert_eq!(r.replaced(), 0, "an instance was replaced");
    assert!(r.all_running(), "an instance restarted");
}

//! Prometheus text metrics: requests and latency by route, in-flight requests, pool use.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Series>>,
    /// Requests being served now.
    pub in_flight: AtomicI64,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &'static str, route: &'static str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((method, route, status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut lat = self.latency.lock().expect("metrics lock");
        let s = lat.entry(route).or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus exposition text.
    pub fn render(&self, instance: &str, pool_in_use: i64, pool_max: usize, ready: bool) -> String {
        let mut o = String::new();
        let inst = instance.replace(['\\', '"', '\n'], "_");
        let _ = writeln!(
            o,
            "# HELP bookstore_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(o, "# TYPE bookstore_requests_total counter");
        for ((m, r, s), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                o,
                "bookstore_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP bookstore_request_duration_seconds Request latency by route."
        );
        let _ = writeln!(o, "# TYPE bookstore_request_duration_seconds histogram");
        for (r, s) in self.latency.lock().expect("metrics lock").iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "bookstore_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                o,
                "bookstore_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                o,
                "bookstore_request_duration_seconds_sum{{route=\"{r}\"}} {}",
                s.sum
            );
            let _ = writeln!(
                o,
                "bookstore_request_duration_seconds_count{{route=\"{r}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            o,
            "# HELP bookstore_requests_in_flight Requests being served."
        );
        let _ = writeln!(o, "# TYPE bookstore_requests_in_flight gauge");
        let _ = writeln!(
            o,
            "bookstore_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            o,
            "# HELP bookstore_db_pool_connections_in_use Database connections checked out."
        );
        let _ = writeln!(o, "# TYPE bookstore_db_pool_connections_in_use gauge");
        let _ = writeln!(o, "bookstore_db_pool_connections_in_use {pool_in_use}");
        let _ = writeln!(
            o,
            "# HELP bookstore_db_pool_connections_max Largest pool size."
        );
        let _ = writeln!(o, "# TYPE bookstore_db_pool_connections_max gauge");
        let _ = writeln!(o, "bookstore_db_pool_connections_max {pool_max}");
        let _ = writeln!(
            o,
            "# HELP bookstore_ready 1 when the database is reachable and migrated."
        );
        let _ = writeln!(o, "# TYPE bookstore_ready gauge");
        let _ = writeln!(
            o,
            "bookstore_ready{{instance=\"{inst}\"}} {}",
            u8::from(ready)
        );
        o
    }
}

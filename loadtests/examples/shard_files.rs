//! Writes N realistic one-hour shard result files for `scripts/bench-merge`, and measures
//! what writing a result costs a shard.
//!
//!   cargo run --release -p bookstore-loadtests --example shard_files -- DIR [SHARDS] [RPS]
//!
//! Each shard: one hour in 10 s windows (360), RPS requests per second (default 1000) spread
//! over instances that scale 2 → 8 → 3 during the hour (pods come and go, as under an HPA),
//! latencies drawn from a long-tailed distribution (most 5-40 ms, a slow tail to seconds) into
//! the same HDR histograms a run keeps, 0.5% errors with a few reasons. The windows are the
//! same wall-clock windows in every shard, as with `--start-at`.

use std::time::{Duration, Instant};

use bookstore_loadtests::aggregate::{Aggregate, InstanceAgg, Latency, Served, WindowAgg};
use bookstore_loadtests::report::EndedBy;
use bookstore_loadtests::result_file::{ClockCheck, ShardResult};
use bookstore_loadtests::shard::{for_shard, Shard};
use bookstore_loadtests::LoadtestArgs;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn instances_at(minute: u64) -> usize {
    match minute {
        0..=9 => 2,
        10..=14 => 4,
        15..=39 => 8,
        40..=49 => 5,
        _ => 3,
    }
}

fn shard_aggregate(index: usize, start_ms: i64, rps: u64) -> Aggregate {
    let window_ms = 10_000i64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1));
    let mut agg = Aggregate {
        window_ms: window_ms as u64,
        started_ms: start_ms,
        ended_ms: start_ms + 3_600_000 + 1_200,
        first_send_ms: Some(start_ms + 40),
        connections: 0,
        ..Aggregate::default()
    };
    for w in 0..360i64 {
        let t0 = start_ms + w * window_ms;
        let pods = instances_at((w * 10 / 60) as u64);
        let mut win = WindowAgg {
            index: t0 / window_ms,
            users: 100,
            ..WindowAgg::default()
        };
        // Latencies as value/count pairs: one histogram record per 25 requests' worth.
        let requests = rps * 10;
        let chunks = requests / 25;
        for _ in 0..chunks {
            let u = rng.unit();
            let ms = if u < 0.95 {
                5.0 + 35.0 * rng.unit()
            } else if u < 0.995 {
                40.0 + 400.0 * rng.unit()
            } else {
                440.0 + 4000.0 * rng.unit()
            };
            win.latency.0.saturating_record_n((ms * 1000.0) as u64, 25);
        }
        win.requests = chunks * 25;
        win.errors = win.requests / 200;
        for p in 0..pods {
            let name = format!("bookstore-7d9c8b6f5-{:05x}", p * 7919 + 4242);
            let n = win.requests / pods as u64;
            let e = win.errors / pods as u64;
            let s = Served {
                ok: n - e,
                errors: e,
                first_ms: t0 + 3,
                last_ms: t0 + window_ms - 2,
                first_ok_ms: Some(t0 + 3),
                last_ok_ms: Some(t0 + window_ms - 2),
            };
            let inst = agg
                .instances
                .entry(name.clone())
                .or_insert_with(|| InstanceAgg {
                    served: Served::default(),
                    latency: Latency::default(),
                });
            inst.served.merge(&s);
            win.served.insert(name, s);
        }
        agg.connections += 100 * 2;
        agg.windows.push(win);
    }
    for inst in agg.instances.values_mut() {
        for _ in 0..2000 {
            inst.latency
                .record((5_000.0 + 60_000.0 * rng.unit()) as u64);
        }
    }
    let errors: u64 = agg.windows.iter().map(|w| w.errors).sum();
    agg.reasons
        .insert("GET /books/{id}: HTTP 502 Bad Gateway".into(), errors / 2);
    agg.reasons
        .insert("GET /: timed out after 10 s".into(), errors - errors / 2);
    agg
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(argv.next().expect("usage: shard_files DIR [SHARDS] [RPS]"));
    let shards: usize = argv.next().map_or(3, |s| s.parse().expect("SHARDS"));
    let rps: u64 = argv.next().map_or(1000, |s| s.parse().expect("RPS"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let start = "2026-12-02T16:00:00Z"
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    let mut full = LoadtestArgs::for_url("https://shop.example.com");
    full.stages = Some(bookstore_loadtests::shape::parse_stages("300:60s,300:3540s").unwrap());
    full.scenario = bookstore_loadtests::ScenarioKind::Browse;
    full.start_at = Some(start);
    full.max_p95 = Some(500.0);
    full.expect_scale_out = true;
    for index in 0..shards {
        full.shard = Some(Shard {
            index,
            count: shards,
        });
        let mine = for_shard(&full).unwrap();
        let agg = shard_aggregate(index, start.timestamp_millis(), rps);
        let requests = agg.requests();
        let clock = Some(ClockCheck {
            min_ms: -120,
            max_ms: 880,
        });
        // What a shard does at its end with --result and --result-stdout.
        let t = Instant::now();
        let r = ShardResult::new(&full, &mine, clock, EndedBy::Plan, agg, None);
        let json = r.to_json();
        let path = dir.join(format!("shard-{index}.json"));
        std::fs::write(&path, &json).expect("write");
        let json_time = t.elapsed();
        let t = Instant::now();
        let marked = r.to_marked();
        let marked_time = t.elapsed();
        println!(
            "shard {index}/{shards}: {requests} requests, {} windows; --result {} KiB in {} ms; --result-stdout {} KiB ({} lines) in {} ms",
            r.aggregate.windows.len(),
            json.len() / 1024,
            ms(json_time),
            marked.len() / 1024,
            marked.lines().count(),
            ms(marked_time)
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

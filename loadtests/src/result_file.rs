//! A shard's result file (`--result FILE`, `--result-stdout`): versioned JSON with the run id,
//! the shard, the run's configuration, the clock check and the raw mergeable data — the
//! [`Aggregate`] (per window and per instance: counts, errors, HDR histograms, first/last
//! seen) and the platform view when one was watched. `loadtest merge` adds shards up.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::args::LoadtestArgs;
use crate::platform::{PlatformView, Watch};
use crate::report::EndedBy;
use crate::shard::Shard;

pub use crate::clock::ClockCheck;

/// `format` of every result file.
pub const FORMAT: &str = "bookstore-loadtest-result";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;
/// The line before a result printed on stdout.
pub const BEGIN: &str = "-----BEGIN BOOKSTORE LOADTEST RESULT-----";
/// The line after it.
pub const END: &str = "-----END BOOKSTORE LOADTEST RESULT-----";

/// What must be the same in every shard of one run: the whole run's flags (not a shard's
/// share). Field names are the flags' (underscores for dashes), so a mismatch names its flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// `--url`.
    pub url: String,
    /// `--scenario`.
    pub scenario: String,
    /// The whole plan as `--stages` (also when given as `--users/--ramp/--duration`).
    pub stages: String,
    /// `--think`.
    pub think: Option<String>,
    /// `--throttle`, the whole run's rate.
    pub throttle: Option<usize>,
    /// `--window`, ms.
    pub window_ms: u64,
    /// `--serving-share`.
    pub serving_share: f64,
    /// `--max-p95`.
    pub max_p95: Option<f64>,
    /// `--max-error-rate`.
    pub max_error_rate: Option<f64>,
    /// `--gate-whole-run`.
    pub gate_whole_run: bool,
    /// `--expect-instances`.
    pub expect_instances: Option<usize>,
    /// `--expect-scale-out`.
    pub expect_scale_out: bool,
    /// `--expect-scale-in`.
    pub expect_scale_in: Option<usize>,
    /// `--only-path`.
    pub only_path: Option<String>,
    /// `--timeout`, ms.
    pub timeout_ms: u64,
    /// `--recycle`, ms.
    pub recycle_ms: u64,
    /// `--watch-asg` / `--watch-hpa` / `--watch-rehearsal`, as `asg:NAME`, `hpa:NS/NAME`,
    /// `rehearsal:URL`.
    pub watch: Option<String>,
    /// N of `--shard I/N` (1 without `--shard`).
    pub shards: usize,
    /// `--start-at`.
    pub start_at: Option<DateTime<Utc>>,
}

impl RunConfig {
    /// The configuration of the whole run these flags are a shard of.
    pub fn of(args: &LoadtestArgs) -> RunConfig {
        RunConfig {
            url: args.url.clone(),
            scenario: args.scenario.name().to_string(),
            stages: args.plan().to_string(),
            think: args.think.map(|t| t.to_string()),
            throttle: args.throttle,
            window_ms: args.window.as_millis() as u64,
            serving_share: args.serving_share,
            max_p95: args.max_p95,
            max_error_rate: args.max_error_rate,
            gate_whole_run: args.gate_whole_run,
            expect_instances: args.expect_instances,
            expect_scale_out: args.expect_scale_out,
            expect_scale_in: args.expect_scale_in,
            only_path: args.only_path.clone(),
            timeout_ms: args.timeout.as_millis() as u64,
            recycle_ms: args.recycle.as_millis() as u64,
            watch: crate::execute::watch_of(args).map(|w| match w {
                Watch::Asg(n) => format!("asg:{n}"),
                Watch::Hpa(ns, n) => format!("hpa:{ns}/{n}"),
                Watch::Rehearsal(u) => format!("rehearsal:{u}"),
            }),
            shards: args.shard.map_or(1, |s| s.count),
            start_at: args.start_at,
        }
    }

    /// The flags that rebuild the whole run's report (what `merge` judges with).
    pub fn args(&self) -> Result<LoadtestArgs, String> {
        use clap::ValueEnum as _;
        let mut a = LoadtestArgs::for_url(&self.url);
        a.scenario = crate::ScenarioKind::from_str(&self.scenario, true)
            .map_err(|e| format!("scenario `{}`: {e}", self.scenario))?;
        a.stages = Some(crate::shape::parse_stages(&self.stages)?);
        a.think = self
            .think
            .as_deref()
            .map(crate::shape::parse_think)
            .transpose()?;
        a.throttle = self.throttle;
        a.window = Duration::from_millis(self.window_ms);
        a.serving_share = self.serving_share;
        a.max_p95 = self.max_p95;
        a.max_error_rate = self.max_error_rate;
        a.gate_whole_run = self.gate_whole_run;
        a.expect_instances = self.expect_instances;
        a.expect_scale_out = self.expect_scale_out;
        a.expect_scale_in = self.expect_scale_in;
        a.only_path = self.only_path.clone();
        a.timeout = Duration::from_millis(self.timeout_ms);
        a.recycle = Duration::from_millis(self.recycle_ms);
        a.start_at = self.start_at;
        match self.watch.as_deref().and_then(|w| w.split_once(':')) {
            Some(("asg", n)) => a.watch_asg = Some(n.to_string()),
            Some(("hpa", h)) => {
                let (ns, n) = h.split_once('/').unwrap_or(("default", h));
                a.watch_hpa = Some((ns.to_string(), n.to_string()));
            }
            Some(("rehearsal", u)) => a.watch_rehearsal = Some(u.to_string()),
            Some((other, _)) => return Err(format!("unknown watch `{other}`")),
            None => {}
        }
        Ok(a)
    }

    /// The run id: FNV-1a (64 bits) of this configuration, start time included, so that
    /// every shard of one run computes the same id on its own.
    pub fn run_id(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// The first field (as its flag) in which `other` differs, with both values.
    pub fn difference(&self, other: &RunConfig) -> Option<(String, String, String)> {
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (
            serde_json::to_value(self).ok()?,
            serde_json::to_value(other).ok()?,
        ) else {
            return None;
        };
        a.iter().find_map(|(k, v)| {
            let w = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            (v != &w).then(|| {
                let flag = match k.as_str() {
                    "stages" => "--stages (or --users/--ramp/--duration)".to_string(),
                    "shards" => "N of --shard I/N".to_string(),
                    "window_ms" | "timeout_ms" | "recycle_ms" => {
                        format!("--{}", k.trim_end_matches("_ms"))
                    }
                    "watch" => "--watch-*".to_string(),
                    _ => format!("--{}", k.replace('_', "-")),
                };
                (flag, v.to_string(), w.to_string())
            })
        })
    }
}

/// One shard's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardResult {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Same for every shard of one run ([`RunConfig::run_id`]).
    pub run_id: String,
    /// This shard.
    pub shard: Shard,
    /// The whole run's configuration.
    pub config: RunConfig,
    /// This shard's own share, as `--stages`.
    pub shard_stages: String,
    /// This shard's share of `--throttle`.
    pub shard_throttle: Option<usize>,
    /// The target's clock against this host's, when its `Date` header was read.
    pub clock: Option<ClockCheck>,
    /// How the shard's run ended.
    pub ended_by: EndedBy,
    /// Everything it gathered, mergeable.
    pub aggregate: Aggregate,
    /// What it read from the platform, when watched.
    pub platform: Option<PlatformView>,
}

impl ShardResult {
    /// The result of a run made with `full` (the whole run's flags) as shard `mine`.
    pub fn new(
        full: &LoadtestArgs,
        mine: &LoadtestArgs,
        clock: Option<ClockCheck>,
        ended_by: EndedBy,
        aggregate: Aggregate,
        platform: Option<PlatformView>,
    ) -> ShardResult {
        let config = RunConfig::of(full);
        ShardResult {
            format: FORMAT.into(),
            version: VERSION,
            run_id: config.run_id(),
            shard: full.shard.unwrap_or(Shard { index: 0, count: 1 }),
            config,
            shard_stages: mine.plan().to_string(),
            shard_throttle: mine.throttle,
            clock,
            ended_by,
            aggregate,
            platform,
        }
    }

    /// The JSON file.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a result serialises")
    }

    /// The stdout form: gzipped JSON in base64, 76 columns, between [`BEGIN`] and [`END`].
    pub fn to_marked(&self) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&self.to_json()).expect("gzip in memory");
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gzip"));
        let mut out = String::with_capacity(b64.len() + b64.len() / 76 + 100);
        out.push_str(BEGIN);
        out.push('\n');
        for chunk in b64.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        out
    }

    /// Parses a result file's JSON, checking its format and version.
    pub fn from_json(bytes: &[u8]) -> Result<ShardResult, String> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(format!("not a {FORMAT} file (no \"format\": \"{FORMAT}\")"));
        }
        if head.version != Some(VERSION) {
            return Err(format!(
                "result version {:?}, this bookstore reads version {VERSION}: merge with the same bookstore version the shards ran",
                head.version
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("a damaged result: {e}"))
    }
}

/// Every result printed between the markers in `text` (a saved `kubectl logs`, say), in
/// order. A block that does not decode is an error naming its line.
pub fn extract_marked(text: &str) -> Result<Vec<ShardResult>, String> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        // kubectl logs --timestamps and log collectors may put a prefix before the line.
        let line = line.trim_end();
        if line.ends_with(BEGIN) {
            block = Some((n + 1, String::new()));
        } else if line.ends_with(END) {
            let Some((start, b64)) = block.take() else {
                return Err(format!("line {}: {END} without a {BEGIN} before it", n + 1));
            };
            out.push(decode_block(&b64).map_err(|e| format!("the result from line {start}: {e}"))?);
        } else if let Some((_, b64)) = &mut block {
            b64.push_str(line.rsplit(' ').next().unwrap_or(line));
        }
    }
    if let Some((start, _)) = block {
        return Err(format!(
            "line {start}: {BEGIN} without its {END} (the output was cut short: did the pod finish?)"
        ));
    }
    Ok(out)
}

fn decode_block(b64: &str) -> Result<ShardResult, String> {
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("not base64: {e}"))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| format!("not gzip: {e}"))?;
    ShardResult::from_json(&json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShardResult {
        let mut full = LoadtestArgs::for_url("http://127.0.0.1:8080");
        full.users = 7;
        full.shard = Some(Shard { index: 1, count: 3 });
        let mine = crate::shard::for_shard(&full).unwrap();
        let rec = crate::Recorder::new(Duration::from_secs(1));
        for i in 0..50 {
            rec.record(
                i % 3,
                Duration::from_millis(3 + i as u64),
                Some("a"),
                i % 10 != 0,
            );
        }
        ShardResult::new(&full, &mine, None, EndedBy::Plan, rec.aggregate(), None)
    }

    #[test]
    fn a_result_round_trips_as_json_and_between_markers() {
        let r = sample();
        assert_eq!(r.shard_stages, "2:10s,2:60s");
        assert_eq!(r.config.stages, "7:10s,7:60s");
        let back = ShardResult::from_json(&r.to_json()).unwrap();
        assert_eq!(back.aggregate, r.aggregate);
        assert_eq!(back.run_id, r.run_id);
        let marked = r.to_marked();
        assert!(marked
            .lines()
            .all(|l| l.len() <= 76 || l.starts_with("-----")));
        let log = format!("some log line\n{marked}another line\n");
        let got = extract_marked(&log).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].aggregate, r.aggregate);
        // `kubectl logs -l ... --prefix` puts the pod before every line.
        let prefixed: String = log
            .lines()
            .map(|l| format!("[pod/lt-1-x7k2p/loadtest] {l}\n"))
            .collect();
        assert_eq!(extract_marked(&prefixed).unwrap()[0].aggregate, r.aggregate);
        // Cut short, damaged, or not ours: each says so.
        let cut: String = marked.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(extract_marked(&cut).unwrap_err().contains("cut short"));
        let damaged = marked.replacen('A', "!", 1);
        assert!(extract_marked(&damaged).is_err());
        assert!(ShardResult::from_json(b"{\"a\":1}")
            .unwrap_err()
            .contains("not a bookstore-loadtest-result"));
    }

    #[test]
    fn the_run_id_follows_the_configuration_and_a_difference_names_the_flag() {
        let mut a = LoadtestArgs::for_url("http://127.0.0.1:8080");
        a.shard = Some(Shard { index: 0, count: 2 });
        let mut b = a.clone();
        b.shard = Some(Shard { index: 1, count: 2 });
        b.threads = Some(1);
        assert_eq!(RunConfig::of(&a).run_id(), RunConfig::of(&b).run_id());
        b.users = 11;
        let (flag, x, y) = RunConfig::of(&a).difference(&RunConfig::of(&b)).unwrap();
        assert_eq!(
            (flag.as_str(), x.as_str(), y.as_str()),
            (
                "--stages (or --users/--ramp/--duration)",
                "\"10:10s,10:60s\"",
                "\"11:10s,11:60s\""
            )
        );
        assert_ne!(RunConfig::of(&a).run_id(), RunConfig::of(&b).run_id());
        let c = RunConfig::of(&a);
        let back = c.args().unwrap();
        assert_eq!(
            RunConfig::of(&LoadtestArgs {
                shard: a.shard,
                ..back
            }),
            c
        );
    }
}

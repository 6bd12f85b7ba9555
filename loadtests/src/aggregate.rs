//! What a run gathered, aggregated as it went: one entry per wall-clock window and one per
//! instance, each with counts, first/last-seen times and an HDR latency histogram.
//!
//! Memory does not grow with the number of requests: a window costs one histogram (13 KiB:
//! microseconds up to an hour at two significant digits, 32-bit counts) plus a few counters per
//! instance, an instance one histogram. A one-hour run in 10 s windows keeps 360 windows,
//! about 5 MiB. Error reasons are capped at [`MAX_REASONS`] distinct texts.
//!
//! Everything here merges: windows start at whole multiples of the window length since the
//! Unix epoch, so the aggregates of several generators (shards) add up window by window
//! ([`Aggregate::merge`]); histograms serialise in HdrHistogram's V2 format (DEFLATE, base64).

use std::collections::BTreeMap;

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest latency tracked exactly, µs (an hour); longer ones count as an hour.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
/// Distinct error reasons kept; more are counted in [`Aggregate::other_reasons`].
pub const MAX_REASONS: usize = 1000;

/// A latency histogram in microseconds (1 µs to an hour, two significant digits).
#[derive(Debug, Clone, PartialEq)]
pub struct Latency(pub Histogram<u32>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Counts one latency.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds another histogram's counts.
    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so this cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in milliseconds, one decimal; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let v = self.0.median_equivalent(self.0.value_at_quantile(q));
        (v as f64 / 100.0).round() / 10.0
    }

    /// Approximate heap bytes of the histogram's counts.
    pub fn heap_bytes(&self) -> usize {
        self.0.distinct_values() * std::mem::size_of::<u32>()
    }
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(|e| serde::ser::Error::custom(format!("{e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(buf))
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        let h: Histogram<u32> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| serde::de::Error::custom(format!("{e:?}")))?;
        let mut out = Latency::default();
        out.0
            .add(&h)
            .map_err(|e| serde::de::Error::custom(format!("{e:?}")))?;
        Ok(out)
    }
}

/// What one instance answered within one window (or over the run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// Successful responses (the step got what it expected).
    pub ok: u64,
    /// Responses that were errors (HTTP errors, unexpected pages).
    pub errors: u64,
    /// First and last response, ms since the Unix epoch.
    pub first_ms: i64,
    /// Last response.
    pub last_ms: i64,
    /// First successful response, ms since the Unix epoch.
    pub first_ok_ms: Option<i64>,
    /// Last successful response.
    pub last_ok_ms: Option<i64>,
}

impl Served {
    /// Counts one response at `at_ms`.
    pub fn count(&mut self, at_ms: i64, ok: bool) {
        if self.ok + self.errors == 0 {
            self.first_ms = at_ms;
            self.last_ms = at_ms;
        }
        self.first_ms = self.first_ms.min(at_ms);
        self.last_ms = self.last_ms.max(at_ms);
        if ok {
            self.ok += 1;
            self.first_ok_ms = Some(self.first_ok_ms.map_or(at_ms, |f| f.min(at_ms)));
            self.last_ok_ms = Some(self.last_ok_ms.map_or(at_ms, |l| l.max(at_ms)));
        } else {
            self.errors += 1;
        }
    }

    /// Moves an ok response to the errors (a page that turned out not to be the one expected).
    pub fn ok_to_error(&mut self) {
        if self.ok > 0 {
            self.ok -= 1;
            self.errors += 1;
            if self.ok == 0 {
                self.first_ok_ms = None;
                self.last_ok_ms = None;
            }
        }
    }

    /// Adds another count of the same instance.
    pub fn merge(&mut self, o: &Served) {
        if o.ok + o.errors == 0 {
            return;
        }
        if self.ok + self.errors == 0 {
            *self = o.clone();
            return;
        }
        self.ok += o.ok;
        self.errors += o.errors;
        self.first_ms = self.first_ms.min(o.first_ms);
        self.last_ms = self.last_ms.max(o.last_ms);
        self.first_ok_ms = min_opt(self.first_ok_ms, o.first_ok_ms);
        self.last_ok_ms = max_opt(self.last_ok_ms, o.last_ok_ms);
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// One window: `[index * window_ms, (index + 1) * window_ms)` ms since the Unix epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowAgg {
    /// The window's number since the epoch.
    pub index: i64,
    /// Requests completed in it (responses and failed requests).
    pub requests: u64,
    /// Of which errors.
    pub errors: u64,
    /// Responses without `X-Bookstore-Instance`, and requests that got no response.
    pub no_instance: u64,
    /// Users that completed a request in it (distinct per generator; shards add up).
    pub users: u64,
    /// Latency of every request.
    pub latency: Latency,
    /// With `--throttle`: latency corrected for coordinated omission (HdrHistogram's
    /// expected-interval correction at the per-user pace the rate implies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected: Option<Latency>,
    /// What each instance answered in the window.
    pub served: BTreeMap<String, Served>,
}

impl WindowAgg {
    /// Adds another generator's count of the same window.
    pub fn merge(&mut self, o: &WindowAgg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.no_instance += o.no_instance;
        self.users += o.users;
        self.latency.add(&o.latency);
        match (&mut self.corrected, &o.corrected) {
            (Some(a), Some(b)) => a.add(b),
            (None, Some(b)) => self.corrected = Some(b.clone()),
            _ => {}
        }
        for (name, s) in &o.served {
            self.served.entry(name.clone()).or_default().merge(s);
        }
    }

    /// Successful responses that carried an instance.
    pub fn ok_with_instance(&self) -> u64 {
        self.served.values().map(|s| s.ok).sum()
    }
}

/// One instance over the whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceAgg {
    /// Its counts and first/last-seen times.
    #[serde(flatten)]
    pub served: Served,
    /// Latency of the responses it gave.
    pub latency: Latency,
}

/// Everything a run (or several merged runs) gathered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Window length, ms.
    pub window_ms: u64,
    /// When the first generator started, ms since the epoch.
    pub started_ms: i64,
    /// When the last one stopped.
    pub ended_ms: i64,
    /// When the first request was sent, ms since the epoch: where the load plan's clock
    /// starts (goose begins the plan a little after the generator's clock).
    #[serde(default)]
    pub first_send_ms: Option<i64>,
    /// Windows in order; windows without requests may be absent.
    pub windows: Vec<WindowAgg>,
    /// Every instance that answered, by its `X-Bookstore-Instance`.
    pub instances: BTreeMap<String, InstanceAgg>,
    /// Why steps failed, with counts.
    pub reasons: BTreeMap<String, u64>,
    /// Failures whose reason was not kept (past [`MAX_REASONS`] distinct reasons).
    pub other_reasons: u64,
    /// TCP connections opened.
    pub connections: u64,
    /// Idempotent requests sent again after the server closed an idle keep-alive connection.
    #[serde(default)]
    pub retries: u64,
    /// Buys refused with HTTP 409 because other shoppers had taken the copies since the book
    /// page showed them: the shop's right answer, not an error.
    #[serde(default)]
    pub sold_out: u64,
}

impl Aggregate {
    /// Adds another generator's aggregate (same window length) to this one.
    pub fn merge(&mut self, o: &Aggregate) -> Result<(), String> {
        if self.window_ms == 0 {
            self.window_ms = o.window_ms;
            self.started_ms = o.started_ms;
            self.ended_ms = o.ended_ms;
        }
        if o.window_ms != self.window_ms {
            return Err(format!(
                "windows of {} ms and {} ms do not merge; run every shard with the same --window",
                self.window_ms, o.window_ms
            ));
        }
        self.started_ms = self.started_ms.min(o.started_ms);
        self.ended_ms = self.ended_ms.max(o.ended_ms);
        self.first_send_ms = min_opt(self.first_send_ms, o.first_send_ms);
        let mut by_index: BTreeMap<i64, WindowAgg> = std::mem::take(&mut self.windows)
            .into_iter()
            .map(|w| (w.index, w))
            .collect();
        for w in &o.windows {
            by_index
                .entry(w.index)
                .or_insert_with(|| WindowAgg {
                    index: w.index,
                    ..WindowAgg::default()
                })
                .merge(w);
        }
        self.windows = by_index.into_values().collect();
        for (name, i) in &o.instances {
            let mine = self.instances.entry(name.clone()).or_default();
            mine.served.merge(&i.served);
            mine.latency.add(&i.latency);
        }
        for (r, n) in &o.reasons {
            add_reason(&mut self.reasons, &mut self.other_reasons, r, *n);
        }
        self.other_reasons += o.other_reasons;
        self.connections += o.connections;
        self.retries += o.retries;
        self.sold_out += o.sold_out;
        Ok(())
    }

    /// All requests.
    pub fn requests(&self) -> u64 {
        self.windows.iter().map(|w| w.requests).sum()
    }

    /// Approximate heap bytes held (histograms dominate).
    pub fn heap_bytes(&self) -> usize {
        self.windows
            .iter()
            .map(|w| {
                w.latency.heap_bytes()
                    + w.corrected.as_ref().map_or(0, Latency::heap_bytes)
                    + w.served.len() * (std::mem::size_of::<Served>() + 32)
            })
            .sum::<usize>()
            + self
                .instances
                .values()
                .map(|i| i.latency.heap_bytes() + 64)
                .sum::<usize>()
            + self.reasons.keys().map(|k| k.len() + 32).sum::<usize>()
    }
}

/// Counts `n` failures for `reason`, keeping at most [`MAX_REASONS`] distinct reasons.
pub fn add_reason(reasons: &mut BTreeMap<String, u64>, other: &mut u64, reason: &str, n: u64) {
    if let Some(c) = reasons.get_mut(reason) {
        *c += n;
    } else if reasons.len() < MAX_REASONS {
        reasons.insert(reason.to_string(), n);
    } else {
        *other += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(index: i64, name: &str, ok: u64, at: i64) -> WindowAgg {
        let mut w = WindowAgg {
            index,
            ..WindowAgg::default()
        };
        for i in 0..ok {
            w.requests += 1;
            w.latency.record(1000 + i);
            w.served
                .entry(name.into())
                .or_default()
                .count(at + i as i64, true);
        }
        w
    }

    #[test]
    fn latency_quantiles_and_serialisation_round_trip() {
        let mut l = Latency::default();
        for ms in 1..=100u64 {
            l.record(ms * 1000);
        }
        assert_eq!(l.count(), 100);
        assert_eq!(l.quantile_ms(0.5), 50.0);
        assert!(
            (l.quantile_ms(0.95) - 95.0).abs() <= 1.0,
            "{}",
            l.quantile_ms(0.95)
        );
        l.record(0);
        l.record(u64::MAX);
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.starts_with('"') && json.len() < 2000, "{json}");
        let back: Latency = serde_json::from_str(&json).unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn aggregates_of_two_generators_merge_window_by_window() {
        let mut a = Aggregate {
            window_ms: 1000,
            started_ms: 5_000,
            ended_ms: 8_000,
            windows: vec![window(5, "x", 3, 5_000), window(6, "x", 2, 6_000)],
            ..Aggregate::default()
        };
        a.instances.insert(
            "x".into(),
            InstanceAgg {
                served: Served {
                    ok: 5,
                    first_ms: 5_000,
                    last_ms: 6_001,
                    first_ok_ms: Some(5_000),
                    last_ok_ms: Some(6_001),
                    ..Served::default()
                },
                latency: Latency::default(),
            },
        );
        add_reason(&mut a.reasons, &mut a.other_reasons, "GET /: boom", 2);
        let b = Aggregate {
            window_ms: 1000,
            started_ms: 4_500,
            ended_ms: 9_000,
            windows: vec![window(6, "y", 4, 6_100), window(8, "y", 1, 8_000)],
            reasons: [("GET /: boom".to_string(), 1)].into(),
            connections: 3,
            retries: 0,
            sold_out: 2,
            ..Aggregate::default()
        };
        let text = serde_json::to_string(&b).unwrap();
        let b: Aggregate = serde_json::from_str(&text).unwrap();
        a.merge(&b).unwrap();
        assert_eq!((a.started_ms, a.ended_ms), (4_500, 9_000));
        let idx: Vec<i64> = a.windows.iter().map(|w| w.index).collect();
        assert_eq!(idx, vec![5, 6, 8]);
        assert_eq!(a.windows[1].requests, 6);
        assert_eq!(a.windows[1].served.len(), 2);
        assert_eq!(a.windows[1].latency.count(), 6);
        assert_eq!(a.reasons["GET /: boom"], 3);
        assert_eq!(a.requests(), 10);
        assert_eq!(a.sold_out, 2);
        let other = Aggregate {
            window_ms: 500,
            ..Aggregate::default()
        };
        assert!(a.merge(&other).unwrap_err().contains("same --window"));
    }

    #[test]
    fn reasons_are_capped() {
        let mut r = BTreeMap::new();
        let mut other = 0;
        for i in 0..MAX_REASONS + 10 {
            add_reason(&mut r, &mut other, &format!("reason {i}"), 1);
        }
        add_reason(&mut r, &mut other, "reason 0", 1);
        assert_eq!(r.len(), MAX_REASONS);
        assert_eq!(other, 10);
        assert_eq!(r["reason 0"], 2);
    }
}

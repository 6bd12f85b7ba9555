//! The shared record of a run: every response is counted into its wall-clock window and its
//! instance as it arrives (see [`crate::aggregate`] for what is kept and the memory bound), so
//! nothing is lost when a run is cut short and nothing grows with the number of requests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aggregate::{add_reason, Aggregate, InstanceAgg, Latency, Served, WindowAgg};
use crate::shape::Stages;

/// Where a counted response went, so that [`Recorder::fail`] can turn it into an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    window: i64,
    instance: Option<u16>,
}

/// How latency is corrected for coordinated omission: with a request rate set, each user is
/// expected to send a request every `users / rate` seconds.
#[derive(Debug, Clone)]
pub struct Correction {
    /// The run's stages (users over time).
    pub stages: Stages,
    /// Requests per second, all users together.
    pub rate: f64,
}

#[derive(Default)]
struct WindowState {
    requests: u64,
    errors: u64,
    no_instance: u64,
    users: u64,
    latency: Latency,
    corrected: Option<Latency>,
    /// By instance index.
    served: Vec<Served>,
}

#[derive(Default)]
struct Inner {
    first_index: Option<i64>,
    windows: Vec<WindowState>,
    names: Vec<String>,
    index: HashMap<String, u16>,
    instances: Vec<InstanceAgg>,
    /// The last window each user completed a request in.
    user_window: Vec<i64>,
    reasons: BTreeMap<String, u64>,
    other_reasons: u64,
}

impl Inner {
    fn window(&mut self, index: i64) -> &mut WindowState {
        let first = *self.first_index.get_or_insert(index);
        if index < first {
            // A clock that went back cannot happen with Instant; count it in the first window.
            return &mut self.windows[0];
        }
        let i = (index - first) as usize;
        if i >= self.windows.len() {
            self.windows.resize_with(i + 1, WindowState::default);
        }
        &mut self.windows[i]
    }
}

/// The shared record of a run; cheap to clone behind an `Arc`.
pub struct Recorder {
    start: Instant,
    start_epoch_ms: i64,
    window_ms: u64,
    correction: Option<Correction>,
    inner: Mutex<Inner>,
    first_send_ms: AtomicI64,
    requests: AtomicU64,
    errors: AtomicU64,
    users: AtomicUsize,
    instances: AtomicUsize,
    connections: Arc<AtomicU64>,
    retries: AtomicU64,
    sold_out: AtomicU64,
}

/// Instances beyond this many are counted without a name (never seen in practice).
const MAX_INSTANCES: usize = u16::MAX as usize;

impl Recorder {
    /// A recorder whose clock starts now, cutting time into windows of `window`.
    pub fn new(window: Duration) -> Recorder {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Recorder {
            start: Instant::now(),
            start_epoch_ms: epoch,
            window_ms: (window.as_millis() as u64).max(1),
            correction: None,
            inner: Mutex::new(Inner::default()),
            first_send_ms: AtomicI64::new(i64::MAX),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            users: AtomicUsize::new(0),
            instances: AtomicUsize::new(0),
            connections: Arc::new(AtomicU64::new(0)),
            retries: AtomicU64::new(0),
            sold_out: AtomicU64::new(0),
        }
    }

    /// Also keeps latency corrected for coordinated omission (see [`Correction`]).
    pub fn with_correction(mut self, c: Correction) -> Recorder {
        self.correction = Some(c);
        self
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When the run started, ms since the Unix epoch.
    pub fn start_epoch_ms(&self) -> i64 {
        self.start_epoch_ms
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis().min(u128::from(u32::MAX)) as u32
    }

    /// Now, ms since the Unix epoch (on the run's monotonic clock).
    pub fn epoch_now_ms(&self) -> i64 {
        self.start_epoch_ms + self.start.elapsed().as_millis() as i64
    }

    /// Counts one response (or failed request) of `user` that took `latency`, answered by
    /// `instance` (its `X-Bookstore-Instance`; `None` without one).
    pub fn record(
        &self,
        user: usize,
        latency: Duration,
        instance: Option<&str>,
        ok: bool,
    ) -> Counted {
        let elapsed = self.start.elapsed();
        let at_ms = self.start_epoch_ms + elapsed.as_millis() as i64;
        let index = at_ms.div_euclid(self.window_ms as i64);
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let interval_us = self.correction.as_ref().map(|c| {
            let users = c.stages.users_at(elapsed).max(1.0);
            ((users / c.rate) * 1e6) as u64
        });
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.users.fetch_max(user + 1, Ordering::Relaxed);
        self.first_send_ms
            .fetch_min(at_ms - (us / 1000) as i64, Ordering::Relaxed);

        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inst = instance.and_then(|name| match g.index.get(name) {
            Some(&i) => Some(i),
            None if g.names.len() < MAX_INSTANCES => {
                let i = g.names.len() as u16;
                g.names.push(name.to_string());
                g.index.insert(name.to_string(), i);
                g.instances.push(InstanceAgg::default());
                self.instances.store(g.names.len(), Ordering::Relaxed);
                Some(i)
            }
            None => None,
        });
        let new_user_in_window = {
            if g.user_window.len() <= user {
                g.user_window.resize(user + 1, i64::MIN);
            }
            let seen = g.user_window[user] == index;
            g.user_window[user] = index;
            !seen
        };
        if let Some(i) = inst {
            let agg = &mut g.instances[usize::from(i)];
            agg.served.count(at_ms, ok);
            agg.latency.record(us);
        }
        let w = g.window(index);
        w.requests += 1;
        if !ok {
            w.errors += 1;
        }
        if new_user_in_window {
            w.users += 1;
        }
        w.latency.record(us);
        if let Some(interval) = interval_us.filter(|&i| i > 0) {
            let c = w.corrected.get_or_insert_with(Latency::default);
            let _ =
                c.0.record_correct(us.clamp(1, crate::aggregate::MAX_LATENCY_US), interval);
        }
        match inst {
            Some(i) => {
                let i = usize::from(i);
                if w.served.len() <= i {
                    w.served.resize_with(i + 1, Served::default);
                }
                w.served[i].count(at_ms, ok);
            }
            None => w.no_instance += 1,
        }
        Counted {
            window: index,
            instance: inst,
        }
    }

    /// Counts a failure with its reason; with `counted`, the response counted there (which
    /// looked fine until its page was read) becomes an error.
    pub fn fail(&self, counted: Option<Counted>, reason: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = counted {
            let mut flipped = false;
            if let Some(i) = c.instance.map(usize::from) {
                if let Some(s) = g.window(c.window).served.get_mut(i) {
                    if s.ok > 0 {
                        s.ok_to_error();
                        flipped = true;
                    }
                }
                if flipped {
                    g.instances[i].served.ok_to_error();
                }
            } else {
                flipped = true;
            }
            if flipped {
                let w = g.window(c.window);
                if w.errors < w.requests {
                    w.errors += 1;
                    self.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let Inner {
            reasons,
            other_reasons,
            ..
        } = &mut *g;
        add_reason(reasons, other_reasons, reason, 1);
    }

    /// Requests so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Users that sent at least one request.
    pub fn users(&self) -> usize {
        self.users.load(Ordering::Relaxed)
    }

    /// Distinct instances seen so far.
    pub fn instances(&self) -> usize {
        self.instances.load(Ordering::Relaxed)
    }

    /// The counter of TCP connections opened, shared with every user's HTTP client.
    pub fn connection_counter(&self) -> Arc<AtomicU64> {
        self.connections.clone()
    }

    /// Connections opened so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a request sent again because the server had closed the idle keep-alive
    /// connection it went out on (see `scenarios::steps::send`).
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a buy the shop refused because other shoppers had taken the copies since the
    /// book page showed them (see `scenarios::journeys::shop`).
    pub fn sold_out(&self) {
        self.sold_out.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of everything gathered so far, as mergeable data.
    pub fn aggregate(&self) -> Aggregate {
        let ended_ms = self.epoch_now_ms();
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let first = g.first_index.unwrap_or(0);
        let windows = g
            .windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.requests > 0)
            .map(|(i, w)| WindowAgg {
                index: first + i as i64,
                requests: w.requests,
                errors: w.errors,
                no_instance: w.no_instance,
                users: w.users,
                latency: w.latency.clone(),
                corrected: w.corrected.clone(),
                served: w
                    .served
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.ok + s.errors > 0)
                    .map(|(i, s)| (g.names[i].clone(), s.clone()))
                    .collect(),
            })
            .collect();
        Aggregate {
            window_ms: self.window_ms,
            started_ms: self.start_epoch_ms,
            ended_ms,
            first_send_ms: Some(self.first_send_ms.load(Ordering::Relaxed))
                .filter(|&f| f != i64::MAX),
            windows,
            instances: g
                .names
                .iter()
                .cloned()
                .zip(g.instances.iter().cloned())
                .collect(),
            reasons: g.reasons.clone(),
            other_reasons: g.other_reasons,
            connections: self.connections(),
            retries: self.retries.load(Ordering::Relaxed),
            sold_out: self.sold_out.load(Ordering::Relaxed),
        }
    }
}

/// A tower layer that counts every connection a reqwest client opens.
#[derive(Clone)]
pub struct CountConnections(pub Arc<AtomicU64>);

impl<S> tower_layer::Layer<S> for CountConnections {
    type Service = CountedService<S>;
    fn layer(&self, inner: S) -> CountedService<S> {
        CountedService {
            inner,
            count: self.0.clone(),
        }
    }
}

/// The connector service wrapped by [`CountConnections`].
#[derive(Clone)]
pub struct CountedService<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S, R> tower_service::Service<R> for CountedService<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_land_in_windows_and_instances() {
        let rec = Recorder::new(Duration::from_secs(3600));
        let a = rec.record(0, Duration::from_millis(5), Some("a"), true);
        rec.record(1, Duration::from_millis(7), Some("b"), true);
        rec.record(1, Duration::from_millis(9), None, false);
        rec.fail(Some(a), "GET /: expected the home page");
        rec.fail(None, "GET /: cannot connect");
        let agg = rec.aggregate();
        assert!(agg.windows.len() <= 2, "one hour windows");
        let w = agg
            .windows
            .iter()
            .find(|w| w.requests == 3)
            .or(agg.windows.first());
        let total: u64 = agg.windows.iter().map(|w| w.requests).sum();
        assert_eq!(total, 3);
        assert_eq!(agg.windows.iter().map(|w| w.errors).sum::<u64>(), 2);
        assert_eq!(agg.windows.iter().map(|w| w.no_instance).sum::<u64>(), 1);
        assert!(w.is_some());
        assert_eq!(agg.instances["a"].served.ok, 0);
        assert_eq!(agg.instances["a"].served.errors, 1);
        assert_eq!(agg.instances["a"].served.first_ok_ms, None);
        assert_eq!(agg.instances["b"].served.ok, 1);
        assert_eq!(agg.reasons.len(), 2);
        assert_eq!(rec.errors(), 2);
        assert_eq!(rec.instances(), 2);
    }

    /// A long run at full speed: memory stays flat once the windows exist; it depends on the
    /// windows and instances, not on the requests.
    #[test]
    fn memory_stays_flat_over_a_long_synthetic_run() {
        let rec = Recorder::new(Duration::from_secs(3600));
        let names = ["i-1", "i-2", "i-3", "i-4"];
        let mut sizes = Vec::new();
        for round in 0..5u64 {
            for i in 0..200_000u64 {
                let ok = i % 97 != 0;
                let lat = Duration::from_micros(200 + (i * 7919) % 2_000_000);
                let c = rec.record((i % 500) as usize, lat, Some(names[(i % 4) as usize]), ok);
                if i % 1009 == 0 {
                    rec.fail(Some(c), "GET /books: expected the catalog");
                }
            }
            let agg = rec.aggregate();
            assert_eq!(agg.requests(), (round + 1) * 200_000);
            sizes.push(agg.heap_bytes());
        }
        assert!(sizes[0] < 200_000, "{sizes:?}");
        assert!(
            sizes.windows(2).all(|w| w[1] <= w[0] + 1024),
            "memory grew with requests: {sizes:?}"
        );
        let json = serde_json::to_vec(&rec.aggregate()).unwrap();
        assert!(json.len() < 64 * 1024, "{} bytes", json.len());
    }

    #[test]
    fn a_rate_keeps_latency_corrected_for_coordinated_omission() {
        let stages = Stages::ramp_and_hold(2, Duration::ZERO, Duration::from_secs(60));
        let rec = Recorder::new(Duration::from_secs(3600))
            .with_correction(Correction { stages, rate: 20.0 });
        // 2 users at 20 requests/s: one request per user every 100 ms. A 1 s stall stands for
        // the nine requests the user could not send meanwhile.
        for _ in 0..90 {
            rec.record(0, Duration::from_millis(10), Some("a"), true);
        }
        rec.record(0, Duration::from_millis(1000), Some("a"), true);
        let agg = rec.aggregate();
        let raw: u64 = agg.windows.iter().map(|w| w.latency.count()).sum();
        let corrected: u64 = agg
            .windows
            .iter()
            .filter_map(|w| w.corrected.as_ref())
            .map(|c| c.count())
            .sum();
        assert_eq!(raw, 91);
        assert_eq!(corrected, 100);
    }
}

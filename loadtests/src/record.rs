//! What every response said: when it came, how long it took, which instance served it, and why a
//! step failed. Shared by all goose users of one run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One response (or failed request), kept compact: 16 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Milliseconds since the run started, when the response was complete.
    pub at_ms: u32,
    /// Request duration (headers and body), in microseconds.
    pub latency_us: u32,
    /// Index of the user that sent it.
    pub user: u32,
    /// Index into [`Snapshot::instance_names`], or `u16::MAX` when the response had no
    /// `X-Bookstore-Instance` header (or there was no response).
    pub instance: u16,
    /// True when the step got what it expected.
    pub ok: bool,
}

/// Instance index meaning "no header".
pub const NO_INSTANCE: u16 = u16::MAX;

#[derive(Default)]
struct Inner {
    samples: Vec<Sample>,
    names: Vec<String>,
    index: HashMap<String, u16>,
    first_seen_ms: Vec<u32>,
    reasons: BTreeMap<String, u64>,
}

/// The shared record of a run; cheap to clone behind an `Arc`.
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
    requests: AtomicU64,
    errors: AtomicU64,
    users: AtomicUsize,
    instances: AtomicUsize,
    connections: Arc<AtomicU64>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            users: AtomicUsize::new(0),
            instances: AtomicUsize::new(0),
            connections: Arc::new(AtomicU64::new(0)),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Milliseconds since the start.
    pub fn now_ms(&self) -> u32 {
        self.start.elapsed().as_millis().min(u128::from(u32::MAX)) as u32
    }

    /// Records one response; returns its index, for [`Recorder::fail`].
    pub fn record(
        &self,
        user: usize,
        latency: std::time::Duration,
        instance: Option<&str>,
        ok: bool,
    ) -> usize {
        let at_ms = self.now_ms();
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.users.fetch_max(user + 1, Ordering::Relaxed);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let instance = match instance {
            None => NO_INSTANCE,
            Some(name) => match g.index.get(name) {
                Some(&i) => i,
                None if g.names.len() < usize::from(NO_INSTANCE) => {
                    let i = g.names.len() as u16;
                    g.names.push(name.to_string());
                    g.index.insert(name.to_string(), i);
                    g.first_seen_ms.push(at_ms);
                    self.instances.store(g.names.len(), Ordering::Relaxed);
                    i
                }
                None => NO_INSTANCE,
            },
        };
        g.samples.push(Sample {
            at_ms,
            latency_us: latency.as_micros().min(u128::from(u32::MAX)) as u32,
            user: user as u32,
            instance,
            ok,
        });
        g.samples.len() - 1
    }

    /// Marks a recorded response as an error with a reason (an unexpected page).
    pub fn fail(&self, sample: Option<usize>, reason: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sample.and_then(|i| g.samples.get_mut(i)) {
            if s.ok {
                s.ok = false;
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        *g.reasons.entry(reason.to_string()).or_default() += 1;
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

    /// A copy of everything recorded: samples, instance names, first-seen times, error reasons.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot {
            samples: g.samples.clone(),
            instance_names: g.names.clone(),
            first_seen_ms: g.first_seen_ms.clone(),
            reasons: g.reasons.clone(),
            connections: self.connections(),
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// Everything recorded during a run, as [`Recorder::snapshot`] copies it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every response, in the order recorded.
    pub samples: Vec<Sample>,
    /// Instance names; a sample's `instance` indexes this.
    pub instance_names: Vec<String>,
    /// When each instance was first seen (ms since start), same order as the names.
    pub first_seen_ms: Vec<u32>,
    /// Why steps failed, with counts.
    pub reasons: BTreeMap<String, u64>,
    /// TCP connections opened by all users.
    pub connections: u64,
}

/// A tower layer that counts every connection a reqwest client opens.
#[derive(Clone)]
pub struct CountConnections(pub Arc<AtomicU64>);

impl<S> tower_layer::Layer<S> for CountConnections {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            count: self.0.clone(),
        }
    }
}

/// The connector service wrapped by [`CountConnections`].
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S, R> tower_service::Service<R> for Counted<S>
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

//! The platform's own view beside the data plane: what the auto-scaling group, the HPA or a
//! rehearsal's autoscaler decided and had in service, polled while the load runs.
//!
//! [`Watch`] names the source (`--watch-asg`, `--watch-hpa`, `--watch-rehearsal`); [`Watcher`]
//! polls it into a [`PlatformView`]: a sample whenever desired capacity or an instance's state
//! changes, every scaling decision with its cause, instance events and metric values. The view
//! keeps only changes, so it stays small however long the run.

mod asg;
mod hpa;
mod join;
mod rehearsal;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use join::{join_rows, platform_sentence};

/// Metric points kept (a rehearsal evaluates every few seconds; an hour fits easily).
const MAX_METRIC_POINTS: usize = 20_000;

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// An EC2 auto-scaling group, with the `aws` CLI.
    Asg(String),
    /// A HorizontalPodAutoscaler `(namespace, name)`, with `kubectl`.
    Hpa(String, String),
    /// A `bookstore rehearse` decision log at this URL.
    Rehearsal(String),
}

impl Watch {
    /// The words for it: "the auto-scaling group bookstore-asg".
    pub fn describe(&self) -> String {
        match self {
            Watch::Asg(n) => format!("the auto-scaling group {n}"),
            Watch::Hpa(ns, n) => format!("the HPA {ns}/{n}"),
            Watch::Rehearsal(u) => format!("the rehearsal's autoscaler at {u}"),
        }
    }

    /// Who decides, for the verdict: "the group", "the HPA", "the autoscaler".
    pub fn subject(&self) -> &'static str {
        match self {
            Watch::Asg(_) => "the group",
            Watch::Hpa(..) => "the HPA",
            Watch::Rehearsal(_) => "the autoscaler",
        }
    }
}

/// One instance (EC2 instance, pod, rehearsal instance) as the platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PlatformInstance {
    /// Its id: the EC2 instance id or the pod name, what it sends as X-Bookstore-Instance.
    pub id: String,
    /// The platform's word for its state (InService, Pending, Running/ready, in_service, ...).
    pub state: String,
}

/// The platform's state when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Sample {
    /// When it was read.
    pub at: DateTime<Utc>,
    /// Seconds since the load test started.
    pub t_s: f64,
    /// Desired capacity (replicas).
    pub desired: Option<u32>,
    /// Instances in service (ready pods).
    pub in_service: u32,
    /// Instances on their way in (pending, warming up).
    pub pending: u32,
    /// Every instance with its state.
    pub instances: Vec<PlatformInstance>,
}

/// A scaling decision.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Decision {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Seconds since the load test started.
    pub t_s: f64,
    /// Desired capacity before, when known.
    pub from: Option<u32>,
    /// Desired capacity after.
    pub to: u32,
    /// Why, in the platform's words.
    pub cause: String,
    /// Instances launched for it, when the platform says.
    pub added: Vec<String>,
    /// Instances removed for it.
    pub removed: Vec<String>,
    /// The platform's id for it (activity id, event uid, log line).
    pub key: String,
}

/// An instance event (launched, in service, draining, terminated, ...).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct InstanceEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Seconds since the load test started.
    pub t_s: f64,
    /// The instance.
    pub id: String,
    /// What happened.
    pub event: String,
}

/// A value of the scaling metric.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MetricPoint {
    /// When.
    pub at: DateTime<Utc>,
    /// Seconds since the load test started.
    pub t_s: f64,
    /// Which metric (`cpu`, `ASGAverageCPUUtilization`, ...).
    pub metric: String,
    /// Its value.
    pub value: f64,
    /// The target, when known.
    pub target: Option<f64>,
}

/// Everything read from the platform during the run.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PlatformView {
    /// What was watched, in words.
    pub source: String,
    /// Polls made.
    pub polls: u64,
    /// Polls that failed.
    pub poll_errors: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The state whenever it changed.
    pub samples: Vec<Sample>,
    /// Scaling decisions, in order.
    pub decisions: Vec<Decision>,
    /// Instance events, in order.
    pub instance_events: Vec<InstanceEvent>,
    /// Metric values.
    pub metrics: Vec<MetricPoint>,
    /// Metric values not kept (past the cap).
    pub metrics_dropped: u64,
}

impl PlatformView {
    /// Seconds between `at` and the start.
    fn rel(&self, at: DateTime<Utc>, start: DateTime<Utc>) -> f64 {
        let _ = self;
        (at - start).num_milliseconds() as f64 / 1000.0
    }

    /// Records a state, if it differs from the last one; instance events for the differences.
    pub fn observe(&mut self, mut s: Sample, start: DateTime<Utc>) {
        s.t_s = self.rel(s.at, start);
        s.instances.sort_by(|a, b| a.id.cmp(&b.id));
        let before: Vec<PlatformInstance> = self
            .samples
            .last()
            .map(|l| l.instances.clone())
            .unwrap_or_default();
        if let Some(last) = self.samples.last() {
            if last.desired == s.desired
                && last.in_service == s.in_service
                && last.pending == s.pending
                && last.instances == s.instances
            {
                return;
            }
        }
        let first = self.samples.is_empty();
        if !first {
            for i in &s.instances {
                match before.iter().find(|b| b.id == i.id) {
                    None => {
                        self.instance_event(s.at, start, &i.id, &format!("appeared ({})", i.state))
                    }
                    Some(b) if b.state != i.state => self.instance_event(
                        s.at,
                        start,
                        &i.id,
                        &format!("{} → {}", b.state, i.state),
                    ),
                    _ => {}
                }
            }
            for b in &before {
                if !s.instances.iter().any(|i| i.id == b.id) {
                    self.instance_event(s.at, start, &b.id, "gone");
                }
            }
        }
        self.samples.push(s);
    }

    /// Records an instance event.
    pub fn instance_event(
        &mut self,
        at: DateTime<Utc>,
        start: DateTime<Utc>,
        id: &str,
        event: &str,
    ) {
        let t_s = self.rel(at, start);
        self.instance_events.push(InstanceEvent {
            at,
            t_s,
            id: id.to_string(),
            event: event.to_string(),
        });
    }

    /// Records a decision unless one with the same key is known.
    pub fn decide(&mut self, mut d: Decision, start: DateTime<Utc>) {
        if let Some(known) = self.decisions.iter_mut().find(|k| k.key == d.key) {
            for a in d.added {
                if !known.added.contains(&a) {
                    known.added.push(a);
                }
            }
            for r in d.removed {
                if !known.removed.contains(&r) {
                    known.removed.push(r);
                }
            }
            return;
        }
        d.t_s = self.rel(d.at, start);
        let pos = self
            .decisions
            .iter()
            .position(|k| k.at > d.at)
            .unwrap_or(self.decisions.len());
        self.decisions.insert(pos, d);
    }

    /// Records a metric value.
    pub fn metric(&mut self, mut m: MetricPoint, start: DateTime<Utc>) {
        if self.metrics.len() >= MAX_METRIC_POINTS {
            self.metrics_dropped += 1;
            return;
        }
        m.t_s = self.rel(m.at, start);
        self.metrics.push(m);
    }

    /// Measures every `t_s` from `start` (the load test's first instant).
    pub fn rebase(&mut self, start: DateTime<Utc>) {
        let rel = |at: DateTime<Utc>| (at - start).num_milliseconds() as f64 / 1000.0;
        for s in &mut self.samples {
            s.t_s = rel(s.at);
        }
        for d in &mut self.decisions {
            d.t_s = rel(d.at);
        }
        for e in &mut self.instance_events {
            e.t_s = rel(e.at);
        }
        for m in &mut self.metrics {
            m.t_s = rel(m.at);
        }
    }

    /// Desired capacity before `at` (the last sample before it).
    pub fn desired_before(&self, at: DateTime<Utc>) -> Option<u32> {
        self.samples
            .iter()
            .take_while(|s| s.at <= at)
            .last()
            .and_then(|s| s.desired)
    }
}

/// Runs a CLI and returns its stdout; the error says which command failed and why.
pub(crate) async fn run_cli(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = format!("{program} {}", args.join(" "));
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .map_err(|_| format!("`{shown}` did not answer within 30 s"))?
        .map_err(|e| format!("`{shown}`: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err: String = err.trim().lines().take(3).collect::<Vec<_>>().join(" ");
        return Err(format!("`{shown}` failed ({}): {err}", out.status));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| format!("`{shown}` printed something that is not UTF-8"))
}

/// Parses a CLI's JSON, saying which command printed what.
pub(crate) fn json(cmd: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| {
        let head: String = text.chars().take(120).collect();
        format!("`{cmd}` printed no JSON ({e}): {head}")
    })
}

/// Parses an RFC 3339 time.
pub(crate) fn time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The state of one source between polls.
enum Source {
    Asg(asg::Asg),
    Hpa(hpa::Hpa),
    Rehearsal(rehearsal::Rehearsal),
}

impl Source {
    fn new(w: &Watch) -> Result<Source, String> {
        Ok(match w {
            Watch::Asg(n) => Source::Asg(asg::Asg::new(n)),
            Watch::Hpa(ns, n) => Source::Hpa(hpa::Hpa::new(ns, n)),
            Watch::Rehearsal(u) => Source::Rehearsal(rehearsal::Rehearsal::new(u)?),
        })
    }

    async fn poll(
        &mut self,
        view: &Mutex<PlatformView>,
        start: DateTime<Utc>,
    ) -> Result<(), String> {
        match self {
            Source::Asg(s) => s.poll(view, start).await,
            Source::Hpa(s) => s.poll(view, start).await,
            Source::Rehearsal(s) => s.poll(view, start).await,
        }
    }
}

/// Polls the platform in the background while the load runs.
pub struct Watcher {
    view: Arc<Mutex<PlatformView>>,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// Locks the view, whatever a panicking poller left.
pub(crate) fn lock(v: &Mutex<PlatformView>) -> std::sync::MutexGuard<'_, PlatformView> {
    v.lock().unwrap_or_else(|p| p.into_inner())
}

impl Watcher {
    /// Polls once (a failure here stops the run before it starts: the watch cannot work),
    /// then every `every` until [`Watcher::finish`].
    pub async fn start(
        w: &Watch,
        every: Duration,
        start: DateTime<Utc>,
    ) -> Result<Watcher, String> {
        let mut source = Source::new(w)?;
        let view = Arc::new(Mutex::new(PlatformView {
            source: w.describe(),
            ..PlatformView::default()
        }));
        source
            .poll(&view, start)
            .await
            .map_err(|e| format!("cannot read {}: {e}", w.describe()))?;
        lock(&view).polls += 1;
        let stop = Arc::new(tokio::sync::Notify::new());
        let (v, s) = (view.clone(), stop.clone());
        let task = tokio::spawn(async move {
            loop {
                let stopped = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = s.notified() => true,
                };
                let r = source.poll(&v, start).await;
                let mut g = lock(&v);
                g.polls += 1;
                if let Err(e) = r {
                    g.poll_errors += 1;
                    g.last_error = Some(e);
                }
                drop(g);
                if stopped {
                    return;
                }
            }
        });
        Ok(Watcher { view, stop, task })
    }

    /// Polls a last time and returns everything read.
    pub async fn finish(self) -> PlatformView {
        self.stop.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(40), self.task).await;
        lock(&self.view).clone()
    }
}

//! The decision log: one JSON object per line in `<workdir>/decisions.jsonl` for every
//! evaluation and action of the autoscaler (and every manual step), in the format fixed in the
//! team's INTERFACES contract, so that the load test can join the platform's decisions to the
//! instances that served its requests.
//!
//! API (stable): [`DecisionLog::create`], [`DecisionLog::record`] with an [`Entry`],
//! [`DecisionLog::lines_from`]; [`StatusBoard`] holds what `GET /status` shows.

use super::clock::{now_rfc3339, PlatformClock};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Which platform's algorithm decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Autoscaler {
    /// EC2 Auto Scaling target tracking (objective 2).
    TargetTracking,
    /// The Kubernetes HorizontalPodAutoscaler (objective 3).
    Hpa,
}

impl Autoscaler {
    /// `target-tracking` or `hpa`.
    pub fn as_str(self) -> &'static str {
        match self {
            Autoscaler::TargetTracking => "target-tracking",
            Autoscaler::Hpa => "hpa",
        }
    }
}

/// One evaluation of one policy (or HPA metric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The rendered name: the CloudFormation logical id, or the HPA's `metadata.name`.
    pub policy: String,
    /// `ASGAverageCPUUtilization`, `ALBRequestCountPerTarget` or `cpu`.
    pub metric: String,
    /// The target, as rendered.
    pub target: f64,
    /// The aggregate the rule used; `None` (null) when there was no data.
    pub value: Option<f64>,
    /// Each counted instance's value.
    pub per_instance: BTreeMap<String, f64>,
    /// Instances left out, with the reason (e.g. "warming up").
    pub excluded: BTreeMap<String, String>,
    /// Capacity before the evaluation.
    pub current: u32,
    /// Capacity the evaluation asks for.
    pub desired: u32,
    /// What decided, in words.
    pub rule: String,
}

/// A change of capacity and the instances it added or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Capacity before.
    pub current: u32,
    /// Capacity after.
    pub desired: u32,
    /// Why, in words.
    pub rule: String,
    /// Ids of the instances launched.
    pub instances_added: Vec<String>,
    /// Ids of the instances chosen for termination.
    pub instances_removed: Vec<String>,
}

/// What happened to one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceEventKind {
    /// Started (the process exists).
    Launched,
    /// Takes traffic.
    InService,
    /// Stopped taking traffic (failed health checks, or not ready).
    OutOfService,
    /// Deregistered; finishing in-flight requests.
    Draining,
    /// Gone.
    Terminated,
}

/// One instance's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceEvent {
    /// Its id (`X-Bookstore-Instance`).
    pub instance: String,
    /// What happened.
    pub event: InstanceEventKind,
}

/// A step typed by a person (`--manual`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manual {
    /// Capacity before.
    pub current: u32,
    /// Capacity after.
    pub desired: u32,
    /// E.g. `"manual: + typed"`.
    pub rule: String,
}

/// One line's content; `kind` names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A policy was evaluated.
    Evaluation(Evaluation),
    /// The capacity changed.
    Scale(Scale),
    /// An instance changed state.
    Instance(InstanceEvent),
    /// A person changed the capacity.
    Manual(Manual),
}

/// A whole line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Wall clock, RFC 3339 UTC with milliseconds.
    pub time: String,
    /// Platform seconds since the rehearsal started.
    pub platform_seconds: f64,
    /// Which algorithm.
    pub autoscaler: Autoscaler,
    /// The content.
    #[serde(flatten)]
    pub entry: Entry,
}

#[derive(Debug)]
struct Inner {
    autoscaler: Autoscaler,
    clock: PlatformClock,
    path: PathBuf,
    file: std::fs::File,
    lines: Vec<String>,
}

/// The decision log of one rehearsal (cheap to clone; every clone appends to the same file).
#[derive(Debug, Clone)]
pub struct DecisionLog {
    inner: Arc<Mutex<Inner>>,
}

impl DecisionLog {
    /// Creates (truncates) `path` for `autoscaler`'s decisions, timed by `clock`.
    pub fn create(
        path: &Path,
        autoscaler: Autoscaler,
        clock: PlatformClock,
    ) -> Result<DecisionLog> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create the decision log {}", path.display()))?;
        Ok(DecisionLog {
            inner: Arc::new(Mutex::new(Inner {
                autoscaler,
                clock,
                path: path.to_path_buf(),
                file,
                lines: Vec::new(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one line (written and flushed at once) and returns it.
    pub fn record(&self, entry: Entry) -> Result<Line> {
        let mut inner = self.lock();
        let line = Line {
            time: now_rfc3339(),
            platform_seconds: (inner.clock.platform_seconds() * 1000.0).round() / 1000.0,
            autoscaler: inner.autoscaler,
            entry,
        };
        let text = serde_json::to_string(&line)?;
        writeln!(inner.file, "{text}")
            .and_then(|_| inner.file.flush())
            .with_context(|| format!("cannot write to {}", inner.path.display()))?;
        inner.lines.push(text);
        Ok(line)
    }

    /// The lines from index `from` (0-based) on, as written.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        let inner = self.lock();
        inner
            .lines
            .get(from..)
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }

    /// How many lines so far.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// True before the first line.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// The clock the log is timed by.
    pub fn clock(&self) -> PlatformClock {
        self.lock().clock
    }
}

/// An instance's state as `GET /status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Launched, not yet taking traffic.
    Pending,
    /// Taking traffic; its metrics are not counted yet.
    WarmingUp,
    /// Taking traffic and counted.
    InService,
    /// Failing its health checks (or readiness probe).
    NotReady,
    /// Deregistered, finishing in-flight requests.
    Draining,
}

/// One instance in `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Its id.
    pub id: String,
    /// Its state.
    pub state: InstanceState,
    /// Since when (RFC 3339).
    pub since: String,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `objective2` or `objective3`.
    pub objective: String,
    /// Which algorithm.
    pub autoscaler: Autoscaler,
    /// Platform seconds per real second.
    pub time_scale: f64,
    /// Smallest capacity.
    pub min: u32,
    /// Largest capacity.
    pub max: u32,
    /// The capacity asked for.
    pub desired: u32,
    /// Every instance not yet terminated.
    pub instances: Vec<InstanceStatus>,
}

/// The status the rehearsal keeps up to date for `GET /status`.
#[derive(Debug, Clone)]
pub struct StatusBoard {
    inner: Arc<Mutex<Status>>,
}

impl StatusBoard {
    /// A board showing `status`.
    pub fn new(status: Status) -> StatusBoard {
        StatusBoard {
            inner: Arc::new(Mutex::new(status)),
        }
    }

    /// A copy of the current status.
    pub fn get(&self) -> Status {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the status.
    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Sets instance `id`'s state (adding it when new; `since` changes only with the state).
    pub fn set_instance(&self, id: &str, state: InstanceState) {
        self.update(|s| match s.instances.iter_mut().find(|i| i.id == id) {
            Some(i) if i.state == state => {}
            Some(i) => {
                i.state = state;
                i.since = now_rfc3339();
            }
            None => s.instances.push(InstanceStatus {
                id: id.to_string(),
                state,
                since: now_rfc3339(),
            }),
        });
    }

    /// Removes instance `id` (terminated).
    pub fn remove_instance(&self, id: &str) {
        self.update(|s| s.instances.retain(|i| i.id != id));
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::TimeScale;
    use super::*;

    #[test]
    fn lines_have_the_contract_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = DecisionLog::create(
            &path,
            Autoscaler::TargetTracking,
            PlatformClock::start(TimeScale::new(12.0).unwrap()),
        )
        .unwrap();
        log.record(Entry::Evaluation(Evaluation {
            policy: "CpuScalingPolicy".into(),
            metric: "ASGAverageCPUUtilization".into(),
            target: 50.0,
            value: Some(87.0),
            per_instance: [("i-rehearsal-1".to_string(), 87.0)].into_iter().collect(),
            excluded: [("i-rehearsal-2".to_string(), "warming up".to_string())]
                .into_iter()
                .collect(),
            current: 2,
            desired: 4,
            rule: "scale-out: 87% > 50% target".into(),
        }))
        .unwrap();
        log.record(Entry::Instance(InstanceEvent {
            instance: "i-rehearsal-3".into(),
            event: InstanceEventKind::InService,
        }))
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let e = &lines[0];
        assert_eq!(e["kind"], "evaluation");
        assert_eq!(e["autoscaler"], "target-tracking");
        assert_eq!(e["excluded"]["i-rehearsal-2"], "warming up");
        assert_eq!(e["per_instance"]["i-rehearsal-1"], 87.0);
        assert!(e["platform_seconds"].as_f64().unwrap() >= 0.0);
        let time = e["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
        assert_eq!(lines[1]["kind"], "instance");
        assert_eq!(lines[1]["event"], "in_service");
        assert_eq!(log.lines_from(1).len(), 1);
        assert!(log.lines_from(5).is_empty());
        // Lines parse back into the typed form.
        let back: Line = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(matches!(back.entry, Entry::Evaluation(ref ev) if ev.desired == 4));
    }
}

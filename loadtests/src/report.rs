//! The result of a run: everything it found ([`Report`], which is timeline.json) and the
//! summary printed on the terminal.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::gates::{Gate, StagePhase};
use crate::platform::PlatformView;
use crate::scenarios::ScenarioKind;
use crate::shape::{Stages, Think};
use crate::timeline::{clock, InstanceSeen, Phase, Totals, Window};
use crate::verdict::Verdict;

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The plan ran to its end.
    Plan,
    /// Ctrl-C (SIGINT): stopped early, what was gathered is reported.
    Interrupted,
    /// Users did not finish within the stop grace after the planned end.
    SafetyTimeout,
}

/// The load model that ran, in words (the report must say which).
#[derive(Debug, Clone, Serialize)]
pub struct LoadModel {
    /// `closed`: a fixed number of users, each waiting for its responses.
    pub kind: String,
    /// The stages.
    pub stages: Stages,
    /// Think time between pages, when given.
    pub think: Option<Think>,
    /// `--throttle`, requests per second.
    pub throttle: Option<usize>,
    /// What it means for latency (coordinated omission).
    pub latency_note: String,
}

impl LoadModel {
    /// Describes the model for these settings.
    pub fn new(stages: Stages, think: Option<Think>, throttle: Option<usize>) -> LoadModel {
        let mut note = "closed model: each user sends its next request only after the previous response (and its think time), so when the shop slows the users send less and latency percentiles under-count the slow period (coordinated omission); read p95 beside requests/s".to_string();
        if let Some(r) = throttle {
            if think.is_some_and(|t| !t.is_none()) {
                note.push_str(&format!("; --throttle {r} caps the rate, but with think time there is no fixed schedule to correct against"));
            } else {
                note.push_str(&format!("; with --throttle {r}, p95 is also corrected for coordinated omission (HdrHistogram's correction: each user expected every users/{r} s, the requests a slow response held back are counted as waiting)"));
            }
        }
        LoadModel {
            kind: "closed".into(),
            stages,
            think,
            throttle,
            latency_note: note,
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL load-tested.
    pub url: String,
    /// The scenario.
    pub scenario: ScenarioKind,
    /// The load model.
    pub model: LoadModel,
    /// Most users at once in the plan.
    pub users: usize,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How it ended.
    pub ended_by: EndedBy,
    /// How long it ran, seconds.
    pub duration_s: f64,
    /// Window length, seconds.
    pub window_s: f64,
    /// The serving share, percent of an equal split.
    pub serving_share_pct: f64,
    /// Totals over the run.
    pub totals: Totals,
    /// The timeline.
    pub windows: Vec<Window>,
    /// Every instance, in the order first seen.
    pub instances: Vec<InstanceSeen>,
    /// The conclusion.
    pub verdict: Verdict,
    /// The platform's side of the conclusion, when it was watched.
    pub platform_verdict: Option<String>,
    /// What the platform showed, when watched.
    pub platform: Option<PlatformView>,
    /// The steady stages, as the gates judged them.
    pub steady_stages: Vec<StagePhase>,
    /// Why steps failed, with counts.
    pub errors_by_reason: Vec<(String, u64)>,
    /// The gates given on the command line.
    pub gates: Vec<Gate>,
    /// Files written with `--report`.
    pub files: Vec<PathBuf>,
    /// With `loadtest merge`: the shards merged and the ones missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<crate::merge::ShardsMerged>,
    /// The mergeable data everything above was computed from.
    pub aggregate: Aggregate,
    /// This run's result file (`--result`, `--result-stdout`).
    #[serde(skip)]
    pub result: Option<Box<crate::result_file::ShardResult>>,
}

impl Report {
    /// True when every gate holds.
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.passed)
    }

    /// The gates that failed.
    pub fn failed_gates(&self) -> Vec<&Gate> {
        self.gates.iter().filter(|g| !g.passed).collect()
    }

    /// The summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let t = &self.totals;
        let _ = writeln!(
            s,
            "bookstore loadtest: {} · scenario {} · stages {}{} · {:.0} s",
            self.url,
            self.scenario.name(),
            self.model.stages,
            self.model
                .think
                .map(|t| format!(" · think {t}"))
                .unwrap_or_default(),
            self.duration_s
        );
        if let Some(sh) = &self.shards {
            let _ = writeln!(s, "{}", crate::merge::shards_line(sh));
        }
        match self.ended_by {
            EndedBy::Plan => {}
            EndedBy::Interrupted => {
                let _ = writeln!(
                    s,
                    "stopped early by Ctrl-C: everything gathered until then follows"
                );
            }
            EndedBy::SafetyTimeout => {
                let _ = writeln!(
                    s,
                    "stopped by the safety timeout (users had not finished): everything gathered until then follows"
                );
            }
        }
        let _ = writeln!(
            s,
            "\n{:>6} {:>8} {:>6} {:>5} {:>8} {:>8} {:>6} {:>8} {:>8} {:>4}  serving (share)",
            "window",
            "UTC",
            "phase",
            "users",
            "requests",
            "req/s",
            "errors",
            "p50 ms",
            "p95 ms",
            "serv"
        );
        for w in &self.windows {
            let serving = w
                .per_instance
                .iter()
                .map(|(k, v)| {
                    let mark = if w.serving.contains(k) { "" } else { "·" };
                    format!("{mark}{k} {:.0}%", v.share)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let phase = match w.phase {
                Phase::Steady => "hold",
                Phase::Ramp => "ramp",
                Phase::Drain => "drain",
            };
            let _ = writeln!(
                s,
                "{:>6} {:>8} {:>6} {:>5} {:>8} {:>8.1} {:>6} {:>8.1} {:>8.1} {:>4}  {}",
                clock(w.start_s),
                w.start.format("%H:%M:%S").to_string(),
                phase,
                w.active_users,
                w.requests,
                w.rps,
                w.errors,
                w.p50_ms,
                w.p95_ms,
                if w.judged {
                    w.serving.len().to_string()
                } else {
                    "-".into()
                },
                serving
            );
        }
        let _ = writeln!(
            s,
            "{:>6} {:>8} {:>6} {:>5} {:>8} {:>8.1} {:>6} {:>8.1} {:>8.1} {:>4}",
            "total",
            "",
            "",
            t.peak_users,
            t.requests,
            t.rps,
            t.errors,
            t.p50_ms,
            t.p95_ms,
            self.verdict.peak
        );
        let _ = writeln!(
            s,
            "(serv: instances serving, at least {}% of an equal share; · marks one that answered but did not count; - too few responses to judge)",
            self.serving_share_pct
        );
        let _ = writeln!(
            s,
            "\nerror rate {}% · {} connections opened{}{}{}",
            t.error_rate_pct,
            t.connections,
            if t.retries > 0 {
                format!(" · {} GETs sent again on a new connection (the server had closed the idle one)", t.retries)
            } else {
                String::new()
            },
            if t.sold_out > 0 {
                format!(
                    " · {} {} the copies gone since the book page (HTTP 409 from the shop; not errors)",
                    t.sold_out,
                    if t.sold_out == 1 { "buy found" } else { "buys found" }
                )
            } else {
                String::new()
            },
            t.p95_corrected_ms
                .map(|p| format!(" · p95 corrected for coordinated omission {p} ms"))
                .unwrap_or_default()
        );
        let _ = writeln!(s, "load: {}", self.model.latency_note);
        if !self.steady_stages.is_empty() {
            let _ = writeln!(s, "\nsteady stages (what the gates judge):");
            for p in &self.steady_stages {
                let _ = writeln!(
                    s,
                    "  {:<24} {} windows, {} requests, {}% errors, p95 {} ms",
                    p.name, p.windows, p.requests, p.error_rate_pct, p.p95_ms
                );
            }
        }
        if !self.instances.is_empty() {
            let _ = writeln!(s, "\ninstances (first seen):");
            for i in &self.instances {
                let _ = writeln!(
                    s,
                    "  {:<28} {} ({} UTC)  {} requests ({} errors), {}%, serving in {} windows",
                    i.name,
                    i.first_seen,
                    i.first_seen_at.format("%H:%M:%S"),
                    i.requests,
                    i.errors,
                    i.share,
                    i.serving_windows
                );
            }
        }
        if let Some(p) = &self.platform {
            let _ = writeln!(s, "\nplatform ({}, {} polls):", p.source, p.polls);
            for d in &p.decisions {
                let _ = writeln!(
                    s,
                    "  {} desired {} → {}: {}",
                    clock(d.t_s),
                    d.from.map_or("?".into(), |f| f.to_string()),
                    d.to,
                    d.cause
                );
            }
            if p.decisions.is_empty() {
                let _ = writeln!(s, "  no scaling decision during the run");
            }
        }
        if !self.errors_by_reason.is_empty() {
            let _ = writeln!(s, "\nerrors by reason:");
            for (reason, n) in self.errors_by_reason.iter().take(10) {
                let _ = writeln!(s, "  {n:>7}  {reason}");
            }
            if self.errors_by_reason.len() > 10 {
                let _ = writeln!(s, "  ... {} more reasons", self.errors_by_reason.len() - 10);
            }
        }
        let _ = writeln!(s, "\nverdict: {}", self.verdict.text);
        if let Some(p) = &self.platform_verdict {
            let _ = writeln!(s, "platform: {p}");
        }
        for g in &self.gates {
            let _ = writeln!(
                s,
                "gate {}: {}",
                if g.passed { "ok" } else { "FAILED" },
                g.message
            );
        }
        for f in &self.files {
            let _ = writeln!(s, "wrote {}", f.display());
        }
        s
    }
}

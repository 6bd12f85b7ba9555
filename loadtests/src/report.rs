//! The result of a run: the summary table on the terminal, and `--report DIR` files
//! (timeline.json, chart.svg; goose writes report.html).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use plotters::prelude::*;
use serde::Serialize;

use crate::scenarios::ScenarioKind;
use crate::timeline::{clock, Gate, InstanceSeen, Totals, Verdict, Window};

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL load-tested.
    pub url: String,
    /// The scenario.
    pub scenario: ScenarioKind,
    /// Users started.
    pub users: usize,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it ran, seconds.
    pub duration_s: f64,
    /// Window length, seconds.
    pub window_s: f64,
    /// Totals over the run.
    pub totals: Totals,
    /// The timeline.
    pub windows: Vec<Window>,
    /// Every instance, in the order first seen.
    pub instances: Vec<InstanceSeen>,
    /// The conclusion.
    pub verdict: Verdict,
    /// Why steps failed, with counts.
    pub errors_by_reason: Vec<(String, u64)>,
    /// The gates given on the command line.
    pub gates: Vec<Gate>,
    /// Files written with `--report`.
    pub files: Vec<PathBuf>,
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
            "bookstore loadtest: {} · scenario {:?} · {} users · {:.0} s",
            self.url, self.scenario, self.users, self.duration_s
        );
        let _ = writeln!(
            s,
            "\n{:>6} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6} {:>4}  shares",
            "window", "requests", "req/s", "errors", "p50 ms", "p95 ms", "users", "inst"
        );
        for w in &self.windows {
            let shares = w
                .shares
                .iter()
                .map(|(k, v)| format!("{k} {v:.0}%"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "{:>6} {:>8} {:>8.1} {:>6} {:>8.1} {:>8.1} {:>6} {:>4}  {}",
                clock(w.start_s),
                w.requests,
                w.rps,
                w.errors,
                w.p50_ms,
                w.p95_ms,
                w.active_users,
                w.instances,
                shares
            );
        }
        let _ = writeln!(
            s,
            "{:>6} {:>8} {:>8.1} {:>6} {:>8.1} {:>8.1} {:>6} {:>4}",
            "total",
            t.requests,
            t.rps,
            t.errors,
            t.p50_ms,
            t.p95_ms,
            t.peak_users,
            self.instances.len()
        );
        let _ = writeln!(
            s,
            "\nerror rate {}% · {} connections opened",
            t.error_rate_pct, t.connections
        );
        if !self.instances.is_empty() {
            let _ = writeln!(s, "\ninstances (first seen):");
            for i in &self.instances {
                let _ = writeln!(
                    s,
                    "  {:<24} {} ({} UTC)  {} requests, {}%",
                    i.name,
                    i.first_seen,
                    i.first_seen_at.format("%H:%M:%S"),
                    i.requests,
                    i.share
                );
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

/// Writes timeline.json and chart.svg into `dir`; returns their paths.
pub fn write_files(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let json = dir.join("timeline.json");
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)?;
    let svg = dir.join("chart.svg");
    chart(report, &svg)?;
    Ok(vec![json, svg])
}

/// A panel of the chart: its title, its points (seconds, value) and its colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Draws requests/s, p95 and instances over time, one panel each, as SVG.
pub fn chart(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            &format!("bookstore loadtest: {}", report.verdict.text),
            ("sans-serif", 14),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let panels = body.split_evenly((3, 1));
    let end = report
        .duration_s
        .max(report.windows.last().map(|w| w.end_s).unwrap_or(1.0));
    let mid = |w: &Window| (w.start_s + w.end_s) / 2.0;
    let series: [Series; 3] = [
        (
            "requests/s",
            report.windows.iter().map(|w| (mid(w), w.rps)).collect(),
            BLUE,
        ),
        (
            "p95 latency (ms)",
            report.windows.iter().map(|w| (mid(w), w.p95_ms)).collect(),
            RED,
        ),
        (
            "instances answering",
            report
                .windows
                .iter()
                .map(|w| (mid(w), w.instances as f64))
                .collect(),
            GREEN,
        ),
    ];
    for (area, (label, points, color)) in panels.iter().zip(series) {
        let top = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .caption(label, ("sans-serif", 14))
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..end, 0f64..top)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .x_labels(10)
            .y_labels(5)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Mark when each instance first answered.
        for i in &report.instances {
            chart
                .draw_series(LineSeries::new(
                    vec![(i.first_seen_s, 0.0), (i.first_seen_s, top)],
                    BLACK.mix(0.25),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

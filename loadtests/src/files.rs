//! `--report DIR`: report.html (ours, self-contained), timeline.json (everything, for
//! machines), chart.svg, and goose.html (goose's own report, which goose writes itself).

use std::path::{Path, PathBuf};

use crate::report::Report;

/// The name goose's own HTML report is written under.
pub const GOOSE_HTML: &str = "goose.html";

/// Writes the files into `dir` and returns their paths, report.html first.
pub fn write(report: &mut Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let html = dir.join("report.html");
    let json = dir.join("timeline.json");
    let svg = dir.join("chart.svg");
    let goose = dir.join(GOOSE_HTML);
    let goose_name = goose.exists().then_some(GOOSE_HTML);
    let chart = crate::charts::svg(report).map_err(|e| anyhow::anyhow!("chart: {e}"))?;
    std::fs::write(&svg, chart)?;
    std::fs::write(&html, crate::html::page(report, goose_name))?;
    let mut files = vec![html, json.clone(), svg];
    if goose_name.is_some() {
        files.push(goose);
    }
    report.files = files.clone();
    std::fs::write(&json, serde_json::to_vec_pretty(report)?)?;
    Ok(files)
}

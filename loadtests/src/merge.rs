//! `bookstore loadtest merge PATH...`: adds the shards' result files up window by window and
//! recomputes the timeline, the verdict, the gates and the exit status as one run would, with
//! the same report files. Shards of another run or configuration are refused, naming the
//! flag that differs; missing shards are named, and the rest is still reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::aggregate::Aggregate;
use crate::execute::{build_report, watch_of};
use crate::report::{EndedBy, Report};
use crate::result_file::{extract_marked, ShardResult, BEGIN};
use crate::{files, timeline, LoadtestError};

/// What `merge` put together.
#[derive(Debug, Clone, Serialize)]
pub struct ShardsMerged {
    /// The run id every shard carried.
    pub run_id: String,
    /// N of `--shard I/N`.
    pub count: usize,
    /// The shard indexes merged.
    pub merged: Vec<usize>,
    /// The shard indexes with no result.
    pub missing: Vec<usize>,
    /// Where each merged shard came from.
    pub sources: Vec<String>,
    /// The widest spread of the shards' clock offsets to the target, ms, when measured
    /// (`None` when their bounds overlap, i.e. the clocks agree within the `Date` header's
    /// one-second resolution).
    pub clock_spread_ms: Option<i64>,
}

/// A merged run: its report, and what makes it incomplete (non-zero exit).
pub struct Merged {
    /// The report, as one run would give it.
    pub report: Report,
    /// Missing shards and shards that ended early, one sentence each.
    pub problems: Vec<String>,
    /// Files skipped in directories, with why.
    pub skipped: Vec<String>,
}

/// One result with where it came from.
struct Found {
    source: String,
    result: ShardResult,
}

/// Reads the results in `path`: a JSON result file, or any text with marked results (a saved
/// `kubectl logs`).
fn read_results(path: &Path) -> Result<Vec<ShardResult>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains(BEGIN) {
        return extract_marked(&text);
    }
    ShardResult::from_json(&bytes).map(|r| vec![r])
}

/// Every result in `paths` (files, or directories of them: their files that hold no result
/// are skipped and listed).
fn gather(paths: &[PathBuf], skipped: &mut Vec<String>) -> Result<Vec<Found>, LoadtestError> {
    let bad = |m: String| LoadtestError::BadArgs(m);
    let mut found = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| bad(format!("cannot read the directory {}: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .collect();
            entries.sort();
            for f in entries {
                match read_results(&f) {
                    Ok(rs) if !rs.is_empty() => found.extend(rs.into_iter().map(|result| Found {
                        source: f.display().to_string(),
                        result,
                    })),
                    Ok(_) => skipped.push(format!("{}: no result in it", f.display())),
                    Err(e) => skipped.push(format!("{}: {e}", f.display())),
                }
            }
        } else {
            let rs = read_results(p).map_err(|e| bad(format!("{}: {e}", p.display())))?;
            if rs.is_empty() {
                return Err(bad(format!("{}: no result in it", p.display())));
            }
            found.extend(rs.into_iter().map(|result| Found {
                source: p.display().to_string(),
                result,
            }));
        }
    }
    if found.is_empty() {
        return Err(bad(format!(
            "no result files in {}; write them with `bookstore loadtest ... --shard I/N --result FILE` (or --result-stdout)",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(found)
}

/// Merges the results in `paths`; with `report_dir`, writes the report files there.
pub fn merge(paths: &[PathBuf], report_dir: Option<&Path>) -> Result<Merged, LoadtestError> {
    let bad = |m: String| LoadtestError::BadArgs(m);
    let mut skipped = Vec::new();
    let found = gather(paths, &mut skipped)?;
    let first = &found[0];
    let mut by_index: BTreeMap<usize, &Found> = BTreeMap::new();
    for f in &found {
        let (r, r0) = (&f.result, &first.result);
        if let Some((flag, a, b)) = r0.config.difference(&r.config) {
            return Err(bad(format!(
                "{} (shard {}) and {} (shard {}) are not shards of one run: {flag} differs ({a} against {b}); \
                 merge only the results of one run, made with the same flags and --start-at",
                first.source, r0.shard, f.source, r.shard
            )));
        }
        if r.run_id != r0.run_id || r.shard.count != r.config.shards {
            return Err(bad(format!(
                "{} (run {}) and {} (run {}) are not shards of one run",
                first.source, r0.run_id, f.source, r.run_id
            )));
        }
        match by_index.get(&r.shard.index) {
            Some(seen) if seen.result.aggregate == r.aggregate => {
                skipped.push(format!(
                    "{}: shard {} again (the same as {})",
                    f.source, r.shard, seen.source
                ));
            }
            Some(seen) => {
                return Err(bad(format!(
                    "{} and {} both hold shard {} with different data (a retried pod?); keep one of them",
                    seen.source, f.source, r.shard
                )));
            }
            None => {
                by_index.insert(r.shard.index, f);
            }
        }
    }
    let config = first.result.config.clone();
    let count = config.shards;
    let missing: Vec<usize> = (0..count).filter(|i| !by_index.contains_key(i)).collect();
    let mut agg = Aggregate::default();
    let mut ended_by = EndedBy::Plan;
    let mut problems = Vec::new();
    for f in by_index.values() {
        agg.merge(&f.result.aggregate)
            .map_err(|e| bad(format!("{}: {e}", f.source)))?;
        match f.result.ended_by {
            EndedBy::Plan => {}
            e => {
                problems.push(format!(
                    "shard {} ({}) did not run to the end of its plan ({})",
                    f.result.shard,
                    f.source,
                    if e == EndedBy::Interrupted {
                        "Ctrl-C"
                    } else {
                        "the safety timeout"
                    }
                ));
                if ended_by == EndedBy::Plan {
                    ended_by = e;
                }
            }
        }
    }
    if !missing.is_empty() {
        problems.insert(
            0,
            format!(
                "shard{} {} of {count} missing (no result for {}): the report covers shards {} only",
                if missing.len() == 1 { "" } else { "s" },
                list(&missing),
                if missing.len() == 1 { "it" } else { "them" },
                list(&by_index.keys().copied().collect::<Vec<_>>())
            ),
        );
    }
    let mut args = config
        .args()
        .map_err(|e| bad(format!("{}: its configuration: {e}", first.source)))?;
    args.report = report_dir.map(Path::to_path_buf);
    let watch = watch_of(&args);
    // The platform as the lowest shard that watched it saw it.
    let platform = by_index
        .values()
        .find_map(|f| f.result.platform.clone())
        .map(|mut v| {
            v.rebase(timeline::at(agg.started_ms));
            v
        });
    let mut report = build_report(&args, agg, platform, watch.as_ref(), ended_by);
    report.shards = Some(ShardsMerged {
        run_id: first.result.run_id.clone(),
        count,
        merged: by_index.keys().copied().collect(),
        missing,
        sources: by_index.values().map(|f| f.source.clone()).collect(),
        clock_spread_ms: clock_spread(by_index.values().map(|f| &f.result)),
    });
    if let Some(dir) = report_dir {
        let report_err = |e: String| LoadtestError::Report {
            path: dir.to_path_buf(),
            reason: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| report_err(e.to_string()))?;
        report.files = files::write(&mut report, dir).map_err(|e| report_err(format!("{e:#}")))?;
    }
    Ok(Merged {
        report,
        problems,
        skipped,
    })
}

/// How far apart the shards' clocks must at least be: the gap between their offset bounds.
fn clock_spread<'a>(results: impl Iterator<Item = &'a ShardResult>) -> Option<i64> {
    let checks: Vec<_> = results.filter_map(|r| r.clock).collect();
    let highest_min = checks.iter().map(|c| c.min_ms).max()?;
    let lowest_max = checks.iter().map(|c| c.max_ms).min()?;
    (highest_min > lowest_max).then_some(highest_min - lowest_max)
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary line about the shards.
pub fn shards_line(s: &ShardsMerged) -> String {
    let mut line = format!(
        "shards: {} of {} merged (run {})",
        s.merged.len(),
        s.count,
        s.run_id
    );
    if !s.missing.is_empty() {
        line.push_str(&format!(" · MISSING shard(s) {}", list(&s.missing)));
    }
    if let Some(ms) = s.clock_spread_ms {
        line.push_str(&format!(
            " · the shards' clocks differ by at least {ms} ms against the target's Date header: check NTP on the generators"
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result_file::ClockCheck;

    fn with_clock(min_ms: i64, max_ms: i64) -> ShardResult {
        let a = crate::LoadtestArgs::for_url("http://127.0.0.1:9");
        let agg = Aggregate::default();
        ShardResult::new(
            &a,
            &a,
            Some(ClockCheck { min_ms, max_ms }),
            EndedBy::Plan,
            agg,
            None,
        )
    }

    /// The platform's view (`--watch-*`) comes from the lowest shard that watched, rebased to
    /// the merged run's start, and joins the merged timeline.
    #[test]
    fn the_platform_view_of_the_lowest_shard_that_watched_is_kept() {
        use crate::platform::{Decision, PlatformView};
        let dir = tempfile::tempdir().unwrap();
        let mut full = crate::LoadtestArgs::for_url("http://127.0.0.1:9");
        full.users = 4;
        full.window = std::time::Duration::from_secs(1);
        full.watch_rehearsal = Some("http://127.0.0.1:9/decisions".into());
        let mut paths = Vec::new();
        for index in 0..2 {
            full.shard = Some(crate::shard::Shard { index, count: 2 });
            let mine = crate::shard::for_shard(&full).unwrap();
            let rec = crate::Recorder::new(std::time::Duration::from_secs(1));
            for i in 0..20 {
                rec.record(i % 2, std::time::Duration::from_millis(5), Some("a"), true);
            }
            let agg = rec.aggregate();
            let at = timeline::at(agg.started_ms + 500);
            let view = PlatformView {
                source: format!("watched by shard {index}"),
                polls: 3,
                decisions: vec![Decision {
                    at,
                    t_s: 99.0,
                    from: Some(1),
                    to: 2,
                    cause: "cpu above target".into(),
                    added: vec![],
                    removed: vec![],
                    key: "d1".into(),
                }],
                ..PlatformView::default()
            };
            let r = ShardResult::new(&full, &mine, None, EndedBy::Plan, agg, Some(view));
            let path = dir.path().join(format!("shard-{index}.json"));
            std::fs::write(&path, r.to_json()).unwrap();
            paths.push(path);
        }
        paths.reverse();
        let m = merge(&paths, None).unwrap();
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        let p = m.report.platform.as_ref().expect("a platform view");
        assert_eq!(p.source, "watched by shard 0");
        assert!(p.decisions[0].t_s < 5.0, "rebased: {}", p.decisions[0].t_s);
        assert!(m.report.platform_verdict.is_some());
        assert_eq!(m.report.totals.requests, 40);
    }

    #[test]
    fn shards_whose_clock_bounds_do_not_overlap_are_told_apart() {
        let agree = [with_clock(-40, 60), with_clock(-10, 900)];
        assert_eq!(clock_spread(agree.iter()), None);
        let apart = [
            with_clock(-40, 60),
            with_clock(1260, 1300),
            with_clock(0, 990),
        ];
        assert_eq!(clock_spread(apart.iter()), Some(1200));
        let line = shards_line(&ShardsMerged {
            run_id: "x".into(),
            count: 3,
            merged: vec![0, 2],
            missing: vec![1],
            sources: vec![],
            clock_spread_ms: Some(1200),
        });
        assert!(line.contains("MISSING shard(s) 1"), "{line}");
        assert!(line.contains("differ by at least 1200 ms"), "{line}");
    }
}

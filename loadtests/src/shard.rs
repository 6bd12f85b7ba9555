//! Shards: `--shard I/N` runs the I-th of N shares of the load, so that N generators (local
//! processes, or the pods of a Kubernetes Indexed Job) together make the whole load, and
//! `--start-at TIME` starts them together. Their windows line up because every window starts
//! at a whole multiple of `--window` since the Unix epoch (see [`crate::record`]).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::args::LoadtestArgs;
use crate::shape::{Stage, Stages};
use crate::LoadtestError;

/// One share of a run: `index` of `count`, 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0 <= index < count.
    pub index: usize,
    /// How many shards make the run.
    pub count: usize,
}

/// Most shards one run takes.
pub const MAX_SHARDS: usize = 10_000;

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Parses `--shard I/N` (0-based I; a Job passes `$(JOB_COMPLETION_INDEX)/N`).
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let hint = "write I/N with 0 <= I < N, e.g. 0/3, 1/3 and 2/3 for three shards (a Kubernetes Indexed Job: $(JOB_COMPLETION_INDEX)/3)";
    let Some((i, n)) = s.trim().split_once('/') else {
        return Err(format!("`{s}` is not I/N; {hint}"));
    };
    let index: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: `{i}` is not a shard index; {hint}"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: `{n}` is not a number of shards; {hint}"))?;
    if count == 0 {
        return Err(format!("`{s}`: a run has at least 1 shard; {hint}"));
    }
    if count > MAX_SHARDS {
        return Err(format!("`{s}`: at most {MAX_SHARDS} shards"));
    }
    if index >= count {
        return Err(format!(
            "`{s}`: shard indexes are 0-based, so {count} shards are 0 to {}; {hint}",
            count - 1
        ));
    }
    Ok(Shard { index, count })
}

/// Parses `--start-at` (RFC 3339, e.g. 2026-12-02T16:00:00Z).
pub fn parse_start_at(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "`{s}` is not an RFC 3339 time ({e}); write e.g. 2026-12-02T16:00:00Z \
                 (`date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ` gives one two minutes ahead)"
            )
        })
}

impl Shard {
    /// This shard's share of `total`: `total / count`, plus one for the lowest
    /// `total % count` indexes, so that the shares add up to `total`.
    pub fn share(&self, total: usize) -> usize {
        total / self.count + usize::from(self.index < total % self.count)
    }

    /// This shard's share of every stage (the shares of each stage add up to it).
    pub fn stages(&self, plan: &Stages) -> Stages {
        Stages(
            plan.0
                .iter()
                .map(|st| Stage {
                    users: self.share(st.users),
                    duration: st.duration,
                })
                .collect(),
        )
    }
}

/// The flags this shard runs with: its share of the users (of every stage) and of
/// `--throttle`. Refuses a shard that would get no user or no rate.
pub fn for_shard(args: &LoadtestArgs) -> Result<LoadtestArgs, LoadtestError> {
    let Some(shard) = args.shard else {
        return Ok(args.clone());
    };
    let mut mine = args.clone();
    let plan = args.plan();
    let stages = shard.stages(&plan);
    if stages.peak_users() == 0 {
        return Err(LoadtestError::BadArgs(format!(
            "--shard {shard}: the plan's {} users at most, split into {} shards, leave shard {} none; \
             give at least {} users (or fewer shards)",
            plan.peak_users(),
            shard.count,
            shard.index,
            shard.count
        )));
    }
    mine.stages = Some(stages);
    if let Some(rate) = args.throttle {
        let share = shard.share(rate);
        if share == 0 {
            return Err(LoadtestError::BadArgs(format!(
                "--shard {shard}: --throttle {rate} split into {} shards leaves shard {} no requests per second; \
                 give at least {} (or fewer shards)",
                shard.count, shard.index, shard.count
            )));
        }
        mine.throttle = Some(share);
    }
    Ok(mine)
}

/// Checks `--start-at` against now: a time more than a window in the past is refused.
pub fn check_start_at(args: &LoadtestArgs, now: DateTime<Utc>) -> Result<(), LoadtestError> {
    let Some(at) = args.start_at else {
        return Ok(());
    };
    let late = (now - at).to_std().unwrap_or(Duration::ZERO);
    if late > args.window {
        return Err(LoadtestError::BadArgs(format!(
            "--start-at {} is {} s in the past (more than one --window of {} ms): the other shards \
             have started without this one; give a time ahead, e.g. `date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ`",
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            late.as_secs(),
            args.window.as_millis()
        )));
    }
    Ok(())
}

/// Waits until `--start-at` (at once when it has passed, by less than a window).
pub async fn wait_for_start(args: &LoadtestArgs) {
    let Some(at) = args.start_at else {
        return;
    };
    loop {
        let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return;
        }
        // Re-read the wall clock now and then: NTP may step it while we wait.
        tokio::time::sleep(left.min(Duration::from_secs(5))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::parse_stages;

    #[test]
    fn shards_parse_and_bad_ones_say_why() {
        assert_eq!(parse_shard("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(parse_shard("0/1"), Ok(Shard { index: 0, count: 1 }));
        for (bad, says) in [
            ("3/3", "0 to 2"),
            ("1/0", "at least 1 shard"),
            ("x/2", "not a shard index"),
            ("1/y", "not a number of shards"),
            ("-1/2", "not a shard index"),
            ("2", "not I/N"),
        ] {
            let e = parse_shard(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn shares_add_up_with_the_remainder_on_the_lowest_indexes() {
        for total in [0usize, 1, 2, 7, 10, 100, 101] {
            for count in 1..=7 {
                let shares: Vec<usize> = (0..count)
                    .map(|index| Shard { index, count }.share(total))
                    .collect();
                assert_eq!(shares.iter().sum::<usize>(), total, "{total}/{count}");
                assert!(shares.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
            }
        }
        assert_eq!(Shard { index: 0, count: 3 }.share(10), 4);
        assert_eq!(Shard { index: 2, count: 3 }.share(10), 3);
        let plan = parse_stages("10:30s,10:60s,4:0s,4:30s").unwrap();
        let parts: Vec<Stages> = (0..3)
            .map(|index| Shard { index, count: 3 }.stages(&plan))
            .collect();
        assert_eq!(parts[0].to_string(), "4:30s,4:60s,2:0s,2:30s");
        assert_eq!(parts[2].to_string(), "3:30s,3:60s,1:0s,1:30s");
        for t in [0u64, 15, 45, 91, 100] {
            let t = Duration::from_secs(t);
            let sum: f64 = parts.iter().map(|p| p.users_at(t)).sum();
            assert!((sum - plan.users_at(t)).abs() < 1e-9, "{t:?}");
        }
    }

    #[test]
    fn a_shard_gets_its_share_of_users_and_rate_or_is_refused() {
        let mut a = LoadtestArgs::for_url("http://127.0.0.1:1");
        a.users = 7;
        a.throttle = Some(10);
        a.shard = Some(Shard { index: 1, count: 3 });
        let mine = for_shard(&a).unwrap();
        assert_eq!(mine.plan().peak_users(), 2);
        assert_eq!(mine.throttle, Some(3));
        assert_eq!(mine.plan().total(), a.plan().total());
        a.users = 2;
        a.shard = Some(Shard { index: 2, count: 3 });
        let e = for_shard(&a).unwrap_err().to_string();
        assert!(e.contains("leave shard 2 none"), "{e}");
        a.users = 3;
        a.throttle = Some(2);
        let e = for_shard(&a).unwrap_err().to_string();
        assert!(e.contains("--throttle 2"), "{e}");
    }

    #[test]
    fn a_start_more_than_a_window_ago_is_refused() {
        let now = Utc::now();
        let mut a = LoadtestArgs::for_url("http://127.0.0.1:1");
        a.start_at = Some(now - chrono::Duration::seconds(5));
        assert!(check_start_at(&a, now).is_ok(), "within the 10 s window");
        a.start_at = Some(now - chrono::Duration::seconds(11));
        let e = check_start_at(&a, now).unwrap_err().to_string();
        assert!(e.contains("in the past"), "{e}");
        a.start_at = Some(now + chrono::Duration::seconds(60));
        assert!(check_start_at(&a, now).is_ok());
        assert!(parse_start_at("2026-12-02T16:00:00Z").is_ok());
        assert!(parse_start_at("2026-12-02T17:00:00+01:00").is_ok());
        assert!(parse_start_at("tomorrow").unwrap_err().contains("RFC 3339"));
    }
}

//! The load's shape: stages of users over time (`--stages`, or `--users`/`--ramp`/`--duration`)
//! and each user's think time (`--think`). The stages become goose's own test plan; the same
//! plan tells the timeline which windows were steady (users held) and which were ramps.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::args::parse_duration;

/// One stage: from the users of the stage before (0 at the start), move linearly to `users`
/// over `duration`; a zero duration is a step, the same users again a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// Users at the end of the stage.
    pub users: usize,
    /// How long the stage lasts.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The stages of a run, as `--stages` gives them (`USERS:DURATION,USERS:DURATION,...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Stages(pub Vec<Stage>);

/// Most stages one run takes.
const MAX_STAGES: usize = 1000;
/// Most users one stage asks for.
const MAX_USERS: usize = 1_000_000;

/// Parses `--stages`: `USERS:DURATION` pairs separated by commas, durations as `30s`, `2m`,
/// `1m30s`, `0s` (whole seconds: goose plans in seconds).
pub fn parse_stages(s: &str) -> Result<Stages, String> {
    let hint = "write USERS:DURATION pairs separated by commas, e.g. \"2:0s,2:40s,12:0s,12:60s,2:0s,2:60s\"";
    if s.trim().is_empty() {
        return Err(format!("no stages given; {hint}"));
    }
    let mut out = Vec::new();
    for (i, part) in s.split(',').enumerate() {
        let n = i + 1;
        let part = part.trim();
        let Some((users, time)) = part.split_once(':') else {
            return Err(format!("stage {n} `{part}` has no `:`; {hint}"));
        };
        let users: usize = users.trim().parse().map_err(|_| {
            format!(
                "stage {n} `{part}`: `{}` is not a number of users; {hint}",
                users.trim()
            )
        })?;
        if users > MAX_USERS {
            return Err(format!(
                "stage {n} `{part}`: {users} users is more than {MAX_USERS}"
            ));
        }
        let duration = parse_duration(time).map_err(|e| format!("stage {n} `{part}`: {e}"))?;
        if duration.subsec_nanos() != 0 {
            return Err(format!(
                "stage {n} `{part}`: stages last whole seconds (goose plans in seconds), e.g. 0s, 1s or 90s"
            ));
        }
        out.push(Stage { users, duration });
    }
    if out.len() > MAX_STAGES {
        return Err(format!("{} stages; at most {MAX_STAGES}", out.len()));
    }
    if out.iter().all(|st| st.users == 0) {
        return Err(format!(
            "every stage has 0 users: nobody would shop; {hint}"
        ));
    }
    if out.iter().map(|st| st.duration).sum::<Duration>() < Duration::from_secs(1) {
        return Err("the stages last 0 s in total; give one at least a second".into());
    }
    Ok(Stages(out))
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, st) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{}s", st.users, st.duration.as_secs())?;
        }
        Ok(())
    }
}

impl Stages {
    /// The simple form: ramp to `users` over `ramp`, hold them for `hold`.
    pub fn ramp_and_hold(users: usize, ramp: Duration, hold: Duration) -> Stages {
        Stages(vec![
            Stage {
                users,
                duration: Duration::from_secs(ramp.as_secs()),
            },
            Stage {
                users,
                duration: Duration::from_secs(hold.as_secs().max(1)),
            },
        ])
    }

    /// How long the plan lasts.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.duration).sum()
    }

    /// The most users at once.
    pub fn peak_users(&self) -> usize {
        self.0.iter().map(|s| s.users).max().unwrap_or(0)
    }

    /// Users the plan asks for `t` after the start (linear within a stage).
    pub fn users_at(&self, t: Duration) -> f64 {
        let mut from = 0.0;
        let mut start = Duration::ZERO;
        for st in &self.0 {
            let end = start + st.duration;
            let to = st.users as f64;
            if t < end {
                let span = st.duration.as_secs_f64();
                if span == 0.0 {
                    return to;
                }
                let f = (t - start).as_secs_f64() / span;
                return from + (to - from) * f;
            }
            from = to;
            start = end;
        }
        if t <= start {
            from
        } else {
            0.0
        }
    }

    /// goose's `--test-plan` for these stages: `users,seconds;...`, ending with a stop.
    pub fn goose_plan(&self) -> String {
        let mut steps: Vec<String> = self
            .0
            .iter()
            .map(|s| format!("{},{}", s.users, s.duration.as_secs()))
            .collect();
        if self.0.last().is_some_and(|s| s.users > 0) {
            // Stop the users when the last stage ends (goose would hold them forever).
            steps.push("0,0".into());
        }
        steps.join(";")
    }

    /// The holds: stretches where the users stay the same for a while, in order.
    pub fn holds(&self) -> Vec<Hold> {
        let mut out = Vec::new();
        let mut users = 0usize;
        let mut start = Duration::ZERO;
        for st in &self.0 {
            let end = start + st.duration;
            if st.users == users && st.users > 0 && !st.duration.is_zero() {
                match out.last_mut() {
                    Some(Hold {
                        end_s, users: u, ..
                    }) if *u == st.users && (*end_s - start.as_secs_f64()).abs() < 1e-9 => {
                        *end_s = end.as_secs_f64();
                    }
                    _ => out.push(Hold {
                        users: st.users,
                        start_s: start.as_secs_f64(),
                        end_s: end.as_secs_f64(),
                    }),
                }
            }
            users = st.users;
            start = end;
        }
        out
    }

    /// When the load first reaches its first hold (or the end of the first stage): the
    /// initial ramp-up, during which the first instances are still being found.
    pub fn initial_ramp(&self) -> Duration {
        self.0.first().map(|s| s.duration).unwrap_or_default()
    }
}

/// A stretch of the plan that holds the same users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Hold {
    /// Users held.
    pub users: usize,
    /// Start, seconds after the run started.
    pub start_s: f64,
    /// End, seconds after the run started.
    pub end_s: f64,
}

/// Each user's pause between the pages it requests: fixed, or uniformly random in a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Think {
    /// Shortest pause.
    #[serde(serialize_with = "secs")]
    pub min: Duration,
    /// Longest pause.
    #[serde(serialize_with = "secs")]
    pub max: Duration,
}

/// Parses `--think`: `2s` (fixed) or `1s..3s` (uniform between the two).
pub fn parse_think(s: &str) -> Result<Think, String> {
    let s = s.trim();
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let min = parse_duration(a).map_err(|e| format!("{e}; think time is e.g. 2s or 1s..3s"))?;
    let max = parse_duration(b).map_err(|e| format!("{e}; think time is e.g. 2s or 1s..3s"))?;
    if min > max {
        return Err(format!(
            "`{s}`: the shortest pause comes first, e.g. 1s..3s"
        ));
    }
    if max > Duration::from_secs(3600) {
        return Err(format!(
            "`{s}`: a pause longer than an hour is not a shopper"
        ));
    }
    Ok(Think { min, max })
}

impl Think {
    /// No pause.
    pub fn is_none(&self) -> bool {
        self.max.is_zero()
    }

    /// A pause drawn with `random` (any u64).
    pub fn pick(&self, random: u64) -> Duration {
        let span = self.max.saturating_sub(self.min).as_millis() as u64;
        if span == 0 {
            return self.min;
        }
        self.min + Duration::from_millis(random % (span + 1))
    }
}

impl fmt::Display for Think {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: Duration| {
            if d.subsec_millis() == 0 {
                format!("{}s", d.as_secs())
            } else {
                format!("{}ms", d.as_millis())
            }
        };
        if self.min == self.max {
            write!(f, "{}", d(self.min))
        } else {
            write!(f, "{}..{}", d(self.min), d(self.max))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_make_a_goose_plan() {
        let s = parse_stages("2:0s,2:40s,12:0s,12:60s,2:0s,2:60s").unwrap();
        assert_eq!(s.0.len(), 6);
        assert_eq!(s.total(), Duration::from_secs(160));
        assert_eq!(s.peak_users(), 12);
        assert_eq!(s.goose_plan(), "2,0;2,40;12,0;12,60;2,0;2,60;0,0");
        assert_eq!(s.to_string(), "2:0s,2:40s,12:0s,12:60s,2:0s,2:60s");
        let holds = s.holds();
        assert_eq!(
            holds,
            vec![
                Hold {
                    users: 2,
                    start_s: 0.0,
                    end_s: 40.0
                },
                Hold {
                    users: 12,
                    start_s: 40.0,
                    end_s: 100.0
                },
                Hold {
                    users: 2,
                    start_s: 100.0,
                    end_s: 160.0
                },
            ]
        );
        assert_eq!(s.users_at(Duration::from_secs(10)), 2.0);
        assert_eq!(s.users_at(Duration::from_secs(50)), 12.0);
        assert_eq!(s.users_at(Duration::from_secs(200)), 0.0);
        // A ramp down to zero ends the plan by itself.
        let r = parse_stages("10:1m, 60:3m ,5:2m,0:30s").unwrap();
        assert_eq!(r.goose_plan(), "10,60;60,180;5,120;0,30");
        assert_eq!(r.users_at(Duration::from_secs(30)), 5.0);
        assert_eq!(r.holds(), vec![]);
        let simple = Stages::ramp_and_hold(10, Duration::from_secs(30), Duration::from_secs(60));
        assert_eq!(simple.goose_plan(), "10,30;10,60;0,0");
        assert_eq!(simple.holds().len(), 1);
        assert_eq!(simple.holds()[0].start_s, 30.0);
    }

    #[test]
    fn bad_stages_say_what_is_wrong() {
        for (bad, says) in [
            ("", "no stages"),
            ("10", "has no `:`"),
            ("x:10s", "not a number of users"),
            ("10:soon", "not a duration"),
            ("10:500ms", "whole seconds"),
            ("0:10s,0:5s", "0 users"),
            ("5:0s", "0 s in total"),
            ("10:1m,,5:1m", "stage 2"),
        ] {
            let e = parse_stages(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn think_parses_fixed_or_a_range() {
        let t = parse_think("1s..3s").unwrap();
        assert_eq!(
            (t.min, t.max),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(t.to_string(), "1s..3s");
        for r in [0u64, 7, 1999, 2000, 123_456_789] {
            let p = t.pick(r);
            assert!(p >= t.min && p <= t.max, "{p:?}");
        }
        let fixed = parse_think("2s").unwrap();
        assert_eq!(fixed.pick(99), Duration::from_secs(2));
        assert_eq!(parse_think("250ms").unwrap().to_string(), "250ms");
        assert!(parse_think("0s").unwrap().is_none());
        assert!(parse_think("3s..1s")
            .unwrap_err()
            .contains("shortest pause comes first"));
        assert!(parse_think("soon").is_err());
        assert!(parse_think("1s..").is_err());
    }
}

//! The `loadtest:` section: a Kubernetes Indexed Job of `bookstore loadtest` generators
//! (`gen loadtest` renders it into `out/loadtest/`), for more load than one machine makes.

use serde::{Deserialize, Serialize};

/// The load-test Job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Loadtest {
    /// Base URL the generators load, http:// or https://; null: `https://` + `domain.name`.
    pub url: Option<String>,
    /// Generator pods (the Job's completions and parallelism); each runs one share of the users.
    pub shards: u32,
    /// Users of all shards together, when `stages` is null.
    pub users: u32,
    /// Time to start all users, such as `30s` (with `users`).
    pub ramp: String,
    /// How long all users keep running after the ramp, such as `5m` (with `users`).
    pub duration: String,
    /// The load's shape instead of users/ramp/duration: `USERS:DURATION` stages, users of all
    /// shards together, e.g. `60:1m,60:5m,300:2m,300:10m,60:2m`.
    pub stages: Option<String>,
    /// Each user's pause between pages: `2s`, or a random range such as `1s..3s`; null: none.
    pub think: Option<String>,
    /// Who the users are.
    pub scenario: LoadtestScenario,
    /// Let shoppers and sellers write (accounts, orders, books) to a shop that is not loopback.
    pub yes_write: bool,
    /// Pass/fail conditions, judged over the merged shards.
    pub gates: LoadtestGates,
    /// Namespace the Job runs in (created by its kustomization).
    pub namespace: String,
    /// The generators' image; null: the CLI image beside `app.image`, tagged `app.tag`
    /// (`bookstore image build --cli`).
    pub image: Option<String>,
    /// Each generator pod's resources.
    pub resources: LoadtestResources,
}

impl Default for Loadtest {
    fn default() -> Self {
        Self {
            url: None,
            shards: 3,
            users: 150,
            ramp: "1m".into(),
            duration: "10m".into(),
            stages: None,
            think: Some("1s..3s".into()),
            scenario: LoadtestScenario::Browse,
            yes_write: false,
            gates: LoadtestGates::default(),
            namespace: "bookstore-loadtest".into(),
            image: None,
            resources: LoadtestResources::default(),
        }
    }
}

/// `--scenario` of `bookstore loadtest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadtestScenario {
    /// Browsers only (read-only).
    Browse,
    /// Shoppers only (register, buy).
    Shop,
    /// Sellers only (list books with covers).
    Sell,
    /// Browsers, shoppers and sellers 3:2:1.
    Mix,
}

impl LoadtestScenario {
    /// The name `--scenario` takes.
    pub fn name(self) -> &'static str {
        match self {
            LoadtestScenario::Browse => "browse",
            LoadtestScenario::Shop => "shop",
            LoadtestScenario::Sell => "sell",
            LoadtestScenario::Mix => "mix",
        }
    }
}

/// The gates of `bookstore loadtest` (exit 3 when one fails).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LoadtestGates {
    /// Fail when a steady stage's p95 latency is above this many milliseconds.
    pub max_p95_ms: Option<f64>,
    /// Fail when more than this percentage of a steady stage's requests failed.
    pub max_error_rate_percent: Option<f64>,
    /// Judge the two above over the whole run, ramps included.
    pub whole_run: bool,
    /// Fail unless at least this many instances served at the same time.
    pub expect_instances: Option<u32>,
    /// Fail unless more instances served at once than at the start.
    pub expect_scale_out: bool,
    /// Fail unless serving capacity went back to this many instances or fewer after its peak.
    pub expect_scale_in: Option<u32>,
}

/// A generator pod's resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadtestResources {
    /// CPU request and limit (equal: a generator that is throttled or starved measures itself).
    pub cpu: String,
    /// Memory request and limit.
    pub memory: String,
}

impl Default for LoadtestResources {
    fn default() -> Self {
        Self {
            cpu: "1".into(),
            memory: "512Mi".into(),
        }
    }
}

impl Loadtest {
    /// The URL the generators load: `url`, else `https://` + the shop's domain.
    pub fn target_url(&self, domain: &str) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| format!("https://{domain}"))
    }

    /// How long the planned load lasts, in seconds (`stages`, else `ramp` + `duration`, as
    /// `bookstore loadtest` plans it); `None` when a value does not parse.
    pub fn planned_seconds(&self) -> Option<u64> {
        match &self.stages {
            Some(stages) => parse_stages(stages).ok().map(|p| p.seconds),
            None => {
                let ramp = parse_millis(&self.ramp).ok()? / 1000;
                let hold = (parse_millis(&self.duration).ok()? / 1000).max(1);
                Some(ramp + hold)
            }
        }
    }
}

/// A stage plan's peak users and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The most users any stage reaches.
    pub peak_users: u64,
    /// Total length, in seconds.
    pub seconds: u64,
}

/// Milliseconds in `90`, `90s`, `500ms`, `2m`, `1m30s`, `1h`: the durations `bookstore
/// loadtest` takes.
pub fn parse_millis(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration; use e.g. 30s, 500ms, 2m, 1m30s or 1h");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return n.checked_mul(1000).ok_or_else(bad);
    }
    let (mut total, mut rest) = (0u64, s);
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Parses `USERS:DURATION,...` as `bookstore loadtest --stages` does.
pub fn parse_stages(s: &str) -> Result<Plan, String> {
    let hint = "write USERS:DURATION pairs separated by commas, e.g. `60:1m,60:5m,300:2m,300:10m`";
    if s.trim().is_empty() {
        return Err(format!("no stages given; {hint}"));
    }
    let (mut peak, mut millis, mut count) = (0u64, 0u64, 0usize);
    for (i, part) in s.split(',').enumerate() {
        let (n, part) = (i + 1, part.trim());
        count = n;
        let Some((users, time)) = part.split_once(':') else {
            return Err(format!("stage {n} `{part}` has no `:`; {hint}"));
        };
        let users: u64 = users
            .trim()
            .parse()
            .ok()
            .filter(|u| *u <= 1_000_000)
            .ok_or_else(|| {
                format!(
                    "stage {n} `{part}`: `{}` is not a number of users up to 1000000; {hint}",
                    users.trim()
                )
            })?;
        let ms = parse_millis(time).map_err(|e| format!("stage {n} `{part}`: {e}"))?;
        if ms % 1000 != 0 {
            return Err(format!(
                "stage {n} `{part}`: stages last whole seconds, e.g. 0s, 1s or 90s"
            ));
        }
        peak = peak.max(users);
        millis = millis.saturating_add(ms);
    }
    if count > 1000 {
        return Err(format!("{count} stages; at most 1000"));
    }
    if peak == 0 {
        return Err(format!(
            "every stage has 0 users: nobody would shop; {hint}"
        ));
    }
    if millis < 1000 {
        return Err("the stages last 0 s in total; give one at least a second".into());
    }
    Ok(Plan {
        peak_users: peak,
        seconds: millis / 1000,
    })
}

/// Checks a think time, `2s` or `1s..3s`, as `bookstore loadtest --think` does.
pub fn parse_think(s: &str) -> Result<(), String> {
    let s = s.trim();
    let (a, b) = s.split_once("..").unwrap_or((s, s));
    let hint = |e: String| format!("{e}; think time is e.g. 2s or 1s..3s");
    let (min, max) = (
        parse_millis(a).map_err(hint)?,
        parse_millis(b).map_err(hint)?,
    );
    if min > max {
        return Err(format!(
            "`{s}`: the shortest pause comes first, e.g. 1s..3s"
        ));
    }
    if max > 3_600_000 {
        return Err(format!(
            "`{s}`: a pause longer than an hour is not a shopper"
        ));
    }
    Ok(())
}

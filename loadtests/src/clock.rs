//! The clock check a shard records. Windows are cut on the generator's own clock (NTP keeps
//! hosts and cluster nodes within milliseconds), so shards' windows line up as well as their
//! clocks agree. The target's `Date` header (whole seconds, RFC 9110) is a common reference:
//! each response bounds the offset of the target's clock from this host's, and responses on
//! both sides of the target's second boundary narrow the bounds to about the time between them.

use chrono::DateTime;
use serde::{Deserialize, Serialize};

/// `target - host` lies in `[min_ms, max_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockCheck {
    /// Lowest possible offset of the target's clock from this host's, ms.
    pub min_ms: i64,
    /// Highest possible offset, ms.
    pub max_ms: i64,
}

/// Requests made to narrow the check (one every [`SPACING_MS`], 1.2 s: a second boundary is
/// crossed on the way).
const SAMPLES: usize = 12;
/// Time between them.
const SPACING_MS: u64 = 100;
/// Narrow enough to stop early.
const GOOD_ENOUGH_MS: i64 = 150;

impl ClockCheck {
    /// From a `Date` header read between `sent_ms` and `received_ms` (host clock).
    pub fn from_date(date: &str, sent_ms: i64, received_ms: i64) -> Option<ClockCheck> {
        let d = DateTime::parse_from_rfc2822(date).ok()?.timestamp_millis();
        // The server stamped some instant in [sent, received], truncated to its second.
        Some(ClockCheck {
            min_ms: d - received_ms,
            max_ms: d + 999 - sent_ms,
        })
    }

    /// Both bounds at once: the narrower check, or `None` when they contradict each other
    /// (several instances behind a balancer whose clocks disagree, say).
    pub fn and(self, o: ClockCheck) -> Option<ClockCheck> {
        let c = ClockCheck {
            min_ms: self.min_ms.max(o.min_ms),
            max_ms: self.max_ms.min(o.max_ms),
        };
        (c.min_ms <= c.max_ms).then_some(c)
    }

    /// How wide the bounds are, ms.
    pub fn width_ms(&self) -> i64 {
        self.max_ms - self.min_ms
    }
}

/// One `Date` reading of `url`.
async fn read(client: &reqwest::Client, url: &str) -> Option<ClockCheck> {
    let sent = chrono::Utc::now().timestamp_millis();
    let resp = client.get(url).send().await.ok()?;
    let received = chrono::Utc::now().timestamp_millis();
    let date = resp.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    ClockCheck::from_date(date, sent, received)
}

/// Narrows `first` with up to [`SAMPLES`] more readings of `url`; contradicting readings
/// are left out.
pub async fn refine(client: &reqwest::Client, url: &str, first: ClockCheck) -> ClockCheck {
    let mut best = first;
    for _ in 0..SAMPLES {
        if best.width_ms() <= GOOD_ENOUGH_MS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(SPACING_MS)).await;
        if let Some(c) = read(client, url).await {
            if let Some(both) = best.and(c) {
                best = both;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_header_bounds_the_clock_offset() {
        // 2026-12-02T16:00:00Z is 1796227200 s since the epoch.
        let c = ClockCheck::from_date(
            "Wed, 02 Dec 2026 16:00:00 GMT",
            1_796_227_199_900,
            1_796_227_200_100,
        )
        .unwrap();
        assert_eq!((c.min_ms, c.max_ms), (-100, 1099));
        assert!(ClockCheck::from_date("yesterday", 0, 1).is_none());
    }

    #[test]
    fn readings_across_a_second_boundary_narrow_the_offset() {
        // The target runs 300 ms ahead of this host; readings every 100 ms, 10 ms round trips.
        let target_ahead = 300;
        let readings: Vec<ClockCheck> = (0..12)
            .map(|i| {
                let sent = 1_796_227_199_000 + i * 100;
                let stamped = sent + 5 + target_ahead;
                let second = stamped / 1000;
                let date = DateTime::from_timestamp(second, 0)
                    .unwrap()
                    .to_rfc2822()
                    .replace("+0000", "GMT");
                ClockCheck::from_date(&date, sent, sent + 10).unwrap()
            })
            .collect();
        let first = readings[0];
        assert!(first.width_ms() > 900);
        let best = readings[1..]
            .iter()
            .fold(first, |b, c| b.and(*c).expect("consistent"));
        assert!(
            best.min_ms <= target_ahead && target_ahead <= best.max_ms,
            "{best:?}"
        );
        assert!(best.width_ms() <= 110, "{best:?}");
        // A reading from a clock a second off contradicts them and is refused.
        let off = ClockCheck {
            min_ms: best.max_ms + 500,
            max_ms: best.max_ms + 1500,
        };
        assert!(best.and(off).is_none());
    }
}

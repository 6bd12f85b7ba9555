//! Platform time: the rehearsal may run the platform's clock faster than the wall clock
//! (`--time-scale N`: N platform seconds per real second), so that a 15-minute alarm or a
//! 5-minute stabilisation window fits a test. Every platform period, window, warm-up, delay and
//! grace period goes through [`TimeScale::real`]; the load and the CPU work stay real.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Platform seconds per real second (1 = real time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeScale(f64);

impl TimeScale {
    /// Real time.
    pub const REAL: TimeScale = TimeScale(1.0);

    /// A scale of `factor` platform seconds per real second; refuses zero, negative, NaN and
    /// factors above 3600 (one platform hour per real second).
    pub fn new(factor: f64) -> Result<TimeScale, String> {
        if !factor.is_finite() || factor <= 0.0 {
            return Err(format!(
                "{factor} is not a time scale: give platform seconds per real second, e.g. 12 (one platform minute = 5 s)"
            ));
        }
        if factor > 3600.0 {
            return Err(format!(
                "time scale {factor} is above 3600 (one platform hour per real second): periods would be shorter than a health check"
            ));
        }
        Ok(TimeScale(factor))
    }

    /// The factor.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// The real duration of a platform duration.
    pub fn real(self, platform: Duration) -> Duration {
        platform.div_f64(self.0)
    }

    /// The real duration of `secs` platform seconds.
    pub fn real_secs(self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs / self.0).max(0.0))
    }

    /// The platform duration of a real duration.
    pub fn platform(self, real: Duration) -> Duration {
        real.mul_f64(self.0)
    }

    /// `"300 s"` when real, `"300 s (25 s real)"` when compressed.
    pub fn describe(self, platform_secs: f64) -> String {
        if self.0 == 1.0 {
            format!("{} s", trim(platform_secs))
        } else {
            format!(
                "{} s ({} s real)",
                trim(platform_secs),
                trim(platform_secs / self.0)
            )
        }
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

impl std::str::FromStr for TimeScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let f: f64 = s.trim().parse().map_err(|_| {
            format!("{s:?} is not a number; give platform seconds per real second, e.g. 12")
        })?;
        TimeScale::new(f)
    }
}

/// A number without a needless `.0` (and at most three decimals).
/// `x` with at most three decimals and no trailing zeros.
pub(crate) fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The rehearsal's clock: wall-clock time for the log, platform seconds since the start for
/// the algorithms.
#[derive(Debug, Clone, Copy)]
pub struct PlatformClock {
    start: Instant,
    scale: TimeScale,
}

impl PlatformClock {
    /// A clock starting now.
    pub fn start(scale: TimeScale) -> PlatformClock {
        PlatformClock {
            start: Instant::now(),
            scale,
        }
    }

    /// The time scale.
    pub fn scale(&self) -> TimeScale {
        self.scale
    }

    /// Platform seconds since the start.
    pub fn platform_seconds(&self) -> f64 {
        self.at(Instant::now())
    }

    /// Platform seconds from the start to `t`.
    pub fn at(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * self.scale.0
    }

    /// The real instant `platform_secs` after the start.
    pub fn instant_of(&self, platform_secs: f64) -> Instant {
        self.start + self.scale.real_secs(platform_secs)
    }
}

/// `SystemTime` as RFC 3339 UTC with milliseconds: `2025-06-01T12:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Now, as [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_platform_durations_to_real_ones() {
        let s: TimeScale = "12".parse().unwrap();
        assert_eq!(s.real(Duration::from_secs(60)), Duration::from_secs(5));
        assert_eq!(s.platform(Duration::from_secs(5)), Duration::from_secs(60));
        assert_eq!(s.describe(300.0), "300 s (25 s real)");
        assert_eq!(TimeScale::REAL.describe(15.0), "15 s");
        for bad in ["0", "-3", "abc", "NaN", "inf", "100000"] {
            assert!(bad.parse::<TimeScale>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn platform_clock_counts_scaled_seconds() {
        let c = PlatformClock::start(TimeScale::new(10.0).unwrap());
        let later = c.instant_of(50.0);
        assert!((c.at(later) - 50.0).abs() < 1e-6);
    }

    #[test]
    fn formats_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_007); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.007Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // last second of 2024
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000Z");
    }
}

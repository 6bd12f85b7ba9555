//! metrics-server's CPU usage window for one pod. On a real cluster each sample is the pod's CPU
//! time over the ~15 s between two scrapes. Under `--time-scale` that window is 15 platform
//! seconds of *real* load (0.75 s at 20x), while each request's CPU is not scaled: one log-in's
//! password hash in one short window reads as a burst 20 times larger than a real scrape would
//! see it, enough to scale out under one shopper. So the window reaches back at least
//! [`MIN_REAL_WINDOW`] of real time (the previous sync when the sync period is longer).

use crate::rehearse::autoscale::clock::trim;
use crate::rehearse::autoscale::TimeScale;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shortest real time a CPU sample averages over.
pub(super) const MIN_REAL_WINDOW: Duration = Duration::from_secs(5);

/// A pod's cumulative CPU readings at past syncs, as far back as one window needs.
#[derive(Debug, Default)]
pub(super) struct UsageWindow {
    readings: VecDeque<(Duration, Instant)>,
}

/// CPU use averaged over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rate {
    pub millicores: f64,
    /// Where the window began.
    pub since: Instant,
}

impl UsageWindow {
    /// Records the cumulative `usage` read at `now`; returns the rate since the latest earlier
    /// reading at least [`MIN_REAL_WINDOW`] old (or the oldest one kept, while the pod is
    /// younger than that), `None` for the first reading.
    pub(super) fn record(&mut self, usage: Duration, now: Instant) -> Option<Rate> {
        // Keep one reading at or before the window's start, drop the older ones.
        while self
            .readings
            .get(1)
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) >= MIN_REAL_WINDOW)
        {
            self.readings.pop_front();
        }
        let rate = self.readings.front().and_then(|&(u0, t0)| {
            (now > t0).then(|| Rate {
                millicores: usage.saturating_sub(u0).as_secs_f64()
                    / now.duration_since(t0).as_secs_f64()
                    * 1000.0,
                since: t0,
            })
        });
        self.readings.push_back((usage, now));
        rate
    }
}

/// The rehearsal's side of the metrics-server difference, for a sync every `sync_secs` platform
/// seconds.
pub(super) fn describe(ts: TimeScale, sync_secs: f64) -> String {
    let sync = ts.real_secs(sync_secs);
    if sync >= MIN_REAL_WINDOW {
        return "CPU time of the pod's CPU group since the previous sync / the elapsed time".into();
    }
    let syncs = MIN_REAL_WINDOW.as_secs_f64() / sync.as_secs_f64();
    format!(
        "CPU time of the pod's CPU group / the elapsed time over the last {} s of real time \
         ({} platform s, {} syncs), not one sync: the load and each request's CPU are real, so a \
         {} s real window would magnify a single request's CPU {}x; a rise or a fall of the load \
         shows in full that much later",
        MIN_REAL_WINDOW.as_secs(),
        trim(ts.platform(MIN_REAL_WINDOW).as_secs_f64()),
        syncs.ceil(),
        trim(sync.as_secs_f64()),
        trim(ts.factor()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rehearse::autoscale::hpa::{
        Behavior, ControllerFlags, CpuMetric, CpuSample, Hpa, HpaSpec, Pod, PodPhase, Target,
    };

    /// Two pods at the acceptance test's settings (request 100m, target 50%, min 2, a sync every
    /// 0.75 s real at 20x), idle but for one shopper's two log-ins (argon2id, ~50 ms of CPU
    /// each) that land on one pod in one sync: the recommendation stays at 2.
    #[test]
    fn one_shoppers_log_ins_in_one_short_sync_do_not_scale_out() {
        let mut hpa = Hpa::new(
            HpaSpec {
                name: "bookstore".into(),
                min: 2,
                max: 4,
                metrics: vec![CpuMetric {
                    target: Target::Utilization(50),
                }],
                behavior: Behavior::defaults(),
            },
            ControllerFlags::default(),
        );
        let sync = Duration::from_millis(750);
        let t0 = Instant::now();
        let mut windows = [UsageWindow::default(), UsageWindow::default()];
        let mut used = [Duration::ZERO; 2];
        for n in 0..40u32 {
            let now = t0 + sync * n;
            if n == 20 {
                used[0] += Duration::from_millis(100);
            }
            let pods: Vec<Pod> = (0..2)
                .map(|i| Pod {
                    name: format!("p{i}"),
                    phase: PodPhase::Running,
                    deleting: false,
                    start_time: Some(-10_000.0),
                    ready: Some((true, -9_000.0)),
                    cpu: windows[i].record(used[i], now).map(|r| CpuSample {
                        millicores: r.millicores,
                        timestamp: 20.0 * (now - t0).as_secs_f64(),
                        window: 20.0 * (now - r.since).as_secs_f64(),
                    }),
                    request_millicores: Some(100),
                })
                .collect();
            let out = hpa.evaluate(20.0 * (now - t0).as_secs_f64(), 2, &pods);
            assert_eq!(out.desired, 2, "sync {n}: {}", out.rule);
        }
    }

    #[test]
    fn the_difference_says_how_long_the_window_is() {
        let scaled = describe(TimeScale::new(20.0).unwrap(), 15.0);
        assert!(
            scaled.contains("last 5 s of real time (100 platform s, 7 syncs)")
                && scaled.contains("0.75 s real window would magnify a single request's CPU 20x"),
            "{scaled}"
        );
        let real = describe(TimeScale::new(1.0).unwrap(), 15.0);
        assert!(real.contains("since the previous sync"), "{real}");
    }

    #[test]
    fn the_window_reaches_back_at_least_the_minimum_and_no_further_than_needed() {
        let t0 = Instant::now();
        let mut w = UsageWindow::default();
        assert_eq!(w.record(Duration::ZERO, t0), None);
        // Younger than the minimum: since the first reading.
        let r = w.record(Duration::from_millis(100), t0 + Duration::from_secs(1));
        assert_eq!(r.map(|r| r.since), Some(t0));
        for s in 2..=12 {
            let now = t0 + Duration::from_secs(s);
            let r = w.record(Duration::from_millis(100 * s), now).unwrap();
            let back = now - r.since;
            assert!(back >= MIN_REAL_WINDOW.min(now - t0), "{s}: {back:?}");
            assert!(
                back <= MIN_REAL_WINDOW.max(Duration::from_secs(1)),
                "{s}: {back:?}"
            );
            assert!((r.millicores - 100.0).abs() < 1e-6, "{s}: {r:?}");
        }
        // A sync period longer than the minimum: the previous sync.
        let now = t0 + Duration::from_secs(30);
        let r = w.record(Duration::from_millis(3000), now).unwrap();
        assert_eq!(r.since, t0 + Duration::from_secs(12));
    }
}

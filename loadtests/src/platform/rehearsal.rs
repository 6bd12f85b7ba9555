//! A `bookstore rehearse` autoscaler: its decision log (`GET /decisions?from=N`, JSON lines:
//! `evaluation`, `scale`, `instance`, `manual`) and its state (`GET /status`), as
//! INTERFACES.md fixes them.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{lock, time, Decision, MetricPoint, PlatformInstance, PlatformView, Sample};

pub(super) struct Rehearsal {
    base: reqwest::Url,
    client: reqwest::Client,
    /// Lines read so far.
    next: u64,
}

impl Rehearsal {
    pub(super) fn new(url: &str) -> Result<Rehearsal, String> {
        let mut base = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Rehearsal {
            base,
            client,
            next: 0,
        })
    }

    async fn get(&self, path: &str) -> Result<String, String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let resp = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {}", status.as_u16()));
        }
        Ok(body)
    }

    pub(super) async fn poll(
        &mut self,
        view: &Mutex<PlatformView>,
        start: DateTime<Utc>,
    ) -> Result<(), String> {
        let lines = self.get(&format!("decisions?from={}", self.next)).await?;
        let status = self.get("status").await?;
        let status: Value =
            serde_json::from_str(&status).map_err(|e| format!("GET /status: not JSON ({e})"))?;
        let mut v = lock(view);
        for (i, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let index = self.next + i as u64;
            let entry: Value = serde_json::from_str(line)
                .map_err(|e| format!("decision log line {index} is not JSON ({e}): {line}"))?;
            apply(&mut v, &entry, index, start);
        }
        self.next += lines.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        v.observe(sample(&status), start);
        Ok(())
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Takes one line of the decision log into the view.
pub(super) fn apply(v: &mut PlatformView, e: &Value, index: u64, start: DateTime<Utc>) {
    let Some(at) = time(&e["time"]) else {
        return;
    };
    let num = |k: &str| e[k].as_u64().map(|n| n as u32);
    match e["kind"].as_str() {
        Some(kind @ ("scale" | "manual")) => {
            let Some(to) = num("desired") else { return };
            v.decide(
                Decision {
                    at,
                    t_s: 0.0,
                    from: num("current"),
                    to,
                    cause: e["rule"].as_str().unwrap_or(kind).to_string(),
                    added: strings(&e["instances_added"]),
                    removed: strings(&e["instances_removed"]),
                    key: format!("line {index}"),
                },
                start,
            );
        }
        Some("instance") => {
            if let (Some(id), Some(ev)) = (e["instance"].as_str(), e["event"].as_str()) {
                v.instance_event(at, start, id, ev);
            }
        }
        Some("evaluation") => {
            if let Some(value) = e["value"].as_f64() {
                v.metric(
                    MetricPoint {
                        at,
                        t_s: 0.0,
                        metric: e["metric"].as_str().unwrap_or("metric").to_string(),
                        value,
                        target: e["target"].as_f64(),
                    },
                    start,
                );
            }
        }
        _ => {}
    }
}

/// `GET /status`: desired and every instance with its state.
pub(super) fn sample(status: &Value) -> Sample {
    let instances: Vec<PlatformInstance> = status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some(PlatformInstance {
                id: i["id"].as_str()?.to_string(),
                state: i["state"].as_str().unwrap_or("unknown").to_string(),
            })
        })
        .collect();
    Sample {
        at: Utc::now(),
        t_s: 0.0,
        desired: status["desired"].as_u64().map(|d| d as u32),
        in_service: instances.iter().filter(|i| i.state == "in_service").count() as u32,
        pending: instances
            .iter()
            .filter(|i| i.state == "pending" || i.state == "warming_up")
            .count() as u32,
        instances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_become_decisions_events_and_metrics() {
        let start = time(&Value::String("2026-11-28T09:00:00Z".into())).unwrap();
        let mut v = PlatformView::default();
        let lines = [
            r#"{"time":"2026-11-28T09:00:05.000Z","platform_seconds":60,"kind":"evaluation","autoscaler":"target-tracking","policy":"CpuTargetTracking","metric":"ASGAverageCPUUtilization","target":50,"value":87.2,"per_instance":{"i-rehearsal-1":87.2},"excluded":{},"current":1,"desired":2,"rule":"scale-out: 87% > 50% target"}"#,
            r#"{"time":"2026-11-28T09:00:05.010Z","platform_seconds":60.1,"kind":"scale","autoscaler":"target-tracking","current":1,"desired":2,"rule":"scale-out: 87% > 50% target","instances_added":["i-rehearsal-2"],"instances_removed":[]}"#,
            r#"{"time":"2026-11-28T09:00:09.000Z","platform_seconds":108,"kind":"instance","autoscaler":"target-tracking","instance":"i-rehearsal-2","event":"in_service"}"#,
            r#"{"time":"2026-11-28T09:01:00.000Z","platform_seconds":720,"kind":"manual","autoscaler":"target-tracking","current":2,"desired":1,"rule":"manual: - typed"}"#,
        ];
        for (i, l) in lines.iter().enumerate() {
            apply(&mut v, &serde_json::from_str(l).unwrap(), i as u64, start);
        }
        assert_eq!(v.decisions.len(), 2);
        assert_eq!((v.decisions[0].from, v.decisions[0].to), (Some(1), 2));
        assert_eq!(v.decisions[0].added, vec!["i-rehearsal-2".to_string()]);
        assert_eq!(v.decisions[0].t_s, 5.01);
        assert_eq!(v.decisions[1].cause, "manual: - typed");
        assert_eq!(v.instance_events[0].event, "in_service");
        assert_eq!(v.metrics[0].value, 87.2);
        let s = sample(
            &serde_json::from_str(
                r#"{"objective":"objective2","autoscaler":"target-tracking","time_scale":12.0,"min":1,"max":4,"desired":2,
                "instances":[{"id":"i-rehearsal-1","state":"in_service","since":"2026-11-28T09:00:00Z"},
                             {"id":"i-rehearsal-2","state":"warming_up","since":"2026-11-28T09:00:06Z"}]}"#,
            )
            .unwrap(),
        );
        assert_eq!((s.desired, s.in_service, s.pending), (Some(2), 1, 1));
    }
}

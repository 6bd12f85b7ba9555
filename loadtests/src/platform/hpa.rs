//! A HorizontalPodAutoscaler through `kubectl`: the HPA (desired and current replicas, the
//! metric against its target), its target's pods (names are what the pods send as
//! X-Bookstore-Instance) and the HPA's `SuccessfulRescale` events, which carry the reason
//! ("New size: 4; reason: cpu resource utilization (percentage of request) above target").

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    json, lock, run_cli, time, Decision, MetricPoint, PlatformInstance, PlatformView, Sample,
};

pub(super) struct Hpa {
    namespace: String,
    name: String,
    /// `-l` selector of the target's pods, read once.
    selector: Option<String>,
}

impl Hpa {
    pub(super) fn new(namespace: &str, name: &str) -> Hpa {
        Hpa {
            namespace: namespace.to_string(),
            name: name.to_string(),
            selector: None,
        }
    }

    pub(super) async fn poll(
        &mut self,
        view: &Mutex<PlatformView>,
        start: DateTime<Utc>,
    ) -> Result<(), String> {
        let ns = self.namespace.as_str();
        let hpa_text = run_cli(
            "kubectl",
            &["get", "hpa", &self.name, "-n", ns, "-o", "json"],
        )
        .await?;
        let hpa = json("kubectl get hpa", &hpa_text)?;
        if self.selector.is_none() {
            let target = &hpa["spec"]["scaleTargetRef"];
            let kind = target["kind"]
                .as_str()
                .unwrap_or("Deployment")
                .to_ascii_lowercase();
            let tname = target["name"]
                .as_str()
                .ok_or("the HPA has no spec.scaleTargetRef.name")?;
            let obj = format!("{kind}/{tname}");
            let t = run_cli("kubectl", &["get", &obj, "-n", ns, "-o", "json"]).await?;
            self.selector = Some(selector(&json("kubectl get", &t)?).ok_or_else(|| {
                format!("{obj} has no spec.selector.matchLabels to find its pods by")
            })?);
        }
        let sel = self.selector.clone().unwrap_or_default();
        let pods_text = run_cli(
            "kubectl",
            &["get", "pods", "-n", ns, "-l", &sel, "-o", "json"],
        )
        .await?;
        let pods = json("kubectl get pods", &pods_text)?;
        let field = format!(
            "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={}",
            self.name
        );
        let ev_text = run_cli(
            "kubectl",
            &[
                "get",
                "events",
                "-n",
                ns,
                "--field-selector",
                &field,
                "-o",
                "json",
            ],
        )
        .await?;
        let events = json("kubectl get events", &ev_text)?;
        let mut v = lock(view);
        v.observe(sample(&hpa, &pods), start);
        if let Some(m) = metric(&hpa) {
            v.metric(m, start);
        }
        for mut d in rescales(&events)
            .into_iter()
            .filter(|d| d.at >= start - chrono::Duration::seconds(5))
        {
            d.from = v.desired_before(d.at);
            v.decide(d, start);
        }
        Ok(())
    }
}

/// `app=bookstore,tier=web` from the target's `spec.selector.matchLabels`.
pub(super) fn selector(target: &Value) -> Option<String> {
    let labels = target["spec"]["selector"]["matchLabels"].as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The HPA's desired replicas and the pods' states.
pub(super) fn sample(hpa: &Value, pods: &Value) -> Sample {
    let instances: Vec<PlatformInstance> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["metadata"]["name"].as_str()?;
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let state = if !p["metadata"]["deletionTimestamp"].is_null() {
                "terminating".to_string()
            } else if ready {
                "ready".to_string()
            } else {
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or("Unknown")
                    .to_ascii_lowercase()
                    + " (not ready)"
            };
            Some(PlatformInstance {
                id: name.to_string(),
                state,
            })
        })
        .collect();
    Sample {
        at: Utc::now(),
        t_s: 0.0,
        desired: hpa["status"]["desiredReplicas"].as_u64().map(|d| d as u32),
        in_service: instances.iter().filter(|i| i.state == "ready").count() as u32,
        pending: instances
            .iter()
            .filter(|i| i.state.ends_with("(not ready)"))
            .count() as u32,
        instances,
    }
}

/// The first resource metric's current value against its target.
pub(super) fn metric(hpa: &Value) -> Option<MetricPoint> {
    let cur = hpa["status"]["currentMetrics"].as_array()?.first()?;
    let res = &cur["resource"];
    let name = res["name"].as_str()?.to_string();
    let value = res["current"]["averageUtilization"].as_f64()?;
    let target = hpa["spec"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["resource"]["name"] == name.as_str())
        .and_then(|m| m["resource"]["target"]["averageUtilization"].as_f64());
    Some(MetricPoint {
        at: Utc::now(),
        t_s: 0.0,
        metric: name,
        value,
        target,
    })
}

/// `SuccessfulRescale` events: "New size: 4; reason: ...".
pub(super) fn rescales(events: &Value) -> Vec<Decision> {
    let mut out: Vec<Decision> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "SuccessfulRescale")
        .filter_map(|e| {
            let msg = e["message"].as_str()?;
            let size = msg.strip_prefix("New size: ")?;
            let (n, rest) = size.split_once(';').unwrap_or((size, ""));
            let to: u32 = n.trim().parse().ok()?;
            let cause = rest
                .trim()
                .strip_prefix("reason: ")
                .unwrap_or(rest.trim())
                .to_string();
            let at = time(&e["lastTimestamp"])
                .or_else(|| time(&e["eventTime"]))
                .or_else(|| time(&e["metadata"]["creationTimestamp"]))?;
            let key = format!(
                "{}#{}",
                e["metadata"]["uid"].as_str().unwrap_or(msg),
                e["count"].as_u64().unwrap_or(1)
            );
            Some(Decision {
                at,
                t_s: 0.0,
                from: None,
                to,
                cause,
                added: Vec::new(),
                removed: Vec::new(),
                key,
            })
        })
        .collect();
    out.sort_by_key(|d| d.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HPA: &str = r#"{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler",
      "metadata":{"name":"bookstore","namespace":"shop"},
      "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"bookstore"},
        "minReplicas":2,"maxReplicas":10,
        "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":60}}}]},
      "status":{"currentReplicas":2,"desiredReplicas":4,"lastScaleTime":"2026-11-28T09:01:10Z",
        "currentMetrics":[{"type":"Resource","resource":{"name":"cpu","current":{"averageUtilization":87,"averageValue":"174m"}}}],
        "conditions":[{"type":"AbleToScale","status":"True","lastTransitionTime":"2026-11-28T09:01:10Z","reason":"SucceededRescale","message":"the HPA controller was able to update the target scale to 4"}]}}"#;
    const PODS: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"metadata":{"name":"bookstore-7c9f8d6b5-x2k4q","creationTimestamp":"2026-11-28T08:00:00Z"},
       "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2026-11-28T08:00:20Z"}]}},
      {"metadata":{"name":"bookstore-7c9f8d6b5-9zt7m","creationTimestamp":"2026-11-28T09:01:11Z"},
       "status":{"phase":"Pending","conditions":[{"type":"Ready","status":"False"}]}},
      {"metadata":{"name":"bookstore-7c9f8d6b5-old11","creationTimestamp":"2026-11-28T07:00:00Z","deletionTimestamp":"2026-11-28T09:00:00Z"},
       "status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}]}"#;
    const EVENTS: &str = r#"{"apiVersion":"v1","kind":"List","items":[
      {"metadata":{"name":"bookstore.17","uid":"u-1","creationTimestamp":"2026-11-28T09:01:10Z"},
       "involvedObject":{"kind":"HorizontalPodAutoscaler","name":"bookstore","namespace":"shop"},
       "reason":"SuccessfulRescale","message":"New size: 4; reason: cpu resource utilization (percentage of request) above target",
       "firstTimestamp":"2026-11-28T09:01:10Z","lastTimestamp":"2026-11-28T09:01:10Z","count":1,"type":"Normal"},
      {"metadata":{"name":"bookstore.18","uid":"u-2"},"involvedObject":{"kind":"HorizontalPodAutoscaler","name":"bookstore"},
       "reason":"FailedGetResourceMetric","message":"failed to get cpu utilization","lastTimestamp":"2026-11-28T08:59:00Z","count":3,"type":"Warning"}]}"#;

    #[test]
    fn hpa_pods_and_events_parse() {
        let hpa: Value = serde_json::from_str(HPA).unwrap();
        let s = sample(&hpa, &serde_json::from_str(PODS).unwrap());
        assert_eq!((s.desired, s.in_service, s.pending), (Some(4), 1, 1));
        assert_eq!(s.instances[2].state, "terminating");
        let m = metric(&hpa).unwrap();
        assert_eq!(
            (m.metric.as_str(), m.value, m.target),
            ("cpu", 87.0, Some(60.0))
        );
        let d = rescales(&serde_json::from_str(EVENTS).unwrap());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].to, 4);
        assert_eq!(
            d[0].cause,
            "cpu resource utilization (percentage of request) above target"
        );
        let dep: Value = serde_json::from_str(
            r#"{"spec":{"selector":{"matchLabels":{"app.kubernetes.io/name":"bookstore","tier":"web"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            selector(&dep).as_deref(),
            Some("app.kubernetes.io/name=bookstore,tier=web")
        );
    }
}

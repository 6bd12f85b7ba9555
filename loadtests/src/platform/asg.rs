//! An EC2 auto-scaling group through the AWS CLI: `describe-auto-scaling-groups` for desired
//! capacity and instance states, `describe-scaling-activities` for the decisions and their
//! causes (e.g. "a monitor alarm TargetTracking-...-AlarmHigh-... in state ALARM triggered
//! policy ... changing the desired capacity from 2 to 4").

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{json, lock, run_cli, time, Decision, PlatformInstance, PlatformView, Sample};

pub(super) struct Asg {
    name: String,
}

impl Asg {
    pub(super) fn new(name: &str) -> Asg {
        Asg {
            name: name.to_string(),
        }
    }

    pub(super) async fn poll(
        &mut self,
        view: &Mutex<PlatformView>,
        start: DateTime<Utc>,
    ) -> Result<(), String> {
        let args = [
            "autoscaling",
            "describe-auto-scaling-groups",
            "--auto-scaling-group-names",
            &self.name,
            "--output",
            "json",
        ];
        let text = run_cli("aws", &args).await?;
        let sample = group_sample(
            &self.name,
            &json("aws autoscaling describe-auto-scaling-groups", &text)?,
        )?;
        let args = [
            "autoscaling",
            "describe-scaling-activities",
            "--auto-scaling-group-name",
            &self.name,
            "--max-items",
            "50",
            "--output",
            "json",
        ];
        let text = run_cli("aws", &args).await?;
        let decisions = activities(&json("aws autoscaling describe-scaling-activities", &text)?);
        let mut v = lock(view);
        v.observe(sample, start);
        // Decisions made before the run are history, not this run's.
        for d in decisions
            .into_iter()
            .filter(|d| d.at >= start - chrono::Duration::seconds(5))
        {
            v.decide(d, start);
        }
        Ok(())
    }
}

/// The group's desired capacity and instances from `describe-auto-scaling-groups`.
pub(super) fn group_sample(name: &str, v: &Value) -> Result<Sample, String> {
    let group = v["AutoScalingGroups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["AutoScalingGroupName"] == name))
        .ok_or_else(|| {
            format!(
                "no auto-scaling group named {name} (`aws autoscaling describe-auto-scaling-groups --query 'AutoScalingGroups[].AutoScalingGroupName'` lists them; check the region)"
            )
        })?;
    let instances: Vec<PlatformInstance> = group["Instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    Some(PlatformInstance {
                        id: i["InstanceId"].as_str()?.to_string(),
                        state: i["LifecycleState"]
                            .as_str()
                            .unwrap_or("unknown")
                            .to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Sample {
        at: Utc::now(),
        t_s: 0.0,
        desired: group["DesiredCapacity"].as_u64().map(|d| d as u32),
        in_service: instances.iter().filter(|i| i.state == "InService").count() as u32,
        pending: instances
            .iter()
            .filter(|i| i.state.starts_with("Pending"))
            .count() as u32,
        instances,
    })
}

/// "changing the desired capacity from 2 to 4" → (2, 4).
fn desired_change(cause: &str) -> Option<(u32, u32)> {
    let rest = &cause[cause.find("changing the desired capacity from ")? + 35..];
    let mut words = rest.split_whitespace();
    let from = words.next()?.parse().ok()?;
    if words.next()? != "to" {
        return None;
    }
    let to = words
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((from, to))
}

/// The first sentence of a Cause, without its "At <time> " prefix.
fn why(cause: &str) -> String {
    let first = cause.split(".  ").next().unwrap_or(cause).trim();
    let first = first.trim_end_matches('.');
    match first.strip_prefix("At ") {
        Some(rest) => rest.split_once(' ').map_or(rest, |(_, r)| r).to_string(),
        None => first.to_string(),
    }
}

/// The time a Cause starts with ("At 2020-10-30T19:35:51Z ...").
fn cause_time(cause: &str) -> Option<DateTime<Utc>> {
    let t = cause.strip_prefix("At ")?.split_whitespace().next()?;
    time(&Value::String(t.to_string()))
}

/// Decisions from `describe-scaling-activities`: activities that share a cause are one
/// decision (a change of 2 → 4 launches two instances in two activities).
pub(super) fn activities(v: &Value) -> Vec<Decision> {
    let mut out: Vec<Decision> = Vec::new();
    for a in v["Activities"].as_array().into_iter().flatten() {
        let cause = a["Cause"].as_str().unwrap_or("");
        let desc = a["Description"].as_str().unwrap_or("");
        let Some((from, to)) = desired_change(cause) else {
            continue;
        };
        let at = cause_time(cause)
            .or_else(|| time(&a["StartTime"]))
            .unwrap_or_else(Utc::now);
        let id = desc.rsplit(": ").next().filter(|s| s.starts_with("i-"));
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        match id {
            Some(id) if desc.starts_with("Launching") => added.push(id.to_string()),
            Some(id) if desc.starts_with("Terminating") => removed.push(id.to_string()),
            _ => {}
        }
        let key = cause.split(".  ").next().unwrap_or(cause).to_string();
        let mut d = Decision {
            at,
            t_s: 0.0,
            from: Some(from),
            to,
            cause: why(cause),
            added,
            removed,
            key,
        };
        if a["StatusCode"]
            .as_str()
            .is_some_and(|s| s == "Failed" || s == "Cancelled")
        {
            let msg = a["StatusMessage"].as_str().unwrap_or("no message");
            d.cause = format!(
                "{} (the activity {}: {msg})",
                d.cause,
                a["StatusCode"].as_str().unwrap_or("")
            );
        }
        match out.iter_mut().find(|k| k.key == d.key) {
            Some(k) => {
                k.added.extend(d.added);
                k.removed.extend(d.removed);
            }
            None => out.push(d),
        }
    }
    out.sort_by_key(|d| d.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `aws autoscaling describe-auto-scaling-groups` prints (AWS CLI v2 docs).
    pub const GROUP: &str = r#"{"AutoScalingGroups":[{"AutoScalingGroupName":"bookstore-asg",
      "AutoScalingGroupARN":"arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:x:autoScalingGroupName/bookstore-asg",
      "MinSize":2,"MaxSize":6,"DesiredCapacity":4,"DefaultCooldown":300,
      "AvailabilityZones":["eu-west-1a","eu-west-1b"],"HealthCheckType":"ELB","HealthCheckGracePeriod":300,
      "Instances":[
        {"InstanceId":"i-0aaa","InstanceType":"t3.small","AvailabilityZone":"eu-west-1a","LifecycleState":"InService","HealthStatus":"Healthy","ProtectedFromScaleIn":false},
        {"InstanceId":"i-0bbb","InstanceType":"t3.small","AvailabilityZone":"eu-west-1b","LifecycleState":"InService","HealthStatus":"Healthy","ProtectedFromScaleIn":false},
        {"InstanceId":"i-0ccc","InstanceType":"t3.small","AvailabilityZone":"eu-west-1a","LifecycleState":"Pending","HealthStatus":"Healthy","ProtectedFromScaleIn":false},
        {"InstanceId":"i-0ddd","InstanceType":"t3.small","AvailabilityZone":"eu-west-1b","LifecycleState":"Pending:Wait","HealthStatus":"Healthy","ProtectedFromScaleIn":false}],
      "CreatedTime":"2026-11-28T08:00:00.000Z","TerminationPolicies":["Default"]}]}"#;

    pub const ACTIVITIES: &str = r#"{"Activities":[
      {"ActivityId":"a2","AutoScalingGroupName":"bookstore-asg","Description":"Launching a new EC2 instance: i-0ddd",
       "Cause":"At 2026-11-28T09:01:10Z a monitor alarm TargetTracking-bookstore-asg-AlarmHigh-1234 in state ALARM triggered policy bookstore-cpu-target changing the desired capacity from 2 to 4.  At 2026-11-28T09:01:15Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 2 to 4.",
       "StartTime":"2026-11-28T09:01:17.102Z","StatusCode":"InProgress","Progress":30,"Details":"{}"},
      {"ActivityId":"a1","AutoScalingGroupName":"bookstore-asg","Description":"Launching a new EC2 instance: i-0ccc",
       "Cause":"At 2026-11-28T09:01:10Z a monitor alarm TargetTracking-bookstore-asg-AlarmHigh-1234 in state ALARM triggered policy bookstore-cpu-target changing the desired capacity from 2 to 4.  At 2026-11-28T09:01:15Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 2 to 4.",
       "StartTime":"2026-11-28T09:01:17.050Z","StatusCode":"InProgress","Progress":30,"Details":"{}"},
      {"ActivityId":"a0","AutoScalingGroupName":"bookstore-asg","Description":"Launching a new EC2 instance: i-0aaa",
       "Cause":"At 2026-11-28T08:00:05Z a user request created an AutoScalingGroup changing the desired capacity from 0 to 2.  At 2026-11-28T08:00:09Z an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 0 to 2.",
       "StartTime":"2026-11-28T08:00:11Z","EndTime":"2026-11-28T08:00:45Z","StatusCode":"Successful","Progress":100,"Details":"{}"}]}"#;

    #[test]
    fn group_and_activities_parse() {
        let s = group_sample("bookstore-asg", &serde_json::from_str(GROUP).unwrap()).unwrap();
        assert_eq!((s.desired, s.in_service, s.pending), (Some(4), 2, 2));
        assert_eq!(s.instances.len(), 4);
        let e = group_sample("other", &serde_json::from_str(GROUP).unwrap()).unwrap_err();
        assert!(e.starts_with("no auto-scaling group named other"), "{e}");

        let d = activities(&serde_json::from_str(ACTIVITIES).unwrap());
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].from, d[0].to), (Some(0), 2));
        assert_eq!((d[1].from, d[1].to), (Some(2), 4));
        assert_eq!(d[1].added, vec!["i-0ddd".to_string(), "i-0ccc".to_string()]);
        assert_eq!(
            d[1].cause,
            "a monitor alarm TargetTracking-bookstore-asg-AlarmHigh-1234 in state ALARM triggered policy bookstore-cpu-target changing the desired capacity from 2 to 4"
        );
        assert_eq!(d[1].at.to_rfc3339(), "2026-11-28T09:01:10+00:00");
    }
}

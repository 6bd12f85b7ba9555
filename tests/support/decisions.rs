//! The autoscaling rehearsals' decision log (`decisions.jsonl`), read and checked alike for
//! objective 2 (EC2 target tracking) and objective 3 (the HorizontalPodAutoscaler).

use serde_json::Value;
use std::path::Path;

/// The lines of the decision log (none while it does not exist).
pub fn read(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Evaluations logged so far that had a value (datapoints to decide on).
pub fn evaluations(path: &Path) -> usize {
    read(path)
        .iter()
        .filter(|l| l["kind"] == "evaluation" && !l["value"].is_null())
        .count()
}

/// The `scale` lines, each with its index in `lines`.
pub fn scales(lines: &[Value]) -> Vec<(usize, &Value)> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["kind"] == "scale")
        .collect()
}

/// What a platform's log calls its policy and its two directions.
pub struct Words<'a> {
    /// The policy every evaluation names (`CpuScalingPolicy`, the HPA's name).
    pub policy: &'a str,
    /// How an evaluation that adds capacity starts (`scale-out`, `scale-up`).
    pub up: &'a str,
    /// How an evaluation that removes capacity starts (`scale-in`, `scale-down`).
    pub down: &'a str,
}

/// Checks that the capacity change at `lines[i]` (a `scale` line from `current` to a different
/// `desired`) is explained by the evaluation logged before it: the same desired capacity, a
/// rule starting with the direction's word, the policy, a value with per-instance datapoints;
/// and that the change names as many instances as it adds or removes. Returns the direction's
/// word.
pub fn check_explained<'w>(lines: &[Value], i: usize, words: &Words<'w>) -> &'w str {
    let s = &lines[i];
    let (cur, des) = (
        s["current"].as_u64().unwrap(),
        s["desired"].as_u64().unwrap(),
    );
    assert_ne!(cur, des, "not a change: {s}");
    let ev = lines[..i]
        .iter()
        .rev()
        .find(|l| l["kind"] == "evaluation")
        .unwrap_or_else(|| panic!("no evaluation before {s}"));
    let word = if des > cur { words.up } else { words.down };
    assert_eq!(
        ev["desired"], s["desired"],
        "the evaluation before {s} asked for something else: {ev}"
    );
    assert!(
        ev["rule"].as_str().unwrap().starts_with(word),
        "the evaluation before a {word} says {ev}"
    );
    assert_eq!(ev["policy"], words.policy);
    assert!(
        ev["value"].as_f64().is_some()
            && ev["per_instance"]
                .as_object()
                .is_some_and(|m| !m.is_empty()),
        "{ev}"
    );
    let ids = if des > cur {
        &s["instances_added"]
    } else {
        &s["instances_removed"]
    };
    assert_eq!(
        ids.as_array().unwrap().len() as u64,
        des.abs_diff(cur),
        "{s}"
    );
    word
}

/// The events (`launched`, `in_service`, `draining`, ...) of instance `id`, in order.
pub fn events(lines: &[Value], id: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["kind"] == "instance" && l["instance"] == id)
        .map(|l| l["event"].as_str().unwrap().to_string())
        .collect()
}

/// Checks that every instance the `scale` line `s` added was launched and came in service.
pub fn check_added_came_in_service(lines: &[Value], s: &Value) {
    for id in s["instances_added"].as_array().unwrap() {
        let e = events(lines, id.as_str().unwrap());
        assert!(
            e.starts_with(&["launched".to_string()]) && e.contains(&"in_service".to_string()),
            "{id}: {e:?}"
        );
    }
}

/// Checks what the status server served as `/decisions?from=0` against the log file, read
/// after it: the rehearsal keeps evaluating, so the file may have grown since, but what was
/// served is what the file held, and at least the `before` lines logged before the request.
pub fn check_served(served: &str, log: &Path, before: usize) {
    let file = std::fs::read_to_string(log).unwrap();
    let (served, held): (Vec<&str>, Vec<&str>) = (served.lines().collect(), file.lines().collect());
    assert!(
        served.len() >= before,
        "{} served, {before} logged before",
        served.len()
    );
    assert!(
        served.len() <= held.len(),
        "{} served, the file holds {}",
        served.len(),
        held.len()
    );
    assert_eq!(served[..], held[..served.len()]);
}

//! `bookstore loadtest collect --job NAME`: gathers the results the pods of a Kubernetes
//! Indexed Job printed (`--result-stdout`) with `kubectl logs`, writes each to
//! `OUT/shard-I.json` and merges them. Works on any cluster: no volume, no object store.
//!
//! Pods are found with `kubectl get pods -l job-name=NAME -o json`; a pod's shard is its
//! `batch.kubernetes.io/job-completion-index` annotation. A retried index has several pods:
//! the one that succeeded is read first, then the newest.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::result_file::extract_marked;
use crate::LoadtestError;

/// The annotation (and, since Kubernetes 1.28, label) holding a pod's completion index.
pub const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// Which Job, where, and where its results go.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectArgs {
    /// The Job's name.
    #[arg(long, value_name = "NAME")]
    pub job: String,
    /// Its namespace [default: kubectl's current one].
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// The kubeconfig context [default: kubectl's current one].
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Where the shards' result files go [default: JOB-results].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write report.html, timeline.json and chart.svg of the merged run to this directory.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

#[derive(Deserialize)]
struct PodList {
    items: Vec<Pod>,
}

#[derive(Deserialize)]
struct Pod {
    metadata: Meta,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    name: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    creation_timestamp: Option<String>,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    phase: Option<String>,
}

impl CollectArgs {
    /// `kubectl` with the context and namespace flags, then `args`.
    fn kubectl(&self, args: &[&str]) -> Result<String, LoadtestError> {
        let mut cmd = Command::new("kubectl");
        if let Some(c) = &self.context {
            cmd.args(["--context", c]);
        }
        if let Some(ns) = &self.namespace {
            cmd.args(["--namespace", ns]);
        }
        cmd.args(args);
        let shown = format!("kubectl {}", args.join(" "));
        let out = cmd.output().map_err(|e| {
            LoadtestError::Platform(format!(
                "cannot run `{shown}`: {e}; install kubectl and point it at the cluster (kubectl config current-context)"
            ))
        })?;
        if !out.status.success() {
            return Err(LoadtestError::Platform(format!(
                "`{shown}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The directory the shards' files go to.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}-results", self.job)))
    }
}

/// What `collect` gathered: the files written, and a note for every pod without a result.
pub struct Collected {
    /// `OUT/shard-I.json`, by index.
    pub files: Vec<PathBuf>,
    /// Pods that gave no result, and why.
    pub notes: Vec<String>,
}

/// Reads every pod's result into `OUT/shard-I.json`.
pub fn collect(args: &CollectArgs) -> Result<Collected, LoadtestError> {
    let selector = format!("job-name={}", args.job);
    let json = args.kubectl(&["get", "pods", "-l", &selector, "-o", "json"])?;
    let list: PodList = serde_json::from_str(&json).map_err(|e| {
        LoadtestError::Platform(format!(
            "`kubectl get pods -l {selector} -o json` did not print a pod list: {e}"
        ))
    })?;
    if list.items.is_empty() {
        return Err(LoadtestError::Platform(format!(
            "no pods with the label {selector}{}: is the Job's name right (kubectl get jobs)? Pods of a Job deleted, or past its ttlSecondsAfterFinished, are gone with their logs",
            args.namespace
                .as_ref()
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        )));
    }
    let mut notes = Vec::new();
    let mut by_index: std::collections::BTreeMap<usize, Vec<Pod>> = Default::default();
    for pod in list.items {
        let index = pod
            .metadata
            .annotations
            .get(INDEX_ANNOTATION)
            .or_else(|| pod.metadata.labels.get(INDEX_ANNOTATION))
            .and_then(|i| i.parse::<usize>().ok());
        match index {
            Some(i) => by_index.entry(i).or_default().push(pod),
            None => notes.push(format!(
                "pod {} has no {INDEX_ANNOTATION} annotation (not an Indexed Job's pod): skipped",
                pod.metadata.name
            )),
        }
    }
    let out = args.out_dir();
    std::fs::create_dir_all(&out).map_err(|e| LoadtestError::Report {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    for (index, mut pods) in by_index {
        // Succeeded first, then the newest (RFC 3339 times sort as text).
        pods.sort_by(|a, b| {
            let ok = |p: &Pod| p.status.phase.as_deref() == Some("Succeeded");
            ok(b).cmp(&ok(a)).then_with(|| {
                b.metadata
                    .creation_timestamp
                    .cmp(&a.metadata.creation_timestamp)
            })
        });
        let mut found = false;
        for pod in &pods {
            let name = &pod.metadata.name;
            let phase = pod.status.phase.as_deref().unwrap_or("unknown");
            let logs = match args.kubectl(&["logs", name]) {
                Ok(l) => l,
                Err(e) => {
                    notes.push(format!("shard {index}: pod {name} ({phase}): {e}"));
                    continue;
                }
            };
            match extract_marked(&logs) {
                Ok(rs) if !rs.is_empty() => {
                    let r = rs.into_iter().next_back().expect("not empty");
                    let file = out.join(format!("shard-{index}.json"));
                    write(&file, &r.to_json())?;
                    files.push(file);
                    found = true;
                    break;
                }
                Ok(_) => notes.push(format!(
                    "shard {index}: pod {name} ({phase}) printed no result{}",
                    if phase == "Running" || phase == "Pending" {
                        ": it has not finished; wait for the Job (kubectl wait --for=condition=complete job/NAME)"
                    } else {
                        "; was it run with --result-stdout? (kubectl logs shows what it printed)"
                    }
                )),
                Err(e) => notes.push(format!("shard {index}: pod {name} ({phase}): {e}")),
            }
        }
        if !found && pods.is_empty() {
            notes.push(format!("shard {index}: no pod"));
        }
    }
    Ok(Collected { files, notes })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), LoadtestError> {
    std::fs::write(path, bytes).map_err(|e| LoadtestError::Report {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

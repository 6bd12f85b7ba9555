//! The rendered HorizontalPodAutoscaler (`k8s/hpa.yaml`, applied only when kustomization.yaml
//! lists it) as the [`HpaSpec`] the rehearsal's HPA controller runs, with the API server's
//! defaults for what `behavior` leaves out. What the API server would refuse (max < min, a
//! target that is not a number) is a [`RenderedError`].

use super::yaml::{self, of_kind, Doc};
use crate::rehearse::autoscale::hpa::{
    Behavior, CpuMetric, HpaSpec, PolicyKind, RatePolicy, Rules, Select, Target,
};
use crate::rehearse::rendered::{RenderedError, RenderedFiles};

/// Where the HPA is rendered.
pub const HPA: &str = "k8s/hpa.yaml";

/// Reads the HPA that scales Deployment `deployment`.
pub fn read(files: &RenderedFiles, deployment: &str) -> Result<HpaSpec, RenderedError> {
    let label = files.label(HPA);
    let Some(text) = files.find(HPA) else {
        return Err(RenderedError {
            file: label,
            line: None,
            path: "(file)".into(),
            reason: "missing: no HorizontalPodAutoscaler to run; `bookstore gen objective3` renders it, or rehearse with --manual".into(),
        });
    };
    let docs = yaml::docs(&label, text)?;
    let found = of_kind(&docs, "HorizontalPodAutoscaler");
    let h = match found.as_slice() {
        [h] => *h,
        other => {
            return Err(RenderedError {
                file: label,
                line: None,
                path: "kind".into(),
                reason: format!(
                    "{} HorizontalPodAutoscaler objects; the rehearsal needs exactly one (autoscaling/v2), or run it with --manual",
                    other.len()
                ),
            })
        }
    };
    if !super::workload::applied(files, HPA)? {
        return Err(RenderedError {
            file: files.label("kustomization.yaml"),
            line: crate::spec::locate_key_path(
                files.get("kustomization.yaml")?,
                "resources",
            ),
            path: "resources".into(),
            reason: format!(
                "{HPA} is not listed, so `kubectl apply -k` creates no HorizontalPodAutoscaler (objective3.autoscale is false?); turn autoscale on, or rehearse with --manual"
            ),
        });
    }
    let api = h.text("apiVersion")?;
    if api != "autoscaling/v2" {
        return Err(h.err(
            "apiVersion",
            format!("{api}: the rehearsal runs autoscaling/v2"),
        ));
    }
    let target_kind = h.text("spec.scaleTargetRef.kind")?;
    let target_name = h.text("spec.scaleTargetRef.name")?;
    if target_kind != "Deployment" || target_name != deployment {
        return Err(h.err(
            "spec.scaleTargetRef",
            format!("scales {target_kind} {target_name}; the rendered Deployment is {deployment}"),
        ));
    }
    let min = h.count("spec.minReplicas", Some(1))?;
    let max = h.count("spec.maxReplicas", None)?;
    if min < 1 {
        return Err(h.err(
            "spec.minReplicas",
            "must be at least 1 (0 needs the HPAScaleToZero feature gate)",
        ));
    }
    if max < min {
        return Err(h.err(
            "spec.maxReplicas",
            format!("maxReplicas {max} is less than minReplicas {min}; the API server refuses it"),
        ));
    }
    let mut metrics = Vec::new();
    for (i, _) in h.seq("spec.metrics")?.iter().enumerate() {
        metrics.push(metric(h, &format!("spec.metrics[{i}]"))?);
    }
    if metrics.is_empty() {
        // The API server's default: 80% CPU utilization.
        metrics.push(CpuMetric {
            target: Target::Utilization(80),
        });
    }
    let defaults = Behavior::defaults();
    let behavior = Behavior {
        up: rules(h, "spec.behavior.scaleUp", defaults.up)?,
        down: rules(h, "spec.behavior.scaleDown", defaults.down)?,
    };
    Ok(HpaSpec {
        name: h.text("metadata.name")?,
        min,
        max,
        metrics,
        behavior,
    })
}

fn metric(h: &Doc, p: &str) -> Result<CpuMetric, RenderedError> {
    let kind = h.text(&format!("{p}.type"))?;
    let name = h
        .opt_text(&format!("{p}.resource.name"))?
        .unwrap_or_default();
    if kind != "Resource" || name != "cpu" {
        return Err(h.err(
            &format!("{p}.type"),
            format!("{kind} {name}: the rehearsal measures CPU only (type Resource, name cpu)"),
        ));
    }
    let t = format!("{p}.resource.target");
    let target = match h.text(&format!("{t}.type"))?.as_str() {
        "Utilization" => {
            let n = h.count(&format!("{t}.averageUtilization"), None)?;
            if n == 0 {
                return Err(h.err(&format!("{t}.averageUtilization"), "must be above 0"));
            }
            Target::Utilization(n as i64)
        }
        "AverageValue" => {
            let q = h.text(&format!("{t}.averageValue"))?;
            Target::AverageValue(yaml::millicores(&q).filter(|m| *m > 0).ok_or_else(|| {
                h.err(
                    &format!("{t}.averageValue"),
                    format!("{q:?} is not a CPU quantity such as 500m"),
                )
            })?)
        }
        other => {
            return Err(h.err(
                &format!("{t}.type"),
                format!("{other}: a CPU target is Utilization or AverageValue"),
            ))
        }
    };
    Ok(CpuMetric { target })
}

fn rules(h: &Doc, p: &str, default: Rules) -> Result<Rules, RenderedError> {
    if h.get(p).is_none() {
        return Ok(default);
    }
    let stabilization_secs = h.count(
        &format!("{p}.stabilizationWindowSeconds"),
        Some(default.stabilization_secs),
    )?;
    if stabilization_secs > 3600 {
        return Err(h.err(
            &format!("{p}.stabilizationWindowSeconds"),
            "at most 3600 seconds",
        ));
    }
    let select = match h.opt_text(&format!("{p}.selectPolicy"))?.as_deref() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => {
            return Err(h.err(
                &format!("{p}.selectPolicy"),
                format!("{other:?}: Max, Min or Disabled"),
            ))
        }
    };
    let mut policies = Vec::new();
    for (i, _) in h.seq(&format!("{p}.policies"))?.iter().enumerate() {
        let q = format!("{p}.policies[{i}]");
        let kind = match h.text(&format!("{q}.type"))?.as_str() {
            "Pods" => PolicyKind::Pods,
            "Percent" => PolicyKind::Percent,
            other => return Err(h.err(&format!("{q}.type"), format!("{other:?}: Pods or Percent"))),
        };
        let value = h.count(&format!("{q}.value"), None)?;
        let period_secs = h.count(&format!("{q}.periodSeconds"), None)?;
        if value == 0 {
            return Err(h.err(&format!("{q}.value"), "must be above 0"));
        }
        if !(1..=1800).contains(&period_secs) {
            return Err(h.err(&format!("{q}.periodSeconds"), "between 1 and 1800 seconds"));
        }
        policies.push(RatePolicy {
            kind,
            value,
            period_secs,
        });
    }
    if policies.is_empty() {
        policies = default.policies;
    }
    let tolerance = match h.opt_text(&format!("{p}.tolerance"))? {
        None => None,
        Some(t) => Some(
            t.parse::<f64>()
                .ok()
                .filter(|t| (0.0..1.0).contains(t))
                .ok_or_else(|| {
                    h.err(
                        &format!("{p}.tolerance"),
                        format!("{t:?} is not a fraction such as 0.05"),
                    )
                })?,
        ),
    };
    Ok(Rules {
        stabilization_secs,
        select,
        policies,
        tolerance,
    })
}

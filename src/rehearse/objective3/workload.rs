//! What the objective 3 rehearsal reads from the rendered Deployment, Service, ConfigMap
//! generator and PodDisruptionBudget (never from the spec): the pod template's container
//! (ports, env, envFrom, CPU request and limit, probes, preStop, grace period, volume mounts).

use super::yaml::{self, of_kind, Doc};
use crate::rehearse::rendered::{RenderedError, RenderedFiles};
use serde_yaml::Value;
use std::collections::BTreeMap;

/// An HTTP probe of the container, as rendered (defaults applied as the kubelet does).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `httpGet.path`.
    pub path: String,
    /// The container port it resolves to.
    pub port: u16,
    /// `initialDelaySeconds` (0).
    pub initial_delay: f64,
    /// `periodSeconds` (10).
    pub period: f64,
    /// `timeoutSeconds` (1).
    pub timeout: f64,
    /// `failureThreshold` (3).
    pub failure: u32,
    /// `successThreshold` (1).
    pub success: u32,
}

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvSource {
    /// `value`.
    Value(String),
    /// `fieldRef` `metadata.name`: the pod's name.
    PodName,
    /// `fieldRef` `metadata.namespace`.
    Namespace,
    /// `fieldRef` `status.podIP`.
    PodIp,
    /// `secretKeyRef`.
    SecretKey { secret: String, key: String },
}

/// A volume mounted into the container.
#[derive(Debug, Clone, PartialEq)]
pub enum Volume {
    /// A Secret's keys as files: (key, path).
    Secret {
        secret: String,
        items: Vec<(String, String)>,
    },
    /// A ConfigMap's keys as files: (key, path).
    ConfigMap {
        name: String,
        items: Vec<(String, String)>,
    },
    /// A PersistentVolumeClaim (the shared covers volume).
    Claim(String),
    /// An emptyDir.
    EmptyDir,
}

/// The Deployment and what it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.replicas` (absent when the HPA owns the count).
    pub replicas: Option<u32>,
    /// The pod template's labels.
    pub labels: BTreeMap<String, String>,
    /// Container ports by name (`http`, `metrics`).
    pub ports: BTreeMap<String, u16>,
    /// The port the Service sends to.
    pub service_port: u16,
    /// The Service: name and port.
    pub service: (String, u16),
    /// `env`, in order.
    pub env: Vec<(String, EnvSource)>,
    /// `envFrom` ConfigMaps, resolved through kustomization.yaml's `configMapGenerator`.
    pub config: BTreeMap<String, String>,
    /// The ConfigMap and the generator files it comes from.
    pub config_source: String,
    /// CPU request, millicores.
    pub cpu_request: Option<i64>,
    /// CPU limit, millicores.
    pub cpu_limit: Option<i64>,
    /// Probes.
    pub startup: Option<Probe>,
    /// Readiness probe.
    pub readiness: Option<Probe>,
    /// Liveness probe.
    pub liveness: Option<Probe>,
    /// preStop sleep, seconds.
    pub prestop_sleep: f64,
    /// `terminationGracePeriodSeconds` (30).
    pub grace: f64,
    /// Mounts: container path -> volume.
    pub mounts: Vec<(String, Volume)>,
    /// The PodDisruptionBudget: (name, minAvailable or maxUnavailable as rendered).
    pub pdb: Option<(String, String)>,
}

const DEPLOYMENT: &str = "k8s/deployment.yaml";
const SERVICE: &str = "k8s/service.yaml";
const KUSTOMIZATION: &str = "kustomization.yaml";

pub(super) fn one<'a>(docs: &'a [Doc], kind: &str, file: &str) -> Result<&'a Doc, RenderedError> {
    match of_kind(docs, kind).as_slice() {
        [d] => Ok(d),
        found => Err(RenderedError {
            file: file.to_string(),
            line: None,
            path: "kind".into(),
            reason: format!(
                "{} {kind} objects; the rehearsal runs exactly one",
                found.len()
            ),
        }),
    }
}

impl Workload {
    /// Reads the Deployment, its Service, its ConfigMap generator and the PodDisruptionBudget.
    pub fn read(files: &RenderedFiles) -> Result<Workload, RenderedError> {
        let ddocs = yaml::docs(&files.label(DEPLOYMENT), files.get(DEPLOYMENT)?)?;
        let d = one(&ddocs, "Deployment", &files.label(DEPLOYMENT))?;
        let kdocs = yaml::docs(&files.label(KUSTOMIZATION), files.get(KUSTOMIZATION)?)?;
        let k = kdocs.first().ok_or_else(|| RenderedError {
            file: files.label(KUSTOMIZATION),
            line: None,
            path: "(document)".into(),
            reason: "empty".into(),
        })?;
        let name = d.text("metadata.name")?;
        let namespace = d
            .opt_text("metadata.namespace")?
            .unwrap_or_else(|| "default".into());
        let replicas = match d.get("spec.replicas") {
            None => None,
            Some(_) => Some(d.count("spec.replicas", None)?),
        };
        let labels = string_map(d, "spec.template.metadata.labels")?;
        let containers = d.seq("spec.template.spec.containers")?;
        if containers.len() != 1 {
            return Err(d.err(
                "spec.template.spec.containers",
                format!(
                    "{} containers; the rehearsal runs one (the shop) per pod",
                    containers.len()
                ),
            ));
        }
        let c = "spec.template.spec.containers[0]";
        let mut ports = BTreeMap::new();
        for (i, _) in d.seq(&format!("{c}.ports"))?.iter().enumerate() {
            let p = format!("{c}.ports[{i}]");
            let port = d.count(&format!("{p}.containerPort"), None)?;
            let pname = d
                .opt_text(&format!("{p}.name"))?
                .unwrap_or_else(|| port.to_string());
            ports.insert(pname, port as u16);
        }
        let probe = |which: &str| -> Result<Option<Probe>, RenderedError> {
            let p = format!("{c}.{which}");
            if d.get(&p).is_none() {
                return Ok(None);
            }
            let port_path = format!("{p}.httpGet.port");
            let path = d.text(&format!("{p}.httpGet.path")).map_err(|_| {
                d.err(
                    &format!("{p}.httpGet"),
                    "only httpGet probes are rehearsed; render an httpGet probe",
                )
            })?;
            let port = resolve_port(d, &port_path, &ports)?;
            let secs = |k: &str, def: u32| d.count(&format!("{p}.{k}"), Some(def)).map(f64::from);
            Ok(Some(Probe {
                path,
                port,
                initial_delay: secs("initialDelaySeconds", 0)?,
                period: secs("periodSeconds", 10)?.max(1.0),
                timeout: secs("timeoutSeconds", 1)?.max(1.0),
                failure: d.count(&format!("{p}.failureThreshold"), Some(3))?.max(1),
                success: d.count(&format!("{p}.successThreshold"), Some(1))?.max(1),
            }))
        };
        let (startup, readiness, liveness) = (
            probe("startupProbe")?,
            probe("readinessProbe")?,
            probe("livenessProbe")?,
        );
        let prestop = format!("{c}.lifecycle.preStop");
        let prestop_sleep = if d.get(&format!("{prestop}.sleep")).is_some() {
            d.count(&format!("{prestop}.sleep.seconds"), None)? as f64
        } else if let Some(cmd) = d.get(&format!("{prestop}.exec.command")) {
            let words: Vec<String> = cmd
                .as_sequence()
                .map(|s| s.iter().filter_map(yaml::scalar).collect())
                .unwrap_or_default();
            match words.as_slice() {
                [sleep, n] if sleep.ends_with("sleep") => n.parse().map_err(|_| {
                    d.err(
                        &format!("{prestop}.exec.command"),
                        format!("sleep {n:?}: not a number of seconds"),
                    )
                })?,
                _ => {
                    return Err(d.err(
                        &format!("{prestop}.exec.command"),
                        "only a preStop `sleep N` is rehearsed",
                    ))
                }
            }
        } else if d.get(&prestop).is_some() {
            return Err(d.err(&prestop, "only a preStop sleep is rehearsed"));
        } else {
            0.0
        };
        let grace = d.count("spec.template.spec.terminationGracePeriodSeconds", Some(30))? as f64;
        let cpu = |k: &str| -> Result<Option<i64>, RenderedError> {
            let p = format!("{c}.resources.{k}.cpu");
            match d.opt_text(&p)? {
                None => Ok(None),
                Some(q) => yaml::millicores(&q).map(Some).ok_or_else(|| {
                    d.err(
                        &p,
                        format!("{q:?} is not a CPU quantity such as 250m or 0.5"),
                    )
                }),
            }
        };
        let (cpu_request, cpu_limit) = (cpu("requests")?, cpu("limits")?);
        let mut env = Vec::new();
        for (i, _) in d.seq(&format!("{c}.env"))?.iter().enumerate() {
            let p = format!("{c}.env[{i}]");
            let key = d.text(&format!("{p}.name"))?;
            let src = if d.get(&format!("{p}.value")).is_some() {
                EnvSource::Value(d.text(&format!("{p}.value"))?)
            } else if let Some(f) = d.opt_text(&format!("{p}.valueFrom.fieldRef.fieldPath"))? {
                match f.as_str() {
                    "metadata.name" => EnvSource::PodName,
                    "metadata.namespace" => EnvSource::Namespace,
                    "status.podIP" => EnvSource::PodIp,
                    other => {
                        return Err(d.err(
                            &format!("{p}.valueFrom.fieldRef.fieldPath"),
                            format!("{other}: the rehearsal knows metadata.name, metadata.namespace and status.podIP"),
                        ))
                    }
                }
            } else if d.get(&format!("{p}.valueFrom.secretKeyRef")).is_some() {
                EnvSource::SecretKey {
                    secret: d.text(&format!("{p}.valueFrom.secretKeyRef.name"))?,
                    key: d.text(&format!("{p}.valueFrom.secretKeyRef.key"))?,
                }
            } else {
                EnvSource::Value(String::new())
            };
            env.push((key, src));
        }
        let generators = generators(k)?;
        let mut config = BTreeMap::new();
        let mut sources = Vec::new();
        for (i, _) in d.seq(&format!("{c}.envFrom"))?.iter().enumerate() {
            let p = format!("{c}.envFrom[{i}]");
            let Some(cm) = d.opt_text(&format!("{p}.configMapRef.name"))? else {
                return Err(d.err(&p, "only configMapRef is rehearsed in envFrom"));
            };
            let envs = generators.get(&cm).ok_or_else(|| {
                d.err(
                    &format!("{p}.configMapRef.name"),
                    format!("{cm}: no configMapGenerator of that name in {KUSTOMIZATION}"),
                )
            })?;
            for f in envs {
                let text = files.get(f)?;
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (key, value) = line.split_once('=').ok_or_else(|| RenderedError {
                        file: files.label(f),
                        line: Some((n + 1, 1)),
                        path: "(line)".into(),
                        reason: "not KEY=value".into(),
                    })?;
                    config.insert(key.to_string(), value.to_string());
                }
                sources.push(format!("ConfigMap {cm} from {f}"));
            }
        }
        let mounts = mounts(d, "spec.template.spec", c)?;
        let (service, service_port) = service(files, &labels, &ports)?;
        Ok(Workload {
            name,
            namespace,
            replicas,
            labels,
            ports,
            service_port,
            service,
            env,
            config,
            config_source: sources.join(", "),
            cpu_request,
            cpu_limit,
            startup,
            readiness,
            liveness,
            prestop_sleep,
            grace,
            mounts,
            pdb: pdb(files)?,
        })
    }
}

/// The volumes mounted into container `c` of the pod spec at `pod`: (mount path, volume).
pub(super) fn mounts(d: &Doc, pod: &str, c: &str) -> Result<Vec<(String, Volume)>, RenderedError> {
    let items = |p: &str| -> Result<Vec<(String, String)>, RenderedError> {
        let mut out = Vec::new();
        for (j, _) in d.seq(&format!("{p}.items"))?.iter().enumerate() {
            let it = format!("{p}.items[{j}]");
            out.push((
                d.text(&format!("{it}.key"))?,
                d.text(&format!("{it}.path"))?,
            ));
        }
        Ok(out)
    };
    let mut volumes: BTreeMap<String, Volume> = BTreeMap::new();
    for (i, _) in d.seq(&format!("{pod}.volumes"))?.iter().enumerate() {
        let p = format!("{pod}.volumes[{i}]");
        let vname = d.text(&format!("{p}.name"))?;
        let v = if d.get(&format!("{p}.secret")).is_some() {
            Volume::Secret {
                secret: d.text(&format!("{p}.secret.secretName"))?,
                items: items(&format!("{p}.secret"))?,
            }
        } else if d.get(&format!("{p}.configMap")).is_some() {
            Volume::ConfigMap {
                name: d.text(&format!("{p}.configMap.name"))?,
                items: items(&format!("{p}.configMap"))?,
            }
        } else if d.get(&format!("{p}.persistentVolumeClaim")).is_some() {
            Volume::Claim(d.text(&format!("{p}.persistentVolumeClaim.claimName"))?)
        } else {
            Volume::EmptyDir
        };
        volumes.insert(vname, v);
    }
    let mut mounts = Vec::new();
    for (i, _) in d.seq(&format!("{c}.volumeMounts"))?.iter().enumerate() {
        let p = format!("{c}.volumeMounts[{i}]");
        let vname = d.text(&format!("{p}.name"))?;
        let v = volumes.get(&vname).cloned().ok_or_else(|| {
            d.err(
                &format!("{p}.name"),
                format!("{vname}: no volume of that name"),
            )
        })?;
        mounts.push((d.text(&format!("{p}.mountPath"))?, v));
    }
    Ok(mounts)
}

fn string_map(d: &Doc, path: &str) -> Result<BTreeMap<String, String>, RenderedError> {
    let mut out = BTreeMap::new();
    if let Some(Value::Mapping(m)) = d.get(path) {
        for (k, v) in m {
            if let (Some(k), Some(v)) = (yaml::scalar(k), yaml::scalar(v)) {
                out.insert(k, v);
            }
        }
    }
    Ok(out)
}

/// A named or numbered container port.
fn resolve_port(d: &Doc, path: &str, ports: &BTreeMap<String, u16>) -> Result<u16, RenderedError> {
    let v = d.text(path)?;
    if let Some(p) = ports.get(&v) {
        return Ok(*p);
    }
    v.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        d.err(
            path,
            format!(
                "{v:?} is neither a port number nor a named container port ({})",
                ports.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// `configMapGenerator` name -> its `envs` files.
fn generators(k: &Doc) -> Result<BTreeMap<String, Vec<String>>, RenderedError> {
    let mut out = BTreeMap::new();
    for (i, _) in k.seq("configMapGenerator")?.iter().enumerate() {
        let p = format!("configMapGenerator[{i}]");
        let name = k.text(&format!("{p}.name"))?;
        let mut files = Vec::new();
        for (j, _) in k.seq(&format!("{p}.envs"))?.iter().enumerate() {
            files.push(k.text(&format!("{p}.envs[{j}]"))?);
        }
        out.insert(name, files);
    }
    Ok(out)
}

/// The Service that selects the pods: (name, port) and the container port it sends to.
fn service(
    files: &RenderedFiles,
    labels: &BTreeMap<String, String>,
    ports: &BTreeMap<String, u16>,
) -> Result<((String, u16), u16), RenderedError> {
    let docs = yaml::docs(&files.label(SERVICE), files.get(SERVICE)?)?;
    let s = one(&docs, "Service", &files.label(SERVICE))?;
    let selector = string_map(s, "spec.selector")?;
    if selector.is_empty() || selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
        return Err(s.err(
            "spec.selector",
            "selects no pod of the Deployment (its labels differ): the Service would have no endpoints",
        ));
    }
    let port = s.count("spec.ports[0].port", None)? as u16;
    let target = match s.get("spec.ports[0].targetPort") {
        None => port,
        Some(_) => resolve_port(s, "spec.ports[0].targetPort", ports)?,
    };
    Ok(((s.text("metadata.name")?, port), target))
}

fn pdb(files: &RenderedFiles) -> Result<Option<(String, String)>, RenderedError> {
    let Some(text) = files.find("k8s/pdb.yaml") else {
        return Ok(None);
    };
    let docs = yaml::docs(&files.label("k8s/pdb.yaml"), text)?;
    let Some(p) = of_kind(&docs, "PodDisruptionBudget").into_iter().next() else {
        return Ok(None);
    };
    let rule = match (
        p.opt_text("spec.minAvailable")?,
        p.opt_text("spec.maxUnavailable")?,
    ) {
        (Some(m), _) => format!("minAvailable {m}"),
        (None, Some(m)) => format!("maxUnavailable {m}"),
        _ => "no limit".into(),
    };
    Ok(Some((p.name(), rule)))
}

/// True when kustomization.yaml applies `path` (lists it in `resources`).
pub fn applied(files: &RenderedFiles, path: &str) -> Result<bool, RenderedError> {
    let docs = yaml::docs(&files.label(KUSTOMIZATION), files.get(KUSTOMIZATION)?)?;
    let Some(k) = docs.first() else {
        return Ok(false);
    };
    Ok(k.seq("resources")?.iter().any(|v| v.as_str() == Some(path)))
}

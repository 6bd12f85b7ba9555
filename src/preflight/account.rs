//! Checks against the account and the cluster, through the `aws` and `kubectl` CLIs, read-only
//! (`get`/`describe` calls only).

use super::{Check, Status};
use crate::spec::Spec;
use serde_json::Value;
use std::process::Command;

/// Why a CLI call gave no JSON.
pub enum CallError {
    /// The executable is not on PATH.
    Missing,
    /// It ran and failed (its stderr).
    Failed(String),
}

/// Runs `tool args…` and parses its stdout as JSON.
pub fn call(tool: &str, args: &[&str]) -> Result<Value, CallError> {
    let out = Command::new(tool).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CallError::Missing
        } else {
            CallError::Failed(e.to_string())
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(CallError::Failed(if err.is_empty() {
            format!("exit {}", out.status)
        } else {
            err
        }));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| CallError::Failed(format!("`{tool} {}` printed no JSON: {e}", args.join(" "))))
}

/// The account behind the `aws` credentials; `false` when no further `aws` check can run.
pub fn identity(checks: &mut Vec<Check>) -> bool {
    match call("aws", &["sts", "get-caller-identity", "--output", "json"]) {
        Ok(v) => {
            checks.push(Check::new(
                "aws credentials",
                Status::Ok,
                format!(
                    "account {} as {}",
                    v["Account"].as_str().unwrap_or("?"),
                    v["Arn"].as_str().unwrap_or("?")
                ),
            ));
            true
        }
        Err(CallError::Missing) => {
            checks.push(Check::new("aws credentials", Status::Fail,
                "`aws` is not on PATH: install AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html), or pass --offline to run only the checks that need no account"));
            false
        }
        Err(CallError::Failed(e)) => {
            checks.push(Check::new("aws credentials", Status::Fail, format!("`aws sts get-caller-identity` failed: {e}; configure credentials (`aws configure` or AWS_PROFILE)")));
            false
        }
    }
}

/// The SSM parameters `refs` (`ssm:/name`) exist as SecureStrings.
pub fn ssm_parameters(spec: &Spec, refs: &[(&str, &str)], checks: &mut Vec<Check>) {
    if refs.is_empty() {
        return;
    }
    let names: Vec<&str> = refs
        .iter()
        .map(|(_, r)| r.strip_prefix("ssm:").unwrap_or(r))
        .collect();
    let mut args = vec![
        "ssm",
        "get-parameters",
        "--region",
        &spec.project.region,
        "--output",
        "json",
        "--names",
    ];
    args.extend(names.iter().copied());
    let v = match call("aws", &args) {
        Ok(v) => v,
        Err(CallError::Missing) => return,
        Err(CallError::Failed(e)) => {
            checks.push(Check::new(
                "SSM parameters",
                Status::Fail,
                format!("`aws ssm get-parameters` failed: {e}"),
            ));
            return;
        }
    };
    for ((field, _), name) in refs.iter().zip(&names) {
        let found = v["Parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["Name"] == *name));
        let check = match found {
            Some(p) if p["Type"] == "SecureString" => Check::new(*field, Status::Ok, format!("SSM parameter {name} exists (SecureString)")),
            Some(p) => Check::new(*field, Status::Warn, format!("SSM parameter {name} is a {}, not a SecureString; re-create it with --type SecureString", p["Type"].as_str().unwrap_or("?"))),
            None => Check::new(*field, Status::Fail, format!(
                "SSM parameter {name} does not exist in {}; create it: aws ssm put-parameter --region {} --type SecureString --name {name} --value \"$(openssl rand -base64 32)\"",
                spec.project.region, spec.project.region
            )),
        };
        checks.push(check);
    }
}

/// The hosted zone exists and is the domain's (or a parent of it).
pub fn hosted_zone(spec: &Spec, checks: &mut Vec<Check>) {
    let Some(zone) = &spec.domain.hosted_zone_id else {
        return;
    };
    match call(
        "aws",
        &[
            "route53",
            "get-hosted-zone",
            "--id",
            zone,
            "--output",
            "json",
        ],
    ) {
        Ok(v) => {
            let name = v["HostedZone"]["Name"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_string();
            let domain = spec.domain.name.trim_end_matches('.');
            let ok = domain == name || domain.ends_with(&format!(".{name}"));
            checks.push(if ok {
                Check::new("domain.hosted_zone_id", Status::Ok, format!("zone {zone} is {name}, which holds {domain}"))
            } else {
                Check::new("domain.hosted_zone_id", Status::Fail, format!("zone {zone} is {name}, which cannot hold {domain}; set the zone of {domain}"))
            });
        }
        Err(CallError::Missing) => {}
        Err(CallError::Failed(e)) => checks.push(Check::new(
            "domain.hosted_zone_id",
            Status::Fail,
            format!("zone {zone} cannot be read: {e}"),
        )),
    }
}

/// The image exists, when it is in ECR (other registries: skipped, with the command to check).
pub fn image(spec: &Spec, checks: &mut Vec<Check>) {
    let image = &spec.app.image;
    let Some((host, repo)) = image.split_once('/') else {
        return;
    };
    if !host.contains(".dkr.ecr.") {
        checks.push(Check::new(
            "app.image",
            Status::Skip,
            format!(
                "{image}:{} is not in ECR; check it with `docker manifest inspect {image}:{}`",
                spec.app.tag, spec.app.tag
            ),
        ));
        return;
    }
    let region = host
        .split('.')
        .nth(3)
        .unwrap_or(&spec.project.region)
        .to_string();
    let tag = format!("imageTag={}", spec.app.tag);
    match call(
        "aws",
        &[
            "ecr",
            "describe-images",
            "--region",
            &region,
            "--repository-name",
            repo,
            "--image-ids",
            &tag,
            "--output",
            "json",
        ],
    ) {
        Ok(_) => checks.push(Check::new(
            "app.image",
            Status::Ok,
            format!("{image}:{} exists in ECR", spec.app.tag),
        )),
        Err(CallError::Missing) => {}
        Err(CallError::Failed(e)) => checks.push(Check::new(
            "app.image",
            Status::Fail,
            format!(
                "{image}:{} is not in ECR ({e}); push it: bookstore image push",
                spec.app.tag
            ),
        )),
    }
}

/// The deployed stack's output `key`, if the stack exists.
pub fn stack_output(spec: &Spec, stack: &str, key: &str) -> Option<String> {
    let v = call(
        "aws",
        &[
            "cloudformation",
            "describe-stacks",
            "--region",
            &spec.project.region,
            "--stack-name",
            stack,
            "--output",
            "json",
        ],
    )
    .ok()?;
    v["Stacks"][0]["Outputs"]
        .as_array()?
        .iter()
        .find(|o| o["OutputKey"] == key)
        .and_then(|o| o["OutputValue"].as_str())
        .map(str::to_string)
}

/// The CRDs objective 3 needs are installed in the cluster `kubectl` points at.
pub fn crds(spec: &Spec, checks: &mut Vec<Check>) {
    use crate::spec::{Routing, SecretsSource};
    let o3 = &spec.objective3;
    let mut needed = vec![
        ("certificates.cert-manager.io", "cert-manager"),
        ("issuers.cert-manager.io", "cert-manager"),
    ];
    if o3.routing == Routing::Gateway {
        needed.push(("gateways.gateway.networking.k8s.io", "the Gateway API CRDs"));
        needed.push((
            "httproutes.gateway.networking.k8s.io",
            "the Gateway API CRDs",
        ));
        needed.push((
            "backendtrafficpolicies.gateway.envoyproxy.io",
            "Envoy Gateway",
        ));
    }
    if o3.secrets_source == SecretsSource::ExternalSecrets {
        needed.push((
            "externalsecrets.external-secrets.io",
            "the External Secrets Operator",
        ));
    }
    let v = match call("kubectl", &["get", "crd", "-o", "json"]) {
        Ok(v) => v,
        Err(CallError::Missing) => {
            checks.push(Check::new("cluster CRDs", Status::Fail, "`kubectl` is not on PATH: install it and point it at the cluster (`aws eks update-kubeconfig`), or pass --offline"));
            return;
        }
        Err(CallError::Failed(e)) => {
            checks.push(Check::new(
                "cluster CRDs",
                Status::Fail,
                format!("`kubectl get crd` failed: {e}"),
            ));
            return;
        }
    };
    let have: Vec<&str> = v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for (crd, from) in needed {
        checks.push(if have.contains(&crd) {
            Check::new(format!("CRD {crd}"), Status::Ok, "installed")
        } else {
            Check::new(
                format!("CRD {crd}"),
                Status::Fail,
                format!("missing: install {from} first (out/objective3/README.md, step 1)"),
            )
        });
    }
}

/// The controllers objective 3 needs run (a Deployment with an available replica).
pub fn controllers(spec: &Spec, checks: &mut Vec<Check>) {
    use crate::spec::{Routing, SecretsSource};
    let o3 = &spec.objective3;
    let mut needed = vec![
        (
            "aws-load-balancer-controller",
            "the AWS Load Balancer Controller",
        ),
        ("cert-manager", "cert-manager"),
    ];
    match (o3.routing, o3.ingress_class.as_str()) {
        (Routing::Gateway, _) => needed.push(("envoy-gateway", "Envoy Gateway")),
        (Routing::Ingress, "nginx") => needed.push(("ingress-nginx-controller", "ingress-nginx")),
        (Routing::Ingress, "traefik") => needed.push(("traefik", "Traefik")),
        _ => {}
    }
    if o3.secrets_source == SecretsSource::ExternalSecrets {
        needed.push(("external-secrets", "the External Secrets Operator"));
    }
    if o3.autoscale {
        needed.push((
            "metrics-server",
            "metrics-server (the HPA reads CPU from it)",
        ));
    }
    let v = match call("kubectl", &["get", "deployments", "-A", "-o", "json"]) {
        Ok(v) => v,
        Err(CallError::Missing) => return,
        Err(CallError::Failed(e)) => {
            checks.push(Check::new(
                "cluster controllers",
                Status::Fail,
                format!("`kubectl get deployments -A` failed: {e}"),
            ));
            return;
        }
    };
    let items = v["items"].as_array().cloned().unwrap_or_default();
    for (name, what) in needed {
        let found = items.iter().find(|d| d["metadata"]["name"] == name);
        let check_name = format!("controller {name}");
        checks.push(match found {
            Some(d) if d["status"]["availableReplicas"].as_u64().unwrap_or(0) > 0 => Check::new(
                check_name,
                Status::Ok,
                format!("available in namespace {}", d["metadata"]["namespace"].as_str().unwrap_or("?")),
            ),
            Some(d) => Check::new(
                check_name,
                Status::Fail,
                format!("installed in namespace {} but no replica is available: `kubectl -n {0} describe deployment {name}`", d["metadata"]["namespace"].as_str().unwrap_or("?")),
            ),
            None => Check::new(check_name, Status::Fail, format!("not found: install {what} first (out/objective3/README.md)")),
        });
    }
}

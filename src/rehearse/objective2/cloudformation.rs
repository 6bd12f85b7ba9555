//! What the objective 2 rehearsal reads from the rendered `cloudformation.yaml` (never from the
//! spec, so that a blueprint change or a hand edit is what gets rehearsed): the target group's
//! health check and deregistration delay, the auto-scaling group's sizes and warm-up, the
//! launch template's monitoring and every target tracking scaling policy. A value the rehearsal
//! cannot use is a [`RenderedError`] naming the file, the line, the key path and the reason.

use crate::rehearse::autoscale::target_tracking::{AlarmModel, Group, Metric, Policy};
pub use crate::rehearse::rendered::RenderedError;
use serde_yaml::{Mapping, Value};

/// The target group's health check, as rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// `HealthCheckPath`.
    pub path: String,
    /// `HealthyThresholdCount`.
    pub healthy: u32,
    /// `UnhealthyThresholdCount`.
    pub unhealthy: u32,
    /// `HealthCheckIntervalSeconds` as rendered.
    pub interval_on_aws: u64,
    /// `deregistration_delay.timeout_seconds` as rendered.
    pub deregistration_delay: u64,
}

/// The auto-scaling group and its target tracking policies, as rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    /// The group's logical id.
    pub group_id: String,
    /// `DesiredCapacity` (`MinSize` when absent, as AWS does).
    pub desired: u32,
    /// Limits and warm-up.
    pub group: Group,
    /// The target tracking policies.
    pub policies: Vec<Policy>,
    /// The launch template asks for one-minute (detailed) monitoring.
    pub detailed_monitoring: bool,
    /// `HealthCheckGracePeriod`, seconds.
    pub health_check_grace: Option<f64>,
    /// `HealthCheckType` (`EC2` when absent, as AWS does).
    pub health_check_type: String,
}

impl Scaling {
    /// The alarm model for this group's monitoring.
    pub fn alarms(&self) -> AlarmModel {
        AlarmModel::for_monitoring(self.detailed_monitoring)
    }
}

/// The parsed template and where it came from.
pub struct Template<'a> {
    file: String,
    text: &'a str,
    doc: Value,
}

impl<'a> Template<'a> {
    /// Parses `text`, named `file` in messages.
    pub fn parse(file: &str, text: &'a str) -> Result<Template<'a>, RenderedError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| RenderedError {
            file: file.to_string(),
            line: e.location().map(|l| (l.line(), l.column())),
            path: "(document)".into(),
            reason: format!("not valid YAML: {e}"),
        })?;
        Ok(Template {
            file: file.to_string(),
            text,
            doc,
        })
    }

    fn err(&self, path: &str, reason: impl Into<String>) -> RenderedError {
        RenderedError {
            file: self.file.clone(),
            line: crate::spec::locate_key_path(self.text, path),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    fn resources(&self) -> Result<&Mapping, RenderedError> {
        self.doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| {
                self.err(
                    "Resources",
                    "missing: a CloudFormation template needs a Resources mapping",
                )
            })
    }

    /// Logical ids of the resources of `kind`, in file order.
    fn of_type(&self, kind: &str) -> Result<Vec<(String, &Value)>, RenderedError> {
        Ok(self
            .resources()?
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .filter_map(|(k, r)| Some((k.as_str()?.to_string(), r)))
            .collect())
    }

    fn exactly_one(&self, kind: &str) -> Result<(String, &Value), RenderedError> {
        let mut all = self.of_type(kind)?;
        match all.len() {
            1 => Ok(all.remove(0)),
            0 => Err(self.err(
                "Resources",
                format!("no resource of Type {kind}; the rehearsal needs exactly one"),
            )),
            n => Err(self.err(
                "Resources",
                format!(
                    "{n} resources of Type {kind} ({}); the rehearsal plays exactly one",
                    all.iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// A scalar value as text: numbers, strings and `!Ref` to a parameter with a `Default`.
    fn scalar(&self, path: &str, v: &Value) -> Result<String, RenderedError> {
        match v {
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(t) if t.tag == "Ref" => {
                let name = t.value.as_str().unwrap_or("");
                let param = format!("Parameters.{name}.Default");
                let default = self
                    .doc
                    .get("Parameters")
                    .and_then(|p| p.get(name))
                    .and_then(|p| p.get("Default"))
                    .ok_or_else(|| {
                        self.err(path, format!("!Ref {name} has no {param} to rehearse with; give the parameter a Default or a literal value here"))
                    })?;
                self.scalar(&param, default)
            }
            Value::Tagged(t) => Err(self.err(
                path,
                format!(
                    "{} cannot be evaluated by the rehearsal; write a literal value",
                    t.tag
                ),
            )),
            _ => Err(self.err(path, "must be a single value (a number or a string)")),
        }
    }

    fn number(&self, path: &str, v: &Value) -> Result<f64, RenderedError> {
        let s = self.scalar(path, v)?;
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.err(path, format!("{s:?} is not a number")))
    }

    fn count(&self, path: &str, v: &Value) -> Result<u32, RenderedError> {
        let s = self.scalar(path, v)?;
        s.trim().parse::<u32>().map_err(|_| {
            self.err(
                path,
                format!("{s:?} is not a whole number of instances (0, 1, 2, ...)"),
            )
        })
    }

    fn seconds(&self, path: &str, v: &Value) -> Result<f64, RenderedError> {
        let x = self.number(path, v)?;
        if x < 0.0 {
            return Err(self.err(path, format!("{x} seconds is negative")));
        }
        Ok(x)
    }

    fn boolean(&self, path: &str, v: &Value) -> Result<bool, RenderedError> {
        match self.scalar(path, v)?.as_str() {
            "true" | "True" | "TRUE" => Ok(true),
            "false" | "False" | "FALSE" => Ok(false),
            s => Err(self.err(path, format!("{s:?} is not true or false"))),
        }
    }

    /// The target group's health check and deregistration delay.
    pub fn health_check(&self) -> Result<HealthCheck, RenderedError> {
        let (id, tg) = self.exactly_one("AWS::ElasticLoadBalancingV2::TargetGroup")?;
        let base = format!("Resources.{id}.Properties");
        let props = tg.get("Properties");
        let num = |key: &str, default: u64| -> Result<u64, RenderedError> {
            match props.and_then(|p| p.get(key)) {
                None => Ok(default),
                Some(v) => {
                    let path = format!("{base}.{key}");
                    let x = self.number(&path, v)?;
                    if x < 1.0 || x.fract() != 0.0 {
                        return Err(self.err(&path, format!("{x} is not a positive whole number")));
                    }
                    Ok(x as u64)
                }
            }
        };
        let mut dereg = 300;
        if let Some(attrs) = props
            .and_then(|p| p.get("TargetGroupAttributes"))
            .and_then(Value::as_sequence)
        {
            for (i, a) in attrs.iter().enumerate() {
                if a.get("Key").and_then(Value::as_str)
                    == Some("deregistration_delay.timeout_seconds")
                {
                    let path = format!("{base}.TargetGroupAttributes[{i}].Value");
                    let v = a.get("Value").ok_or_else(|| self.err(&path, "missing"))?;
                    dereg = self.seconds(&path, v)? as u64;
                }
            }
        }
        let path = match props.and_then(|p| p.get("HealthCheckPath")) {
            None => "/".to_string(),
            Some(v) => self.scalar(&format!("{base}.HealthCheckPath"), v)?,
        };
        Ok(HealthCheck {
            path,
            healthy: num("HealthyThresholdCount", 5)? as u32,
            unhealthy: num("UnhealthyThresholdCount", 2)? as u32,
            interval_on_aws: num("HealthCheckIntervalSeconds", 30)?,
            deregistration_delay: dereg,
        })
    }

    /// The auto-scaling group and every target tracking policy attached to it; with
    /// `require_policy`, a group without one is an error (the autoscaler would have nothing to
    /// follow).
    pub fn scaling(&self, require_policy: bool) -> Result<Scaling, RenderedError> {
        let (id, asg) = self.exactly_one("AWS::AutoScaling::AutoScalingGroup")?;
        let base = format!("Resources.{id}.Properties");
        let props = asg
            .get("Properties")
            .ok_or_else(|| self.err(&format!("Resources.{id}"), "has no Properties"))?;
        let field = |k: &str| (format!("{base}.{k}"), props.get(k));
        let (min_path, min) = field("MinSize");
        let min = self.count(
            &min_path,
            min.ok_or_else(|| self.err(&base, "MinSize is missing"))?,
        )?;
        let (max_path, max) = field("MaxSize");
        let max = self.count(
            &max_path,
            max.ok_or_else(|| self.err(&base, "MaxSize is missing"))?,
        )?;
        if max < min {
            return Err(self.err(&max_path, format!("MaxSize {max} is less than MinSize {min}; AWS refuses such a group (make MaxSize >= MinSize)")));
        }
        if max == 0 {
            return Err(self.err(
                &max_path,
                "MaxSize 0: the group could never run an instance",
            ));
        }
        let desired = match field("DesiredCapacity") {
            (_, None) => min,
            (path, Some(v)) => {
                let d = self.count(&path, v)?;
                if d < min || d > max {
                    return Err(self.err(
                        &path,
                        format!("DesiredCapacity {d} is outside MinSize {min} .. MaxSize {max}"),
                    ));
                }
                d
            }
        };
        let opt_secs = |k: &str| -> Result<Option<f64>, RenderedError> {
            match field(k) {
                (_, None) => Ok(None),
                (path, Some(v)) => self.seconds(&path, v).map(Some),
            }
        };
        let default_warmup = opt_secs("DefaultInstanceWarmup")?;
        let default_cooldown = opt_secs("Cooldown")?.unwrap_or(300.0);
        let health_check_grace = opt_secs("HealthCheckGracePeriod")?;
        let health_check_type = match field("HealthCheckType") {
            (_, None) => "EC2".to_string(),
            (path, Some(v)) => self.scalar(&path, v)?,
        };
        let detailed_monitoring = self.monitoring(props, &base)?;

        let mut policies = Vec::new();
        for (pid, p) in self.of_type("AWS::AutoScaling::ScalingPolicy")? {
            let pbase = format!("Resources.{pid}.Properties");
            let Some(pp) = p.get("Properties") else {
                return Err(self.err(&format!("Resources.{pid}"), "has no Properties"));
            };
            let target_group = pp.get("AutoScalingGroupName");
            let refers = matches!(target_group, Some(Value::Tagged(t)) if t.tag == "Ref" && t.value.as_str() == Some(id.as_str()));
            if !refers {
                return Err(self.err(
                    &format!("{pbase}.AutoScalingGroupName"),
                    format!("must be !Ref {id} (the rehearsal plays that group only)"),
                ));
            }
            let kind = pp
                .get("PolicyType")
                .map(|v| self.scalar(&format!("{pbase}.PolicyType"), v))
                .transpose()?
                .unwrap_or_else(|| "SimpleScaling".into());
            if kind != "TargetTrackingScaling" {
                return Err(self.err(
                    &format!("{pbase}.PolicyType"),
                    format!("{kind} policies are not rehearsed (only TargetTrackingScaling); rehearse with --manual to scale by hand"),
                ));
            }
            let tpath = format!("{pbase}.TargetTrackingConfiguration");
            let tt = pp.get("TargetTrackingConfiguration").ok_or_else(|| {
                self.err(
                    &tpath,
                    "missing: a TargetTrackingScaling policy needs its TargetTrackingConfiguration",
                )
            })?;
            let mpath = format!("{tpath}.PredefinedMetricSpecification.PredefinedMetricType");
            let metric_name = match tt.get("PredefinedMetricSpecification").and_then(|m| m.get("PredefinedMetricType")) {
                Some(v) => self.scalar(&mpath, v)?,
                None if tt.get("CustomizedMetricSpecification").is_some() => {
                    return Err(self.err(
                        &format!("{tpath}.CustomizedMetricSpecification"),
                        "a customized CloudWatch metric cannot be measured in the rehearsal; use ASGAverageCPUUtilization or ALBRequestCountPerTarget",
                    ))
                }
                None => return Err(self.err(&mpath, "missing")),
            };
            let metric = Metric::parse(&metric_name).ok_or_else(|| {
                self.err(&mpath, format!("{metric_name} is not measured by the rehearsal; use ASGAverageCPUUtilization or ALBRequestCountPerTarget"))
            })?;
            let vpath = format!("{tpath}.TargetValue");
            let target = self.number(
                &vpath,
                tt.get("TargetValue")
                    .ok_or_else(|| self.err(&vpath, "missing"))?,
            )?;
            if target <= 0.0 || (metric == Metric::AsgAverageCpuUtilization && target > 100.0) {
                return Err(self.err(&vpath, format!("{target} is out of range for {metric_name} (a CPU target is a percentage above 0 and at most 100)")));
            }
            let disable_scale_in = match tt.get("DisableScaleIn") {
                None => false,
                Some(v) => self.boolean(&format!("{tpath}.DisableScaleIn"), v)?,
            };
            let estimated_warmup = match pp.get("EstimatedInstanceWarmup") {
                None => None,
                Some(v) => Some(self.seconds(&format!("{pbase}.EstimatedInstanceWarmup"), v)?),
            };
            policies.push(Policy {
                name: pid,
                metric,
                target,
                disable_scale_in,
                estimated_warmup,
            });
        }
        if policies.is_empty() && require_policy {
            return Err(self.err(
                "Resources",
                format!("no AWS::AutoScaling::ScalingPolicy for {id}: the autoscaler has nothing to follow (rehearse with --manual to scale by hand)"),
            ));
        }
        let mut seen = Vec::new();
        for p in &policies {
            if seen.contains(&p.metric) {
                return Err(self.err(
                    &format!("Resources.{}", p.name),
                    format!(
                        "a second target tracking policy on {}: AWS allows one per metric",
                        p.metric.name()
                    ),
                ));
            }
            seen.push(p.metric);
        }
        Ok(Scaling {
            group_id: id,
            desired,
            group: Group {
                min,
                max,
                default_warmup,
                default_cooldown,
            },
            policies,
            detailed_monitoring,
            health_check_grace,
            health_check_type,
        })
    }

    /// `Monitoring.Enabled` of the group's launch template (false when absent).
    fn monitoring(&self, props: &Value, base: &str) -> Result<bool, RenderedError> {
        let Some(Value::Tagged(t)) = props
            .get("LaunchTemplate")
            .and_then(|l| l.get("LaunchTemplateId"))
        else {
            return Ok(false);
        };
        if t.tag != "Ref" {
            return Ok(false);
        }
        let Some(lt) = t.value.as_str() else {
            return Err(self.err(
                &format!("{base}.LaunchTemplate.LaunchTemplateId"),
                "!Ref needs a logical id",
            ));
        };
        match self
            .resources()?
            .get(lt)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("LaunchTemplateData"))
            .and_then(|d| d.get("Monitoring"))
            .and_then(|m| m.get("Enabled"))
        {
            None => Ok(false),
            Some(v) => self.boolean(
                &format!("Resources.{lt}.Properties.LaunchTemplateData.Monitoring.Enabled"),
                v,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFN: &str = include_str!("../../../out/objective2/cloudformation.yaml");

    #[test]
    fn reads_what_the_blueprint_renders() {
        let t = Template::parse("out/objective2/cloudformation.yaml", CFN).unwrap();
        let s = t.scaling(true).unwrap();
        assert_eq!((s.group.min, s.desired, s.group.max), (2, 2, 6));
        assert_eq!(s.group.default_warmup, Some(120.0));
        assert_eq!(s.health_check_type, "EC2");
        assert!(s.detailed_monitoring);
        assert_eq!(s.policies.len(), 1);
        assert_eq!(s.policies[0].name, "CpuScalingPolicy");
        assert_eq!(s.policies[0].metric, Metric::AsgAverageCpuUtilization);
        assert_eq!(s.policies[0].target, 50.0);
        let h = t.health_check().unwrap();
        assert_eq!(
            (
                h.path.as_str(),
                h.healthy,
                h.unhealthy,
                h.interval_on_aws,
                h.deregistration_delay
            ),
            ("/readyz", 2, 3, 15, 15)
        );
    }

    fn broken(from: &str, to: &str) -> RenderedError {
        let text = CFN.replacen(from, to, 1);
        assert_ne!(text, CFN, "{from:?} is not in the rendered template");
        Template::parse("cfn.yaml", &text)
            .unwrap()
            .scaling(true)
            .unwrap_err()
    }

    #[test]
    fn a_hand_edited_target_names_the_file_line_key_and_reason() {
        let e = broken("TargetValue: 50", "TargetValue: abc");
        assert_eq!(
            e.path,
            "Resources.CpuScalingPolicy.Properties.TargetTrackingConfiguration.TargetValue"
        );
        assert_eq!(e.reason, "\"abc\" is not a number");
        let (line, _) = e.line.expect("located");
        assert!(CFN.lines().nth(line - 1).unwrap().contains("TargetValue"));
        assert!(
            e.to_string().starts_with(&format!("cfn.yaml:{line}:")),
            "{e}"
        );
    }

    #[test]
    fn max_below_min_missing_policy_and_other_types_are_refused() {
        let e = broken("MaxSize: \"6\"", "MaxSize: \"1\"");
        assert!(
            e.path.ends_with("AutoScalingGroup.Properties.MaxSize"),
            "{e}"
        );
        assert!(e.reason.contains("MaxSize 1 is less than MinSize 2"), "{e}");
        let e = broken(
            "Type: AWS::AutoScaling::ScalingPolicy",
            "Type: AWS::CloudWatch::Dashboard",
        );
        assert!(
            e.reason
                .contains("no AWS::AutoScaling::ScalingPolicy for AutoScalingGroup"),
            "{e}"
        );
        let e = broken(
            "PolicyType: TargetTrackingScaling",
            "PolicyType: StepScaling",
        );
        assert!(
            e.reason.contains("StepScaling policies are not rehearsed"),
            "{e}"
        );
        let e = broken(
            "PredefinedMetricType: ASGAverageCPUUtilization",
            "PredefinedMetricType: ASGAverageNetworkIn",
        );
        assert!(
            e.reason.contains("ASGAverageNetworkIn is not measured"),
            "{e}"
        );
        let e = broken(
            "MinSize: \"2\"\n",
            "MinSize: \"2\"\n      DesiredCapacity: \"9\"\n",
        );
        assert!(e.reason.contains("outside MinSize 2 .. MaxSize 6"), "{e}");
        let e = broken("MinSize: \"2\"", "MinSize: !GetAtt X.Y");
        assert!(e.reason.contains("cannot be evaluated"), "{e}");
    }

    #[test]
    fn ref_to_a_parameter_uses_its_default() {
        let text = CFN
            .replacen("MaxSize: \"6\"", "MaxSize: !Ref MaxInstances", 1)
            .replacen(
                "Parameters:\n",
                "Parameters:\n  MaxInstances:\n    Type: Number\n    Default: 4\n",
                1,
            );
        let s = Template::parse("cfn.yaml", &text)
            .unwrap()
            .scaling(true)
            .unwrap();
        assert_eq!(s.group.max, 4);
        let text = CFN.replacen("MaxSize: \"6\"", "MaxSize: !Ref Nowhere", 1);
        let e = Template::parse("cfn.yaml", &text)
            .unwrap()
            .scaling(true)
            .unwrap_err();
        assert!(
            e.reason
                .contains("!Ref Nowhere has no Parameters.Nowhere.Default"),
            "{e}"
        );
    }

    #[test]
    fn reads_the_request_policy_when_the_spec_asks_for_one() {
        let mut spec = crate::spec::embedded_default();
        spec.objective2.target_requests_per_instance = Some(1000);
        let r = crate::render::render(
            &spec,
            &crate::blueprints::Source::Embedded,
            crate::blueprints::Objective::Objective2,
            "out/objective2",
        )
        .unwrap();
        let cfn = r
            .files
            .iter()
            .find(|f| f.path == "cloudformation.yaml")
            .unwrap();
        let s = Template::parse("cfn.yaml", &cfn.content)
            .unwrap()
            .scaling(true)
            .unwrap();
        let names: Vec<(&str, Metric, f64)> = s
            .policies
            .iter()
            .map(|p| (p.name.as_str(), p.metric, p.target))
            .collect();
        assert_eq!(
            names,
            [
                ("CpuScalingPolicy", Metric::AsgAverageCpuUtilization, 50.0),
                (
                    "RequestScalingPolicy",
                    Metric::AlbRequestCountPerTarget,
                    1000.0
                )
            ]
        );
    }
}

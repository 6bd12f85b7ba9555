//! `bookstore cost objective1|objective2|objective3`: a monthly on-demand estimate from the
//! spec and a pinned price table ([`prices`]), offline. Each line shows its formula; the totals
//! are at the smallest and the largest scale the spec allows.

pub mod prices;

use crate::blueprints::{Objective, Source};
use crate::render;
use crate::spec::Spec;
use prices::{price_of, RegionPrices, HOURS_PER_MONTH as H};

/// What the spec does not say, assumed for the estimate (each printed).
#[derive(Debug, Clone, clap::Args)]
pub struct Assumptions {
    /// GB a month through each NAT gateway (image pulls, package updates, AWS APIs).
    #[arg(long, value_name = "GB", default_value_t = 20.0)]
    pub nat_gb: f64,
    /// GB of covers on EFS.
    #[arg(long, value_name = "GB", default_value_t = 5.0)]
    pub efs_gb: f64,
    /// Average load balancer capacity units (1 LCU: 25 new connections/s, 1 GB/h).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub lcu: f64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Self {
            nat_gb: 20.0,
            efs_gb: 5.0,
            lcu: 1.0,
        }
    }
}

/// One line of the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What is billed.
    pub item: String,
    /// How the amount is computed.
    pub formula: String,
    /// USD per month at the smallest scale.
    pub min: f64,
    /// USD per month at the largest scale.
    pub max: f64,
}

/// A monthly estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Which objective.
    pub objective: Objective,
    /// The region priced.
    pub region: String,
    /// Its lines.
    pub lines: Vec<Line>,
    /// What is not counted, and why.
    pub notes: Vec<String>,
}

impl Estimate {
    /// The total at the smallest scale.
    pub fn total_min(&self) -> f64 {
        self.lines.iter().map(|l| l.min).sum()
    }
    /// The total at the largest scale.
    pub fn total_max(&self) -> f64 {
        self.lines.iter().map(|l| l.max).sum()
    }
}

fn fixed(item: impl Into<String>, formula: impl Into<String>, usd: f64) -> Line {
    Line {
        item: item.into(),
        formula: formula.into(),
        min: usd,
        max: usd,
    }
}

fn ec2(p: &RegionPrices, t: &str, path: &str) -> Result<f64, String> {
    price_of(p.ec2, t).ok_or_else(|| {
        let known: Vec<&str> = p.ec2.iter().map(|(n, _)| *n).collect();
        format!(
            "`{path}`: no pinned price for instance type `{t}` in {}; the table knows {}. Estimate it with https://calculator.aws/",
            p.region,
            known.join(", ")
        )
    })
}

/// Computes the estimate; `Err` is bad input (a region or type the table does not have).
pub fn estimate(spec: &Spec, objective: Objective, a: &Assumptions) -> Result<Estimate, String> {
    let region = &spec.project.region;
    let p = prices::region(region).ok_or_else(|| {
        format!(
            "`project.region`: no pinned prices for `{region}`; the table knows {} (prices as of {}). Estimate other regions with https://calculator.aws/",
            prices::known_regions().join(", "),
            prices::PRICES_AS_OF
        )
    })?;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    match objective {
        Objective::Objective1 => {
            let o = &spec.objective1;
            let h = ec2(p, &o.instance_type, "objective1.instance_type")?;
            lines.push(fixed(
                format!("EC2 {}", o.instance_type),
                format!("{h} $/h × {H} h"),
                h * H,
            ));
            let gb = f64::from(o.root_volume_gb);
            lines.push(fixed(
                "EBS gp3 root volume",
                format!("{gb} GB × {} $/GB-month", p.ebs_gp3_gb),
                gb * p.ebs_gp3_gb,
            ));
            let data = f64::from(spec.database.storage_gb);
            lines.push(fixed(
                "EBS gp3 data volume (MySQL, covers)",
                format!("{data} GB × {} $/GB-month", p.ebs_gp3_gb),
                data * p.ebs_gp3_gb,
            ));
            lines.push(fixed(
                "public IPv4 (Elastic IP)",
                format!("1 × {} $/h × {H} h", p.ipv4_hour),
                p.ipv4_hour * H,
            ));
            notes.push("MySQL runs on the VM: no RDS line; data transfer out to the internet is not counted".into());
            notes.push(format!(
                "the data volume's daily snapshots ({} kept) are incremental, billed per GB changed: not counted",
                spec.database.backup_retention_days
            ));
        }
        Objective::Objective2 => objective2(spec, p, a, &mut lines, &mut notes)?,
        Objective::Objective3 => objective3(spec, p, a, &mut lines, &mut notes)?,
        Objective::Loadtest => {
            return Err(
                "the load-test Job runs on a cluster you already pay for; it has no estimate of its own".into(),
            )
        }
    }
    Ok(Estimate {
        objective,
        region: region.clone(),
        lines,
        notes,
    })
}

fn objective2(
    spec: &Spec,
    p: &RegionPrices,
    a: &Assumptions,
    lines: &mut Vec<Line>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let o = &spec.objective2;
    let (lo, hi) = (f64::from(o.min_size), f64::from(o.max_size));
    let h = ec2(p, &o.instance_type, "objective2.instance_type")?;
    lines.push(Line {
        item: format!("EC2 {} (auto-scaling group)", o.instance_type),
        formula: format!(
            "{h} $/h × {H} h × {} (min) .. {} (max) instances; desired {}",
            o.min_size, o.max_size, o.desired_capacity
        ),
        min: h * H * lo,
        max: h * H * hi,
    });
    let gb = f64::from(o.root_volume_gb);
    lines.push(Line {
        item: "EBS gp3 root volumes".into(),
        formula: format!("{gb} GB × {} $/GB-month × instances", p.ebs_gp3_gb),
        min: gb * p.ebs_gp3_gb * lo,
        max: gb * p.ebs_gp3_gb * hi,
    });
    let d = &spec.database;
    let azs = if d.multi_az { 2.0 } else { 1.0 };
    let class = price_of(p.rds, &d.instance_class).ok_or_else(|| {
        let known: Vec<&str> = p.rds.iter().map(|(n, _)| *n).collect();
        format!(
            "`database.instance_class`: no pinned price for `{}` in {}; the table knows {}",
            d.instance_class,
            p.region,
            known.join(", ")
        )
    })?;
    let az_text = if d.multi_az {
        "× 2 (Multi-AZ)"
    } else {
        "× 1 (Single-AZ)"
    };
    lines.push(fixed(
        format!("RDS MySQL {}", d.instance_class),
        format!("{class} $/h × {H} h {az_text}"),
        class * H * azs,
    ));
    let sgb = f64::from(d.storage_gb);
    lines.push(fixed(
        "RDS gp3 storage",
        format!("{sgb} GB × {} $/GB-month {az_text}", p.rds_gp3_gb),
        sgb * p.rds_gp3_gb * azs,
    ));
    lines.push(fixed(
        "EFS Standard (covers)",
        format!("{} GB (--efs-gb) × {} $/GB-month", a.efs_gb, p.efs_gb),
        a.efs_gb * p.efs_gb,
    ));
    let net = &o.network;
    let nats = if net.existing_vpc_id.is_none() {
        f64::from(net.nat_gateways)
    } else {
        0.0
    };
    if nats > 0.0 {
        lines.push(fixed(
            "NAT gateways",
            format!("{nats} × {} $/h × {H} h", p.nat_hour),
            nats * p.nat_hour * H,
        ));
        lines.push(fixed(
            "NAT data processed",
            format!("{nats} × {} GB (--nat-gb) × {} $/GB", a.nat_gb, p.nat_gb),
            nats * a.nat_gb * p.nat_gb,
        ));
    } else {
        notes.push("existing VPC: its NAT gateways are not counted".into());
    }
    lines.push(fixed(
        "Application Load Balancer",
        format!(
            "({} $/h + {} LCU (--lcu) × {} $/LCU-h) × {H} h",
            p.lb_hour, a.lcu, p.alb_lcu_hour
        ),
        (p.lb_hour + a.lcu * p.alb_lcu_hour) * H,
    ));
    let ips = 2.0 + nats;
    lines.push(fixed(
        "public IPv4 addresses",
        format!("{ips} (ALB in 2 zones + NAT) × {} $/h × {H} h", p.ipv4_hour),
        ips * p.ipv4_hour * H,
    ));
    if net.vpc_endpoints {
        let n = interface_endpoints(spec);
        lines.push(fixed(
            "VPC interface endpoints",
            format!("{n} endpoints × 2 zones × {} $/h × {H} h", p.endpoint_hour),
            n as f64 * 2.0 * p.endpoint_hour * H,
        ));
    }
    notes.push("not counted: data transfer out, CloudWatch, backups beyond the database's size, Route 53 ($0.50 per hosted zone), ACM (free)".into());
    Ok(())
}

fn objective3(
    spec: &Spec,
    p: &RegionPrices,
    a: &Assumptions,
    lines: &mut Vec<Line>,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let e = &spec.objective3.eks;
    lines.push(fixed(
        "EKS control plane",
        format!("{} $/h × {H} h", p.eks_hour),
        p.eks_hour * H,
    ));
    let h = ec2(p, &e.instance_type, "objective3.eks.instance_type")?;
    let (lo, hi) = (f64::from(e.min_nodes), f64::from(e.max_nodes));
    lines.push(Line {
        item: format!("EC2 {} (managed node group)", e.instance_type),
        formula: format!(
            "{h} $/h × {H} h × {} (min) .. {} (max) nodes",
            e.min_nodes, e.max_nodes
        ),
        min: h * H * lo,
        max: h * H * hi,
    });
    let gb = node_volume_gb(spec);
    lines.push(Line {
        item: "EBS gp3 node volumes".into(),
        formula: format!(
            "{gb} GB (eks/cluster.yaml volumeSize) × {} $/GB-month × nodes",
            p.ebs_gp3_gb
        ),
        min: gb * p.ebs_gp3_gb * lo,
        max: gb * p.ebs_gp3_gb * hi,
    });
    lines.push(fixed(
        "Network Load Balancer (gateway/ingress Service)",
        format!(
            "({} $/h + {} NLCU (--lcu) × {} $/NLCU-h) × {H} h",
            p.lb_hour, a.lcu, p.nlb_lcu_hour
        ),
        (p.lb_hour + a.lcu * p.nlb_lcu_hour) * H,
    ));
    notes.push("the database, EFS and the VPC (with its NAT gateways) are objective 2's: run `bookstore cost objective2` for them".into());
    Ok(())
}

/// Interface endpoints in objective 2's rendered template.
fn interface_endpoints(spec: &Spec) -> usize {
    rendered_file(spec, Objective::Objective2, "cloudformation.yaml")
        .map_or(0, |t| t.matches("VpcEndpointType: Interface").count())
}

/// The node volume size in objective 3's rendered `eks/cluster.yaml`.
fn node_volume_gb(spec: &Spec) -> f64 {
    rendered_file(spec, Objective::Objective3, "eks/cluster.yaml")
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.trim().strip_prefix("volumeSize:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(80.0)
}

fn rendered_file(spec: &Spec, objective: Objective, path: &str) -> Option<String> {
    let r = render::render(spec, &Source::Embedded, objective, "out").ok()?;
    r.files
        .into_iter()
        .find(|f| f.path == path)
        .map(|f| f.content)
}

/// The estimate as a table.
pub fn format(e: &Estimate) -> String {
    let mut out = format!(
        "{} in {}: monthly on-demand estimate, USD (prices pinned {}; {} h a month)\n",
        e.objective.name(),
        e.region,
        prices::PRICES_AS_OF,
        H
    );
    let iw = e
        .lines
        .iter()
        .map(|l| l.item.len())
        .max()
        .unwrap_or(4)
        .max(5);
    let fw = e
        .lines
        .iter()
        .map(|l| l.formula.chars().count())
        .max()
        .unwrap_or(7);
    out.push_str(&format!(
        "{:<iw$}  {:<fw$}  {:>9}  {:>9}\n",
        "ITEM", "FORMULA", "AT MIN", "AT MAX"
    ));
    for l in &e.lines {
        let pad = fw - l.formula.chars().count();
        out.push_str(&format!(
            "{:<iw$}  {}{}  {:>9.2}  {:>9.2}\n",
            l.item,
            l.formula,
            " ".repeat(pad),
            l.min,
            l.max
        ));
    }
    out.push_str(&format!(
        "{:<iw$}  {:<fw$}  {:>9.2}  {:>9.2}\n",
        "TOTAL",
        "",
        e.total_min(),
        e.total_max()
    ));
    for n in &e.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

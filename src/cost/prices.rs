//! The pinned on-demand price table: USD, Linux, no free tier, no savings plans. Copied by hand
//! from AWS's public price pages on [`PRICES_AS_OF`]; never fetched at run time. Check a real
//! budget against <https://calculator.aws/> before you commit to it.

/// When the prices below were copied.
pub const PRICES_AS_OF: &str = "2025-06-01";

/// Hours in AWS's billing month.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// One region's prices.
#[derive(Debug, Clone, Copy)]
pub struct RegionPrices {
    /// Region code.
    pub region: &'static str,
    /// EC2 instance types, USD per hour.
    pub ec2: &'static [(&'static str, f64)],
    /// RDS for MySQL classes, Single-AZ, USD per hour (Multi-AZ: twice).
    pub rds: &'static [(&'static str, f64)],
    /// EBS gp3, USD per GB-month.
    pub ebs_gp3_gb: f64,
    /// RDS gp3 storage, Single-AZ, USD per GB-month (Multi-AZ: twice).
    pub rds_gp3_gb: f64,
    /// EFS Standard storage, USD per GB-month.
    pub efs_gb: f64,
    /// NAT gateway, USD per hour.
    pub nat_hour: f64,
    /// NAT gateway data processed, USD per GB.
    pub nat_gb: f64,
    /// Application (and Network) Load Balancer, USD per hour.
    pub lb_hour: f64,
    /// ALB LCU, USD per LCU-hour.
    pub alb_lcu_hour: f64,
    /// NLB NLCU, USD per NLCU-hour.
    pub nlb_lcu_hour: f64,
    /// Interface VPC endpoint, USD per hour per Availability Zone.
    pub endpoint_hour: f64,
    /// Public IPv4 address, USD per hour.
    pub ipv4_hour: f64,
    /// EKS control plane (standard support), USD per hour.
    pub eks_hour: f64,
}

const US_EC2: &[(&str, f64)] = &[
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3.xlarge", 0.1664),
    ("t4g.micro", 0.0084),
    ("t4g.small", 0.0168),
    ("t4g.medium", 0.0336),
    ("t4g.large", 0.0672),
    ("m6i.large", 0.096),
    ("m7i.large", 0.1008),
    ("m6g.large", 0.077),
    ("m7g.large", 0.0816),
    ("c6i.large", 0.085),
    ("c7g.large", 0.0725),
];

const US_RDS: &[(&str, f64)] = &[
    ("db.t3.micro", 0.017),
    ("db.t3.small", 0.034),
    ("db.t3.medium", 0.068),
    ("db.t4g.micro", 0.016),
    ("db.t4g.small", 0.032),
    ("db.t4g.medium", 0.065),
    ("db.t4g.large", 0.129),
    ("db.m6g.large", 0.152),
    ("db.m7g.large", 0.168),
    ("db.r6g.large", 0.215),
];

/// The regions this table knows.
pub const REGIONS: &[RegionPrices] = &[
    us("us-east-1"),
    us("us-east-2"),
    us("us-west-2"),
    RegionPrices {
        region: "eu-west-1",
        ec2: &[
            ("t3.micro", 0.0114),
            ("t3.small", 0.0228),
            ("t3.medium", 0.0456),
            ("t3.large", 0.0912),
            ("t3.xlarge", 0.1824),
            ("t4g.micro", 0.0092),
            ("t4g.small", 0.0184),
            ("t4g.medium", 0.0368),
            ("t4g.large", 0.0736),
            ("m6i.large", 0.107),
            ("m7i.large", 0.1124),
            ("m6g.large", 0.086),
            ("m7g.large", 0.0912),
            ("c6i.large", 0.096),
            ("c7g.large", 0.0816),
        ],
        rds: &[
            ("db.t3.micro", 0.018),
            ("db.t3.small", 0.036),
            ("db.t3.medium", 0.073),
            ("db.t4g.micro", 0.018),
            ("db.t4g.small", 0.036),
            ("db.t4g.medium", 0.072),
            ("db.t4g.large", 0.144),
            ("db.m6g.large", 0.168),
            ("db.m7g.large", 0.186),
            ("db.r6g.large", 0.238),
        ],
        ebs_gp3_gb: 0.088,
        rds_gp3_gb: 0.127,
        efs_gb: 0.33,
        nat_hour: 0.048,
        nat_gb: 0.048,
        lb_hour: 0.0252,
        alb_lcu_hour: 0.008,
        nlb_lcu_hour: 0.006,
        endpoint_hour: 0.011,
        ipv4_hour: 0.005,
        eks_hour: 0.10,
    },
];

const fn us(region: &'static str) -> RegionPrices {
    RegionPrices {
        region,
        ec2: US_EC2,
        rds: US_RDS,
        ebs_gp3_gb: 0.08,
        rds_gp3_gb: 0.115,
        efs_gb: 0.30,
        nat_hour: 0.045,
        nat_gb: 0.045,
        lb_hour: 0.0225,
        alb_lcu_hour: 0.008,
        nlb_lcu_hour: 0.006,
        endpoint_hour: 0.01,
        ipv4_hour: 0.005,
        eks_hour: 0.10,
    }
}

/// The prices of `region`, if the table has it.
pub fn region(code: &str) -> Option<&'static RegionPrices> {
    REGIONS.iter().find(|r| r.region == code)
}

/// The codes of the regions the table has.
pub fn known_regions() -> Vec<&'static str> {
    REGIONS.iter().map(|r| r.region).collect()
}

/// Looks `name` up in a (name, price) list.
pub fn price_of(list: &[(&str, f64)], name: &str) -> Option<f64> {
    list.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

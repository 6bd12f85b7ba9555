//! The typed spec: one YAML file that describes every objective. Every field has a default.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole spec (`bookstore.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Project name and AWS region.
    pub project: Project,
    /// Public domain and Let's Encrypt account.
    pub domain: Domain,
    /// The shop's container image and settings.
    pub app: App,
    /// The MySQL database.
    pub database: Database,
    /// References to secrets (never the values).
    pub secrets: Secrets,
    /// The shared covers directory (NFS/EFS).
    pub shared_files: SharedFiles,
    /// The NGINX reverse proxy.
    pub nginx: Nginx,
    /// Objective 1: one VM.
    pub objective1: Objective1,
    /// Objective 2: auto-scaling VMs behind a load balancer.
    pub objective2: Objective2,
    /// Objective 3: Kubernetes (and Docker Swarm).
    pub objective3: super::Objective3,
    /// The load-test Job: `bookstore loadtest` generators as a Kubernetes Indexed Job.
    pub loadtest: super::Loadtest,
}

/// Project identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Project {
    /// Short name used for stacks, resources and tags (lowercase letters, digits, dashes).
    pub name: String,
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// Deployment environment tag, e.g. `production`.
    pub environment: String,
}

impl Default for Project {
    fn default() -> Self {
        Self {
            name: "bookstore".into(),
            region: "us-east-1".into(),
            environment: "production".into(),
        }
    }
}

/// Public domain and TLS certificate settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Domain {
    /// Fully qualified host name the shop is served on.
    pub name: String,
    /// E-mail for the Let's Encrypt account (expiry notices).
    pub letsencrypt_email: String,
    /// Use the Let's Encrypt staging CA (untrusted certificates, generous rate limits).
    pub letsencrypt_staging: bool,
    /// The ACME directory certbot (objective 1) gets the certificate from; `None`: Let's Encrypt
    /// (production, or staging with `letsencrypt_staging`). See [`Domain::acme_directory`].
    pub acme_server: Option<String>,
    /// Route 53 hosted zone ID; when set, DNS records (and ACM validation) are created there.
    pub hosted_zone_id: Option<String>,
}

impl Default for Domain {
    fn default() -> Self {
        Self {
            name: "shop.example.com".into(),
            letsencrypt_email: "ops@example.com".into(),
            letsencrypt_staging: false,
            acme_server: None,
            hosted_zone_id: None,
        }
    }
}

/// Let's Encrypt's production ACME directory.
pub const LETSENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging ACME directory (untrusted certificates, generous rate limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The pinned AWS CLI v2 image the VMs run as `aws` (the same on every AMI).
pub const AWS_CLI_IMAGE: &str = "public.ecr.aws/aws-cli/aws-cli:2.27.26";

impl Domain {
    /// The ACME directory URL in effect: `acme_server`, else Let's Encrypt staging or production.
    pub fn acme_directory(&self) -> &str {
        match (&self.acme_server, self.letsencrypt_staging) {
            (Some(url), _) => url,
            (None, true) => LETSENCRYPT_STAGING,
            (None, false) => LETSENCRYPT_PRODUCTION,
        }
    }
}

/// The shop container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct App {
    /// Image repository, without the tag.
    pub image: String,
    /// Image tag; pinned (never `latest`).
    pub tag: String,
    /// Port the shop listens on inside the container.
    pub port: u16,
    /// `RUST_LOG` filter.
    pub log_level: String,
    /// Longest graceful drain after SIGTERM, in seconds.
    pub drain_seconds: u32,
    /// E-mail of the admin account created at start if absent (its password is `secrets.admin_password`).
    pub admin_email: String,
    /// Largest cover upload NGINX accepts, in MiB.
    pub max_upload_mb: u32,
    /// Extra non-secret environment variables for the shop.
    pub env: BTreeMap<String, String>,
}

impl Default for App {
    fn default() -> Self {
        Self {
            image: "ghcr.io/bookstore-rs/bookstore-app".into(),
            tag: "0.1.0".into(),
            port: 8080,
            log_level: "info".into(),
            drain_seconds: 20,
            admin_email: "admin@example.com".into(),
            max_upload_mb: 5,
            env: BTreeMap::new(),
        }
    }
}

/// The MySQL database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Schema name.
    pub name: String,
    /// Application user (RDS master user in objective 2).
    pub user: String,
    /// MySQL engine version (8.4 LTS).
    pub engine_version: String,
    /// Container image for objective 1's database.
    pub image: String,
    /// RDS instance class (objective 2).
    pub instance_class: String,
    /// RDS storage in GiB.
    pub storage_gb: u32,
    /// RDS Multi-AZ standby.
    pub multi_az: bool,
    /// Days of automated backups (7 to 35: a week of point-in-time recovery at least).
    pub backup_retention_days: u32,
    /// MySQL port.
    pub port: u16,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            name: "bookstore".into(),
            user: "bookstore".into(),
            engine_version: "8.4".into(),
            image: "public.ecr.aws/docker/library/mysql:8.4.7".into(),
            instance_class: "db.t4g.micro".into(),
            storage_gb: 20,
            multi_az: true,
            backup_retention_days: 7,
            port: 3306,
        }
    }
}

/// Where the secrets live: references such as `ssm:/bookstore/database-password`, never values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// SSM SecureString parameter holding the database password (objectives 1 and 3).
    pub database_password: String,
    /// SSM SecureString parameter holding the session/CSRF signing key.
    pub secret_key: String,
    /// SSM SecureString parameter holding the admin password.
    pub admin_password: String,
    /// SSM SecureString parameter holding the MySQL root password (objective 1).
    pub database_root_password: String,
    /// Name of the Kubernetes Secret that holds all of them (objective 3).
    pub kubernetes_secret: String,
}

impl Default for Secrets {
    fn default() -> Self {
        Self {
            database_password: "ssm:/bookstore/database-password".into(),
            secret_key: "ssm:/bookstore/secret-key".into(),
            admin_password: "ssm:/bookstore/admin-password".into(),
            database_root_password: "ssm:/bookstore/database-root-password".into(),
            kubernetes_secret: "bookstore-secrets".into(),
        }
    }
}

/// The shared covers directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedFiles {
    /// Host path where the shared directory is mounted (EFS/NFS in objectives 2 and 3).
    pub mount_path: String,
    /// Path inside the container, handed to the shop as `BOOKSTORE_UPLOADS_DIR`.
    pub container_path: String,
}

impl Default for SharedFiles {
    fn default() -> Self {
        Self {
            mount_path: "/srv/bookstore/uploads".into(),
            container_path: "/var/lib/bookstore/uploads".into(),
        }
    }
}

/// The NGINX reverse proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nginx {
    /// NGINX version on objective 1's VM, the one its AMI's archive ships (Debian 13: 1.26);
    /// `http2 on;` needs 1.25.1 or later.
    pub version: String,
    /// HSTS max-age in seconds.
    pub hsts_max_age: u32,
    /// Upstream keepalive connections per worker.
    pub upstream_keepalive: u32,
}

impl Default for Nginx {
    fn default() -> Self {
        Self {
            version: "1.26".into(),
            hsts_max_age: 63_072_000,
            upstream_keepalive: 32,
        }
    }
}

/// Objective 1: one VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Objective1 {
    /// EC2 instance type.
    pub instance_type: String,
    /// SSM public parameter that names the AMI.
    pub ami_parameter: String,
    /// Root volume size in GiB (gp3, encrypted).
    pub root_volume_gb: u32,
    /// CIDRs allowed to reach ports 80 and 443.
    pub allowed_cidrs: Vec<String>,
    /// Pinned AWS CLI v2 image behind the VM's `aws` (Ubuntu 24.04's archive has no awscli).
    pub aws_cli_image: String,
}

impl Default for Objective1 {
    fn default() -> Self {
        Self {
            instance_type: "t3.small".into(),
            ami_parameter: super::vm_os::DEFAULT_AMI_PARAMETER.into(),
            root_volume_gb: 20,
            allowed_cidrs: vec!["0.0.0.0/0".into()],
            aws_cli_image: AWS_CLI_IMAGE.into(),
        }
    }
}

/// Objective 2: auto-scaling VMs behind an ALB, RDS, EFS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Objective2 {
    /// EC2 instance type of the auto-scaling group.
    pub instance_type: String,
    /// SSM public parameter that names the AMI.
    pub ami_parameter: String,
    /// Smallest group size.
    pub min_size: u32,
    /// Initial group size.
    pub desired_capacity: u32,
    /// Largest group size.
    pub max_size: u32,
    /// Target average CPU utilisation, in percent.
    pub target_cpu_percent: u32,
    /// Optional second target-tracking policy: ALB requests per instance (per minute); null: CPU only.
    pub target_requests_per_instance: Option<u32>,
    /// Root volume size in GiB (gp3, encrypted).
    pub root_volume_gb: u32,
    /// Seconds the group ignores a failing ELB health check after an instance enters service.
    pub health_check_grace_seconds: u32,
    /// Seconds a new instance's metrics are left out of the scaling decisions (default instance warm-up).
    pub instance_warmup_seconds: u32,
    /// An existing ACM certificate ARN for the domain; null: the stack requests one, DNS-validated
    /// in `domain.hosted_zone_id` (or by a CNAME you create when no zone is set).
    pub certificate_arn: Option<String>,
    /// NGINX container image (pinned) that runs beside the shop on every instance.
    pub nginx_image: String,
    /// AWS CLI container image (pinned) the instances use at boot (secrets, lifecycle signal).
    pub aws_cli_image: String,
    /// The network: a new VPC or an existing one.
    pub network: Network,
}

impl Default for Objective2 {
    fn default() -> Self {
        Self {
            instance_type: "t3.small".into(),
            ami_parameter: super::vm_os::DEFAULT_AMI_PARAMETER.into(),
            min_size: 2,
            desired_capacity: 2,
            max_size: 6,
            target_cpu_percent: 50,
            target_requests_per_instance: None,
            root_volume_gb: 20,
            health_check_grace_seconds: 120,
            instance_warmup_seconds: 120,
            certificate_arn: None,
            nginx_image: "public.ecr.aws/nginx/nginx:1.28.0-alpine".into(),
            aws_cli_image: AWS_CLI_IMAGE.into(),
            network: Network::default(),
        }
    }
}

/// The VPC for objective 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// CIDR of the new VPC, or of the existing one when `existing_vpc_id` is set (NGINX believes
    /// the load balancer's `X-Forwarded-For` from it).
    pub vpc_cidr: String,
    /// CIDRs of the two public subnets.
    pub public_subnet_cidrs: Vec<String>,
    /// CIDRs of the two private subnets.
    pub private_subnet_cidrs: Vec<String>,
    /// Use this VPC instead of creating one.
    pub existing_vpc_id: Option<String>,
    /// Public subnets of the existing VPC.
    pub existing_public_subnet_ids: Vec<String>,
    /// Private subnets of the existing VPC.
    pub existing_private_subnet_ids: Vec<String>,
    /// NAT gateways of a new VPC: 1 (cheaper) or 2 (one per AZ, survives an AZ outage).
    pub nat_gateways: u32,
    /// Interface endpoints (SSM, Secrets Manager, Auto Scaling, CloudFormation, ECR) in the private
    /// subnets and, in a new VPC, an S3 gateway endpoint: AWS API traffic stays off the NAT.
    pub vpc_endpoints: bool,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            vpc_cidr: "10.40.0.0/16".into(),
            public_subnet_cidrs: vec!["10.40.0.0/24".into(), "10.40.1.0/24".into()],
            private_subnet_cidrs: vec!["10.40.10.0/24".into(), "10.40.11.0/24".into()],
            existing_vpc_id: None,
            existing_public_subnet_ids: Vec::new(),
            existing_private_subnet_ids: Vec::new(),
            nat_gateways: 2,
            vpc_endpoints: false,
        }
    }
}

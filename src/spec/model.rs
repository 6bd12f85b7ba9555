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
    pub objective3: Objective3,
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
            image: "mysql:8.4.7".into(),
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
    /// NGINX version on the VM (Debian 12 ships 1.22); `http2 on;` needs 1.25.1 or later.
    pub version: String,
    /// HSTS max-age in seconds.
    pub hsts_max_age: u32,
    /// Upstream keepalive connections per worker.
    pub upstream_keepalive: u32,
}

impl Default for Nginx {
    fn default() -> Self {
        Self {
            version: "1.22".into(),
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
}

impl Default for Objective1 {
    fn default() -> Self {
        Self {
            instance_type: "t3.small".into(),
            ami_parameter: "/aws/service/debian/release/12/latest/amd64".into(),
            root_volume_gb: 20,
            allowed_cidrs: vec!["0.0.0.0/0".into()],
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
            ami_parameter: "/aws/service/debian/release/12/latest/amd64".into(),
            min_size: 2,
            desired_capacity: 2,
            max_size: 6,
            target_cpu_percent: 50,
            target_requests_per_instance: None,
            root_volume_gb: 20,
            health_check_grace_seconds: 120,
            instance_warmup_seconds: 120,
            certificate_arn: None,
            nginx_image: "nginx:1.28.0-alpine".into(),
            aws_cli_image: "public.ecr.aws/aws-cli/aws-cli:2.27.26".into(),
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

/// Objective 3: Kubernetes and Docker Swarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Objective3 {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Replicas when `autoscale` is off (with the HPA on, the HPA owns the count).
    pub replicas: u32,
    /// HPA minimum.
    pub min_replicas: u32,
    /// HPA maximum.
    pub max_replicas: u32,
    /// HPA target average CPU utilisation, in percent of the CPU request.
    pub target_cpu_percent: u32,
    /// Render a HorizontalPodAutoscaler (the Deployment then leaves `replicas` unset).
    pub autoscale: bool,
    /// How the HPA scales up.
    pub scale_up: ScaleUp,
    /// How the HPA scales down.
    pub scale_down: ScaleDown,
    /// Pods that must stay up during voluntary disruptions (PodDisruptionBudget minAvailable).
    pub pdb_min_available: u32,
    /// How traffic reaches the shop: Gateway API or an Ingress.
    pub routing: Routing,
    /// GatewayClass of the Gateway (`routing: gateway`); `eg` is Envoy Gateway's, whose
    /// BackendTrafficPolicy the blueprints use for the upload size limit.
    pub gateway_class: String,
    /// IngressClass of the Ingress (`routing: ingress`).
    pub ingress_class: String,
    /// Namespace of the gateway/ingress controller's proxies: the only pods the NetworkPolicy lets
    /// in. `null`: `envoy-gateway-system` for `routing: gateway`, `ingress-nginx` for `routing: ingress`.
    pub controller_namespace: Option<String>,
    /// CIDR of the cluster's VPC: pods (EKS VPC CNI), the database and the NFS/EFS server live in
    /// it. The NetworkPolicy allows egress to the database and NFS ports there. Objective 2's VPC
    /// (the same CIDR) or one that does not overlap it.
    pub vpc_cidr: String,
    /// The shared covers volume (ReadWriteMany): EFS through its CSI driver or plain NFS.
    pub shared_storage: SharedStorage,
    /// EFS file system ID (`shared_storage: efs_csi`).
    pub efs_file_system_id: String,
    /// EFS access point of the covers directory (objective 2's `UploadsAccessPointId` output): a
    /// static volume on it finds the same covers after every re-apply (`shared_storage: efs_csi`).
    pub efs_access_point_id: String,
    /// NFS server exporting the shared covers directory (`shared_storage: nfs`).
    pub nfs_server: String,
    /// Exported path on the NFS server: objective 2's covers directory `/uploads` (owned by UID
    /// 10001) on EFS, so every target shares one directory.
    pub nfs_path: String,
    /// Capacity written on the volume claim, in GiB (EFS ignores it; NFS quotas may not).
    pub storage_gb: u32,
    /// Where the Kubernetes Secret comes from: created by hand from SSM, or an ExternalSecret.
    pub secrets_source: SecretsSource,
    /// Host name or IPv4 address of the external MySQL database (e.g. objective 2's RDS endpoint).
    pub database_host: String,
    /// Secrets Manager secret (ARN) holding the database password as JSON `{"password": ...}`:
    /// objective 2's RDS-managed master secret, rotated every 7 days. null: `secrets.database_password`.
    pub database_secret_arn: Option<String>,
    /// Secrets Manager secret (ARN) of the shop's own least-privilege user `<database.user>_shop`,
    /// JSON `{"password": ...}`: objective 2's AppDatabaseSecretArn output, so both targets share
    /// one user and one password. null: `secrets.database_password`.
    pub app_database_secret_arn: Option<String>,
    /// CIDRs of the subnets the nodes and pods live in (the gateway/ingress proxies are pods): the
    /// only addresses the shop believes `X-Forwarded-For` from. Never the load balancer's subnets.
    pub pod_subnet_cidrs: Vec<String>,
    /// CIDRs of the public subnets the client-facing load balancer lives in (kept out of the
    /// trusted proxies).
    pub load_balancer_subnet_cidrs: Vec<String>,
    /// Namespace of the Prometheus that scrapes `/metrics` on port 9100 (the only way in to it).
    pub monitoring_namespace: String,
    /// The shop container's CPU request (also what the HPA's percentage is of).
    pub cpu_request: String,
    /// The shop container's memory request.
    pub memory_request: String,
    /// The shop container's memory limit (no CPU limit: it would throttle, the HPA scales instead).
    pub memory_limit: String,
    /// Seconds the preStop hook waits before SIGTERM, so endpoints drop the pod first.
    pub prestop_sleep_seconds: u32,
    /// The optional EKS cluster (`eks/cluster.yaml`, eksctl).
    pub eks: Eks,
    /// Replicas of the Docker Swarm service.
    pub swarm_replicas: u32,
}

/// How traffic reaches the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Gateway API `Gateway` + `HTTPRoute` (Envoy Gateway by default).
    Gateway,
    /// An `Ingress` for `ingress_class`.
    Ingress,
}

/// The shared covers volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStorage {
    /// Amazon EFS through the `efs.csi.aws.com` driver (an access point per claim).
    EfsCsi,
    /// A plain NFS export (`nfs_server`, `nfs_path`).
    Nfs,
}

/// Where the Kubernetes Secret comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretsSource {
    /// Created with the `kubectl create secret` command in the README.
    Manual,
    /// Synced from SSM Parameter Store by the External Secrets Operator.
    ExternalSecrets,
}

/// HPA scale-up behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleUp {
    /// Most pods added per period.
    pub pods: u32,
    /// Length of a period, in seconds.
    pub period_seconds: u32,
    /// Stabilisation window, in seconds (0: react at once).
    pub stabilization_seconds: u32,
}

impl Default for ScaleUp {
    fn default() -> Self {
        Self {
            pods: 4,
            period_seconds: 60,
            stabilization_seconds: 0,
        }
    }
}

/// HPA scale-down behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleDown {
    /// Largest share of the pods removed per period, in percent.
    pub percent: u32,
    /// Length of a period, in seconds.
    pub period_seconds: u32,
    /// Stabilisation window, in seconds.
    pub stabilization_seconds: u32,
}

impl Default for ScaleDown {
    fn default() -> Self {
        Self {
            percent: 50,
            period_seconds: 60,
            stabilization_seconds: 300,
        }
    }
}

/// The EKS cluster that `eks/cluster.yaml` describes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Eks {
    /// Kubernetes version of the cluster.
    pub version: String,
    /// EC2 instance type of the managed node group.
    pub instance_type: String,
    /// Smallest node group.
    pub min_nodes: u32,
    /// Largest node group.
    pub max_nodes: u32,
    /// The VPC the cluster joins: objective 2's (its stack's `VpcId` output), so the database and
    /// EFS are reachable. Its CIDR is `objective3.vpc_cidr`.
    pub vpc_id: String,
    /// Private subnets (one per zone) for the nodes and pods (objective 2's `PrivateSubnetIds`).
    pub private_subnet_ids: Vec<String>,
    /// Public subnets (one per zone) for the load balancer (objective 2's `PublicSubnetIds`).
    pub public_subnet_ids: Vec<String>,
}

impl Default for Eks {
    fn default() -> Self {
        Self {
            version: "1.35".into(),
            instance_type: "t3.medium".into(),
            min_nodes: 2,
            max_nodes: 6,
            vpc_id: "vpc-0123456789abcdef0".into(),
            private_subnet_ids: vec![
                "subnet-0123456789abcdef2".into(),
                "subnet-0123456789abcdef3".into(),
            ],
            public_subnet_ids: vec![
                "subnet-0123456789abcdef0".into(),
                "subnet-0123456789abcdef1".into(),
            ],
        }
    }
}

impl Default for Objective3 {
    fn default() -> Self {
        Self {
            namespace: "bookstore".into(),
            replicas: 2,
            min_replicas: 2,
            max_replicas: 10,
            target_cpu_percent: 60,
            autoscale: true,
            scale_up: ScaleUp::default(),
            scale_down: ScaleDown::default(),
            pdb_min_available: 1,
            routing: Routing::Gateway,
            gateway_class: "eg".into(),
            ingress_class: "nginx".into(),
            controller_namespace: None,
            vpc_cidr: "10.40.0.0/16".into(),
            shared_storage: SharedStorage::EfsCsi,
            efs_file_system_id: "fs-0123456789abcdef0".into(),
            efs_access_point_id: "fsap-0123456789abcdef0".into(),
            nfs_server: "fs-0123456789abcdef0.efs.us-east-1.amazonaws.com".into(),
            nfs_path: "/uploads".into(),
            storage_gb: 5,
            secrets_source: SecretsSource::Manual,
            database_host: "bookstore-db.example.internal".into(),
            database_secret_arn: None,
            app_database_secret_arn: None,
            pod_subnet_cidrs: vec!["10.40.10.0/24".into(), "10.40.11.0/24".into()],
            load_balancer_subnet_cidrs: vec!["10.40.0.0/24".into(), "10.40.1.0/24".into()],
            monitoring_namespace: "monitoring".into(),
            cpu_request: "250m".into(),
            memory_request: "128Mi".into(),
            memory_limit: "256Mi".into(),
            prestop_sleep_seconds: 5,
            eks: Eks::default(),
            swarm_replicas: 3,
        }
    }
}

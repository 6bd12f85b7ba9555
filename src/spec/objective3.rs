//! The `objective3:` section: Kubernetes (and Docker Swarm).

use serde::{Deserialize, Serialize};

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

//! The platform's side of autoscaling, shared by the objective 2 and objective 3 rehearsals:
//! what each instance uses ([`cpu`]), how fast the platform's clock runs ([`clock`]), the
//! algorithms that decide ([`target_tracking`] for EC2 Auto Scaling, [`hpa`] for the
//! Kubernetes HorizontalPodAutoscaler) and where every decision goes ([`decisions`], served by
//! [`status_server`]).
//!
//! The algorithms are pure: typed inputs (instances or pods with their datapoints, platform
//! seconds), typed outputs (the capacity and [`decisions::Evaluation`] records in the log's
//! format), no I/O, unit-tested against the platforms' documented examples. The rehearsals do
//! the I/O: they meter CPU, count requests at the load balancer, call the algorithm once per
//! period of platform time, record its answer and launch or drain instances.
//!
//! A rehearsal uses it like this:
//! ```text
//! let clock = PlatformClock::start(opts.time_scale);
//! let meter = CpuMeter::new(0.25)?;                      // cgroup quotas, or measured only
//! let group = meter.group("i-rehearsal-3")?;             // per instance
//! group.prepare(&mut command);                           // before spawning each process
//! let log = DecisionLog::create(&work.join("decisions.jsonl"), Autoscaler::TargetTracking, clock)?;
//! let board = StatusBoard::new(status);
//! let server = StatusServer::start(opts.status_port, log.clone(), board.clone())?;
//! println!("autoscaler: {}", server.url());
//! // every period: sample, evaluate, record
//! let out = target_tracking.evaluate(clock.platform_seconds(), desired, &instances);
//! for e in out.evaluations { log.record(Entry::Evaluation(e))?; }
//! ```

pub mod clock;
pub mod cpu;
pub mod decisions;
pub mod hpa;
pub mod status_server;
pub mod target_tracking;

pub use clock::{PlatformClock, TimeScale};
pub use cpu::{CpuGroup, CpuMeter, UsageSampler};
pub use decisions::{
    Autoscaler, DecisionLog, Entry, Evaluation, InstanceEvent, InstanceEventKind, InstanceState,
    Manual, Scale, Status, StatusBoard,
};
pub use status_server::StatusServer;

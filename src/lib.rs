//! bookstore: render, run and load-test the bookstore monolith on one VM, auto-scaling VMs and
//! Kubernetes, all from one YAML spec.

pub mod addons;
pub mod blueprints;
pub mod cli;
mod cli_checks;
pub mod cost;
pub mod explain;
pub mod image;
pub mod output;
pub mod preflight;
#[cfg(feature = "serve")]
pub mod rehearse;
pub mod render;
pub mod spec;

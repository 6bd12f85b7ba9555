//! The `bookstore` crate's integration tests (one test binary).

#[path = "../support/mod.rs"]
#[allow(dead_code)]
mod support;

mod autoscale;
mod capacity;
mod certs;
mod cli;
mod cost;
mod explain;
mod image;
mod image_publish;
mod loadtest_job;
mod loadtest_job_args;
mod loadtest_spec;
mod objective1_day_two;
mod objective2;
mod objective3;
mod objective3_commands;
mod objective3_database;
mod objective3_day_two;
mod preflight;
mod proof;
mod properties;
mod rehearse;
mod rehearse_day_two;
mod rehearse_o3;
mod rehearse_o3_database;
mod rehearse_uploads;
mod rendered;
mod rendered_day_two;
mod shards_rehearsal;
mod snapshots;
mod spec_deploy;
mod spec_errors;
mod spec_hostile;
mod spec_layers;
mod specs;
mod validators;
mod validators_selftest;
mod vm_os;

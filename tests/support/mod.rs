//! Helpers shared by the integration tests (`mod support;` in a file under `tests/`).

pub mod decisions;
pub mod exe;
pub mod loadtest;
pub mod podman;
pub mod rehearsal;
pub mod shopper;
pub mod validators;

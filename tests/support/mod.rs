//! Helpers shared by the integration tests (`mod support;` in a file under `tests/`).

pub mod exe;
pub mod podman;
pub mod shopper;
pub mod validators;

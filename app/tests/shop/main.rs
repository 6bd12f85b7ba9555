//! Integration tests of the shop over HTTP against a real MariaDB.
//!
//! The server comes from `BOOKSTORE_TEST_DATABASE_URL` (e.g. `mysql://root@127.0.0.1:PORT`, no database);
//! each test creates its own database and drops it at the end. Start one with
//! `eval "$(scripts/mariadb-throwaway start)"`.

mod abuse;
mod browser;
mod cli;
mod common;
mod faults;
mod hardening;
mod hung;
mod journey;
mod limits;
mod register;
mod rotation;
mod scaling;
mod security;
mod tls;

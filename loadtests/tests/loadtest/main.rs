//! Integration tests of the load test against the real shop on real MariaDB, with nginx on
//! loopback for scale-out and TLS, and against a stand-in shop whose instances the test
//! controls. Needs BOOKSTORE_TEST_DATABASE_URL, nginx and openssl.

mod exit_codes;
mod faults;
mod proof;
mod scale;
mod shards;
mod single;
mod sold_out;
mod support;
mod tls;

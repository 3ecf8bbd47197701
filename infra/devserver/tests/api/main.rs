//! End-to-end tests: real PostgreSQL (`DATABASE_URL`, set by `make test`), the local
//! gateway built from `template.yaml`, and HTTP requests from a real client.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod harness;

mod auth;
mod books;
mod changes;
mod cleanup;
mod coalesce;
mod deploy;
mod events;
mod faults;
mod imports;
mod layout;
mod library;
mod orders;
mod people;
mod pool;
mod reading;
mod sqs;
mod tokens;
mod users;
mod webhooks;

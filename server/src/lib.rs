//! BaddyBugs Ingest server: receives the PHP agent's batches, makes every accepted event durable
//! in a spool before answering 202, and stores events in batches in the embedded SQLite store or
//! in ClickHouse.
//!
//! The modules follow the data flow (docs/ARCHITECTURE.md walks one batch through them):
//! [`ingest`] (admit → decode → validate → submit, one module per stage) → [`spool`] (durable,
//! group commit) → [`batch`] (spool → rows → [`sink`]) → checkpoint. [`drift`] aggregates the schema drift the validator reports and flushes it to
//! the store. [`background`] holds the
//! CPU pools the stages run on; [`metrics`] and [`feed`] observe every stage; [`http`] holds the
//! other endpoints; [`accept`] serves the connections they arrive on (timeouts, the connection
//! budget, panics); [`server`] starts and stops it all.
#![warn(missing_docs)]

pub mod accept;
pub mod arenas;
pub mod background;
pub mod batch;
pub mod config;
pub mod drift;
pub mod errors;
pub mod feed;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod query;
pub mod record;
pub mod server;
pub mod sink;
pub mod spool;
pub mod state;

pub use http::app;
pub use server::{run, run_until};

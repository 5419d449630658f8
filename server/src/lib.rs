//! BaddyBugs Ingest server: receives the PHP agent's batches, makes every accepted event durable
//! in a spool before answering 202, and stores events in batches in the embedded SQLite store or
//! in ClickHouse.
//!
//! The modules follow the data flow (docs/ARCHITECTURE.md walks one batch through them):
//! [`accept`] (auth, signature, limits) → [`decode`] (inflate, split) → validation (in
//! `baddybugs_common`) → [`enrich`] (batch metadata, dedup) → [`spool`] (durable, group commit)
//! → [`batch`] (spool → rows → [`sink`]) → checkpoint. [`metrics`] and [`feed`] observe every
//! stage; [`http`] holds the endpoints; [`server`] starts and stops it all.
#![warn(missing_docs)]

pub mod accept;
pub mod background;
pub mod batch;
pub mod config;
pub mod decode;
pub mod enrich;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod record;
pub mod server;
pub mod sink;
pub mod spool;
pub mod state;

pub use http::app;
pub use server::{run, run_until};

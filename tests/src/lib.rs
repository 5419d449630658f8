//! End-to-end test helpers.

pub mod clickhouse;
pub mod server;
pub mod faults;

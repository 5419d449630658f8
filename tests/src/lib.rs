//! End-to-end test helpers.

pub mod clickhouse;
pub mod faults;
pub mod server;

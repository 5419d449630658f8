//! End-to-end test helpers.

pub mod clickhouse;
pub mod faults;
pub mod load;
pub mod server;
pub mod spool;

//! ClickHouse store (being written).

use crate::config::ClickHouseConfig;
use crate::sink::SinkError;

/// The ClickHouse store.
pub struct ClickHouseStore;

impl ClickHouseStore {
    /// Connects (and migrates the schema when configured).
    pub async fn connect(
        _config: &ClickHouseConfig,
    ) -> Result<std::sync::Arc<dyn crate::sink::Store>, SinkError> {
        Err(SinkError::Other(
            "the ClickHouse store is not available in this build yet".into(),
        ))
    }
}

/// The DDL of every table.
pub fn schema_sql(_config: &ClickHouseConfig) -> String {
    String::new()
}

//! The drift flusher: every `drift.flush_interval_ms`, the registry's unflushed rows go to the
//! store's `schema_drift` table, and once more at shutdown.
//!
//! In: [`DriftRegistry::take_pending`]. Out: one [`Store::write_drift`] per interval with
//! drift. A failed write (store down) puts the rows back, so they are merged into the next
//! attempt; nothing waits on it but this task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::DriftRegistry;
use crate::sink::Store;

/// Writes what is pending; `true` when there was nothing or it was stored.
pub async fn flush_once(registry: &DriftRegistry, store: &dyn Store) -> bool {
    let rows = registry.take_pending();
    if rows.is_empty() {
        return true;
    }
    let count = rows.len();
    match store.write_drift(rows).await {
        Ok(()) => {
            registry.flushed();
            tracing::debug!(rows = count, "schema drift flushed");
            true
        }
        Err(error) => {
            registry.restore();
            tracing::warn!(rows = count, error = %error.chain(), "schema drift flush failed; retried at the next interval");
            false
        }
    }
}

/// Runs until `stop` turns true, then flushes a last time.
pub async fn run(
    registry: Arc<DriftRegistry>,
    store: Arc<dyn Store>,
    interval_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        flush_once(&registry, store.as_ref()).await;
    }
    flush_once(&registry, store.as_ref()).await;
}

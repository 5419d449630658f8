//! Counts the extra copies of events in the store, for `/v1/stats` (`sink.store_copies`).
//!
//! Each node of a fleet has its own duplicate window, so an agent retry that reached a second
//! node after the first had stored the batch (and died before answering) is stored twice. Reads
//! show such an event once (`clickhouse/read.rs`), but the copies exist; no node can see them at
//! ingest without asking the store about every event, so each node counts them in the store
//! every `clickhouse.copies_check_secs` over the last `clickhouse.copies_window_secs`.

use std::sync::Arc;
use std::time::Duration;

use baddybugs_common::protocol::StoreCopies;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::sink::Store;

/// How often and how far back to count.
#[derive(Debug, Clone, Copy)]
pub struct CopiesCheck {
    /// Between two counts.
    pub every: Duration,
    /// How far back a count looks, by receipt time.
    pub window: Duration,
}

/// Counts until `stop` changes (or the store says it cannot hold copies); a failed count is
/// logged, unless the store is already known to be down, and the last count kept.
pub async fn count_copies(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    check: CopiesCheck,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(check.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        match store.extra_copies(check.window).await {
            Ok(Some(copies)) => {
                metrics.gauges.sink.lock().store_copies = Some(StoreCopies {
                    copies,
                    window_secs: check.window.as_secs(),
                    checked_at: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                });
            }
            Ok(None) => return,
            Err(err) => {
                if metrics.gauges.sink.lock().healthy {
                    tracing::warn!(
                        error = %err.chain(),
                        retry_in_secs = check.every.as_secs(),
                        "could not count the store's extra copies of events (sink.store_copies keeps the last count)"
                    );
                }
            }
        }
    }
}

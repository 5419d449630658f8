//! Where the memory goes (issue 18): each consumer the configuration bounds, what it holds now
//! and the bound it derives from, plus jemalloc's own statistics.
//!
//! In: the server's state, read by the metrics ticker once a second (each reading takes a lock
//! for a few field loads at most). Out: [`MemoryStats`] for `/v1/stats` (`buffers.memory`), the
//! feed and `/metrics`. What is left of the resident set beyond the allocator's `resident` is
//! memory outside the Rust heap: SQLite's page caches (bundled SQLite allocates with the C
//! library's `malloc`), thread stacks and the program itself.

use std::sync::atomic::{AtomicBool, Ordering};

use baddybugs_common::protocol::{AllocatorStats, MemoryConsumer, MemoryStats};

use crate::state::AppState;

/// Set by the binary when jemalloc is the global allocator; the library alone (unit tests)
/// runs on the system allocator, whose statistics jemalloc cannot see.
static JEMALLOC_IS_GLOBAL: AtomicBool = AtomicBool::new(false);

/// Tells the statistics that jemalloc is the process's global allocator.
pub fn set_jemalloc_global() {
    JEMALLOC_IS_GLOBAL.store(true, Ordering::Relaxed);
}

/// Whether jemalloc is the process's global allocator (set by the binary).
pub fn jemalloc_is_global() -> bool {
    JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed)
}

/// jemalloc's statistics, refreshed; `None` when jemalloc is not the global allocator or the
/// statistics cannot be read.
pub fn allocator_stats() -> Option<AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats, Access, AsName as _};
    if !JEMALLOC_IS_GLOBAL.load(Ordering::Relaxed) {
        return None;
    }
    // The statistics are a snapshot taken when the epoch advances.
    epoch::advance().ok()?;
    let arenas = tikv_jemalloc_ctl::arenas::narenas::read().ok()?;
    Some(AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        active: stats::active::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
        retained: stats::retained::read().ok()? as u64,
        arenas,
        arenas_in_use: (0..arenas)
            .filter(|i| {
                let name = format!("stats.arenas.{i}.nthreads\0");
                Access::<u32>::read(name.as_bytes().name()).is_ok_and(|threads| threads > 0)
            })
            .count() as u32,
    })
}

/// The consumers, in a fixed order, with what each holds and its configured bound.
/// `batcher_bytes` is the gauge the batcher keeps.
pub fn consumers(state: &AppState, batcher_bytes: u64) -> Vec<MemoryConsumer> {
    let config = &state.config;
    let ing = &config.ingest;
    let mut out = vec![
        consumer(
            "bodies_in_flight",
            Some(state.admission.body_bytes_in_flight() as u64),
            Some(ing.max_body_bytes_in_flight as u64),
            "ingest.max_body_bytes_in_flight",
        ),
        consumer(
            "batcher",
            Some(batcher_bytes),
            Some(batcher_limit_bytes(config)),
            "batch.catchup_max_bytes,batch.catchup_max_events,ingest.max_inflated_bytes",
        ),
        consumer(
            "dedup_exact",
            Some(state.dedup.exact_bytes()),
            Some(state.dedup.exact_limit_bytes()),
            "ingest.dedup_max_ids",
        ),
        consumer(
            "dedup_filter",
            Some(state.dedup.filter_bytes()),
            Some(ing.dedup_filter_bytes),
            "ingest.dedup_filter_bytes",
        ),
        consumer(
            "signature_cache",
            Some(state.signatures.exact_bytes()),
            Some(state.signatures.exact_limit_bytes()),
            "ingest.signature_cache_entries",
        ),
        // Bounded in messages, not bytes: a message is as long as what it carries.
        consumer(
            "feed",
            Some(state.feed.queued_bytes() + state.feed.retained_bytes()),
            None,
            "feed.client_queue_messages,feed.tail_retention",
        ),
    ];
    if config.clickhouse.url.is_none() {
        out.push(consumer(
            "sqlite_page_cache",
            None,
            Some(crate::server::sqlite_options(config).cache_limit_bytes()),
            "sqlite.cache_bytes,sqlite.read_cache_bytes",
        ));
    }
    out
}

/// Heap bytes a built row costs beyond the record bytes it comes from: the row's struct, its
/// small strings and its span rows. `cargo bench -p baddybugs-ingest --bench sqlite_drain`
/// prints the measure: rows take 1163 bytes per event of 666 record bytes for the load
/// generator's realistic mix, and `data` and `envelope` are at most the record's bytes again.
pub const ROW_BYTES_PER_EVENT: u64 = 1024;

/// The batcher's bound: the records of the batch being read plus the rows of two built batches
/// (one being written, one waiting for it or being built), each at most twice its records plus
/// [`ROW_BYTES_PER_EVENT`] per event. A batch's records reach `batch.catchup_max_bytes`
/// (`max_bytes` when unset) plus the one record that crossed it, and a record holds at most one
/// request's inflated body (`ingest.max_inflated_bytes`).
pub fn batcher_limit_bytes(config: &crate::config::Config) -> u64 {
    let records = (config.batch.catchup_bytes() + config.ingest.max_inflated_bytes) as u64;
    let rows = 2 * records + config.batch.catchup_events() as u64 * ROW_BYTES_PER_EVENT;
    records + 2 * rows
}

/// Everything: the consumers and the allocator.
pub fn memory_stats(state: &AppState, batcher_bytes: u64) -> MemoryStats {
    MemoryStats {
        consumers: consumers(state, batcher_bytes),
        allocator: allocator_stats(),
    }
}

fn consumer(name: &str, bytes: Option<u64>, limit: Option<u64>, config: &str) -> MemoryConsumer {
    MemoryConsumer {
        name: name.into(),
        bytes,
        limit_bytes: limit,
        config: config.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unit tests run on the system allocator: no jemalloc figures are made up for it.
    #[test]
    fn no_allocator_stats_unless_jemalloc_is_global() {
        assert_eq!(allocator_stats(), None);
    }
}

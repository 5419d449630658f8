//! The batcher: spool → store, in batches, then checkpoint.
//!
//! In: committed spool records (read back from the segment files through a named reader, so
//! memory holds at most the records of the batch being read and the rows of two built batches,
//! one waiting and one being written). Out: one store write per batch (rows of every table), then a
//! durable checkpoint that lets the spool reclaim segments. A batch is flushed when it reaches
//! `batch.max_events` (counted from the records' headers) or `batch.max_bytes` (while the store
//! is behind by another `max_events` events in the spool: `batch.catchup_max_events` /
//! `catchup_max_bytes`, which ClickHouse raises), when its oldest record is `flush_interval_ms`
//! old, or `priority_flush_ms` old when it holds an exception or a security event, and on
//! shutdown.
//!
//! Failures: every store write, spool read and row build is retried with one policy
//! ([`retry::Backoff`]: capped exponential backoff with jitter) while the spool absorbs the load;
//! a failing store write also turns the sink health down (`sink_up` 0, a `/readyz` reason). A
//! store that refuses rows for good gets the batch cut table by table and bisected until exactly
//! those rows are found (`isolate.rs`): a refused event goes to the quarantine as
//! `sink_rejected`; a refused span, exception, quarantine or trace row is dropped, counted and
//! logged; every other row of the range is written. A crash before the checkpoint replays the
//! range, and the store's idempotent writes keep one copy. Each retry loop counts its failed
//! attempts (`baddybugs_ingest_batcher_retries_total{stage}`) and logs them at most once per
//! [`retry::LOG_EVERY`], with the error's chain.
//!
//! Measures: insert latency, end-to-end (202 → stored) and event age histograms, batch sizes,
//! sink health and lag, retries, undecodable records.

mod build;
mod isolate;
pub mod retry;
mod write;

pub use build::{build_batch, BuildStats, RecordRef};
use retry::{Backoff, LogThrottle};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{BatchConfig, FeedConfig};
use crate::errors::Chain;
use crate::metrics::{Metrics, Retry};
use crate::sink::{SinkBatch, Store, TraceRow};
use crate::spool::{Spool, SpoolEntry};

/// Name of the store's checkpoint in the spool.
pub const CHECKPOINT: &str = "sink";

/// First and longest wait before reading the spool again after a read error.
const READ_RETRY_MIN: Duration = Duration::from_millis(200);
const READ_RETRY_MAX: Duration = Duration::from_secs(5);

/// Called with each batch of trace rows after they are stored (the feed's `pipeline` topic).
pub type TraceObserver = Arc<dyn Fn(&[TraceRow]) + Send + Sync>;

/// The batcher task.
#[derive(Clone)]
pub struct Batcher {
    /// The spool to read.
    pub spool: Spool,
    /// The store to write.
    pub store: Arc<dyn Store>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Batch settings.
    pub config: BatchConfig,
    /// Trace sampling settings.
    pub feed: FeedConfig,
    /// Becomes true on shutdown: flush what is read, then stop.
    pub shutdown: watch::Receiver<bool>,
    /// Told about stored pipeline traces.
    pub on_traces: Option<TraceObserver>,
}

/// A batch ready for the store.
struct Built {
    batch: SinkBatch,
    stats: BuildStats,
    last_lsn: u64,
    /// Bytes (of its built rows) and events this batch holds (the memory gauges).
    held: (u64, u64),
}

fn is_priority(payload: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 3] = [
        b"\"type\":\"exception\"",
        b"\"type\":\"handled_exception\"",
        b"\"type\":\"security",
    ];
    NEEDLES
        .iter()
        .any(|n| memchr::memmem::find(payload, n).is_some())
}

impl Batcher {
    /// Runs until shutdown; returns once everything readable was written (or the store is down
    /// at shutdown, in which case the spool keeps it for the next start).
    pub async fn run(mut self) {
        // Two stages on two cores: this task reads and builds batch N+1 while the writer task
        // stores batch N. The channel holds one built batch, and a batch is built only once its
        // place in the channel is free: memory stays at most the records of the batch being
        // read plus the rows of two built batches (the `batcher` gauge).
        let (to_writer, from_builder) = tokio::sync::mpsc::channel::<Built>(1);
        let writer = tokio::spawn(write::Writer::new(self.clone()).run(from_builder));
        self.read_loop(to_writer).await;
        if writer.await.is_err() {
            tracing::error!("the store writer task failed");
        }
    }

    async fn read_loop(&mut self, to_writer: tokio::sync::mpsc::Sender<Built>) {
        let mut reader = match self.spool.reader(CHECKPOINT) {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(%err, "cannot read the spool; nothing will be stored");
                return;
            }
        };
        // A batch written but not checkpointed before the last stop: replay exactly its range,
        // so a store that deduplicates by range (ClickHouse) drops the replay.
        let mut replay_until = self
            .spool
            .write_intent(CHECKPOINT)
            .filter(|(first, _)| *first == reader.next_lsn())
            .map(|(_, last)| last);
        if let Some(last) = replay_until {
            tracing::info!(
                first_lsn = reader.next_lsn(),
                last_lsn = last,
                "replaying the batch that was being written at the last stop"
            );
        }
        // Records hold one request each (often 10–100 events) and batches are sized in events,
        // but the reader counts records: ask for as many records as the events still wanted,
        // divided by the events per record seen so far (so a batch stops near
        // `batch.max_events` instead of reading `max_events` records of 100 events each).
        let (max_events, max_bytes) = (self.config.max_events.max(1), self.config.max_bytes);
        let (catchup_events, catchup_bytes) =
            (self.config.catchup_events(), self.config.catchup_bytes());
        let can_grow = catchup_events > max_events || catchup_bytes > max_bytes;
        let (mut seen_records, mut seen_events) = (0u64, 0u64);
        let mut pending: Vec<SpoolEntry> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut pending_events = 0usize;
        let mut oldest: Option<Instant> = None;
        let mut priority = false;
        // Read errors: retried with backoff; the spool counts them and `/readyz` shows the
        // last one; the log says so at most once per throttle period.
        let mut read_failures = LogThrottle::default();
        let mut read_backoff = Backoff::new(READ_RETRY_MIN, READ_RETRY_MAX);
        loop {
            let shutting_down = *self.shutdown.borrow();
            let flush_after = if priority {
                self.config.priority_flush_ms
            } else {
                self.config.flush_interval_ms
            };
            let age = oldest.map_or(Duration::ZERO, |t| t.elapsed());
            let replay_cut =
                replay_until.is_some_and(|last| pending.last().is_some_and(|e| e.lsn >= last));
            // Past `max_*`, a batch keeps growing up to the catch-up limits while the store is
            // behind: another `max_events` events wait in the spool past what was read. A replay
            // is cut only at its recorded range (the range a crash left unconfirmed may have
            // been a catch-up batch, and a different cut would change its deduplication token).
            let over = pending_events >= max_events || pending_bytes >= max_bytes;
            let (limit_events, limit_bytes) = if replay_until.is_some()
                || (over
                    && can_grow
                    && self.spool.events_from(reader.next_lsn()) >= max_events as u64)
            {
                (catchup_events, catchup_bytes)
            } else {
                (max_events, max_bytes)
            };
            let due = !pending.is_empty()
                && (replay_cut
                    || pending_events >= limit_events
                    || pending_bytes >= limit_bytes
                    || age >= Duration::from_millis(flush_after)
                    || shutting_down);
            if due {
                let batch = std::mem::take(&mut pending);
                let held = (pending_bytes as u64, pending_events as u64);
                pending_bytes = 0;
                pending_events = 0;
                oldest = None;
                priority = false;
                if replay_cut {
                    replay_until = None;
                }
                // The channel's place first, then the build: a batch is never built while
                // another waits for the writer, so at most two built batches exist (one being
                // written, one built or being built), not three.
                let Ok(place) = to_writer.reserve().await else {
                    // The writer stopped: shutdown while the store was failing.
                    return;
                };
                place.send(self.build(batch, held).await);
                continue;
            }
            let wait = if pending.is_empty() {
                Duration::from_millis(self.config.flush_interval_ms)
            } else {
                Duration::from_millis(flush_after).saturating_sub(age)
            };
            // While replaying, never read past the recorded range (LSNs are contiguous).
            let room = match replay_until {
                Some(last) => (last + 1).saturating_sub(reader.next_lsn()).max(1) as usize,
                None => usize::MAX,
            };
            let read = tokio::select! {
                r = reader.next_batch(
                    {
                        let per_record = seen_events
                            .checked_div(seen_records)
                            .map_or(1, |n| n.max(1) as usize);
                        limit_events
                            .saturating_sub(pending_events)
                            .div_ceil(per_record)
                            .max(1)
                            .min(room)
                    },
                    limit_bytes.saturating_sub(pending_bytes).max(1),
                    wait.max(Duration::from_millis(1)),
                ) => r,
                _ = self.shutdown.changed() => continue,
            };
            match read {
                Ok(entries) => {
                    if let Some(failures) = read_failures.success() {
                        tracing::info!(failures, "spool reads work again");
                        read_backoff.reset();
                    }
                    if entries.is_empty() && shutting_down && pending.is_empty() {
                        return;
                    }
                    for entry in entries {
                        if oldest.is_none() {
                            oldest = Some(Instant::now());
                        }
                        priority |= is_priority(&entry.payload);
                        pending_bytes += entry.payload.len();
                        let events = crate::record::event_count(&entry.payload)
                            .unwrap_or(1)
                            .max(1);
                        pending_events += events;
                        seen_records += 1;
                        seen_events += events as u64;
                        let gauges = &self.metrics.gauges;
                        gauges
                            .batcher_bytes
                            .fetch_add(entry.payload.len() as u64, Ordering::Relaxed);
                        gauges
                            .batcher_events
                            .fetch_add(events as u64, Ordering::Relaxed);
                        pending.push(entry);
                    }
                }
                Err(err) => {
                    self.metrics.retry(Retry::SpoolRead);
                    if let Some(unlogged) = read_failures.failure(Instant::now()) {
                        let error = Chain(&err);
                        tracing::error!(%error, kind = err.kind(), unlogged, "spool read failed; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(read_backoff.next_wait()) => {}
                        _ = self.shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// The one retry policy, from `batch.retry_initial_ms` up to `batch.retry_max_ms`.
    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.config.retry_initial_ms),
            Duration::from_millis(self.config.retry_max_ms),
        )
    }

    /// Turns records into rows (CPU work, off the async workers, at the background priority:
    /// see [`crate::background`]). A build that fails (a panic is a bug) is retried with
    /// backoff and never skipped: skipping would checkpoint past events that were acknowledged.
    async fn build(&self, entries: Vec<SpoolEntry>, held: (u64, u64)) -> Built {
        let first_lsn = entries.first().map_or(0, |e| e.lsn);
        let last_lsn = entries.last().map_or(0, |e| e.lsn);
        let entries = Arc::new(entries);
        let mut backoff = self.backoff();
        let mut failures = LogThrottle::default();
        loop {
            let feed = self.feed.clone();
            let span_rows = self.store.span_rows();
            let entries = Arc::clone(&entries);
            let built = crate::background::run(move || {
                let refs: Vec<RecordRef<'_>> = entries
                    .iter()
                    .map(|e| RecordRef {
                        lsn: e.lsn,
                        payload: &e.payload,
                        appended_ms: e.appended_unix_ms,
                        durable_ms: e.durable_unix_ms,
                    })
                    .collect();
                let keep_trace = |t: &TraceRow, acked_us: u64| {
                    t.outcome != "accepted"
                        || acked_us >= feed.slow_batch_ms * 1000
                        || feed.trace_sample_one_in <= 1
                        || t.lsn.is_multiple_of(u64::from(feed.trace_sample_one_in))
                };
                build_batch(&refs, span_rows, keep_trace)
            })
            .await;
            match built {
                Ok((batch, stats)) => {
                    // The records go when this returns; the rows stay until they are written.
                    let rows = batch.heap_bytes();
                    let gauge = &self.metrics.gauges.batcher_bytes;
                    gauge.fetch_add(rows, Ordering::Relaxed);
                    gauge.fetch_sub(held.0, Ordering::Relaxed);
                    return Built {
                        batch,
                        stats,
                        last_lsn,
                        held: (rows, held.1),
                    };
                }
                Err(err) => {
                    self.metrics.retry(Retry::Build);
                    let wait = backoff.next_wait();
                    if let Some(unlogged) = failures.failure(Instant::now()) {
                        tracing::error!(
                            %err,
                            first_lsn,
                            last_lsn,
                            unlogged,
                            retry_in_ms = wait.as_millis() as u64,
                            "could not build rows from these spool records; the store waits and nothing is skipped (this is a bug: please report it with `baddybugs-ingest spool dump`)"
                        );
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_detection() {
        assert!(is_priority(br#"{"type":"exception","name":"X"}"#));
        assert!(is_priority(br#"{"type":"security_threat"}"#));
        assert!(!is_priority(br#"{"type":"query"}"#));
    }
}

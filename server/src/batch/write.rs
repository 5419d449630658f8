//! The write side of the batcher: built batches → the store, one at a time and in order, then
//! the checkpoint.
//!
//! Every store write, of a whole batch or of a part of one while refused rows are isolated
//! (`isolate.rs`), goes through [`Writer::attempt`], the one retry policy: a retryable (or
//! unclassified) failure is retried forever, waiting by [`Backoff`] (capped exponential with
//! jitter), with the sink health down (`sink_up` 0, `/readyz` "store writes failing" with the
//! error's chain) until a write succeeds; each failed attempt counts in
//! `batcher_retries_total{stage="write"}` and the log says so at most once per
//! [`super::retry::LOG_EVERY`]. A refusal for good ([`SinkError::Rejected`]) is not retried as
//! is: it goes back to the caller, which isolates the refused rows. Shutdown while a write is
//! failing stops the loop, and the spool keeps the batch for the next start.
//!
//! Group commit, where the store has it ([`GroupCommit`]: SQLite): the writer writes a batch
//! into the store's open transaction, and if the next batch is already built (the store is
//! behind) and the group holds fewer than `batch.group_max_events` events, writes that one into
//! the same transaction too; it commits when no batch waits or the group is full, then
//! checkpoints the spool once through the group's last record. The rows of each batch are
//! dropped as soon as they are in the transaction, so memory holds what it did without groups.
//! A store that keeps up commits every batch alone, as before. A group that fails, a refusal
//! included, was rolled back whole ([`GroupCommit`]'s contract): its batches, whose rows were
//! dropped, are read again from the spool (which holds every record past the checkpoint),
//! rebuilt and written one by one through the one retry policy, then the batch in hand alone,
//! where refused rows are isolated as ever. Nothing is checkpointed before its commit, and
//! writes are idempotent by the rows' keys, so a crash anywhere in a group replays it from the
//! checkpoint and stores one copy.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::retry::{Backoff, LogThrottle};
use super::{Batcher, BuildStats, Built, CHECKPOINT};
use crate::errors::Chain;
use crate::metrics::{Latency, Retry};
use crate::sink::{GroupCommit, SinkBatch, SinkError, TraceRow};
use crate::spool::{SpoolEntry, SpoolReader};

/// Why the batcher stopped writing a batch.
#[derive(Debug)]
pub(super) enum Stop {
    /// Shutdown was asked while the store was failing; the spool keeps the rest.
    Shutdown,
}

/// What one write came to, once the store answered for good.
pub(super) enum Attempt {
    /// Every row is stored.
    Stored,
    /// The store refused rows of this batch for good (never for an empty batch).
    Refused(SinkError),
}

/// What the writer keeps of a written batch until it is committed and checkpointed.
struct Done {
    first_lsn: u64,
    last_lsn: u64,
    events: usize,
    traces: Vec<TraceRow>,
    stats: BuildStats,
}

/// The write task's state.
pub(super) struct Writer {
    pub(super) batcher: Batcher,
    backoff: Backoff,
    /// Failed write attempts, for the log.
    failures: LogThrottle,
    /// Refused rows dropped, for the log.
    pub(super) dropped: LogThrottle,
}

impl Writer {
    /// The write side of `batcher`.
    pub(super) fn new(batcher: Batcher) -> Writer {
        Writer {
            backoff: batcher.backoff(),
            batcher,
            failures: LogThrottle::default(),
            dropped: LogThrottle::default(),
        }
    }

    /// Stores built batches in order, checkpointing after each commit.
    pub(super) async fn run(mut self, mut from_builder: tokio::sync::mpsc::Receiver<Built>) {
        let grouping =
            self.batcher.config.group_max_events > 0 && self.batcher.store.group_commit().is_some();
        while let Some(built) = from_builder.recv().await {
            let stored = if grouping {
                self.store_group(built, &mut from_builder).await
            } else {
                self.store_built(built).await
            };
            if stored.is_err() {
                tracing::warn!("shutdown while the store is failing; unstored records stay in the spool for the next start");
                return;
            }
        }
    }

    /// Writes one batch in a commit of its own, then checkpoints through it.
    async fn store_built(&mut self, built: Built) -> Result<(), Stop> {
        let Built {
            batch,
            stats,
            last_lsn,
            held,
        } = built;
        let done = Done {
            first_lsn: batch.first_lsn,
            last_lsn,
            events: batch.events.len(),
            traces: batch.traces.clone(),
            stats,
        };
        self.record_intent(done.first_lsn, last_lsn).await;
        self.write(Arc::new(batch)).await?;
        self.release(held);
        self.stored(vec![done]).await;
        Ok(())
    }

    /// Records the range about to be written, so that a crash before its checkpoint replays
    /// exactly that range (a store that deduplicates by range, ClickHouse, needs it).
    async fn record_intent(&self, first_lsn: u64, last_lsn: u64) {
        let spool = self.batcher.spool.clone();
        let intent = tokio::task::spawn_blocking(move || {
            spool.set_write_intent(CHECKPOINT, first_lsn, last_lsn)
        })
        .await;
        if !matches!(intent, Ok(Ok(()))) {
            // Without it a crash before the checkpoint may replay a wider range, which
            // ClickHouse would not recognise as a duplicate: say so, but keep storing.
            tracing::error!(
                ?intent,
                first_lsn,
                last_lsn,
                "cannot record the write intent"
            );
        }
    }

    /// A batch's rows are gone from memory: the `batcher` gauges drop them.
    fn release(&self, held: (u64, u64)) {
        let gauges = &self.batcher.metrics.gauges;
        gauges.batcher_bytes.fetch_sub(held.0, Ordering::Relaxed);
        gauges.batcher_events.fetch_sub(held.1, Ordering::Relaxed);
    }

    /// `done` (in order, contiguous) is committed: checkpoint through its last record once,
    /// then count and observe each batch.
    async fn stored(&mut self, done: Vec<Done>) {
        let Some(last_lsn) = done.last().map(|d| d.last_lsn) else {
            return;
        };
        let b = &self.batcher;
        // fsyncs and may delete segments: off the async workers.
        let spool = b.spool.clone();
        let checkpoint =
            tokio::task::spawn_blocking(move || spool.commit_checkpoint(CHECKPOINT, last_lsn))
                .await;
        if !matches!(checkpoint, Ok(Ok(()))) {
            tracing::error!(
                ?checkpoint,
                last_lsn,
                "checkpoint failed; the range will be replayed (idempotently)"
            );
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut sink_events = 0;
        let batches = done.len() as u64;
        for Done {
            events,
            traces,
            stats,
            ..
        } in done
        {
            if stats.undecodable > 0 {
                b.metrics.undecodable_records(stats.undecodable);
            }
            for (received, _events) in &stats.receipts {
                let micros = ((now - received).max(0) as u64) * 1000;
                b.metrics.record_latency(Latency::EndToEnd, micros);
            }
            for ts in &stats.event_times {
                if *ts > 0 && *ts <= now {
                    b.metrics
                        .record_latency(Latency::EventAge, ((now - ts) as u64) * 1000);
                }
            }
            sink_events += events as u64;
            if let Some(observer) = &b.on_traces {
                let mut traces = traces;
                for trace in &mut traces {
                    trace.stored_at(now);
                }
                observer(&traces);
            }
        }
        let mut sink = b.metrics.gauges.sink.lock();
        sink.written_events += sink_events;
        sink.written_batches += batches;
        sink.commits += 1;
        sink.last_write_at = Some(baddybugs_common::timestamp::format_millis(now));
    }

    /// Group commit (see the module doc): `first`, then every batch already built when the
    /// previous one is in, up to `batch.group_max_events` events, in one commit.
    async fn store_group(
        &mut self,
        first: Built,
        from_builder: &mut tokio::sync::mpsc::Receiver<Built>,
    ) -> Result<(), Stop> {
        let store = Arc::clone(&self.batcher.store);
        let Some(group) = store.group_commit() else {
            return self.store_built(first).await;
        };
        let max_events = self.batcher.config.group_max_events;
        let mut done: Vec<Done> = Vec::new();
        let mut grouped_events = 0;
        let mut next = Some(first);
        while let Some(built) = next.take() {
            let Built {
                batch,
                stats,
                last_lsn,
                held,
            } = built;
            let batch = Arc::new(batch);
            let started = Instant::now();
            match group.write_in_group(Arc::clone(&batch)).await {
                Ok(()) => {
                    self.batcher
                        .metrics
                        .record_latency(Latency::Insert, started.elapsed().as_micros() as u64);
                    self.note_success();
                    grouped_events += batch.events.len();
                    done.push(Done {
                        first_lsn: batch.first_lsn,
                        last_lsn,
                        events: batch.events.len(),
                        traces: batch.traces.clone(),
                        stats,
                    });
                    // The rows are in the transaction: let them go.
                    drop(batch);
                    self.release(held);
                    if grouped_events < max_events {
                        next = from_builder.try_recv().ok();
                    }
                }
                Err(err) => {
                    // The whole group was rolled back: its batches are written again from the
                    // spool, then this one alone, where refused rows are isolated and any
                    // other failure is retried.
                    if matches!(err, SinkError::Rejected { .. }) {
                        self.note_success();
                    } else {
                        self.note_failure(&err, &batch, Duration::ZERO);
                    }
                    self.rewrite_from_spool(done).await?;
                    let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                    return self
                        .store_built(Built {
                            batch,
                            stats,
                            last_lsn,
                            held,
                        })
                        .await;
                }
            }
        }
        self.commit_group(group, done).await
    }

    /// Commits the open group holding `done`, then checkpoints through it; a failed commit
    /// (the whole group rolled back) writes its batches again from the spool.
    async fn commit_group(&mut self, group: &dyn GroupCommit, done: Vec<Done>) -> Result<(), Stop> {
        let started = Instant::now();
        match group.commit_group().await {
            Ok(()) => {
                self.batcher
                    .metrics
                    .record_latency(Latency::Insert, started.elapsed().as_micros() as u64);
                self.note_success();
                self.stored(done).await;
                Ok(())
            }
            Err(err) => {
                let whole = SinkBatch {
                    first_lsn: done.first().map_or(0, |d| d.first_lsn),
                    last_lsn: done.last().map_or(0, |d| d.last_lsn),
                    ..SinkBatch::default()
                };
                self.note_failure(&err, &whole, Duration::ZERO);
                self.rewrite_from_spool(done).await
            }
        }
    }

    /// The batches of a group that was rolled back, their rows long dropped: each is read again
    /// from the spool (exactly its range), rebuilt, and written alone through the retry policy.
    async fn rewrite_from_spool(&mut self, done: Vec<Done>) -> Result<(), Stop> {
        if let (Some(first), Some(last)) = (done.first(), done.last()) {
            tracing::warn!(
                first_lsn = first.first_lsn,
                last_lsn = last.last_lsn,
                batches = done.len(),
                "a group of store writes was rolled back; writing its batches again from the spool"
            );
        }
        for batch in done {
            let entries = self.read_again(batch.first_lsn, batch.last_lsn).await?;
            let bytes: u64 = entries.iter().map(|e| e.payload.len() as u64).sum();
            let events = batch.events as u64;
            // As the read loop counts records it holds (`Batcher::build` trades them for rows).
            let gauges = &self.batcher.metrics.gauges;
            gauges.batcher_bytes.fetch_add(bytes, Ordering::Relaxed);
            gauges.batcher_events.fetch_add(events, Ordering::Relaxed);
            let built = self.batcher.build(entries, (bytes, events)).await;
            self.store_built(built).await?;
        }
        Ok(())
    }

    /// The spool records `first_lsn..=last_lsn`, read with the one retry policy.
    async fn read_again(&mut self, first_lsn: u64, last_lsn: u64) -> Result<Vec<SpoolEntry>, Stop> {
        let mut backoff = self.batcher.backoff();
        let mut failures = LogThrottle::default();
        let mut entries: Vec<SpoolEntry> = Vec::new();
        let mut reader: Option<SpoolReader> = None;
        loop {
            let from = entries.last().map_or(first_lsn, |e| e.lsn + 1);
            if from > last_lsn {
                return Ok(entries);
            }
            let read = match &mut reader {
                Some(reader) => {
                    let want = (last_lsn + 1 - from) as usize;
                    reader
                        .next_batch(want, usize::MAX, Duration::from_millis(1))
                        .await
                }
                None => self.batcher.spool.reader(CHECKPOINT).map(|r| {
                    reader = Some(r);
                    Vec::new()
                }),
            };
            let missing = match read {
                Ok(read) => {
                    let some = !read.is_empty();
                    entries.extend(
                        read.into_iter()
                            .filter(|e| (from..=last_lsn).contains(&e.lsn)),
                    );
                    // A reader starts after the checkpoint: records before `first_lsn` (a
                    // checkpoint that could not be written) are read and skipped.
                    if some || reader.as_ref().is_some_and(|r| r.next_lsn() <= from) {
                        continue;
                    }
                    format!("records {from}..={last_lsn} are not in the spool")
                }
                Err(err) => Chain(&err).to_string(),
            };
            self.batcher.metrics.retry(Retry::SpoolRead);
            if let Some(unlogged) = failures.failure(Instant::now()) {
                tracing::error!(error = %missing, unlogged, "reading a rolled-back group again from the spool failed; retrying");
            }
            let mut shutdown = self.batcher.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_wait()) => {}
                Ok(()) = shutdown.changed() => {}
            }
            if *self.batcher.shutdown.borrow() {
                return Err(Stop::Shutdown);
            }
        }
    }

    /// Writes a whole batch; rows the store refuses are isolated (`isolate.rs`).
    async fn write(&mut self, batch: Arc<SinkBatch>) -> Result<(), Stop> {
        match self.attempt(batch.clone()).await? {
            Attempt::Stored => Ok(()),
            Attempt::Refused(err) => {
                let error = err.chain();
                tracing::warn!(
                    first_lsn = batch.first_lsn,
                    last_lsn = batch.last_lsn,
                    rows = batch.row_count(),
                    %error,
                    "store refused rows; isolating them"
                );
                let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
                self.isolate(batch).await
            }
        }
    }

    /// The one retry policy of every store write (see the module doc).
    pub(super) async fn attempt(&mut self, batch: Arc<SinkBatch>) -> Result<Attempt, Stop> {
        loop {
            let started = Instant::now();
            match self.batcher.store.write(batch.clone()).await {
                Ok(()) => {
                    self.batcher
                        .metrics
                        .record_latency(Latency::Insert, started.elapsed().as_micros() as u64);
                    self.note_success();
                    return Ok(Attempt::Stored);
                }
                Err(err @ SinkError::Rejected { .. }) if batch.row_count() > 0 => {
                    // The store answered: it is up, it just will not take these rows.
                    self.note_success();
                    return Ok(Attempt::Refused(err));
                }
                Err(err) => {
                    let wait = self.backoff.next_wait();
                    self.note_failure(&err, &batch, wait);
                    let mut shutdown = self.batcher.shutdown.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        // A dropped sender is no shutdown: keep waiting out the backoff.
                        Ok(()) = shutdown.changed() => {}
                    }
                    if *self.batcher.shutdown.borrow() {
                        return Err(Stop::Shutdown);
                    }
                }
            }
        }
    }

    /// A store write failed: the sink health, the retry counter and (rate-limited) the log.
    fn note_failure(&mut self, err: &SinkError, batch: &SinkBatch, retry_in: std::time::Duration) {
        let chain = err.chain();
        let metrics = &self.batcher.metrics;
        {
            let mut sink = metrics.gauges.sink.lock();
            sink.healthy = false;
            sink.errors += 1;
            sink.retrying += 1;
            sink.last_error = Some(chain.clone());
        }
        metrics.retry(Retry::Write);
        if let Some(unlogged) = self.failures.failure(Instant::now()) {
            tracing::warn!(
                error = %chain,
                first_lsn = batch.first_lsn,
                last_lsn = batch.last_lsn,
                part = %batch.part,
                unlogged,
                retry_in_ms = retry_in.as_millis() as u64,
                "store write failed; retrying"
            );
        }
    }

    /// A store write got an answer: the sink is healthy again (said once after a run of
    /// failures), and the next failure waits the shortest time again.
    fn note_success(&mut self) {
        {
            let mut sink = self.batcher.metrics.gauges.sink.lock();
            sink.healthy = true;
            sink.retrying = 0;
        }
        self.backoff.reset();
        if let Some(failures) = self.failures.success() {
            tracing::info!(failures, "store write succeeded after failed attempts");
        }
    }
}

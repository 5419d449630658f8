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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::retry::{Backoff, LogThrottle};
use super::{Batcher, Built, CHECKPOINT};
use crate::metrics::{Latency, Retry};
use crate::sink::{SinkBatch, SinkError};

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

    /// Stores built batches in order, checkpointing after each.
    pub(super) async fn run(mut self, mut from_builder: tokio::sync::mpsc::Receiver<Built>) {
        while let Some(built) = from_builder.recv().await {
            if self.store_built(built).await.is_err() {
                tracing::warn!("shutdown while the store is failing; unstored records stay in the spool for the next start");
                return;
            }
        }
    }

    async fn store_built(&mut self, built: Built) -> Result<(), Stop> {
        let Built {
            batch,
            stats,
            last_lsn,
            held,
        } = built;
        let b = &self.batcher;
        let events = batch.events.len();
        let traces = batch.traces.clone();
        let spool = b.spool.clone();
        let first_lsn = batch.first_lsn;
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
        self.write(Arc::new(batch)).await?;
        let b = &self.batcher;
        let gauges = &b.metrics.gauges;
        gauges.batcher_bytes.fetch_sub(held.0, Ordering::Relaxed);
        gauges.batcher_events.fetch_sub(held.1, Ordering::Relaxed);
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
        if stats.undecodable > 0 {
            b.metrics.undecodable_records(stats.undecodable);
        }
        let now = chrono::Utc::now().timestamp_millis();
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
        {
            let mut sink = b.metrics.gauges.sink.lock();
            sink.written_events += events as u64;
            sink.written_batches += 1;
            sink.last_write_at = Some(baddybugs_common::timestamp::format_millis(now));
        }
        if let Some(observer) = &b.on_traces {
            let mut traces = traces;
            for trace in &mut traces {
                trace.stored_at(now);
            }
            observer(&traces);
        }
        Ok(())
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

//! The ingest path's tap into the feed: one compact, owned value per acknowledged request,
//! handed over without waiting, turned into feed messages on the feed's own thread.
//!
//! In: an [`AcceptedBatch`] from the ingest path (after the spool append, before the 202): the
//! batch metadata, the body the events are slices of, and per accepted event its index, byte
//! range and what the tails need to know without parsing it again (its kind and error flag).
//! Out: [`FeedHub::publish_batch`] runs on the `feed-build` thread, which parses again only the
//! events it will actually send (the sampled tail, the waterfalls), builds and serialises the
//! messages and fans them out.
//!
//! Bounds: at most [`TAP_QUEUE_BATCHES`] batches and [`TAP_QUEUE_BYTES`] bytes of bodies wait
//! for the thread; beyond either, the batch is dropped from the feed (never from the store) and
//! counted in `baddybugs_ingest_feed_dropped_batches_total`. Nothing is handed over when no
//! client listens to a tail that needs it, so with no console the feed costs the ingest path one
//! atomic load per request.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use baddybugs_common::CheckedEvent;
use bytes::Bytes;

use super::FeedHub;
use crate::record::BatchMeta;

/// Batches waiting for the feed thread, at most.
pub const TAP_QUEUE_BATCHES: usize = 256;
/// Bytes of bodies waiting for the feed thread, at most.
pub const TAP_QUEUE_BYTES: usize = 64 << 20;

/// What a tail needs to know of an accepted event without parsing it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// A `lifecycle` event (one waterfall each).
    Lifecycle,
    /// A `trace_span` event (assembled into its trace's waterfall).
    TraceSpan,
    /// Anything else.
    Other,
}

/// One accepted event of an [`AcceptedBatch`].
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Index in the request body.
    pub index: u32,
    /// Its bytes in [`AcceptedBatch::body`].
    pub range: Range<usize>,
    /// Its kind.
    pub kind: FeedKind,
    /// An error (`is_error`, or a 5xx status for a lifecycle): its waterfall is never sampled.
    pub error: bool,
}

impl FeedEvent {
    /// Describes a checked event found at `range` of the body.
    pub fn of(index: u32, range: Range<usize>, event: &CheckedEvent<'_>) -> FeedEvent {
        let kind = match event.envelope.event_type.as_ref() {
            "lifecycle" => FeedKind::Lifecycle,
            "trace_span" => FeedKind::TraceSpan,
            _ => FeedKind::Other,
        };
        let error = event.columns.is_error
            || (kind == FeedKind::Lifecycle && event.columns.status_code.is_some_and(|s| s >= 500));
        FeedEvent {
            index,
            range,
            kind,
            error,
        }
    }
}

/// One acknowledged request, as the feed needs it.
#[derive(Debug, Clone)]
pub struct AcceptedBatch {
    /// Its metadata (with the stages up to the spool append).
    pub meta: BatchMeta,
    /// The bytes the ranges point into (the inflated body, or the body as sent when it could
    /// not be inflated).
    pub body: Bytes,
    /// Accepted events that were stored (not duplicates), in body order.
    pub events: Vec<FeedEvent>,
    /// The kept bytes of each quarantined entry, same order as `meta.quarantined`.
    pub quarantined: Vec<Range<usize>>,
}

impl AcceptedBatch {
    /// The text of an event (`None` if the range is not UTF-8, which validation excludes).
    pub fn text(&self, event: &FeedEvent) -> Option<&str> {
        std::str::from_utf8(self.body.get(event.range.clone())?).ok()
    }

    /// The kept bytes of the `i`-th quarantined entry.
    pub fn quarantined_bytes(&self, i: usize) -> &[u8] {
        self.quarantined
            .get(i)
            .and_then(|r| self.body.get(r.clone()))
            .unwrap_or_default()
    }
}

/// The sending half, held by the ingest path.
pub struct FeedTap {
    sender: SyncSender<AcceptedBatch>,
    queued_bytes: Arc<AtomicUsize>,
    hub: Arc<FeedHub>,
}

impl FeedTap {
    /// Starts the `feed-build` thread that publishes into `hub`. The thread ends when the tap
    /// is dropped.
    pub fn start(hub: Arc<FeedHub>) -> std::io::Result<FeedTap> {
        let (sender, receiver) = sync_channel(TAP_QUEUE_BATCHES);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let thread_bytes = Arc::clone(&queued_bytes);
        let thread_hub = Arc::clone(&hub);
        std::thread::Builder::new()
            .name("feed-build".into())
            .spawn(move || {
                crate::arenas::bind_this_thread();
                feed_thread(thread_hub, receiver, thread_bytes)
            })?;
        Ok(FeedTap {
            sender,
            queued_bytes,
            hub,
        })
    }

    /// Whether a batch with (or without) quarantined entries would be used: the malformed
    /// tail is kept for clients that connect later; the other tails only while a client
    /// listens. The caller skips building the [`AcceptedBatch`] otherwise.
    pub fn wants(&self, has_quarantined: bool) -> bool {
        has_quarantined || self.hub.wants_accepted_events()
    }

    /// Hands a batch to the feed thread without waiting; when the queue is full the batch is
    /// dropped from the feed and counted. Returns whether it was queued.
    pub fn offer(&self, batch: AcceptedBatch) -> bool {
        let size = batch.body.len();
        let queued = self.queued_bytes.fetch_add(size, Ordering::AcqRel);
        if queued + size > TAP_QUEUE_BYTES && queued > 0 {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
            self.count_drop();
            return false;
        }
        match self.sender.try_send(batch) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                self.count_drop();
                false
            }
        }
    }

    fn count_drop(&self) {
        let gauges = &self.hub.metrics().gauges;
        gauges.feed_dropped_batches.fetch_add(1, Ordering::Relaxed);
    }
}

fn feed_thread(hub: Arc<FeedHub>, receiver: Receiver<AcceptedBatch>, queued: Arc<AtomicUsize>) {
    while let Ok(batch) = receiver.recv() {
        let size = batch.body.len();
        hub.publish_batch(&batch);
        drop(batch);
        queued.fetch_sub(size, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedConfig;
    use crate::metrics::Metrics;
    use baddybugs_common::protocol::{FeedFilter, Topic};

    fn hub(_dir: &std::path::Path) -> Arc<FeedHub> {
        Arc::new(FeedHub::new(
            FeedConfig::default(),
            Arc::new(Metrics::new("test".into())),
            "test".into(),
        ))
    }

    fn batch(text: &str) -> AcceptedBatch {
        let checked = baddybugs_common::check_event(text, 0).unwrap();
        AcceptedBatch {
            meta: BatchMeta::for_test(1),
            body: Bytes::copy_from_slice(text.as_bytes()),
            events: vec![FeedEvent::of(0, 0..text.len(), &checked)],
            quarantined: Vec::new(),
        }
    }

    /// Issue 13: with no client listening, the ingest path hands the feed nothing; with one,
    /// the message is built on the feed thread and reaches the client.
    #[test]
    fn nothing_is_handed_over_without_a_listener_and_a_listener_gets_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let tap = FeedTap::start(hub.clone()).unwrap();
        assert!(
            !tap.wants(false),
            "no client: no feed work for accepted events"
        );
        assert!(
            tap.wants(true),
            "the malformed tail is retained for later clients"
        );

        let client = hub.connect("test".into());
        hub.subscribe(&client, &[Topic::Events], FeedFilter::default());
        assert!(tap.wants(false));
        let text = r#"{"type":"log","id":"e1","payload":{"level":"info","message":"m"}}"#;
        assert!(tap.offer(batch(text)));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let messages = loop {
            let (messages, _) = client.take();
            if !messages.is_empty() || std::time::Instant::now() > deadline {
                break messages;
            }
            std::thread::yield_now();
        };
        assert_eq!(messages.len(), 1, "the event reached the client");
        assert!(messages[0].json.contains("\"e1\""), "{}", messages[0].json);
        assert_eq!(
            hub.metrics()
                .gauges
                .feed_dropped_batches
                .load(Ordering::Relaxed),
            0
        );
    }
}

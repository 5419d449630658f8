//! The metrics registry: counters, hdrhistogram latencies and gauges, fed by every stage.
//!
//! In: increments from the request path (atomics and one short lock per request), latencies in
//! µs, gauges from the spool and the batcher. Out: a [`MetricsSnapshot`] (the feed's `metrics`
//! topic and `/v1/stats`) built once a second by [`Metrics::tick`], and the Prometheus
//! exposition of `/metrics` ([`Metrics::prometheus`], written by `prometheus-client`).
//!
//! Metric names follow one rule: `baddybugs_ingest_<what>_<unit>[_total]`; labels are bounded
//! (`type` is a catalog type or `unknown_type`/`invalid`, `reason` a reason code, `stage` a
//! pipeline stage). docs/OPERATIONS.md lists each metric and what to do when it looks wrong.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use baddybugs_common::drift::DriftKind;
use baddybugs_common::protocol::{
    Bucket, BufferStats, DriftStats, FeedClientStats, Histo, MetricsSnapshot, ReasonSample,
    ReasonStats, Refusal, SinkStats, TypeStats,
};
use baddybugs_common::timestamp::format_millis;
use baddybugs_common::{catalog, Problem, ReasonCode};
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::sink::Table;

pub mod memory;
mod prometheus;
mod senders;

pub use senders::{sender_of_key, BatchCounts};

/// Label used for types the catalog does not know.
pub const UNKNOWN_TYPE: &str = "unknown_type";
/// Label used for events whose type could not be read.
pub const INVALID_TYPE: &str = "invalid";

/// Counters of one type label.
#[derive(Debug, Default)]
pub struct TypeCounters {
    received: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    durations: Mutex<Option<Histogram<u32>>>,
}

/// Which latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// Request receipt → 202.
    Request,
    /// One spool fdatasync.
    Fsync,
    /// One store write.
    Insert,
    /// 202 → stored.
    EndToEnd,
    /// Agent timestamp → stored.
    EventAge,
}

impl Latency {
    const ALL: [Latency; 5] = [
        Latency::Request,
        Latency::Fsync,
        Latency::Insert,
        Latency::EndToEnd,
        Latency::EventAge,
    ];
    fn name(self) -> &'static str {
        match self {
            Latency::Request => "request",
            Latency::Fsync => "fsync",
            Latency::Insert => "insert",
            Latency::EndToEnd => "end_to_end",
            Latency::EventAge => "event_age",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// A retry loop of the batcher, for `baddybugs_ingest_batcher_retries_total{stage}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reading committed records back from the spool.
    SpoolRead,
    /// Building rows from records (a failure there is a bug).
    Build,
    /// Writing to the store (a whole batch, or a part of it while refused rows are isolated:
    /// one retry policy for every store write).
    Write,
}

impl Retry {
    /// Every retry loop, in label order.
    pub const ALL: [Retry; 3] = [Retry::SpoolRead, Retry::Build, Retry::Write];

    /// The `stage` label.
    pub fn label(self) -> &'static str {
        match self {
            Retry::SpoolRead => "spool_read",
            Retry::Build => "build",
            Retry::Write => "write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
struct ReasonState {
    count: u64,
    last: Option<ReasonSample>,
    history: VecDeque<u64>,
    last_count: u64,
}

/// Counters and gauges of the connection layer (`crate::accept`).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Regular connections open (a gauge).
    pub open_regular: AtomicU64,
    /// Reserve connections open (a gauge).
    pub open_reserve: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Closed: no complete request head in time.
    pub header_timeouts: AtomicU64,
    /// Closed: idle past the keep-alive timeout.
    pub idle_timeouts: AtomicU64,
    /// Closed to make room: half-open (no complete request head yet).
    pub shed_half_open: AtomicU64,
    /// Closed to make room: idle keep-alive.
    pub shed_idle: AtomicU64,
    /// Answered 503 and closed at once: every connection was in use.
    pub refused: AtomicU64,
    /// Failed `accept` calls (out of descriptors, mostly).
    pub accept_errors: AtomicU64,
    /// Handlers that panicked (answered 500).
    pub handler_panics: AtomicU64,
    /// Feed WebSocket clients closed for not answering a ping in time (dead peers).
    pub dead_peers: AtomicU64,
}

/// Gauges set by the spool, the batcher and the feed.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Spool state.
    pub buffers: Mutex<BufferStats>,
    /// Store state.
    pub sink: Mutex<SinkStats>,
    /// Feed clients.
    pub feed_clients: Mutex<Vec<FeedClientStats>>,
    /// Bytes the batcher holds: the spool records of the batch being read, then each built
    /// batch's rows (`SinkBatch::heap_bytes`) until they are written.
    pub batcher_bytes: AtomicU64,
    /// Events in those batches.
    pub batcher_events: AtomicU64,
    /// Acknowledged requests left out of the live feed because its thread was behind
    /// (a counter; the store is not affected).
    pub feed_dropped_batches: AtomicU64,
    /// Signed requests answered as replays (same signature within the skew window; a counter).
    pub replayed_signatures: AtomicU64,
    /// The dedup window, as the metrics ticker last read it.
    pub dedup: Mutex<DedupStats>,
    /// Ids the dedup window's long tier asked the store about, by [`DedupCheck`] (counters).
    pub dedup_store_checks: [AtomicU64; 3],
}

/// What the dedup window holds (ingest/dedup.rs), for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Ids in the exact tier.
    pub exact_ids: u64,
    /// How far back the exact tier remembers every confirmed id, ms.
    pub exact_span_ms: i64,
    /// Ids in the long tier (0 when it is off).
    pub filter_ids: u64,
    /// Bytes of the long tier.
    pub filter_bytes: u64,
    /// How far back the long tier remembers every confirmed id, ms (0 when it is off).
    pub filter_span_ms: i64,
    /// Slices of the long tier forgotten early to stay within its budget.
    pub filter_slices_dropped_early: u64,
}

/// The outcome of one store lookup of the dedup window's long tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupCheck {
    /// The store holds the id: a duplicate.
    Stored,
    /// The store does not: a false "maybe", the event is new.
    NotStored,
    /// The lookup failed or timed out: the event is taken as new.
    Failed,
}

impl DedupCheck {
    /// Every outcome, in label order.
    pub const ALL: [DedupCheck; 3] = [
        DedupCheck::Stored,
        DedupCheck::NotStored,
        DedupCheck::Failed,
    ];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            DedupCheck::Stored => "stored",
            DedupCheck::NotStored => "not_stored",
            DedupCheck::Failed => "failed",
        }
    }
}

/// Schema drift counters (fed by [`crate::drift::DriftRegistry`]).
#[derive(Debug, Default)]
pub struct DriftCounters {
    /// Divergences seen, by kind (in `DriftKind::ALL` order).
    pub by_kind: [AtomicU64; 4],
    /// Distinct keys kept in memory.
    pub keys: AtomicU64,
    /// Divergences counted but not kept (a type over `drift.max_keys_per_type`, or too many
    /// types).
    pub overflow: AtomicU64,
}

impl DriftCounters {
    /// The counters as the snapshot carries them.
    pub fn stats(&self) -> DriftStats {
        let by_kind: Vec<(String, u64)> = DriftKind::ALL
            .iter()
            .zip(&self.by_kind)
            .map(|(k, c)| (k.as_str().to_owned(), c.load(Ordering::Relaxed)))
            .collect();
        DriftStats {
            keys: self.keys.load(Ordering::Relaxed),
            occurrences: by_kind.iter().map(|(_, n)| n).sum(),
            by_kind,
            overflow: self.overflow.load(Ordering::Relaxed),
        }
    }
}

struct History {
    /// Per label: received totals at each past tick, newest last (61 kept).
    totals: HashMap<String, VecDeque<Option<u64>>>,
    /// Per label: rejected totals at each past tick.
    rejected: HashMap<String, senders::Series>,
}

/// The registry. Cheap to share (`Arc<Metrics>`).
pub struct Metrics {
    started: Instant,
    started_ms: i64,
    instance_id: String,
    types: HashMap<&'static str, Arc<TypeCounters>>,
    reasons: Mutex<HashMap<ReasonCode, ReasonState>>,
    histograms: [Mutex<Histogram<u64>>; 5],
    batch_sizes: Mutex<Histogram<u64>>,
    responses: Mutex<HashMap<u16, u64>>,
    /// Refused ingest requests by (status, error code): both from closed sets, so bounded.
    refusals: Mutex<std::collections::BTreeMap<(u16, &'static str), u64>>,
    /// Failed spool operations by (op, kind): both from closed sets, so bounded.
    spool_errors: Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
    bytes_received: AtomicU64,
    bytes_inflated: AtomicU64,
    retries: [AtomicU64; 3],
    undecodable_records: AtomicU64,
    /// Rows the store refused and the batcher dropped, by table (in `Table::ALL` order).
    dropped_rows: [AtomicU64; 5],
    /// Gauges.
    pub gauges: Gauges,
    /// The connection layer.
    pub connections: ConnectionCounters,
    /// Schema drift.
    pub drift: DriftCounters,
    warnings: Mutex<HashMap<ReasonCode, u64>>,
    history: Mutex<History>,
    /// By application and by sender.
    senders: senders::Senders,
    last_snapshot: Mutex<Option<Arc<MetricsSnapshot>>>,
}

fn table_index(table: Table) -> usize {
    Table::ALL.iter().position(|t| *t == table).unwrap_or(0)
}

/// An event type's own `duration_ms` values, for its p99 only: 2 significant digits (1 %) and
/// 32-bit counts make it ~18 KiB instead of the ~270 KiB of a 3-digit histogram with 64-bit
/// counts, and there is one per type that sends durations (47 at most): a 3-digit, 64-bit one
/// for each was ~5 MiB of heap at the ingest ceiling. A count saturates rather than wraps, at
/// 4 billion values of one bucket.
fn new_duration_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 30 * 86_400 * 1_000_000, 2).expect("valid histogram bounds")
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 30 days, 3 significant digits (event ages can be days: agents re-send).
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, 30 * 86_400 * 1_000_000, 3).expect("valid histogram bounds")
}

impl Metrics {
    /// A fresh registry for one server instance.
    pub fn new(instance_id: String) -> Metrics {
        let mut types: HashMap<&'static str, Arc<TypeCounters>> = catalog::all()
            .iter()
            .map(|s| (s.name, Arc::new(TypeCounters::default())))
            .collect();
        types.insert(UNKNOWN_TYPE, Arc::default());
        types.insert(INVALID_TYPE, Arc::default());
        Metrics {
            started: Instant::now(),
            started_ms: chrono::Utc::now().timestamp_millis(),
            instance_id,
            types,
            reasons: Mutex::new(HashMap::new()),
            histograms: std::array::from_fn(|_| Mutex::new(new_histogram())),
            batch_sizes: Mutex::new(new_histogram()),
            responses: Mutex::new(HashMap::new()),
            refusals: Mutex::new(std::collections::BTreeMap::new()),
            spool_errors: Mutex::new(std::collections::BTreeMap::new()),
            bytes_received: AtomicU64::new(0),
            bytes_inflated: AtomicU64::new(0),
            retries: Default::default(),
            undecodable_records: AtomicU64::new(0),
            dropped_rows: Default::default(),
            gauges: Gauges::default(),
            connections: ConnectionCounters::default(),
            drift: DriftCounters::default(),
            warnings: Mutex::new(HashMap::new()),
            history: Mutex::new(History {
                totals: HashMap::new(),
                rejected: HashMap::new(),
            }),
            senders: senders::Senders::default(),
            last_snapshot: Mutex::new(None),
        }
    }

    /// The instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// When this instance started, epoch ms.
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// The counters of a type label (catalog types; anything else is `unknown_type`).
    pub fn type_counters(&self, event_type: Option<&str>) -> &TypeCounters {
        let label = match event_type {
            None => INVALID_TYPE,
            Some(t) if self.types.contains_key(t) => t,
            Some(_) => UNKNOWN_TYPE,
        };
        self.types
            .get(label)
            .or_else(|| self.types.get(UNKNOWN_TYPE))
            .map(|a| a.as_ref())
            .unwrap_or_else(|| unreachable!("unknown_type is always registered"))
    }

    /// Counts an accepted event (and its `duration_ms` for the per-type p99).
    pub fn accepted(&self, event_type: &str, duration_ms: Option<f64>) {
        let c = self.type_counters(Some(event_type));
        c.received.fetch_add(1, Ordering::Relaxed);
        c.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = duration_ms.filter(|v| v.is_finite() && *v >= 0.0) {
            let mut h = c.durations.lock();
            let h = h.get_or_insert_with(new_duration_histogram);
            h.saturating_record(((ms * 1000.0) as u64).max(1));
        }
    }

    /// Counts a duplicate.
    pub fn duplicate(&self, event_type: &str) {
        let c = self.type_counters(Some(event_type));
        c.received.fetch_add(1, Ordering::Relaxed);
        c.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejected event and its reasons.
    pub fn rejected(&self, event_type: Option<&str>, problems: &[Problem]) {
        let c = self.type_counters(event_type);
        c.received.fetch_add(1, Ordering::Relaxed);
        c.rejected.fetch_add(1, Ordering::Relaxed);
        let at = format_millis(chrono::Utc::now().timestamp_millis());
        let mut reasons = self.reasons.lock();
        for problem in problems {
            let state = reasons.entry(problem.code).or_insert_with(|| ReasonState {
                count: 0,
                last: None,
                history: VecDeque::new(),
                last_count: 0,
            });
            state.count += 1;
            state.last = Some(ReasonSample {
                event_type: event_type.map(str::to_owned),
                path: problem.path.clone(),
                message: problem.message.clone(),
                at: at.clone(),
            });
        }
    }

    /// Counts the warnings of an accepted event (`bad_timestamp`, `future_timestamp`).
    pub fn warned(&self, problems: &[Problem]) {
        if problems.is_empty() {
            return;
        }
        let mut warnings = self.warnings.lock();
        for problem in problems {
            *warnings.entry(problem.code).or_default() += 1;
        }
    }

    /// Warnings counted so far, by reason.
    pub fn warning_counts(&self) -> Vec<(ReasonCode, u64)> {
        let warnings = self.warnings.lock();
        let mut counts: Vec<(ReasonCode, u64)> = warnings.iter().map(|(c, n)| (*c, *n)).collect();
        counts.sort();
        counts
    }

    /// Records a latency in µs.
    pub fn record_latency(&self, which: Latency, micros: u64) {
        let mut h = self.histograms[which.index()].lock();
        // Values past the top (an event a year old) count in the top bucket, not nowhere.
        let value = micros.clamp(1, h.high());
        let _ = h.record(value);
    }

    /// Counts `ids` the dedup window asked the store about, with their outcome.
    pub fn dedup_store_checked(&self, outcome: DedupCheck, ids: usize) {
        self.gauges.dedup_store_checks[outcome as usize].fetch_add(ids as u64, Ordering::Relaxed);
    }

    /// Counts a signed request answered as a replay.
    pub fn replayed_signature(&self) {
        self.gauges
            .replayed_signatures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records the number of events of one request.
    pub fn record_batch_size(&self, events: usize) {
        let _ = self.batch_sizes.lock().record((events as u64).max(1));
    }

    /// Counts a failed spool operation: `op` is a [`crate::spool::SpoolOp`] label and `kind`
    /// a [`crate::spool::SpoolError::kind`] (both bounded sets).
    pub fn spool_error(&self, op: &'static str, kind: &'static str) {
        *self.spool_errors.lock().entry((op, kind)).or_default() += 1;
    }

    /// Failed spool operations so far, by (op, kind).
    pub fn spool_errors(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.spool_errors
            .lock()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Counts a response status.
    pub fn response(&self, status: u16) {
        *self.responses.lock().entry(status).or_default() += 1;
    }

    /// Counts a refused ingest request by its status and error code (`ApiError::code`).
    pub fn refusal(&self, status: u16, code: &'static str) {
        *self.refusals.lock().entry((status, code)).or_default() += 1;
    }

    /// Counts a refused ingest request of one sender (an application, or a key's
    /// fingerprint: [`sender_of_key`]) by its status and error code.
    pub fn sender_refusal(&self, sender: String, status: u16, code: &'static str) {
        self.senders.refusal(sender, status, code);
    }

    /// Counts the events of one request for its application.
    pub fn app_batch(&self, organization: &str, application: &str, counts: BatchCounts) {
        self.senders.batch(organization, application, counts);
    }

    fn refusals(&self) -> Vec<Refusal> {
        self.refusals
            .lock()
            .iter()
            .map(|((status, code), count)| Refusal {
                status: *status,
                code: (*code).to_owned(),
                count: *count,
            })
            .collect()
    }

    /// Counts body bytes.
    pub fn bytes(&self, compressed: usize, inflated: usize) {
        self.bytes_received
            .fetch_add(compressed as u64, Ordering::Relaxed);
        self.bytes_inflated
            .fetch_add(inflated as u64, Ordering::Relaxed);
    }

    /// Counts one failed attempt of a batcher retry loop (the attempt is retried).
    pub fn retry(&self, which: Retry) {
        self.retries[which.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed attempts of a batcher retry loop since start.
    pub fn retries(&self, which: Retry) -> u64 {
        self.retries[which.index()].load(Ordering::Relaxed)
    }

    /// Counts a row the store refused for good that the batcher dropped (a span, exception,
    /// quarantine or pipeline-trace row; a refused event row is quarantined instead).
    pub fn sink_dropped_row(&self, table: Table) {
        self.dropped_rows[table_index(table)].fetch_add(1, Ordering::Relaxed);
    }

    /// Rows of `table` the store refused and the batcher dropped, since start.
    pub fn sink_dropped_rows(&self, table: Table) -> u64 {
        self.dropped_rows[table_index(table)].load(Ordering::Relaxed)
    }

    /// Counts spool records the batcher could not decode (kept in the quarantine as
    /// `lsn-<n>`; each one is a bug).
    pub fn undecodable_records(&self, records: usize) {
        self.undecodable_records
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    /// Builds a snapshot and advances the rate history; call once a second.
    pub fn tick(&self) -> Arc<MetricsSnapshot> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut history = self.history.lock();
        let mut types = Vec::new();
        let mut totals = TypeStats {
            event_type: "all".into(),
            ..TypeStats::default()
        };
        let mut total_series: Vec<Option<u64>> = vec![None; 60];
        let mut names: Vec<&&str> = self.types.keys().collect();
        names.sort();
        for name in names {
            let c = &self.types[*name];
            let received = c.received.load(Ordering::Relaxed);
            let rejected = c.rejected.load(Ordering::Relaxed);
            let rejected_series = history.rejected.entry((*name).to_owned()).or_default();
            rejected_series.push(rejected);
            let rejected_rate_60s = rejected_series.rate(60);
            let series = history.totals.entry((*name).to_owned()).or_default();
            series.push_back(Some(received));
            while series.len() > 61 {
                series.pop_front();
            }
            let per_second: Vec<Option<u64>> = {
                let mut v: Vec<Option<u64>> = series
                    .iter()
                    .zip(series.iter().skip(1))
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => Some(b.saturating_sub(*a)),
                        _ => None,
                    })
                    .collect();
                while v.len() < 60 {
                    v.insert(0, None);
                }
                v
            };
            let rate = |secs: usize| -> f64 {
                let window: Vec<u64> = per_second
                    .iter()
                    .rev()
                    .take(secs)
                    .flatten()
                    .copied()
                    .collect();
                if window.is_empty() {
                    0.0
                } else {
                    window.iter().sum::<u64>() as f64 / window.len() as f64
                }
            };
            for (slot, value) in total_series.iter_mut().zip(per_second.iter()) {
                if let Some(v) = value {
                    *slot = Some(slot.unwrap_or(0) + v);
                }
            }
            let stats = TypeStats {
                event_type: (*name).to_owned(),
                received,
                accepted: c.accepted.load(Ordering::Relaxed),
                rejected,
                duplicates: c.duplicates.load(Ordering::Relaxed),
                rejected_rate_60s,
                rate_1s: rate(1),
                rate_10s: rate(10),
                rate_60s: rate(60),
                history: per_second,
                duration_p99_ms: c
                    .durations
                    .lock()
                    .as_ref()
                    .filter(|h| !h.is_empty())
                    .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0),
            };
            totals.received += stats.received;
            totals.accepted += stats.accepted;
            totals.rejected += stats.rejected;
            totals.duplicates += stats.duplicates;
            totals.rate_1s += stats.rate_1s;
            totals.rate_10s += stats.rate_10s;
            totals.rate_60s += stats.rate_60s;
            totals.rejected_rate_60s += stats.rejected_rate_60s;
            types.push(stats);
        }
        totals.history = total_series;
        drop(history);
        self.senders
            .tick(totals.accepted, totals.rejected, totals.duplicates);

        let mut reasons: Vec<ReasonStats> = {
            let mut map = self.reasons.lock();
            map.iter_mut()
                .map(|(code, state)| {
                    state.history.push_back(state.count - state.last_count);
                    state.last_count = state.count;
                    while state.history.len() > 60 {
                        state.history.pop_front();
                    }
                    ReasonStats {
                        code: code.as_str().to_owned(),
                        count: state.count,
                        rate_60s: state.history.iter().sum::<u64>() as f64
                            / state.history.len().max(1) as f64,
                        last: state.last.clone(),
                    }
                })
                .collect()
        };
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));

        let latencies = Latency::ALL
            .iter()
            .map(|l| histo(l.name(), "ms", &self.histograms[l.index()].lock(), 1000.0))
            .collect();
        let batch_sizes = histo("batch_events", "events", &self.batch_sizes.lock(), 1.0);
        let mut responses: Vec<(u16, u64)> = self
            .responses
            .lock()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        responses.sort();
        let mut buffers = self.gauges.buffers.lock().clone();
        buffers.rss_bytes = rss_bytes();
        let snapshot = Arc::new(MetricsSnapshot {
            at: format_millis(now_ms),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            instance_id: self.instance_id.clone(),
            totals,
            types,
            reasons,
            latencies,
            batch_sizes,
            responses,
            refusals: self.refusals(),
            refusals_by_sender: self.senders.refusals(),
            apps: self.senders.apps(),
            throughput: self.senders.throughput(),
            buffers,
            sink: self.gauges.sink.lock().clone(),
            feed_clients: self.gauges.feed_clients.lock().clone(),
            drift: self.drift.stats(),
        });
        *self.last_snapshot.lock() = Some(snapshot.clone());
        snapshot
    }

    /// The last snapshot (building one if none was taken yet).
    pub fn snapshot(&self) -> Arc<MetricsSnapshot> {
        let last = self.last_snapshot.lock().clone();
        last.unwrap_or_else(|| self.tick())
    }

    /// A fresh snapshot of the counters without advancing the rate history (for `/v1/stats`
    /// right after a request: counts are exact, rates are those of the last tick).
    pub fn current(&self) -> MetricsSnapshot {
        let mut snap = (*self.snapshot()).clone();
        let mut totals = (0, 0, 0, 0);
        for stats in &mut snap.types {
            let c = self.type_counters(Some(&stats.event_type));
            let c = if stats.event_type == INVALID_TYPE {
                self.type_counters(None)
            } else {
                c
            };
            stats.received = c.received.load(Ordering::Relaxed);
            stats.accepted = c.accepted.load(Ordering::Relaxed);
            stats.rejected = c.rejected.load(Ordering::Relaxed);
            stats.duplicates = c.duplicates.load(Ordering::Relaxed);
            totals.0 += stats.received;
            totals.1 += stats.accepted;
            totals.2 += stats.rejected;
            totals.3 += stats.duplicates;
        }
        snap.totals.received = totals.0;
        snap.totals.accepted = totals.1;
        snap.totals.rejected = totals.2;
        snap.totals.duplicates = totals.3;
        snap.drift = self.drift.stats();
        let reasons = self.reasons.lock();
        for r in &mut snap.reasons {
            if let Some(state) = ReasonCode::parse(&r.code).and_then(|c| reasons.get(&c)) {
                r.count = state.count;
                r.last = state.last.clone();
            }
        }
        for (code, state) in reasons.iter() {
            if !snap.reasons.iter().any(|r| r.code == code.as_str()) {
                snap.reasons.push(ReasonStats {
                    code: code.as_str().to_owned(),
                    count: state.count,
                    rate_60s: 0.0,
                    last: state.last.clone(),
                });
            }
        }
        snap.latencies = Latency::ALL
            .iter()
            .map(|l| histo(l.name(), "ms", &self.histograms[l.index()].lock(), 1000.0))
            .collect();
        snap.batch_sizes = histo("batch_events", "events", &self.batch_sizes.lock(), 1.0);
        snap.responses = self
            .responses
            .lock()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        snap.responses.sort();
        snap.refusals = self.refusals();
        snap.refusals_by_sender = self.senders.refusals();
        snap.apps = self.senders.apps();
        snap.uptime_secs = self.started.elapsed().as_secs_f64();
        snap.buffers = self.gauges.buffers.lock().clone();
        snap.buffers.rss_bytes = rss_bytes();
        snap.sink = self.gauges.sink.lock().clone();
        snap.feed_clients = self.gauges.feed_clients.lock().clone();
        snap
    }

    /// The Prometheus exposition of `/metrics` (OpenMetrics text, see `prometheus.rs`).
    pub fn prometheus(self: &Arc<Self>) -> String {
        prometheus::render(self)
    }

    /// The sum and the per-bucket counts of a latency histogram (µs) for fixed bounds in µs;
    /// the last bucket is everything above the last bound.
    fn bucketed(&self, which: Option<Latency>, bounds: &[u64]) -> (f64, u64, Vec<u64>) {
        let h = match which {
            Some(latency) => self.histograms[latency.index()].lock(),
            None => self.batch_sizes.lock(),
        };
        let counts = bucket_counts(&h, bounds);
        let sum: f64 = h
            .iter_recorded()
            .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
            .sum();
        (sum, h.len(), counts)
    }

    /// Spool records the batcher could not decode, since start.
    fn undecodable(&self) -> u64 {
        self.undecodable_records.load(Ordering::Relaxed)
    }

    /// The bytes counters (compressed, inflated).
    fn body_bytes(&self) -> (u64, u64) {
        (
            self.bytes_received.load(Ordering::Relaxed),
            self.bytes_inflated.load(Ordering::Relaxed),
        )
    }
}

/// Summarises a histogram; `divisor` turns stored units into the reported unit (µs → ms).
fn histo(name: &str, unit: &str, h: &Histogram<u64>, divisor: f64) -> Histo {
    if h.is_empty() {
        return Histo {
            name: name.into(),
            unit: unit.into(),
            ..Histo::default()
        };
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / divisor;
    // Powers of two up to the first one that holds the largest value.
    let mut bounds = vec![1u64];
    while let Some(&last) = bounds.last().filter(|&&b| b < h.max() && b < u64::MAX / 2) {
        bounds.push(last * 2);
    }
    let counts = bucket_counts(h, &bounds);
    let buckets = bounds
        .iter()
        .zip(counts)
        .map(|(&upper, count)| Bucket {
            le: upper as f64 / divisor,
            count,
        })
        .collect();
    Histo {
        name: name.into(),
        unit: unit.into(),
        count: h.len(),
        min: h.min() as f64 / divisor,
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64 / divisor,
        buckets,
    }
}

/// The count of recorded values in each bucket `(previous bound, bound]` of ascending `bounds`,
/// plus one last bucket for everything above the last bound. Each value is counted once, by the
/// lowest value of its recording precision (0.1 %). `Histogram::count_between` is not used: it
/// counts whole precision ranges at both ends, so a value sharing a range with a bound (2049 µs
/// is stored as 2048–2049) would be counted in two buckets and the buckets would add up to more
/// than the histogram's count.
fn bucket_counts(h: &Histogram<u64>, bounds: &[u64]) -> Vec<u64> {
    let mut counts = vec![0; bounds.len() + 1];
    for value in h.iter_recorded() {
        let lowest = h.lowest_equivalent(value.value_iterated_to());
        counts[bounds.partition_point(|&b| b < lowest)] += value.count_at_value();
    }
    counts
}

/// Resident set size of this process (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, item 5: a refused request is counted by its status and error code, in the
    /// snapshot the feed sends and in `/v1/stats`.
    #[test]
    fn refusals_are_counted_by_status_and_code() {
        let m = Arc::new(Metrics::new("i".into()));
        m.refusal(401, "unknown_key");
        m.refusal(401, "unknown_key");
        m.refusal(413, "too_large");
        let expected = vec![
            Refusal {
                status: 401,
                code: "unknown_key".into(),
                count: 2,
            },
            Refusal {
                status: 413,
                code: "too_large".into(),
                count: 1,
            },
        ];
        assert_eq!(m.tick().refusals, expected);
        m.refusal(413, "too_large");
        assert_eq!(m.current().refusals[1].count, 2);
    }

    #[test]
    fn counts_rates_and_reasons() {
        let m = Arc::new(Metrics::new("i".into()));
        m.accepted("cache", Some(2.0));
        m.accepted("my_custom", None);
        m.duplicate("cache");
        m.rejected(
            Some("job"),
            &[Problem::new(
                ReasonCode::MissingField,
                "/payload/status",
                "x",
                "absent",
            )],
        );
        m.record_latency(Latency::Request, 1500);
        m.retry(Retry::Write);
        m.retry(Retry::Write);
        m.undecodable_records(1);
        let snap = m.tick();
        let cache = snap.types.iter().find(|t| t.event_type == "cache").unwrap();
        assert_eq!(
            (cache.received, cache.accepted, cache.duplicates),
            (2, 1, 1)
        );
        // 2 ms, within the 1 % of a type's duration histogram.
        let p99 = cache.duration_p99_ms.unwrap();
        assert!((2.0..=2.02).contains(&p99), "{p99}");
        let unknown = snap
            .types
            .iter()
            .find(|t| t.event_type == UNKNOWN_TYPE)
            .unwrap();
        assert_eq!(unknown.accepted, 1);
        assert_eq!(snap.totals.received, 4);
        assert_eq!(snap.reasons[0].code, "missing_field");
        assert_eq!(
            snap.reasons[0].last.as_ref().unwrap().path,
            "/payload/status"
        );
        let request = &snap.latencies[0];
        assert_eq!(request.count, 1);
        assert!((request.p50 - 1.5).abs() < 0.01, "{}", request.p50);
        assert_eq!(request.buckets.iter().map(|b| b.count).sum::<u64>(), 1);
        let text = m.prometheus();
        assert!(text.contains("baddybugs_ingest_events_accepted_total{type=\"cache\"} 1"));
        assert!(text.contains("baddybugs_ingest_rejections_total{reason=\"missing_field\"} 1"));
        // Fixed bucket bounds, cumulative counts: 1.5 ms falls under le=0.0025 and above.
        assert!(
            text.contains("baddybugs_ingest_request_duration_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(text.contains("baddybugs_ingest_request_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("baddybugs_ingest_request_duration_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("baddybugs_ingest_request_duration_seconds_count 1"));
        assert!(text.contains("# TYPE baddybugs_ingest_spool_bytes gauge"));
        assert!(text.contains("baddybugs_ingest_batcher_retries_total{stage=\"write\"} 2"));
        assert!(text.contains("baddybugs_ingest_batcher_retries_total{stage=\"build\"} 0"));
        assert!(text.contains("baddybugs_ingest_spool_undecodable_records_total 1"));
        assert!(text.trim_end().ends_with("# EOF"));
        // The same bounds at every scrape, whatever was recorded since.
        let bounds = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("baddybugs_ingest_request_duration_seconds_bucket"))
                .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        };
        let before = bounds(&text);
        m.record_latency(Latency::Request, 45_000_000);
        assert_eq!(bounds(&m.prometheus()), before);
    }

    /// A value that shares its recording precision with a bucket bound (2049 µs is stored as
    /// 2048–2049, 1001 µs as 1001 only) is counted in exactly one bucket: the buckets add up to
    /// the histogram's count in `/v1/stats`, and Prometheus' cumulative `+Inf` equals `_count`.
    #[test]
    fn every_recorded_value_is_in_exactly_one_bucket() {
        let m = Arc::new(Metrics::new("i".into()));
        let values = [
            1, 2, 3, 1000, 1001, 2047, 2048, 2049, 4097, 2_500_001, 9_999_999,
        ];
        for &micros in &values {
            m.record_latency(Latency::Request, micros);
        }
        let snap = m.tick();
        let request = &snap.latencies[0];
        assert_eq!(request.count, values.len() as u64);
        assert_eq!(
            request.buckets.iter().map(|b| b.count).sum::<u64>(),
            values.len() as u64,
            "{:?}",
            request.buckets
        );
        // 2049 shares 2048's precision range: 2047, 2048 and 2049 are in the bucket up to
        // 2.048 ms, and 4097 (stored as 4096–4099) in the one up to 4.096 ms.
        let at = |le: f64| request.buckets.iter().find(|b| b.le == le).unwrap().count;
        assert_eq!(at(2.048), 3, "{:?}", request.buckets);
        assert_eq!(at(4.096), 1, "{:?}", request.buckets);
        let text = m.prometheus();
        let inf = text
            .lines()
            .find(|l| {
                l.starts_with("baddybugs_ingest_request_duration_seconds_bucket{le=\"+Inf\"}")
            })
            .unwrap();
        assert!(inf.ends_with(&format!(" {}", values.len())), "{inf}");
    }
}

//! `/metrics`: the registry's state encoded by `prometheus-client` (OpenMetrics text).
//!
//! The counters, gauges and hdrhistograms of [`Metrics`] stay the one source of truth (the feed
//! and `/v1/stats` read them too); a [`Collector`] reads them at each scrape and lets the crate
//! write the exposition: names, the `_total` and unit suffixes, label escaping, cumulative
//! buckets and the `# EOF` terminator. Histogram bucket bounds are fixed (Prometheus needs the
//! same `le` values at every scrape to compute rates and quantiles); the hdrhistograms keep the
//! exact percentiles for the feed.
//!
//! Names follow `baddybugs_ingest_<what>[_<unit>][_total]` (docs/OPERATIONS.md lists them).

use std::sync::Arc;

use baddybugs_common::ReasonCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{Latency, Metrics, Retry};
use crate::sink::Table;

/// Latency bucket bounds, µs: 100 µs … 60 s.
const LATENCY_BOUNDS_US: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Event-age bucket bounds, µs: 10 ms … 1 day (agents re-send old batches).
const AGE_BOUNDS_US: [u64; 12] = [
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    60_000_000,
    300_000_000,
    3_600_000_000,
    21_600_000_000,
    86_400_000_000,
];

/// Events-per-request bucket bounds.
const BATCH_BOUNDS: [u64; 12] = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Renders the exposition of `metrics`.
pub(super) fn render(metrics: &Arc<Metrics>) -> String {
    let mut registry = Registry::with_prefix("baddybugs_ingest");
    registry.register_collector(Box::new(IngestCollector(Arc::clone(metrics))));
    let mut out = String::with_capacity(32 << 10);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Reads [`Metrics`] at each scrape.
struct IngestCollector(Arc<Metrics>);

impl std::fmt::Debug for IngestCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestCollector")
    }
}

fn counter_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, count) in values {
        let labels = [(label, value)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    label: &str,
    values: impl Iterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (value, n) in values {
        ConstGauge::new(n as f64).encode(family.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// The memory consumers and their bounds (`consumer` label), and jemalloc's statistics
/// (`stat` label).
fn memory(
    e: &mut DescriptorEncoder,
    memory: &baddybugs_common::protocol::MemoryStats,
) -> Result<(), std::fmt::Error> {
    let bytes = Some(&Unit::Bytes);
    let held = memory
        .consumers
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.bytes?)));
    gauge_family(
        e,
        "memory_consumer",
        "Bytes a memory consumer holds (buffers.memory in /v1/stats).",
        bytes,
        "consumer",
        held,
    )?;
    let limits = memory
        .consumers
        .iter()
        .filter_map(|c| Some((c.name.as_str(), c.limit_bytes?)));
    gauge_family(
        e,
        "memory_consumer_limit",
        "The most a memory consumer may hold, from its configuration keys.",
        bytes,
        "consumer",
        limits,
    )?;
    if let Some(a) = memory.allocator {
        gauge_family(
            e,
            "allocator",
            "jemalloc statistics: allocated, active, resident, retained.",
            bytes,
            "stat",
            [
                ("allocated", a.allocated),
                ("active", a.active),
                ("resident", a.resident),
                ("retained", a.retained),
            ]
            .into_iter(),
        )?;
    }
    Ok(())
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    (sum, count, per_bucket): (f64, u64, Vec<u64>),
    bounds: &[u64],
    divisor: f64,
) -> Result<(), std::fmt::Error> {
    // Divided, not multiplied by 1e-6: 50_000 / 1e6 is exactly the double nearest 0.05, so
    // the bound prints as `0.05`.
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .map(|b| *b as f64 / divisor)
        .chain(std::iter::once(f64::MAX))
        .zip(per_bucket)
        .collect();
    encoder
        .encode_descriptor(name, help, unit, MetricType::Histogram)?
        .encode_histogram::<()>(sum / divisor, count, &buckets, None)
}

impl Collector for IngestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let snap = m.current();
        let e = &mut encoder;
        counter_family(
            e,
            "schema_drift",
            "Schema drift divergences seen in accepted events, by kind.",
            "kind",
            snap.drift.by_kind.iter().map(|(k, n)| (k.as_str(), *n)),
        )?;
        counter(
            e,
            "schema_drift_overflow",
            "Schema drift divergences not kept: their type had drift.max_keys_per_type keys (or \
             drift.max_types types had drift).",
            snap.drift.overflow,
        )?;
        gauge(
            e,
            "schema_drift_keys",
            "Distinct schema drift keys kept in memory.",
            None,
            snap.drift.keys as f64,
        )?;
        counter_family(
            e,
            "events_received",
            "Events received, by type.",
            "type",
            snap.types
                .iter()
                .map(|t| (t.event_type.as_str(), t.received)),
        )?;
        counter_family(
            e,
            "events_accepted",
            "Events accepted (durable in the spool), by type.",
            "type",
            snap.types
                .iter()
                .map(|t| (t.event_type.as_str(), t.accepted)),
        )?;
        counter_family(
            e,
            "events_rejected",
            "Events rejected and quarantined, by type.",
            "type",
            snap.types
                .iter()
                .map(|t| (t.event_type.as_str(), t.rejected)),
        )?;
        counter_family(
            e,
            "events_duplicate",
            "Agent retries recognised by event id, by type.",
            "type",
            snap.types
                .iter()
                .map(|t| (t.event_type.as_str(), t.duplicates)),
        )?;
        counter_family(
            e,
            "rejections",
            "Rejection reasons (an event can have several).",
            "reason",
            ReasonCode::ALL.iter().map(|code| {
                let count = snap
                    .reasons
                    .iter()
                    .find(|r| r.code == code.as_str())
                    .map_or(0, |r| r.count);
                (code.as_str(), count)
            }),
        )?;
        let warnings = m.warning_counts();
        counter_family(
            e,
            "event_warnings",
            "Problems that did not reject an accepted event, by reason.",
            "reason",
            [ReasonCode::BadTimestamp, ReasonCode::FutureTimestamp]
                .into_iter()
                .map(|code| {
                    let count = warnings
                        .iter()
                        .find(|(c, _)| *c == code)
                        .map_or(0, |(_, n)| *n);
                    (code.as_str(), count)
                }),
        )?;
        let statuses: Vec<(String, u64)> = snap
            .responses
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect();
        counter_family(
            e,
            "http_responses",
            "HTTP responses of the ingest endpoint, by status.",
            "status",
            statuses.iter().map(|(s, c)| (s.as_str(), *c)),
        )?;
        let (compressed, inflated) = m.body_bytes();
        let mut family = e.encode_descriptor(
            "body",
            "Request body bytes, as sent and inflated.",
            Some(&Unit::Bytes),
            MetricType::Counter,
        )?;
        for (form, value) in [("compressed", compressed), ("inflated", inflated)] {
            ConstCounter::new(value).encode(family.encode_family(&[("form", form)])?)?;
        }

        for (latency, name, help, bounds) in [
            (
                Latency::Request,
                "request_duration",
                "Receipt of a request to its response.",
                &LATENCY_BOUNDS_US[..],
            ),
            (
                Latency::Fsync,
                "spool_fsync_duration",
                "One spool fdatasync (shared by a group of requests).",
                &LATENCY_BOUNDS_US[..],
            ),
            (
                Latency::Insert,
                "sink_insert_duration",
                "One store write.",
                &LATENCY_BOUNDS_US[..],
            ),
            (
                Latency::EndToEnd,
                "end_to_end_duration",
                "From the 202 to the event being stored.",
                &LATENCY_BOUNDS_US[..],
            ),
            (
                Latency::EventAge,
                "event_age",
                "From the agent's timestamp to the event being stored.",
                &AGE_BOUNDS_US[..],
            ),
        ] {
            histogram(
                e,
                name,
                help,
                Some(&Unit::Seconds),
                m.bucketed(Some(latency), bounds),
                bounds,
                1e6,
            )?;
        }
        histogram(
            e,
            "batch_events",
            "Events per request.",
            None,
            m.bucketed(None, &BATCH_BOUNDS),
            &BATCH_BOUNDS,
            1.0,
        )?;

        let b = &snap.buffers;
        let bytes = Some(&Unit::Bytes);
        let seconds = Some(&Unit::Seconds);
        gauge(
            e,
            "spool",
            "Spool bytes on disk.",
            bytes,
            b.spool_bytes as f64,
        )?;
        gauge(
            e,
            "spool_quota",
            "Spool quota; past it ingest answers 503.",
            bytes,
            b.spool_quota_bytes as f64,
        )?;
        gauge(
            e,
            "spool_segments",
            "Spool segment files.",
            None,
            b.spool_segments as f64,
        )?;
        gauge(
            e,
            "spool_pending_records",
            "Spool records (requests) not yet stored.",
            None,
            b.pending_records as f64,
        )?;
        gauge(
            e,
            "spool_oldest_pending",
            "Age of the oldest record not yet stored.",
            seconds,
            b.oldest_pending_secs.unwrap_or(0.0),
        )?;
        gauge(
            e,
            "memory_queued",
            "Bytes held in memory queues.",
            bytes,
            b.memory_bytes as f64,
        )?;
        memory(e, &b.memory)?;
        gauge(
            e,
            "sink_up",
            "1 when the last store write succeeded.",
            None,
            if snap.sink.healthy { 1.0 } else { 0.0 },
        )?;
        gauge(
            e,
            "sink_lag_events",
            "Acknowledged but not yet stored (spool records).",
            None,
            snap.sink.lag_events as f64,
        )?;
        if let Some(copies) = &snap.sink.store_copies {
            gauge(
                e,
                "store_extra_copies",
                "Rows beyond the first of each event received within clickhouse.copies_window_secs (agent retries stored by two nodes; reads show each event once).",
                None,
                copies.copies as f64,
            )?;
        }
        gauge(
            e,
            "feed_clients",
            "Connected feed clients.",
            None,
            snap.feed_clients.len() as f64,
        )?;
        gauge(e, "uptime", "Time since start.", seconds, snap.uptime_secs)?;
        let c = &m.connections;
        let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
        let mut family = e.encode_descriptor(
            "connections_open",
            "Open connections, by pool (regular, or the operator reserve).",
            None,
            MetricType::Gauge,
        )?;
        for (pool, value) in [
            ("regular", load(&c.open_regular)),
            ("reserve", load(&c.open_reserve)),
        ] {
            ConstGauge::new(value as f64).encode(family.encode_family(&[("pool", pool)])?)?;
        }
        counter(
            e,
            "connections_accepted",
            "Connections accepted.",
            load(&c.accepted),
        )?;
        counter_family(
            e,
            "connections_closed",
            "Connections closed by the server before the client closed them, by reason.",
            "reason",
            [
                ("header_timeout", load(&c.header_timeouts)),
                ("idle_timeout", load(&c.idle_timeouts)),
                ("shed_half_open", load(&c.shed_half_open)),
                ("shed_idle", load(&c.shed_idle)),
                ("refused", load(&c.refused)),
                ("dead_peer", load(&c.dead_peers)),
            ]
            .into_iter(),
        )?;
        counter(
            e,
            "accept_errors",
            "Failed accepts (out of descriptors, mostly).",
            load(&c.accept_errors),
        )?;
        counter(
            e,
            "handler_panics",
            "Request handlers that panicked (answered 500).",
            load(&c.handler_panics),
        )?;
        counter(e, "sink_errors", "Failed store writes.", snap.sink.errors)?;
        counter_family(
            e,
            "batcher_retries",
            "Failed attempts of the batcher's retry loops (each is retried), by stage.",
            "stage",
            Retry::ALL.iter().map(|r| (r.label(), m.retries(*r))),
        )?;
        counter_family(
            e,
            "sink_dropped_rows",
            "Rows the store refused for good that the batcher dropped (spans, exceptions, quarantine and pipeline-trace rows; a refused event is quarantined as sink_rejected instead), by table.",
            "table",
            Table::ALL
                .iter()
                .map(|t| (t.as_str(), m.sink_dropped_rows(*t))),
        )?;
        counter(
            e,
            "spool_undecodable_records",
            "Spool records the batcher could not decode (kept in the quarantine; a bug).",
            m.undecodable(),
        )?;
        let mut family = e.encode_descriptor(
            "spool_errors",
            "Failed spool operations, by operation and cause (docs/OPERATIONS.md).",
            None,
            MetricType::Counter,
        )?;
        for ((op, kind), count) in m.spool_errors() {
            ConstCounter::new(count)
                .encode(family.encode_family(&[("op", op), ("kind", kind)])?)?;
        }
        counter(
            e,
            "sink_written_events",
            "Events written to the store.",
            snap.sink.written_events,
        )?;
        counter(
            e,
            "sink_written_batches",
            "Store writes (batches) that succeeded.",
            snap.sink.written_batches,
        )?;
        counter(
            e,
            "sink_commits",
            "Store commits that succeeded (one per group of batches with group commit).",
            snap.sink.commits,
        )?;
        counter(
            e,
            "feed_dropped_messages",
            "Feed messages dropped for slow clients (connected clients).",
            snap.feed_clients.iter().map(|c| c.dropped).sum(),
        )?;
        counter(
            e,
            "feed_dropped_batches",
            "Acknowledged requests left out of the live feed because its thread was behind (the store is not affected).",
            m.gauges
                .feed_dropped_batches
                .load(std::sync::atomic::Ordering::Relaxed),
        )?;
        let dedup = *m.gauges.dedup.lock();
        let mut family = e.encode_descriptor(
            "dedup_window_span",
            "How far back the dedup window remembers every accepted id, by tier (exact: the newest ids; filter: the whole window, confirmed by the store). Below ingest.dedup_window_secs after a restart or when a tier is too small for the rate.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (tier, ms) in [
            ("exact", dedup.exact_span_ms),
            ("filter", dedup.filter_span_ms),
        ] {
            ConstGauge::new(ms as f64 / 1000.0).encode(family.encode_family(&[("tier", tier)])?)?;
        }
        let mut family = e.encode_descriptor(
            "dedup_window_ids",
            "Accepted ids the dedup window remembers, by tier.",
            None,
            MetricType::Gauge,
        )?;
        for (tier, ids) in [("exact", dedup.exact_ids), ("filter", dedup.filter_ids)] {
            ConstGauge::new(ids as i64).encode(family.encode_family(&[("tier", tier)])?)?;
        }
        gauge(
            e,
            "dedup_filter",
            "Memory of the dedup window's long tier (at most ingest.dedup_filter_bytes).",
            Some(&Unit::Bytes),
            dedup.filter_bytes as f64,
        )?;
        counter(
            e,
            "dedup_filter_slices_dropped_early",
            "Slices of the dedup window's long tier forgotten before their time to stay within ingest.dedup_filter_bytes.",
            dedup.filter_slices_dropped_early,
        )?;
        counter_family(
            e,
            "dedup_store_checks",
            "Ids the dedup window's long tier may have seen, looked up in the store, by outcome (stored: a duplicate; not_stored: a false maybe; failed: taken as new).",
            "outcome",
            crate::metrics::DedupCheck::ALL.iter().map(|c| {
                (
                    c.label(),
                    m.gauges.dedup_store_checks[*c as usize]
                        .load(std::sync::atomic::Ordering::Relaxed),
                )
            }),
        )?;
        counter(
            e,
            "replayed_signatures",
            "Signed requests answered as replays (same X-Signature within the skew window), not stored again.",
            m.gauges
                .replayed_signatures
                .load(std::sync::atomic::Ordering::Relaxed),
        )?;
        Ok(())
    }
}

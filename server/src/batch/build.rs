//! Spool records → store rows.

use baddybugs_common::protocol::StageName;
use baddybugs_common::{derive_event, Problem, ReasonCode};

use std::collections::HashSet;

use crate::record::assigned_id;
use crate::record::{self, DecodedRecord, Stage};
use crate::sink::{
    EventRow, ExceptionOccurrence, MalformedRow, SharedStr, SinkBatch, SpanRowOut, SpanRows,
    TraceRow,
};

/// One spool record handed to the builder.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Its LSN.
    pub lsn: u64,
    /// Its bytes.
    pub payload: &'a [u8],
    /// When the spool appended it, epoch ms.
    pub appended_ms: u64,
    /// When it was durable (its fsync returned), epoch ms.
    pub durable_ms: u64,
}

/// What the builder learnt besides the rows (for metrics and the feed).
#[derive(Debug, Default)]
pub struct BuildStats {
    /// (received_ms of the batch, events) per record, for end-to-end latency.
    pub receipts: Vec<(i64, usize)>,
    /// Event timestamps (epoch ms), for the event-age histogram.
    pub event_times: Vec<i64>,
    /// Records that could not be decoded (a bug: counted, logged, kept in the quarantine).
    pub undecodable: usize,
}

/// Each distinct value of a batch's repeated fields, built once: the rows point to it.
///
/// Per event, the tenant, batch id, type, environment, time source, host, release, deployment
/// and trace were eleven small heap strings of their own, a third of a row's bytes; in a
/// batch of 10k events they take a few hundred distinct values. Dropped with the build, so
/// nothing outlives the batch that needed it.
#[derive(Default)]
struct Interner {
    values: HashSet<SharedStr>,
}

impl Interner {
    fn get(&mut self, value: &str) -> SharedStr {
        if let Some(shared) = self.values.get(value) {
            return SharedStr::clone(shared);
        }
        let shared = SharedStr::from(value);
        self.values.insert(SharedStr::clone(&shared));
        shared
    }

    fn get_opt(&mut self, value: Option<&str>) -> Option<SharedStr> {
        value.map(|v| self.get(v))
    }
}

/// Builds the rows of a contiguous run of records; span rows only when the store writes them.
pub fn build_batch(
    records: &[RecordRef<'_>],
    spans: SpanRows,
    trace_filter: impl Fn(&TraceRow, u64) -> bool,
) -> (SinkBatch, BuildStats) {
    let mut batch = SinkBatch {
        first_lsn: records.first().map_or(0, |r| r.lsn),
        last_lsn: records.last().map_or(0, |r| r.lsn),
        ..SinkBatch::default()
    };
    let mut stats = BuildStats::default();
    // The records' headers say how many events follow: one allocation for the rows instead of
    // doubling a 10k-row vector (and copying its rows) a dozen times, and no unused half. Each
    // event takes at least a byte of its record, which bounds a damaged header's count.
    let events: usize = records
        .iter()
        .map(|r| record::event_count(r.payload).map_or(0, |n| n.min(r.payload.len())))
        .sum();
    batch.events.reserve_exact(events);
    stats.event_times.reserve_exact(events);
    stats.receipts.reserve_exact(records.len());
    let mut interner = Interner::default();
    for rec in records {
        match record::decode(rec.payload) {
            Ok(decoded) => add_record(
                &mut batch,
                &mut stats,
                &mut interner,
                rec,
                &decoded,
                spans,
                &trace_filter,
            ),
            Err(err) => {
                stats.undecodable += 1;
                tracing::error!(lsn = rec.lsn, %err, "spool record cannot be decoded; kept in the quarantine");
                batch.malformed.push(MalformedRow {
                    id: format!("lsn-{}", rec.lsn),
                    lsn: rec.lsn,
                    received_ms: chrono::Utc::now().timestamp_millis(),
                    organization: String::new(),
                    application: String::new(),
                    batch_id: String::new(),
                    index: None,
                    event_type: None,
                    event_id: None,
                    reasons: vec![Problem::new(
                        ReasonCode::InvalidJson,
                        "",
                        "a spool record",
                        err.to_string(),
                    )],
                    raw_size: rec.payload.len() as u64,
                    raw: rec.payload.to_vec(),
                    agent_version: None,
                    remote_addr: None,
                });
            }
        }
    }
    (batch, stats)
}

fn add_record(
    batch: &mut SinkBatch,
    stats: &mut BuildStats,
    interner: &mut Interner,
    spooled: &RecordRef<'_>,
    rec: &DecodedRecord<'_>,
    spans: SpanRows,
    trace_filter: &impl Fn(&TraceRow, u64) -> bool,
) {
    let lsn = spooled.lsn;
    let meta = &rec.meta;
    stats.receipts.push((meta.received_ms, rec.events.len()));
    let batch_id = SharedStr::from(meta.batch_id.as_str());
    let organization = interner.get(&meta.organization);
    let application = interner.get(&meta.application);
    for (index, bytes) in &rec.events {
        // Spooled events are UTF-8 (ingest split them from a UTF-8 body): check it the fast way
        // (`from_utf8_lossy` walked every chunk and was 8 % of a build).
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        // Validated when it was accepted: only parsed again, for the columns and rows
        // (`derive_event`; a 202 is not taken back by a later, stricter catalog).
        match derive_event(&text, meta.received_ms) {
            Ok(event) => {
                let env = &event.envelope;
                let event_id = env
                    .id
                    .as_deref()
                    .map(str::to_owned)
                    .unwrap_or_else(|| assigned_id(&meta.batch_id, *index));
                let trace_id = interner.get(env.trace_id.as_deref().unwrap_or_default());
                stats.event_times.push(env.timestamp_ms);
                let span_rows = match spans {
                    SpanRows::Written => event.span_rows(),
                    SpanRows::DerivedAtRead => Vec::new(),
                };
                if !span_rows.is_empty() {
                    let span_event_id = SharedStr::from(event_id.as_str());
                    batch
                        .spans
                        .extend(span_rows.into_iter().map(|span| SpanRowOut {
                            event_id: SharedStr::clone(&span_event_id),
                            trace_id: SharedStr::clone(&trace_id),
                            organization: SharedStr::clone(&organization),
                            application: SharedStr::clone(&application),
                            timestamp_ms: env.timestamp_ms,
                            received_ms: meta.received_ms,
                            span,
                        }));
                }
                if let Some(exception) = event.exception_row() {
                    batch.exceptions.push(ExceptionOccurrence {
                        event_id: event_id.clone(),
                        trace_id: trace_id.to_string(),
                        organization: meta.organization.clone(),
                        application: meta.application.clone(),
                        environment: env.environment.as_deref().unwrap_or_default().to_owned(),
                        timestamp_ms: env.timestamp_ms,
                        received_ms: meta.received_ms,
                        exception,
                    });
                }
                batch.events.push(EventRow {
                    event_id,
                    lsn,
                    index: *index,
                    batch_id: SharedStr::clone(&batch_id),
                    organization: SharedStr::clone(&organization),
                    application: SharedStr::clone(&application),
                    environment: interner.get(env.environment.as_deref().unwrap_or_default()),
                    event_type: interner.get(&env.event_type),
                    name: env.name.to_string(),
                    timestamp_ms: env.timestamp_ms,
                    timestamp_source: interner.get(env.timestamp_source.as_str()),
                    received_ms: meta.received_ms,
                    trace_id,
                    session_id: interner.get_opt(env.session_id.as_deref()),
                    release: interner.get_opt(env.release.as_deref()),
                    host: interner.get_opt(env.host.as_deref()),
                    deployment_hash: interner.get_opt(env.deployment_hash.as_deref()),
                    known_type: event.is_known_type(),
                    columns: event.columns,
                    data: env.payload_text().to_owned(),
                    envelope: env.extra_json(),
                });
            }
            Err(rejected) => {
                // Accepted at ingest but unreadable now (an envelope rule of a later version).
                // Never dropped: quarantined with the reasons.
                batch.malformed.push(MalformedRow {
                    id: format!("{}-{index}", meta.batch_id),
                    lsn,
                    received_ms: meta.received_ms,
                    organization: meta.organization.clone(),
                    application: meta.application.clone(),
                    batch_id: meta.batch_id.clone(),
                    index: Some(*index),
                    event_type: rejected.event_type,
                    event_id: rejected.id,
                    reasons: rejected.problems,
                    raw_size: bytes.len() as u64,
                    raw: bytes.to_vec(),
                    agent_version: meta.agent_version.clone(),
                    remote_addr: meta.remote_addr.clone(),
                });
            }
        }
    }
    for (q, raw) in meta.quarantined.iter().zip(rec.quarantined_raw.iter()) {
        batch.malformed.push(MalformedRow {
            id: match q.index {
                Some(i) => format!("{}-{i}", meta.batch_id),
                None => format!("{}-body", meta.batch_id),
            },
            lsn,
            received_ms: meta.received_ms,
            organization: meta.organization.clone(),
            application: meta.application.clone(),
            batch_id: meta.batch_id.clone(),
            index: q.index,
            event_type: q.event_type.clone(),
            event_id: q.event_id.clone(),
            reasons: q.reasons.clone(),
            raw: raw.to_vec(),
            raw_size: q.raw_size,
            agent_version: meta.agent_version.clone(),
            remote_addr: meta.remote_addr.clone(),
        });
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut stages: Vec<Stage> = meta.stages.clone();
    // The record was encoded before the append: the spool's own clock closes `spooled` when
    // the record was durable (the write and the wait for its group's fsync, millisecond
    // precision), and the 202 follows it at once.
    let enriched_us = meta.stages.last().map_or(0, |s| s.start_us + s.duration_us);
    let durable_ms = spooled.durable_ms.max(spooled.appended_ms);
    let spooled_at_us =
        ((durable_ms as i64 - meta.received_ms).max(0) as u64 * 1000).max(enriched_us);
    let acked_us = spooled_at_us;
    let inserted_at_us = ((now_ms - meta.received_ms).max(0) as u64) * 1000;
    stages.extend([
        Stage {
            stage: StageName::Spooled,
            start_us: enriched_us,
            duration_us: spooled_at_us - enriched_us,
        },
        Stage {
            stage: StageName::Acknowledged,
            start_us: spooled_at_us,
            duration_us: 0,
        },
        Stage {
            stage: StageName::Inserted,
            start_us: acked_us,
            duration_us: inserted_at_us.saturating_sub(acked_us),
        },
    ]);
    let rejected = meta.quarantined.len() as u32;
    let accepted = rec.events.len() as u32;
    let outcome = if meta.quarantined.iter().any(|q| q.index.is_none()) {
        "quarantined_body"
    } else if rejected == 0 {
        "accepted"
    } else if accepted == 0 {
        "rejected"
    } else {
        "partial"
    };
    let trace = TraceRow {
        batch_id: meta.batch_id.clone(),
        lsn,
        received_ms: meta.received_ms,
        organization: meta.organization.clone(),
        application: meta.application.clone(),
        outcome: outcome.to_owned(),
        total_us: inserted_at_us.max(acked_us),
        stages,
        bytes_compressed: meta.bytes_compressed,
        bytes_inflated: meta.bytes_inflated,
        events: meta.total_events,
        accepted,
        rejected,
        duplicates: meta.duplicates,
    };
    // Sampling looks at the request's own time (to its 202), not at the batcher's wait.
    if trace_filter(&trace, acked_us) {
        batch.traces.push(trace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{self, BatchMeta};

    /// Builds the rows of one spool record (LSN 1), keeping its pipeline trace or not.
    fn build_one(payload: &[u8], keep_traces: bool) -> (SinkBatch, BuildStats) {
        build_batch(
            &[RecordRef {
                lsn: 1,
                payload,
                appended_ms: 0,
                durable_ms: 0,
            }],
            SpanRows::Written,
            |_, _| keep_traces,
        )
    }

    /// A 202 is a promise to store: an event the ingest accepted is stored as an event even
    /// when the catalog the batcher runs with would refuse it now (a stricter release started
    /// on a spool written by an older one). The batcher only parses it again.
    #[test]
    fn an_accepted_event_is_stored_even_if_the_catalog_now_refuses_it() {
        let event = br#"{"id":"ev-1","type":"query","name":"sql","timestamp":1767225600,"data":{"sql":"select 1","duration":"slow","connection":7}}"#;
        let text = std::str::from_utf8(event).unwrap();
        assert!(
            baddybugs_common::check_event(text, 0).is_err(),
            "the test needs an event the catalog refuses"
        );
        let meta = BatchMeta::for_test(1);
        let payload = record::encode(&meta, &[(0, &event[..])], &[]);
        let (batch, stats) = build_one(&payload, false);
        assert_eq!(stats.undecodable, 0);
        assert!(batch.malformed.is_empty(), "{:?}", batch.malformed);
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].event_id, "ev-1");
        assert_eq!(
            batch.events[0].data.as_bytes(),
            &br#"{"sql":"select 1","duration":"slow","connection":7}"#[..]
        );
    }

    /// The batcher's memory bound (`metrics::memory::batcher_limit_bytes`) assumes a built
    /// batch's rows take at most twice the record bytes they come from plus
    /// `ROW_BYTES_PER_EVENT` per event. Checked on every valid fixture of the catalog (the real
    /// agent's shapes and the brief's), as one realistic batch id and tenant would carry them.
    #[test]
    fn built_rows_stay_within_the_batchers_bound_per_event() {
        let fixtures = baddybugs_fixtures::valid_fixtures();
        assert!(fixtures.len() > 47, "the fixtures are there");
        let mut meta = BatchMeta::for_test(fixtures.len() as u32);
        meta.batch_id = "0194f8a2-7c1e-7b3d-9f00-5a5b6c7d8e9f".into();
        meta.organization = "acme-production".into();
        meta.application = "checkout-api".into();
        let events: Vec<(u32, &[u8])> = fixtures
            .iter()
            .enumerate()
            .map(|(i, f)| (i as u32, f.text.as_bytes()))
            .collect();
        let payload = record::encode(&meta, &events, &[]);
        let (batch, _) = build_one(&payload, true);
        assert_eq!(batch.events.len() + batch.malformed.len(), fixtures.len());
        let bound = 2 * payload.len() as u64
            + fixtures.len() as u64 * crate::metrics::memory::ROW_BYTES_PER_EVENT;
        let rows = batch.heap_bytes();
        assert!(
            rows <= bound,
            "{rows} row bytes for {} record bytes of {} events: over the bound {bound}",
            payload.len(),
            fixtures.len()
        );
        assert!(
            rows > payload.len() as u64,
            "the rows hold at least the data"
        );
    }

    /// The values that repeat across a batch's rows (tenant, batch id, type, environment,
    /// trace…) are one allocation per batch that every row points to, across records too, and
    /// the memory gauge counts each once: that sharing is what keeps rows near 1.75× their
    /// records instead of 2.2×.
    #[test]
    fn rows_of_a_batch_share_their_repeated_values_and_count_them_once() {
        let events = [
            br#"{"id":"ev-1","type":"log","name":"info","timestamp":1767225600,"env":"production","trace_id":"tr-1","host":"web-1","data":{"level":"info","message":"one"}}"#,
            br#"{"id":"ev-2","type":"log","name":"info","timestamp":1767225601,"env":"production","trace_id":"tr-1","host":"web-1","data":{"level":"info","message":"two"}}"#,
        ];
        let meta = BatchMeta::for_test(1);
        let first = record::encode(&meta, &[(0, &events[0][..])], &[]);
        let second = record::encode(&meta, &[(0, &events[1][..])], &[]);
        let (batch, _) = build_batch(
            &[
                RecordRef {
                    lsn: 1,
                    payload: &first,
                    appended_ms: 0,
                    durable_ms: 0,
                },
                RecordRef {
                    lsn: 2,
                    payload: &second,
                    appended_ms: 0,
                    durable_ms: 0,
                },
            ],
            SpanRows::Written,
            |_, _| false,
        );
        let [a, b] = &batch.events[..] else {
            panic!("two events, got {}", batch.events.len());
        };
        use std::sync::Arc;
        for (what, x, y) in [
            ("organization", &a.organization, &b.organization),
            ("application", &a.application, &b.application),
            ("type", &a.event_type, &b.event_type),
            ("environment", &a.environment, &b.environment),
            ("time source", &a.timestamp_source, &b.timestamp_source),
            ("trace", &a.trace_id, &b.trace_id),
        ] {
            assert!(Arc::ptr_eq(x, y), "{what} is one allocation for the batch");
        }
        assert!(Arc::ptr_eq(
            a.host.as_ref().unwrap(),
            b.host.as_ref().unwrap()
        ));
        assert_eq!(&*a.event_type, "log");
        assert_eq!(&*a.trace_id, "tr-1");
        assert_eq!(a.host.as_deref(), Some("web-1"));

        // The gauge: the same rows, each with its own copy of every value, count the seven
        // values the two rows share (tenant ×2, type, environment, time source, trace, host)
        // twice. Each of a shared value's holders counts its share rounded up: up to 1 byte more
        // per value while shared.
        let shared = batch.heap_bytes();
        let fresh = |s: &mut SharedStr| *s = SharedStr::from(&**s);
        let mut copies = batch.clone();
        for e in &mut copies.events {
            for s in [
                &mut e.batch_id,
                &mut e.organization,
                &mut e.application,
                &mut e.environment,
                &mut e.event_type,
                &mut e.timestamp_source,
                &mut e.trace_id,
            ] {
                fresh(s);
            }
            e.host.as_mut().map(fresh);
        }
        assert_eq!(batch.heap_bytes(), shared, "the copies share nothing");
        let once: u64 = [
            &a.organization,
            &a.application,
            &a.event_type,
            &a.environment,
            &a.timestamp_source,
            &a.trace_id,
            a.host.as_ref().unwrap(),
        ]
        .iter()
        .map(|s| (s.len() + 16) as u64)
        .sum();
        let owned = copies.heap_bytes();
        assert!(
            (shared + once - 7..=shared + once).contains(&owned),
            "each shared value is counted once: {owned} bytes with copies, {shared} shared, \
             {once} bytes of shared values"
        );
    }

    /// An event that does not even parse (a record written by a bug) is quarantined with its
    /// reason, never dropped.
    #[test]
    fn an_unreadable_spooled_event_is_quarantined_with_its_reason() {
        let event = br#"{"id":"ev-2","type":"query","data":"#;
        let meta = BatchMeta::for_test(1);
        let payload = record::encode(&meta, &[(0, &event[..])], &[]);
        let (batch, _) = build_one(&payload, false);
        assert!(batch.events.is_empty());
        assert_eq!(batch.malformed.len(), 1);
        assert!(!batch.malformed[0].reasons.is_empty());
        assert_eq!(batch.malformed[0].raw, event.to_vec());
    }

    /// Issue 16, item 7: the `spooled` stage ends when the record was durable, so the wait for
    /// the disk (write and fsync) is in it, not in `inserted`.
    #[test]
    fn the_spooled_stage_holds_the_wait_for_the_disk() {
        let received_ms = 1_767_225_600_000;
        let meta = BatchMeta {
            batch_id: "0190e0e0-0000-7000-8000-000000000001".to_owned(),
            received_ms,
            organization: "acme".to_owned(),
            application: "shop".to_owned(),
            remote_addr: None,
            agent_version: None,
            bytes_compressed: 0,
            bytes_inflated: 0,
            total_events: 0,
            duplicates: 0,
            quarantined: Vec::new(),
            stages: vec![Stage {
                stage: StageName::Enriched,
                start_us: 0,
                duration_us: 1_000,
            }],
        };
        let payload = record::encode(&meta, &[], &[]);
        let (batch, _) = build_batch(
            &[RecordRef {
                lsn: 1,
                payload: &payload,
                appended_ms: received_ms as u64 + 2,
                durable_ms: received_ms as u64 + 1_502,
            }],
            SpanRows::Written,
            |_, _| true,
        );
        let stages = &batch.traces[0].stages;
        let spooled = stages.iter().find(|s| s.stage == StageName::Spooled);
        assert_eq!(
            spooled.map(|s| (s.start_us, s.duration_us)),
            Some((1_000, 1_501_000))
        );
        let acked = stages.iter().find(|s| s.stage == StageName::Acknowledged);
        assert_eq!(acked.map(|s| s.start_us), Some(1_502_000));
    }
}

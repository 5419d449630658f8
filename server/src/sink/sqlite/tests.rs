//! Unit tests of the SQLite store: round trip, idempotency, grouping, filters, failures.

use std::collections::HashSet;

use baddybugs_common::denorm::{Columns, ExceptionRow};
use baddybugs_common::reason::ReasonCode;
use baddybugs_common::Problem;
use rusqlite::Connection;
use tempfile::TempDir;

use super::{SqliteOptions, SqliteStore};
use crate::record::Stage;
use crate::sink::{
    EventFilter, EventLookup, EventRow, ExceptionOccurrence, MalformedFilter, MalformedRow,
    SinkBatch, SinkError, SpanRowOut, Store, StoredTrace, TraceFilter, TraceOrder, TraceRow,
};
use baddybugs_common::protocol::StageName;

mod group;
mod tenants;
mod write_path;

/// 2025-06-10T15:33:54.202Z
const T0: i64 = 1_749_569_634_202;

fn open() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data/store.sqlite")).unwrap();
    (dir, store)
}

/// A second, independent connection to the store's file, to look at what was written.
fn peek(store: &SqliteStore) -> Connection {
    Connection::open(store.path()).unwrap()
}

fn count(store: &SqliteStore, table: &str) -> i64 {
    peek(store)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn event(id: &str, event_type: &str, timestamp_ms: i64) -> EventRow {
    EventRow {
        event_id: id.to_owned(),
        lsn: 1,
        index: 0,
        batch_id: "batch-1".into(),
        organization: "acme".into(),
        application: "shop".into(),
        environment: "production".into(),
        event_type: event_type.into(),
        name: "GET /users/{id}".to_owned(),
        timestamp_ms,
        timestamp_source: "timestamp".into(),
        received_ms: timestamp_ms + 150,
        trace_id: "trace-1".into(),
        session_id: Some("sess-9".into()),
        release: Some("v1.2.3".into()),
        host: Some("web-1".into()),
        deployment_hash: None,
        known_type: true,
        columns: Columns {
            duration_ms: Some(123.4),
            user_id: Some("42".to_owned()),
            status_code: Some(200),
            is_error: false,
            severity: None,
            request_id: Some("req-1".to_owned()),
            job_id: None,
        },
        data: r#"{"method":"GET","url":"https:\/\/shop.test\/users\/42","title":"Caf\u00e9 menu","ms":123.40,"tags":[ 1, 2 ]}"#.to_owned(),
        envelope: r#"{"agent":"php","sdk_version":"3.1.0"}"#.to_owned(),
    }
}

fn occurrence(
    event_id: &str,
    fingerprint: &str,
    timestamp_ms: i64,
    message: &str,
) -> ExceptionOccurrence {
    ExceptionOccurrence {
        event_id: event_id.to_owned(),
        trace_id: "trace-1".to_owned(),
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        environment: "production".to_owned(),
        timestamp_ms,
        received_ms: timestamp_ms + 5,
        exception: ExceptionRow {
            exception_class: "App\\Exceptions\\PaymentFailed".to_owned(),
            message: message.to_owned(),
            file: "app/Payments/Gateway.php".to_owned(),
            line: 87,
            code: Some("402".to_owned()),
            fingerprint: fingerprint.to_owned(),
            trace: r#"[{"file":"app/Http/Controllers/CheckoutController.php","line":31}]"#
                .to_owned(),
            source_code: None,
            breadcrumbs: None,
            severity: "error".to_owned(),
            handled: false,
            user_id: Some("42".to_owned()),
            url: Some("https://shop.test/checkout".to_owned()),
            method: Some("POST".to_owned()),
        },
    }
}

/// A `lifecycle` event in the agent's shape (docs/AGENT-WIRE.md): one CONTROLLER phase and a
/// QUERY span per `(span_id, start_offset_ms)`. The waterfall derives its spans from this
/// `data`.
fn lifecycle(id: &str, timestamp_ms: i64, spans: &[(u32, f64)]) -> EventRow {
    let spans: Vec<String> = spans
        .iter()
        .map(|(span_id, start)| {
            format!(
                r#"{{"span_id":{span_id},"type":"QUERY","label":"select users","start_offset_ms":{start},"duration_ms":2.5,"depth":1,"sql":"select * from users where id = ?"}}"#
            )
        })
        .collect();
    EventRow {
        data: format!(
            r#"{{"method":"GET","phases":[{{"name":"CONTROLLER","start_offset_ms":0,"duration_ms":40}}],"spans":[{}]}}"#,
            spans.join(",")
        ),
        ..event(id, "lifecycle", timestamp_ms)
    }
}

/// A batch's span rows as the batcher derives them for a store that writes them, from the
/// same `data` (a store that derives them at read must ignore them, and give the same).
fn span_rows_of(events: &[EventRow]) -> Vec<SpanRowOut> {
    events
        .iter()
        .flat_map(|e| {
            let payload = baddybugs_common::json::Node::parse(&e.data).unwrap();
            baddybugs_common::denorm::span_rows(&e.event_type, &payload)
                .into_iter()
                .map(|span| SpanRowOut {
                    event_id: e.event_id.as_str().into(),
                    trace_id: e.trace_id.clone(),
                    organization: e.organization.clone(),
                    application: e.application.clone(),
                    timestamp_ms: e.timestamp_ms,
                    received_ms: e.received_ms,
                    span,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The waterfall of `trace-1`: (organization, event id, kind, span id) of each span, in order.
async fn waterfall(store: &SqliteStore) -> Vec<(String, String, String, u64)> {
    store
        .trace_spans("trace-1".to_owned())
        .await
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["organization"].as_str().unwrap().to_owned(),
                s["event_id"].as_str().unwrap().to_owned(),
                s["kind"].as_str().unwrap().to_owned(),
                s["span_id"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `(organization, event id, kind, span id)`, owned.
fn spans_are(list: &[(&str, &str, &str, u64)]) -> Vec<(String, String, String, u64)> {
    list.iter()
        .map(|(o, e, k, i)| ((*o).to_owned(), (*e).to_owned(), (*k).to_owned(), *i))
        .collect()
}

const RAW: &[u8] = br#"{"type":"request","payload":{"status":"x"}}"#;

fn malformed(id: &str, codes: &[ReasonCode], received_ms: i64) -> MalformedRow {
    MalformedRow {
        id: id.to_owned(),
        lsn: 1,
        received_ms,
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        batch_id: "batch-1".to_owned(),
        index: Some(3),
        event_type: Some("request".to_owned()),
        event_id: None,
        reasons: codes
            .iter()
            .map(|c| Problem::new(*c, "/payload/status", "integer", "string \"x\""))
            .collect(),
        raw: RAW.to_vec(),
        raw_size: RAW.len() as u64,
        agent_version: Some("3.1.0".to_owned()),
        remote_addr: Some("10.0.0.7".to_owned()),
    }
}

fn trace(batch_id: &str, lsn: u64, received_ms: i64, outcome: &str, total_us: u64) -> TraceRow {
    TraceRow {
        batch_id: batch_id.to_owned(),
        lsn,
        received_ms,
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        outcome: outcome.to_owned(),
        total_us,
        stages: vec![Stage {
            stage: StageName::Received,
            start_us: 0,
            duration_us: 12,
        }],
        bytes_compressed: 1000,
        bytes_inflated: 4900,
        events: 10,
        accepted: 9,
        rejected: 1,
        duplicates: 0,
    }
}

fn batch(first_lsn: u64, last_lsn: u64) -> SinkBatch {
    SinkBatch {
        first_lsn,
        last_lsn,
        ..SinkBatch::default()
    }
}

/// A batch with one of everything.
fn full_batch(first_lsn: u64, last_lsn: u64) -> SinkBatch {
    SinkBatch {
        events: vec![event("evt-1", "exception", T0)],
        exceptions: vec![occurrence("evt-1", "fp-1", T0, "card declined")],
        malformed: vec![malformed("batch-1-3", &[ReasonCode::WrongType], T0)],
        traces: vec![trace("batch-1", first_lsn, T0, "partial", 2_000)],
        ..batch(first_lsn, last_lsn)
    }
}

fn group_stats(store: &SqliteStore, fingerprint: &str) -> (i64, i64, i64, String) {
    peek(store)
        .query_row(
            "SELECT first_seen_ms, last_seen_ms, occurrence_count, last_message
               FROM exception_groups WHERE fingerprint = ?1",
            [fingerprint],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
}

#[tokio::test]
async fn event_round_trips_byte_for_byte() {
    let (_dir, store) = open();
    let row = event("evt-1", "request", T0);
    store
        .write_arc(SinkBatch {
            events: vec![row.clone()],
            ..batch(1, 1)
        })
        .await
        .unwrap();

    let got = store
        .get_event(EventLookup::id("evt-1"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        got.data.get(),
        row.data,
        "data must come back exactly as sent"
    );
    assert!(
        got.data.get().contains(r"https:\/\/shop.test") && got.data.get().contains(r"Caf\u00e9")
    );
    assert_eq!(got.envelope.get(), row.envelope);
    assert_eq!(got.id, "evt-1");
    assert_eq!(got.event_type, "request");
    assert_eq!(got.name, row.name);
    assert_eq!(got.timestamp, "2025-06-10T15:33:54.202Z");
    assert_eq!(got.received_at, "2025-06-10T15:33:54.352Z");
    assert_eq!(got.timestamp_source, "timestamp");
    assert_eq!(got.trace_id, "trace-1");
    assert_eq!(got.session_id.as_deref(), Some("sess-9"));
    assert_eq!(got.environment, "production");
    assert_eq!(got.release.as_deref(), Some("v1.2.3"));
    assert_eq!(got.host.as_deref(), Some("web-1"));
    assert_eq!(got.deployment_hash, None);
    assert_eq!(
        (got.organization.as_str(), got.application.as_str()),
        ("acme", "shop")
    );
    assert_eq!(got.batch_id, "batch-1");
    assert_eq!(got.duration_ms, Some(123.4));
    assert_eq!(got.user_id.as_deref(), Some("42"));
    assert_eq!(got.status_code, Some(200));
    assert!(!got.is_error);
    assert_eq!(got.severity, None);
    assert_eq!(got.request_id.as_deref(), Some("req-1"));
    assert_eq!(got.job_id, None);

    // The serialised answer embeds the stored bytes, not a re-encoding.
    let json = serde_json::to_string(&got).unwrap();
    assert!(json.contains(&row.data), "{json}");

    let page = store.query_events(EventFilter::default()).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].data.get(), row.data);
    assert_eq!(page.next_cursor, None);
    assert!(store
        .get_event(EventLookup::id("nope"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn same_batch_twice_is_stored_once() {
    let (_dir, store) = open();
    store.write_arc(full_batch(1, 4)).await.unwrap();
    store.write_arc(full_batch(1, 4)).await.unwrap();
    // An older range after a newer one: already written, nothing happens.
    store.write_arc(full_batch(2, 3)).await.unwrap();

    for (table, rows) in [
        ("events", 1),
        ("exceptions", 1),
        ("exception_groups", 1),
        ("malformed_events", 1),
        ("malformed_reasons", 1),
        ("ingest_traces", 1),
    ] {
        assert_eq!(count(&store, table), rows, "{table}");
    }
    assert_eq!(group_stats(&store, "fp-1").2, 1);
    let last: i64 = peek(&store)
        .query_row("SELECT last_lsn FROM sink_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, 4);
}

#[tokio::test]
async fn duplicate_event_id_in_a_new_range_is_stored_once() {
    let (_dir, store) = open();
    store.write_arc(full_batch(1, 4)).await.unwrap();
    // An agent retry that reached the spool twice: same event, later LSNs.
    let mut retry = full_batch(5, 6);
    retry.events.push(event("evt-2", "request", T0 + 1));
    retry.malformed.clear();
    retry.traces.clear();
    store.write_arc(retry).await.unwrap();

    assert_eq!(count(&store, "events"), 2);
    assert_eq!(count(&store, "exceptions"), 1);
    assert_eq!(group_stats(&store, "fp-1").2, 1, "occurrence counted once");
}

/// Issue 13: the store never skips a batch by its LSN range. LSNs restart at 1 when the spool
/// directory is deleted; the new events must still be stored, not taken for a replay.
#[tokio::test]
async fn lsns_restarting_at_1_do_not_skip_new_events() {
    let (_dir, store) = open();
    store.write_arc(full_batch(1, 4)).await.unwrap();
    store
        .write_arc(SinkBatch {
            events: vec![event("after-restart", "request", T0 + 5)],
            ..batch(1, 1)
        })
        .await
        .unwrap();
    assert_eq!(count(&store, "events"), 2);
    assert!(
        store
            .get_event(EventLookup::id("after-restart"))
            .await
            .unwrap()
            .len()
            == 1
    );
}

#[tokio::test]
async fn duplicate_event_within_one_batch_is_stored_once() {
    let (_dir, store) = open();
    let mut b = full_batch(1, 2);
    // The retry's copy: same id, same spans and occurrence, a later record.
    b.events.push(b.events[0].clone());
    b.exceptions.push(b.exceptions[0].clone());
    store.write_arc(b).await.unwrap();

    assert_eq!(count(&store, "events"), 1);
    assert_eq!(count(&store, "exceptions"), 1);
    assert_eq!(group_stats(&store, "fp-1").2, 1);
}

/// Schema V7: the waterfall is derived from the stored `lifecycle` events, so an event's spans
/// are there exactly as often as the event: once for an event stored twice in one batch, once
/// after a replay, none for a duplicate that was not stored. Span rows a caller passes are not
/// written (the batcher builds none for this store) and change nothing.
#[tokio::test]
async fn the_waterfall_shows_each_stored_lifecycle_event_s_spans_once() {
    let (_dir, store) = open();
    let many: Vec<(u32, f64)> = (0..37).map(|i| (i, f64::from(i) * 1.5)).collect();
    let mut first = batch(1, 1);
    first.events = vec![
        lifecycle("evt-many", T0, &many),
        event("evt-query", "query", T0),
        // The same event twice in one batch (an agent retry).
        lifecycle("evt-twice", T0 + 1, &[(4, 1.0)]),
        lifecycle("evt-twice", T0 + 1, &[(4, 1.0)]),
    ];
    first.spans = span_rows_of(&first.events);
    store.write_arc(first.clone()).await.unwrap();
    let once = waterfall(&store).await;
    let mut expected = vec![("acme", "evt-many", "phase", 0)];
    expected.extend(
        many.iter()
            .map(|(i, _)| ("acme", "evt-many", "span", u64::from(*i))),
    );
    expected.extend([
        ("acme", "evt-twice", "phase", 0),
        ("acme", "evt-twice", "span", 4),
    ]);
    assert_eq!(once, spans_are(&expected));

    // Replayed, and a later copy of the event in another range: nothing new.
    store.write_arc(first).await.unwrap();
    let mut later = batch(2, 2);
    later.events = vec![lifecycle("evt-twice", T0 + 1, &[(4, 1.0)])];
    store.write_arc(later).await.unwrap();
    assert_eq!(waterfall(&store).await, once);

    // Span rows a caller passes, of an event stored or not, are not written.
    let mut stray = batch(3, 3);
    stray.spans = span_rows_of(&[lifecycle("evt-elsewhere", T0, &[(1, 0.0)])]);
    store.write_arc(stray).await.unwrap();
    assert_eq!(waterfall(&store).await, once);
}

/// A trace with more spans than a waterfall returns: the first 10,000 in waterfall order. The
/// read stops at the first event later than every span it holds, but never inside a
/// millisecond: an event of the same time read after the page filled still sorts into it.
#[tokio::test]
async fn a_waterfall_past_its_cap_is_the_first_spans_in_order() {
    let (_dir, store) = open();
    let spans = |n: u32, start: f64| -> Vec<(u32, f64)> {
        (0..n).map(|i| (i, start + f64::from(i) * 0.001)).collect()
    };
    let mut b = batch(1, 1);
    b.events = vec![
        lifecycle("a", T0, &spans(6_000, 0.0)),
        // Written before c, so read before it; c's spans start earlier and sort first.
        lifecycle("b", T0 + 1, &spans(6_000, 100.0)),
        lifecycle("c", T0 + 1, &spans(3_000, 50.0)),
        lifecycle("d", T0 + 2, &spans(10, 0.0)),
    ];
    store.write_arc(b).await.unwrap();
    let got = waterfall(&store).await;
    assert_eq!(got.len(), 10_000);
    let of = |id: &str| got.iter().filter(|s| s.1 == id).count();
    // a: its phase and 6,000 spans; then b's and c's phases (phases sort before spans), c's
    // 3,000 spans, and b's first 997.
    assert_eq!((of("a"), of("b"), of("c"), of("d")), (6_001, 998, 3_001, 0));
    assert_eq!(
        got[6_001].1, "b",
        "b's phase starts at 0, before c's at 0 (b < c by id)"
    );
    assert_eq!(got[6_003], ("acme".into(), "c".into(), "span".into(), 0));
    assert_eq!(got[9_999], ("acme".into(), "b".into(), "span".into(), 996));
}

/// Each span keeps its own values from its event's `data`, as ClickHouse's rows do.
#[tokio::test]
async fn the_waterfall_reads_each_span_s_own_values_from_its_event() {
    let (_dir, store) = open();
    let data = r#"{"phases":[{"name":"BOOTSTRAP","label":"Boot","start_offset_ms":0,"duration_ms":3.5}],
        "spans":[
          {"span_id":1,"type":"CACHE_HIT","key":"users:42","start_offset_ms":4,"duration_ms":0.2,"depth":2},
          {"span_id":2,"type":"OUTGOING_REQUEST","url":"https://pay.test/charge","method":"POST","status_code":"502","start_offset_ms":5,"duration_ms":80,"depth":300},
          {"type":"JOB_DISPATCHED","job_class":"App\\Jobs\\Mail","start_offset_ms":"6.5","duration_ms":1}]}"#;
    let mut b = batch(1, 1);
    b.events = vec![EventRow {
        data: data.to_owned(),
        ..event("evt-1", "lifecycle", T0)
    }];
    store.write_arc(b).await.unwrap();
    let spans = store.trace_spans("trace-1".to_owned()).await.unwrap();
    let keys = |s: &serde_json::Value| {
        [
            "kind",
            "span_id",
            "span_type",
            "label",
            "start_offset_ms",
            "duration_ms",
            "depth",
            "cache_key",
            "http_url",
            "http_method",
            "http_status",
            "job_class",
        ]
        .map(|k| s[k].clone())
    };
    use serde_json::{json, Value::Null};
    assert_eq!(spans.len(), 4, "{spans:?}");
    assert_eq!(
        keys(&spans[0]),
        [
            json!("phase"),
            json!(0),
            json!("BOOTSTRAP"),
            json!("Boot"),
            json!(0.0),
            json!(3.5),
            json!(0),
            Null,
            Null,
            Null,
            Null,
            Null
        ]
    );
    assert_eq!(
        keys(&spans[1]),
        [
            json!("span"),
            json!(1),
            json!("CACHE_HIT"),
            json!("CACHE_HIT"),
            json!(4.0),
            json!(0.2),
            json!(2),
            json!("users:42"),
            Null,
            Null,
            Null,
            Null
        ]
    );
    assert_eq!(
        keys(&spans[2]),
        [
            json!("span"),
            json!(2),
            json!("OUTGOING_REQUEST"),
            json!("OUTGOING_REQUEST"),
            json!(5.0),
            json!(80.0),
            json!(255),
            Null,
            json!("https://pay.test/charge"),
            json!("POST"),
            json!(502),
            Null
        ]
    );
    // No span_id: its index in the list; a numeric string offset is read as a number.
    assert_eq!(
        keys(&spans[3]),
        [
            json!("span"),
            json!(2),
            json!("JOB_DISPATCHED"),
            json!("JOB_DISPATCHED"),
            json!(6.5),
            json!(1.0),
            json!(0),
            Null,
            Null,
            Null,
            Null,
            json!("App\\Jobs\\Mail")
        ]
    );
    assert_eq!(spans[0]["timestamp"], "2025-06-10T15:33:54.202Z");
    assert_eq!(spans[0]["event_id"], "evt-1");
    assert_eq!(spans[0]["application"], "shop");
}

#[tokio::test]
async fn exception_groups_fold_occurrences_across_batches() {
    let (_dir, store) = open();
    let with = |first, last, occ: ExceptionOccurrence| SinkBatch {
        events: vec![event(&occ.event_id, "exception", occ.timestamp_ms)],
        exceptions: vec![occ],
        ..batch(first, last)
    };
    store
        .write_arc(with(
            1,
            1,
            occurrence("e1", "fp-1", T0 + 2_000, "newest so far"),
        ))
        .await
        .unwrap();
    // A later batch that carries an older occurrence (an agent that was offline).
    store
        .write_arc(with(2, 2, occurrence("e2", "fp-1", T0, "older")))
        .await
        .unwrap();
    assert_eq!(
        group_stats(&store, "fp-1"),
        (T0, T0 + 2_000, 2, "newest so far".to_owned())
    );
    store
        .write_arc(with(3, 3, occurrence("e3", "fp-1", T0 + 5_000, "latest")))
        .await
        .unwrap();
    store
        .write_arc(with(
            4,
            4,
            occurrence("e4", "fp-2", T0 + 1_000, "other group"),
        ))
        .await
        .unwrap();
    assert_eq!(
        group_stats(&store, "fp-1"),
        (T0, T0 + 5_000, 3, "latest".to_owned())
    );

    let groups = store
        .exception_groups(EventFilter::default())
        .await
        .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].fingerprint, "fp-1", "most recently seen first");
    assert_eq!(groups[0].occurrence_count, 3);
    assert_eq!(groups[0].first_seen, "2025-06-10T15:33:54.202Z");
    assert_eq!(groups[0].last_seen, "2025-06-10T15:33:59.202Z");
    assert_eq!(groups[0].last_message, "latest");
    assert_eq!(groups[0].exception_class, "App\\Exceptions\\PaymentFailed");
    assert_eq!(
        (
            groups[0].organization.as_str(),
            groups[0].application.as_str()
        ),
        ("acme", "shop")
    );

    // fp-2 was seen only at T0+1000: outside [T0+3000, …).
    let recent = EventFilter {
        since_ms: Some(T0 + 3_000),
        ..EventFilter::default()
    };
    let groups = store.exception_groups(recent).await.unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| g.fingerprint.as_str())
            .collect::<Vec<_>>(),
        ["fp-1"]
    );
    let early = EventFilter {
        until_ms: Some(T0),
        ..EventFilter::default()
    };
    assert!(store.exception_groups(early).await.unwrap().is_empty());
}

/// 40 events over 20 distinct timestamps (two per millisecond, so ties need the id order),
/// with every filtered column varied.
fn varied_events() -> Vec<EventRow> {
    (0..40)
        .map(|i| {
            let mut e = event(
                &format!("evt-{i:02}"),
                ["request", "query", "job"][i % 3],
                T0 + (i as i64 / 2),
            );
            e.lsn = i as u64 + 1;
            e.name = format!("name-{}", i % 4);
            e.trace_id = format!("trace-{}", i % 5).into();
            e.environment = if i % 2 == 0 { "production" } else { "staging" }.into();
            e.columns.user_id = (i % 7 != 0).then(|| format!("user-{}", i % 3));
            e.columns.is_error = i % 6 == 0;
            e
        })
        .collect()
}

#[tokio::test]
async fn every_event_filter_and_keyset_pagination() {
    let (_dir, store) = open();
    let events = varied_events();
    store
        .write_arc(SinkBatch {
            events: events.clone(),
            ..batch(1, 40)
        })
        .await
        .unwrap();

    let ids = |pred: &dyn Fn(&EventRow) -> bool| -> Vec<String> {
        let mut v: Vec<&EventRow> = events.iter().filter(|e| pred(e)).collect();
        v.sort_by(|a, b| (b.timestamp_ms, &b.event_id).cmp(&(a.timestamp_ms, &a.event_id)));
        v.into_iter().map(|e| e.event_id.clone()).collect()
    };
    let run = |filter: EventFilter| {
        let store = &store;
        async move {
            let page = store.query_events(filter).await.unwrap();
            page.events.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    let f = EventFilter::default;

    assert_eq!(run(f()).await, ids(&|_| true));
    assert_eq!(
        run(EventFilter {
            event_type: Some("query".into()),
            ..f()
        })
        .await,
        ids(&|e| &*e.event_type == "query")
    );
    assert_eq!(
        run(EventFilter {
            name: Some("name-1".into()),
            ..f()
        })
        .await,
        ids(&|e| e.name == "name-1")
    );
    assert_eq!(
        run(EventFilter {
            trace_id: Some("trace-3".into()),
            ..f()
        })
        .await,
        ids(&|e| &*e.trace_id == "trace-3")
    );
    assert_eq!(
        run(EventFilter {
            user_id: Some("user-2".into()),
            ..f()
        })
        .await,
        ids(&|e| e.columns.user_id.as_deref() == Some("user-2"))
    );
    assert_eq!(
        run(EventFilter {
            environment: Some("staging".into()),
            ..f()
        })
        .await,
        ids(&|e| &*e.environment == "staging")
    );
    assert_eq!(
        run(EventFilter {
            since_ms: Some(T0 + 5),
            ..f()
        })
        .await,
        ids(&|e| e.timestamp_ms >= T0 + 5)
    );
    assert_eq!(
        run(EventFilter {
            until_ms: Some(T0 + 5),
            ..f()
        })
        .await,
        ids(&|e| e.timestamp_ms < T0 + 5)
    );
    assert_eq!(
        run(EventFilter {
            is_error: Some(true),
            ..f()
        })
        .await,
        ids(&|e| e.columns.is_error)
    );
    assert_eq!(
        run(EventFilter {
            is_error: Some(false),
            ..f()
        })
        .await,
        ids(&|e| !e.columns.is_error)
    );
    assert_eq!(
        run(EventFilter {
            limit: Some(3),
            ..f()
        })
        .await
        .len(),
        3
    );
    let combined = EventFilter {
        event_type: Some("request".into()),
        environment: Some("production".into()),
        since_ms: Some(T0 + 2),
        until_ms: Some(T0 + 18),
        ..f()
    };
    assert_eq!(
        run(combined).await,
        ids(&|e| &*e.event_type == "request"
            && &*e.environment == "production"
            && (T0 + 2..T0 + 18).contains(&e.timestamp_ms))
    );
    assert!(run(EventFilter {
        name: Some("nothing".into()),
        ..f()
    })
    .await
    .is_empty());

    // Pagination, 7 at a time, through ties on timestamp_ms: no overlap, no gap, in order.
    for filter in [
        f(),
        EventFilter {
            environment: Some("production".into()),
            ..f()
        },
    ] {
        let expected = ids(&|e| {
            filter
                .environment
                .as_deref()
                .is_none_or(|env| &*e.environment == env)
        });
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .query_events(EventFilter {
                    limit: Some(7),
                    cursor: cursor.take(),
                    ..filter.clone()
                })
                .await
                .unwrap();
            assert!(page.events.len() <= 7);
            assert_eq!(page.next_cursor.is_some(), page.events.len() == 7);
            seen.extend(page.events.into_iter().map(|e| e.id));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    }

    // A page size that divides the total: the last full page has a cursor, the next is empty.
    let page = store
        .query_events(EventFilter {
            limit: Some(40),
            ..f()
        })
        .await
        .unwrap();
    let after = store
        .query_events(EventFilter {
            limit: Some(40),
            cursor: page.next_cursor,
            ..f()
        })
        .await
        .unwrap();
    assert!(after.events.is_empty() && after.next_cursor.is_none());

    let bad = store
        .query_events(EventFilter {
            cursor: Some("zz-not-a-cursor".into()),
            ..f()
        })
        .await;
    assert!(matches!(bad, Err(SinkError::BadQuery(_))), "{bad:?}");
}

#[tokio::test]
async fn malformed_rows_filter_by_reason_and_come_back_by_id() {
    let (_dir, store) = open();
    let mut truncated = malformed("b-2", &[ReasonCode::TooLarge], T0 + 20);
    truncated.raw_size = 1_000_000;
    truncated.application = "admin".to_owned();
    truncated.event_type = Some("job".to_owned());
    let rows = vec![
        malformed("b-0", &[ReasonCode::WrongType], T0),
        malformed(
            "b-1",
            &[
                ReasonCode::MissingField,
                ReasonCode::WrongType,
                ReasonCode::WrongType,
            ],
            T0 + 10,
        ),
        truncated,
    ];
    store
        .write_arc(SinkBatch {
            malformed: rows,
            ..batch(1, 1)
        })
        .await
        .unwrap();

    let ids =
        |v: Vec<crate::sink::StoredMalformed>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let by = |filter: MalformedFilter| store.query_malformed(filter);
    let f = MalformedFilter::default;

    assert_eq!(ids(by(f()).await.unwrap()), ["b-2", "b-1", "b-0"]);
    assert_eq!(
        ids(by(MalformedFilter {
            reason: Some("wrong_type".into()),
            ..f()
        })
        .await
        .unwrap()),
        ["b-1", "b-0"]
    );
    assert_eq!(
        ids(by(MalformedFilter {
            reason: Some("missing_field".into()),
            ..f()
        })
        .await
        .unwrap()),
        ["b-1"]
    );
    assert!(by(MalformedFilter {
        reason: Some("invalid_json".into()),
        ..f()
    })
    .await
    .unwrap()
    .is_empty());
    assert_eq!(
        ids(by(MalformedFilter {
            event_type: Some("job".into()),
            ..f()
        })
        .await
        .unwrap()),
        ["b-2"]
    );
    assert_eq!(
        ids(by(MalformedFilter {
            application: Some("shop".into()),
            ..f()
        })
        .await
        .unwrap()),
        ["b-1", "b-0"]
    );
    assert_eq!(
        ids(by(MalformedFilter {
            since_ms: Some(T0 + 5),
            until_ms: Some(T0 + 15),
            ..f()
        })
        .await
        .unwrap()),
        ["b-1"]
    );
    assert_eq!(
        ids(by(MalformedFilter {
            limit: Some(1),
            ..f()
        })
        .await
        .unwrap()),
        ["b-2"]
    );

    let got = store
        .get_malformed(vec!["b-2".into(), "missing".into(), "b-1".into()])
        .await
        .unwrap();
    assert_eq!(ids(got.clone()), ["b-2", "b-1"]);
    assert!(got[0].truncated);
    assert!(!got[1].truncated);
    assert_eq!(got[1].codes, ["missing_field", "wrong_type"]);
    assert_eq!(got[1].reasons.len(), 3);
    assert_eq!(got[1].reasons[0].code, ReasonCode::MissingField);
    assert_eq!(got[1].raw, r#"{"type":"request","payload":{"status":"x"}}"#);
    assert_eq!(got[1].received_at, "2025-06-10T15:33:54.212Z");
    assert_eq!(got[1].index, Some(3));
    assert_eq!(got[1].agent_version.as_deref(), Some("3.1.0"));
    assert_eq!(got[1].remote_addr.as_deref(), Some("10.0.0.7"));
}

#[tokio::test]
async fn trace_spans_and_pipeline_traces() {
    let (_dir, store) = open();
    // A trace span as the agent sends it: start in seconds, its duration in ms.
    let trace_span = EventRow {
        data: format!(
            r#"{{"type":"db","name":"select","start_time":{}.{:03},"duration_ms":2.5}}"#,
            (T0 + 90) / 1000,
            (T0 + 90) % 1000
        ),
        ..event("evt-2", "trace_span", T0 + 100)
    };
    let b = SinkBatch {
        events: vec![lifecycle("evt-1", T0, &[(7, 12.0), (3, 5.0)]), trace_span],
        traces: vec![
            trace("b-1", 1, T0, "accepted", 900),
            trace("b-2", 2, T0 + 10, "partial", 5_000),
            trace("b-3", 3, T0 + 20, "accepted", 3_000),
        ],
        ..batch(1, 3)
    };
    store.write_arc(b).await.unwrap();

    let spans = store.trace_spans("trace-1".to_owned()).await.unwrap();
    let order: Vec<(String, u64)> = spans
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_owned(),
                s["span_id"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("phase".into(), 0),
            ("span".into(), 3),
            ("span".into(), 7),
            ("trace_span".into(), 0)
        ]
    );
    assert_eq!(spans[1]["sql"], "select * from users where id = ?");
    assert_eq!(spans[1]["start_offset_ms"], 5.0);
    assert_eq!(spans[1]["duration_ms"], 2.5);
    assert_eq!(spans[1]["depth"], 1);
    assert_eq!(spans[1]["event_id"], "evt-1");
    assert_eq!(spans[1]["timestamp"], "2025-06-10T15:33:54.202Z");
    assert_eq!(spans[3]["started_at_ms"], T0 + 90);
    assert!(spans[0]["http_status"].is_null());
    for key in [
        "label",
        "span_type",
        "cache_key",
        "http_url",
        "http_method",
        "job_class",
    ] {
        assert!(spans[0].get(key).is_some(), "{key}");
    }
    assert!(store
        .trace_spans("trace-none".to_owned())
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.trace_spans(String::new()).await,
        Err(SinkError::BadQuery(_))
    ));

    let batch_ids = |v: Vec<StoredTrace>| v.into_iter().map(|t| t.batch_id).collect::<Vec<_>>();
    let recent = store.query_traces(TraceFilter::default()).await.unwrap();
    assert_eq!(
        recent[0].stages,
        [Stage {
            stage: StageName::Received,
            start_us: 0,
            duration_us: 12
        }],
        "stages read back from their text column"
    );
    assert_eq!(recent[0].received_at, "2025-06-10T15:33:54.222Z");
    assert_eq!(recent[0].total_us, 3_000);
    assert_eq!(batch_ids(recent), ["b-3", "b-2", "b-1"]);
    let slowest = TraceFilter {
        order: TraceOrder::Slowest,
        ..TraceFilter::default()
    };
    assert_eq!(
        batch_ids(store.query_traces(slowest).await.unwrap()),
        ["b-2", "b-3", "b-1"]
    );
    let failed = TraceFilter {
        failed_only: true,
        ..TraceFilter::default()
    };
    assert_eq!(
        batch_ids(store.query_traces(failed).await.unwrap()),
        ["b-2"]
    );
    let one = TraceFilter {
        limit: Some(1),
        ..TraceFilter::default()
    };
    assert_eq!(store.query_traces(one).await.unwrap().len(), 1);
    // An order other than recent or slowest cannot reach a store: the parameter parser
    // refuses it (baddybugs_common::query, bad_parameters_name_the_parameter).
}

#[tokio::test]
async fn bisected_parts_of_one_range_are_each_written_once() {
    let (_dir, store) = open();
    let whole = SinkBatch {
        events: vec![event("a", "request", T0), event("b", "request", T0 + 1)],
        traces: vec![trace("batch-1", 9, T0, "accepted", 10)],
        ..batch(5, 9)
    };
    let mut left = whole.clone();
    left.part = "0".into();
    left.events.truncate(1);
    let mut right = whole.clone();
    right.part = "1".into();
    right.events.drain(..1);
    right.traces.clear();

    store.write_arc(left.clone()).await.unwrap();
    store.write_arc(right.clone()).await.unwrap();
    assert_eq!(
        count(&store, "events"),
        2,
        "both parts of the range are written"
    );
    store.write_arc(left).await.unwrap();
    store.write_arc(right).await.unwrap();
    assert_eq!(count(&store, "events"), 2);
    assert_eq!(count(&store, "ingest_traces"), 1);
}

#[tokio::test]
async fn refused_row_is_rejected_and_nothing_of_the_batch_is_kept() {
    let (_dir, store) = open();
    let mut bad = event("bad", "request", T0);
    bad.data = "{not json".to_owned();
    let result = store
        .write_arc(SinkBatch {
            events: vec![event("good", "request", T0), bad],
            ..batch(1, 1)
        })
        .await;
    assert!(
        matches!(result, Err(SinkError::Rejected { .. })),
        "{result:?}"
    );
    assert_eq!(
        count(&store, "events"),
        0,
        "one transaction: all or nothing"
    );
    // The range was not marked written: the batcher's retry without the row goes through.
    store
        .write_arc(SinkBatch {
            events: vec![event("good", "request", T0)],
            part: "0".into(),
            ..batch(1, 1)
        })
        .await
        .unwrap();
    assert_eq!(count(&store, "events"), 1);
}

#[tokio::test]
async fn read_only_store_is_retryable_and_recovers() {
    let (_dir, store) = open();
    assert!(store.health().await.reachable);
    store.set_read_only(true);
    let err = store.write_arc(full_batch(1, 1)).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable { .. }), "{err:?}");
    assert!(err.chain().contains("readonly"), "{}", err.chain());
    let health = store.health().await;
    assert!(!health.reachable && health.error.is_some(), "{health:?}");
    // Reads keep working during the outage.
    assert!(store.query_events(EventFilter::default()).await.is_ok());
    // Retried as the batcher does: still failing, then recovering.
    assert!(matches!(
        store.write_arc(full_batch(1, 1)).await,
        Err(SinkError::Retryable { .. })
    ));
    store.set_read_only(false);
    store.write_arc(full_batch(1, 1)).await.unwrap();
    assert_eq!(count(&store, "events"), 1);
    let health = store.health().await;
    assert!(health.reachable && health.error.is_none(), "{health:?}");
    assert_eq!(health.kind, "sqlite");
}

/// What an end-to-end test can do to the real binary: hold the write lock from another
/// connection. Every write then fails with SQLITE_BUSY after the busy timeout.
#[tokio::test]
async fn write_lock_held_elsewhere_is_retryable_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let options = SqliteOptions {
        busy_timeout: std::time::Duration::from_millis(50),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options).unwrap();
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let err = store.write_arc(full_batch(1, 1)).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable { .. }), "{err:?}");
    assert!(
        store.query_events(EventFilter::default()).await.is_ok(),
        "WAL: reads go on"
    );

    holder.execute_batch("ROLLBACK").unwrap();
    store.write_arc(full_batch(1, 1)).await.unwrap();
    assert_eq!(count(&store, "events"), 1);
}

#[tokio::test]
async fn opening_twice_applies_migrations_once_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.write_arc(full_batch(1, 1)).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let versions: Vec<i64> = peek(&store)
        .prepare("SELECT version FROM schema_migrations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions,
        (1..=super::schema::SCHEMA_VERSION).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .get_event(EventLookup::id("evt-1"))
            .await
            .unwrap()
            .len(),
        1
    );
    // Idempotency state survives the reopen.
    store.write_arc(full_batch(1, 1)).await.unwrap();
    assert_eq!(group_stats(&store, "fp-1").2, 1);
    let mode: String = peek(&store)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    // A file from a newer server is refused rather than written with stale assumptions.
    drop(store);
    Connection::open(&path)
        .unwrap()
        .execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", [])
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, SinkError::Other { .. }), "{err:?}");
}

/// The tests build batches by value; the trait takes them shared.
trait WriteArc {
    fn write_arc(&self, batch: SinkBatch) -> crate::sink::BoxFuture<'_, Result<(), SinkError>>;
}

impl WriteArc for SqliteStore {
    fn write_arc(&self, batch: SinkBatch) -> crate::sink::BoxFuture<'_, Result<(), SinkError>> {
        self.write(std::sync::Arc::new(batch))
    }
}

//! The store contract: the same scenarios against both stores — the embedded SQLite store and
//! the ClickHouse store on the real ClickHouse engine (chDB behind `tests/clickhouse/chfront.py`,
//! or `CLICKHOUSE_URL`) — and the same answers from both.
//!
//! Batches are built exactly as the batcher builds them: spool records encoded from the
//! fixtures, then `build_batch`, then `Store::write`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use baddybugs_common::{Problem, ReasonCode};
use baddybugs_fixtures::{valid_fixtures, Shape, ValidFixture};
use baddybugs_ingest::batch::{build_batch, RecordRef};
use baddybugs_ingest::config::ClickHouseConfig;
use baddybugs_ingest::record::{self, BatchMeta, Quarantined};
use baddybugs_ingest::sink::clickhouse::ClickHouseStore;
use baddybugs_ingest::sink::query::MALFORMED_LIST_RAW_BYTES;
use baddybugs_ingest::sink::sqlite::SqliteStore;
use baddybugs_ingest::sink::{
    EventFilter, EventLookup, MalformedFilter, SinkBatch, SinkError, SpanRows, Store, TraceFilter,
};
use baddybugs_tests::clickhouse::ClickHouseFront;
use serde_json::value::RawValue;
use serde_json::Value;

/// Both stores, named, with what keeps them alive.
struct Stores {
    all: Vec<(&'static str, Arc<dyn Store>)>,
    _sqlite_dir: tempfile::TempDir,
    _front: ClickHouseFront,
}

async fn stores(prefix: &str) -> anyhow::Result<Stores> {
    let dir = tempfile::tempdir()?;
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("store.sqlite"))?);
    let front = ClickHouseFront::start().await?;
    let database = front.fresh_database(prefix).await?;
    let config = ClickHouseConfig {
        url: Some(front.url()),
        database,
        ..ClickHouseConfig::default()
    };
    let clickhouse = ClickHouseStore::connect(&config).await?;
    Ok(Stores {
        all: vec![("sqlite", sqlite), ("clickhouse", clickhouse)],
        _sqlite_dir: dir,
        _front: front,
    })
}

/// Now, epoch ms: the tables' TTLs follow the receipt time, so rows received long ago would
/// be dropped on insert.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn meta(batch_id: &str, received_ms: i64, total: usize) -> BatchMeta {
    BatchMeta {
        batch_id: batch_id.to_owned(),
        received_ms,
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        remote_addr: Some("10.0.0.7:51234".to_owned()),
        agent_version: Some("1.4.2".to_owned()),
        bytes_compressed: 1000,
        bytes_inflated: 5000,
        total_events: total as u32,
        duplicates: 0,
        quarantined: Vec::new(),
        stages: Vec::new(),
    }
}

/// One spool record per (batch id, events), built into one store batch like the batcher does.
fn build(records: &[(u64, Vec<u8>)]) -> SinkBatch {
    let refs: Vec<RecordRef<'_>> = records
        .iter()
        .map(|(lsn, payload)| RecordRef {
            lsn: *lsn,
            payload,
            appended_ms: 0,
            durable_ms: 0,
        })
        .collect();
    let (batch, stats) = build_batch(&refs, SpanRows::Written, |_, _| true);
    assert_eq!(stats.undecodable, 0);
    batch
}

fn record_of(batch_id: &str, received_ms: i64, events: &[String]) -> Vec<u8> {
    let indexed: Vec<(u32, &[u8])> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u32, e.as_bytes()))
        .collect();
    record::encode(&meta(batch_id, received_ms, events.len()), &indexed, &[])
}

fn agent_fixtures() -> Vec<ValidFixture> {
    valid_fixtures()
        .into_iter()
        .filter(|f| f.shape == Shape::Agent)
        .collect()
}

async fn write_all(stores: &Stores, batch: &SinkBatch) -> anyhow::Result<()> {
    let batch = Arc::new(batch.clone());
    for (name, store) in &stores.all {
        store
            .write(batch.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    Ok(())
}

/// The same JSON from every store, returned once.
fn same<T: serde::Serialize>(what: &str, answers: Vec<(&str, T)>) -> Value {
    let mut values = answers
        .into_iter()
        .map(|(name, answer)| (name, serde_json::to_value(answer).expect("serializable")));
    let (first_name, first) = values.next().expect("at least one store");
    for (name, value) in values {
        assert_eq!(
            value, first,
            "{what}: {name} answers differently from {first_name}"
        );
    }
    first
}

/// Every event matching `filter`, following the cursor (pages of the filter's limit, else 1000).
async fn all_events(store: &Arc<dyn Store>, filter: EventFilter) -> Vec<Value> {
    let mut out = Vec::new();
    let mut filter = EventFilter {
        limit: filter.limit.or(Some(1000)),
        ..filter
    };
    loop {
        let page = store.query_events(filter.clone()).await.expect("query");
        out.extend(
            page.events
                .iter()
                .map(|e| serde_json::to_value(e).expect("json")),
        );
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return out,
        }
    }
}

#[tokio::test]
async fn every_type_round_trips_identically_in_both_stores() -> anyhow::Result<()> {
    let stores = stores("contract_types").await?;
    let fixtures = agent_fixtures();
    assert!(fixtures.len() >= 55);
    let texts: Vec<String> = fixtures.iter().map(|f| f.text.clone()).collect();
    let received_ms = now_ms();
    let batch = build(&[
        (
            7,
            record_of(
                "0190a0a0-0000-7000-8000-000000000001",
                received_ms,
                &texts[..30],
            ),
        ),
        (
            8,
            record_of(
                "0190a0a0-0000-7000-8000-000000000002",
                received_ms + 1,
                &texts[30..],
            ),
        ),
    ]);
    assert_eq!(batch.events.len(), fixtures.len());
    assert!(!batch.spans.is_empty() && !batch.exceptions.is_empty());
    write_all(&stores, &batch).await?;

    for (fixture, row) in fixtures.iter().zip(&batch.events) {
        let sent: HashMap<String, Box<RawValue>> = serde_json::from_str(&fixture.text)?;
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            let stored = store
                .get_event(EventLookup::id(&row.event_id))
                .await?
                .pop()
                .unwrap_or_else(|| panic!("{name}: {} not stored", fixture.id));
            answers.push((*name, stored));
        }
        let stored = same(&fixture.id, answers);
        // `data` byte-for-byte (compared as raw text, not as parsed JSON).
        let data = stores.all[1]
            .1
            .get_event(EventLookup::id(&row.event_id))
            .await?
            .pop()
            .expect("stored");
        assert_eq!(data.data.get(), sent["payload"].get(), "{}", fixture.id);
        // The denormalised columns are the ones the catalog computed.
        let c = &row.columns;
        assert_eq!(
            stored["status_code"],
            serde_json::json!(c.status_code),
            "{}",
            fixture.id
        );
        assert_eq!(
            stored["is_error"],
            serde_json::json!(c.is_error),
            "{}",
            fixture.id
        );
        assert_eq!(
            stored["severity"],
            serde_json::json!(c.severity),
            "{}",
            fixture.id
        );
        assert_eq!(
            stored["user_id"],
            serde_json::json!(c.user_id),
            "{}",
            fixture.id
        );
        assert_eq!(
            stored["duration_ms"],
            serde_json::json!(c.duration_ms),
            "{}",
            fixture.id
        );
        assert_eq!(
            stored["request_id"],
            serde_json::json!(c.request_id),
            "{}",
            fixture.id
        );
        assert_eq!(
            stored["job_id"],
            serde_json::json!(c.job_id),
            "{}",
            fixture.id
        );
        // Every envelope field without a column is kept verbatim.
        for (key, value) in &sent {
            if matches!(
                key.as_str(),
                "type"
                    | "name"
                    | "payload"
                    | "id"
                    | "trace_id"
                    | "env"
                    | "release"
                    | "host"
                    | "session_id"
                    | "timestamp"
            ) {
                continue;
            }
            assert!(
                data.envelope
                    .get()
                    .contains(&format!("\"{key}\":{}", value.get())),
                "{}: envelope field {key} not kept verbatim in {}",
                fixture.id,
                data.envelope.get()
            );
        }
    }

    // Filters answer the same: per type, per error flag, per time window, paged.
    let types: std::collections::BTreeSet<&str> =
        fixtures.iter().map(|f| f.event_type.as_str()).collect();
    for event_type in types {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            let filter = EventFilter {
                event_type: Some(event_type.to_owned()),
                ..EventFilter::default()
            };
            answers.push((*name, all_events(store, filter).await));
        }
        let found = same(&format!("type={event_type}"), answers);
        assert_eq!(
            found.as_array().map(Vec::len),
            Some(
                batch
                    .events
                    .iter()
                    .filter(|e| &*e.event_type == event_type)
                    .count()
            ),
            "{event_type}"
        );
    }
    let mut answers = Vec::new();
    for (name, store) in &stores.all {
        let filter = EventFilter {
            is_error: Some(true),
            limit: Some(7),
            ..EventFilter::default()
        };
        // Three pages of seven, through the cursor.
        let mut ids = Vec::new();
        let mut filter = filter;
        for _ in 0..3 {
            let page = store.query_events(filter.clone()).await?;
            ids.extend(page.events.into_iter().map(|e| e.id));
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
        }
        answers.push((*name, ids));
    }
    same("is_error pages", answers);

    // Lifecycle spans, per trace, in waterfall order.
    let traces: std::collections::BTreeSet<&str> =
        batch.spans.iter().map(|s| &*s.trace_id).collect();
    assert!(!traces.is_empty());
    for trace_id in traces {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            answers.push((*name, store.trace_spans(trace_id.to_owned()).await?));
        }
        let spans = same(&format!("spans of {trace_id}"), answers);
        assert_eq!(
            spans.as_array().map(Vec::len),
            Some(
                batch
                    .spans
                    .iter()
                    .filter(|s| &*s.trace_id == trace_id)
                    .count()
            ),
            "{trace_id}"
        );
    }

    // Pipeline traces.
    let mut answers = Vec::new();
    for (name, store) in &stores.all {
        answers.push((*name, store.query_traces(TraceFilter::default()).await?));
    }
    let traces = same("pipeline traces", answers);
    assert_eq!(traces.as_array().map(Vec::len), Some(2));
    Ok(())
}

/// An occurrence of the exception fixture with its own id, time, message and fingerprint.
fn occurrence(template: &Value, id: &str, timestamp_ms: i64, message: &str, fp: &str) -> String {
    let mut event = template.clone();
    event["id"] = Value::String(id.to_owned());
    event["timestamp"] = Value::String(
        chrono::DateTime::from_timestamp_millis(timestamp_ms)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    event["payload"]["message"] = Value::String(message.to_owned());
    event["payload"]["fingerprint"] = Value::String(fp.to_owned());
    event.to_string()
}

#[tokio::test]
async fn exceptions_group_by_fingerprint_and_writes_are_idempotent() -> anyhow::Result<()> {
    let stores = stores("contract_groups").await?;
    let fixture = agent_fixtures()
        .into_iter()
        .find(|f| f.event_type == "exception")
        .expect("an exception fixture");
    let template: Value = serde_json::from_str(&fixture.text)?;
    let t0 = now_ms();
    // Occurrences of two fingerprints, out of order, over three requests in two batches.
    let first = build(&[
        (
            1,
            record_of(
                "0190b0b0-0000-7000-8000-000000000001",
                t0,
                &[
                    occurrence(&template, "ex-1", t0 + 5_000, "second", "fp-a"),
                    occurrence(&template, "ex-2", t0 + 1_000, "first", "fp-a"),
                    occurrence(&template, "ex-3", t0 + 2_000, "only", "fp-b"),
                ],
            ),
        ),
        (
            2,
            record_of(
                "0190b0b0-0000-7000-8000-000000000002",
                t0 + 10,
                &[occurrence(&template, "ex-4", t0 + 9_000, "latest", "fp-a")],
            ),
        ),
    ]);
    let second = build(&[(
        3,
        record_of(
            "0190b0b0-0000-7000-8000-000000000003",
            t0 + 20,
            &[occurrence(
                &template,
                "ex-5",
                t0 + 3_000,
                "late arrival",
                "fp-a",
            )],
        ),
    )]);
    write_all(&stores, &first).await?;
    write_all(&stores, &second).await?;
    // A retry and a replay of the same spool ranges: nothing is stored twice.
    write_all(&stores, &first).await?;
    write_all(&stores, &second).await?;

    let mut answers = Vec::new();
    for (name, store) in &stores.all {
        answers.push((*name, store.exception_groups(EventFilter::default()).await?));
    }
    let groups = same("exception groups", answers);
    let by_fp: BTreeMap<String, &Value> = groups
        .as_array()
        .expect("list")
        .iter()
        .map(|g| (g["fingerprint"].as_str().unwrap_or_default().to_owned(), g))
        .collect();
    assert_eq!(by_fp.len(), 2, "{groups}");
    let a = by_fp["fp-a"];
    assert_eq!(a["occurrence_count"], 4, "{a}");
    assert_eq!(a["last_message"], "latest");
    assert_eq!(
        a["first_seen"],
        baddybugs_common::timestamp::format_millis(t0 + 1_000)
    );
    assert_eq!(
        a["last_seen"],
        baddybugs_common::timestamp::format_millis(t0 + 9_000)
    );
    assert_eq!(by_fp["fp-b"]["occurrence_count"], 1);
    // Most recently seen first; the time filter keeps overlapping groups only.
    assert_eq!(groups[0]["fingerprint"], "fp-a");
    for (name, store) in &stores.all {
        let late = store
            .exception_groups(EventFilter {
                since_ms: Some(t0 + 4_000),
                ..EventFilter::default()
            })
            .await?;
        assert_eq!(late.len(), 1, "{name}: {late:?}");
        assert_eq!(late[0].fingerprint, "fp-a");
    }

    // The events themselves: once each.
    for (name, store) in &stores.all {
        let events = all_events(store, EventFilter::default()).await;
        assert_eq!(events.len(), 5, "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn quarantine_reads_the_same_and_replays_are_dropped() -> anyhow::Result<()> {
    let stores = stores("contract_quarantine").await?;
    let received = now_ms();
    let bad_event = br#"{"id":"bad-1","type":"query","payload":{"sql":42}}"#;
    let not_utf8: &[u8] = b"{\"type\":\"log\",\"payload\":{\"message\":\"\xff\xfe\"}}";
    let mut meta = meta("0190c0c0-0000-7000-8000-000000000001", received, 3);
    meta.quarantined = vec![
        Quarantined {
            index: Some(1),
            event_type: Some("query".to_owned()),
            event_id: Some("bad-1".to_owned()),
            reasons: vec![Problem::new(
                ReasonCode::WrongType,
                "/payload/sql",
                "a string",
                "42",
            )],
            raw_size: bad_event.len() as u64,
        },
        Quarantined {
            index: Some(2),
            event_type: Some("log".to_owned()),
            event_id: None,
            reasons: vec![Problem::new(
                ReasonCode::InvalidUtf8,
                "",
                "UTF-8 text",
                "byte 0xff at offset 35",
            )],
            raw_size: 4096,
        },
    ];
    let good = agent_fixtures()[0].text.clone();
    let payload = record::encode(
        &meta,
        &[(0, good.as_bytes())],
        &[bad_event.as_slice(), not_utf8],
    );
    let batch = build(&[(11, payload)]);
    assert_eq!(batch.malformed.len(), 2);
    write_all(&stores, &batch).await?;
    write_all(&stores, &batch).await?;

    for filter in [
        MalformedFilter::default(),
        MalformedFilter {
            reason: Some("wrong_type".to_owned()),
            ..MalformedFilter::default()
        },
        MalformedFilter {
            event_type: Some("log".to_owned()),
            ..MalformedFilter::default()
        },
    ] {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            answers.push((*name, store.query_malformed(filter.clone()).await?));
        }
        same(&format!("malformed {filter:?}"), answers);
    }
    for (name, store) in &stores.all {
        let all = store.query_malformed(MalformedFilter::default()).await?;
        assert_eq!(all.len(), 2, "{name}: the replay is not stored twice");
        let by_reason = store
            .query_malformed(MalformedFilter {
                reason: Some("wrong_type".to_owned()),
                ..MalformedFilter::default()
            })
            .await?;
        assert_eq!(by_reason.len(), 1, "{name}");
        assert_eq!(by_reason[0].raw.as_bytes(), bad_event.as_slice(), "{name}");
        assert_eq!(by_reason[0].reasons[0].path, "/payload/sql");
        let cut = all.iter().find(|m| m.index == Some(2)).expect("the log");
        assert!(cut.truncated, "{name}: raw_size says the bytes are cut");
        let ids: Vec<String> = all.iter().map(|m| m.id.clone()).rev().collect();
        let fetched = store.get_malformed(ids.clone()).await?;
        assert_eq!(
            fetched.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            ids,
            "{name}: by id, in the order asked"
        );
    }
    Ok(())
}

/// Issue 15: a whole undecodable body is kept uncut in both stores (200 KiB here, past the
/// 64 KiB per-event cap), read back byte for byte by `malformed_raw`; a list shows its first
/// `MALFORMED_LIST_RAW_BYTES`, marked cut.
#[tokio::test]
async fn a_whole_body_is_kept_uncut_and_read_back_byte_for_byte() -> anyhow::Result<()> {
    let stores = stores("contract_raw").await?;
    let batch_id = "0190e0e0-0000-7000-8000-000000000001";
    let body: Vec<u8> = (0..200 << 10).map(|i: u32| (i % 251) as u8).collect();
    let mut meta = meta(batch_id, now_ms(), 0);
    meta.quarantined = vec![Quarantined {
        index: None,
        event_type: None,
        event_id: None,
        reasons: vec![Problem::new(
            ReasonCode::InvalidUtf8,
            "",
            "UTF-8 text",
            "byte 0x80 at offset 128",
        )],
        raw_size: body.len() as u64,
    }];
    let batch = build(&[(31, record::encode(&meta, &[], &[body.as_slice()]))]);
    write_all(&stores, &batch).await?;
    let id = format!("{batch_id}-body");
    for (name, store) in &stores.all {
        let raw = store.malformed_raw(id.clone()).await?;
        assert!(
            raw.as_deref() == Some(body.as_slice()),
            "{name}: every byte, exactly ({:?} bytes)",
            raw.map(|r| r.len())
        );
        assert_eq!(store.malformed_raw("no-such-id".to_owned()).await?, None);
        let listed = store.query_malformed(MalformedFilter::default()).await?;
        let row = listed.iter().find(|m| m.id == id).expect("listed");
        assert_eq!(row.raw_size, body.len() as u64, "{name}");
        assert!(row.truncated, "{name}: the list cuts it");
        let shown = String::from_utf8_lossy(&body[..MALFORMED_LIST_RAW_BYTES]);
        assert_eq!(row.raw, shown, "{name}: the first bytes");
        let by_id = store.get_malformed(vec![id.clone()]).await?;
        assert!(!by_id[0].truncated, "{name}: by id, uncut");
    }
    Ok(())
}

#[tokio::test]
async fn a_row_the_store_cannot_take_is_refused_not_dropped() -> anyhow::Result<()> {
    let stores = stores("contract_refused").await?;
    let texts: Vec<String> = agent_fixtures()[..3]
        .iter()
        .map(|f| f.text.clone())
        .collect();
    let mut batch = build(&[(
        21,
        record_of("0190d0d0-0000-7000-8000-000000000001", now_ms(), &texts),
    )]);
    // `data` that is not JSON cannot be handed out by the query API: both stores refuse it
    // (ClickHouse by the table's constraint), so the batcher bisects and quarantines the row.
    batch.events[1].data = "{not json".to_owned();
    for (name, store) in &stores.all {
        match store.write(Arc::new(batch.clone())).await {
            Err(err @ SinkError::Rejected { .. }) => {
                let message = err.chain();
                if *name == "clickhouse" {
                    assert!(message.contains("VIOLATED_CONSTRAINT"), "{message}");
                }
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    Ok(())
}

/// Issue 15: an event is identified by (organization, application, id). Tenant A's batch is
/// stored, then tenant B's with the same ids: both stores keep both tenants' events, spans and
/// exception occurrences, a lookup by id answers both (or the one its scope names), and the
/// store's own retry of B's batch still stores nothing twice.
#[tokio::test]
async fn two_tenants_with_the_same_event_ids_are_stored_apart_in_both_stores() -> anyhow::Result<()>
{
    let stores = stores("contract_tenants").await?;
    let texts: Vec<String> = agent_fixtures().iter().map(|f| f.text.clone()).collect();
    let received_ms = now_ms();
    let record_of_tenant = |organization: &str, batch_id: &str, received_ms: i64| {
        let indexed: Vec<(u32, &[u8])> = texts
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u32, e.as_bytes()))
            .collect();
        let meta = BatchMeta {
            organization: organization.to_owned(),
            ..meta(batch_id, received_ms, texts.len())
        };
        record::encode(&meta, &indexed, &[])
    };
    let acme = build(&[(
        21,
        record_of_tenant("acme", "0190a0a0-0000-7000-8000-000000000021", received_ms),
    )]);
    let globex = build(&[(
        22,
        record_of_tenant(
            "globex",
            "0190a0a0-0000-7000-8000-000000000022",
            received_ms + 1,
        ),
    )]);
    assert!(!acme.spans.is_empty() && !acme.exceptions.is_empty());
    write_all(&stores, &acme).await?;
    write_all(&stores, &globex).await?;
    // The batcher's retry of B's batch (same range, same token): nothing more.
    write_all(&stores, &globex).await?;

    for row in &acme.events {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            let found = store.get_event(EventLookup::id(&row.event_id)).await?;
            answers.push((*name, found));
        }
        let both = same(&format!("{} in every tenant", row.event_id), answers);
        let organizations: Vec<&str> = both
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["organization"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(organizations, ["acme", "globex"], "{}", row.event_id);

        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            let lookup = EventLookup {
                organization: Some("globex".into()),
                application: Some("shop".into()),
                ..EventLookup::id(&row.event_id)
            };
            answers.push((*name, store.get_event(lookup).await?));
        }
        let one = same(&format!("{} of globex", row.event_id), answers);
        assert_eq!(one.as_array().map(Vec::len), Some(1), "{}", row.event_id);
        assert_eq!(one[0]["organization"], "globex");
    }

    // Each tenant's list holds all of its own events, once.
    for organization in ["acme", "globex"] {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            let filter = EventFilter {
                organization: Some(organization.to_owned()),
                ..EventFilter::default()
            };
            answers.push((*name, all_events(store, filter).await));
        }
        let listed = same(&format!("events of {organization}"), answers);
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(acme.events.len()),
            "{organization}"
        );
    }

    // Spans: both tenants' rows, each once, the same in both stores.
    let traces: std::collections::BTreeSet<&str> =
        acme.spans.iter().map(|s| &*s.trace_id).collect();
    for trace_id in traces {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            answers.push((*name, store.trace_spans(trace_id.to_owned()).await?));
        }
        let spans = same(&format!("spans of {trace_id}"), answers);
        let per_tenant = acme
            .spans
            .iter()
            .filter(|s| &*s.trace_id == trace_id)
            .count();
        assert_eq!(
            spans.as_array().map(Vec::len),
            Some(2 * per_tenant),
            "{trace_id}"
        );
    }

    // Exception occurrences: one per tenant, in each tenant's own groups.
    let mut answers = Vec::new();
    for (name, store) in &stores.all {
        answers.push((*name, store.exception_groups(EventFilter::default()).await?));
    }
    let groups = same("exception groups of both tenants", answers);
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for group in groups.as_array().cloned().unwrap_or_default() {
        *counts
            .entry((
                group["organization"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                group["fingerprint"].as_str().unwrap_or_default().to_owned(),
            ))
            .or_default() += group["occurrence_count"].as_u64().unwrap_or_default();
    }
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for organization in ["acme", "globex"] {
        for o in &acme.exceptions {
            *expected
                .entry((organization.to_owned(), o.exception.fingerprint.clone()))
                .or_default() += 1;
        }
    }
    assert_eq!(counts, expected);

    // Scoped by organization: only that tenant's groups, the same in both stores.
    let mut answers = Vec::new();
    for (name, store) in &stores.all {
        let filter = EventFilter {
            organization: Some("globex".into()),
            ..Default::default()
        };
        answers.push((*name, store.exception_groups(filter).await?));
    }
    let globex = same("exception groups of globex", answers);
    let globex = globex.as_array().cloned().unwrap_or_default();
    assert!(!globex.is_empty());
    assert!(
        globex.iter().all(|g| g["organization"] == "globex"),
        "{globex:?}"
    );
    Ok(())
}

/// Issue 19: an agent retry that reached a second node after the first had stored the batch
/// (and died before answering) is stored by both nodes, under two batch ids. SQLite keeps one
/// row by its key; ClickHouse keeps both rows and every read shows the event once, the first
/// received: listed page by page (a page never holds a copy, the pages never repeat one), and
/// looked up by id.
#[tokio::test]
async fn an_event_stored_by_two_nodes_is_read_once_in_both_stores() -> anyhow::Result<()> {
    let stores = stores("contract_two_nodes").await?;
    let texts: Vec<String> = agent_fixtures().iter().map(|f| f.text.clone()).collect();
    let received_ms = now_ms();
    // Each node numbers its spool from 1: the same LSN, another batch id, a later receipt.
    let first = build(&[(
        1,
        record_of("0190a0a0-0000-7000-8000-0000000000a1", received_ms, &texts),
    )]);
    let retry = build(&[(
        1,
        record_of(
            "0190a0a0-0000-7000-8000-0000000000b2",
            received_ms + 1_500,
            &texts,
        ),
    )]);
    assert_ne!(
        first.dedup_token("events"),
        retry.dedup_token("events"),
        "two nodes' inserts"
    );
    write_all(&stores, &first).await?;
    write_all(&stores, &retry).await?;

    for page_size in [3, 1000] {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            let filter = EventFilter {
                limit: Some(page_size),
                ..EventFilter::default()
            };
            answers.push((*name, all_events(store, filter).await));
        }
        let listed = same(&format!("events in pages of {page_size}"), answers);
        let ids: Vec<&str> = listed
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["id"].as_str()).collect())
            .unwrap_or_default();
        let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(
            ids.len(),
            first.events.len(),
            "pages of {page_size}: {ids:?}"
        );
        assert_eq!(
            unique.len(),
            ids.len(),
            "pages of {page_size}: an event twice"
        );
        assert!(
            listed
                .as_array()
                .into_iter()
                .flatten()
                .all(|e| e["batch_id"] == "0190a0a0-0000-7000-8000-0000000000a1"),
            "the first received copy is the one read"
        );
    }
    for row in &first.events {
        let mut answers = Vec::new();
        for (name, store) in &stores.all {
            answers.push((
                *name,
                store.get_event(EventLookup::id(&row.event_id)).await?,
            ));
        }
        let found = same(&format!("{} by id", row.event_id), answers);
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{}", row.event_id);
    }
    Ok(())
}

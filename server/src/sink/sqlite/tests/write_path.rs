//! Issues 3 and 18 (drain speed): what the faster write path must keep. A bad JSON value still
//! refuses its batch, the V2 index still serves its filter, the waterfall still reads the spans
//! V7 no longer writes, old files upgrade and keep their page size.

use rusqlite::Connection;

use super::{batch, count, event, open, peek, varied_events, WriteArc, T0};
use crate::sink::sqlite::SqliteStore;
use crate::sink::{EventFilter, EventRow, SinkBatch, SinkError, Store};

/// Issue 18, schema V7: a V6 store's `lifecycle_spans` goes, and the waterfall shows the same
/// spans, derived from the stored events, through the trace index.
#[tokio::test]
async fn a_v6_store_drops_its_span_rows_and_the_waterfall_derives_the_same_spans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    {
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        crate::sink::sqlite::schema::migrate_to(&mut conn, 6).unwrap();
        // A lifecycle event and a trace span, with the rows a V6 server wrote for them.
        conn.execute_batch(
            r#"INSERT INTO events (event_id, lsn, idx, batch_id, organization, application,
                 environment, type, name, timestamp_ms, timestamp_source, received_ms, trace_id,
                 known_type, is_error, data, envelope)
             VALUES ('lc-1', 1, 0, 'b', 'acme', 'shop', 'production', 'lifecycle', 'GET /', 1000,
                 'timestamp', 1001, 'tr-9', 1, 0,
                 '{"phases":[{"name":"CONTROLLER","start_offset_ms":1,"duration_ms":9}],"spans":[{"span_id":5,"type":"QUERY","sql":"select 1","start_offset_ms":2.5,"duration_ms":0.5,"depth":1}]}',
                 '{}'),
                    ('ts-1', 1, 1, 'b', 'acme', 'shop', 'production', 'trace_span', 'db', 1000,
                 'timestamp', 1001, 'tr-9', 1, 0,
                 '{"type":"db","name":"select","start_time":1.25,"duration_ms":3}', '{}'),
                    ('q-1', 1, 2, 'b', 'acme', 'shop', 'production', 'query', 'sql', 1000,
                 'timestamp', 1001, 'tr-9', 1, 0, '{"sql":"select 1"}', '{}');
             INSERT INTO lifecycle_spans (event_id, trace_id, organization, application,
                 timestamp_ms, kind, span_id, span_type, label, start_offset_ms, duration_ms,
                 depth, started_at_ms, sql)
             VALUES ('lc-1', 'tr-9', 'acme', 'shop', 1000, 'phase', 0, 'CONTROLLER',
                 'CONTROLLER', 1, 9, 0, NULL, NULL),
                    ('lc-1', 'tr-9', 'acme', 'shop', 1000, 'span', 5, 'QUERY', 'QUERY', 2.5, 0.5,
                 1, NULL, 'select 1'),
                    ('ts-1', 'tr-9', 'acme', 'shop', 1000, 'trace_span', 0, 'db', 'select', 0, 3,
                 0, 1250, NULL);"#,
        )
        .unwrap();
    }
    const KEYS: [&str; 10] = [
        "event_id",
        "kind",
        "span_id",
        "span_type",
        "label",
        "start_offset_ms",
        "duration_ms",
        "depth",
        "started_at_ms",
        "sql",
    ];
    let held: Vec<serde_json::Value> = {
        let conn = Connection::open(&path).unwrap();
        let mut rows = conn
            .prepare(&format!(
                "SELECT {} FROM lifecycle_spans ORDER BY timestamp_ms, kind, start_offset_ms",
                KEYS.join(", ")
            ))
            .unwrap();
        rows.query_map([], |r| {
            let mut span = serde_json::Map::new();
            for (i, key) in KEYS.iter().enumerate() {
                let value = match r.get::<_, rusqlite::types::Value>(i)? {
                    rusqlite::types::Value::Integer(v) => serde_json::json!(v),
                    // REAL columns read back as floats; SQLite keeps 1 in a REAL column as 1.0.
                    rusqlite::types::Value::Real(v) => serde_json::json!(v),
                    rusqlite::types::Value::Text(v) => serde_json::json!(v),
                    _ => serde_json::Value::Null,
                };
                span.insert((*key).to_owned(), value);
            }
            Ok(serde_json::Value::Object(span))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    assert_eq!(held.len(), 3);

    let store = SqliteStore::open(&path).unwrap();
    let table_left: bool = peek(&store)
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'lifecycle_spans')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!table_left, "V7 drops the span rows");
    let derived: Vec<serde_json::Value> = store
        .trace_spans("tr-9".into())
        .await
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::Value::Object(
                KEYS.iter()
                    .map(|k| ((*k).to_owned(), s[*k].clone()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(derived, held, "the spans the V6 rows held");

    let steps = plan(
        &store,
        crate::sink::sqlite::read::TRACE_SPAN_EVENTS_SQL,
        vec![rusqlite::types::Value::Text("tr-9".into())],
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("SEARCH events USING INDEX events_trace (trace_id=?)")),
        "{steps:?}"
    );
}

/// The query plan of `sql` on the store's file, one detail line per step.
fn plan(store: &SqliteStore, sql: &str, args: Vec<rusqlite::types::Value>) -> Vec<String> {
    peek(store)
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Issue 3: V2 replaced `events_user` by a partial index (only rows with a user). Every event
/// filter must still be answered through an index, and the indexed filters through theirs.
#[tokio::test]
async fn every_event_query_is_served_by_an_index() {
    let (_dir, store) = open();
    store
        .write_arc(SinkBatch {
            events: varied_events(),
            ..batch(1, 40)
        })
        .await
        .unwrap();
    let f = EventFilter::default;
    let text = |v: &str| Some(v.to_owned());
    let cases = [
        ("none", f(), "SCAN events USING INDEX events_time"),
        (
            "type",
            EventFilter {
                event_type: text("query"),
                ..f()
            },
            "SEARCH events USING INDEX events_type_time (type=?)",
        ),
        (
            "trace_id",
            EventFilter {
                trace_id: text("trace-1"),
                ..f()
            },
            "SEARCH events USING INDEX events_trace (trace_id=?)",
        ),
        (
            "user_id",
            EventFilter {
                user_id: text("user-1"),
                ..f()
            },
            "SEARCH events USING INDEX events_user (user_id=?)",
        ),
        (
            "user_id and type",
            EventFilter {
                user_id: text("user-1"),
                event_type: text("query"),
                ..f()
            },
            "USING INDEX events_",
        ),
        (
            "time range",
            EventFilter {
                since_ms: Some(T0),
                until_ms: Some(T0 + 10),
                ..f()
            },
            "SEARCH events USING INDEX events_time (timestamp_ms>? AND timestamp_ms<?)",
        ),
        (
            "cursor",
            EventFilter {
                cursor: Some(crate::sink::query::encode_cursor(T0 + 5, "evt-10")),
                ..f()
            },
            "USING INDEX events_time",
        ),
        (
            "organization and application",
            EventFilter {
                organization: text("acme"),
                application: text("shop"),
                ..f()
            },
            "SCAN events USING INDEX events_time",
        ),
        (
            "organization, application and type",
            EventFilter {
                organization: text("acme"),
                application: text("shop"),
                event_type: text("query"),
                ..f()
            },
            "SEARCH events USING INDEX events_type_time (type=?)",
        ),
        (
            "name, environment, is_error",
            EventFilter {
                name: text("name-1"),
                environment: text("staging"),
                is_error: Some(true),
                ..f()
            },
            "SCAN events USING INDEX events_time",
        ),
    ];
    for (label, filter, expected) in cases {
        let (sql, args, _) = crate::sink::sqlite::read::events_sql(&filter).unwrap();
        let steps = plan(&store, &sql, args);
        assert!(
            steps.iter().any(|s| s.contains(expected)),
            "{label}: expected {expected:?} in {steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s == "SCAN events"),
            "{label}: full table scan: {steps:?}"
        );
        // The time indexes give the time order; only events of one millisecond are sorted
        // by id (schema 6), never the whole match.
        if steps
            .iter()
            .any(|s| s.contains("INDEX events_time") || s.contains("INDEX events_type_time"))
        {
            assert!(
                !steps.iter().any(|s| s == "USE TEMP B-TREE FOR ORDER BY"),
                "{label}: sorts every match: {steps:?}"
            );
        }
    }
    // The filter still answers right (rows without a user are not in the index).
    let page = store
        .query_events(EventFilter {
            user_id: text("user-1"),
            ..f()
        })
        .await
        .unwrap();
    let expected = varied_events()
        .iter()
        .filter(|e| e.columns.user_id.as_deref() == Some("user-1"))
        .count();
    assert_eq!(page.events.len(), expected);
    assert!(expected > 0);
    // A lookup by id, scoped or not (issue 15), is a seek on the tenant-scoped unique index.
    for (sql, args) in [
        (
            "SELECT event_id FROM events WHERE event_id = ?1",
            vec!["evt-01"],
        ),
        (
            "SELECT event_id FROM events WHERE event_id = ?1 AND organization = ?2",
            vec!["evt-01", "acme"],
        ),
        (
            "SELECT event_id FROM events WHERE event_id = ?1 AND application = ?2",
            vec!["evt-01", "shop"],
        ),
    ] {
        let args = args
            .into_iter()
            .map(|a| rusqlite::types::Value::Text(a.into()))
            .collect();
        let steps = plan(&store, sql, args);
        assert!(
            steps
                .iter()
                .any(|s| s.contains("USING COVERING INDEX events_id")
                    || s.contains("USING INDEX events_id")),
            "{sql}: {steps:?}"
        );
    }
}

/// Issue 3: the JSON check runs beside the inserts on big batches; a bad row among thousands
/// still refuses the whole batch, and the refusal names the row.
#[tokio::test]
async fn a_row_that_is_not_json_refuses_a_large_batch_whole() {
    let (_dir, store) = open();
    let mut events: Vec<EventRow> = (0..2000)
        .map(|i| event(&format!("evt-{i:04}"), "request", T0 + i))
        .collect();
    events[1500].envelope = "{\"memory\":".to_owned();
    let result = store
        .write_arc(SinkBatch {
            events: events.clone(),
            ..batch(1, 1)
        })
        .await;
    match result {
        Err(err @ SinkError::Rejected { .. }) => {
            let message = err.chain();
            assert!(
                message.contains("evt-1500") && message.contains("envelope"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(count(&store, "events"), 0, "all or nothing");
    events.remove(1500);
    store
        .write_arc(SinkBatch {
            events,
            ..batch(1, 1)
        })
        .await
        .unwrap();
    assert_eq!(count(&store, "events"), 1999);
}

/// Issue 3: a new store gets 16 KiB pages.
#[tokio::test]
async fn a_new_store_has_16_kib_pages() {
    let (_dir, store) = open();
    let page_size: i64 = peek(&store)
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, 16 * 1024);
}

/// Issue 3: a store written by a V1 server keeps its rows and gets the partial `events_user`.
#[tokio::test]
async fn a_v1_store_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        conn.execute_batch(crate::sink::sqlite::schema::V1).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                             applied_ms INTEGER NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 'initial schema', 0);
             INSERT INTO events (event_id, lsn, idx, batch_id, organization, application,
                 environment, type, name, timestamp_ms, timestamp_source, received_ms, trace_id,
                 known_type, user_id, is_error, data, envelope)
             VALUES ('old-1', 1, 0, 'b', 'o', 'a', 'production', 'request', 'n', 1, 'timestamp',
                 1, 't', 1, 'u-1', 0, '{}', '{}'),
                    ('old-2', 1, 1, 'b', 'o', 'a', 'production', 'request', 'n', 2, 'timestamp',
                 2, 't', 1, NULL, 0, '{}', '{}');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let index_sql: String = peek(&store)
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'events_user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        index_sql.contains("WHERE user_id IS NOT NULL"),
        "{index_sql}"
    );
    let page = store
        .query_events(EventFilter {
            user_id: Some("u-1".into()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].id, "old-1");
    assert_eq!(count(&store, "events"), 2);
    // V3 dropped `sink_parts`, which nothing read.
    let sink_parts: bool = peek(&store)
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'sink_parts')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!sink_parts);
    // The old file keeps its 4 KiB pages: only new files get 16 KiB.
    let page_size: i64 = peek(&store)
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page_size, 4096);
}

/// Issue 18: WAL checkpoints run on the checkpoint thread, not in the writer's commit. A write
/// far below the writer's own autocheckpoint threshold still reaches the database file, soon
/// after the commit, when the thread's threshold is passed; without the thread, SQLite's
/// default threshold (1000 pages) is not reached by that write, and the file stays as it was.
#[tokio::test]
async fn the_checkpoint_thread_copies_the_wal_into_the_database_file() {
    let big = |id: String| -> EventRow {
        EventRow {
            data: format!(r#"{{"blob":"{}"}}"#, "x".repeat(8 << 10)),
            ..event(&id, "log", T0)
        }
    };
    let batch_of = |prefix: &str| SinkBatch {
        events: (0..200).map(|i| big(format!("{prefix}-{i}"))).collect(),
        ..batch(1, 1)
    };
    let db_file_len = |store: &SqliteStore| std::fs::metadata(store.path()).unwrap().len();

    for (every_bytes, expect_copied) in [(1u64, true), (0, false)] {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::sink::sqlite::SqliteOptions {
            checkpoint_every_bytes: every_bytes,
            ..Default::default()
        };
        let store = SqliteStore::open_with(&dir.path().join("store.sqlite"), options).unwrap();
        let before = db_file_len(&store);
        // ~1.6 MiB of rows: far below either autocheckpoint threshold of the writer.
        store.write_arc(batch_of("e")).await.unwrap();
        if expect_copied {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while db_file_len(&store) < before + (1 << 20) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the checkpoint thread did not copy the WAL: file {} bytes",
                    db_file_len(&store)
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        } else {
            // Nothing else checkpoints; a second write makes sure the writer's commit path ran
            // again without copying.
            store.write_arc(batch_of("f")).await.unwrap();
            assert!(
                db_file_len(&store) < before + (1 << 20),
                "without the thread the writer's threshold was not reached: {} → {}",
                before,
                db_file_len(&store)
            );
        }
        assert_eq!(
            count(&store, "events"),
            if expect_copied { 200 } else { 400 }
        );
    }
}

/// Issue 18: under sustained load the WAL cycles between a restart and the writer's own
/// autocheckpoint. The size it is truncated back to when it restarts must be above that cycle,
/// so the file keeps its blocks (overwritten each cycle) instead of being cut and grown again,
/// which made the drain 17 % slower (docs/BENCHMARKS.md). Read from the writer connection itself.
#[tokio::test]
async fn the_wal_is_not_truncated_below_its_steady_cycle() {
    let (_dir, store) = open();
    let writer = store.inner.writer.lock();
    let writer = writer.conn.as_ref().expect("the writer connection is open");
    let pragma = |name: &str| -> i64 {
        writer
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        pragma("wal_autocheckpoint"),
        crate::sink::sqlite::checkpoint::WRITER_AUTOCHECKPOINT_PAGES as i64,
        "the writer checkpoints itself only past its own threshold"
    );
    let cycle_bytes = pragma("wal_autocheckpoint") * pragma("page_size");
    let limit = pragma("journal_size_limit");
    assert!(cycle_bytes >= 64 << 20, "cycle of {cycle_bytes} bytes");
    // The cycle ends at the first commit past it: the limit must also hold that commit's frames,
    // a full batch at the most bytes per event any drain measured (4.5 KB before schema V6,
    // docs/BENCHMARKS.md; 6 KiB here for margin).
    let batch_frames = crate::config::Config::default().batch.max_events as i64 * 6 * 1024;
    assert!(
        limit >= cycle_bytes + batch_frames,
        "journal_size_limit {limit} would truncate the WAL's {cycle_bytes}-byte cycle plus a batch of {batch_frames} bytes"
    );
}

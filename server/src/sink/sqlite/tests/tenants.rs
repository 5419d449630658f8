//! Issue 15: an event is identified by (organization, application, id). Two tenants may store
//! the same id, each once; lookups are scoped by tenant; a V3 file is rebuilt to that key
//! without losing a row or an index.

use rusqlite::types::Value;
use rusqlite::Connection;

use super::{
    batch, count, event, lifecycle, occurrence, open, peek, spans_are, waterfall, WriteArc, T0,
};
use crate::sink::sqlite::{schema, SqliteStore};
use crate::sink::{EventFilter, EventLookup, EventRow, ExceptionOccurrence, SinkBatch, Store};

fn of_event(organization: &str, row: EventRow) -> EventRow {
    EventRow {
        organization: organization.into(),
        ..row
    }
}

fn of_occurrence(organization: &str, row: ExceptionOccurrence) -> ExceptionOccurrence {
    ExceptionOccurrence {
        organization: organization.to_owned(),
        ..row
    }
}

/// `(organization, rows)` of `table` for `event_id`, by organization.
fn per_tenant(conn: &Connection, table: &str, event_id: &str) -> Vec<(String, i64)> {
    conn.prepare(&format!(
        "SELECT organization, count(*) FROM {table} WHERE event_id = ?1
          GROUP BY organization ORDER BY organization"
    ))
    .unwrap()
    .query_map([event_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[tokio::test]
async fn two_tenants_store_the_same_id_each_once_and_lookups_scope_by_tenant() {
    let (_dir, store) = open();
    // One batch with both tenants' "evt-1" and "lc-1", then each tenant's copy again in a later
    // batch, then a third tenant's.
    let both = SinkBatch {
        events: vec![
            of_event("acme", event("evt-1", "exception", T0)),
            of_event("globex", event("evt-1", "exception", T0 + 1)),
            of_event("acme", lifecycle("lc-1", T0, &[(1, 3.0)])),
            of_event("globex", lifecycle("lc-1", T0 + 1, &[])),
        ],
        exceptions: vec![
            of_occurrence("acme", occurrence("evt-1", "fp-1", T0, "acme's")),
            of_occurrence("globex", occurrence("evt-1", "fp-1", T0 + 1, "globex's")),
        ],
        ..batch(1, 2)
    };
    store.write_arc(both.clone()).await.unwrap();
    let again = SinkBatch {
        events: both.events.clone(),
        exceptions: both.exceptions.clone(),
        ..batch(3, 4)
    };
    store.write_arc(again).await.unwrap();
    let other = SinkBatch {
        events: vec![
            of_event("initech", event("evt-1", "request", T0 + 2)),
            of_event("initech", lifecycle("lc-1", T0 + 2, &[(7, 1.0)])),
        ],
        ..batch(5, 5)
    };
    store.write_arc(other).await.unwrap();

    let conn = peek(&store);
    let tenants = |t: &[(&str, i64)]| -> Vec<(String, i64)> {
        t.iter().map(|(o, n)| ((*o).to_owned(), *n)).collect()
    };
    assert_eq!(
        per_tenant(&conn, "events", "evt-1"),
        tenants(&[("acme", 1), ("globex", 1), ("initech", 1)])
    );
    assert_eq!(
        waterfall(&store).await,
        spans_are(&[
            ("acme", "lc-1", "phase", 0),
            ("acme", "lc-1", "span", 1),
            ("globex", "lc-1", "phase", 0),
            ("initech", "lc-1", "phase", 0),
            ("initech", "lc-1", "span", 7),
        ]),
        "each tenant's spans once, from its own event"
    );
    assert_eq!(
        per_tenant(&conn, "exceptions", "evt-1"),
        tenants(&[("acme", 1), ("globex", 1)])
    );
    let groups: Vec<(String, i64, String)> = conn
        .prepare(
            "SELECT organization, occurrence_count, last_message FROM exception_groups
              ORDER BY organization",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        groups,
        [
            ("acme".to_owned(), 1, "acme's".to_owned()),
            ("globex".to_owned(), 1, "globex's".to_owned())
        ],
        "each occurrence counted once, in its own tenant's group"
    );

    let lookup = |organization: Option<&str>, application: Option<&str>| EventLookup {
        event_id: "evt-1".into(),
        organization: organization.map(str::to_owned),
        application: application.map(str::to_owned),
    };
    let orgs = |events: Vec<crate::sink::StoredEvent>| -> Vec<String> {
        events.into_iter().map(|e| e.organization).collect()
    };
    assert_eq!(
        orgs(store.get_event(lookup(None, None)).await.unwrap()),
        ["acme", "globex", "initech"],
        "an ambiguous id answers every match, by tenant"
    );
    assert_eq!(
        orgs(store.get_event(lookup(Some("globex"), None)).await.unwrap()),
        ["globex"]
    );
    assert_eq!(
        orgs(
            store
                .get_event(lookup(Some("initech"), Some("shop")))
                .await
                .unwrap()
        ),
        ["initech"]
    );
    assert!(store
        .get_event(lookup(Some("acme"), Some("admin")))
        .await
        .unwrap()
        .is_empty());
    let page = store
        .query_events(EventFilter {
            organization: Some("globex".into()),
            application: Some("shop".into()),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        orgs(page.events),
        ["globex", "globex"],
        "its evt-1 and lc-1"
    );
}

/// Every row of `table`, rowid first, in rowid order (a `WITHOUT ROWID` table, by its key).
fn dump(conn: &Connection, table: &str) -> Vec<Vec<Value>> {
    let sql = match table {
        "exception_groups" => format!("SELECT * FROM {table} ORDER BY 1, 2, 3"),
        "malformed_reasons" => format!("SELECT * FROM {table} ORDER BY 1, 2"),
        _ => format!("SELECT rowid, * FROM {table} ORDER BY rowid"),
    };
    let mut stmt = conn.prepare(&sql).unwrap();
    let columns = stmt.column_count();
    stmt.query_map([], |r| {
        (0..columns)
            .map(|i| r.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The named indexes of the tables V4 rebuilds, with their SQL.
fn indexes(conn: &Connection) -> Vec<(String, Option<String>)> {
    conn.prepare(
        "SELECT name, sql FROM sqlite_schema
          WHERE type = 'index' AND tbl_name IN ('events', 'exceptions') ORDER BY name",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Issue 15: V4 rebuilds `events` and `exceptions` to make ids unique per tenant. A V3 file
/// keeps every row (rowids and values alike), every other table, and every index (the two
/// time indexes as V6 redefines them).
#[tokio::test]
async fn a_v3_store_is_rebuilt_with_tenant_scoped_ids_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite");
    let tables = [
        "events",
        "exceptions",
        "exception_groups",
        "malformed_events",
        "malformed_reasons",
        "ingest_traces",
    ];
    let (before, indexes_before) = {
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        schema::migrate_to(&mut conn, 3).unwrap();
        let mut insert_event = conn
            .prepare(
                "INSERT INTO events (event_id, lsn, idx, batch_id, organization, application,
                     environment, type, name, timestamp_ms, timestamp_source, received_ms,
                     trace_id, session_id, release, host, deployment_hash, known_type,
                     duration_ms, user_id, status_code, is_error, severity, request_id, job_id,
                     data, envelope)
                 VALUES (?1, ?2, ?3, 'b-old', ?4, 'shop', 'production', 'request', 'GET /', ?5,
                     'timestamp', ?5, 't-old', ?6, 'v1', 'web-1', NULL, 1, ?7, ?8, 200, ?9,
                     NULL, 'req', NULL, ?10, '{\"agent\":\"php\"}')",
            )
            .unwrap();
        for i in 0..300_i64 {
            insert_event
                .execute(rusqlite::params![
                    format!("old-{i:03}"),
                    i / 10,
                    i % 10,
                    ["acme", "globex"][(i % 2) as usize],
                    T0 + i,
                    (i % 3 == 0).then(|| format!("sess-{i}")),
                    (i % 4 != 0).then_some(i as f64 * 1.5),
                    (i % 5 == 0).then(|| format!("user-{i}")),
                    i % 7 == 0,
                    format!(
                        "{{\"n\":{i},\"text\":\"caf\\u00e9 {}\"}}",
                        "x".repeat(i as usize)
                    ),
                ])
                .unwrap();
        }
        drop(insert_event);
        // Rowids with a gap, as deletes leave them.
        conn.execute("DELETE FROM events WHERE event_id = 'old-100'", [])
            .unwrap();
        // A row the CHECK would refuse (another tool wrote it; the read side returns it as
        // text): the rebuild keeps it too.
        conn.pragma_update(None, "ignore_check_constraints", true)
            .unwrap();
        conn.execute(
            "UPDATE events SET data = '{\"unterminated' WHERE event_id = 'old-200'",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "ignore_check_constraints", false)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO exceptions (event_id, trace_id, organization, application, environment,
                 timestamp_ms, exception_class, message, file, line, code, fingerprint, trace,
                 source_code, breadcrumbs, severity, handled, user_id, url, method)
             VALUES ('old-000', 't-old', 'acme', 'shop', 'production', 1, 'E', 'm', 'f.php', 3,
                 NULL, 'fp', '[]', NULL, '[]', 'error', 0, NULL, NULL, 'GET'),
                    ('old-001', 't-old', 'globex', 'shop', 'production', 2, 'E', 'm2', 'f.php',
                 4, '500', 'fp', '[]', 'src', NULL, 'error', 1, 'u', 'https://x', NULL);
             INSERT INTO exception_groups VALUES ('acme', 'shop', 'fp', 'E', 1, 1, 1, 'm'),
                                                 ('globex', 'shop', 'fp', 'E', 2, 2, 1, 'm2');
             INSERT INTO malformed_events (id, lsn, received_ms, organization, application,
                 batch_id, idx, type, event_id, codes, reasons, raw, raw_size)
             VALUES ('b-old-9', 1, 1, 'acme', 'shop', 'b-old', 9, 'log', 'bad', 'wrong_type',
                 '[]', X'7B7D', 2);
             INSERT INTO malformed_reasons VALUES ('wrong_type', 'b-old-9');
             INSERT INTO ingest_traces VALUES ('b-old', 1, 1, 'acme', 'shop', 'accepted', 10,
                 '[]', 1, 2, 300, 300, 0, 0);",
        )
        .unwrap();
        let before: Vec<Vec<Vec<Value>>> = tables.iter().map(|t| dump(&conn, t)).collect();
        (before, indexes(&conn))
    };
    assert_eq!(before[0].len(), 299);
    assert!(indexes_before
        .iter()
        .any(|(name, _)| name == "sqlite_autoindex_events_1"));

    let store = SqliteStore::open(&path).unwrap();
    let conn = peek(&store);
    for (table, rows) in tables.iter().zip(&before) {
        assert_eq!(&dump(&conn, table), rows, "{table}: every row, as it was");
    }
    // The same named indexes, the same definitions; the column UNIQUE (an automatic index)
    // is replaced by the tenant-scoped unique indexes.
    let indexes_after = indexes(&conn);
    let named = |list: &[(String, Option<String>)]| -> Vec<(String, Option<String>)> {
        list.iter()
            .filter(|(name, _)| !name.starts_with("sqlite_autoindex"))
            .cloned()
            .collect()
    };
    // V6 then narrows the two time indexes to the time (the rowid orders a millisecond).
    let mut expected: Vec<(String, Option<String>)> = named(&indexes_before)
        .into_iter()
        .map(|(name, sql)| match name.as_str() {
            "events_type_time" => (
                name,
                Some("CREATE INDEX events_type_time ON events (type, timestamp_ms)".into()),
            ),
            "events_time" => (
                name,
                Some("CREATE INDEX events_time ON events (timestamp_ms)".into()),
            ),
            _ => (name, sql),
        })
        .collect();
    expected.push((
        "events_id".into(),
        Some(
            "CREATE UNIQUE INDEX events_id ON events (event_id, organization, application)".into(),
        ),
    ));
    expected.push((
        "exceptions_id".into(),
        Some(
            "CREATE UNIQUE INDEX exceptions_id ON exceptions (event_id, organization, application)"
                .into(),
        ),
    ));
    expected.sort();
    assert_eq!(indexes_after, expected);
    // Tables and indexes agree; the one finding is the row planted against the CHECK.
    let findings: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(findings, ["CHECK constraint failed in events"]);
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);

    // The migrated file now keys events by tenant: old-000 was acme's; globex may store it too,
    // acme not again.
    let before_writes = count(&store, "events");
    let copy = |organization: &str| SinkBatch {
        events: vec![of_event(organization, event("old-000", "request", T0))],
        ..batch(10, 10)
    };
    store.write_arc(copy("acme")).await.unwrap();
    assert_eq!(count(&store, "events"), before_writes);
    store.write_arc(copy("globex")).await.unwrap();
    assert_eq!(count(&store, "events"), before_writes + 1);
    assert_eq!(
        store
            .get_event(EventLookup::id("old-000"))
            .await
            .unwrap()
            .len(),
        2
    );
}

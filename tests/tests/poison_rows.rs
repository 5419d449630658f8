//! Poison rows (issue 15): the real batcher, over a real spool, against both stores — the
//! embedded SQLite store (refusing through triggers) and ClickHouse on chDB (refusing through
//! table constraints, as a DBA might add). A refused row of each kind (event, span, quarantine,
//! pipeline trace; spans on ClickHouse only, since SQLite derives them at read and writes none)
//! is blamed alone, every innocent row of its range is stored once, and the batcher moves on
//! instead of retrying forever.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use baddybugs_common::{Problem, ReasonCode};
use baddybugs_fixtures::{valid_fixtures, Shape};
use baddybugs_ingest::batch::{build_batch, Batcher, RecordRef, CHECKPOINT};
use baddybugs_ingest::config::{BatchConfig, ClickHouseConfig, FeedConfig};
use baddybugs_ingest::metrics::Metrics;
use baddybugs_ingest::record::{self, BatchMeta, Quarantined};
use baddybugs_ingest::sink::clickhouse::ClickHouseStore;
use baddybugs_ingest::sink::sqlite::SqliteStore;
use baddybugs_ingest::sink::{
    EventFilter, MalformedFilter, SinkBatch, SpanRows, Store, Table, TraceFilter,
};
use baddybugs_ingest::spool::{Spool, SpoolConfig};
use baddybugs_tests::clickhouse::ClickHouseFront;
use baddybugs_tests::spool::wait_stored_up_to;

/// The rows the stores will refuse, by their identity.
struct Poison {
    event_id: String,
    /// (event id, span kind, span id).
    span: (String, String, u32),
    malformed_id: String,
    trace_batch_id: String,
}

fn meta(batch_id: &str, total: u32, quarantined: Vec<Quarantined>) -> BatchMeta {
    BatchMeta {
        batch_id: batch_id.to_owned(),
        received_ms: chrono::Utc::now().timestamp_millis(),
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        remote_addr: None,
        agent_version: Some("1.4.2".to_owned()),
        bytes_compressed: 0,
        bytes_inflated: 0,
        total_events: total,
        duplicates: 0,
        quarantined,
        stages: Vec::new(),
    }
}

fn encode(batch_id: &str, texts: &[String], quarantined: &[(&str, &[u8])]) -> Vec<u8> {
    let events: Vec<(u32, &[u8])> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i as u32, t.as_bytes()))
        .collect();
    let entries = quarantined
        .iter()
        .enumerate()
        .map(|(i, (id, raw))| Quarantined {
            index: Some((texts.len() + i) as u32),
            event_type: Some("log".to_owned()),
            event_id: Some((*id).to_owned()),
            reasons: vec![Problem::new(
                ReasonCode::WrongType,
                "/payload/level",
                "a string",
                "42",
            )],
            raw_size: raw.len() as u64,
        })
        .collect();
    let raws: Vec<&[u8]> = quarantined.iter().map(|(_, raw)| *raw).collect();
    record::encode(
        &meta(batch_id, (texts.len() + raws.len()) as u32, entries),
        &events,
        &raws,
    )
}

fn built(records: &[(u64, Vec<u8>)]) -> SinkBatch {
    let refs: Vec<RecordRef<'_>> = records
        .iter()
        .map(|(lsn, payload)| RecordRef {
            lsn: *lsn,
            payload,
            appended_ms: 0,
            durable_ms: 0,
        })
        .collect();
    build_batch(&refs, SpanRows::Written, |_, _| true).0
}

/// Four records: the first three make one batch with a refused span, quarantine row and trace
/// (so on ClickHouse the events land before the refusal); the fourth, stored after them, has
/// a refused event.
fn records() -> (Vec<(u64, Vec<u8>)>, Poison) {
    let fixtures: Vec<String> = valid_fixtures()
        .into_iter()
        .filter(|f| f.shape == Shape::Agent)
        .map(|f| f.text)
        .collect();
    let with_spans = |text: &String| {
        !built(&[(1, encode("x", std::slice::from_ref(text), &[]))])
            .spans
            .is_empty()
    };
    let (spanned, plain): (Vec<String>, Vec<String>) =
        fixtures.into_iter().partition(|t| with_spans(t));
    assert!(spanned.len() >= 2 && plain.len() >= 16, "enough fixtures");
    let bad_log: &[u8] = br#"{"type":"log","name":"x","payload":{"level":42}}"#;
    let records = vec![
        (
            1,
            encode("0190f1f1-0000-7000-8000-000000000001", &spanned[..2], &[]),
        ),
        (
            2,
            encode(
                "0190f1f1-0000-7000-8000-000000000002",
                &plain[10..13],
                &[
                    ("innocent-quarantine", bad_log),
                    ("poison-quarantine", bad_log),
                ],
            ),
        ),
        (
            3,
            encode("0190f1f1-0000-7000-8000-000000000003", &plain[13..16], &[]),
        ),
        (
            4,
            encode("0190f1f1-0000-7000-8000-000000000004", &plain[..10], &[]),
        ),
    ];
    let spans = built(&records[..1]).spans;
    let span = &spans[spans.len() / 2];
    let last = built(&records[3..]);
    let poison = Poison {
        event_id: last.events[4].event_id.clone(),
        span: (
            span.event_id.to_string(),
            span.span.kind.as_str().to_owned(),
            span.span.span_id,
        ),
        malformed_id: "0190f1f1-0000-7000-8000-000000000002-4".to_owned(),
        trace_batch_id: "0190f1f1-0000-7000-8000-000000000003".to_owned(),
    };
    (records, poison)
}

/// A store that refuses the poison rows, and a way to count rows behind its API.
enum Target {
    Sqlite {
        store: Arc<dyn Store>,
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    ClickHouse {
        store: Arc<dyn Store>,
        front: ClickHouseFront,
        db: String,
    },
}

impl Target {
    async fn sqlite(poison: &Poison) -> anyhow::Result<Target> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("store.sqlite");
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path)?);
        let conn = rusqlite::Connection::open(&path)?;
        // No span trigger: SQLite stores no span rows (schema V7), it derives the waterfall
        // from the stored events.
        conn.execute_batch(&format!(
            "CREATE TRIGGER poison_event BEFORE INSERT ON events WHEN NEW.event_id = '{}'
                 BEGIN SELECT RAISE(ABORT, 'poison event'); END;
             CREATE TRIGGER poison_quarantine BEFORE INSERT ON malformed_events WHEN NEW.id = '{}'
                 BEGIN SELECT RAISE(ABORT, 'poison quarantine row'); END;
             CREATE TRIGGER poison_trace BEFORE INSERT ON ingest_traces WHEN NEW.batch_id = '{}'
                 BEGIN SELECT RAISE(ABORT, 'poison trace'); END;",
            poison.event_id, poison.malformed_id, poison.trace_batch_id
        ))?;
        Ok(Target::Sqlite {
            store,
            path,
            _dir: dir,
        })
    }

    async fn clickhouse(poison: &Poison) -> anyhow::Result<Target> {
        let front = ClickHouseFront::start().await?;
        let db = front.fresh_database("poison").await?;
        let config = ClickHouseConfig {
            url: Some(front.url()),
            database: db.clone(),
            ..ClickHouseConfig::default()
        };
        let store: Arc<dyn Store> = ClickHouseStore::connect(&config).await?;
        let (span_event, kind, span_id) = &poison.span;
        for (table, check) in [
            ("events", format!("event_id != '{}'", poison.event_id)),
            (
                "lifecycle_spans",
                format!(
                    "NOT (event_id = '{span_event}' AND kind = '{kind}' AND span_id = {span_id})"
                ),
            ),
            (
                "malformed_events",
                format!("id != '{}'", poison.malformed_id),
            ),
            (
                "ingest_traces",
                format!("batch_id != '{}'", poison.trace_batch_id),
            ),
        ] {
            front
                .query_text(&format!(
                    "ALTER TABLE `{db}`.{table} ADD CONSTRAINT poison CHECK {check}"
                ))
                .await?;
        }
        Ok(Target::ClickHouse { store, front, db })
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite { store, .. } | Target::ClickHouse { store, .. } => store.clone(),
        }
    }

    /// Rows of a table, duplicates included.
    async fn count(&self, table: &str) -> anyhow::Result<u64> {
        match self {
            Target::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path)?;
                Ok(
                    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                        r.get::<_, i64>(0)
                    })? as u64,
                )
            }
            Target::ClickHouse { front, db, .. } => Ok(front
                .query_text(&format!("SELECT count() FROM `{db}`.{table}"))
                .await?
                .trim()
                .parse()?),
        }
    }
}

/// Runs the batcher over `records` appended in two steps (the first three, then the fourth),
/// and checks what `target` holds.
async fn poison_rows_are_isolated(name: &str, target: Target) -> anyhow::Result<()> {
    let (records, poison) = records();
    let expected = built(&records);
    let dir = tempfile::tempdir()?;
    let (spool, _) = Spool::open(SpoolConfig::new(dir.path().to_owned(), &[CHECKPOINT]))?;
    let metrics = Arc::new(Metrics::new("poison".to_owned()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let batcher = tokio::spawn(
        Batcher {
            spool: spool.clone(),
            store: target.store(),
            metrics: metrics.clone(),
            config: BatchConfig {
                flush_interval_ms: 50,
                retry_initial_ms: 10,
                retry_max_ms: 100,
                ..BatchConfig::default()
            },
            feed: FeedConfig {
                trace_sample_one_in: 1,
                ..FeedConfig::default()
            },
            shutdown,
            on_traces: None,
        }
        .run(),
    );
    spool
        .append(records[..3].iter().map(|(_, r)| r.clone()).collect())
        .await?;
    wait_stored_up_to(
        &spool,
        3,
        Duration::from_secs(60),
        &format!("{name}: records 1-3 stored despite a refused span, quarantine row and trace"),
    )
    .await?;
    spool.append(vec![records[3].1.clone()]).await?;
    wait_stored_up_to(
        &spool,
        4,
        Duration::from_secs(60),
        &format!("{name}: record 4 stored despite a refused event"),
    )
    .await?;
    stop.send(true)?;
    batcher.await?;

    let store = target.store();
    // Every event but the refused one, once.
    let events = store
        .query_events(EventFilter {
            limit: Some(1000),
            ..EventFilter::default()
        })
        .await?
        .events;
    let ids: HashSet<String> = events.iter().map(|e| e.id.clone()).collect();
    let want: HashSet<String> = expected
        .events
        .iter()
        .map(|e| e.event_id.clone())
        .filter(|id| *id != poison.event_id)
        .collect();
    assert_eq!(
        ids, want,
        "{name}: the innocent events, not the refused one"
    );
    assert_eq!(
        target.count("events").await?,
        want.len() as u64,
        "{name}: each once"
    );
    // Every span but the refused one, once (the refused event had none). SQLite refuses no
    // span (it writes none): its waterfall shows every span of the stored events.
    match &target {
        Target::ClickHouse { .. } => assert_eq!(
            target.count("lifecycle_spans").await?,
            expected.spans.len() as u64 - 1,
            "{name}: spans"
        ),
        Target::Sqlite { .. } => {
            let mut traces: Vec<&str> = expected.spans.iter().map(|s| &*s.trace_id).collect();
            traces.sort_unstable();
            traces.dedup();
            let mut shown = 0;
            for trace in traces {
                shown += store.trace_spans(trace.to_owned()).await?.len();
            }
            assert_eq!(shown, expected.spans.len(), "{name}: spans");
        }
    }
    // The quarantine: the innocent row, and the refused event as sink_rejected.
    let quarantine = store.query_malformed(MalformedFilter::default()).await?;
    let mut quarantined: Vec<(String, Vec<String>)> = quarantine
        .iter()
        .map(|m| (m.id.clone(), m.codes.clone()))
        .collect();
    quarantined.sort();
    assert_eq!(
        quarantined,
        vec![
            (
                "0190f1f1-0000-7000-8000-000000000002-3".to_owned(),
                vec!["wrong_type".to_owned()]
            ),
            (
                "0190f1f1-0000-7000-8000-000000000004-4-sink".to_owned(),
                vec!["sink_rejected".to_owned()]
            ),
        ],
        "{name}"
    );
    let sink_rejected = quarantine
        .iter()
        .find(|m| m.id.ends_with("-sink"))
        .expect("the refused event");
    assert_eq!(
        sink_rejected.event_id.as_deref(),
        Some(poison.event_id.as_str())
    );
    // Every pipeline trace but the refused one.
    let traces: HashSet<String> = store
        .query_traces(TraceFilter {
            limit: Some(500),
            ..TraceFilter::default()
        })
        .await?
        .into_iter()
        .map(|t| t.batch_id)
        .collect();
    let want: HashSet<String> = (1..=4)
        .filter(|n| *n != 3)
        .map(|n| format!("0190f1f1-0000-7000-8000-00000000000{n}"))
        .collect();
    assert_eq!(traces, want, "{name}: traces");
    // The dropped rows are counted, each once; refusals are not retried as write failures.
    let spans_dropped = match target {
        Target::ClickHouse { .. } => 1,
        Target::Sqlite { .. } => 0,
    };
    for (table, dropped) in [
        (Table::Events, 0),
        (Table::Spans, spans_dropped),
        (Table::Exceptions, 0),
        (Table::Malformed, 1),
        (Table::Traces, 1),
    ] {
        assert_eq!(
            metrics.sink_dropped_rows(table),
            dropped,
            "{name}: dropped {}",
            table.as_str()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_refused_row_of_each_kind_is_isolated_on_sqlite() -> anyhow::Result<()> {
    let (_, poison) = records();
    poison_rows_are_isolated("sqlite", Target::sqlite(&poison).await?).await
}

#[tokio::test]
async fn a_refused_row_of_each_kind_is_isolated_on_clickhouse() -> anyhow::Result<()> {
    let (_, poison) = records();
    poison_rows_are_isolated("clickhouse", Target::clickhouse(&poison).await?).await
}

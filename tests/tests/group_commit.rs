//! Group commit: the real batcher over a real spool into the embedded store. While the store is
//! behind (the next batch is built before the last one is in), the writer puts several batches
//! in one transaction and one spool checkpoint; once it has caught up, each batch commits alone.
//! A group that fails is taken back whole, and its batches are written again from the spool:
//! nothing lost, nothing doubled, a refused row still isolated alone.
//!
//! The store is made to be behind by holding its write lock from another connection (as an
//! operator's `sqlite3` shell would) until the batcher has a second batch built and waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baddybugs_fixtures::{valid_fixtures, Shape};
use baddybugs_ingest::batch::{Batcher, CHECKPOINT};
use baddybugs_ingest::config::{BatchConfig, FeedConfig};
use baddybugs_ingest::metrics::Metrics;
use baddybugs_ingest::record::{self, BatchMeta};
use baddybugs_ingest::sink::sqlite::SqliteStore;
use baddybugs_ingest::sink::{MalformedFilter, Store};
use baddybugs_ingest::spool::{Spool, SpoolConfig};
use baddybugs_tests::spool::wait_stored_up_to;
use rusqlite::Connection;

const PER_RECORD: usize = 5;

/// One spool record of `PER_RECORD` agent events with ids `r{n}-{i}`.
fn record(n: usize, text: &str) -> Vec<u8> {
    let texts: Vec<String> = (0..PER_RECORD)
        .map(|i| {
            let mut event: serde_json::Value = serde_json::from_str(text).unwrap();
            event["id"] = format!("r{n:04}-{i}").into();
            event.to_string()
        })
        .collect();
    let events: Vec<(u32, &[u8])> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i as u32, t.as_bytes()))
        .collect();
    let meta = BatchMeta {
        batch_id: format!("0190f1f1-0000-7000-8000-{n:012}"),
        received_ms: chrono::Utc::now().timestamp_millis(),
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        remote_addr: None,
        agent_version: None,
        bytes_compressed: 0,
        bytes_inflated: 0,
        total_events: PER_RECORD as u32,
        duplicates: 0,
        quarantined: Vec::new(),
        stages: Vec::new(),
    };
    record::encode(&meta, &events, &[])
}

fn agent_event() -> String {
    valid_fixtures()
        .into_iter()
        .find(|f| f.shape == Shape::Agent)
        .expect("an agent fixture")
        .text
}

struct Setup {
    _dir: tempfile::TempDir,
    spool: Spool,
    store: Arc<SqliteStore>,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Sender<bool>,
    batcher: tokio::task::JoinHandle<()>,
}

/// A backlog of `records` records in the spool while the store's write lock is held elsewhere;
/// the batcher starts, and the lock is released once a second batch is built and waiting.
async fn behind(records: usize, poison: Option<&str>) -> Setup {
    let text = agent_event();
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) =
        Spool::open(SpoolConfig::new(dir.path().join("spool"), &[CHECKPOINT])).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
    if let Some(id) = poison {
        Connection::open(store.path())
            .unwrap()
            .execute_batch(&format!(
                "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_id = '{id}'
                 BEGIN SELECT RAISE(ABORT, 'poison row'); END;"
            ))
            .unwrap();
    }
    let metrics = Arc::new(Metrics::new("group".to_owned()));
    let backlog: Vec<Vec<u8>> = (1..=records).map(|n| record(n, &text)).collect();
    spool.append(backlog).await.unwrap();

    let lock = Connection::open(store.path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let batcher = tokio::spawn(
        Batcher {
            spool: spool.clone(),
            store: store.clone() as Arc<dyn Store>,
            metrics: metrics.clone(),
            config: BatchConfig {
                max_events: 10,
                // Batch 1 (50 events) and batch 2 (10) fill a group.
                group_max_events: 60,
                // Every batch here is cut by its size; this only bounds the last read's wait
                // at shutdown.
                flush_interval_ms: 500,
                priority_flush_ms: 500,
                retry_initial_ms: 10,
                retry_max_ms: 100,
                ..BatchConfig::default()
            },
            feed: FeedConfig::default(),
            shutdown,
            on_traces: None,
        }
        .run(),
    );
    // Batch 1 waits on the lock: 50 events (the read loop asks for `max_events` records before
    // it knows how many events a record holds). Batch 2 (10) is built and waits in the channel
    // once the read loop holds batch 3's records (10): 70 events held by the batcher.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.gauges.batcher_events.load(Ordering::SeqCst) < 70 {
        assert!(Instant::now() < deadline, "the batcher never got ahead");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lock.execute_batch("ROLLBACK").unwrap();
    Setup {
        _dir: dir,
        spool,
        store,
        metrics,
        stop,
        batcher,
    }
}

fn stored_ids(store: &SqliteStore) -> Vec<String> {
    let conn = Connection::open(store.path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT event_id FROM events ORDER BY event_id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn all_ids(records: usize) -> Vec<String> {
    (1..=records)
        .flat_map(|n| (0..PER_RECORD).map(move |i| format!("r{n:04}-{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_behind_commits_batches_in_groups_and_each_alone_once_caught_up() {
    let s = behind(40, None).await;
    wait_stored_up_to(&s.spool, 40, Duration::from_secs(60), "the backlog stored")
        .await
        .unwrap();
    let (batches, commits) = {
        let sink = s.metrics.gauges.sink.lock();
        (sink.written_batches, sink.commits)
    };
    assert_eq!(stored_ids(&s.store), all_ids(40), "every event once");
    assert_eq!(batches, 16, "200 events: 50, then batches of 10");
    assert!(
        commits < batches,
        "batch 2 waited while batch 1 was written: they share a commit ({commits} commits)"
    );
    assert!(
        commits >= 200_u64.div_ceil(60),
        "a group holds at most group_max_events = 60 events ({commits} commits)"
    );

    // Caught up: a batch at a time, each commits alone.
    let text = agent_event();
    for pair in 0..3usize {
        let lsn = 41 + 2 * pair;
        for n in lsn..lsn + 2 {
            s.spool.append(vec![record(n, &text)]).await.unwrap();
        }
        let what = "a batch stored while the store keeps up";
        wait_stored_up_to(&s.spool, lsn as u64 + 1, Duration::from_secs(5), what)
            .await
            .unwrap();
    }
    let sink = s.metrics.gauges.sink.lock().clone();
    assert_eq!(sink.written_batches - batches, 3);
    assert_eq!(sink.commits - commits, 3, "caught up, one commit per batch");
    assert_eq!(stored_ids(&s.store), all_ids(46));
    s.stop.send(true).unwrap();
    s.batcher.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_in_a_group_loses_and_doubles_nothing() {
    // Batch 2 (records 11 and 12) holds the poison row: it joins batch 1's group, the store
    // refuses it, the whole group is taken back, batch 1 is written again from the spool and
    // batch 2 alone, where its refused row is isolated.
    let poison = "r0011-2";
    let s = behind(16, Some(poison)).await;
    wait_stored_up_to(&s.spool, 16, Duration::from_secs(60), "the backlog stored")
        .await
        .unwrap();
    let mut want = all_ids(16);
    want.retain(|id| id != poison);
    assert_eq!(stored_ids(&s.store), want, "every other event, once");
    let quarantined = s
        .store
        .query_malformed(MalformedFilter::default())
        .await
        .unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].event_id.as_deref(), Some(poison));
    s.stop.send(true).unwrap();
    s.batcher.await.unwrap();
}

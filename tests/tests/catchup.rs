//! Catch-up batches: the real batcher over a real spool into the embedded store. While the store
//! is behind (another `batch.max_events` events wait in the spool past the batch being read), a
//! batch grows to `batch.catchup_max_events`; once it has caught up, batches go back to
//! `max_events`, so a steady load waits for no bigger batch than that.

use std::sync::Arc;
use std::time::Duration;

use baddybugs_fixtures::{valid_fixtures, Shape};
use baddybugs_ingest::batch::{Batcher, CHECKPOINT};
use baddybugs_ingest::config::{BatchConfig, FeedConfig};
use baddybugs_ingest::metrics::Metrics;
use baddybugs_ingest::record::{self, BatchMeta};
use baddybugs_ingest::sink::sqlite::SqliteStore;
use baddybugs_ingest::spool::{Spool, SpoolConfig};
use baddybugs_tests::spool::wait_stored_up_to;

const PER_RECORD: usize = 5;

/// One spool record of `PER_RECORD` agent events.
fn record(n: usize, text: &str) -> Vec<u8> {
    let texts = vec![text.to_owned(); PER_RECORD];
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

/// (written events, written batches) once the store's checkpoint reaches `lsn`.
async fn stored_up_to(
    spool: &Spool,
    metrics: &Metrics,
    lsn: u64,
    within: Duration,
    what: &str,
) -> (u64, u64) {
    wait_stored_up_to(spool, lsn, within, what).await.unwrap();
    let sink = metrics.gauges.sink.lock();
    (sink.written_events, sink.written_batches)
}

#[tokio::test]
async fn batches_grow_while_behind_and_shrink_once_caught_up() {
    let text = valid_fixtures()
        .into_iter()
        .find(|f| f.shape == Shape::Agent)
        .expect("an agent fixture")
        .text;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) =
        Spool::open(SpoolConfig::new(dir.path().join("spool"), &[CHECKPOINT])).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
    let metrics = Arc::new(Metrics::new("catchup".to_owned()));

    // A backlog before the batcher starts: 200 events, 40 records of 5.
    let backlog: Vec<Vec<u8>> = (1..=40).map(|n| record(n, &text)).collect();
    spool.append(backlog).await.unwrap();

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let batcher = tokio::spawn(
        Batcher {
            spool: spool.clone(),
            store,
            metrics: metrics.clone(),
            config: BatchConfig {
                max_events: 10,
                catchup_max_events: Some(40),
                // Batches are cut by their size here; their age (10 s) only ends the backlog's
                // last one, whose read waits for records that do not come.
                flush_interval_ms: 10_000,
                priority_flush_ms: 10_000,
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

    // Behind: batches of 40 while another 10 wait, then 10 (the last 40 events are 10, 10, 10,
    // 10 or a 40 cut early). Without catching up it would be 20 batches of 10.
    let (events, batches) = stored_up_to(
        &spool,
        &metrics,
        40,
        Duration::from_secs(60),
        "the backlog stored",
    )
    .await;
    assert_eq!(events, 200);
    assert!(
        (5..=10).contains(&batches),
        "200 events behind a store should go in batches of up to 40, not {batches} batches"
    );

    // Caught up: records arrive one at a time. Every batch is cut at max_events = 10 (two
    // records) at once; a batch waiting to grow to 40 would be cut only by its age, 10 s, which
    // is past the 5 s each pair gets here.
    for pair in 0..5u64 {
        let lsn = 41 + 2 * pair;
        for n in lsn..lsn + 2 {
            spool.append(vec![record(n as usize, &text)]).await.unwrap();
        }
        let what = "a steady pair of records stored by its count, not its age";
        stored_up_to(&spool, &metrics, lsn + 1, Duration::from_secs(5), what).await;
    }
    let sink = metrics.gauges.sink.lock().clone();
    assert_eq!(sink.written_events, 250);
    assert_eq!(
        sink.written_batches - batches,
        5,
        "caught up, each 10 events are one batch of max_events"
    );
    stop.send(true).unwrap();
    batcher.await.unwrap();
}

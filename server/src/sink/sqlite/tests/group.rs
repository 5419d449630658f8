//! Issue 18 (drain speed): group commit. A group is one transaction across batches: nothing of
//! it is visible before its commit, any failure takes all of it back, and the store's other
//! writes (a drift flush) wait for it instead of failing inside it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{batch, count, event, open, T0};
use crate::drift::DriftRow;
use crate::sink::{EventRow, SinkBatch, SinkError, Store};
use baddybugs_common::drift::DriftKind;

fn events(prefix: &str, n: i64) -> Vec<EventRow> {
    (0..n)
        .map(|i| event(&format!("{prefix}-{i:03}"), "request", T0 + i))
        .collect()
}

fn drift_row() -> DriftRow {
    DriftRow {
        event_type: "log".into(),
        path: "/payload/novel".into(),
        kind: DriftKind::UnknownField,
        count: 1,
        first_seen_ms: T0,
        last_seen_ms: T0,
        agent_versions: vec!["1.0.0".into()],
        applications: vec!["shop".into()],
        sample: "1".into(),
        example_event_id: None,
    }
}

#[tokio::test]
async fn a_group_is_one_commit_and_nothing_of_it_shows_before() {
    let (_dir, store) = open();
    let group = store.group_commit().expect("SQLite has group commit");
    for (n, prefix) in ["a", "b", "c"].into_iter().enumerate() {
        let n = n as u64 + 1;
        group
            .write_in_group(Arc::new(SinkBatch {
                events: events(prefix, 50),
                ..batch(n, n)
            }))
            .await
            .unwrap();
        assert_eq!(
            count(&store, "events"),
            0,
            "nothing shows before the commit"
        );
    }
    group.commit_group().await.unwrap();
    assert_eq!(count(&store, "events"), 150);
    // A commit with no group open has nothing to do.
    group.commit_group().await.unwrap();
    // And a standalone write after the group is its own transaction again.
    store
        .write(Arc::new(SinkBatch {
            events: events("d", 5),
            ..batch(4, 4)
        }))
        .await
        .unwrap();
    assert_eq!(count(&store, "events"), 155);
}

#[tokio::test]
async fn a_refusal_in_a_group_takes_the_whole_group_back() {
    let (_dir, store) = open();
    let group = store.group_commit().expect("SQLite has group commit");
    group
        .write_in_group(Arc::new(SinkBatch {
            events: events("good", 300),
            ..batch(1, 1)
        }))
        .await
        .unwrap();
    let mut bad = events("bad", 300);
    bad[7].data = "{\"method\":".to_owned();
    let refused = group
        .write_in_group(Arc::new(SinkBatch {
            events: bad,
            ..batch(2, 2)
        }))
        .await;
    assert!(
        matches!(refused, Err(SinkError::Rejected { .. })),
        "{refused:?}"
    );
    // Nothing is left open: committing now stores nothing, and the good batch is gone too (the
    // batcher writes it again from the spool).
    group.commit_group().await.unwrap();
    assert_eq!(count(&store, "events"), 0);
    group
        .write_in_group(Arc::new(SinkBatch {
            events: events("good", 300),
            ..batch(1, 1)
        }))
        .await
        .unwrap();
    group.commit_group().await.unwrap();
    assert_eq!(count(&store, "events"), 300);
}

/// A drift flush arriving while a group is open waits for its commit, then runs in its own
/// transaction; without the wait its `BEGIN` would fail inside the group's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_flush_waits_for_the_open_group() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let group = store.group_commit().expect("SQLite has group commit");
    group
        .write_in_group(Arc::new(SinkBatch {
            events: events("a", 20),
            ..batch(1, 1)
        }))
        .await
        .unwrap();
    let flush = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.write_drift(vec![drift_row()]).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.inner.standalone_waiting.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the drift flush never reached the writer"
        );
        tokio::task::yield_now().await;
    }
    assert!(!flush.is_finished(), "the flush must wait for the group");
    group.commit_group().await.unwrap();
    flush.await.unwrap().unwrap();
    assert_eq!(count(&store, "events"), 20);
    assert_eq!(count(&store, "schema_drift"), 1);
    // The next group opens once the flush has passed.
    group
        .write_in_group(Arc::new(SinkBatch {
            events: events("b", 20),
            ..batch(2, 2)
        }))
        .await
        .unwrap();
    group.commit_group().await.unwrap();
    assert_eq!(count(&store, "events"), 40);
}

//! A load that records what was acknowledged, and the exactly-once check of what got stored:
//! the durability drills' common parts (embedded store and ClickHouse alike).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::server::{batch_body, count_events, wait_for, TestServer, API_KEY};

/// Posts batches of 20 `cache` events under `trace` until `stop` is set, recording the id of
/// every event that got a 202 in `acked` and the count of each status in `statuses`. Ids are
/// unique per (worker, batch).
pub async fn load(
    client: reqwest::Client,
    url: String,
    trace: &'static str,
    worker: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    statuses: Arc<Mutex<HashMap<u16, u64>>>,
) {
    let mut batch = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let ids: Vec<String> = (0..20)
            .map(|i| format!("{worker:02x}{batch:06x}-0000-4000-8000-{i:012}"))
            .collect();
        let events = cache_events(&ids, trace);
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        batch += 1;
        let response = client
            .post(&url)
            .header("Authorization", format!("Bearer {API_KEY}"))
            .timeout(Duration::from_secs(10))
            .body(batch_body(&refs))
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                *statuses.lock().await.entry(status).or_default() += 1;
                if status == 202 {
                    acked.lock().await.extend(ids);
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Waits until every acknowledged event of `trace` is stored (60 s at most), then fails if any
/// is stored twice.
pub async fn assert_stored_exactly_once(
    client: &reqwest::Client,
    server: &TestServer,
    trace: &str,
    acked: &[String],
) -> anyhow::Result<()> {
    let wanted: HashSet<&String> = acked.iter().collect();
    assert_eq!(wanted.len(), acked.len(), "the loader never reuses ids");
    let stored = wait_for(
        Duration::from_secs(60),
        "every acknowledged event stored",
        || async {
            let ids = count_events(client, server, &format!("trace_id={trace}"))
                .await
                .ok()?;
            let present: HashSet<&String> = ids.iter().collect();
            wanted.iter().all(|id| present.contains(*id)).then_some(ids)
        },
    )
    .await?;
    let mut seen = HashSet::new();
    let doubled: Vec<&String> = stored.iter().filter(|id| !seen.insert(*id)).collect();
    assert!(doubled.is_empty(), "events stored twice: {doubled:?}");
    Ok(())
}

/// One `cache` event of `trace` per id, as the agent sends them (the drills count them by id).
pub fn cache_events(ids: &[String], trace: &str) -> Vec<String> {
    ids.iter()
        .map(|id| format!(r#"{{"id":"{id}","trace_id":"{trace}","env":"production","type":"cache","name":"k:{id}","payload":{{"action":"miss","store":"redis","tags":[]}},"timestamp":1749567234.25}}"#))
        .collect()
}

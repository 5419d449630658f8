//! Every memory consumer is shown with its configured bound (issue 18): `/v1/stats`
//! `buffers.memory` lists each consumer with a limit derived from the configuration, a changed
//! configuration value shows up there and on `/metrics`, and the allocator's figures come from
//! jemalloc in the real binary.

use std::time::Duration;

use baddybugs_tests::load::cache_events;
use baddybugs_tests::server::{
    batch_body, get_json, metrics_text, post_as_agent, wait_for, ServerOptions, TestServer,
};
use serde_json::Value;

/// Every consumer the server reports on the embedded store, in its order.
const CONSUMERS: [&str; 7] = [
    "bodies_in_flight",
    "batcher",
    "dedup_exact",
    "dedup_filter",
    "signature_cache",
    "feed",
    "sqlite_page_cache",
];

/// Waits for a stats snapshot with the memory breakdown (the metrics ticker fills it each
/// second) and returns `buffers.memory`.
async fn memory(client: &reqwest::Client, server: &TestServer) -> Value {
    wait_for(Duration::from_secs(20), "buffers.memory", || async {
        let (status, stats) = get_json(client, server, "/v1/stats").await.ok()?;
        let memory = &stats["buffers"]["memory"];
        (status == 200
            && memory["consumers"]
                .as_array()
                .is_some_and(|c| !c.is_empty()))
        .then(|| memory.clone())
    })
    .await
    .unwrap()
}

fn consumer<'a>(memory: &'a Value, name: &str) -> &'a Value {
    memory["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no consumer {name} in {memory}"))
}

fn limit(memory: &Value, name: &str) -> u64 {
    consumer(memory, name)["limit_bytes"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn stats_show_each_consumer_with_its_configured_bound() {
    let server = TestServer::start().unwrap();
    let client = reqwest::Client::new();
    let events = cache_events(&["mem-1".to_owned()], "mem-trace");
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs))
        .await
        .unwrap();
    assert_eq!(status, 202, "{body}");
    let memory = memory(&client, &server).await;
    let names: Vec<&str> = memory["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, CONSUMERS, "{memory}");
    for c in memory["consumers"].as_array().unwrap() {
        assert!(c["config"].as_str().is_some_and(|k| !k.is_empty()), "{c}");
        // The feed is bounded in messages, not bytes; every other bound is in bytes.
        if c["name"] != "feed" {
            assert!(c["limit_bytes"].as_u64().unwrap_or(0) > 0, "{c}");
        }
    }
    // The default of ingest.max_body_bytes_in_flight.
    assert_eq!(
        limit(&memory, "bodies_in_flight"),
        512 << 20,
        "ingest.max_body_bytes_in_flight: {memory}"
    );
    // The dedup window remembers the accepted id (seen at the next tick of the ticker).
    wait_for(Duration::from_secs(20), "dedup_exact bytes > 0", || async {
        let (_, stats) = get_json(&client, &server, "/v1/stats").await.ok()?;
        (consumer(&stats["buffers"]["memory"], "dedup_exact")["bytes"]
            .as_u64()
            .unwrap_or(0)
            > 0)
        .then_some(())
    })
    .await
    .unwrap();
    // The batcher: the records of the batch being read (batch.max_bytes, SQLite's 4 MiB, plus
    // the record that crossed it: at most ingest.max_inflated_bytes, 64 MiB) and the rows of two
    // built batches, each at most twice its records plus 1 KiB per event (batch.max_events,
    // 5,000). Group commit adds none: a batch's rows go once they are in the transaction.
    let records: u64 = (4 << 20) + (64 << 20);
    assert_eq!(
        limit(&memory, "batcher"),
        records + 2 * (2 * records + 5_000 * 1024),
        "batch.max_bytes, batch.max_events and ingest.max_inflated_bytes: {memory}"
    );
    // Once the event is stored the batcher holds nothing: what it counted (the record, then
    // the built rows) is all given back.
    wait_for(
        Duration::from_secs(20),
        "the batcher empty after the write",
        || async {
            let (_, stats) = get_json(&client, &server, "/v1/stats").await.ok()?;
            let written = stats["sink"]["written_events"].as_u64().unwrap_or(0);
            let held = consumer(&stats["buffers"]["memory"], "batcher")["bytes"].as_u64();
            (written >= 1 && held == Some(0)).then_some(())
        },
    )
    .await
    .unwrap();
    let allocator = &memory["allocator"];
    let allocated = allocator["allocated"].as_u64().unwrap_or(0);
    assert!(allocated > 0, "jemalloc statistics: {memory}");
    assert!(
        allocator["resident"].as_u64().unwrap_or(0) >= allocator["active"].as_u64().unwrap_or(0)
            && allocator["active"].as_u64().unwrap_or(0) >= allocated,
        "allocated ≤ active ≤ resident: {allocator}"
    );
    // jemalloc's arenas, read from it: four per CPU (its default, which the build keeps; one
    // on a single CPU; the CPUs jemalloc counts depend on the affinity mask), plus the one for
    // huge allocations.
    let arenas = allocator["arenas"].as_u64().unwrap_or(0);
    assert!(
        arenas == 2 || (arenas >= 9 && arenas % 4 == 1),
        "four arenas per CPU (one on a single CPU) plus one: {allocator}"
    );
    // The server's threads (a dozen and more after a write: HTTP workers, both pools, the
    // spool writer, the feed and checkpoint threads) allocate from one arena per CPU
    // (server/src/arenas.rs); the one more is the log writer's thread, which tracing-appender
    // starts. Without the binding, jemalloc spreads them over its four arenas per CPU.
    // A thread that is starting (a blocking-pool thread, a JSON check thread) may be counted on
    // the arena jemalloc gave it before it binds itself, so a busy machine can catch one in
    // passing: the count must come back within the bound, not hold it at every instant.
    // Without the binding it never does (8 on two CPUs).
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let settled = wait_for(
        Duration::from_secs(10),
        "arenas in use within the bound",
        || {
            let (client, server) = (&client, &server);
            async move {
                let now = self::memory(client, server).await;
                let in_use = now["allocator"]["arenas_in_use"].as_u64().unwrap_or(0);
                (1..=cpus + 1).contains(&in_use).then_some(in_use)
            }
        },
    )
    .await;
    if settled.is_err() {
        let now = self::memory(&client, &server).await;
        panic!(
            "threads over one arena per CPU ({cpus}), plus the log writer's, for 10 s: {}",
            now["allocator"]
        );
    }
}

#[tokio::test]
async fn a_changed_bound_shows_in_stats_and_metrics() {
    let defaults = TestServer::start().unwrap();
    let changed = TestServer::start_with(ServerOptions {
        config_toml: Some(
            "[sqlite]\ncache_bytes = 8388608\nread_cache_bytes = 1048576\n\n[ingest]\ndedup_max_ids = 1000\n"
                .into(),
        ),
        ..Default::default()
    })
    .unwrap();
    let client = reqwest::Client::new();
    let before = memory(&client, &defaults).await;
    let after = memory(&client, &changed).await;
    // 8 MiB for the writer, 1 MiB for each of the two read connections.
    assert_eq!(
        limit(&after, "sqlite_page_cache"),
        (8 << 20) + 2 * (1 << 20)
    );
    assert_ne!(
        limit(&before, "sqlite_page_cache"),
        limit(&after, "sqlite_page_cache")
    );
    assert!(
        limit(&after, "dedup_exact") < limit(&before, "dedup_exact"),
        "ingest.dedup_max_ids 1000: {after} vs {before}"
    );
    let text = metrics_text(&client, &changed).await.unwrap();
    // Gauges are exposed as floats (`10485760.0`).
    let prefix = "baddybugs_ingest_memory_consumer_limit_bytes{consumer=\"sqlite_page_cache\"} ";
    let sample = format!("{prefix}{}", (8 << 20) + 2 * (1 << 20));
    assert!(
        text.lines().any(
            |l| l.strip_prefix(prefix).and_then(|v| v.parse::<f64>().ok())
                == Some(f64::from((8 << 20) + 2 * (1 << 20)))
        ),
        "{sample} not in /metrics:\n{text}"
    );
    assert!(
        text.contains("baddybugs_ingest_allocator_bytes{stat=\"resident\"}"),
        "{text}"
    );
}

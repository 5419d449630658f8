//! Issue 19: a fleet. Three real ingest nodes (each its own data directory and spool) store into
//! one ClickHouse database (the real engine: chDB behind `tests/clickhouse/chfront.py`, or
//! `CLICKHOUSE_URL`). The load generator sends realistic agent traffic to all of them
//! round-robin and retries a failed batch on the next node, as agents behind a load balancer
//! would; one node is killed with `kill -9` mid-run and restarted. Every acknowledged event must
//! be readable exactly once through each node. And an agent retry that reached two nodes (both
//! stored it) is read once through either, and counted as an extra copy in each node's stats.

use std::time::Duration;

use baddybugs_loadgen::run::{run, AgentKey, RunOptions};
use baddybugs_loadgen::{Mix, TrafficConfig};
use baddybugs_tests::clickhouse::{server_on, server_on_with_env, ClickHouseFront};
use baddybugs_tests::server::{
    batch_body, count_events, get_json, post_as_agent, wait_for, wait_until_stored, TestServer,
    API_KEY, FEED_TOKEN, SECRET,
};

/// Events a node has received since it started (`/v1/stats` `totals.received`).
async fn received(client: &reqwest::Client, node: &TestServer) -> Option<u64> {
    let (status, stats) = get_json(client, node, "/v1/stats").await.ok()?;
    (status == 200).then(|| stats["totals"]["received"].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_a_node_killed_mid_run_stores_every_acknowledged_event_once(
) -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("fleet").await?;
    let mut nodes = vec![
        server_on(&front, &db, &[])?,
        server_on(&front, &db, &[])?,
        server_on(&front, &db, &[])?,
    ];
    let client = reqwest::Client::new();

    let options = RunOptions {
        urls: nodes.iter().map(|n| n.url("/v1/ingest")).collect(),
        keys: vec![AgentKey {
            key: API_KEY.into(),
            secret: SECRET.into(),
        }],
        rate: 1_500.0,
        duration: Some(Duration::from_secs(14)),
        events: None,
        concurrency: 6,
        traffic: TrafficConfig {
            seed: 19,
            mix: Mix::Realistic,
            malformed_ratio: 0.0,
            batch_size: 50,
        },
        drain_timeout: Duration::from_secs(60),
        max_retry_wait: Duration::from_secs(2),
        verify_token: Some(FEED_TOKEN.into()),
        verify_timeout: Duration::from_secs(120),
        ..RunOptions::default()
    };
    let load = tokio::spawn(run(options));

    // Node 1 dies under load, once it has taken a share of it.
    wait_for(Duration::from_secs(60), "node 1 under load", || async {
        (received(&client, &nodes[1]).await? >= 2_000).then_some(())
    })
    .await?;
    nodes[1].kill9();
    // The others carry on without it: they take the batches it can no longer answer.
    let before = received(&client, &nodes[0]).await.unwrap_or(0);
    wait_for(Duration::from_secs(60), "node 0 goes on", || async {
        (received(&client, &nodes[0]).await? >= before + 2_000).then_some(())
    })
    .await?;
    nodes[1].restart()?;
    wait_for(
        Duration::from_secs(60),
        "node 1 back in the rotation",
        || async { (received(&client, &nodes[1]).await? >= 500).then_some(()) },
    )
    .await?;

    let summary = load.await??;
    assert_eq!(
        summary.given_up, 0,
        "no batch given up: {:?}",
        summary.samples
    );
    assert_eq!(summary.unexpected, 0, "{:?}", summary.samples);
    assert!(
        summary.net_errors > 0 || summary.unavailable_503 > 0,
        "some batches met the dead node and went to another one"
    );
    let report = summary.verify.expect("verified");
    assert!(report.expected >= 10_000, "{report:?}");
    assert!(report.ok(), "{}", report.text());

    // Every node stores into ClickHouse and has nothing left to store.
    for node in &nodes {
        let (status, stats) = get_json(&client, node, "/v1/stats").await?;
        assert_eq!(status, 200);
        assert_eq!(stats["sink"]["kind"], "clickhouse", "{stats}");
        assert_eq!(stats["sink"]["lag_events"], 0, "{stats}");
    }
    let raw = front
        .query_text(&format!(
            "SELECT count() - uniqExact(organization, application, event_id) FROM `{db}`.events"
        ))
        .await?;
    // A batch the killed node had made durable but not answered is retried on another node
    // and stored by both: reads collapse such rows, and this is how many there were.
    eprintln!(
        "fleet: {} acknowledged, {} rows stored twice across nodes",
        report.expected,
        raw.trim()
    );
    Ok(())
}

/// Issue 19, item 3: the agent sent a batch to node A, which stored it and died before answering
/// (here: simply answered), and sent it again to node B, whose duplicate window never saw it.
/// Both nodes store it; `GET /v1/events` through either lists each event once, a lookup by id
/// finds one, and each node's `/v1/stats` counts the extra copies (`sink.store_copies`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_stored_by_two_nodes_is_read_once_and_counted_as_a_copy() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("fleet_copies").await?;
    let every_second = [("BADDYBUGS_CLICKHOUSE__COPIES_CHECK_SECS", "1")];
    let nodes = [
        server_on_with_env(&front, &db, &[], &every_second)?,
        server_on_with_env(&front, &db, &[], &every_second)?,
    ];
    let client = reqwest::Client::new();
    let events: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"id":"66666666-7777-4000-8000-{i:012}","type":"cache","name":"k{i}","payload":{{"action":"hit","store":"redis"}},"timestamp":1749567234.{i}}}"#))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let body = batch_body(&refs);
    for node in &nodes {
        let (status, answer) = post_as_agent(&client, node, &body).await?;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(
            answer["duplicates"], 0,
            "each node takes it as new: {answer}"
        );
        wait_until_stored(&client, node, Duration::from_secs(60)).await?;
    }
    for node in &nodes {
        let ids = count_events(&client, node, "type=cache").await?;
        assert_eq!(ids.len(), 5, "each event once: {ids:?}");
        let (status, found) = get_json(
            &client,
            node,
            "/v1/events/66666666-7777-4000-8000-000000000003",
        )
        .await?;
        assert_eq!(status, 200, "one event, not two: {found}");
        assert_eq!(
            found["id"], "66666666-7777-4000-8000-000000000003",
            "{found}"
        );
        let copies = wait_for(Duration::from_secs(30), "the copies counted", || async {
            let (_, stats) = get_json(&client, node, "/v1/stats").await.ok()?;
            let copies = &stats["sink"]["store_copies"];
            (copies["copies"].as_u64() == Some(5)).then(|| copies.clone())
        })
        .await?;
        assert_eq!(copies["window_secs"], 600, "{copies}");
        // The same count in /metrics, where an alert would read it.
        let metrics = baddybugs_tests::server::metrics_text(&client, node).await?;
        let exposed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("baddybugs_ingest_store_extra_copies "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert_eq!(exposed, Some(5.0), "store_extra_copies in /metrics");
    }
    Ok(())
}

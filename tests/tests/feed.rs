//! The live feed over a real WebSocket (tokio-tungstenite) against the real binary: hello,
//! subscriptions, exact per-type counts, the malformed tail, lifecycle waterfalls, pipeline
//! traces, query/get, auth, bad messages, slow clients, and histogram agreement.

use std::time::{Duration, Instant};

use baddybugs_tests::server::{
    batch_body, post_as_agent, wait_for, ServerOptions, TestServer, FEED_TOKEN,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn server() -> anyhow::Result<TestServer> {
    TestServer::start_with(ServerOptions {
        config_toml: Some("[feed]\ntrace_sample_one_in = 1\nclient_queue_messages = 64\nslow_client_timeout_ms = 60000\n[batch]\nflush_interval_ms = 100\n".into()),
        ..Default::default()
    })
}

async fn connect(server: &TestServer) -> anyhow::Result<Ws> {
    let (ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={FEED_TOKEN}", server.feed_url()))
            .await?;
    Ok(ws)
}

async fn send(ws: &mut Ws, message: Value) -> anyhow::Result<()> {
    ws.send(Message::Text(message.to_string())).await?;
    Ok(())
}

/// Reads messages until one satisfies `pick`, checking that sequence numbers have no gaps.
async fn next_matching(
    ws: &mut Ws,
    last_seq: &mut u64,
    timeout: Duration,
    mut pick: impl FnMut(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no matching feed message within {timeout:?}"))?
            .ok_or_else(|| anyhow::anyhow!("feed closed"))??;
        let Message::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(text.as_str())?;
        let seq = value["seq"].as_u64().unwrap_or(0);
        assert_eq!(
            seq,
            *last_seq + 1,
            "sequence numbers are contiguous: {value}"
        );
        *last_seq = seq;
        if pick(&value) {
            return Ok(value);
        }
    }
}

const LIFECYCLE: &str = r#"{"id":"55555555-0000-4000-8000-000000000001","trace_id":"9f0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","session_id":null,"release":null,"git_sha":null,"env":"production","type":"lifecycle","name":"http_request","payload":{"trace_id":"9f0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","total_duration_ms":84.3,"request":{"method":"GET","url":"\/api\/orders","full_url":"https:\/\/shop.test\/api\/orders","status_code":200},"phases":[{"name":"BOOTSTRAP","duration_ms":12.1,"start_offset_ms":0,"percentage":14.4},{"name":"MIDDLEWARE","duration_ms":0,"start_offset_ms":12.1,"percentage":0},{"name":"CONTROLLER","label":"OrderController@index","duration_ms":70.2,"start_offset_ms":12.1,"percentage":83.3}],"spans":[{"span_id":1,"trace_id":"9f0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","type":"QUERY","label":"select * from `orders`","duration_ms":3.2,"start_offset_ms":15,"depth":1,"sql":"select * from `orders` where `user_id` = ?","bindings":[7],"connection":"mysql"},{"span_id":2,"trace_id":"9f0c3b1e2d4a4b6c8e0f1a2b3c4d5e6f","type":"CACHE_HIT","label":"orders:7","duration_ms":0.4,"start_offset_ms":19,"depth":1,"key":"orders:7"}],"counts":{"queries":1,"cache_hits":1,"cache_misses":0,"cache_writes":0,"outgoing_requests":0,"jobs_dispatched":0},"route":{"name":"orders.index","uri":"api\/orders","methods":["GET","HEAD"],"parameters":[]},"controller":{"class":"App\\Http\\Controllers\\OrderController","action":"index","full":"App\\Http\\Controllers\\OrderController@index"},"middleware":{"global":[],"route":["api"],"total_count":1},"breakdown":{"bootstrap":{"duration_ms":12.1,"percentage":14.4},"middleware":{"duration_ms":0,"percentage":0},"controller":{"duration_ms":70.2,"percentage":83.3}},"memory":{"peak_bytes":4194304,"peak_mb":4,"current_bytes":2097152,"current_mb":2},"environment":{"php_version":"8.2.10","laravel_version":"10.48.4","sapi":"fpm-fcgi"},"timestamp":"2025-06-10T17:53:54+02:00"},"context":[],"timestamp":1749567234.202922,"datetime":"2025-06-10T17:53:54+02:00","host":"web-1","memory":4194304}"#;

fn cache_event(i: usize) -> String {
    format!(
        r#"{{"id":"55555555-1111-4000-8000-{i:012}","trace_id":"t-feed","env":"production","type":"cache","name":"k{i}","payload":{{"action":"hit","store":"redis","tags":[]}},"timestamp":1749567234.5}}"#
    )
}

#[tokio::test]
async fn feed_end_to_end() -> anyhow::Result<()> {
    let server = server()?;
    let client = reqwest::Client::new();
    let mut ws = connect(&server).await?;
    let mut seq = 0;
    let hello = next_matching(&mut ws, &mut seq, Duration::from_secs(10), |_| true).await?;
    assert_eq!(hello["kind"], "hello");
    assert_eq!(hello["protocol"], 1);
    assert!(hello["types"].as_array().unwrap().len() >= 55);
    assert!(!hello["instance_id"].as_str().unwrap().is_empty());

    send(
        &mut ws,
        json!({"op":"subscribe","topics":["metrics","events","malformed","lifecycle","pipeline"]}),
    )
    .await?;
    next_matching(&mut ws, &mut seq, Duration::from_secs(10), |m| {
        m["kind"] == "subscribed"
    })
    .await?;

    // A batch: 3 cache events, a lifecycle, a bad event.
    let bad = r#"{"id":"55555555-2222-4000-8000-000000000001","type":"cache","name":"x","payload":{"action":"explode","store":"redis"}}"#;
    let events = [
        cache_event(1),
        cache_event(2),
        cache_event(3),
        LIFECYCLE.to_owned(),
        bad.to_owned(),
    ];
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!(status, 202, "{body}");
    let batch_id = body["batch_id"].as_str().unwrap().to_owned();

    let mut saw = (false, false, false, false, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !(saw.0 && saw.1 && saw.2 && saw.3 && saw.4 >= 3) {
        let m = next_matching(&mut ws, &mut seq, Duration::from_secs(20), |_| true).await?;
        match m["kind"].as_str().unwrap_or_default() {
            "metrics" => {
                let types = m["types"].as_array().unwrap();
                let cache = types.iter().find(|t| t["type"] == "cache").unwrap();
                let lifecycle = types.iter().find(|t| t["type"] == "lifecycle").unwrap();
                if cache["accepted"] == 3 {
                    assert_eq!(cache["rejected"], 1, "{cache}");
                    assert_eq!(cache["received"], 4);
                    assert_eq!(lifecycle["accepted"], 1);
                    assert!(m["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["code"] == "not_allowed"
                            && r["last"]["path"] == "/payload/action"));
                    saw.0 = true;
                }
            }
            "malformed" => {
                assert_eq!(m["reasons"][0]["code"], "not_allowed");
                assert_eq!(m["reasons"][0]["path"], "/payload/action");
                assert_eq!(m["raw"], bad);
                assert_eq!(m["agent_version"], "1.0.0");
                saw.1 = true;
            }
            "lifecycle" => {
                assert_eq!(m["method"], "GET");
                assert_eq!(m["url"], "/api/orders");
                assert_eq!(m["status_code"], 200);
                let spans = m["spans"].as_array().unwrap();
                assert_eq!(spans.len(), 5, "3 phases and 2 spans");
                let query = spans.iter().find(|s| s["span_type"] == "QUERY").unwrap();
                assert_eq!(
                    query["detail"],
                    "select * from `orders` where `user_id` = ?"
                );
                assert_eq!(query["start_ms"], 15.0);
                saw.2 = true;
            }
            "pipeline" if m["batch_id"] == batch_id.as_str() => {
                let stages: Vec<&str> = m["stages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["stage"].as_str().unwrap())
                    .collect();
                for stage in [
                    "received",
                    "inflated",
                    "authenticated",
                    "parsed",
                    "validated",
                    "spooled",
                    "inserted",
                ] {
                    assert!(stages.contains(&stage), "{stage} in {stages:?}");
                }
                assert_eq!(
                    (m["accepted"].as_u64(), m["rejected"].as_u64()),
                    (Some(4), Some(1))
                );
                saw.3 = true;
            }
            "event" => saw.4 += 1,
            _ => {}
        }
    }
    assert!(
        saw.0 && saw.1 && saw.2 && saw.3 && saw.4 >= 3,
        "saw {saw:?}"
    );

    // query and get answer from the store.
    send(
        &mut ws,
        json!({"op":"query","id":"q1","kind":"events","params":{"trace_id":"t-feed"}}),
    )
    .await?;
    let result = next_matching(&mut ws, &mut seq, Duration::from_secs(20), |m| {
        m["kind"] == "result" && m["id"] == "q1"
    })
    .await?;
    assert_eq!(result["data"]["events"].as_array().unwrap().len(), 3);
    send(
        &mut ws,
        json!({"op":"get","id":"g1","event_id":"55555555-1111-4000-8000-000000000002"}),
    )
    .await?;
    let got = next_matching(&mut ws, &mut seq, Duration::from_secs(20), |m| {
        m["id"] == "g1"
    })
    .await?;
    assert_eq!(got["data"]["name"], "k2");
    send(
        &mut ws,
        json!({"op":"query","id":"q2","kind":"exception_groups","params":{}}),
    )
    .await?;
    next_matching(&mut ws, &mut seq, Duration::from_secs(20), |m| {
        m["kind"] == "result" && m["id"] == "q2"
    })
    .await?;

    // A bad message: an error naming the problem, and the connection stays.
    send(&mut ws, json!({"op":"subscribe","topics":["nope"]})).await?;
    let error = next_matching(&mut ws, &mut seq, Duration::from_secs(10), |m| {
        m["kind"] == "error"
    })
    .await?;
    assert!(
        error["message"].as_str().unwrap().contains("nope"),
        "{error}"
    );
    send(&mut ws, json!({"op":"ping","nonce":"n1"})).await?;
    let pong = next_matching(&mut ws, &mut seq, Duration::from_secs(10), |m| {
        m["kind"] == "pong"
    })
    .await?;
    assert_eq!(pong["nonce"], "n1");
    Ok(())
}

#[tokio::test]
async fn no_token_is_401_before_the_upgrade() -> anyhow::Result<()> {
    let server = server()?;
    for url in [
        server.feed_url(),
        format!("{}?token=wrong", server.feed_url()),
    ] {
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401)
            }
            Err(other) => panic!("expected HTTP 401, got {other}"),
            Ok(_) => panic!("connected without a valid token"),
        }
    }
    Ok(())
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_client_that_never_reads_is_bounded_and_told_about_drops() -> anyhow::Result<()> {
    let server = server()?;
    let client = reqwest::Client::new();
    let mut stalled = connect(&server).await?;
    send(
        &mut stalled,
        json!({"op":"subscribe","topics":["events","malformed","metrics"]}),
    )
    .await?;
    // Post a lot while the client reads nothing.
    let started = Instant::now();
    let mut rss_after_warmup = 0;
    for round in 0..60 {
        let events: Vec<String> = (0..100).map(|i| cache_event(round * 1000 + i)).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (status, _) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
        assert_eq!(status, 202);
        if round == 10 {
            rss_after_warmup = rss_kb(server.pid().unwrap());
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "ingest was not slowed: {elapsed:?}"
    );
    let rss_end = rss_kb(server.pid().unwrap());
    assert!(
        rss_end < rss_after_warmup + 64 * 1024,
        "server memory bounded: {rss_after_warmup} kB → {rss_end} kB"
    );
    // Reading again: a `dropped` notice with how many were lost.
    let mut seq = 0;
    let dropped = next_matching(&mut stalled, &mut seq, Duration::from_secs(20), |m| {
        m["kind"] == "dropped"
    })
    .await?;
    assert!(dropped["count"].as_u64().unwrap() > 0);
    Ok(())
}

#[tokio::test]
async fn request_latency_histogram_agrees_with_outside_measurements() -> anyhow::Result<()> {
    let server = server()?;
    let client = reqwest::Client::new();
    let mut outside = Vec::new();
    for round in 0..50 {
        let events: Vec<String> = (0..50).map(|i| cache_event(round * 1000 + i)).collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let started = Instant::now();
        let (status, _) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
        outside.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 202);
    }
    outside.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let stats = wait_for(Duration::from_secs(10), "stats", || async {
        let (_, stats) = baddybugs_tests::server::get_json(&client, &server, "/v1/stats")
            .await
            .ok()?;
        Some(stats)
    })
    .await?;
    let request = stats["latencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "request")
        .cloned()
        .unwrap();
    assert_eq!(request["count"], 50);
    let p50 = request["p50"].as_f64().unwrap();
    let max = request["max"].as_f64().unwrap();
    // The server's time excludes the network and the client, so it is never above the outside
    // figure (give bucket precision, 0.1 %, and timer granularity their due).
    assert!(
        p50 <= outside[25] * 1.001 + 0.05,
        "server p50 {p50} ms vs outside p50 {} ms",
        outside[25]
    );
    assert!(
        max <= outside[49] * 1.001 + 0.05,
        "server max {max} ms vs outside max {} ms",
        outside[49]
    );
    assert!(p50 > 0.0);
    let buckets: u64 = request["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(buckets, 50, "bucket counts add up");
    Ok(())
}

//! Schema drift (issue 17) through the real binary: each of the four kinds posted by an agent is
//! found in `GET /v1/drift` (path, kind, count, sample, example id), on the feed's `drift`
//! topic and through its `query`, in the stored table read by `baddybugs-ingest drift` and again after a crash and
//! restart; the filters; a hostile agent sending 100,000 distinct field names leaves at most
//! the cap per type, the rest counted as overflow; `BADDYBUGS_DRIFT__ENABLED=false` turns it off.

use std::process::Command;
use std::time::{Duration, Instant};

use baddybugs_tests::server::{
    batch_body, binary, get_json, post_as_agent, wait_for, ServerOptions, TestServer, FEED_TOKEN,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str = "[drift]\nflush_interval_ms = 100\n[batch]\nflush_interval_ms = 100\n";

/// One event per kind: an unknown payload field (twice), a coerced value, an unknown type
/// (with its field) and an unknown envelope field.
fn drift_events() -> Vec<String> {
    vec![
        r#"{"id":"drift-1","type":"log","name":"info","payload":{"level":"info","message":"a","region":"eu"},"timestamp":1749567234.5}"#.into(),
        r#"{"id":"drift-2","type":"log","name":"info","payload":{"level":"info","message":"b","region":"us","level_value":"200"},"timestamp":1749567234.6}"#.into(),
        r#"{"id":"drift-3","type":"checkout_completed","name":"order 7","payload":{"amount":12.5},"timestamp":1749567234.7}"#.into(),
        r#"{"id":"drift-4","type":"log","name":"info","payload":{"level":"info","message":"c"},"tenant_hint":"acme","timestamp":1749567234.8}"#.into(),
    ]
}

/// `(type, path, kind)` → entry, from a `/v1/drift` body.
fn entry<'a>(body: &'a Value, event_type: &str, path: &str, kind: &str) -> Option<&'a Value> {
    body["drift"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == event_type && e["path"] == path && e["kind"] == kind)
}

/// The expected keys: (type, path, kind, count, sample, example id).
const EXPECTED: [(&str, &str, &str, u64, &str, &str); 5] = [
    (
        "log",
        "/payload/region",
        "unknown_field",
        2,
        r#""eu""#,
        "drift-1",
    ),
    (
        "log",
        "/payload/level_value",
        "coerced",
        1,
        r#""200""#,
        "drift-2",
    ),
    (
        "checkout_completed",
        "",
        "unknown_type",
        1,
        r#"{"amount":12.5}"#,
        "drift-3",
    ),
    (
        "checkout_completed",
        "/payload/amount",
        "unknown_field",
        1,
        "12.5",
        "drift-3",
    ),
    (
        "log",
        "/tenant_hint",
        "unknown_envelope_field",
        1,
        r#""acme""#,
        "drift-4",
    ),
];

fn check_all(body: &Value) {
    for (event_type, path, kind, count, sample, example) in EXPECTED {
        let e = entry(body, event_type, path, kind)
            .unwrap_or_else(|| panic!("{event_type} {path} {kind} missing from {body}"));
        assert_eq!(e["count"], count, "{e}");
        assert_eq!(e["sample"], sample, "{e}");
        assert_eq!(e["example_event_id"], example, "{e}");
        assert_eq!(e["agent_versions"], json!(["1.0.0"]), "{e}");
        assert_eq!(e["applications"], json!(["default"]), "{e}");
        assert!(
            e["first_seen"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
    }
    assert_eq!(
        body["drift"].as_array().map(Vec::len),
        Some(EXPECTED.len()),
        "{body}"
    );
}

/// `baddybugs-ingest drift` against the server's data directory (reads the store only).
fn cli(server: &TestServer, extra: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary("baddybugs-ingest"))
        .arg("drift")
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(extra)
        .env("BADDYBUGS_LOG", "warn")
        .env_remove("BADDYBUGS_CLICKHOUSE_URL")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "drift CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn every_kind_is_reported_live_stored_and_kept_across_a_restart() -> anyhow::Result<()> {
    let mut server = TestServer::start_with(ServerOptions {
        config_toml: Some(CONFIG.into()),
        ..Default::default()
    })?;
    let client = reqwest::Client::new();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={FEED_TOKEN}", server.feed_url()))
            .await?;
    ws.send(Message::Text(
        json!({"op":"subscribe","topics":["drift"]}).to_string(),
    ))
    .await?;
    // The subscription is in place once it is confirmed: only then post.
    loop {
        let Some(frame) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await? else {
            anyhow::bail!("feed closed");
        };
        if let Message::Text(text) = frame? {
            if serde_json::from_str::<Value>(text.as_str())?["kind"] == "subscribed" {
                break;
            }
        }
    }

    let events = drift_events();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 4, "drift never rejects: {body}");

    // Live: each key once, in the order first seen.
    let mut notices = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while notices.len() < EXPECTED.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(frame) = tokio::time::timeout(left, ws.next()).await? else {
            anyhow::bail!("feed closed");
        };
        if let Message::Text(text) = frame? {
            let value: Value = serde_json::from_str(text.as_str())?;
            if value["kind"] == "drift" {
                notices.push(value);
            }
        }
    }
    for (event_type, path, kind, _, sample, example) in EXPECTED {
        let n = notices
            .iter()
            .find(|n| n["type"] == event_type && n["path"] == path && n["drift_kind"] == kind)
            .unwrap_or_else(|| panic!("no drift notice for {event_type} {path}: {notices:?}"));
        assert_eq!(n["sample"], sample, "{n}");
        assert_eq!(n["example_event_id"], example, "{n}");
        assert_eq!(n["application"], "default", "{n}");
        assert_eq!(n["agent_version"], "1.0.0", "{n}");
    }

    // The API, right after the 202 (unflushed counts are merged in).
    let (status, body) = get_json(&client, &server, "/v1/drift").await?;
    assert_eq!(status, 200, "{body}");
    check_all(&body);

    // The feed's `query` answers the same, for a client that only speaks the feed.
    ws.send(Message::Text(
        json!({"op":"query","id":"d1","kind":"drift","params":{"kind":"coerced"}}).to_string(),
    ))
    .await?;
    let result = loop {
        let Some(frame) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await? else {
            anyhow::bail!("feed closed");
        };
        if let Message::Text(text) = frame? {
            let value: Value = serde_json::from_str(text.as_str())?;
            if value["kind"] == "result" && value["id"] == "d1" {
                break value;
            }
        }
    };
    let rows = result["data"]["drift"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rows.len(), 1, "{result}");
    assert_eq!(rows[0]["path"], "/payload/level_value", "{result}");

    // The same batch again: duplicates are not drift again.
    let (status, again) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!((status, &again["accepted"]), (202, &json!(0)), "{again}");
    let (_, body) = get_json(&client, &server, "/v1/drift").await?;
    check_all(&body);

    // Filters.
    let only = |body: &Value| -> Vec<String> {
        body["drift"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["type"].as_str().unwrap_or(""),
                            e["path"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (_, body) = get_json(&client, &server, "/v1/drift?kind=coerced").await?;
    assert_eq!(only(&body), ["log /payload/level_value"]);
    let (_, body) = get_json(&client, &server, "/v1/drift?type=checkout_completed").await?;
    assert_eq!(only(&body).len(), 2, "{body}");
    let (_, body) = get_json(&client, &server, "/v1/drift?application=other").await?;
    assert_eq!(only(&body).len(), 0, "{body}");
    let (_, body) = get_json(&client, &server, "/v1/drift?agent_version=1.0.0&since=1h").await?;
    assert_eq!(only(&body).len(), EXPECTED.len(), "{body}");
    let (_, body) = get_json(&client, &server, "/v1/drift?agent_version=2.0.0").await?;
    assert_eq!(only(&body).len(), 0, "{body}");
    let future = chrono::Utc::now().timestamp() + 3600;
    let (_, body) = get_json(&client, &server, &format!("/v1/drift?since={future}")).await?;
    assert_eq!(only(&body).len(), 0, "{body}");
    for (query, param) in [("kind=odd", "kind"), ("since=yesterday", "since")] {
        let (status, body) = get_json(&client, &server, &format!("/v1/drift?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_parameter", "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("`{param}`"))),
            "{body}"
        );
    }

    // Counters: the snapshot and Prometheus.
    let (_, stats) = get_json(&client, &server, "/v1/stats").await?;
    assert_eq!(
        stats["drift"]["keys"],
        EXPECTED.len() as u64,
        "{}",
        stats["drift"]
    );
    assert_eq!(stats["drift"]["occurrences"], 6, "{}", stats["drift"]);
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("baddybugs_ingest_schema_drift_total{kind=\"unknown_field\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("baddybugs_ingest_schema_drift_overflow_total 0"),
        "{metrics}"
    );

    // Stored: the CLI reads the table only, so once it shows the counts they are flushed.
    wait_for(Duration::from_secs(20), "the drift flush", || async {
        let text = cli(&server, &["--json"]).ok()?;
        let body: Value = serde_json::from_str(&text).ok()?;
        (body["drift"].as_array()?.len() == EXPECTED.len()).then_some(())
    })
    .await?;
    let table = cli(&server, &["--since", "24h"])?;
    assert!(
        table.contains("/payload/region") && table.contains("5 drift keys"),
        "{table}"
    );
    let patch = cli(&server, &["--catalog-patch"])?;
    assert!(
        patch.contains("pub(super) const CHECKOUT_COMPLETED: TypeSpec"),
        "{patch}"
    );
    assert!(
        patch.contains(r#"req("amount", Ty::Num), // in 1 of 1 events (100%)"#),
        "{patch}"
    );
    assert!(
        patch.contains(r#"opt("region", Ty::Str), // seen 2 times"#),
        "{patch}"
    );

    // A crash loses nothing flushed: after a restart the store alone answers.
    server.restart()?;
    // A new client: the old one's pooled connections went with the killed process.
    let client = reqwest::Client::new();
    let (status, body) = get_json(&client, &server, "/v1/drift").await?;
    assert_eq!(status, 200, "{body}");
    check_all(&body);
    // And counting goes on from the stored rows.
    let one = [events[0].replace("drift-1", "drift-5")];
    let refs: Vec<&str> = one.iter().map(String::as_str).collect();
    let (status, _) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!(status, 202);
    let (_, body) = get_json(&client, &server, "/v1/drift?kind=unknown_field&type=log").await?;
    let region = entry(&body, "log", "/payload/region", "unknown_field").expect("region");
    assert_eq!(region["count"], 3, "{region}");
    assert_eq!(
        region["example_event_id"], "drift-1",
        "the first sample is kept: {region}"
    );
    Ok(())
}

/// Issue 17: a hostile agent sending 100,000 distinct field names keeps at most
/// `drift.max_keys_per_type` keys of its type; the rest is counted as overflow.
#[tokio::test]
async fn a_hostile_agent_cannot_blow_the_drift_memory_up() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        config_toml: Some("[drift]\nmax_keys_per_type = 256\n".into()),
        ..Default::default()
    })?;
    let client = reqwest::Client::new();
    let fields_per_event = 5_000;
    let events_per_batch = 5;
    let mut n = 0usize;
    for batch in 0..4 {
        let events: Vec<String> = (0..events_per_batch)
            .map(|e| {
                let fields: Vec<String> = (0..fields_per_event)
                    .map(|_| {
                        n += 1;
                        format!("\"f{n:06}\":1")
                    })
                    .collect();
                format!(
                    r#"{{"id":"hostile-{batch}-{e}","type":"log","name":"info","payload":{{"level":"info","message":"m",{}}}}}"#,
                    fields.join(",")
                )
            })
            .collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
        assert_eq!(
            (status, &body["accepted"]),
            (202, &json!(events_per_batch)),
            "{body}"
        );
    }
    assert_eq!(n, 100_000);
    let (_, body) = get_json(&client, &server, "/v1/drift?type=log").await?;
    assert_eq!(
        body["drift"].as_array().map(Vec::len),
        Some(256),
        "at most the cap is kept"
    );
    assert_eq!(
        body["overflow"],
        json!([{"type": "log", "count": 100_000 - 256}])
    );
    let (_, stats) = get_json(&client, &server, "/v1/stats").await?;
    assert_eq!(stats["drift"]["keys"], 256, "{}", stats["drift"]);
    assert_eq!(
        stats["drift"]["overflow"],
        100_000 - 256,
        "{}",
        stats["drift"]
    );
    assert_eq!(stats["drift"]["occurrences"], 100_000, "{}", stats["drift"]);
    Ok(())
}

#[tokio::test]
async fn drift_detection_can_be_switched_off_by_environment() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("BADDYBUGS_DRIFT__ENABLED".into(), "false".into())],
        ..Default::default()
    })?;
    let client = reqwest::Client::new();
    let events = drift_events();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!((status, &body["accepted"]), (202, &json!(4)), "{body}");
    let (_, body) = get_json(&client, &server, "/v1/drift").await?;
    assert_eq!(body["drift"], json!([]), "{body}");
    let (_, stats) = get_json(&client, &server, "/v1/stats").await?;
    assert_eq!(stats["drift"]["occurrences"], 0, "{}", stats["drift"]);
    Ok(())
}

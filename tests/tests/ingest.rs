//! The ingest server end to end: every catalog type posted as the real agent posts it is stored
//! and read back byte-for-byte; mixed batches; bad input with its documented status and body;
//! agent retries; graceful shutdown. (Crash and outage drills are in `durability.rs`.)

use std::collections::HashMap;
use std::time::Duration;

use baddybugs_fixtures::{valid_fixtures, Shape};
use baddybugs_tests::server::{
    batch_body, get_json, gzip, post_as_agent, sign, wait_for, ServerOptions, TestServer, API_KEY,
    FEED_TOKEN, SECRET,
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Deserialize)]
struct StoredRaw {
    #[serde(rename = "type")]
    event_type: String,
    name: String,
    data: Box<RawValue>,
    envelope: HashMap<String, Box<RawValue>>,
    trace_id: String,
    environment: String,
    release: Option<String>,
    host: Option<String>,
    session_id: Option<String>,
}

async fn get_raw(client: &reqwest::Client, server: &TestServer, id: &str) -> Option<String> {
    let response = client
        .get(server.url(&format!("/v1/events/{id}")))
        .header("Authorization", format!("Bearer {FEED_TOKEN}"))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.text().await.ok()
}

#[tokio::test]
async fn every_type_posted_like_the_agent_is_stored_byte_for_byte() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let fixtures: Vec<_> = valid_fixtures()
        .into_iter()
        .filter(|f| f.shape == Shape::Agent)
        .collect();
    assert!(fixtures.len() >= 55, "an agent fixture per type at least");
    for chunk in fixtures.chunks(10) {
        let texts: Vec<&str> = chunk.iter().map(|f| f.text.as_str()).collect();
        let (status, body) = post_as_agent(&client, &server, &batch_body(&texts)).await?;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], chunk.len(), "{body}");
        assert_eq!(body["rejected"], 0, "{body}");
    }
    for fixture in &fixtures {
        let sent: HashMap<String, Box<RawValue>> = serde_json::from_str(&fixture.text)?;
        let id: String = serde_json::from_str(sent["id"].get())?;
        let text = wait_for(
            Duration::from_secs(30),
            &format!("{} stored", fixture.id),
            || {
                let client = client.clone();
                let server = &server;
                let id = id.clone();
                async move { get_raw(&client, server, &id).await }
            },
        )
        .await?;
        let stored: StoredRaw = serde_json::from_str(&text)?;
        assert_eq!(
            stored.data.get(),
            sent["payload"].get(),
            "{}: data not byte-for-byte",
            fixture.id
        );
        assert_eq!(stored.event_type, fixture.event_type);
        assert_eq!(
            stored.name,
            serde_json::from_str::<String>(sent["name"].get())?
        );
        // Every other envelope field is kept: in a column of its own or verbatim in `envelope`.
        for (key, value) in &sent {
            let column: Option<Option<String>> = match key.as_str() {
                "type" | "name" | "payload" | "id" => continue,
                "trace_id" => Some(Some(stored.trace_id.clone())),
                "env" => Some(Some(stored.environment.clone())),
                "release" => Some(stored.release.clone()),
                "host" => Some(stored.host.clone()),
                "session_id" => Some(stored.session_id.clone()),
                _ => None,
            };
            match column {
                Some(column) if value.get() != "null" => {
                    assert_eq!(
                        column.as_deref(),
                        Some(serde_json::from_str::<String>(value.get())?.as_str()),
                        "{}: {key}",
                        fixture.id
                    );
                }
                Some(column) => assert_eq!(column, None, "{}: {key}", fixture.id),
                None => assert_eq!(
                    stored.envelope.get(key).map(|v| v.get()),
                    Some(value.get()),
                    "{}: envelope field {key} not kept verbatim",
                    fixture.id
                ),
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn mixed_batch_stores_the_valid_and_quarantines_the_invalid() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let good = r#"{"id":"11111111-0000-4000-8000-000000000001","trace_id":"t-mixed","env":"production","type":"cache","name":"users:1","payload":{"action":"hit","store":"redis","tags":[]},"context":[],"timestamp":1749567234.5,"datetime":"2025-06-10T17:53:54+02:00","host":"web-1","memory":4194304}"#;
    let bad_enum = r#"{"id":"11111111-0000-4000-8000-000000000002","trace_id":"t-mixed","env":"production","type":"cache","name":"users:2","payload":{"action":"explode","store":"redis"},"timestamp":1749567234.5}"#;
    let no_type = r#"{"id":"11111111-0000-4000-8000-000000000003","name":"x","payload":{}}"#;
    let good2 = r#"{"id":"11111111-0000-4000-8000-000000000004","trace_id":"t-mixed","env":"production","type":"my_custom_type","name":"user_purchased","payload":{"amount":12},"timestamp":1749567234.5}"#;
    let (status, body) = post_as_agent(
        &client,
        &server,
        &batch_body(&[good, bad_enum, no_type, good2]),
    )
    .await?;
    assert_eq!(status, 202);
    let batch_id = body["batch_id"].as_str().unwrap_or_default().to_owned();
    assert!(!batch_id.is_empty());
    let expected = serde_json::json!({
        "accepted": 2,
        "rejected": 2,
        "duplicates": 0,
        "batch_id": batch_id,
        "errors": [
            {"index": 1, "id": "11111111-0000-4000-8000-000000000002", "type": "cache", "reasons": [
                {"code": "not_allowed", "path": "/payload/action", "message": body["errors"][0]["reasons"][0]["message"]}
            ]},
            {"index": 2, "id": "11111111-0000-4000-8000-000000000003", "type": null, "reasons": [
                {"code": "missing_field", "path": "/type", "message": body["errors"][1]["reasons"][0]["message"]}
            ]}
        ]
    });
    assert_eq!(body, expected);
    assert!(body["errors"][0]["reasons"][0]["message"]
        .as_str()
        .unwrap()
        .contains("/payload/action"));

    for id in [
        "11111111-0000-4000-8000-000000000001",
        "11111111-0000-4000-8000-000000000004",
    ] {
        wait_for(Duration::from_secs(20), "stored", || async {
            get_raw(&client, &server, id).await
        })
        .await?;
    }
    let quarantine = wait_for(Duration::from_secs(20), "quarantined", || async {
        let (_, body) = get_json(&client, &server, "/v1/malformed").await.ok()?;
        let rows = body["malformed"].as_array()?.clone();
        (rows.len() == 2).then_some(rows)
    })
    .await?;
    let by_index: HashMap<u64, &Value> = quarantine
        .iter()
        .map(|r| (r["index"].as_u64().unwrap_or(99), r))
        .collect();
    assert_eq!(by_index[&1]["codes"], serde_json::json!(["not_allowed"]));
    assert_eq!(by_index[&1]["reasons"][0]["path"], "/payload/action");
    assert_eq!(by_index[&1]["raw"], bad_enum, "the original bytes are kept");
    assert_eq!(by_index[&2]["codes"], serde_json::json!(["missing_field"]));
    let (_, by_reason) = get_json(&client, &server, "/v1/malformed?reason=not_allowed").await?;
    assert_eq!(by_reason["malformed"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn agent_retry_is_stored_once_and_reported_as_duplicates() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let events: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"id":"22222222-0000-4000-8000-00000000000{i}","trace_id":"t-retry","env":"production","type":"log","name":"error","payload":{{"level":"error","message":"boom {i}","context":[]}},"timestamp":1749567234.5}}"#))
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let body = batch_body(&refs);
    let (status, first) = post_as_agent(&client, &server, &body).await?;
    assert_eq!(
        (
            status,
            first["accepted"].as_u64(),
            first["duplicates"].as_u64()
        ),
        (202, Some(5), Some(0))
    );
    let (status, second) = post_as_agent(&client, &server, &body).await?;
    assert_eq!(
        (
            status,
            second["accepted"].as_u64(),
            second["duplicates"].as_u64()
        ),
        (202, Some(0), Some(5))
    );
    let ids = wait_for(Duration::from_secs(20), "5 stored", || async {
        let ids = baddybugs_tests::server::count_events(&client, &server, "trace_id=t-retry")
            .await
            .ok()?;
        (ids.len() >= 5).then_some(ids)
    })
    .await?;
    // Stored once: not "nothing more after a pause", but nothing more once every acknowledged
    // record (the retry's included) has been through the store.
    baddybugs_tests::server::wait_until_stored(&client, &server, Duration::from_secs(20)).await?;
    let ids_after =
        baddybugs_tests::server::count_events(&client, &server, "trace_id=t-retry").await?;
    assert_eq!(ids.len(), 5);
    assert_eq!(ids_after.len(), 5, "stored once");
    let (_, stats) = get_json(&client, &server, "/v1/stats").await?;
    let log = stats["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "log")
        .cloned()
        .unwrap();
    assert_eq!(
        (log["accepted"].as_u64(), log["duplicates"].as_u64()),
        (Some(5), Some(5))
    );
    Ok(())
}

/// Issue 15: an event is identified by (organization, application, id). Tenant A stores id X;
/// tenant B then posts its own event with id X: both are accepted, both are stored, and
/// `GET /v1/events/X` answers with both (300, every match) unless the caller's filters pick one;
/// the feed's `get` does the same. A retry within one tenant is still a duplicate.
#[tokio::test]
async fn two_tenants_with_the_same_event_id_both_store_their_event() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        config_toml: Some(
            "[batch]\nflush_interval_ms = 100\n\n\
             [[api_keys]]\nkey = \"key-acme\"\norganization = \"acme\"\napplication = \"shop\"\n\n\
             [[api_keys]]\nkey = \"key-globex\"\norganization = \"globex\"\napplication = \"shop\"\n"
                .into(),
        ),
        ..ServerOptions::default()
    })?;
    let client = reqwest::Client::new();
    let id = "15151515-0000-4000-8000-000000000001";
    let event = |name: &str| {
        format!(
            r#"{{"id":"{id}","trace_id":"t-tenants","env":"production","type":"my_custom_type","name":"{name}","payload":{{"tenant":"{name}"}},"timestamp":1749567234.5}}"#
        )
    };
    let post = |key: &'static str, body: String| {
        let client = client.clone();
        let url = server.url("/v1/ingest");
        async move {
            let response = client
                .post(url)
                .header("Authorization", format!("Bearer {key}"))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await?;
            anyhow::Ok((
                status,
                body["accepted"].as_u64(),
                body["duplicates"].as_u64(),
            ))
        }
    };

    // A's event is stored first, as in the issue: B's copy of the id then met a stored row.
    let a_body = batch_body(&[&event("from-acme")]);
    assert_eq!(
        post("key-acme", a_body.clone()).await?,
        (202, Some(1), Some(0))
    );
    baddybugs_tests::server::wait_until_stored(&client, &server, Duration::from_secs(20)).await?;
    assert_eq!(
        post("key-globex", batch_body(&[&event("from-globex")])).await?,
        (202, Some(1), Some(0)),
        "another tenant's event with the same id is a new event"
    );
    assert_eq!(
        post("key-acme", a_body).await?,
        (202, Some(0), Some(1)),
        "a retry within one tenant is still a duplicate"
    );
    baddybugs_tests::server::wait_until_stored(&client, &server, Duration::from_secs(20)).await?;

    // Unscoped: both, by organization, with 300 Multiple Choices.
    let (status, both) = get_json(&client, &server, &format!("/v1/events/{id}")).await?;
    assert_eq!(status, 300, "{both}");
    assert_eq!(both["error"], "ambiguous_id", "{both}");
    let tenants: Vec<(&str, &str, &str)> = both["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    (
                        e["organization"].as_str().unwrap_or_default(),
                        e["id"].as_str().unwrap_or_default(),
                        e["name"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        tenants,
        [("acme", id, "from-acme"), ("globex", id, "from-globex")]
    );
    // Scoped by the caller's filters: the one event, as before tenant-scoped ids.
    for (query, name) in [
        ("organization=acme", "from-acme"),
        ("organization=globex&application=shop", "from-globex"),
    ] {
        let (status, one) = get_json(&client, &server, &format!("/v1/events/{id}?{query}")).await?;
        assert_eq!(
            (status, one["name"].as_str()),
            (200, Some(name)),
            "{query}: {one}"
        );
        assert_eq!(one["data"], json!({ "tenant": name }), "{query}");
    }
    let (status, none) = get_json(
        &client,
        &server,
        &format!("/v1/events/{id}?organization=acme&application=admin"),
    )
    .await?;
    assert_eq!(status, 404, "{none}");
    // The list: both, and each tenant's alone with its filter.
    let listed =
        baddybugs_tests::server::count_events(&client, &server, "trace_id=t-tenants").await?;
    assert_eq!(listed, [id, id]);
    let listed = baddybugs_tests::server::count_events(
        &client,
        &server,
        "trace_id=t-tenants&organization=globex",
    )
    .await?;
    assert_eq!(listed, [id]);

    // The feed's `get`: every match, or the one its scope names.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={FEED_TOKEN}", server.feed_url()))
            .await?;
    let both = feed_answer(&mut ws, json!({"op":"get","id":"g-all","event_id":id})).await?;
    assert_eq!(both["kind"], "result", "{both}");
    let organizations: Vec<&Value> = both["data"]["events"]
        .as_array()
        .map(|events| events.iter().map(|e| &e["organization"]).collect())
        .unwrap_or_default();
    assert_eq!(organizations, [&json!("acme"), &json!("globex")], "{both}");
    let one = feed_answer(
        &mut ws,
        json!({"op":"get","id":"g-one","event_id":id,"organization":"globex"}),
    )
    .await?;
    assert_eq!(
        (&one["kind"], &one["data"]["name"]),
        (&json!("result"), &json!("from-globex")),
        "{one}"
    );
    Ok(())
}

/// Sends a feed request and returns the answer that carries its `id`.
async fn feed_answer<S>(ws: &mut S, request: Value) -> anyhow::Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + Unpin,
{
    let wanted = request["id"].clone();
    ws.send(Message::Text(request.to_string())).await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the feed closed"))??;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text)?;
            if value["id"] == wanted {
                return Ok(value);
            }
        }
    }
}

async fn raw_post(
    client: &reqwest::Client,
    server: &TestServer,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> anyhow::Result<(u16, Value, Option<String>)> {
    let mut request = client.post(server.url("/v1/ingest"));
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let response = request.body(body).send().await?;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        retry,
    ))
}

#[tokio::test]
async fn bad_input_gets_its_documented_status_and_body() -> anyhow::Result<()> {
    let server = TestServer::start_with(baddybugs_tests::server::ServerOptions {
        config_toml: Some(
            "[ingest]\nmax_body_bytes = 2097152\nmax_inflated_bytes = 16777216\nmax_event_bytes = 1048576\n".into(),
        ),
        ..Default::default()
    })?;
    let client = reqwest::Client::new();
    let auth = ("Authorization", format!("Bearer {API_KEY}"));
    let gz = ("Content-Encoding", "gzip".to_owned());
    let valid = r#"{"events":[{"id":"33333333-0000-4000-8000-000000000001","type":"log","name":"error","payload":{"level":"error","message":"survivor"},"timestamp":1749567234}]}"#;

    // Authentication and signature.
    let (s, b, _) = raw_post(&client, &server, &[], valid.into()).await?;
    assert_eq!((s, b["error"].as_str()), (401, Some("missing_key")));
    let (s, b, _) = raw_post(
        &client,
        &server,
        &[("Authorization", "Bearer nope".into())],
        valid.into(),
    )
    .await?;
    assert_eq!((s, b["error"].as_str()), (401, Some("unknown_key")));
    let now = chrono::Utc::now().timestamp().to_string();
    let (s, b, _) = raw_post(
        &client,
        &server,
        &[
            auth.clone(),
            ("X-Timestamp", now.clone()),
            ("X-Signature", sign("wrong", &now, valid.as_bytes())),
        ],
        valid.into(),
    )
    .await?;
    assert_eq!((s, b["error"].as_str()), (401, Some("signature_mismatch")));
    let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
    let (s, b, _) = raw_post(
        &client,
        &server,
        &[
            auth.clone(),
            ("X-Timestamp", stale.clone()),
            ("X-Signature", sign(SECRET, &stale, valid.as_bytes())),
        ],
        valid.into(),
    )
    .await?;
    assert_eq!((s, b["error"].as_str()), (401, Some("stale_x_timestamp")));

    // Encodings and sizes.
    let (s, b, _) = raw_post(
        &client,
        &server,
        &[auth.clone(), ("Content-Encoding", "br".into())],
        valid.into(),
    )
    .await?;
    assert_eq!(
        (s, b["error"].as_str()),
        (415, Some("unsupported_encoding"))
    );
    let bomb = gzip(&vec![b' '; 32 << 20]);
    assert!(bomb.len() < 128 << 10);
    let (s, b, _) = raw_post(&client, &server, &[auth.clone(), gz.clone()], bomb).await?;
    assert_eq!((s, b["error"].as_str()), (413, Some("too_large")), "{b}");
    let (s, b, _) = raw_post(
        &client,
        &server,
        std::slice::from_ref(&auth),
        vec![b' '; 3 << 20],
    )
    .await?;
    assert_eq!((s, b["error"].as_str()), (413, Some("too_large")));

    // Undecodable bodies are quarantined whole and answered 202 with accepted 0.
    let mut truncated = gzip(valid.as_bytes());
    truncated.truncate(truncated.len() / 2);
    let nested = format!(
        r#"{{"events":[{{"type":"log","name":"error","payload":{{"deep":{}1{}}}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    // (what, headers, body, expected reason code)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated gzip",
            vec![auth.clone(), gz.clone()],
            truncated,
            "bad_encoding",
        ),
        (
            "invalid UTF-8 in a body whose events cannot be delimited",
            vec![auth.clone()],
            b"{\"events\":[{\"type\":\"log\",\"payload\":{\"m\":\"\xff\"}}".to_vec(),
            "invalid_utf8",
        ),
        (
            "invalid JSON",
            vec![auth.clone()],
            b"{\"events\":[{\"type\":".to_vec(),
            "invalid_json",
        ),
        (
            "a top-level number",
            vec![auth.clone()],
            b"42".to_vec(),
            "bad_shape",
        ),
    ];
    for (what, headers, body, code) in cases {
        let (s, b, _) = raw_post(&client, &server, &headers, body).await?;
        assert_eq!(s, 202, "{what}: {b}");
        assert_eq!(b["accepted"], 0, "{what}");
        assert_eq!(b["quarantined_body"], true, "{what}");
        assert_eq!(b["errors"][0]["reasons"][0]["code"], code, "{what}: {b}");
    }
    // Issue 15: one invalid byte in event 50 of 100 costs that event only; the other 99 are
    // accepted, and the bad one is quarantined with its reason.
    let events: Vec<Vec<u8>> = (0..100)
        .map(|i| {
            let mut e = format!(
                r#"{{"type":"log","name":"error","payload":{{"level":"error","message":"m{i}"}}}}"#
            )
            .into_bytes();
            if i == 50 {
                // The 'm' of the message becomes a byte that is not UTF-8.
                let at = e.len() - 4 - i.to_string().len();
                e[at] = 0xff;
            }
            e
        })
        .collect();
    let mut one_bad_byte = b"{\"events\":[".to_vec();
    one_bad_byte.extend_from_slice(&events.join(&b',')[..]);
    one_bad_byte.extend_from_slice(b"]}");
    let (s, b, _) = raw_post(&client, &server, std::slice::from_ref(&auth), one_bad_byte).await?;
    assert_eq!(
        (s, b["accepted"].as_u64(), b["rejected"].as_u64()),
        (202, Some(99), Some(1)),
        "{b}"
    );
    assert!(b["quarantined_body"].is_null(), "{b}");
    assert_eq!(b["errors"][0]["index"], 50, "{b}");
    assert_eq!(b["errors"][0]["reasons"][0]["code"], "invalid_utf8", "{b}");
    // JSON nesting 10,000 deep: that event is rejected (too_deep), the body is not.
    let (s, b, _) = raw_post(
        &client,
        &server,
        std::slice::from_ref(&auth),
        nested.into_bytes(),
    )
    .await?;
    assert_eq!(
        (s, b["accepted"].as_u64(), b["rejected"].as_u64()),
        (202, Some(0), Some(1)),
        "{b}"
    );
    assert_eq!(b["errors"][0]["reasons"][0]["code"], "too_deep");
    assert_eq!(b["errors"][0]["reasons"][0]["path"], "/payload");
    // A 10 MB string field: that event alone is quarantined, its batch-mate is accepted.
    let big = format!(
        r#"{{"events":[{{"id":"33333333-0000-4000-8000-000000000002","type":"log","name":"error","payload":{{"level":"error","message":"{}"}}}},{}]}}"#,
        "x".repeat(10 << 20),
        &valid[11..valid.len() - 2]
    );
    let (s, b, _) = raw_post(
        &client,
        &server,
        &[auth.clone(), gz.clone()],
        gzip(big.as_bytes()),
    )
    .await?;
    assert_eq!(
        (s, b["accepted"].as_u64(), b["rejected"].as_u64()),
        (202, Some(1), Some(1)),
        "{b}"
    );
    assert_eq!(b["errors"][0]["reasons"][0]["code"], "too_large");
    // An empty batch.
    let (s, b, _) = raw_post(
        &client,
        &server,
        std::slice::from_ref(&auth),
        br#"{"events":[]}"#.to_vec(),
    )
    .await?;
    assert_eq!(
        (s, b["accepted"].as_u64(), b["rejected"].as_u64()),
        (202, Some(0), Some(0))
    );

    // The server still serves, and the decodable event was not lost.
    wait_for(Duration::from_secs(20), "survivor stored", || async {
        get_raw(&client, &server, "33333333-0000-4000-8000-000000000001").await
    })
    .await?;
    let (_, health) = get_json(&client, &server, "/healthz").await?;
    assert_eq!(health["status"], "ok");
    let (_, quarantine) = get_json(&client, &server, "/v1/malformed?limit=100").await?;
    let codes: Vec<String> = quarantine["malformed"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["codes"].as_array().cloned().unwrap_or_default())
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();
    for code in [
        "bad_encoding",
        "invalid_utf8",
        "invalid_json",
        "too_deep",
        "bad_shape",
        "too_large",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "{code} quarantined: {codes:?}"
        );
    }
    Ok(())
}

/// Issue 15: a body whose events cannot be delimited is quarantined whole and uncut, however
/// far past the 64 KiB per-event cap it goes, and `GET /v1/malformed/{id}/raw` returns its
/// bytes exactly as received after decompression.
#[tokio::test]
async fn a_whole_undecodable_body_over_64_kib_round_trips_through_raw() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    // 200 KiB of events in an array that is never closed (so no boundary can be trusted), with
    // bytes that are not UTF-8 on the way: only the whole body can be kept.
    let mut body = b"{\"events\":[".to_vec();
    let mut i = 0u32;
    while body.len() < 200 << 10 {
        body.extend_from_slice(
            format!(
                r#"{{"type":"log","name":"error","payload":{{"level":"error","message":"m{i} "#
            )
            .as_bytes(),
        );
        body.extend_from_slice(&[0xff, 0xfe, b'"', b'}', b'}', b',']);
        i += 1;
    }
    let (s, b, _) = raw_post(
        &client,
        &server,
        &[
            ("Authorization", format!("Bearer {API_KEY}")),
            ("Content-Encoding", "gzip".to_owned()),
        ],
        gzip(&body),
    )
    .await?;
    assert_eq!((s, b["accepted"].as_u64()), (202, Some(0)), "{b}");
    assert_eq!(b["quarantined_body"], true, "{b}");
    let id = format!("{}-body", b["batch_id"].as_str().unwrap_or_default());

    let raw_url = server.url(&format!("/v1/malformed/{id}/raw"));
    let response = wait_for(Duration::from_secs(30), "the body in the store", || async {
        let response = client
            .get(&raw_url)
            .header("Authorization", format!("Bearer {FEED_TOKEN}"))
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(response)
    })
    .await?;
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let kept = response.bytes().await?;
    assert_eq!(kept.len(), body.len(), "every byte is kept");
    assert!(kept[..] == body[..], "byte for byte");

    // The list shows the first 64 KiB of it, marked cut; the full size is told.
    let (_, list) = get_json(&client, &server, "/v1/malformed").await?;
    let row = list["malformed"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["raw_size"], body.len() as u64, "{row}");
    assert_eq!(row["truncated"], true, "{row}");
    assert!(row["raw"].as_str().unwrap_or_default().len() <= 3 * (64 << 10));

    // Unknown ids are 404; the bytes need the feed token.
    let (s, _) = get_json(&client, &server, "/v1/malformed/nope-body/raw").await?;
    assert_eq!(s, 404);
    let s = client.get(&raw_url).send().await?.status();
    assert_eq!(s, 401);
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_loses_nothing_in_flight() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut server = TestServer::start()?;
    let client = reqwest::Client::new();
    let acked = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let batches_acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = client.clone();
        let url = server.url("/v1/ingest");
        let acked = acked.clone();
        let batches_acked = batches_acked.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0.. {
                let ids: Vec<String> = (0..50)
                    .map(|i| format!("44444444-{worker:04}-4000-8000-{batch:06}{i:06}"))
                    .collect();
                let events: Vec<String> = ids
                    .iter()
                    .map(|id| format!(r#"{{"id":"{id}","trace_id":"t-graceful","type":"query","name":"sql","payload":{{"sql":"select 1","bindings":[],"time":1.5,"connection":"mysql","slow":false}},"timestamp":1749567234}}"#))
                    .collect();
                let refs: Vec<&str> = events.iter().map(String::as_str).collect();
                let response = client
                    .post(&url)
                    .header("Authorization", format!("Bearer {API_KEY}"))
                    .body(batch_body(&refs))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 202 => {
                        let body: Value = r.json().await.unwrap_or_default();
                        assert_eq!(body["accepted"], 50, "{body}");
                        acked.lock().await.extend(ids);
                        batches_acked.fetch_add(1, Ordering::Relaxed);
                    }
                    // 503 while shutting down, or the connection refused once it stopped.
                    _ => return,
                }
            }
        }));
    }
    wait_for(
        Duration::from_secs(30),
        "some batches acknowledged",
        || async { (batches_acked.load(Ordering::Relaxed) >= 20).then_some(()) },
    )
    .await?;
    // SIGTERM while requests are in flight.
    assert!(server.terminate()?, "exit 0 after SIGTERM");
    for t in tasks {
        t.await?;
    }
    let acked = acked.lock().await.clone();
    server.restart()?;
    let waited = wait_for(
        Duration::from_secs(30),
        "acknowledged events stored",
        || async {
            let ids =
                baddybugs_tests::server::count_events(&client, &server, "trace_id=t-graceful")
                    .await
                    .ok()?;
            (ids.len() >= acked.len()).then_some(ids)
        },
    )
    .await;
    let ids = match waited {
        Ok(ids) => ids,
        Err(e) => {
            let ids =
                baddybugs_tests::server::count_events(&client, &server, "trace_id=t-graceful")
                    .await?;
            anyhow::bail!("{e}: {} acknowledged, {} stored", acked.len(), ids.len());
        }
    };
    let stored: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(stored.len(), ids.len(), "nothing stored twice");
    assert!(
        acked.iter().all(|id| stored.contains(id)),
        "every acknowledged event stored"
    );
    Ok(())
}

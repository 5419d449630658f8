//! Operator-facing behaviour of the real binary: the catalog command, print-config, the spool
//! tools, quarantine replay, per-key rate limiting, and development credentials.

use std::process::Command;
use std::time::Duration;

use baddybugs_tests::server::{
    binary, get_json, wait_for, ServerOptions, TestServer, API_KEY, FEED_TOKEN,
};
use serde_json::{json, Value};

fn run(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(binary("baddybugs-ingest"))
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn catalog_and_print_config() -> anyhow::Result<()> {
    let (ok, out, _) = run(&["catalog", "--json"])?;
    assert!(ok);
    let catalog: Value = serde_json::from_str(&out)?;
    assert_eq!(catalog["types"].as_array().map(Vec::len), Some(55));
    let (ok, table, _) = run(&["catalog"])?;
    assert!(ok && table.contains("lifecycle") && table.contains("55 types"));
    let (ok, config, _) = run(&[
        "print-config",
        "--api-key",
        "secretkey123:sig",
        "--listen",
        "127.0.0.1:9999",
    ])?;
    assert!(ok);
    assert!(config.contains("listen = \"127.0.0.1:9999\""));
    assert!(
        !config.contains("secretkey123"),
        "secrets are masked:\n{config}"
    );
    let (ok, _, err) = run(&["print-config", "--listen", "nowhere"])?;
    assert!(!ok && err.contains("`listen`"), "{err}");
    Ok(())
}

#[tokio::test]
async fn spool_tools_replay_and_rate_limit() -> anyhow::Result<()> {
    let mut server = TestServer::start_with(ServerOptions {
        config_toml: Some(
            "[ingest]\nmax_event_bytes = 600\nrate_limit_events_per_sec = 5\nrate_limit_burst_events = 20\n[batch]\nflush_interval_ms = 100\n".into(),
        ),
        ..Default::default()
    })?;
    let client = reqwest::Client::new();
    let post = |body: String| {
        client
            .post(server.url("/v1/ingest"))
            .header("Authorization", format!("Bearer {API_KEY}"))
            .body(body)
            .send()
    };
    // An event over max_event_bytes is quarantined whole (600 < size < the raw cap)…
    let big = json!({"id": "77777777-0000-4000-8000-000000000001", "type": "log", "name": "error",
        "payload": {"level": "error", "message": "x".repeat(800)}})
    .to_string();
    let response = post(format!("{{\"events\":[{big}]}}")).await?;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await?;
    assert_eq!(body["errors"][0]["reasons"][0]["code"], "too_large");
    let row = wait_for(Duration::from_secs(20), "quarantined", || async {
        let (_, q) = get_json(&client, &server, "/v1/malformed?reason=too_large")
            .await
            .ok()?;
        q["malformed"].as_array()?.first().cloned()
    })
    .await?;
    // …and replayed on demand: the event is ingested and stored.
    let response = client
        .post(server.url("/v1/malformed/replay"))
        .header("Authorization", format!("Bearer {FEED_TOKEN}"))
        .json(&json!({"ids": [row["id"], "no-such-id"]}))
        .send()
        .await?;
    assert_eq!(response.status(), 202);
    let replay: Value = response.json().await?;
    assert_eq!(
        replay["replayed"].as_array().map(Vec::len),
        Some(1),
        "{replay}"
    );
    assert_eq!(replay["not_found"], json!(["no-such-id"]));
    wait_for(Duration::from_secs(20), "replayed event stored", || async {
        let (status, _) = get_json(
            &client,
            &server,
            "/v1/events/77777777-0000-4000-8000-000000000001",
        )
        .await
        .ok()?;
        (status == 200).then_some(())
    })
    .await?;

    // Rate limit: a burst of 20 events, then 429 with Retry-After.
    let events: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"type":"cache","name":"k{i}","payload":{{"action":"hit","store":"redis"}}}}"#
            )
        })
        .collect();
    let batch = format!("{{\"events\":[{}]}}", events.join(","));
    let first = post(batch.clone()).await?;
    assert_eq!(first.status(), 202);
    let second = post(batch).await?;
    assert_eq!(second.status(), 429);
    assert!(second.headers().get("retry-after").is_some());

    // Spool tools on the stopped server's data directory.
    assert!(server.terminate()?);
    let data = server.data_dir.display().to_string();
    let (ok, status, _) = run(&["spool", "status", "--data-dir", &data])?;
    assert!(ok);
    let status: Value = serde_json::from_str(&status)?;
    assert!(status["last_lsn"].as_u64().unwrap() >= 3);
    assert_eq!(
        status["consumers"][0]["pending_records"], 0,
        "everything stored before exit"
    );
    let (ok, verify, _) = run(&["spool", "verify", "--data-dir", &data])?;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&verify)?["ok"], true);
    let (ok, dump, _) = run(&["spool", "dump", "--data-dir", &data])?;
    assert!(ok);
    let first_line: Value = serde_json::from_str(dump.lines().next().unwrap_or("{}"))?;
    assert_eq!(first_line["lsn"], 1);
    assert_eq!(
        first_line["record"]["batch"]["quarantined"][0]["reasons"][0]["code"],
        "too_large"
    );
    Ok(())
}

#[test]
fn development_credentials_are_created_and_reused() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        no_credentials: true,
        ..Default::default()
    })?;
    assert!(
        server.banner.contains("development credentials created"),
        "{}",
        server.banner
    );
    assert!(server.banner.contains("curl"));
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(
        server.data_dir.join("dev-credentials.json"),
    )?)?;
    assert!(creds["api_key"].as_str().unwrap().starts_with("bbdev_"));
    Ok(())
}

/// Issue 16: with `--api-key` and no `--feed-token` the token comes from the data directory's
/// development credentials; the banner says so instead of leaving it to be found.
#[test]
fn a_key_without_a_feed_token_says_where_the_token_is() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        no_credentials: true,
        args: vec!["--api-key".into(), "ops-key:ops-secret:optional".into()],
        ..Default::default()
    })?;
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(
        server.data_dir.join("dev-credentials.json"),
    )?)?;
    let token = creds["feed_token"].as_str().unwrap();
    assert!(
        server.banner.contains("No feed token is configured")
            && server.banner.contains(&format!("feed token: {token}")),
        "{}",
        server.banner
    );
    assert!(
        !server.banner.contains("No API key is configured"),
        "{}",
        server.banner
    );
    Ok(())
}

/// A supervisor may stop a node the moment it has started. The handlers for SIGTERM are in place
/// before the banner says "listening", so a SIGTERM sent as soon as the banner is read is a clean
/// stop (exit 0 after flushing), never the default action's kill. Before the fix the handler was
/// registered when the accept loop first polled it, and such a SIGTERM killed the process now
/// and then (a CI run failed on it). Repeated, since the window was short.
#[test]
fn a_sigterm_right_after_the_banner_is_a_clean_stop() -> anyhow::Result<()> {
    let mut server = TestServer::start()?;
    for attempt in 0..15 {
        assert!(
            server.terminate()?,
            "start {attempt}: SIGTERM right after the banner did not exit 0"
        );
        server.restart()?;
    }
    assert!(server.terminate()?);
    Ok(())
}

/// Issue 14: the replay endpoint and `limit` answer as docs/PROTOCOL.md says.
#[tokio::test]
async fn replay_refusals_and_huge_limits_answer_as_documented() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let replay = |token: Option<&str>, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = client.post(server.url("/v1/malformed/replay")).body(body);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body: Value = response.json().await?;
            anyhow::Ok((
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    };
    let json = Some("application/json");
    let ids = br#"{"ids":["no-such-id"]}"#.to_vec();
    let too_big = format!(r#"{{"ids":["{}"]}}"#, "x".repeat(3 << 20)).into_bytes();
    // The token first: nothing about the body is read or told without it.
    assert_eq!(
        replay(None, json, ids.clone()).await?,
        (401, "bad_token".into())
    );
    assert_eq!(
        replay(None, json, b"{".to_vec()).await?,
        (401, "bad_token".into())
    );
    // Then the body: JSON whatever the Content-Type, at most 2 MiB, 1 to 10,000 ids.
    let token = Some(FEED_TOKEN);
    assert_eq!(replay(token, None, ids.clone()).await?.0, 202);
    assert_eq!(replay(token, Some("text/plain"), ids).await?.0, 202);
    assert_eq!(
        replay(token, json, too_big).await?,
        (413, "too_large".into())
    );
    assert_eq!(
        replay(token, json, b"{".to_vec()).await?,
        (400, "bad_body".into())
    );
    assert_eq!(
        replay(token, json, br#"{"ids":[]}"#.to_vec()).await?,
        (400, "bad_body".into())
    );
    let many = json!({ "ids": vec!["x"; 10_001] }).to_string().into_bytes();
    assert_eq!(replay(token, json, many).await?, (400, "bad_body".into()));

    // `limit`: any non-negative integer, clamped; anything else is a bad parameter.
    for huge in [
        "4294967296",
        "18446744073709551615",
        "99999999999999999999999",
    ] {
        let (status, page) =
            get_json(&client, &server, &format!("/v1/events?limit={huge}")).await?;
        assert_eq!(status, 200, "limit={huge}: {page}");
    }
    for bad in ["-1", "ten", "1.5"] {
        let (status, page) = get_json(&client, &server, &format!("/v1/events?limit={bad}")).await?;
        assert_eq!(
            (status, page["error"].as_str()),
            (400, Some("bad_parameter")),
            "limit={bad}"
        );
    }
    Ok(())
}

//! Hostile and broken clients against the real binary on loopback (issue 14): a half-open
//! flood under a low descriptor limit, idle keep-alive and half-open connections, poison
//! envelope fields followed by every read path, a far-future timestamp, a panicking
//! handler, and a feed peer that never answers a ping. Each test is bounded in time and checks
//! that the server keeps answering and that nothing it acknowledged is lost.

use std::time::{Duration, Instant};

use baddybugs_tests::server::{
    batch_body, get_json, post_as_agent, wait_for, ServerOptions, TestServer, FEED_TOKEN,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn server_with(config: &str, options: ServerOptions) -> anyhow::Result<TestServer> {
    let dir = std::env::temp_dir().join(format!("bb-adversarial-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("adversarial.toml");
    std::fs::write(&path, format!("[batch]\nflush_interval_ms = 100\n{config}"))?;
    let mut options = options;
    options
        .args
        .extend(["--config".into(), path.display().to_string()]);
    TestServer::start_with(options)
}

/// A client that never reuses a connection and gives up quickly: a hang is a failure.
fn quick_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()?)
}

/// The value of a Prometheus sample (`name{labels}`), 0 when absent.
async fn metric(client: &reqwest::Client, server: &TestServer, sample: &str) -> f64 {
    let Ok(response) = client.get(server.url("/metrics")).send().await else {
        return f64::NAN;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn log_event(id: &str, trace: &str) -> String {
    format!(
        r#"{{"id":"{id}","trace_id":"{trace}","env":"production","type":"log","name":"app","payload":{{"level":"info","message":"m {id}"}},"timestamp":1749567234.5}}"#
    )
}

/// Reads until the peer closes; returns what was read, or fails after `within`.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => anyhow::bail!("the connection was still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn half_open_flood_under_a_low_descriptor_limit_keeps_healthz_and_ingest_answering(
) -> anyhow::Result<()> {
    // 256 descriptors: 128 kept for files, 32 for the operator reserve, 96 connections. The
    // head timeout is long, so only the budget (not a timeout) can save the server here.
    let server = server_with(
        "[connections]\nheader_read_timeout_ms = 120000\n",
        ServerOptions {
            nofile_limit: Some(256),
            ..Default::default()
        },
    )?;
    let client = quick_client()?;
    // 300 connections that send nothing, and 50 that send half a request line.
    let mut flood = Vec::new();
    for i in 0..350 {
        let mut stream = TcpStream::connect(&server.addr).await?;
        if i % 7 == 0 {
            stream.write_all(b"POST /v1/ing").await?;
        }
        flood.push(stream);
    }
    // The server is still answering, quickly, while every flood socket is still open.
    let started = Instant::now();
    let health = client.get(server.url("/healthz")).send().await?;
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    let ids = ["adv-flood-1", "adv-flood-2"];
    let body = batch_body(&[&log_event(ids[0], "t-flood"), &log_event(ids[1], "t-flood")]);
    let (status, answer) = post_as_agent(&client, &server, &body).await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let shed = metric(
        &client,
        &server,
        "baddybugs_ingest_connections_closed_total{reason=\"shed_half_open\"}",
    )
    .await;
    assert!(shed >= 200.0, "half-open connections shed: {shed}");
    let errors = metric(&client, &server, "baddybugs_ingest_accept_errors_total").await;
    assert_eq!(errors, 0.0, "the budget kept accept() from running out");
    // What was acknowledged is stored.
    wait_for(Duration::from_secs(20), "the flood-time events", || async {
        let (_, page) = get_json(&client, &server, "/v1/events?trace_id=t-flood")
            .await
            .ok()?;
        (page["events"].as_array()?.len() == 2).then_some(())
    })
    .await?;
    // The oldest flood sockets were closed by the server.
    let closed = read_to_close(&mut flood[0], Duration::from_secs(5)).await?;
    assert!(closed.is_empty(), "closed without an answer");
    drop(flood);
    Ok(())
}

#[tokio::test]
async fn idle_keep_alive_and_half_open_connections_are_closed() -> anyhow::Result<()> {
    let server = server_with(
        "[connections]\nheader_read_timeout_ms = 1000\nkeep_alive_idle_timeout_ms = 1500\n",
        ServerOptions::default(),
    )?;
    let started = Instant::now();
    // Idle after one response on a keep-alive connection.
    let mut idle = TcpStream::connect(&server.addr).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    // Nothing sent, and half a request head.
    let mut silent = TcpStream::connect(&server.addr).await?;
    let mut partial = TcpStream::connect(&server.addr).await?;
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHo").await?;

    let answered = read_to_close(&mut idle, Duration::from_secs(10)).await?;
    let idle_for = started.elapsed();
    let text = String::from_utf8_lossy(&answered);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        idle_for >= Duration::from_millis(1400),
        "kept alive for the idle timeout, not less: {idle_for:?}"
    );
    assert!(read_to_close(&mut silent, Duration::from_secs(10))
        .await?
        .is_empty());
    assert!(read_to_close(&mut partial, Duration::from_secs(10))
        .await?
        .is_empty());

    let client = quick_client()?;
    let sample =
        |reason: &str| format!("baddybugs_ingest_connections_closed_total{{reason=\"{reason}\"}}");
    assert!(metric(&client, &server, &sample("idle_timeout")).await >= 1.0);
    assert!(metric(&client, &server, &sample("header_timeout")).await >= 2.0);
    // A connection in active use is not cut by these timeouts: a slow but steady client.
    let mut steady = TcpStream::connect(&server.addr).await?;
    for _ in 0..3 {
        steady
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), steady.read(&mut buf)).await??;
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a request on the feed and returns its answer (`result` or `error`) within 20 s.
async fn ask(ws: &mut Ws, request: Value) -> anyhow::Result<Value> {
    let id = request["id"].clone();
    ws.send(Message::Text(request.to_string())).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no answer to {request} within 20 s"))?
            .ok_or_else(|| anyhow::anyhow!("feed closed"))??;
        let Message::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(text.as_str())?;
        if value["id"] == id {
            return Ok(value);
        }
    }
}

/// The deepest nesting of a JSON text (strings skipped).
fn depth(text: &str) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
        } else if b == b'"' {
            in_str = true;
        } else if b == b'[' || b == b'{' {
            d += 1;
            max = max.max(d);
        } else if b == b']' || b == b'}' {
            d = d.saturating_sub(1);
        }
    }
    max
}

#[tokio::test]
async fn poison_envelope_fields_are_rejected_alone_and_every_read_path_still_answers(
) -> anyhow::Result<()> {
    let server = server_with("", ServerOptions::default())?;
    let client = quick_client()?;
    let trace = "t-poison";
    let deep_context = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    // Valid (under the 128-level limit) but deeper than a page may render.
    let deep_payload = format!("{}\"x\"{}", "[".repeat(100), "]".repeat(100));
    let events = [
        log_event("adv-poison-ok-1", trace),
        r#"{"id":"adv-poison-memory","trace_id":"t-poison","type":"log","memory":1e400,"payload":{"level":"info","message":"m"}}"#.to_owned(),
        format!(r#"{{"id":"adv-poison-context","trace_id":"t-poison","type":"log","payload":{{"level":"info","message":"m"}},"context":{deep_context}}}"#),
        format!(r#"{{"id":"adv-poison-deep","trace_id":"t-poison","type":"log","payload":{{"level":"info","message":"m","extra":{deep_payload}}},"timestamp":1749567234.6}}"#),
        log_event("adv-poison-ok-2", trace),
    ];
    let texts: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, answer) = post_as_agent(&client, &server, &batch_body(&texts)).await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(3), Some(2)),
        "{answer}"
    );
    let reasons: Vec<(u64, String, String)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = &e["reasons"][0];
            (
                e["index"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (1, "invalid_json".to_owned(), "/memory".to_owned()),
            (2, "too_deep".to_owned(), "/context".to_owned())
        ]
    );

    // REST: every stored event of the trace, the deep one with a marker, in a shallow page.
    let page = wait_for(Duration::from_secs(20), "the stored events", || async {
        let response = client
            .get(server.url(&format!("/v1/events?trace_id={trace}")))
            .header("Authorization", format!("Bearer {FEED_TOKEN}"))
            .send()
            .await
            .ok()?;
        let text = response.text().await.ok()?;
        let page: Value = serde_json::from_str(&text).ok()?;
        (page["events"].as_array()?.len() == 3).then_some(text)
    })
    .await?;
    assert!(depth(&page) <= 100, "page depth {}", depth(&page));
    let page: Value = serde_json::from_str(&page)?;
    let deep = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "adv-poison-deep")
        .expect("the deep event is listed");
    assert_eq!(deep["unrenderable"][0]["field"], "data", "{deep}");
    assert_eq!(deep["unrenderable"][0]["reason"], "too_deep");
    // The stored text, whole, for the parsers that do read 100 levels.
    let text = deep["data"].as_str().expect("data returned as text");
    assert!(text.starts_with(r#"{"level":"info""#) && text.contains(&deep_payload));
    let (status, one) = get_json(&client, &server, "/v1/events/adv-poison-deep").await?;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["unrenderable"][0]["reason"], "too_deep");

    // Nothing lost: the two rejected events are in the quarantine.
    let (_, malformed) = get_json(&client, &server, "/v1/malformed").await?;
    let quarantined: Vec<&str> = malformed["malformed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["event_id"].as_str())
        .collect();
    assert!(
        quarantined.contains(&"adv-poison-memory") && quarantined.contains(&"adv-poison-context")
    );

    // The feed: events, trace and get all answer (issue 14: trace used to panic).
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}?token={FEED_TOKEN}", server.feed_url()))
            .await?;
    let events = ask(
        &mut ws,
        json!({"op":"query","id":"q-events","kind":"events","params":{"trace_id":trace}}),
    )
    .await?;
    assert_eq!(events["kind"], "result", "{events}");
    assert_eq!(events["data"]["events"].as_array().unwrap().len(), 3);
    let trace_answer = ask(
        &mut ws,
        json!({"op":"query","id":"q-trace","kind":"trace","params":{"trace_id":trace}}),
    )
    .await?;
    assert_eq!(trace_answer["kind"], "result", "{trace_answer}");
    assert_eq!(trace_answer["data"]["events"].as_array().unwrap().len(), 3);
    for id in ["adv-poison-ok-1", "adv-poison-deep", "adv-poison-ok-2"] {
        let got = ask(
            &mut ws,
            json!({"op":"get","id":format!("g-{id}"),"event_id":id}),
        )
        .await?;
        assert_eq!(got["kind"], "result", "{got}");
        assert_eq!(got["data"]["id"], id);
        assert!(!got["data"]["data"].is_null(), "{got}");
    }
    assert_eq!(
        client.get(server.url("/healthz")).send().await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn a_far_future_timestamp_is_ordered_by_receipt_and_warned() -> anyhow::Result<()> {
    let server = server_with("", ServerOptions::default())?;
    let client = quick_client()?;
    let future = r#"{"id":"adv-future","trace_id":"t-future","type":"log","payload":{"level":"info","message":"m"},"timestamp":99999999999}"#;
    let before = chrono::Utc::now().timestamp_millis();
    let (status, answer) = post_as_agent(
        &client,
        &server,
        &batch_body(&[future, &log_event("adv-now", "t-future")]),
    )
    .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["warnings"][0]["index"], 0, "{answer}");
    let warning = &answer["warnings"][0]["reasons"][0];
    assert_eq!(warning["code"], "future_timestamp", "{answer}");
    assert_eq!(warning["path"], "/timestamp");
    let stored = wait_for(Duration::from_secs(20), "the future event", || async {
        let (status, event) = get_json(&client, &server, "/v1/events/adv-future")
            .await
            .ok()?;
        (status == 200).then_some(event)
    })
    .await?;
    assert_eq!(stored["timestamp_source"], "received", "{stored}");
    let at = chrono::DateTime::parse_from_rfc3339(stored["timestamp"].as_str().unwrap())?
        .timestamp_millis();
    assert!(
        (before - 5_000..=chrono::Utc::now().timestamp_millis()).contains(&at),
        "ordered by receipt: {stored}"
    );
    assert_eq!(
        stored["envelope"]["timestamp"], 99999999999u64,
        "original kept"
    );
    let counted = metric(
        &client,
        &server,
        "baddybugs_ingest_event_warnings_total{reason=\"future_timestamp\"}",
    )
    .await;
    assert_eq!(counted, 1.0);
    Ok(())
}

#[tokio::test]
async fn a_panicking_handler_is_answered_500_logged_and_the_server_keeps_answering(
) -> anyhow::Result<()> {
    let server = server_with(
        "",
        ServerOptions {
            env: vec![("BADDYBUGS_DEBUG_PANIC_ROUTE".into(), "1".into())],
            ..Default::default()
        },
    )?;
    let client = quick_client()?;
    let response = client
        .get(server.url("/v1/debug/panic?token=secret-in-query"))
        .send()
        .await?;
    if response.status() == 404 {
        println!("skipped: this build has no debug panic route (release profile)");
        return Ok(());
    }
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await?;
    assert_eq!(body["error"], "internal", "{body}");
    assert_eq!(
        client.get(server.url("/healthz")).send().await?.status(),
        200
    );
    let body = batch_body(&[&log_event("adv-after-panic", "t-panic")]);
    let (status, answer) = post_as_agent(&client, &server, &body).await?;
    assert_eq!((status, answer["accepted"].as_u64()), (202, Some(1)));
    let line = wait_for(
        Duration::from_secs(10),
        "the panic in the log file",
        || async {
            server
                .log_text()
                .lines()
                .find(|l| l.contains("a request handler panicked"))
                .map(str::to_owned)
        },
    )
    .await?;
    assert!(
        line.contains("/v1/debug/panic") && line.contains("GET"),
        "{line}"
    );
    assert!(
        !line.contains("secret-in-query"),
        "no query string in the log: {line}"
    );
    assert_eq!(
        metric(&client, &server, "baddybugs_ingest_handler_panics_total").await,
        1.0
    );
    Ok(())
}

/// The opcodes of the unmasked frames a server sent, in order (a cut-off last frame is left
/// out).
fn opcodes(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 if bytes.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if bytes.len() < header + len {
            break;
        }
        out.push(bytes[0] & 0x0f);
        bytes = &bytes[header + len..];
    }
    out
}

#[tokio::test]
async fn a_feed_peer_that_never_answers_a_ping_is_closed_while_a_reading_one_stays(
) -> anyhow::Result<()> {
    let (interval, timeout) = (Duration::from_millis(300), Duration::from_millis(700));
    let server = server_with(
        &format!(
            "[connections]\nwebsocket_ping_interval_ms = {}\nwebsocket_pong_timeout_ms = {}\n",
            interval.as_millis(),
            timeout.as_millis()
        ),
        ServerOptions::default(),
    )?;
    let client = quick_client()?;
    let dead_peers = "baddybugs_ingest_connections_closed_total{reason=\"dead_peer\"}";

    // A raw client: the upgrade, its 101 read, then never a read or a write again.
    let started = Instant::now();
    let mut silent = TcpStream::connect(&server.addr).await?;
    silent
        .write_all(
            format!(
                "GET /v1/feed?token={FEED_TOKEN} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
        .await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(5), silent.read_exact(&mut byte)).await??;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // A well-behaved client: tokio-tungstenite, reading all the time (its pongs go out with
    // its reads), sending nothing of its own.
    let (mut reading, _) =
        tokio_tungstenite::connect_async(format!("{}?token={FEED_TOKEN}", server.feed_url()))
            .await?;
    let pings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = tokio::spawn({
        let pings = pings.clone();
        async move {
            while let Some(frame) = reading.next().await {
                match frame {
                    Ok(Message::Ping(_)) => {
                        pings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    });

    wait_for(
        Duration::from_secs(15),
        "the silent peer closed",
        || async { (metric(&client, &server, dead_peers).await >= 1.0).then_some(()) },
    )
    .await?;
    assert!(
        started.elapsed() >= interval + timeout,
        "closed after a ping went unanswered for the timeout, not before: {:?}",
        started.elapsed()
    );
    // It was pinged, then sent a close frame, then the socket was closed.
    let sent = read_to_close(&mut silent, Duration::from_secs(5)).await?;
    let ops = opcodes(&sent);
    assert_eq!(ops.first(), Some(&0x1), "hello first: {ops:?}");
    assert!(ops.contains(&0x9), "pinged: {ops:?}");
    assert_eq!(ops.last(), Some(&0x8), "a close frame last: {ops:?}");

    // The reading client answered every ping: still connected several timeouts later.
    let seen = pings.load(std::sync::atomic::Ordering::SeqCst);
    wait_for(Duration::from_secs(15), "more pings answered", || async {
        (pings.load(std::sync::atomic::Ordering::SeqCst) >= seen + 4).then_some(())
    })
    .await?;
    assert!(!reader.is_finished(), "the reading client stays connected");
    assert_eq!(metric(&client, &server, dead_peers).await, 1.0);
    wait_for(Duration::from_secs(5), "one feed client listed", || async {
        (metric(&client, &server, "baddybugs_ingest_feed_clients").await == 1.0).then_some(())
    })
    .await?;
    reader.abort();
    Ok(())
}

/// An idle keep-alive connection is closed at its idle timeout, even when that is shorter than
/// the head timeout (the connection task used to wait on the head's deadline, taken before the
/// request, and only then notice the connection was idle: closed after 5 s, not 0.5 s).
#[tokio::test]
async fn an_idle_connection_is_closed_at_its_idle_timeout_not_later() -> anyhow::Result<()> {
    let server = server_with(
        "[connections]\nheader_read_timeout_ms = 5000\nkeep_alive_idle_timeout_ms = 500\n",
        ServerOptions::default(),
    )?;
    let mut idle = TcpStream::connect(&server.addr).await?;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await??;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    assert!(read_to_close(&mut idle, Duration::from_secs(10))
        .await?
        .is_empty());
    let idle_for = answered.elapsed();
    assert!(
        idle_for >= Duration::from_millis(450) && idle_for < Duration::from_secs(3),
        "closed {idle_for:?} after the answer; the idle timeout is 500 ms, the head's 5 s"
    );
    Ok(())
}

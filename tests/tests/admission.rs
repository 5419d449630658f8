//! The ingest front door against clients that stall, trickle or replay (issue 14): stalled
//! uploads hold no permit (others, from the same key, are served meanwhile) and end in 408;
//! a trickled body ends in 408; a replayed signed request is not stored again; a key given
//! with a secret requires signatures by default; `/readyz` tells strangers no paths or errors.

use std::time::{Duration, Instant};

use baddybugs_tests::server::{
    batch_body, get_json, gzip, post_as_agent, sign, wait_for, ServerOptions, TestServer, API_KEY,
    SECRET,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn log_event(message: &str) -> String {
    format!(
        r#"{{"type":"log","name":"admission","payload":{{"level":"info","message":"{message}"}}}}"#
    )
}

/// Opens a connection that sends a request head and the first bytes of a body, then stalls.
async fn stalled_upload(server: &TestServer) -> anyhow::Result<TcpStream> {
    let mut socket = TcpStream::connect(&server.addr).await?;
    let head = format!(
        "POST /v1/ingest HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"eve",
        server.addr
    );
    socket.write_all(head.as_bytes()).await?;
    Ok(socket)
}

/// Reads what the server answers on a raw connection, until it closes or `timeout`.
async fn read_answer(socket: &mut TcpStream, timeout: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn options(args: &[&str]) -> ServerOptions {
    ServerOptions {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn stalled_uploads_hold_no_permit_and_end_in_408() -> anyhow::Result<()> {
    // Twice as many stalled uploads as work permits, all from the key that then posts.
    let server = TestServer::start_with(ServerOptions {
        env: vec![
            (
                "BADDYBUGS_INGEST__MAX_CONCURRENT_REQUESTS".into(),
                "4".into(),
            ),
            (
                "BADDYBUGS_INGEST__BODY_IDLE_TIMEOUT_MS".into(),
                "3000".into(),
            ),
            ("BADDYBUGS_INGEST__BODY_GRACE_MS".into(), "60000".into()),
        ],
        ..ServerOptions::default()
    })?;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(stalled_upload(&server).await?);
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    let (status, body) =
        post_as_agent(&client, &server, &batch_body(&[&log_event("served")])).await?;
    let served_in = started.elapsed();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert!(
        served_in < Duration::from_millis(2500),
        "served while 8 uploads of the same key stall (in {served_in:?}), not after they time out"
    );
    for socket in &mut stalled {
        let answer = read_answer(socket, Duration::from_secs(15)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(
            answer.contains("body_timeout") || answer.contains("408"),
            "{answer}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_trickled_body_ends_in_408() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("BADDYBUGS_INGEST__BODY_GRACE_MS".into(), "1000".into())],
        ..ServerOptions::default()
    })?;
    let body = batch_body(&[&log_event("trickled")]);
    let mut socket = TcpStream::connect(&server.addr).await?;
    let head = format!(
        "POST /v1/ingest HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    let started = Instant::now();
    let mut answer = String::new();
    for byte in body.as_bytes() {
        if socket.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        // Wait 400 ms for an answer between bytes: 2.5 bytes/s, far under 1 KiB/s.
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(400), socket.read(&mut buf)).await
        {
            answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("body_min_bytes_per_sec"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    Ok(())
}

#[tokio::test]
async fn a_replayed_signed_request_is_not_stored_again() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    // Events without ids: only the signature can tell the copy from a new request.
    let body = batch_body(&[&log_event("replayed-1"), &log_event("replayed-2")]);
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = sign(SECRET, &timestamp, body.as_bytes());
    let post = || {
        client
            .post(server.url("/v1/ingest"))
            .header("Authorization", format!("Bearer {API_KEY}"))
            .header("Content-Encoding", "gzip")
            .header("X-Timestamp", &timestamp)
            .header("X-Signature", &signature)
            .body(gzip(body.as_bytes()))
            .send()
    };
    let first: serde_json::Value = post().await?.json().await?;
    assert_eq!(first["accepted"], 2, "{first}");
    let second = post().await?;
    assert_eq!(second.status(), 202);
    let second: serde_json::Value = second.json().await?;
    assert_eq!(second["accepted"], 0, "{second}");
    assert_eq!(second["duplicates"], 2, "{second}");
    // Once the store has caught up, the two events are there once.
    wait_for(Duration::from_secs(30), "the store to catch up", || async {
        let (_, stats) = get_json(&client, &server, "/v1/stats").await.ok()?;
        (stats["sink"]["lag_events"].as_u64() == Some(0)
            && stats["sink"]["written_events"].as_u64() >= Some(2))
        .then_some(())
    })
    .await?;
    let (_, page) = get_json(&client, &server, "/v1/events?type=log&limit=100").await?;
    let stored = page["events"].as_array().map_or(0, Vec::len);
    assert_eq!(stored, 2, "{page}");
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("baddybugs_ingest_replayed_signatures_total 1"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn a_key_given_with_a_secret_requires_signatures_unless_optional() -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let unsigned = |server: &TestServer| {
        client
            .post(server.url("/v1/ingest"))
            .header("Authorization", "Bearer strict-key")
            .body(batch_body(&[&log_event("unsigned")]))
            .send()
    };
    let mut strict = options(&["--api-key", "strict-key:strict-secret"]);
    strict.no_credentials = true;
    let server = TestServer::start_with(strict)?;
    let answer = unsigned(&server).await?;
    assert_eq!(answer.status(), 401);
    assert!(answer.text().await?.contains("signature_required"));

    let mut relaxed = options(&["--api-key", "strict-key:strict-secret:optional"]);
    relaxed.no_credentials = true;
    let server = TestServer::start_with(relaxed)?;
    assert_eq!(unsigned(&server).await?.status(), 202);
    Ok(())
}

#[tokio::test]
async fn readyz_without_the_token_gives_no_detail() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let client = reqwest::Client::new();
    let public: serde_json::Value = client
        .get(server.url("/readyz"))
        .send()
        .await?
        .json()
        .await?;
    let keys: Vec<&String> = public.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ready", "reasons"], "{public}");
    assert!(!public
        .to_string()
        .contains(&server.data_dir.display().to_string()));
    let (_, detailed) = get_json(&client, &server, "/readyz").await?;
    assert!(detailed["store"].is_object(), "{detailed}");
    Ok(())
}

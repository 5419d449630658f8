//! Durability drills against the real binary: `kill -9` under load, a store outage with the
//! spool absorbing the load up to its quota (then 503 + Retry-After), a spool write failure
//! (503, `/readyz` reason, restart), and recovery — every acknowledged event stored exactly
//! once, nothing refused stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baddybugs_tests::load::{assert_stored_exactly_once, load};
use baddybugs_tests::server::{
    batch_body, count_events, get_json, post_as_agent, wait_for, ServerOptions, TestServer, API_KEY,
};
use tokio::sync::Mutex;

#[tokio::test]
async fn kill_9_under_load_loses_no_acknowledged_event() -> anyhow::Result<()> {
    let mut server = TestServer::start()?;
    let client = reqwest::Client::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(HashMap::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(load(
                client.clone(),
                server.url("/v1/ingest"),
                "t-crash",
                w,
                stop.clone(),
                acked.clone(),
                statuses.clone(),
            ))
        })
        .collect();
    // Crash once enough has been acknowledged, while requests are in flight.
    wait_for(Duration::from_secs(30), "load acknowledged", || async {
        (acked.lock().await.len() >= 2_000).then_some(())
    })
    .await?;
    server.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await?;
    }
    server.restart()?;
    let acked = acked.lock().await.clone();
    assert!(acked.len() >= 2_000);
    assert_stored_exactly_once(&client, &server, "t-crash", &acked).await
}

#[tokio::test]
async fn store_outage_spool_absorbs_then_503_then_recovers() -> anyhow::Result<()> {
    // A small spool quota so the drill reaches it quickly.
    let mut server = TestServer::start_with(ServerOptions {
        config_toml: Some("[spool]\nsegment_bytes = 65536\nquota_bytes = 1048576\n[batch]\nflush_interval_ms = 100\nretry_max_ms = 500\n".into()),
        ..Default::default()
    })?;
    let client = reqwest::Client::new();

    // Make the embedded store fail.
    baddybugs_tests::faults::break_store(&server.data_dir)?;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(HashMap::new()));
    let worker = tokio::spawn(load(
        client.clone(),
        server.url("/v1/ingest"),
        "t-outage",
        1,
        stop.clone(),
        acked.clone(),
        statuses.clone(),
    ));
    // 202s continue while the store is down, /readyz says why, then the quota gives 503.
    let started = Instant::now();
    wait_for(
        Duration::from_secs(60),
        "503 once the spool quota is reached",
        || async { (statuses.lock().await.get(&503).copied().unwrap_or(0) > 0).then_some(()) },
    )
    .await?;
    assert!(
        statuses.lock().await.get(&202).copied().unwrap_or(0) > 0,
        "202s while the store was down"
    );
    let (status, ready) = get_json(&client, &server, "/readyz").await?;
    assert_eq!(status, 503, "{ready}");
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains("store") && reasons.contains("spool quota"),
        "{reasons}"
    );
    let response = client
        .post(server.url("/v1/ingest"))
        .header("Authorization", format!("Bearer {API_KEY}"))
        .body(format!(
            r#"{{"events":[{{"type":"log","name":"error","payload":{{"message":"{}"}}}}]}}"#,
            "x".repeat(64 << 10)
        ))
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.await?;
    let _ = started;
    // The lag is counted in events: every acknowledged event waits in the spool (the store was
    // broken before the first request), however many requests carried them. The gauge is
    // refreshed every second.
    let acked_count = acked.lock().await.len() as u64;
    wait_for(
        Duration::from_secs(10),
        "sink.lag_events = the acknowledged events",
        || async {
            let (_, stats) = get_json(&client, &server, "/v1/stats").await.ok()?;
            (stats["sink"]["lag_events"].as_u64() == Some(acked_count)
                && stats["sink"]["written_events"].as_u64() == Some(0))
            .then_some(())
        },
    )
    .await?;

    // Restore the store: everything acknowledged arrives, nothing twice; ingest resumes.
    baddybugs_tests::faults::repair_store(&server.data_dir)?;
    let acked = acked.lock().await.clone();
    assert_stored_exactly_once(&client, &server, "t-outage", &acked).await?;
    wait_for(Duration::from_secs(30), "ready again", || async {
        let (status, _) = get_json(&client, &server, "/readyz").await.ok()?;
        (status == 200).then_some(())
    })
    .await?;
    server.terminate()?;
    Ok(())
}

/// Posts one batch of 5 `cache` events of `trace` with fresh ids; returns the status and ids.
async fn post_batch(
    client: &reqwest::Client,
    server: &TestServer,
    trace: &str,
    batch: usize,
) -> anyhow::Result<(u16, Vec<String>)> {
    let ids: Vec<String> = (0..5)
        .map(|i| format!("5f00{batch:04x}-0000-4000-8000-{i:012}"))
        .collect();
    let events = baddybugs_tests::load::cache_events(&ids, trace);
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, _) = post_as_agent(client, server, &batch_body(&refs)).await?;
    Ok((status, ids))
}

/// Issue 15: the kernel refuses writes and truncates of the active spool segment. The batch
/// that hits it gets a 503, the writer stops (it cannot cut the failed write off) and every
/// later batch gets a 503 too; `/readyz` says why; the acknowledged events are still stored.
/// After a restart, everything acknowledged is stored once, nothing refused is stored, and
/// ingest works again.
#[tokio::test]
async fn spool_write_failure_stops_ingest_and_the_restart_stores_only_what_was_acknowledged(
) -> anyhow::Result<()> {
    let trace = "t-spoolfail";
    let mut server = TestServer::start()?;
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for batch in 0..4 {
        let (status, ids) = post_batch(&client, &server, trace, batch).await?;
        assert_eq!(status, 202);
        acked.extend(ids);
    }
    let segment = baddybugs_tests::faults::active_spool_segment(&server.data_dir)?;
    let frozen = baddybugs_tests::faults::Immutable::set(&segment)?;

    let mut refused = Vec::new();
    for batch in 4..7 {
        let (status, ids) = post_batch(&client, &server, trace, batch).await?;
        assert_eq!(
            status, 503,
            "batch {batch} while the segment refuses writes"
        );
        refused.extend(ids);
    }
    let (status, ready) = get_json(&client, &server, "/readyz").await?;
    assert_eq!(status, 503, "{ready}");
    let reasons = ready["reasons"].to_string();
    assert!(
        reasons.contains("spool writer stopped") && reasons.contains("permission_denied"),
        "{reasons}"
    );
    let (_, metrics) = {
        let response = client.get(server.url("/metrics")).send().await?;
        (response.status(), response.text().await?)
    };
    assert!(
        metrics.contains(
            r#"baddybugs_ingest_spool_errors_total{op="write",kind="permission_denied"} 1"#
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("spool_errors"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Reads go on: what was acknowledged reaches the store while ingest is refused.
    assert_stored_exactly_once(&client, &server, trace, &acked).await?;

    server.kill9();
    frozen.clear()?;
    server.restart()?;
    // A new client: the old one's pooled connections went with the killed process.
    let client = reqwest::Client::new();
    let (status, ids) = post_batch(&client, &server, trace, 7).await?;
    assert_eq!(status, 202, "ingest works again after the restart");
    acked.extend(ids);
    assert_stored_exactly_once(&client, &server, trace, &acked).await?;
    // Everything in the spool is stored (lag 0), so a refused record that had survived would
    // be in the store by now.
    wait_for(Duration::from_secs(30), "sink lag 0", || async {
        let (_, stats) = get_json(&client, &server, "/v1/stats").await.ok()?;
        (stats["sink"]["lag_events"].as_u64() == Some(0)).then_some(())
    })
    .await?;
    let stored = count_events(&client, &server, &format!("trace_id={trace}")).await?;
    let leaked: Vec<&String> = refused.iter().filter(|id| stored.contains(id)).collect();
    assert!(leaked.is_empty(), "refused events were stored: {leaked:?}");
    assert_eq!(stored.len(), acked.len());
    server.terminate()?;
    Ok(())
}

/// Issue 15: the spool's disk fills up. A write that finds no space is answered 503 and cut
/// off; once the store has the spooled records, their segments must be deleted although the
/// checkpoint file (replaced through a new file) cannot be written on the full disk: before the
/// fix nothing was ever freed and ingest answered 503 for good (found by
/// `scripts/drills.sh --only 9`). Made deterministic: the store is down while the spool fills,
/// then the rest of the disk is filled with a ballast file, then the store comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_disk_frees_itself_once_the_store_has_the_records() -> anyhow::Result<()> {
    let mut server = TestServer::start_with(ServerOptions {
        config_toml: Some(
            "[spool]\nsegment_bytes = 262144\nquota_bytes = 1073741824\n\
             [batch]\nflush_interval_ms = 100\nretry_max_ms = 200\n"
                .into(),
        ),
        ..Default::default()
    })?;
    assert!(server.terminate()?, "clean stop");
    let spool = server.data_dir.join("spool");
    std::fs::remove_dir_all(&spool)?;
    std::fs::create_dir(&spool)?;
    let _disk = baddybugs_tests::faults::SmallDisk::mount(&spool, "2m")?;
    server.restart()?;

    let client = reqwest::Client::new();
    let padding = "x".repeat(2_000);
    let body_of = |batch: usize| {
        let events: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"id":"full-{batch}-{i}","trace_id":"t-full","env":"production","type":"cache","name":"k:{batch}:{i}:{padding}","payload":{{"action":"miss","store":"redis","tags":[]}},"timestamp":1749567234.25}}"#))
            .collect();
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        batch_body(&refs)
    };

    // The store is down: ten batches (~1.1 MiB) wait in the spool, over several segments.
    baddybugs_tests::faults::break_store(&server.data_dir)?;
    for batch in 0..10 {
        let (status, answer) = post_as_agent(&client, &server, &body_of(batch)).await?;
        assert_eq!(status, 202, "batch {batch}: {answer}");
    }
    // The rest of the disk: a ballast file, written until the disk says no.
    {
        use std::io::Write;
        let mut ballast = std::fs::File::create(spool.join("ballast"))?;
        let page = vec![0u8; 4096];
        while ballast.write_all(&page).is_ok() {}
    }
    let (status, answer) = post_as_agent(&client, &server, &body_of(10)).await?;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.to_string().contains("no_space"), "{answer}");

    // The store is back: it takes the ten batches, their segments go, ingest resumes.
    baddybugs_tests::faults::repair_store(&server.data_dir)?;
    let body = body_of(10);
    let accepted = wait_for(
        Duration::from_secs(60),
        "ingest to accept again",
        || async {
            let (status, answer) = post_as_agent(&client, &server, &body).await.ok()?;
            (status == 202).then_some(answer)
        },
    )
    .await?;
    assert_eq!(accepted["accepted"], 50, "{accepted}");
    baddybugs_tests::server::wait_until_stored(&client, &server, Duration::from_secs(120)).await?;
    let stored = count_events(&client, &server, "trace_id=t-full").await?;
    assert_eq!(
        stored.len(),
        11 * 50,
        "every acknowledged event stored once"
    );
    Ok(())
}

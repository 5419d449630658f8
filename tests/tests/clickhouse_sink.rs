//! The real binary with ClickHouse as its store (the real ClickHouse engine: chDB behind
//! `tests/clickhouse/chfront.py`, or `CLICKHOUSE_URL`): an outage under load, `kill -9` under
//! load, a row ClickHouse refuses, the schema applied twice or by a DBA, and schema drift shared
//! by two nodes through ClickHouse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baddybugs_ingest::config::ClickHouseConfig;
use baddybugs_ingest::sink::clickhouse::ClickHouseStore;
use baddybugs_tests::clickhouse::{server_on, ClickHouseFront};
use baddybugs_tests::load::{assert_stored_exactly_once, load};
use baddybugs_tests::server::{batch_body, get_json, post_as_agent, wait_for, TestServer};
use tokio::sync::Mutex;

struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    statuses: Arc<Mutex<HashMap<u16, u64>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(server: &TestServer, trace: &'static str, workers: usize) -> Load {
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(HashMap::new()));
    let handles = (0..workers)
        .map(|w| {
            tokio::spawn(load(
                client.clone(),
                server.url("/v1/ingest"),
                trace,
                w,
                stop.clone(),
                acked.clone(),
                statuses.clone(),
            ))
        })
        .collect();
    Load {
        stop,
        acked,
        statuses,
        workers: handles,
    }
}

impl Load {
    async fn acked(&self) -> usize {
        self.acked.lock().await.len()
    }

    async fn wait_acked(&self, at_least: usize) -> anyhow::Result<()> {
        wait_for(
            Duration::from_secs(60),
            &format!("{at_least} events acknowledged"),
            || async { (self.acked().await >= at_least).then_some(()) },
        )
        .await
    }

    async fn finish(self) -> anyhow::Result<Vec<String>> {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await?;
        }
        let acked = self.acked.lock().await.clone();
        Ok(acked)
    }
}

#[tokio::test]
#[cfg_attr(
    external_clickhouse,
    ignore = "CLICKHOUSE_URL is set: an external server cannot be stopped (see tests/build.rs)"
)]
async fn clickhouse_outage_spool_absorbs_and_every_acknowledged_event_arrives_once(
) -> anyhow::Result<()> {
    let mut front = ClickHouseFront::start().await?;
    if front.is_external() {
        anyhow::bail!("CLICKHOUSE_URL is set: the outage drill needs a server it can stop");
    }
    let db = front.fresh_database("outage").await?;
    let server = server_on(&front, &db, &[])?;
    let client = reqwest::Client::new();
    let load = start_load(&server, "t-ch-outage", 3);
    load.wait_acked(1_000).await?;

    // ClickHouse goes away: ingest keeps answering 202, the spool grows, /readyz says why.
    front.stop();
    let before = load.acked().await;
    load.wait_acked(before + 1_000).await?;
    let (status, ready) = wait_for(
        Duration::from_secs(30),
        "/readyz reports the outage",
        || async {
            let (status, ready) = get_json(&client, &server, "/readyz").await.ok()?;
            (status == 503).then_some((status, ready))
        },
    )
    .await?;
    assert_eq!(status, 503);
    let reasons = ready["reasons"].to_string();
    assert!(reasons.contains("store"), "{ready}");
    assert_eq!(ready["store"]["kind"], "clickhouse", "{ready}");
    assert!(
        ready["spool"]["bytes_on_disk"].as_u64().unwrap_or(0) > 0,
        "{ready}"
    );
    assert_eq!(
        load.statuses
            .lock()
            .await
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![202],
        "only 202s during the outage"
    );

    // Back: everything acknowledged arrives, nothing twice.
    front.restart()?;
    let before = load.acked().await;
    load.wait_acked(before + 500).await?;
    let acked = load.finish().await?;
    assert_stored_exactly_once(&client, &server, "t-ch-outage", &acked).await?;
    let counts = front
        .query_text(&format!(
            "SELECT count(), uniqExact(event_id) FROM `{db}`.events WHERE trace_id = 't-ch-outage'"
        ))
        .await?;
    assert_eq!(
        counts.trim(),
        format!("{}\t{}", acked.len(), acked.len()),
        "ClickHouse holds each acknowledged event once"
    );
    wait_for(Duration::from_secs(30), "ready again", || async {
        let (status, _) = get_json(&client, &server, "/readyz").await.ok()?;
        (status == 200).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn kill_9_under_load_with_clickhouse_stores_each_acknowledged_event_once(
) -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("crash").await?;
    let mut server = server_on(&front, &db, &[])?;
    let client = reqwest::Client::new();
    let load = start_load(&server, "t-ch-crash", 4);
    load.wait_acked(2_000).await?;
    // Crash while requests and inserts are in flight: the restart replays the spool range
    // past the checkpoint, and the deduplication tokens drop what had already landed.
    server.kill9();
    let acked = load.finish().await?;
    server.restart()?;
    assert_stored_exactly_once(&client, &server, "t-ch-crash", &acked).await?;
    let counts = front
        .query_text(&format!(
            "SELECT count() - uniqExact(event_id) FROM `{db}`.events"
        ))
        .await?;
    assert_eq!(counts.trim(), "0", "no event stored twice");
    Ok(())
}

#[tokio::test]
async fn a_row_clickhouse_refuses_is_quarantined_and_its_batch_mates_stored() -> anyhow::Result<()>
{
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("refused").await?;
    let server = server_on(&front, &db, &[])?;
    let client = reqwest::Client::new();
    wait_for(Duration::from_secs(30), "schema applied", || async {
        let (status, _) = get_json(&client, &server, "/readyz").await.ok()?;
        (status == 200).then_some(())
    })
    .await?;
    // A constraint the catalog does not know (as a DBA might add): ClickHouse refuses the row.
    front
        .query_text(&format!(
            "ALTER TABLE `{db}`.events ADD CONSTRAINT no_poison CHECK name != 'poison-pill'"
        ))
        .await?;
    let events: Vec<String> = (0..10)
        .map(|i| {
            let name = if i == 6 { "poison-pill".to_owned() } else { format!("key-{i}") };
            format!(r#"{{"id":"refused-{i}","trace_id":"t-refused","env":"production","type":"cache","name":"{name}","payload":{{"action":"hit","store":"redis","tags":[]}}}}"#)
        })
        .collect();
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let (status, body) = post_as_agent(&client, &server, &batch_body(&refs)).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 10, "the server accepted all ten: {body}");

    let quarantined = wait_for(
        Duration::from_secs(60),
        "the refused row quarantined",
        || async {
            let (_, page) = get_json(&client, &server, "/v1/malformed?reason=sink_rejected")
                .await
                .ok()?;
            let rows = page["malformed"].as_array()?.clone();
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await?;
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let row = &quarantined[0];
    assert_eq!(row["event_id"], "refused-6");
    let message = row["reasons"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("VIOLATED_CONSTRAINT") && message.contains("no_poison"),
        "the quarantine keeps ClickHouse's error: {message}"
    );
    assert!(row["raw"]
        .as_str()
        .unwrap_or_default()
        .contains("poison-pill"));
    let stored = wait_for(Duration::from_secs(30), "the nine batch-mates", || async {
        let (_, page) = get_json(&client, &server, "/v1/events?trace_id=t-refused")
            .await
            .ok()?;
        let ids: Vec<String> = page["events"]
            .as_array()?
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        (ids.len() == 9).then_some(ids)
    })
    .await?;
    assert!(!stored.contains(&"refused-6".to_owned()));
    Ok(())
}

#[tokio::test]
async fn schema_applies_twice_and_a_dba_can_apply_it_by_hand() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;

    // The server's own migrations, twice on the same database: the second applies nothing.
    let db = front.fresh_database("migrate").await?;
    let config = ClickHouseConfig {
        url: Some(front.url()),
        database: db.clone(),
        ..ClickHouseConfig::default()
    };
    for _ in 0..2 {
        let store = ClickHouseStore::connect(&config).await?;
        assert!(store.health().await.reachable);
    }
    let versions = front
        .query_text(&format!(
            "SELECT version FROM `{db}`.schema_migrations ORDER BY version"
        ))
        .await?;
    assert_eq!(
        versions.split_whitespace().collect::<Vec<_>>(),
        ["1", "2", "3"],
        "each version recorded once"
    );
    let tables = front
        .query_text(&format!(
            "SELECT name FROM system.tables WHERE database = '{db}' ORDER BY name"
        ))
        .await?;
    assert_eq!(
        tables.split_whitespace().collect::<Vec<_>>(),
        [
            "events",
            "exception_groups",
            "exception_groups_mv",
            "exceptions",
            "ingest_traces",
            "lifecycle_spans",
            "malformed_events",
            "schema_drift",
            "schema_migrations"
        ]
    );

    // With --clickhouse-migrate=false on an empty database, the server says what to do.
    let empty = front.fresh_database("dba").await?;
    let server = server_on(&front, &empty, &["--clickhouse-migrate", "false"])?;
    let client = reqwest::Client::new();
    let (status, ready) = get_json(&client, &server, "/readyz").await?;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready.to_string().contains("baddybugs-ingest schema"),
        "/readyz names the fix: {ready}"
    );

    // The DBA applies `baddybugs-ingest schema`, statement by statement; ingest then works.
    let output = std::process::Command::new(baddybugs_tests::server::binary("baddybugs-ingest"))
        .arg("schema")
        .env("BADDYBUGS_CLICKHOUSE__DATABASE", &empty)
        .output()?;
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout)?;
    assert!(script.contains(&format!("`{empty}`.`events`")));
    for statement in script.split(";\n\n") {
        let sql: String = statement
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if !sql.trim().is_empty() {
            front.query_text(&sql).await?;
        }
    }
    post_cache_event_until_stored(&client, &server, "dba-1").await?;
    let (status, ready) = get_json(&client, &server, "/readyz").await?;
    assert_eq!(status, 200, "{ready}");
    Ok(())
}

/// A database left at schema version 1 by an older build, with rows in it, is migrated to
/// version 2 at start (LowCardinality → String in the inserted tables): the rows are still
/// there and readable through the query API, and new rows are stored.
#[tokio::test]
async fn a_version_1_database_with_rows_is_migrated_in_place() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("upgrade").await?;
    let config = ClickHouseConfig {
        url: Some(front.url()),
        database: db.clone(),
        ..ClickHouseConfig::default()
    };
    // What an older build applied: the migrations table and version 1 only.
    let ddl = baddybugs_ingest::sink::clickhouse::schema::Ddl::new(&config);
    if let Some(sql) = ddl.create_database() {
        front.query_text(&sql).await?;
    }
    front.query_text(&ddl.create_migrations_table()).await?;
    let v1 = &ddl.migrations()[0];
    assert_eq!(v1.version, 1);
    for sql in &v1.statements {
        front.query_text(sql).await?;
    }
    front
        .query_text(&format!(
            "INSERT INTO `{db}`.schema_migrations (version, name) VALUES (1, 'initial schema')"
        ))
        .await?;
    front
        .query_text(&format!(
            "INSERT INTO `{db}`.events (event_id, organization, application, environment, type, name, \
             timestamp, timestamp_source, received_at, trace_id, batch_id, lsn, idx, known_type, \
             is_error, severity, data, envelope) VALUES ('old-1', 'acme', 'shop', 'production', \
             'cache', 'k', now64(3), 'agent', now64(3), 't-old', 'b-old', 1, 0, true, false, \
             'info', '{{\"action\":\"hit\"}}', '{{}}')"
        ))
        .await?;
    let column_type = |table: &'static str, column: &'static str| {
        let front = &front;
        let db = db.clone();
        async move {
            front
                .query_text(&format!(
                    "SELECT type FROM system.columns WHERE database = '{db}' AND table = '{table}' AND name = '{column}'"
                ))
                .await
                .map(|t| t.trim().to_owned())
        }
    };
    assert_eq!(
        column_type("events", "organization").await?,
        "LowCardinality(String)"
    );

    // The new build starts on it.
    let server = server_on(&front, &db, &[])?;
    let client = reqwest::Client::new();
    let old = wait_for(
        Duration::from_secs(60),
        "the old row through the API",
        || async {
            let (status, event) = get_json(&client, &server, "/v1/events/old-1").await.ok()?;
            (status == 200).then_some(event)
        },
    )
    .await?;
    assert_eq!(old["type"], "cache");
    let versions = front
        .query_text(&format!(
            "SELECT version FROM `{db}`.schema_migrations ORDER BY version"
        ))
        .await?;
    assert_eq!(
        versions.split_whitespace().collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    for (table, column, want) in [
        ("events", "organization", "String"),
        ("events", "release", "Nullable(String)"),
        ("lifecycle_spans", "span_type", "String"),
        ("exceptions", "method", "Nullable(String)"),
    ] {
        assert_eq!(column_type(table, column).await?, want, "{table}.{column}");
    }
    post_cache_event_until_stored(&client, &server, "new-1").await?;
    Ok(())
}

/// Issue 17: schema drift goes to ClickHouse's `schema_drift` table; every node writing to one
/// database reads the drift of all (counts summed across nodes and flushes), and a restarted
/// node reads it back from the store.
#[tokio::test]
async fn schema_drift_is_stored_in_clickhouse_and_shared_by_the_nodes() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("drift").await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("drift.toml");
    std::fs::write(&config, "[drift]\nflush_interval_ms = 100\n")?;
    let config = config.display().to_string();
    let mut a = server_on(&front, &db, &["--config", &config])?;
    let b = server_on(&front, &db, &["--config", &config])?;
    let client = reqwest::Client::new();
    for (server, id) in [(&a, "ch-drift-a"), (&b, "ch-drift-b")] {
        let event = format!(
            r#"{{"id":"{id}","type":"log","name":"info","payload":{{"level":"info","message":"m","region":"eu"}}}}"#
        );
        let (status, body) = post_as_agent(&client, server, &batch_body(&[event.as_str()])).await?;
        assert_eq!(
            (status, &body["accepted"]),
            (202, &serde_json::json!(1)),
            "{body}"
        );
    }
    let region = |body: &serde_json::Value| -> Option<serde_json::Value> {
        body["drift"]
            .as_array()?
            .iter()
            .find(|e| e["type"] == "log" && e["path"] == "/payload/region")
            .cloned()
    };
    // Each node sees both once the other has flushed.
    for server in [&a, &b] {
        let entry = wait_for(Duration::from_secs(60), "both nodes' drift", || async {
            let (_, body) = get_json(&client, server, "/v1/drift").await.ok()?;
            region(&body).filter(|e| e["count"] == 2)
        })
        .await?;
        assert_eq!(entry["kind"], "unknown_field", "{entry}");
        assert_eq!(entry["sample"], "\"eu\"", "{entry}");
    }
    let rows = front
        .query_text(&format!(
            "SELECT uniqExact(node), sum(count) FROM `{db}`.schema_drift WHERE path = '/payload/region'"
        ))
        .await?;
    assert_eq!(
        rows.split_whitespace().collect::<Vec<_>>(),
        ["2", "2"],
        "one row per node"
    );
    // A restarted node answers from the store.
    a.restart()?;
    // A new client: the old one's pooled connections went with the killed process.
    let client = reqwest::Client::new();
    let (status, body) = get_json(&client, &a, "/v1/drift?kind=unknown_field").await?;
    assert_eq!(status, 200, "{body}");
    let entry = region(&body).expect("stored drift");
    assert_eq!(entry["count"], 2, "{entry}");
    assert!(
        ["ch-drift-a", "ch-drift-b"].contains(&entry["example_event_id"].as_str().unwrap_or("")),
        "{entry}"
    );
    Ok(())
}

/// Posts one `cache` event with this id as the agent does, and waits until
/// `GET /v1/events/{id}` finds it.
async fn post_cache_event_until_stored(
    client: &reqwest::Client,
    server: &TestServer,
    id: &str,
) -> anyhow::Result<()> {
    let event = format!(
        r#"{{"id":"{id}","trace_id":"t-{id}","env":"production","type":"cache","name":"k","payload":{{"action":"hit","store":"redis","tags":[]}}}}"#
    );
    let (status, body) = post_as_agent(client, server, &batch_body(&[event.as_str()])).await?;
    assert_eq!(status, 202, "{body}");
    let path = format!("/v1/events/{id}");
    wait_for(Duration::from_secs(60), &format!("{id} stored"), || async {
        let (status, _) = get_json(client, server, &path).await.ok()?;
        (status == 200).then_some(())
    })
    .await
}

/// (rows, distinct event ids) in `db`.events, when ClickHouse answers.
async fn count(front: &ClickHouseFront, db: &str) -> Option<(u64, u64)> {
    let text = front
        .query_text(&format!(
            "SELECT count(), uniqExact(event_id) FROM `{db}`.events"
        ))
        .await
        .ok()?;
    let (rows, ids) = text.trim().split_once('\t')?;
    Some((rows.parse().ok()?, ids.parse().ok()?))
}

/// `(first, last)` LSNs of the batch the server last handed to its store (`intent.sink`).
fn write_intent(server: &TestServer) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(server.data_dir.join("spool/intent.sink")).ok()?;
    let (a, b) = text.trim().split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[tokio::test]
#[cfg_attr(
    external_clickhouse,
    ignore = "CLICKHOUSE_URL is set: an external server cannot be stopped (see tests/build.rs)"
)]
async fn crash_between_insert_and_checkpoint_replays_without_duplicates() -> anyhow::Result<()> {
    let mut front = ClickHouseFront::start().await?;
    if front.is_external() {
        anyhow::bail!("CLICKHOUSE_URL is set: the drill needs a server it can stop");
    }
    let db = front.fresh_database("replay").await?;
    let mut server = server_on(&front, &db, &[])?;
    let client = reqwest::Client::new();
    let batch = |from: usize| {
        let events: Vec<String> = (from..from + 20)
            .map(|i| format!(r#"{{"id":"replay-{i}","trace_id":"t-replay","env":"production","type":"cache","name":"k{i}","payload":{{"action":"hit","store":"redis","tags":[]}}}}"#))
            .collect();
        events
    };

    // Batch B is inserted and checkpointed.
    let first = batch(0);
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(
        post_as_agent(&client, &server, &batch_body(&refs)).await?.0,
        202
    );
    wait_for(Duration::from_secs(30), "batch B stored", || async {
        (count(&front, &db).await? == (20, 20)).then_some(())
    })
    .await?;
    let (b_first, b_last) = wait_for(Duration::from_secs(10), "the write intent of B", || async {
        write_intent(&server)
    })
    .await?;

    // ClickHouse goes away; batch C is acknowledged and the batcher starts trying to write it.
    front.stop();
    let second = batch(20);
    let refs: Vec<&str> = second.iter().map(String::as_str).collect();
    assert_eq!(
        post_as_agent(&client, &server, &batch_body(&refs)).await?.0,
        202
    );
    wait_for(
        Duration::from_secs(30),
        "the batcher on batch C",
        || async {
            write_intent(&server)
                .filter(|(f, _)| *f > b_last)
                .map(|_| ())
        },
    )
    .await?;
    server.kill9();

    // Put the spool in the state of a crash right after B's insert and before its checkpoint:
    // checkpoint before B, intent = B. C's records follow in the spool.
    let spool = server.data_dir.join("spool");
    std::fs::write(spool.join("checkpoint.sink"), (b_first - 1).to_string())?;
    std::fs::write(spool.join("intent.sink"), format!("{b_first} {b_last}"))?;

    front.restart()?;
    server.restart()?;
    // B is replayed as the same range (ClickHouse drops it), then C is stored: 40, each once.
    let stored = wait_for(Duration::from_secs(60), "B and C stored", || async {
        let (_, ready) = get_json(&client, &server, "/readyz").await.ok()?;
        let rows = count(&front, &db).await?;
        (ready["sink"]["lag_events"] == 0 && rows.0 >= 40).then_some(rows)
    })
    .await?;
    assert_eq!(stored, (40, 40), "every event once");
    Ok(())
}

/// Issue 18: with `clickhouse.compression = "none"` (uncompressed insert bodies, no
/// `decompress=1`), the events are stored and read back as with the default LZ4.
#[tokio::test]
async fn uncompressed_inserts_store_the_events() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("nocompress").await?;
    let server = baddybugs_tests::clickhouse::server_on_with_env(
        &front,
        &db,
        &[],
        &[("BADDYBUGS_CLICKHOUSE__COMPRESSION", "none")],
    )?;
    let client = reqwest::Client::new();
    post_cache_event_until_stored(&client, &server, "plain-1").await?;
    post_cache_event_until_stored(&client, &server, "plain-2").await?;
    assert_eq!(count(&front, &db).await, Some((2, 2)));
    Ok(())
}

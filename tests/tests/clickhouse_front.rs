//! The ClickHouse test server (chDB behind `tests/clickhouse/chfront.py`, or `CLICKHOUSE_URL`)
//! speaks enough of the ClickHouse HTTP interface for the official `clickhouse` crate:
//! LZ4-compressed RowBinary inserts, selects with schema validation, deduplication tokens,
//! errors, and data that survives a restart.

use baddybugs_tests::clickhouse::ClickHouseFront;
use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Event {
    /// `DateTime64(3)`: milliseconds since the epoch.
    ts: i64,
    name: String,
    port: u16,
    note: Option<String>,
    kind: String,
    payload: String,
}

fn events() -> Vec<Event> {
    (0..250u16)
        .map(|i| Event {
            ts: 1_717_171_717_000 + i64::from(i) * 1_001,
            name: format!("event-{i}"),
            port: 8000 + i,
            note: (i % 3 == 0).then(|| format!("note {i} with 'quotes', tabs\tand ünïcödé")),
            kind: ["click", "view", "error"][usize::from(i % 3)].to_string(),
            // Compressible and long enough for several LZ4 matches.
            payload: format!(
                "{{\"i\":{i},\"pad\":\"{}\"}}",
                "x".repeat(usize::from(i % 40))
            ),
        })
        .collect()
}

async fn insert_with_token(
    client: &clickhouse::Client,
    table: &str,
    rows: &[Event],
    token: &str,
) -> anyhow::Result<()> {
    let client = client
        .clone()
        .with_setting("insert_deduplication_token", token);
    let mut insert = client.insert::<Event>(table).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

#[tokio::test]
async fn clickhouse_crate_round_trip_dedup_errors_and_restart() -> anyhow::Result<()> {
    let mut front = ClickHouseFront::start().await?;
    let db = front.fresh_database("chfront_test").await?;
    // Default compression (LZ4 with the `lz4` feature) and schema validation on.
    let client = front.client().with_database(&db);

    client
        .query(
            "CREATE TABLE events (
                ts DateTime64(3),
                name String,
                port UInt16,
                note Nullable(String),
                kind LowCardinality(String),
                payload String CODEC(ZSTD(3))
            ) ENGINE = MergeTree
            ORDER BY (kind, ts)
            SETTINGS non_replicated_deduplication_window = 1000",
        )
        .execute()
        .await?;

    let rows = events();
    insert_with_token(&client, "events", &rows, "batch-1").await?;
    let count: u64 = client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await?;
    assert_eq!(count, rows.len() as u64);

    // The same batch again with the same token: deduplicated.
    insert_with_token(&client, "events", &rows, "batch-1").await?;
    let count: u64 = client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await?;
    assert_eq!(
        count,
        rows.len() as u64,
        "a repeated insert with the same token must be dropped"
    );

    // A different token is a different batch.
    insert_with_token(&client, "events", &rows[..10], "batch-2").await?;
    let count: u64 = client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await?;
    assert_eq!(count, rows.len() as u64 + 10);
    client.query("TRUNCATE TABLE events").execute().await?;
    insert_with_token(&client, "events", &rows, "batch-3").await?;

    // Select back with schema validation (RowBinaryWithNamesAndTypes), LZ4 responses.
    let fetched = client
        .query("SELECT ?fields FROM events ORDER BY port")
        .fetch_all::<Event>()
        .await?;
    assert_eq!(fetched, rows);

    // Bound values and server-side parameters.
    let one: Event = client
        .query("SELECT ?fields FROM events WHERE name = ?")
        .bind("event-42")
        .fetch_one()
        .await?;
    assert_eq!(one, rows[42]);
    let n: u64 = client
        .query("SELECT count() FROM events WHERE kind = {kind: String}")
        .param("kind", "error")
        .fetch_one()
        .await?;
    assert_eq!(n, rows.iter().filter(|r| r.kind == "error").count() as u64);
    // The column types and codec are the real ones.
    let codec = front
        .query_text(&format!(
            "SELECT compression_codec FROM system.columns WHERE database = '{db}' AND table = 'events' AND name = 'payload'"
        ))
        .await?;
    assert_eq!(codec.trim(), "CODEC(ZSTD(3))");

    // Without LZ4 and without validation (plain RowBinary) it works too.
    let plain = front
        .client()
        .with_database(&db)
        .with_compression(clickhouse::Compression::None)
        .with_validation(false);
    let fetched = plain
        .query("SELECT ?fields FROM events ORDER BY port")
        .fetch_all::<Event>()
        .await?;
    assert_eq!(fetched, rows);

    // Errors carry ClickHouse's message.
    let err = client
        .query("SELECT definitely_not_a_column FROM events")
        .fetch_all::<Event>()
        .await
        .expect_err("a bad query must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("Code: 47") && msg.contains("UNKNOWN_IDENTIFIER"),
        "{msg}"
    );
    let err = client
        .query("SELEKT 1")
        .execute()
        .await
        .expect_err("a syntax error must fail");
    assert!(
        err.to_string().contains("Code: 62") && err.to_string().contains("SYNTAX_ERROR"),
        "{err}"
    );
    let err = client
        .insert::<Event>("no_such_table")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("UNKNOWN_TABLE"), "{err}");
    let err = front
        .query_text("SELECT * FROM nope.nothing")
        .await
        .expect_err("unknown database");
    assert!(err.to_string().contains("Code: 81"), "{err:#}");

    // Outage and recovery: the data survives a restart on the same port and data dir.
    if front.is_external() {
        return Ok(());
    }
    let url = front.url();
    front.stop();
    assert!(
        client.query("SELECT 1").execute().await.is_err(),
        "a stopped front must refuse requests"
    );
    front.restart()?;
    assert_eq!(front.url(), url, "restart keeps the port");
    let count: u64 = client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await?;
    assert_eq!(count, rows.len() as u64);
    let fetched = client
        .query("SELECT ?fields FROM events ORDER BY port")
        .fetch_all::<Event>()
        .await?;
    assert_eq!(fetched, rows);
    // Deduplication state survives too.
    insert_with_token(&client, "events", &rows, "batch-3").await?;
    let count: u64 = client
        .query("SELECT count() FROM events")
        .fetch_one()
        .await?;
    assert_eq!(count, rows.len() as u64);
    Ok(())
}

#[tokio::test]
async fn http_interface_basics() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let http = reqwest::Client::new();

    let ping = http.get(format!("{}/ping", front.url())).send().await?;
    assert!(ping.status().is_success());
    assert_eq!(ping.text().await?, "Ok.\n");

    let one = http
        .get(format!("{}/?query=SELECT%201", front.url()))
        .send()
        .await?;
    assert_eq!(one.text().await?, "1\n");

    assert_eq!(front.query_text("SELECT 1 + 1, 'a'").await?, "2\ta\n");
    let json = front
        .query_text("SELECT number AS n FROM numbers(2) FORMAT JSONEachRow")
        .await?;
    assert_eq!(json, "{\"n\":0}\n{\"n\":1}\n");

    // Settings given as URL parameters apply to that request only.
    let with = http
        .post(format!("{}/?max_threads=1", front.url()))
        .body("SELECT getSetting('max_threads')")
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(with, "1\n");
    let without = front
        .query_text("SELECT getSetting('max_threads') = 1")
        .await?;
    assert_eq!(
        without, "0\n",
        "a URL setting must not leak into later requests"
    );

    // An error: status, header and ClickHouse's message in the body.
    let bad = http
        .post(front.url())
        .body("SELECT * FROM no_such_table")
        .send()
        .await?;
    assert!(!bad.status().is_success());
    assert_eq!(
        bad.headers()
            .get("X-ClickHouse-Exception-Code")
            .map(|v| v.to_str().unwrap_or("")),
        Some("60")
    );
    let body = bad.text().await?;
    assert!(
        body.starts_with("Code: 60. DB::Exception: ") && body.contains("UNKNOWN_TABLE"),
        "{body}"
    );

    // Values inserts with the data in the body, as curl users do.
    front
        .query_text("CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
        .await?;
    let r = http
        .post(format!(
            "{}/?query=INSERT%20INTO%20t%20FORMAT%20TabSeparated",
            front.url()
        ))
        .body("1\tone\n2\ttwo\n")
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.text().await?);
    front
        .query_text("INSERT INTO t VALUES (3, 'three')")
        .await?;
    assert_eq!(
        front.query_text("SELECT * FROM t ORDER BY a").await?,
        "1\tone\n2\ttwo\n3\tthree\n"
    );
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Wide {
    id: u64,
    body: String,
}

#[tokio::test]
async fn large_inserts_and_selects_span_many_compressed_blocks() -> anyhow::Result<()> {
    let front = ClickHouseFront::start().await?;
    let db = front.fresh_database("chfront_large").await?;
    let client = front.client().with_database(&db);
    client
        .query("CREATE TABLE wide (id UInt64, body String) ENGINE = MergeTree ORDER BY id")
        .execute()
        .await?;
    // ~6 MB of rows: the crate sends them as many LZ4 blocks in one chunked request body,
    // and the LZ4-framed response spans many 64 KiB frame blocks.
    let rows: Vec<Wide> = (0..40_000u64)
        .map(|id| Wide {
            id,
            body: format!("{id:016x}-{}", uuid::Uuid::new_v4()).repeat(1 + (id % 5) as usize),
        })
        .collect();
    let mut insert = client.insert::<Wide>("wide").await?;
    for row in &rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    let fetched = client
        .query("SELECT ?fields FROM wide ORDER BY id")
        .fetch_all::<Wide>()
        .await?;
    assert_eq!(fetched.len(), rows.len());
    assert!(
        fetched == rows,
        "the rows read back differ from the rows written"
    );
    Ok(())
}

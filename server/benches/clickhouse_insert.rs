//! The client side of a ClickHouse insert, per event type: rows → RowBinary (the crate's
//! serializer, from rows borrowed from the batch) → LZ4 → HTTP, exactly as
//! `sink::clickhouse` writes a batch, into a local HTTP endpoint that reads and discards the
//! body. What ClickHouse does with the rows is not measured here (see `scripts/bench-clickhouse.sh`
//! for the whole path against the real engine).
//!
//! Each type's batch is 1,000 copies of its agent fixture, built by `build_batch` like the
//! batcher builds them (so lifecycle events carry their span rows and exceptions their
//! occurrence rows). Throughput is in events.
//!
//! Run: `cargo bench -p baddybugs-ingest --bench clickhouse_insert [-- <type filter>]`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use baddybugs_fixtures::{valid_fixtures, Shape};
use baddybugs_ingest::batch::{build_batch, RecordRef};
use baddybugs_ingest::record::{self, BatchMeta};
use baddybugs_ingest::sink::clickhouse::write_rows;
use baddybugs_ingest::sink::{SinkBatch, SpanRows};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: usize = 1_000;

/// A batch of `ROWS` copies of one event, as the batcher builds it.
fn batch_of(text: &str) -> SinkBatch {
    let events: Vec<(u32, &[u8])> = (0..ROWS as u32).map(|i| (i, text.as_bytes())).collect();
    let meta = BatchMeta {
        batch_id: "0190e0e0-0000-7000-8000-000000000001".to_owned(),
        received_ms: 1_767_225_600_000,
        organization: "acme".to_owned(),
        application: "shop".to_owned(),
        remote_addr: None,
        agent_version: None,
        bytes_compressed: 0,
        bytes_inflated: 0,
        total_events: ROWS as u32,
        duplicates: 0,
        quarantined: Vec::new(),
        stages: Vec::new(),
    };
    let payload = record::encode(&meta, &events, &[]);
    let (batch, _) = build_batch(
        &[RecordRef {
            lsn: 1,
            payload: &payload,
            appended_ms: 0,
            durable_ms: 0,
        }],
        SpanRows::Written,
        |_, _| false,
    );
    batch
}

fn inserts(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let url = runtime.block_on(async move {
        let app = axum::Router::new().route(
            "/",
            post(move |body: Bytes| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                    ""
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    });
    let client = baddybugs_ingest::sink::clickhouse::http::client()
        .with_url(url)
        .with_compression(clickhouse::Compression::Lz4)
        .with_validation(false);

    let mut group = c.benchmark_group("clickhouse_insert");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(ROWS as u64));
    for fixture in valid_fixtures()
        .into_iter()
        .filter(|f| f.shape == Shape::Agent)
    {
        let batch = batch_of(&fixture.text);
        assert_eq!(batch.events.len(), ROWS, "{}", fixture.id);
        let name = fixture
            .id
            .trim_end_matches(".agent.json")
            .replace("/valid/", "/");
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(write_rows(&client, &batch))
                    .expect("insert")
            })
        });
    }
    group.finish();
    assert!(
        received.load(Ordering::Relaxed) > 0,
        "the endpoint got the inserts"
    );
}

criterion_group!(benches, inserts);
criterion_main!(benches);

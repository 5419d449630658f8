//! Embedded store drain, in process: how fast the batcher's two stages turn spool records of
//! the load generator's realistic traffic into stored rows.
//!
//! - `build_batch`: spool records → rows (`derive_event`: parse and columns; exceptions and
//!   traces; no span rows, as for the server's SQLite store, which derives them at read), one
//!   core, events/s and rows/s;
//! - `SqliteStore::write`: one transaction per built batch (default store options:
//!   WAL, `synchronous=FULL`) into a store that already holds `--prefill` events, since B-tree
//!   depth and a cache that no longer holds every index page are what slow a store down;
//! - `drain`: both stages overlapped on two threads with one built batch in flight, as
//!   `batch::Batcher` runs them (the spool read is left out: it is a sequential file read).
//!
//! The records are made as the server makes them: the load generator's pool (`--mix
//! realistic`, seed 7, 100 events per request, as `baddybugs-loadgen` sends), gzip level 6
//! for the body size, then split, `check_event` and `record::encode` as `http/ingest.rs`
//! does. Event times advance by 2 ms per request (50 k events/s of traffic), so ids, trace ids
//! and timestamps grow as they do in a live store.
//!
//! Run: `cargo bench -p baddybugs-ingest --bench sqlite_drain [-- OPTIONS]`
//! (`--prefill N` events, default 500000; `--batch N` events per write, default 10000: one
//! transaction per write, about what a group of the server's 5,000-event batches holds while it
//! drains a backlog (`batch.group_max_events`); `--rounds N` measured batches per figure, default 10;
//! `--dir PATH` where the database goes, default a temporary directory under `target/`;
//! `--keep` leaves it there to be looked at; `--cache-mib N` the writer's page cache,
//! `sqlite.cache_bytes`, default its default).
//! Without `--bench` (as `cargo test --benches` runs it) it does a small smoke run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baddybugs_common::check_event;
use baddybugs_common::protocol::StageName;
use baddybugs_ingest::batch::{build_batch, BuildStats, RecordRef};
use baddybugs_ingest::ingest::decode::{self, RawEvent};
use baddybugs_ingest::record::{self, BatchMeta, Stage};
use baddybugs_ingest::sink::sqlite::{SqliteOptions, SqliteStore};
use baddybugs_ingest::sink::{SinkBatch, SpanRows, Store};
use baddybugs_loadgen::batch::gzip;
use baddybugs_loadgen::run::{build_pool, prepare_batch};
use baddybugs_loadgen::{IdSpace, Pool, TrafficConfig};

const SEED: u64 = 7;
const EVENTS_PER_REQUEST: usize = 100;
/// 2026-01-01T00:00:00Z: fixed, so two runs store the same ids.
const START_US: i64 = 1_767_225_600_000_000;
/// Traffic time between two requests (100 events / 2 ms = 50 k events/s).
const REQUEST_EVERY_US: i64 = 2_000;

struct Options {
    prefill: usize,
    batch: usize,
    rounds: usize,
    dir: Option<std::path::PathBuf>,
    keep: bool,
    cache_bytes: Option<u64>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let mut o = if bench {
        Options {
            prefill: 500_000,
            batch: 10_000,
            rounds: 10,
            dir: None,
            keep: false,
            cache_bytes: None,
        }
    } else {
        Options {
            prefill: 2_000,
            batch: 1_000,
            rounds: 2,
            dir: None,
            keep: false,
            cache_bytes: None,
        }
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match arg.as_str() {
            "--prefill" => o.prefill = value().parse().expect("--prefill N"),
            "--batch" => o.batch = value().parse().expect("--batch N"),
            "--rounds" => o.rounds = value().parse().expect("--rounds N"),
            "--cache-mib" => {
                o.cache_bytes = Some(value().parse::<u64>().expect("--cache-mib N") << 20)
            }
            "--dir" => o.dir = Some(value().into()),
            "--keep" => o.keep = true,
            _ => {}
        }
    }
    o.batch = o.batch.max(EVENTS_PER_REQUEST);
    o.rounds = o.rounds.max(1);
    o
}

/// Makes spool records as `http/ingest.rs` does, request after request.
struct Records {
    pool: Pool,
    space: IdSpace,
    seq: u64,
    event_bytes: usize,
    events: usize,
}

impl Records {
    fn new() -> Records {
        let traffic = TrafficConfig {
            seed: SEED,
            batch_size: EVENTS_PER_REQUEST,
            ..TrafficConfig::default()
        };
        Records {
            pool: build_pool(&traffic, 256).expect("traffic pool"),
            space: IdSpace::of_seed(SEED),
            seq: 0,
            event_bytes: 0,
            events: 0,
        }
    }

    /// The next request's spool record.
    fn next(&mut self) -> Vec<u8> {
        let seq = self.seq;
        self.seq += 1;
        let now_us = START_US + seq as i64 * REQUEST_EVERY_US;
        let batch = prepare_batch(&self.pool, self.space, SEED, seq, now_us, 0.0);
        let gz = gzip(&batch.raw);
        let received_ms = now_us / 1000 + 5;
        let split = decode::split(&batch.raw, false, 10_000).expect("a generated body splits");
        let mut accepted: Vec<(u32, &[u8])> = Vec::with_capacity(split.events.len());
        for (i, raw) in split.events.iter().enumerate() {
            let RawEvent::Text(text) = raw else {
                panic!("generated event {i} is not text");
            };
            if let Err(rejected) = check_event(text, received_ms) {
                panic!("generated event {i} refused: {:?}", rejected.problems);
            }
            self.event_bytes += text.len();
            accepted.push((i as u32, text.as_bytes()));
        }
        self.events += accepted.len();
        let meta = BatchMeta {
            batch_id: uuid::Uuid::now_v7().to_string(),
            received_ms,
            organization: "bench-org".into(),
            application: "bench-app".into(),
            remote_addr: Some("10.0.0.7:51234".into()),
            agent_version: Some("1.0.0".into()),
            bytes_compressed: gz.len() as u64,
            bytes_inflated: batch.raw.len() as u64,
            total_events: accepted.len() as u32,
            duplicates: 0,
            quarantined: Vec::new(),
            stages: [
                StageName::Received,
                StageName::Inflated,
                StageName::Authenticated,
                StageName::Parsed,
                StageName::Validated,
            ]
            .iter()
            .enumerate()
            .map(|(i, s)| Stage {
                stage: *s,
                start_us: i as u64 * 150,
                duration_us: 150,
            })
            .collect(),
        };
        record::encode(&meta, &accepted, &[])
    }

    /// Records holding `events` events (whole requests).
    fn take(&mut self, events: usize) -> Vec<Vec<u8>> {
        (0..events.div_ceil(EVENTS_PER_REQUEST))
            .map(|_| self.next())
            .collect()
    }
}

/// `build_batch` as the batcher calls it (with its default trace sampling: 1 in 20 kept).
fn build(records: &[Vec<u8>], first_lsn: u64) -> (SinkBatch, BuildStats) {
    let refs: Vec<RecordRef<'_>> = records
        .iter()
        .enumerate()
        .map(|(i, payload)| RecordRef {
            lsn: first_lsn + i as u64,
            payload,
            appended_ms: 0,
            durable_ms: 0,
        })
        .collect();
    build_batch(&refs, SpanRows::DerivedAtRead, |t, _| {
        t.lsn.is_multiple_of(20)
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// CPU time this process has used so far, every thread included (those that ended too), ns
/// (Linux, in clock ticks of 10 ms; 0 elsewhere). Less sensitive than wall time to other work
/// on a shared machine, and it leaves out fsync waits.
fn cpu_ns() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) * 10_000_000
}

fn k(x: f64) -> String {
    format!("{:.1} k", x / 1000.0)
}

fn main() {
    let o = options();
    let scratch = match &o.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("--dir");
            tempfile::tempdir_in(dir)
        }
        None => tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")),
    }
    .expect("scratch directory");
    let db = scratch.path().join("store.sqlite");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut store_options = SqliteOptions::default();
    if let Some(bytes) = o.cache_bytes {
        store_options.cache_bytes = bytes;
    }
    let store = Arc::new(SqliteStore::open_with(&db, store_options).expect("open store"));
    let mut records = Records::new();
    let mut lsn = 1u64;

    // Prefill through the same path, in batches of the measured size.
    let started = Instant::now();
    let mut prefilled = 0usize;
    while prefilled < o.prefill {
        let recs = records.take(o.batch.min(o.prefill - prefilled).max(EVENTS_PER_REQUEST));
        let (batch, _) = build(&recs, lsn);
        lsn += recs.len() as u64;
        prefilled += batch.events.len();
        runtime
            .block_on(store.write(Arc::new(batch)))
            .expect("prefill write");
    }
    let prefill_secs = started.elapsed().as_secs_f64();
    let db_mib = std::fs::metadata(&db).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64;
    println!(
        "sqlite_drain: realistic mix, seed {SEED}, {EVENTS_PER_REQUEST} events per request, {} events per write",
        o.batch
    );
    println!(
        "prefill: {prefilled} events in {prefill_secs:.1} s ({}/s overall); store file {db_mib:.0} MiB",
        k(rate(prefilled, Duration::from_secs_f64(prefill_secs)))
    );

    // (a) build_batch alone.
    let mut build_eps = Vec::new();
    let mut build_rps = Vec::new();
    let mut built = Vec::new();
    let mut row_counts = (0usize, 0usize, 0usize, 0usize);
    let mut build_cpu = 0u64;
    // Heap bytes of the built rows over the spool record bytes they came from (the batcher's
    // memory gauge counts records until a batch is built, then its rows).
    let (mut record_bytes, mut row_bytes) = (0u64, 0u64);
    for _ in 0..o.rounds {
        let recs = records.take(o.batch);
        record_bytes += recs.iter().map(|r| r.len() as u64).sum::<u64>();
        let (t, cpu) = (Instant::now(), cpu_ns());
        let (batch, _) = build(&recs, lsn);
        let took = t.elapsed();
        build_cpu += cpu_ns() - cpu;
        lsn += recs.len() as u64;
        build_eps.push(rate(batch.events.len(), took));
        build_rps.push(rate(batch.row_count(), took));
        row_counts.0 += batch.events.len();
        row_counts.1 += batch.spans.len();
        row_counts.2 += batch.exceptions.len();
        row_counts.3 += batch.traces.len();
        row_bytes += batch.heap_bytes();
        built.push(batch);
    }
    println!(
        "mix: {:.0} bytes/event; per event {:.2} span rows, {:.3} exception rows, {:.4} trace rows",
        records.event_bytes as f64 / records.events.max(1) as f64,
        row_counts.1 as f64 / row_counts.0.max(1) as f64,
        row_counts.2 as f64 / row_counts.0.max(1) as f64,
        row_counts.3 as f64 / row_counts.0.max(1) as f64,
    );
    println!(
        "memory: {:.0} record bytes/event, {:.0} row bytes/event built from them ({:.2}x)",
        record_bytes as f64 / row_counts.0.max(1) as f64,
        row_bytes as f64 / row_counts.0.max(1) as f64,
        row_bytes as f64 / record_bytes.max(1) as f64,
    );
    println!(
        "build_batch: median {} events/s ({} rows/s) over {} batches; CPU {:.2} µs/event",
        k(median(build_eps)),
        k(median(build_rps)),
        o.rounds,
        build_cpu as f64 / 1000.0 / row_counts.0.max(1) as f64
    );

    // (b) SqliteStore::write alone, of the batches just built.
    let mut write_eps = Vec::new();
    let mut events_written = 0usize;
    let (t_all, cpu_all) = (Instant::now(), cpu_ns());
    for batch in built {
        let n = batch.events.len();
        let t = Instant::now();
        runtime
            .block_on(store.write(Arc::new(batch)))
            .expect("measured write");
        write_eps.push(rate(n, t.elapsed()));
        events_written += n;
    }
    let write_cpu = cpu_ns() - cpu_all;
    println!(
        "write: median {} events/s over {} batches (overall {}/s); CPU {:.2} µs/event",
        k(median(write_eps)),
        o.rounds,
        k(rate(events_written, t_all.elapsed())),
        write_cpu as f64 / 1000.0 / events_written.max(1) as f64
    );

    // (c) Both stages overlapped: a builder thread, one built batch in flight, the writer here.
    let inputs: Vec<Vec<Vec<u8>>> = (0..o.rounds).map(|_| records.take(o.batch)).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<SinkBatch>(1);
    let first_lsn = lsn;
    let started = Instant::now();
    let builder = std::thread::spawn(move || {
        let mut lsn = first_lsn;
        for recs in inputs {
            let (batch, _) = build(&recs, lsn);
            lsn += recs.len() as u64;
            if tx.send(batch).is_err() {
                return;
            }
        }
    });
    let mut drained = 0usize;
    for batch in rx {
        drained += batch.events.len();
        runtime
            .block_on(store.write(Arc::new(batch)))
            .expect("drain write");
    }
    let drain_time = started.elapsed();
    builder.join().expect("builder thread");
    println!(
        "drain (build ∥ write): {} events/s over {drained} events",
        k(rate(drained, drain_time))
    );
    drop(store);
    if o.keep {
        println!("kept: {}", scratch.keep().display());
    }
}

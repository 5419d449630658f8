//! The dedup window's cost per id on the ingest path, and the memory of its long tier, at the
//! peak acknowledged rate: ten minutes of 170,000 ids/s (102 M ids) already remembered.
//!
//! - `exact only`: the exact tier alone (`dedup_max_ids` at its default), as before the
//!   long tier existed;
//! - `exact + long tier`: with the long tier at its default budget, full.
//!
//! Each iteration reserves and confirms one request of 100 fresh ids of one tenant (the
//! load generator's batch size); the figure to read is the time per iteration / 100.
//! Before the measurement the long tier's bytes and span are printed.
//!
//! Run: `cargo bench -p baddybugs-ingest --bench dedup_window` (the prefill takes a while:
//! 102 M ids through the real reserve/confirm path). `PREFILL_SECS=60` shortens it.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use baddybugs_ingest::config::DEFAULT_DEDUP_FILTER_BYTES;
use baddybugs_ingest::ingest::dedup::{DedupWindow, FilterConfig};
use criterion::{criterion_group, criterion_main, Criterion};

const RATE_PER_SEC: i64 = 170_000;
const WINDOW_SECS: u64 = 600;
const BATCH: usize = 100;

fn filled(window: &DedupWindow, prefill_secs: i64) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut next = 0u64;
    // 10 ms of ids per call: 1,700 ids.
    let per_tick = (RATE_PER_SEC / 100) as usize;
    let mut names = Vec::with_capacity(per_tick);
    for tick in 0..prefill_secs * 100 {
        names.clear();
        for _ in 0..per_tick {
            names.push(format!("prefill-{next}"));
            next += 1;
        }
        let ids: Vec<Option<&str>> = names.iter().map(|s| Some(s.as_str())).collect();
        let now = tick * 10;
        rt.block_on(async {
            window
                .reserve("org\0app", &ids, now)
                .await
                .expect("nothing pending")
                .confirm(now)
        });
    }
    prefill_secs * 1000
}

fn bench(c: &mut Criterion) {
    let prefill_secs: i64 = std::env::var("PREFILL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WINDOW_SECS as i64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("dedup_window");
    for (name, long_tier) in [("exact only", false), ("exact + long tier", true)] {
        let config = long_tier.then_some(FilterConfig {
            budget_bytes: DEFAULT_DEDUP_FILTER_BYTES,
            false_positive_rate: 0.001,
        });
        let window = DedupWindow::with_filter(
            WINDOW_SECS,
            baddybugs_ingest::config::IngestConfig::default().dedup_max_ids,
            config,
            0,
        );
        let now = filled(&window, prefill_secs);
        let stats = window.stats(now);
        eprintln!(
            "{name}: {} ids in the long tier, {:.1} MiB, span {} s; exact tier {} ids, span {:.1} s",
            stats.filter_ids,
            stats.filter_bytes as f64 / (1 << 20) as f64,
            stats.filter_span_ms / 1000,
            stats.exact_ids,
            stats.exact_span_ms as f64 / 1000.0,
        );
        let mut next = 0u64;
        group.bench_function(format!("{name}: reserve + confirm 100 fresh ids"), |b| {
            b.iter(|| {
                let names: Vec<String> = (0..BATCH)
                    .map(|_| {
                        next += 1;
                        format!("fresh-{next}")
                    })
                    .collect();
                let ids: Vec<Option<&str>> = names.iter().map(|s| Some(s.as_str())).collect();
                rt.block_on(async {
                    let reservation = window.reserve("org\0app", &ids, now).await.unwrap();
                    black_box(reservation.maybe_seen());
                    reservation.confirm(now);
                });
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

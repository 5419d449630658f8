//! Parse + validate + denormalise throughput of realistic agent events, against a plain
//! `serde_json::from_slice::<serde_json::Value>` of the same bytes (the ratio is what
//! docs/BENCHMARKS.md reports). Events: the agent-envelope fixtures, weighted like the traffic
//! of one web request of a busy Laravel app (AGENT-WIRE §1.4): many queries, framework events
//! and cache calls; one request, lifecycle and timeline; a few of the rest.
//!
//! Run: `cargo bench -p baddybugs-common --bench validate`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn weight(event_type: &str) -> usize {
    match event_type {
        "query" => 12,
        "event" => 10,
        "cache" => 6,
        "trace_span" => 4,
        "log" | "model" | "gate" => 2,
        _ => 1,
    }
}

/// The realistic mix: every agent fixture, repeated by weight.
fn realistic_mix() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/events");
    let mut events = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures/events exists")
        .filter_map(Result::ok)
        .collect();
    dirs.sort_by_key(|d| d.file_name());
    for dir in dirs {
        let event_type = dir.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(dir.path().join("valid")) else {
            continue;
        };
        let mut files: Vec<_> = files.filter_map(Result::ok).map(|f| f.path()).collect();
        files.sort();
        for file in files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".agent.json"))
        {
            let bytes = std::fs::read(file).expect("fixture readable");
            for _ in 0..weight(&event_type) {
                events.push(bytes.clone());
            }
        }
    }
    events
}

fn bench(c: &mut Criterion) {
    let events = realistic_mix();
    let bytes: usize = events.iter().map(Vec::len).sum();
    eprintln!(
        "realistic mix: {} events, {:.0} bytes on average",
        events.len(),
        bytes as f64 / events.len() as f64
    );
    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("check_event (parse + validate + denormalise)", |b| {
        b.iter(|| {
            let mut accepted = 0usize;
            for event in &events {
                let text = std::str::from_utf8(event).expect("utf-8");
                if let Ok(checked) = baddybugs_common::check_event(text, 0) {
                    accepted += usize::from(checked.columns.is_error) + 1;
                }
            }
            black_box(accepted)
        })
    });
    group.bench_function("serde_json::Value (parse only)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for event in &events {
                let value: serde_json::Value = serde_json::from_slice(event).expect("valid JSON");
                n += value.as_object().map_or(0, |o| o.len());
            }
            black_box(n)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Deterministic sample feed data for unit and snapshot tests (a fixed clock, fixed ids).

use baddybugs_common::protocol::StageName;
use baddybugs_common::protocol::{
    AppStats, Bucket, BufferStats, Hello, Histo, MetricsSnapshot, PipelineStage, PipelineTrace,
    ReasonSample, ReasonStats, Refusal, SenderRefusal, ServerEnvelope, ServerMessage, SinkStats,
    TailEvent, TailMalformed, Throughput, TypeStats, Waterfall, WaterfallSpan,
};
use baddybugs_common::{Problem, ReasonCode};
use serde_json::json;

use super::FeedEvent;

/// 2025-06-10T18:27:59Z, the fixed clock of the tests.
pub(crate) const T0: i64 = 1_749_580_079_000;

pub(crate) fn at(offset_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(T0 + offset_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn msg(seq: u64, message: ServerMessage) -> FeedEvent {
    FeedEvent::Message(Box::new(ServerEnvelope { seq, message }))
}

pub(crate) fn hello(instance: &str) -> ServerMessage {
    ServerMessage::Hello(Hello {
        protocol: 1,
        server_version: "0.1.0".into(),
        instance_id: instance.into(),
        started_at: at(-3_600_000),
        types: vec!["request".into(), "query".into(), "cache".into()],
        tail_retention: 100,
        store: "sqlite".into(),
    })
}

fn history(seed: u64) -> Vec<Option<u64>> {
    (0..60u64)
        .map(|i| {
            if (20..24).contains(&i) {
                None
            } else {
                Some((i * 7 + seed * 13) % 40 + seed)
            }
        })
        .collect()
}

fn stats(name: &str, received: u64, rejected: u64, dups: u64, p99: Option<f64>) -> TypeStats {
    TypeStats {
        event_type: name.into(),
        received,
        accepted: received - rejected - dups,
        rejected,
        duplicates: dups,
        rate_1s: (received % 97) as f64 / 3.0,
        rate_10s: (received % 89) as f64 / 3.0,
        rate_60s: (received % 83) as f64 / 3.0,
        history: history(received % 11),
        rejected_rate_60s: rejected as f64 / 60.0,
        duration_p99_ms: p99,
    }
}

/// Per-second values around `base` that vary by about `swing`, with a gap of two seconds.
fn series(base: u64, swing: u64, seed: u64) -> Vec<Option<u64>> {
    (0..60u64)
        .map(|i| (!(30..32).contains(&i)).then(|| base + (i * 7 + seed * 5) % (swing + 1)))
        .collect()
}

fn app(application: &str, received: u64, rejected: u64, rate: f64) -> AppStats {
    AppStats {
        organization: "acme".into(),
        application: application.into(),
        received,
        accepted: received - rejected,
        rejected,
        duplicates: 0,
        rate_10s: rate,
        rate_60s: rate * 0.95,
        rejected_rate_60s: rejected as f64 / 3_600.0,
    }
}

/// A request refused before any event was read.
pub(crate) fn refused(i: u64, status: u16, reason: &str) -> PipelineTrace {
    PipelineTrace {
        batch_id: format!("0193a5b2-7c4e-7d11-9f00-00000000{i:04}"),
        application: "key sha256:9f86d081".into(),
        received_at: at(i as i64 * 700 + 350),
        outcome: "refused".into(),
        status,
        reason: Some(reason.into()),
        total_ms: 0.4,
        stages: Vec::new(),
        bytes_compressed: 0,
        bytes_inflated: 0,
        events: 0,
        accepted: 0,
        rejected: 0,
        duplicates: 0,
    }
}

fn histo(name: &str, scale: f64) -> Histo {
    Histo {
        name: name.into(),
        unit: "ms".into(),
        count: 5_000,
        min: 0.1 * scale,
        p50: 1.2 * scale,
        p90: 3.4 * scale,
        p99: 9.8 * scale,
        p999: 21.0 * scale,
        max: 40.0 * scale,
        buckets: (0..10)
            .map(|i| Bucket {
                le: 0.125 * scale * f64::from(1u32 << i),
                count: [40, 300, 900, 1500, 1200, 600, 300, 100, 50, 10][i as usize],
            })
            .collect(),
    }
}

/// The `n`-th metrics snapshot (one per second; totals grow).
pub(crate) fn metrics(n: u64) -> ServerMessage {
    let types = vec![
        stats("cache", 4_000 + n * 50, 3, 10, None),
        stats("exception", 120 + n, 2, 0, None),
        stats("job", 800 + n * 5, 0, 1, Some(340.5)),
        stats("log", 9_000 + n * 80, 40, 5, None),
        stats("query", 12_500 + n * 120, 0, 22, Some(12.75)),
        stats("request", 3_000 + n * 30, 1, 4, Some(187.25)),
        stats("unknown_type", 7, 0, 0, None),
    ];
    let sum = |f: fn(&TypeStats) -> u64| types.iter().map(f).sum::<u64>();
    let mut totals = stats("all", sum(|t| t.received), sum(|t| t.rejected), 0, None);
    totals.duplicates = sum(|t| t.duplicates);
    totals.accepted = totals.received - totals.rejected - totals.duplicates;
    totals.rate_1s = 285.0;
    totals.history = history(100);
    ServerMessage::Metrics(Box::new(MetricsSnapshot {
        at: at(n as i64 * 1000),
        uptime_secs: 3_600.0 + n as f64,
        instance_id: "inst-a".into(),
        totals,
        types,
        reasons: vec![ReasonStats {
            code: "wrong_type".into(),
            count: 46,
            rate_60s: 0.2,
            last: Some(ReasonSample {
                event_type: Some("request".into()),
                path: "/payload/status".into(),
                message: "status: expected integer, found string".into(),
                at: at(0),
            }),
        }],
        latencies: vec![
            histo("request", 1.0),
            histo("fsync", 0.5),
            histo("insert", 4.0),
            histo("end_to_end", 20.0),
        ],
        batch_sizes: histo("batch_events", 10.0),
        responses: vec![(202, 5_000 + n * 40), (400, 3), (401, 21 * n)],
        refusals: vec![
            Refusal {
                status: 400,
                code: "bad_request".into(),
                count: 3,
            },
            Refusal {
                status: 401,
                code: "unknown_key".into(),
                count: 21 * n,
            },
        ],
        refusals_by_sender: vec![
            SenderRefusal {
                sender: "acme/blog".into(),
                status: 400,
                code: "bad_request".into(),
                count: 3,
            },
            SenderRefusal {
                sender: "key sha256:9f86d081".into(),
                status: 401,
                code: "unknown_key".into(),
                count: 21 * n,
            },
        ],
        apps: vec![
            app("shop", 18_000 + n * 180, 30, 171.3),
            app("blog", 11_000 + n * 105, 16, 99.8),
        ],
        throughput: Throughput {
            accepted: series(262, 40, n),
            rejected: series(4, 9, n + 1),
            duplicates: series(0, 3, n + 2),
        },
        buffers: BufferStats {
            memory_bytes: 12 << 20,
            memory_events: 4_200,
            spool_bytes: 870 << 20,
            spool_quota_bytes: 1 << 30,
            spool_segments: 14,
            pending_records: 4_200,
            oldest_pending_secs: Some(2.5),
            rss_bytes: Some(96 << 20),
            ..Default::default()
        },
        sink: SinkStats {
            kind: "sqlite".into(),
            healthy: true,
            last_error: None,
            errors: 0,
            retrying: 0,
            written_events: 29_000,
            written_batches: 3,
            commits: 3,
            lag_events: 4_200,
            lag_secs: Some(2.5),
            last_write_at: Some(at(0)),
            store_copies: None,
        },
        feed_clients: vec![],
        drift: Default::default(),
    }))
}

/// An accepted event.
pub(crate) fn event(i: u64, event_type: &str, name: &str) -> TailEvent {
    TailEvent {
        id: format!("evt-{i:04}"),
        event_type: event_type.into(),
        name: name.into(),
        timestamp: at(i as i64 * 250),
        received_at: at(i as i64 * 250 + 12),
        trace_id: Some(format!("trace-{}", i % 3)),
        environment: Some("production".into()),
        organization: "acme".into(),
        application: if i % 3 == 1 { "blog" } else { "shop" }.into(),
        duration_ms: (event_type == "request").then_some(42.5 + i as f64),
        status_code: (event_type == "request").then_some(200),
        is_error: false,
        severity: None,
        user_id: Some("42".into()),
        envelope: json!({"host": "worker-2", "release": "v1.2.3"}),
        data: json!({"action": "hit", "store": "redis", "key": name, "tags": ["cart"], "ttl": 300}),
        sampled_one_in: None,
    }
}

/// A rejected event (a string where an integer belongs).
pub(crate) fn malformed(i: u64) -> TailMalformed {
    let code = if i % 3 == 2 {
        ReasonCode::MissingField
    } else {
        ReasonCode::WrongType
    };
    let (path, expected, found) = if code == ReasonCode::WrongType {
        ("/payload/status", "integer", "string \"ok\"")
    } else {
        ("/name", "string", "absent")
    };
    let raw = format!(
        r#"{{"id":"bad-{i}","type":"request","name":"GET \/orders","payload":{{"method":"GET","status":"ok","duration":12.5}},"env":"production"}}"#
    );
    TailMalformed {
        batch_id: format!("batch-{i}"),
        index: Some(i as u32),
        event_type: Some("request".into()),
        event_id: Some(format!("bad-{i}")),
        reasons: vec![Problem::new(code, path, expected, found)],
        application: "shop".into(),
        agent_version: Some("2.4.0".into()),
        remote_addr: Some("10.0.0.7".into()),
        raw_size: raw.len() as u64,
        raw,
        received_at: at(i as i64 * 500),
    }
}

fn span(kind: &str, ty: &str, label: &str, start: f64, dur: f64, depth: u8) -> WaterfallSpan {
    let detail = match ty {
        "QUERY" => Some(format!(
            "select * from orders where user_id = ? /* {label} */"
        )),
        "CACHE_HIT" | "CACHE_MISS" => Some("cart:9b1deb4d".into()),
        "HTTP" => Some("https://api.payments.example/charge".into()),
        _ => None,
    };
    WaterfallSpan {
        kind: kind.into(),
        span_type: ty.into(),
        label: label.into(),
        start_ms: start,
        duration_ms: dur,
        depth,
        detail,
    }
}

/// A request lifecycle.
pub(crate) fn waterfall(i: u64) -> Waterfall {
    Waterfall {
        id: format!("evt-{i:04}"),
        trace_id: Some(format!("trace-{}", i % 3)),
        source: "lifecycle".into(),
        method: Some(if i.is_multiple_of(2) { "GET" } else { "POST" }.into()),
        url: Some(format!("/orders/{i}")),
        status_code: Some(if i == 3 { 500 } else { 200 }),
        total_ms: 120.0 + i as f64,
        query_count: Some(3),
        counts: json!({"queries": 3}),
        memory: json!({"peak": 18874368}),
        spans: vec![
            span("phase", "BOOTSTRAP", "bootstrap", 0.0, 18.0, 0),
            span("phase", "MIDDLEWARE", "middleware", 18.0, 9.5, 0),
            span("phase", "CONTROLLER", "OrderController@show", 27.5, 80.0, 0),
            span("span", "QUERY", "orders", 30.0, 12.25, 1),
            span("span", "CACHE_HIT", "cart", 43.0, 0.4, 1),
            span("span", "HTTP", "payments", 45.0, 50.0, 1),
            span("span", "QUERY", "order_items", 96.0, 6.0, 2),
            span("phase", "RESPONSE", "response", 107.5, 12.5 + i as f64, 0),
        ],
        timestamp: at(i as i64 * 1000),
        sampled_one_in: None,
        organization: "acme".into(),
        application: if i % 2 == 1 { "blog" } else { "shop" }.into(),
    }
}

/// A pipeline trace.
pub(crate) fn pipeline(i: u64) -> PipelineTrace {
    let stages = [
        (StageName::Received, 0.0, 0.05),
        (StageName::Authenticated, 0.05, 0.02),
        (StageName::Inflated, 0.07, 0.4),
        (StageName::Parsed, 0.47, 0.6),
        (StageName::Validated, 1.07, 1.1),
        (StageName::Spooled, 2.17, 2.0 + i as f64),
        (StageName::Acknowledged, 4.17 + i as f64, 0.01),
        (StageName::Inserted, 4.2 + i as f64, 6.0),
    ];
    PipelineTrace {
        batch_id: format!("batch-{i:03}"),
        application: "shop".into(),
        received_at: at(i as i64 * 700),
        outcome: if i == 2 { "partial" } else { "accepted" }.into(),
        status: 202,
        reason: None,
        total_ms: 10.2 + i as f64,
        stages: stages
            .iter()
            .map(|(s, a, d)| PipelineStage {
                stage: *s,
                start_ms: *a,
                duration_ms: *d,
            })
            .collect(),
        bytes_compressed: 15_000,
        bytes_inflated: 76_000,
        events: 100,
        accepted: if i == 2 { 97 } else { 100 },
        rejected: if i == 2 { 3 } else { 0 },
        duplicates: 0,
    }
}

/// A connected session with two metrics snapshots and a few of every tail.
pub(crate) fn demo_feed() -> Vec<FeedEvent> {
    let mut out = vec![FeedEvent::Connecting { attempt: 1 }, FeedEvent::Connected];
    let mut seq = 0;
    let mut push = |m: ServerMessage| {
        seq += 1;
        out.push(msg(seq, m));
    };
    push(hello("inst-a"));
    push(metrics(0));
    let names = [
        ("cache", "cart:9b1deb4d"),
        ("query", "select orders"),
        ("request", "GET /orders"),
        ("log", "payment retried"),
    ];
    for i in 0..24u64 {
        let (t, n) = names[(i % 4) as usize];
        push(ServerMessage::Event(Box::new(event(i, t, n))));
    }
    for i in 0..5 {
        push(ServerMessage::Malformed(Box::new(malformed(i))));
    }
    for i in 0..4 {
        push(ServerMessage::Lifecycle(Box::new(waterfall(i))));
    }
    for i in 0..4 {
        push(ServerMessage::Pipeline(Box::new(pipeline(i))));
    }
    push(metrics(1));
    out
}

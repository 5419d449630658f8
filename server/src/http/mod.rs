//! HTTP endpoints: [`app`] builds the router (tests drive it without a socket).
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/ingest`, `POST /api/v1/ingest` | agent batches (API key) |
//! | `GET /v1/events`, `GET /v1/events/{id}` | stored events (token) |
//! | `GET /v1/malformed`, `GET /v1/malformed/{id}/raw`, `POST /v1/malformed/replay` | the quarantine; its kept bytes (token) |
//! | `GET /v1/exceptions` | exception groups (token) |
//! | `GET /v1/traces/{trace_id}/spans` | waterfall rows of a trace (token) |
//! | `GET /v1/pipeline` | the server's own batch traces (token) |
//! | `GET /v1/stats` | the metrics snapshot (token) |
//! | `GET /v1/drift` | schema drift keys (token) |
//! | `GET /v1/feed` | the live WebSocket feed (token) |
//! | `GET /metrics` | Prometheus exposition |
//! | `GET /healthz`, `GET /readyz` | liveness, readiness |

pub mod drift;
pub mod error;
pub mod feed_ws;
pub mod query;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// The router of the whole server.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/ingest", post(crate::ingest::ingest))
        .route("/api/v1/ingest", post(crate::ingest::ingest))
        .route("/v1/events", get(query::list_events))
        .route("/v1/events/{id}", get(query::get_event))
        .route("/v1/malformed", get(query::list_malformed))
        .route("/v1/malformed/replay", post(query::replay_malformed))
        .route("/v1/malformed/{id}/raw", get(query::malformed_raw))
        .route("/v1/exceptions", get(query::exception_groups))
        .route("/v1/traces/{trace_id}/spans", get(query::trace_spans))
        .route("/v1/pipeline", get(query::pipeline_traces))
        .route("/v1/stats", get(query::stats))
        .route("/v1/drift", get(drift::list_drift))
        .route("/v1/feed", get(feed_ws::upgrade))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.prometheus(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `/readyz`: without the feed token, `{"ready", "reasons"}` in fixed words; with it, the
/// detail (store, sink, spool). Ready when the spool takes writes (not full, not stopped, not
/// shutting down), reads back, and the store answers.
async fn readyz(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    // Without the feed token, only what is wrong, in fixed words: no paths, no raw errors
    // (a load balancer needs the status; an attacker should not learn the layout).
    let detailed = query::require_token(&state, &headers, &query).is_ok();
    let store = state.store.health().await;
    let spool = state.spool.status();
    let spool_health = state.spool.health();
    let sink = state.metrics.gauges.sink.lock().clone();
    // Full: nearly at the quota, or an append was refused for it in the last 10 seconds.
    let refused_ms = state
        .last_quota_refusal_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let recently_refused =
        refused_ms > 0 && chrono::Utc::now().timestamp_millis() - refused_ms < 10_000;
    let spool_full =
        recently_refused || spool.bytes_on_disk as f64 >= spool.quota_bytes as f64 * 0.95;
    let shutting_down = state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed);
    // (what a load balancer may see, the detail for the feed token's holder)
    let mut reasons: Vec<(&str, String)> = Vec::new();
    if !store.reachable {
        let error = store.error.clone().unwrap_or_default();
        reasons.push(("store unreachable", format!("store unreachable: {error}")));
    }
    if !sink.healthy && sink.errors > 0 {
        let error = sink.last_error.clone().unwrap_or_default();
        reasons.push((
            "store writes failing",
            format!("store writes failing: {error}"),
        ));
    }
    if spool_full {
        let detail = "spool quota reached: ingest answers 503".to_owned();
        reasons.push(("spool quota reached", detail));
    }
    if let Some(reason) = &spool_health.writer_stopped {
        let detail = format!(
            "spool writer stopped: {reason}; ingest answers 503 until a restart (reads go on)"
        );
        reasons.push(("spool writer stopped", detail));
    }
    if let Some((at_ms, error)) = &spool_health.last_write_error {
        let ago_ms = chrono::Utc::now().timestamp_millis() - *at_ms as i64;
        if ago_ms < 10_000 {
            let detail = format!(
                "spool write failed {ago_ms} ms ago: {error} (the batch was refused, nothing of it kept)"
            );
            reasons.push(("spool write failed recently", detail));
        }
    }
    if let Some(error) = &spool_health.read_error {
        let detail = format!("spool reads failing: {error}; nothing is stored until they succeed");
        reasons.push(("spool reads failing", detail));
    }
    if shutting_down {
        reasons.push(("shutting down", "shutting down".to_owned()));
    }
    let ready = reasons.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !detailed {
        let reasons: Vec<&str> = reasons.iter().map(|(public, _)| *public).collect();
        return (status, Json(json!({"ready": ready, "reasons": reasons}))).into_response();
    }
    let reasons: Vec<String> = reasons.into_iter().map(|(_, detail)| detail).collect();
    let body = json!({
        "ready": ready,
        "reasons": reasons,
        "store": store,
        "sink": sink,
        "spool": {
            "bytes_on_disk": spool.bytes_on_disk,
            "quota_bytes": spool.quota_bytes,
            "segments": spool.segments,
            "last_lsn": spool.last_lsn,
            "health": spool_health,
        },
    });
    (status, Json(body)).into_response()
}

//! `POST /v1/ingest` (and `/api/v1/ingest`): the path from an agent's request to a durable,
//! acknowledged batch.
//!
//! accept (key, limits) → decode (inflate once, split) → accept (signature over the inflated
//! body, rate limit) → validate each event on its own (`check_event`) → enrich (batch metadata,
//! agent-retry detection) → spool (one record, group-committed fsync) → 202. The 202 is sent only
//! once the record is durable; its body lists every rejected event with its reasons. A body that
//! cannot be decoded at all is quarantined whole and answered 202 (`accepted: 0`), unless the
//! deployment asked for 400; 4xx is kept for what the sender must fix (401, 413, 415).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baddybugs_common::{check_event, CheckedEvent, Problem, ReasonCode};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::config::UndecodableBody;
use crate::decode::{self, DecodeError, RawEvent};
use crate::http::error::ApiError;
use crate::metrics::Latency;
use crate::record::{self, BatchMeta, Quarantined, Stage};
use crate::spool::SpoolError;
use crate::state::AppState;

/// Times the stages of one request for its pipeline trace.
struct Stages {
    started: Instant,
    last_us: u64,
    stages: Vec<Stage>,
}

impl Stages {
    fn new(started: Instant) -> Stages {
        Stages {
            started,
            last_us: 0,
            stages: Vec::with_capacity(8),
        }
    }
    fn mark(&mut self, stage: &str) {
        let now = self.started.elapsed().as_micros() as u64;
        self.stages.push(Stage {
            stage: stage.to_owned(),
            start_us: self.last_us,
            duration_us: now.saturating_sub(self.last_us),
        });
        self.last_us = now;
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn reasons_json(problems: &[Problem]) -> Vec<Value> {
    problems
        .iter()
        .map(|p| json!({"code": p.code, "path": p.path, "message": p.message}))
        .collect()
}

fn cap(bytes: &[u8], limit: usize) -> &[u8] {
    &bytes[..bytes.len().min(limit)]
}

/// The handler.
pub async fn ingest(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let result = handle(&state, request, started).await;
    let response = match result {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    state.metrics.response(response.status().as_u16());
    state
        .metrics
        .record_latency(Latency::Request, started.elapsed().as_micros() as u64);
    response
}

async fn handle(
    state: &AppState,
    request: Request,
    started: Instant,
) -> Result<Response, ApiError> {
    let received_ms = chrono::Utc::now().timestamp_millis();
    let mut stages = Stages::new(started);
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let remote_addr = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());

    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::Unavailable {
            message: "the server is shutting down".into(),
            retry_after: Duration::from_secs(2),
        });
    }
    let key = state.keys.authenticate(headers)?;
    // Bounded work in progress: the rest wait here, holding no body yet.
    let _permit = state
        .ingest_permits
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable {
            message: "the server is shutting down".into(),
            retry_after: Duration::from_secs(2),
        })?;
    let limits = &state.config.ingest;
    let encoding = decode::parse_encoding(header(headers, "content-encoding"))
        .map_err(|e| ApiError::UnsupportedEncoding(e.to_string()))?;
    let body = read_body(body, headers, limits.max_body_bytes).await?;
    stages.mark("received");

    let meta =
        |stages: &Stages, inflated: usize, total: u32, duplicates: u32, quarantined| BatchMeta {
            batch_id: uuid::Uuid::now_v7().to_string(),
            received_ms,
            organization: key.organization.clone(),
            application: key.application.clone(),
            remote_addr: remote_addr.clone(),
            agent_version: header(headers, "x-agent-version").map(str::to_owned),
            bytes_compressed: body.len() as u64,
            bytes_inflated: inflated as u64,
            total_events: total,
            duplicates,
            quarantined,
            stages: stages.stages.clone(),
        };

    let inflated = match decode::inflate(encoding, &body, limits.max_inflated_bytes) {
        Ok(inflated) => inflated,
        Err(DecodeError::InflatedTooLarge { limit }) => {
            return Err(ApiError::TooLarge(format!(
                "the body inflates past the limit of {limit} bytes (ingest.max_inflated_bytes)"
            )))
        }
        Err(DecodeError::Undecodable { code, message }) => {
            stages.mark("inflated");
            let m = meta(&stages, 0, 0, 0, Vec::new());
            if key.requires_signature() {
                // Nothing verifiable: the signature covers the inflated body.
                return Err(crate::accept::AuthError::SignatureMismatch.into());
            }
            return quarantine_body(state, m, &body, code, message).await;
        }
        Err(other) => return Err(ApiError::Internal(other.to_string())),
    };
    stages.mark("inflated");
    let now_secs = received_ms / 1000;
    key.verify_signature(headers, &inflated, now_secs, limits.signature_skew_secs)?;
    stages.mark("authenticated");

    let ndjson = decode::is_ndjson(header(headers, "content-type"));
    let split = match decode::split(&inflated, ndjson, limits.max_events_per_batch) {
        Ok(split) => split,
        Err(DecodeError::TooManyEvents { count, limit }) => {
            return Err(ApiError::TooLarge(format!(
                "{count} events in one request; the limit is {limit} (ingest.max_events_per_batch)"
            )))
        }
        Err(DecodeError::Undecodable { code, message }) => {
            stages.mark("parsed");
            // (The signature was verified over the inflated body just above.)
            let m = meta(&stages, inflated.len(), 0, 0, Vec::new());
            return quarantine_body(state, m, &inflated, code, message).await;
        }
        Err(other) => return Err(ApiError::Internal(other.to_string())),
    };
    stages.mark("parsed");
    if split.events.is_empty() {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"accepted": 0, "rejected": 0, "duplicates": 0, "batch_id": null, "errors": [], "note": "empty batch: nothing to store"})),
        )
            .into_response());
    }
    if let Err(wait) = key.check_rate(split.events.len()) {
        return Err(ApiError::RateLimited(wait.max(Duration::from_secs(1))));
    }
    state.metrics.bytes(body.len(), inflated.len());

    // Validate each event on its own.
    let mut accepted: Vec<(u32, CheckedEvent<'_>)> = Vec::with_capacity(split.events.len());
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut quarantined_raw: Vec<&[u8]> = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (i, raw) in split.events.iter().enumerate() {
        let index = i as u32;
        let bytes = raw.bytes();
        let outcome = if bytes.len() > limits.max_event_bytes {
            Err((
                None,
                None,
                vec![Problem::new(
                    ReasonCode::TooLarge,
                    "",
                    format!(
                        "at most {} bytes per event (ingest.max_event_bytes)",
                        limits.max_event_bytes
                    ),
                    format!("{} bytes", bytes.len()),
                )],
            ))
        } else {
            match raw {
                RawEvent::Invalid(_) => Err((
                    None,
                    None,
                    vec![Problem::new(
                        ReasonCode::InvalidUtf8,
                        "",
                        "UTF-8 text",
                        "invalid UTF-8 bytes",
                    )],
                )),
                RawEvent::Text(text) => {
                    check_event(text, received_ms).map_err(|r| (r.event_type, r.id, r.problems))
                }
            }
        };
        match outcome {
            Ok(event) => {
                if !event.envelope.warnings.is_empty() {
                    warnings.push(json!({"index": index, "id": event.envelope.id, "reasons": reasons_json(&event.envelope.warnings)}));
                }
                accepted.push((index, event));
            }
            Err((event_type, event_id, problems)) => {
                state.metrics.rejected(event_type.as_deref(), &problems);
                errors.push(json!({"index": index, "id": event_id, "type": event_type, "reasons": reasons_json(&problems)}));
                quarantined_raw.push(cap(bytes, limits.quarantine_raw_cap_bytes));
                quarantined.push(Quarantined {
                    index: Some(index),
                    event_type,
                    event_id,
                    reasons: problems,
                    raw_size: bytes.len() as u64,
                });
            }
        }
    }
    stages.mark("validated");

    // Agent retries: ids accepted within the window are counted, not stored again.
    let ids: Vec<Option<&str>> = accepted
        .iter()
        .map(|(_, e)| e.envelope.id.as_deref())
        .collect();
    let duplicate_flags = state.dedup.check(&key.organization, &ids, received_ms);
    let mut duplicates = 0u32;
    let mut kept = Vec::with_capacity(accepted.len());
    for ((index, event), dup) in accepted.into_iter().zip(duplicate_flags) {
        if dup {
            duplicates += 1;
            state.metrics.duplicate(&event.envelope.event_type);
        } else {
            kept.push((index, event));
        }
    }
    let total = split.events.len() as u32;
    stages.mark("enriched");
    let mut batch_meta = meta(&stages, inflated.len(), total, duplicates, quarantined);
    let event_bytes: Vec<(u32, &[u8])> = kept
        .iter()
        .map(|(i, e)| (*i, e.envelope.raw.as_bytes()))
        .collect();
    let record = record::encode(&batch_meta, &event_bytes, &quarantined_raw);
    if let Err(err) = state.spool.append(vec![record]).await {
        if matches!(err, SpoolError::QuotaExceeded { .. }) {
            state
                .last_quota_refusal_ms
                .store(received_ms, Ordering::Relaxed);
        }
        return Err(spool_error(err));
    }
    stages.mark("spooled");
    state.dedup.remember(
        &key.organization,
        kept.iter().filter_map(|(_, e)| e.envelope.id.as_deref()),
        received_ms,
    );
    for (_, event) in &kept {
        state
            .metrics
            .accepted(&event.envelope.event_type, event.columns.duration_ms);
    }
    state.metrics.record_batch_size(split.events.len());
    batch_meta.stages = stages.stages.clone();
    state
        .feed
        .publish_batch(&batch_meta, &kept, &quarantined_raw, started.elapsed());

    let mut body = json!({
        "accepted": kept.len(),
        "rejected": batch_meta.quarantined.len(),
        "duplicates": duplicates,
        "batch_id": batch_meta.batch_id,
        "errors": errors,
    });
    if !warnings.is_empty() {
        body["warnings"] = Value::Array(warnings);
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::TooLarge(format!(
            "the request body is over the limit of {limit} bytes (ingest.max_body_bytes)"
        ))
    };
    let declared = header(headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        drain(body, limit).await;
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut collected = bytes::BytesMut::with_capacity(declared.unwrap_or(16 << 10).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ApiError::BadRequest {
            code: "body_read_failed",
            message: format!("could not read the request body: {err}"),
        })?;
        if collected.len() + chunk.len() > limit {
            drain(Body::from_stream(stream), limit).await;
            return Err(too_large());
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// Reads and discards what is left of an over-limit body (at most 4 × the limit, for at most
/// 5 s) so that the client, still uploading, reliably reads the 413 instead of a reset.
async fn drain(body: Body, limit: usize) {
    let cap = limit.saturating_mul(4);
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > cap {
                break;
            }
        }
    })
    .await;
}

fn spool_error(err: SpoolError) -> ApiError {
    match err {
        SpoolError::QuotaExceeded { used, quota } => ApiError::Unavailable {
            message: format!(
                "the spool is full ({used} of {quota} bytes) because the store is not keeping up or is down; nothing was accepted, retry later"
            ),
            retry_after: Duration::from_secs(5),
        },
        other => {
            tracing::error!(error = %other, "spool append failed");
            ApiError::Unavailable {
                message: format!("the spool could not make the batch durable ({other}); nothing was accepted, retry later"),
                retry_after: Duration::from_secs(2),
            }
        }
    }
}

async fn quarantine_body(
    state: &AppState,
    mut meta: BatchMeta,
    bytes: &[u8],
    code: ReasonCode,
    message: String,
) -> Result<Response, ApiError> {
    if state.config.ingest.undecodable_body == UndecodableBody::Reject {
        return Err(ApiError::BadRequest {
            code: code.as_str(),
            message,
        });
    }
    let problem = Problem {
        code,
        path: String::new(),
        expected:
            "a gzip/deflate/zstd/plain body holding {\"events\":[…]}, an array, one event or NDJSON"
                .into(),
        found: message.clone(),
        message: message.clone(),
    };
    state.metrics.rejected(None, std::slice::from_ref(&problem));
    meta.quarantined = vec![Quarantined {
        index: None,
        event_type: None,
        event_id: None,
        reasons: vec![problem.clone()],
        raw_size: bytes.len() as u64,
    }];
    let kept = cap(bytes, state.config.ingest.quarantine_raw_cap_bytes);
    let record = record::encode(&meta, &[], &[kept]);
    state
        .spool
        .append(vec![record])
        .await
        .map_err(spool_error)?;
    state
        .feed
        .publish_batch(&meta, &[], &[kept], Duration::ZERO);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": 0,
            "rejected": 1,
            "duplicates": 0,
            "batch_id": meta.batch_id,
            "errors": [{"index": null, "id": null, "type": null, "reasons": reasons_json(&[problem])}],
            "quarantined_body": true,
        })),
    )
        .into_response())
}

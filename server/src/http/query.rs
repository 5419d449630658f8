//! The query API (token required, JSON): stored events, the quarantine and its replay,
//! exception groups, trace spans and pipeline traces, and `/v1/stats`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use baddybugs_common::check_event;
use baddybugs_common::query::ParamError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::http::error::ApiError;
use crate::ingest::keys::bearer;
use crate::ingest::submit::{submit, EventToStore, Submission};
use crate::ingest::trace::StageTimer;
use crate::query::QueryService;
use crate::sink::{EventFilter, EventLookup, MalformedFilter, SinkError, StoredEvent, TraceFilter};
use crate::state::AppState;

/// Checks the feed/query token (`Authorization: Bearer` or `?token=`).
pub fn require_token(
    state: &AppState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let given = bearer(headers).or_else(|| query.get("token").map(String::as_str));
    match given {
        Some(token) if constant_time_eq(token.as_bytes(), state.feed_token.as_bytes()) => Ok(()),
        _ => Err(ApiError::BadToken),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A store failure as the query API answers it (400 for a bad query, else 503).
pub(crate) fn sink_error(err: SinkError) -> ApiError {
    match err {
        SinkError::BadQuery(message) => ApiError::BadRequest {
            code: "bad_query",
            message,
        },
        other => ApiError::Unavailable {
            message: format!("the store cannot answer now: {}", other.chain()),
            retry_after: std::time::Duration::from_secs(2),
        },
    }
}

/// A parameter that cannot be read: 400 `bad_parameter` naming it.
pub(crate) fn bad_param(err: ParamError) -> ApiError {
    ApiError::BadRequest {
        code: "bad_parameter",
        message: err.to_string(),
    }
}

fn queries(state: &AppState) -> QueryService {
    QueryService::new(state.store.clone(), state.drift.clone())
}

/// `GET /v1/events`
pub async fn list_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let filter = EventFilter::from_params(&query).map_err(bad_param)?;
    let page = queries(&state).events(filter).await.map_err(sink_error)?;
    Ok(Json(page).into_response())
}

/// `GET /v1/events/{id}[?organization=&application=]`: an event is identified by its tenant
/// and its id. One match answers `200` with the event (as before tenant-scoped ids); an id
/// that several tenants stored, within the given scope, answers `300 Multiple Choices` with
/// every match ([`AmbiguousId`]); none answers `404`.
pub async fn get_event(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let lookup = EventLookup::from_params(id, &query);
    let mut events = queries(&state)
        .event(lookup.clone())
        .await
        .map_err(sink_error)?;
    match events.len() {
        0 => Err(ApiError::NotFound(format!(
            "no stored event has id {:?}{} (it may not be written yet: events reach the store \
             within batch.flush_interval_ms)",
            lookup.event_id,
            scope_text(&lookup)
        ))),
        1 => Ok(Json(events.remove(0)).into_response()),
        n => Ok((
            StatusCode::MULTIPLE_CHOICES,
            Json(AmbiguousId {
                error: "ambiguous_id",
                message: format!(
                    "{n} stored events have id {:?}{}, one per tenant: add organization= and \
                     application= to choose one",
                    lookup.event_id,
                    scope_text(&lookup)
                ),
                events,
            }),
        )
            .into_response()),
    }
}

/// The body of `GET /v1/events/{id}` when the id names events of several tenants.
#[derive(Debug, Serialize)]
pub struct AmbiguousId {
    /// `ambiguous_id`.
    pub error: &'static str,
    /// What to do about it.
    pub message: String,
    /// Every match, by organization then application.
    pub events: Vec<StoredEvent>,
}

/// `" in organization \"acme\""` and the like: the scope of a lookup, for its messages.
fn scope_text(lookup: &EventLookup) -> String {
    let parts: Vec<String> = [
        ("organization", &lookup.organization),
        ("application", &lookup.application),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v:?}")))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" in {}", parts.join(" and "))
    }
}

/// `GET /v1/malformed`
pub async fn list_malformed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let filter = MalformedFilter::from_params(&query).map_err(bad_param)?;
    let rows = queries(&state)
        .malformed(filter)
        .await
        .map_err(sink_error)?;
    Ok(Json(json!({ "malformed": rows })).into_response())
}

/// `GET /v1/malformed/{id}/raw`: the kept bytes of one quarantined entry, exactly as received
/// after decompression (every byte of a whole body), as `application/octet-stream`.
pub async fn malformed_raw(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    match queries(&state)
        .malformed_raw(id.clone())
        .await
        .map_err(sink_error)?
    {
        Some(raw) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            raw,
        )
            .into_response()),
        None => Err(ApiError::NotFound(format!(
            "no quarantined entry has id {id:?} (it may not be written yet: the quarantine reaches the store within batch.flush_interval_ms)"
        ))),
    }
}

/// Body of `POST /v1/malformed/replay`.
#[derive(Debug, Deserialize)]
pub struct ReplayRequest {
    /// Quarantine ids.
    pub ids: Vec<String>,
}

/// Most bytes of a replay request body: 10,000 quarantine ids take well under 1 MiB.
pub const REPLAY_MAX_BODY_BYTES: usize = 2 << 20;

/// Most quarantine ids in one replay request.
pub const REPLAY_MAX_IDS: usize = 10_000;

/// Reads a replay request body, up to [`REPLAY_MAX_BODY_BYTES`] (413 past it, the rest drained
/// briefly so the client reads the answer).
async fn read_replay_body(
    body: axum::body::Body,
    headers: &HeaderMap,
) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let too_large = || {
        ApiError::TooLarge(format!(
            "the replay request body is over {REPLAY_MAX_BODY_BYTES} bytes: send at most {REPLAY_MAX_IDS} ids"
        ))
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > REPLAY_MAX_BODY_BYTES) {
        crate::ingest::admit::drain(body, REPLAY_MAX_BODY_BYTES).await;
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut out = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| ApiError::BadRequest {
            code: "bad_body",
            message: format!("could not read the request body: {err}"),
        })?;
        if out.len() + chunk.len() > REPLAY_MAX_BODY_BYTES {
            crate::ingest::admit::drain(
                axum::body::Body::from_stream(stream),
                REPLAY_MAX_BODY_BYTES,
            )
            .await;
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `POST /v1/malformed/replay`: re-checks quarantined events with the current catalog and
/// ingests those that now pass (a new batch per organization/application). The token is
/// checked before the body is read; the body is JSON whatever its `Content-Type`.
pub async fn replay_malformed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let body = read_replay_body(body, &headers).await?;
    let request: ReplayRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
            code: "bad_body",
            message: format!("the body must be {{\"ids\": [\"<quarantine id>\", …]}}: {e}"),
        })?;
    if request.ids.is_empty() || request.ids.len() > REPLAY_MAX_IDS {
        return Err(ApiError::BadRequest {
            code: "bad_body",
            message: format!("`ids` must list 1 to {REPLAY_MAX_IDS} quarantine ids"),
        });
    }
    let rows = queries(&state)
        .malformed_by_id(request.ids.clone())
        .await
        .map_err(sink_error)?;
    let now = chrono::Utc::now().timestamp_millis();
    // Re-validating up to 10,000 events is CPU work: on the ingest-cpu pool, like ingest's.
    let (rows, verdicts) = state
        .ingest_pool
        .run(move || {
            let verdicts: Vec<Result<(), Vec<baddybugs_common::Problem>>> = rows
                .iter()
                .map(|row| {
                    check_event(&row.raw, now)
                        .map(|_| ())
                        .map_err(|r| r.problems)
                })
                .collect();
            (rows, verdicts)
        })
        .await
        .map_err(|err| ApiError::internal("re-checking the quarantined events", err))?;
    let mut replayed = Vec::new();
    let mut still_rejected = Vec::new();
    // (organization, application) → the event texts to re-ingest, in order.
    let mut by_app: HashMap<(String, String), Vec<&str>> = HashMap::new();
    for (row, verdict) in rows.iter().zip(verdicts) {
        if row.truncated {
            still_rejected.push(
                json!({"id": row.id, "reason": "only the first bytes were kept; cannot replay"}),
            );
            continue;
        }
        match verdict {
            Ok(()) => {
                by_app
                    .entry((row.organization.clone(), row.application.clone()))
                    .or_default()
                    .push(&row.raw);
                replayed.push(row.id.clone());
            }
            Err(problems) => still_rejected.push(json!({"id": row.id, "reasons": problems})),
        }
    }
    for ((organization, application), texts) in by_app {
        let mut body = Vec::new();
        let mut events = Vec::with_capacity(texts.len());
        for (index, text) in texts.iter().enumerate() {
            let start = body.len();
            body.extend_from_slice(text.as_bytes());
            events.push((index as u32, start..body.len()));
        }
        let submission = Submission {
            organization: &organization,
            application: &application,
            received_ms: now,
            remote_addr: None,
            agent_version: Some("replay".into()),
            bytes_compressed: 0,
            bytes_inflated: body.len() as u64,
            total_events: events.len() as u32,
            body: &body,
            // A replay is stored whatever the dedup window says: its events were never stored.
            events: events
                .into_iter()
                .map(|(index, range)| EventToStore {
                    index,
                    range,
                    id: None,
                })
                .collect(),
            quarantined: Vec::new(),
        };
        submit(&state, submission, &mut StageTimer::new(Instant::now())).await?;
    }
    let missing: Vec<&String> = request
        .ids
        .iter()
        .filter(|id| !rows.iter().any(|r| &r.id == *id))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"replayed": replayed, "still_rejected": still_rejected, "not_found": missing})),
    )
        .into_response())
}

/// `GET /v1/exceptions`: exception groups.
pub async fn exception_groups(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let filter = EventFilter::from_params(&query).map_err(bad_param)?;
    let groups = queries(&state)
        .exception_groups(filter)
        .await
        .map_err(sink_error)?;
    Ok(Json(json!({ "groups": groups })).into_response())
}

/// `GET /v1/traces/{trace_id}/spans`: lifecycle and trace spans of one trace.
pub async fn trace_spans(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let spans = queries(&state)
        .trace_spans(trace_id)
        .await
        .map_err(sink_error)?;
    Ok(Json(json!({ "spans": spans })).into_response())
}

/// `GET /v1/pipeline`: the server's own batch traces (`order=recent|slowest`, `failed=true`).
pub async fn pipeline_traces(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    let filter = TraceFilter::from_params(&query).map_err(bad_param)?;
    let traces = queries(&state)
        .pipeline_traces(filter)
        .await
        .map_err(sink_error)?;
    Ok(Json(json!({ "traces": traces })).into_response())
}

/// `GET /v1/stats`: the same snapshot as the feed's `metrics` topic, counts exact.
pub async fn stats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require_token(&state, &headers, &query)?;
    Ok(Json(state.metrics.current()).into_response())
}

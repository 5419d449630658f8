//! `POST /v1/ingest` (and `/api/v1/ingest`): the path from an agent's request to a durable,
//! acknowledged batch, as a short list of typed stages, one module each:
//!
//! 1. [`admit`] (on the async worker): shutdown, API key, encoding, body read with its limit;
//!    then a work permit (`ingest.max_concurrent_requests`), taken only once the body is in hand;
//! 2. [`decode`] (on the `ingest-cpu` pool): inflate once, check the signature over the
//!    inflated body, split into events; then the key's rate limit;
//! 3. [`validate`] (same pool job): each event on its own (`check_event`);
//! 4. [`submit`] (async): dedup reservation, batch metadata, one spool record, group-committed
//!    fdatasync; the ids are confirmed once durable;
//! 5. metrics, and a compact value handed to the feed's tap without waiting
//!    ([`crate::feed::tap`]); then the 202, whose body lists every rejected event with its
//!    reasons.
//!
//! A body that cannot be decoded at all is quarantined whole through the same [`submit`] and
//! answered 202 (`accepted: 0`), unless the deployment asked for 400
//! (`ingest.undecodable_body`); 4xx is kept for what the sender must fix (401, 413, 415).
//! The async workers only do I/O: inflating, splitting, validating and building feed messages
//! happen on the `ingest-cpu` pool and the `feed-build` thread ([`crate::background`]).

pub mod admit;
pub mod decode;
pub mod dedup;
pub mod keys;
pub mod salvage;
pub mod submit;
pub mod trace;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use baddybugs_common::Problem;
use serde_json::{json, Value};

use crate::config::UndecodableBody;
use crate::feed::AcceptedBatch;
use crate::http::error::ApiError;
use crate::metrics::{BatchCounts, Latency};
use crate::record::Quarantined;
use crate::state::AppState;
use admit::{Admitted, RequestFacts};
use baddybugs_common::protocol::{PipelineTrace, StageName};
use baddybugs_common::timestamp::format_millis;
use decode::{Decoded, DecodedBody, Undecodable};
use submit::{EventToStore, Submission, Submitted};
use trace::StageTimer;
use validate::Validated;

/// The handler.
pub async fn ingest(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    // Kept to name the sender of a refused request (a cheap clone: the value is shared).
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .cloned();
    let response = match handle(&state, request, started).await {
        Ok(response) => response,
        Err(err) => {
            refused(&state, &err, authorization.as_ref(), started);
            err.into_response()
        }
    };
    state.metrics.response(response.status().as_u16());
    state
        .metrics
        .record_latency(Latency::Request, started.elapsed().as_micros() as u64);
    response
}

/// Counts a refused request by status and code, and by sender (never the key itself), and shows
/// it in the pipeline tail with its reason: it never reaches the spool, so no batch trace
/// tells of it.
fn refused(
    state: &AppState,
    err: &ApiError,
    authorization: Option<&axum::http::HeaderValue>,
    started: Instant,
) {
    let (status, code) = (err.status().as_u16(), err.code());
    state.metrics.refusal(status, code);
    let sender = state.keys.sender(authorization);
    state.metrics.sender_refusal(sender.clone(), status, code);
    state.feed.publish_refused(|| {
        let took = started.elapsed();
        let received_ms = chrono::Utc::now().timestamp_millis() - took.as_millis() as i64;
        PipelineTrace {
            batch_id: uuid::Uuid::now_v7().to_string(),
            application: sender,
            received_at: format_millis(received_ms),
            outcome: "refused".into(),
            status,
            reason: Some(format!("{code}: {err}")),
            total_ms: took.as_secs_f64() * 1000.0,
            stages: Vec::new(),
            bytes_compressed: 0,
            bytes_inflated: 0,
            events: 0,
            accepted: 0,
            rejected: 0,
            duplicates: 0,
        }
    });
}

async fn handle(
    state: &Arc<AppState>,
    request: Request,
    started: Instant,
) -> Result<Response, ApiError> {
    let mut admitted = admit::admit(state, request, started).await?;
    let _body_budget = admitted.body_budget.take();
    let _permit = state.admission.work_permit(&admitted.key.key).await?;
    let bytes_compressed = admitted.body.len();
    let (prepared, facts, mut timer) = prepare(state, admitted).await?;
    match prepared {
        Prepared::Undecodable { key, undecodable } => {
            let tenant = (key.organization.as_str(), key.application.as_str());
            quarantine_body(state, tenant, &facts, bytes_compressed, undecodable, &mut timer).await
        }
        Prepared::Empty => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"accepted": 0, "rejected": 0, "duplicates": 0, "batch_id": null, "errors": [], "note": "empty batch: nothing to store"})),
        )
            .into_response()),
        Prepared::Events { key, body, checked } => {
            state.metrics.bytes(bytes_compressed, body.inflated.len());
            let signature = match reserve_signature(state, &key, &body, &checked, &facts).await? {
                SignatureCheck::Replayed(response) => return Ok(response),
                SignatureCheck::New(reservation) => reservation,
            };
            for r in &checked.rejected {
                state
                    .metrics
                    .rejected(r.entry.event_type.as_deref(), &r.entry.reasons);
            }
            let submission = submission(&key, &facts, bytes_compressed, &body, &checked);
            let submitted = submit::submit(state, submission, &mut timer).await?;
            if let Some(reservation) = signature {
                reservation.confirm(facts.received_ms);
            }
            record_accepted(state, &checked, &submitted, body.events.len());
            let duplicates = submitted.duplicate_count() as u64;
            state.metrics.app_batch(
                &key.organization,
                &key.application,
                BatchCounts {
                    accepted: checked.accepted.len() as u64 - duplicates,
                    rejected: checked.rejected.len() as u64,
                    duplicates,
                },
            );
            record_drift(state, &key, &facts, &checked, &submitted);
            tap_feed(state, &submitted, &body, &checked);
            Ok(respond(&submitted, &checked))
        }
    }
}

/// What [`reserve_signature`] decided.
enum SignatureCheck<'s> {
    /// Not seen (or unsigned): go on; confirm the reservation once stored.
    New(Option<dedup::Reservation<'s>>),
    /// The same signed request was already stored: this is the answer.
    Replayed(Response),
}

/// Replay protection: a signature already stored within the window is this very request again.
async fn reserve_signature<'s>(
    state: &'s AppState,
    key: &keys::KeyInfo,
    body: &DecodedBody,
    checked: &Validated,
    facts: &RequestFacts,
) -> Result<SignatureCheck<'s>, ApiError> {
    let Some(signature) = body.signature.as_deref() else {
        return Ok(SignatureCheck::New(None));
    };
    let reservation = state
        .signatures
        .reserve(&key.key, &[Some(signature)], facts.received_ms)
        .await
        .map_err(|pending| ApiError::Unavailable {
            message: format!("{pending}; retry later"),
            retry_after: Duration::from_secs(2),
        })?;
    if !reservation.duplicates()[0] {
        return Ok(SignatureCheck::New(Some(reservation)));
    }
    state.metrics.replayed_signature();
    for e in &checked.accepted {
        state.metrics.duplicate(&e.event_type);
    }
    state.metrics.app_batch(
        &key.organization,
        &key.application,
        BatchCounts {
            duplicates: checked.accepted.len() as u64,
            ..BatchCounts::default()
        },
    );
    Ok(SignatureCheck::Replayed(replayed(checked.accepted.len())))
}

/// The submission of a validated request.
fn submission<'a>(
    key: &'a keys::KeyInfo,
    facts: &RequestFacts,
    bytes_compressed: usize,
    body: &'a DecodedBody,
    checked: &'a Validated,
) -> Submission<'a> {
    Submission {
        organization: &key.organization,
        application: &key.application,
        received_ms: facts.received_ms,
        remote_addr: facts.remote_addr.clone(),
        agent_version: facts.agent_version.clone(),
        bytes_compressed: bytes_compressed as u64,
        bytes_inflated: body.inflated.len() as u64,
        total_events: body.events.len() as u32,
        body: &body.inflated,
        events: checked
            .accepted
            .iter()
            .map(|e| EventToStore {
                index: e.index,
                range: e.range.clone(),
                id: e.id.as_deref(),
            })
            .collect(),
        quarantined: checked
            .rejected
            .iter()
            .map(|r| (r.entry.clone(), r.kept.clone()))
            .collect(),
    }
}

/// What the CPU stages made of a request.
enum Prepared {
    Events {
        key: Arc<keys::KeyInfo>,
        body: DecodedBody,
        checked: Validated,
    },
    Undecodable {
        key: Arc<keys::KeyInfo>,
        undecodable: Undecodable,
    },
    Empty,
}

/// Decode, rate limit and validate, as one job on the `ingest-cpu` pool.
async fn prepare(
    state: &Arc<AppState>,
    admitted: Admitted,
) -> Result<(Prepared, RequestFacts, StageTimer), ApiError> {
    let job_state = Arc::clone(state);
    let job = move || {
        let Admitted {
            key,
            facts,
            body,
            mut timer,
            ..
        } = admitted;
        let limits = &job_state.config.ingest;
        let prepared = match decode::decode_body(&key, &facts, body, limits, &mut timer)? {
            Decoded::Undecodable(undecodable) => Prepared::Undecodable { key, undecodable },
            Decoded::Events(body) if body.events.is_empty() => Prepared::Empty,
            Decoded::Events(body) => {
                if let Err(wait) = key.check_rate(body.events.len()) {
                    return Err(ApiError::RateLimited(wait.max(Duration::from_secs(1))));
                }
                let checked = validate::validate_body(
                    &body,
                    facts.received_ms,
                    limits,
                    job_state.drift.enabled(),
                );
                timer.mark(StageName::Validated);
                Prepared::Events { key, body, checked }
            }
        };
        Ok((prepared, facts, timer))
    };
    state
        .ingest_pool
        .run(job)
        .await
        .map_err(|err| ApiError::internal("checking the request on the ingest pool", err))?
}

fn record_accepted(state: &AppState, checked: &Validated, submitted: &Submitted, total: usize) {
    for (event, duplicate) in checked.accepted.iter().zip(&submitted.duplicates) {
        if *duplicate {
            state.metrics.duplicate(&event.event_type);
        } else {
            state.metrics.accepted(&event.event_type, event.duration_ms);
            state.metrics.warned(&event.warnings);
        }
    }
    state.metrics.record_batch_size(total);
}

/// Adds the drift of the stored (non-duplicate) events to the registry; the keys new to this
/// process go to the feed's `drift` topic. A request without drift takes no lock.
fn record_drift(
    state: &AppState,
    key: &keys::KeyInfo,
    facts: &RequestFacts,
    checked: &Validated,
    submitted: &Submitted,
) {
    let events: Vec<_> = checked
        .accepted
        .iter()
        .zip(&submitted.duplicates)
        .filter(|(e, dup)| !**dup && !e.drift.is_empty())
        .map(|(e, _)| (e.event_type.as_str(), e.id.as_deref(), e.drift.as_slice()))
        .collect();
    if events.is_empty() {
        return;
    }
    let notices = state.drift.record(&crate::drift::DriftBatch {
        application: &key.application,
        agent_version: facts.agent_version.as_deref(),
        received_ms: facts.received_ms,
        events,
    });
    if !notices.is_empty() {
        state.feed.publish_drift(notices);
    }
}

/// Hands the feed what it needs, without waiting and only if a tail will use it.
fn tap_feed(state: &AppState, submitted: &Submitted, body: &DecodedBody, checked: &Validated) {
    if !state.feed_tap.wants(!checked.rejected.is_empty()) {
        return;
    }
    state.feed_tap.offer(AcceptedBatch {
        meta: submitted.meta.clone(),
        body: body.inflated.clone(),
        events: checked
            .accepted
            .iter()
            .zip(&submitted.duplicates)
            .filter(|(_, dup)| !**dup)
            .map(|(e, _)| e.feed.clone())
            .collect(),
        quarantined: checked.rejected.iter().map(|r| r.kept.clone()).collect(),
    });
}

/// The answer to a signed request whose signature was already stored: nothing is stored again;
/// its accepted events are duplicates (its rejected ones were quarantined the first time).
fn replayed(events: usize) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": 0,
            "rejected": 0,
            "duplicates": events,
            "batch_id": null,
            "errors": [],
            "note": "this signed request was already stored (same X-Signature within the skew window); nothing was stored again",
        })),
    )
        .into_response()
}

fn reasons_json(problems: &[Problem]) -> Vec<Value> {
    problems
        .iter()
        .map(|p| json!({"code": p.code, "path": p.path, "message": p.message}))
        .collect()
}

fn respond(submitted: &Submitted, checked: &Validated) -> Response {
    let errors: Vec<Value> = checked
        .rejected
        .iter()
        .map(|r| {
            let q = &r.entry;
            json!({"index": q.index, "id": q.event_id, "type": q.event_type, "reasons": reasons_json(&q.reasons)})
        })
        .collect();
    let warnings: Vec<Value> = checked
        .accepted
        .iter()
        .filter(|e| !e.warnings.is_empty())
        .map(|e| json!({"index": e.index, "id": e.id, "reasons": reasons_json(&e.warnings)}))
        .collect();
    let mut body = json!({
        "accepted": checked.accepted.len() - submitted.duplicate_count(),
        "rejected": checked.rejected.len(),
        "duplicates": submitted.duplicate_count(),
        "batch_id": submitted.meta.batch_id,
        "errors": errors,
    });
    if !warnings.is_empty() {
        body["warnings"] = Value::Array(warnings);
    }
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Quarantines a body that cannot be decoded, whole and uncut (or answers 400 if so
/// configured).
async fn quarantine_body(
    state: &Arc<AppState>,
    (organization, application): (&str, &str),
    facts: &RequestFacts,
    bytes_compressed: usize,
    undecodable: Undecodable,
    timer: &mut StageTimer,
) -> Result<Response, ApiError> {
    let Undecodable {
        bytes,
        bytes_inflated,
        code,
        message,
    } = undecodable;
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
        message,
    };
    state.metrics.rejected(None, std::slice::from_ref(&problem));
    state.metrics.app_batch(
        organization,
        application,
        BatchCounts {
            rejected: 1,
            ..BatchCounts::default()
        },
    );
    let entry = Quarantined {
        index: None,
        event_type: None,
        event_id: None,
        reasons: vec![problem.clone()],
        raw_size: bytes.len() as u64,
    };
    // Every byte, not `quarantine_raw_cap_bytes`: its events cannot be told apart, so the body
    // is the only thing to inspect, repair and replay (`GET /v1/malformed/{id}/raw`). It is at
    // most `ingest.max_inflated_bytes` (or `max_body_bytes` when it could not be inflated), which
    // config validation keeps under the spool's record bound.
    let kept = 0..bytes.len();
    let submitted = submit::submit(
        state,
        Submission {
            organization,
            application,
            received_ms: facts.received_ms,
            remote_addr: facts.remote_addr.clone(),
            agent_version: facts.agent_version.clone(),
            bytes_compressed: bytes_compressed as u64,
            bytes_inflated: bytes_inflated as u64,
            total_events: 0,
            body: &bytes,
            events: Vec::new(),
            quarantined: vec![(entry, kept.clone())],
        },
        timer,
    )
    .await?;
    state.feed_tap.offer(AcceptedBatch {
        meta: submitted.meta.clone(),
        body: bytes.clone(),
        events: Vec::new(),
        quarantined: vec![kept],
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": 0,
            "rejected": 1,
            "duplicates": 0,
            "batch_id": submitted.meta.batch_id,
            "errors": [{"index": null, "id": null, "type": null, "reasons": reasons_json(&[problem])}],
            "quarantined_body": true,
        })),
    )
        .into_response())
}

//! Admit: may this request be processed, and its body.
//!
//! In: the HTTP request. Out: an [`Admitted`] request (its API key, the facts later stages
//! need, the body as sent) or an [`ApiError`]: 503 while shutting down, 401 for a missing or
//! unknown key, 415 for an unsupported `Content-Encoding`, 413 for a body over
//! `ingest.max_body_bytes` (read no further than the limit, then drained briefly so the client
//! reads the 413 rather than a reset), 400 for a body that breaks off.
//!
//! The order is cheapest first, and nothing here holds a permit: the body is read before the
//! request takes one of the `ingest.max_concurrent_requests` work permits
//! ([`work_permit`]), so a client that uploads slowly holds only its own connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use tokio::sync::SemaphorePermit;

use super::decode::{self, Encoding};
use super::keys::{KeyInfo, SignatureHeaders};
use super::trace::StageTimer;
use crate::http::error::ApiError;
use crate::state::AppState;

/// What later stages need to know of the request, owned.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// Receipt time, epoch ms.
    pub received_ms: i64,
    /// Client address.
    pub remote_addr: Option<String>,
    /// `X-Agent-Version`.
    pub agent_version: Option<String>,
    /// `Content-Encoding`.
    pub encoding: Encoding,
    /// `Content-Type` announces NDJSON.
    pub ndjson: bool,
    /// `X-Signature` / `X-Timestamp`.
    pub signature: SignatureHeaders,
}

/// An admitted request.
#[derive(Debug)]
pub struct Admitted {
    /// Its API key.
    pub key: Arc<KeyInfo>,
    /// Its facts.
    pub facts: RequestFacts,
    /// The body as sent.
    pub body: bytes::Bytes,
    /// Stage timings so far (`received`).
    pub timer: StageTimer,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn shutting_down() -> ApiError {
    ApiError::Unavailable {
        message: "the server is shutting down".into(),
        retry_after: Duration::from_secs(2),
    }
}

/// Admits a request: shutdown, key, encoding, body.
pub async fn admit(
    state: &AppState,
    request: Request,
    started: Instant,
) -> Result<Admitted, ApiError> {
    let received_ms = chrono::Utc::now().timestamp_millis();
    let mut timer = StageTimer::new(started);
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(shutting_down());
    }
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let key = state.keys.authenticate(headers)?;
    let encoding = decode::parse_encoding(header(headers, "content-encoding"))
        .map_err(|e| ApiError::UnsupportedEncoding(e.to_string()))?;
    let facts = RequestFacts {
        received_ms,
        remote_addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string()),
        agent_version: header(headers, "x-agent-version").map(str::to_owned),
        encoding,
        ndjson: decode::is_ndjson(header(headers, "content-type")),
        signature: SignatureHeaders::from_headers(headers),
    };
    let body = read_body(body, headers, state.config.ingest.max_body_bytes).await?;
    timer.mark("received");
    Ok(Admitted {
        key,
        facts,
        body,
        timer,
    })
}

/// One of the `ingest.max_concurrent_requests` work permits, taken once the body is in hand:
/// it bounds the requests being decoded, validated and spooled at once (and so the memory of
/// their inflated bodies).
pub async fn work_permit(state: &AppState) -> Result<SemaphorePermit<'_>, ApiError> {
    state
        .ingest_permits
        .acquire()
        .await
        .map_err(|_| shutting_down())
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

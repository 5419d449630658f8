//! Admit: may this request be processed, and its body.
//!
//! In: the HTTP request. Out: an [`Admitted`] request (its API key, the facts later stages
//! need, the body as sent) or an [`ApiError`]: 503 while shutting down, 401 for a missing or
//! unknown key, 415 for an unsupported `Content-Encoding`, 413 for a body over
//! `ingest.max_body_bytes` (read no further than the limit, then drained briefly so the client
//! reads the 413 rather than a reset), 408 for a body that stalls for
//! `ingest.body_idle_timeout_ms` or arrives slower than `ingest.body_min_bytes_per_sec` once
//! `ingest.body_grace_ms` has passed, 503 when the bodies held at once would pass
//! `ingest.max_body_bytes_in_flight`, 400 for a body that breaks off.
//!
//! Nothing here waits on the network while holding what others need: the body is read before
//! the request asks for one of the `ingest.max_concurrent_requests` work permits
//! ([`Admission::work_permit`]), so a client that uploads slowly holds only its own connection
//! and its own bytes. When the permits are all taken, a key that already holds its fair share
//! (the permits divided by the keys holding some) is answered 429 at once instead of queueing
//! ahead of the others.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::decode::{self, Encoding};
use super::keys::{KeyInfo, SignatureHeaders};
use super::trace::StageTimer;
use crate::config::IngestConfig;
use crate::http::error::ApiError;
use crate::state::AppState;
use baddybugs_common::protocol::StageName;

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
    /// The body's share of `ingest.max_body_bytes_in_flight`, held until the request ends.
    pub body_budget: Option<OwnedSemaphorePermit>,
}

/// Admission control: body bytes in flight, work permits, fair share per key.
#[derive(Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    total_permits: usize,
    usage: UsageByKey,
    body_kib: Arc<Semaphore>,
    body_kib_total: usize,
}

/// Work permits a key holds and waits for.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    held: usize,
    waiting: usize,
}

type UsageByKey = Arc<Mutex<HashMap<String, Usage>>>;

fn release(usage: &UsageByKey, key: &str, change: impl FnOnce(&mut Usage)) {
    let mut usage = usage.lock();
    if let Some(u) = usage.get_mut(key) {
        change(u);
        if u.held == 0 && u.waiting == 0 {
            usage.remove(key);
        }
    }
}

/// One work permit; gives its key's share back when dropped.
#[derive(Debug)]
pub struct WorkPermit {
    _permit: OwnedSemaphorePermit,
    key: String,
    usage: UsageByKey,
}

impl Drop for WorkPermit {
    fn drop(&mut self) {
        release(&self.usage, &self.key, |u| u.held -= 1);
    }
}

/// A key's place in line; left when the wait ends, or when the request is dropped meanwhile.
struct Waiting<'a> {
    admission: &'a Admission,
    key: &'a str,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        release(&self.admission.usage, self.key, |u| u.waiting -= 1);
    }
}

impl Admission {
    /// Admission for these limits.
    pub fn new(limits: &IngestConfig) -> Admission {
        let kib = (limits.max_body_bytes_in_flight / 1024).clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            permits: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            total_permits: limits.max_concurrent_requests,
            usage: Arc::default(),
            body_kib: Arc::new(Semaphore::new(kib)),
            body_kib_total: kib,
        }
    }

    /// A work permit for a request of `key`: at once when one is free; when none is, 429 if the
    /// key already holds its fair share (the permits divided by the keys holding or waiting
    /// for one), else a wait in line (tokio's semaphore is first come, first served).
    pub async fn work_permit(&self, key: &str) -> Result<WorkPermit, ApiError> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(shutting_down()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                {
                    let mut usage = self.usage.lock();
                    let mine = usage.get(key).map_or(0, |u| u.held);
                    let keys = usage.len() + usize::from(!usage.contains_key(key));
                    let share = self.total_permits.div_ceil(keys.max(1));
                    if keys > 1 && mine >= share {
                        return Err(ApiError::FairShare {
                            held: mine,
                            retry_after: Duration::from_secs(1),
                        });
                    }
                    usage.entry(key.to_owned()).or_default().waiting += 1;
                }
                let _waiting = Waiting {
                    admission: self,
                    key,
                };
                Arc::clone(&self.permits)
                    .acquire_owned()
                    .await
                    .map_err(|_| shutting_down())?
            }
        };
        self.usage.lock().entry(key.to_owned()).or_default().held += 1;
        Ok(WorkPermit {
            _permit: permit,
            key: key.to_owned(),
            usage: Arc::clone(&self.usage),
        })
    }

    /// Takes `bytes` more of the body budget, or refuses at once (503).
    fn reserve_body(
        &self,
        held: &mut Option<OwnedSemaphorePermit>,
        bytes: usize,
    ) -> Result<(), ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if kib == 0 {
            return Ok(());
        }
        let more = Arc::clone(&self.body_kib)
            .try_acquire_many_owned(kib)
            .map_err(|_| ApiError::Unavailable {
                message: "the server holds as many request bodies as it may (ingest.max_body_bytes_in_flight); retry later".into(),
                retry_after: Duration::from_secs(1),
            })?;
        match held {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
        Ok(())
    }

    /// Bytes of request bodies held right now.
    pub fn body_bytes_in_flight(&self) -> usize {
        self.body_kib_total
            .saturating_sub(self.body_kib.available_permits())
            * 1024
    }
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
    let mut body_budget = None;
    let body = read_body(
        body,
        headers,
        &state.config.ingest,
        &state.admission,
        &mut body_budget,
        started,
    )
    .await?;
    timer.mark(StageName::Received);
    Ok(Admitted {
        key,
        facts,
        body,
        timer,
        body_budget,
    })
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limits: &IngestConfig,
    admission: &Admission,
    budget: &mut Option<OwnedSemaphorePermit>,
    started: Instant,
) -> Result<bytes::Bytes, ApiError> {
    let limit = limits.max_body_bytes;
    let idle = Duration::from_millis(limits.body_idle_timeout_ms);
    let grace = Duration::from_millis(limits.body_grace_ms);
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
    let capacity = declared.unwrap_or(16 << 10).min(limit);
    admission.reserve_body(budget, capacity)?;
    let mut reserved = capacity;
    let mut stream = body.into_data_stream();
    let mut collected = bytes::BytesMut::with_capacity(capacity);
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(ApiError::Timeout(format!(
                    "no body bytes for {} ms after {} bytes (ingest.body_idle_timeout_ms)",
                    idle.as_millis(),
                    collected.len()
                )))
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|err| ApiError::BadRequest {
            code: "body_read_failed",
            message: format!("could not read the request body: {err}"),
        })?;
        if collected.len() + chunk.len() > limit {
            drain(Body::from_stream(stream), limit).await;
            return Err(too_large());
        }
        if collected.len() + chunk.len() > reserved {
            let more = (collected.len() + chunk.len() - reserved).max(64 << 10);
            admission.reserve_body(budget, more)?;
            reserved += more;
        }
        collected.extend_from_slice(&chunk);
        let elapsed = started.elapsed();
        if elapsed > grace
            && (collected.len() as f64)
                < limits.body_min_bytes_per_sec as f64 * elapsed.as_secs_f64()
        {
            return Err(ApiError::Timeout(format!(
                "the body arrives at {:.0} bytes/s, under the minimum of {} (ingest.body_min_bytes_per_sec)",
                collected.len() as f64 / elapsed.as_secs_f64(),
                limits.body_min_bytes_per_sec
            )));
        }
    }
    Ok(collected.freeze())
}

/// Reads and discards what is left of an over-limit body (at most 4 × the limit, for at most
/// 5 s) so that the client, still uploading, reliably reads the 413 instead of a reset.
pub(crate) async fn drain(body: Body, limit: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(permits: usize, bytes_in_flight: usize) -> Admission {
        Admission::new(&IngestConfig {
            max_concurrent_requests: permits,
            max_body_bytes_in_flight: bytes_in_flight,
            ..IngestConfig::default()
        })
    }

    /// Issue 14: under saturation a key beyond its fair share is answered 429 at once, while
    /// another key queues for the next free permit.
    #[tokio::test]
    async fn a_key_beyond_its_fair_share_is_refused_only_when_saturated() {
        let a = admission(2, 1 << 20);
        let first = a.work_permit("flooder").await.unwrap();
        let second = a.work_permit("flooder").await.unwrap();
        // Saturated, and the flooder is the only key: it waits rather than being refused.
        let third = a.work_permit("flooder");
        tokio::pin!(third);
        assert!(futures_util::poll!(&mut third).is_pending());
        // Another key queues for a permit too (it holds none: under its share)...
        let other = a.work_permit("quiet");
        tokio::pin!(other);
        assert!(futures_util::poll!(&mut other).is_pending());
        // ...and with two keys in play, the flooder's share is 1 of 2: refused at once.
        let refused = a.work_permit("flooder").await;
        assert!(
            matches!(refused, Err(ApiError::FairShare { held: 2, .. })),
            "{refused:?}"
        );
        // First come, first served: the flooder's queued request, then the quiet key's.
        drop(first);
        assert!(third.await.is_ok());
        drop(second);
        assert!(other.await.is_ok());
    }

    #[test]
    fn body_bytes_in_flight_are_bounded() {
        let a = admission(4, 64 << 10);
        let mut one = None;
        a.reserve_body(&mut one, 40 << 10).unwrap();
        assert_eq!(a.body_bytes_in_flight(), 40 << 10);
        let mut two = None;
        let refused = a.reserve_body(&mut two, 40 << 10);
        // 503 with `Retry-After: 1`: the bodies in flight free up within a request's time.
        assert!(
            matches!(refused, Err(ApiError::Unavailable { retry_after, .. }) if retry_after == Duration::from_secs(1))
        );
        drop(one);
        a.reserve_body(&mut two, 40 << 10).unwrap();
        assert_eq!(a.body_bytes_in_flight(), 40 << 10);
    }
}

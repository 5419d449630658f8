//! Submit: the one way a batch enters the spool.
//!
//! In: a [`Submission`]: the tenant, the request's facts, the events to store (where they are
//! in a body, and their ids) and the quarantined entries with their kept bytes. Out: a
//! [`Submitted`] batch (its metadata, which events were agent retries) once the record is
//! durable, or a 503 [`ApiError`] when it is not, in which case nothing of it is ever stored.
//!
//! In order: reserve the ids in the dedup window (a concurrent copy of the batch waits for this
//! one's outcome: [`super::dedup`]; ids only its long tier may have seen are looked up in the
//! store, at most 2 s, skipped while the store is down) → build the batch metadata (batch id, receipt time, tenant,
//! client, stages) → encode one spool record (the events' exact bytes, the quarantined bytes,
//! the metadata) → append it (group-committed fdatasync) → confirm the ids. A failed append
//! releases the ids, so the agent's retry is stored. The ingest path, the quarantine of an
//! undecodable body and the replay of quarantined events all submit through here, so a spool
//! refusal has one answer everywhere.

use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::http::error::ApiError;
use crate::metrics::DedupCheck;
use crate::record::{self, BatchMeta, Quarantined};
use crate::spool::SpoolError;
use crate::state::AppState;
use baddybugs_common::protocol::StageName;

use super::trace::StageTimer;

/// One event to store.
#[derive(Debug, Clone)]
pub struct EventToStore<'a> {
    /// Index in the request body.
    pub index: u32,
    /// Its bytes in [`Submission::body`].
    pub range: Range<usize>,
    /// Its `id`, if any (agent retries are recognised by it).
    pub id: Option<&'a str>,
}

/// A batch to make durable.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The tenant's organization.
    pub organization: &'a str,
    /// The tenant's application.
    pub application: &'a str,
    /// Receipt time, epoch ms.
    pub received_ms: i64,
    /// Client address.
    pub remote_addr: Option<String>,
    /// `X-Agent-Version` (`replay` for a replay).
    pub agent_version: Option<String>,
    /// Body size as sent.
    pub bytes_compressed: u64,
    /// Body size inflated.
    pub bytes_inflated: u64,
    /// Events in the body (accepted, duplicates and rejected).
    pub total_events: u32,
    /// The bytes the ranges point into.
    pub body: &'a [u8],
    /// The accepted events, in body order.
    pub events: Vec<EventToStore<'a>>,
    /// Quarantined entries with their kept bytes in `body`.
    pub quarantined: Vec<(Quarantined, Range<usize>)>,
}

/// A durable batch.
#[derive(Debug)]
pub struct Submitted {
    /// Its metadata, with the stages up to `spooled`.
    pub meta: BatchMeta,
    /// For each event of the submission, whether it was an agent retry (not stored again).
    pub duplicates: Vec<bool>,
}

impl Submitted {
    /// How many events were agent retries.
    pub fn duplicate_count(&self) -> usize {
        self.duplicates.iter().filter(|d| **d).count()
    }
}

/// Makes a batch durable (see the module doc).
pub async fn submit(
    state: &AppState,
    submission: Submission<'_>,
    timer: &mut StageTimer,
) -> Result<Submitted, ApiError> {
    let Submission {
        organization,
        application,
        received_ms,
        remote_addr,
        agent_version,
        bytes_compressed,
        bytes_inflated,
        total_events,
        body,
        events,
        quarantined,
    } = submission;
    let tenant = format!("{organization}\u{0}{application}");
    let ids: Vec<Option<&str>> = events.iter().map(|e| e.id).collect();
    let reservation = state
        .dedup
        .reserve(&tenant, &ids, received_ms)
        .await
        .map_err(|pending| ApiError::Unavailable {
            message: format!("{pending}; retry later"),
            retry_after: Duration::from_secs(2),
        })?;
    let mut reservation = reservation;
    let maybe = reservation.maybe_seen();
    if !maybe.is_empty() {
        let ids: Vec<String> = maybe
            .iter()
            .filter_map(|i| events[*i].id.map(str::to_owned))
            .collect();
        let stored = stored_ids(state, organization, application, ids.clone()).await;
        let found: Vec<bool> = ids.iter().map(|id| stored.contains(id)).collect();
        reservation.settle(&found, received_ms);
    }
    let duplicates = reservation.duplicates().to_vec();
    timer.mark(StageName::Enriched);

    let (entries, kept): (Vec<Quarantined>, Vec<Range<usize>>) = quarantined.into_iter().unzip();
    let mut meta = BatchMeta {
        batch_id: uuid::Uuid::now_v7().to_string(),
        received_ms,
        organization: organization.to_owned(),
        application: application.to_owned(),
        remote_addr,
        agent_version,
        bytes_compressed,
        bytes_inflated,
        total_events,
        duplicates: duplicates.iter().filter(|d| **d).count() as u32,
        quarantined: entries,
        stages: timer.stages().to_vec(),
    };
    let stored: Vec<(u32, &[u8])> = events
        .iter()
        .zip(&duplicates)
        .filter(|(_, dup)| !**dup)
        .map(|(e, _)| (e.index, &body[e.range.clone()]))
        .collect();
    let kept_bytes: Vec<&[u8]> = kept.iter().map(|r| &body[r.clone()]).collect();
    let record = record::encode(&meta, &stored, &kept_bytes);
    if let Err(err) = state.spool.append(vec![record]).await {
        if matches!(err, SpoolError::QuotaExceeded { .. }) {
            state
                .last_quota_refusal_ms
                .store(received_ms, Ordering::Relaxed);
        }
        // `reservation` drops here: the ids are released for the agent's retry.
        return Err(spool_error(err));
    }
    reservation.confirm(received_ms);
    timer.mark(StageName::Spooled);
    meta.stages = timer.stages().to_vec();
    Ok(Submitted { meta, duplicates })
}

/// How long a dedup lookup may take before the events are taken as new.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Which of `ids` (the long tier's "maybe seen") the store holds for the tenant. A failed or
/// slow lookup answers none: the events are stored (never lost), and counted as failed checks.
async fn stored_ids(
    state: &AppState,
    organization: &str,
    application: &str,
    ids: Vec<String>,
) -> std::collections::HashSet<String> {
    let asked = ids.len();
    // A store the batcher cannot write to will not answer either: do not make every batch
    // with a "maybe" wait the full timeout during an outage.
    if !state.metrics.gauges.sink.lock().healthy {
        state.metrics.dedup_store_checked(DedupCheck::Failed, asked);
        return Default::default();
    }
    let lookup = state
        .store
        .stored_event_ids(organization.to_owned(), application.to_owned(), ids);
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, lookup).await {
        Ok(Ok(found)) => {
            state
                .metrics
                .dedup_store_checked(DedupCheck::Stored, found.len());
            state
                .metrics
                .dedup_store_checked(DedupCheck::NotStored, asked - found.len().min(asked));
            found.into_iter().collect()
        }
        failed => {
            state.metrics.dedup_store_checked(DedupCheck::Failed, asked);
            let why = match failed {
                Ok(Err(err)) => err.to_string(),
                _ => format!("no answer within {}s", STORE_CHECK_TIMEOUT.as_secs()),
            };
            // At most one warning a minute; the metric counts every one.
            let now_ms = chrono::Utc::now().timestamp_millis();
            let last = LAST_CHECK_WARNING_MS.load(Ordering::Relaxed);
            if now_ms - last >= 60_000
                && LAST_CHECK_WARNING_MS
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(
                    error = %why,
                    ids = asked,
                    "dedup: the store could not say whether ids were already stored; the events are taken as new (metric dedup_store_checks_total{{outcome=\"failed\"}})"
                );
            }
            Default::default()
        }
    }
}

/// When the last failed dedup lookup was logged (epoch ms).
static LAST_CHECK_WARNING_MS: AtomicI64 = AtomicI64::new(i64::MIN / 2);

/// The one answer to a refused append: 503 with a `Retry-After`; nothing was accepted.
fn spool_error(err: SpoolError) -> ApiError {
    match err {
        SpoolError::QuotaExceeded { used, quota } => ApiError::Unavailable {
            message: format!(
                "the spool is full ({used} of {quota} bytes) because the store is not keeping up or is down; nothing was accepted, retry later"
            ),
            retry_after: Duration::from_secs(5),
        },
        SpoolError::TooLarge { bytes, max } => ApiError::TooLarge(format!(
            "the batch makes a spool record of {bytes} bytes; the most is {max} (lower ingest.max_inflated_bytes or send smaller batches)"
        )),
        SpoolError::Stopped { reason } => ApiError::Unavailable {
            message: format!(
                "the spool stopped taking writes after a failure it could not undo ({reason}); nothing was accepted; the server needs a restart (docs/OPERATIONS.md, When a spool write fails)"
            ),
            retry_after: Duration::from_secs(10),
        },
        other => ApiError::Unavailable {
            message: format!(
                "the spool could not make the batch durable ({other}); nothing was accepted, retry later"
            ),
            retry_after: Duration::from_secs(2),
        },
    }
}

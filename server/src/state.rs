//! What every handler shares.

use std::sync::atomic::{AtomicBool, AtomicI64};
use std::sync::Arc;

use crate::background::CpuPool;
use crate::config::Config;
use crate::drift::DriftRegistry;
use crate::feed::{FeedHub, FeedTap};
use crate::ingest::admit::Admission;
use crate::ingest::dedup::DedupWindow;
use crate::ingest::keys::KeyRing;
use crate::metrics::Metrics;
use crate::sink::Store;
use crate::spool::Spool;

/// The server's shared state.
pub struct AppState {
    /// Effective configuration.
    pub config: Arc<Config>,
    /// API keys.
    pub keys: KeyRing,
    /// Token of the feed and the query API.
    pub feed_token: String,
    /// The durable spool.
    pub spool: Spool,
    /// The store (queries; the batcher writes).
    pub store: Arc<dyn Store>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Recently accepted ids.
    pub dedup: DedupWindow,
    /// Live feed.
    pub feed: Arc<FeedHub>,
    /// Schema drift seen by this process, not yet flushed to the store.
    pub drift: Arc<DriftRegistry>,
    /// The ingest path's hand-over to the feed (see `feed::tap`).
    pub feed_tap: FeedTap,
    /// The `ingest-cpu` pool: inflate, signature, split, validation.
    pub ingest_pool: CpuPool,
    /// Set when shutdown starts: ingest answers 503.
    pub shutting_down: AtomicBool,
    /// Admission control of ingest requests (work permits, fair share, body bytes).
    pub admission: Admission,
    /// Signatures of signed requests stored recently (replay protection).
    pub signatures: DedupWindow,
    /// When an append was last refused for the spool quota (epoch ms, 0 = never).
    pub last_quota_refusal_ms: AtomicI64,
}

//! The live feed protocol (`GET /v1/feed`, JSON text frames over a WebSocket) and the metrics
//! snapshot that `/v1/stats` also returns. Server and console both use these definitions.
//!
//! Every server message is a [`ServerEnvelope`]: a per-connection sequence number, +1 per message,
//! so a client can tell a reconnect's gap from a continuous stream and one [`ServerMessage`]. Clients send [`ClientMessage`]s. docs/PROTOCOL.md documents
//! each with an example. The protocol version changes when a message changes incompatibly.

use serde::{Deserialize, Serialize};

use crate::query::{params_from_json, Query, QueryError};
use crate::reason::Problem;

/// Version of the feed protocol.
pub const PROTOCOL_VERSION: u32 = 1;

/// Topics a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// A metrics snapshot every second.
    Metrics,
    /// The live tail of accepted events.
    Events,
    /// The live tail of rejections.
    Malformed,
    /// Lifecycle waterfalls.
    Lifecycle,
    /// Pipeline traces of the server's own batches.
    Pipeline,
    /// Schema drift keys, each announced the first time this server process sees it.
    Drift,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 6] = [
        Topic::Metrics,
        Topic::Events,
        Topic::Malformed,
        Topic::Lifecycle,
        Topic::Pipeline,
        Topic::Drift,
    ];
}

/// Filters a client can put on a subscription (all optional, all must match).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedFilter {
    /// Event type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Event name, exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Rejection reason code (malformed tail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Error flag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}

/// A message from a client. On the wire, an object with an `op` (docs/PROTOCOL.md); read one
/// with [`ClientMessage::parse`] to learn the `id` of a query that cannot be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireClientMessage", into = "WireClientMessage")]
pub enum ClientMessage {
    /// Start receiving topics (the filter applies to these topics).
    Subscribe {
        /// Topics.
        topics: Vec<Topic>,
        /// Filter.
        filter: FeedFilter,
    },
    /// Stop receiving topics.
    Unsubscribe {
        /// Topics.
        topics: Vec<Topic>,
    },
    /// Ask the store. On the wire: `kind` (`events`, `malformed`, `exception_groups`, `trace`
    /// or `traces`) and `params` (an object, the names of the REST query API).
    Query {
        /// Echoed in the answer.
        id: String,
        /// What to query.
        query: Query,
    },
    /// The stored events with an id (one tenant's, or every tenant's that stored it: an id is
    /// unique per organization and application only).
    Get {
        /// Echoed in the answer.
        id: String,
        /// The event id.
        event_id: String,
        /// Only the events of this organization (`None`: any).
        organization: Option<String>,
        /// Only the events of this application (`None`: any).
        application: Option<String>,
    },
    /// Liveness check.
    Ping {
        /// Echoed.
        nonce: Option<String>,
    },
}

/// A client message that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessageError {
    /// The `id` of a `query` whose kind or parameters are wrong (its answer carries it);
    /// `None` when the message itself cannot be read.
    pub id: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ClientMessageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientMessageError {}

impl ClientMessage {
    /// Reads a client message from its JSON text.
    pub fn parse(text: &str) -> Result<ClientMessage, ClientMessageError> {
        let wire: WireClientMessage =
            serde_json::from_str(text).map_err(|err| ClientMessageError {
                id: None,
                message: err.to_string(),
            })?;
        let id = match &wire {
            WireClientMessage::Query { id, .. } => Some(id.clone()),
            _ => None,
        };
        ClientMessage::try_from(wire).map_err(|err| ClientMessageError {
            id,
            message: err.to_string(),
        })
    }
}

/// The JSON layout of [`ClientMessage`]: a query's `kind` and `params` untyped, read into a
/// [`Query`] by the one parameter parser of [`crate::query`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum WireClientMessage {
    Subscribe {
        topics: Vec<Topic>,
        #[serde(default)]
        filter: FeedFilter,
    },
    Unsubscribe {
        topics: Vec<Topic>,
    },
    Query {
        id: String,
        kind: String,
        #[serde(default)]
        params: serde_json::Value,
    },
    Get {
        id: String,
        event_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        organization: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        application: Option<String>,
    },
    Ping {
        #[serde(default)]
        nonce: Option<String>,
    },
}

impl TryFrom<WireClientMessage> for ClientMessage {
    type Error = QueryError;

    fn try_from(wire: WireClientMessage) -> Result<Self, Self::Error> {
        Ok(match wire {
            WireClientMessage::Subscribe { topics, filter } => {
                ClientMessage::Subscribe { topics, filter }
            }
            WireClientMessage::Unsubscribe { topics } => ClientMessage::Unsubscribe { topics },
            WireClientMessage::Query { id, kind, params } => ClientMessage::Query {
                id,
                query: Query::from_params(&kind, &params_from_json(&params))?,
            },
            WireClientMessage::Get {
                id,
                event_id,
                organization,
                application,
            } => ClientMessage::Get {
                id,
                event_id,
                organization,
                application,
            },
            WireClientMessage::Ping { nonce } => ClientMessage::Ping { nonce },
        })
    }
}

impl From<ClientMessage> for WireClientMessage {
    fn from(message: ClientMessage) -> Self {
        match message {
            ClientMessage::Subscribe { topics, filter } => {
                WireClientMessage::Subscribe { topics, filter }
            }
            ClientMessage::Unsubscribe { topics } => WireClientMessage::Unsubscribe { topics },
            ClientMessage::Query { id, query } => WireClientMessage::Query {
                id,
                kind: query.kind().to_owned(),
                params: query.to_params(),
            },
            ClientMessage::Get {
                id,
                event_id,
                organization,
                application,
            } => WireClientMessage::Get {
                id,
                event_id,
                organization,
                application,
            },
            ClientMessage::Ping { nonce } => WireClientMessage::Ping { nonce },
        }
    }
}

/// The first fields of a server frame, read without parsing the rest (see [`peek_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead<'a> {
    /// The connection's sequence number of this message.
    pub seq: u64,
    /// The message's `kind` (`event`, `metrics`, `dropped` …).
    pub kind: &'a str,
}

/// Frames one server message for the wire: `{"seq":N,` followed by the fields of `message_json`,
/// the message serialised once without its `seq` (so one serialisation is shared by every
/// client, each with its own numbering). The result is byte for byte what serialising a
/// [`ServerEnvelope`] gives, so `seq` then `kind` always open a frame and [`peek_frame`] can
/// read them.
pub fn encode_frame(seq: u64, message_json: &str) -> String {
    let rest = message_json.strip_prefix('{').unwrap_or(message_json);
    let mut out = String::with_capacity(rest.len() + 28);
    out.push_str("{\"seq\":");
    out.push_str(&seq.to_string());
    if !rest.starts_with('}') {
        out.push(',');
    }
    out.push_str(rest);
    out
}

/// Reads `seq` and `kind` from the first bytes of a frame laid out as [`encode_frame`] writes
/// it, without parsing the rest: a client that only counts or routes frames pays for a few
/// bytes, not for the whole message. `None` for any other layout (the frame is still valid
/// JSON, read it as a [`ServerEnvelope`]).
pub fn peek_frame(text: &str) -> Option<FrameHead<'_>> {
    let rest = text.strip_prefix("{\"seq\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let seq = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(",\"kind\":\"")?;
    // Kinds are short snake_case names: a quote within 32 bytes or it is not a kind.
    let end = rest.bytes().take(32).position(|b| b == b'"')?;
    Some(FrameHead {
        seq,
        kind: &rest[..end],
    })
}

/// Every server message, with its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerEnvelope {
    /// Per-connection sequence number, starting at 1, +1 per message sent.
    pub seq: u64,
    /// The message.
    #[serde(flatten)]
    pub message: ServerMessage,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message of every connection.
    Hello(Hello),
    /// A metrics snapshot.
    Metrics(Box<MetricsSnapshot>),
    /// An accepted event.
    Event(Box<TailEvent>),
    /// A rejected event.
    Malformed(Box<TailMalformed>),
    /// A lifecycle waterfall.
    Lifecycle(Box<Waterfall>),
    /// A pipeline trace.
    Pipeline(Box<PipelineTrace>),
    /// A schema drift key seen for the first time by this process.
    Drift(Box<DriftNotice>),
    /// Messages this client lost because it read too slowly.
    Dropped {
        /// How many since the last notice.
        count: u64,
        /// Total for this connection.
        total: u64,
    },
    /// The answer to a `query` or `get`.
    Result {
        /// The request's id.
        id: String,
        /// The data.
        data: serde_json::Value,
    },
    /// A problem with a client message (the connection stays open).
    Error {
        /// The request's id, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// What was wrong.
        message: String,
    },
    /// The answer to a ping.
    Pong {
        /// Echoed.
        nonce: Option<String>,
    },
    /// Subscriptions changed.
    Subscribed {
        /// Topics now subscribed.
        topics: Vec<Topic>,
    },
}

/// The first message of every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Feed protocol version.
    pub protocol: u32,
    /// Server version.
    pub server_version: String,
    /// Changes at each server start (counters and tails reset).
    pub instance_id: String,
    /// When this instance started, RFC 3339.
    pub started_at: String,
    /// The catalog's type names.
    pub types: Vec<String>,
    /// How many messages each tail keeps for new subscribers.
    pub tail_retention: usize,
    /// The store (`sqlite` or `clickhouse`).
    pub store: String,
}

/// Counts of one event type, or of all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeStats {
    /// Type name (`unknown_type` for types the catalog does not know).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Events received.
    pub received: u64,
    /// Accepted.
    pub accepted: u64,
    /// Rejected.
    pub rejected: u64,
    /// Duplicates (agent retries).
    pub duplicates: u64,
    /// Received per second over the last second.
    pub rate_1s: f64,
    /// … over the last 10 s.
    pub rate_10s: f64,
    /// … over the last 60 s.
    pub rate_60s: f64,
    /// Received per second, the last 60 seconds, oldest first (`None` where no snapshot ran).
    pub history: Vec<Option<u64>>,
    /// Rejected per second over the last 60 s; absent from older servers.
    #[serde(default)]
    pub rejected_rate_60s: f64,
    /// p99 of the events' own `duration_ms` column, when the type has one.
    pub duration_p99_ms: Option<f64>,
}

/// A recent sample of a rejection reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonSample {
    /// The event type, when readable.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// JSON Pointer.
    pub path: String,
    /// Message.
    pub message: String,
    /// When, RFC 3339.
    pub at: String,
}

/// Counts of one rejection reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonStats {
    /// Reason code.
    pub code: String,
    /// Total.
    pub count: u64,
    /// Per second over the last 60 s.
    pub rate_60s: f64,
    /// Most recent sample.
    pub last: Option<ReasonSample>,
}

/// One bucket of a histogram: count of values ≤ `le` (and > the previous bucket's `le`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Upper bound (ms for latencies).
    pub le: f64,
    /// Values in the bucket.
    pub count: u64,
}

/// A latency (or size) histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histo {
    /// `request`, `fsync`, `insert`, `end_to_end`, `event_age`, `batch_events`.
    pub name: String,
    /// `ms` or `events`.
    pub unit: String,
    /// Values recorded.
    pub count: u64,
    /// Minimum.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Log-scaled buckets (powers of two).
    pub buckets: Vec<Bucket>,
}

/// Memory and spool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BufferStats {
    /// Bytes held in memory queues (batcher, feed).
    pub memory_bytes: u64,
    /// Events held in memory queues.
    pub memory_events: u64,
    /// Spool bytes on disk.
    pub spool_bytes: u64,
    /// Spool quota.
    pub spool_quota_bytes: u64,
    /// Spool segments.
    pub spool_segments: u64,
    /// Spool records not yet stored.
    pub pending_records: u64,
    /// Age of the oldest record not yet stored, seconds.
    pub oldest_pending_secs: Option<f64>,
    /// Resident memory of the process, bytes (Linux).
    pub rss_bytes: Option<u64>,
    /// Where the memory goes, consumer by consumer, each with the configured bound it derives
    /// from; empty from older servers.
    #[serde(default)]
    pub memory: MemoryStats,
}

/// The process's memory by consumer, and the allocator's own view (issue 18).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Each memory consumer the configuration bounds, in a fixed order.
    pub consumers: Vec<MemoryConsumer>,
    /// The Rust heap as jemalloc sees it; absent when jemalloc is not the global allocator.
    pub allocator: Option<AllocatorStats>,
}

/// One memory consumer: what it holds now and the bound the configuration sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryConsumer {
    /// Stable name: `bodies_in_flight`, `batcher`, `dedup_exact`, `dedup_filter`,
    /// `signature_cache`, `feed`, `sqlite_page_cache`.
    pub name: String,
    /// Bytes held now; absent where it cannot be measured cheaply (the SQLite page cache).
    pub bytes: Option<u64>,
    /// The most it may hold, bytes, as derived from `config`; absent where the bound is a count
    /// of messages of no fixed size (the feed).
    pub limit_bytes: Option<u64>,
    /// The configuration keys the bound derives from, comma-separated.
    pub config: String,
}

/// jemalloc's statistics (`stats.*`), bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorStats {
    /// Bytes the program holds (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in pages with live allocations (`stats.active`, ≥ allocated).
    pub active: u64,
    /// Bytes of the allocator's pages resident in memory, its metadata included
    /// (`stats.resident`): freed pages not yet given back count here.
    pub resident: u64,
    /// Bytes of virtual memory kept mapped but given back to the system (`stats.retained`).
    pub retained: u64,
    /// Arenas the allocator spreads threads over (`arenas.narenas`, with the one for huge
    /// allocations): four per CPU by default (one on a single CPU), one per CPU with `percpu_arena`; 0 from
    /// servers of before it.
    #[serde(default)]
    pub arenas: u32,
    /// Arenas at least one thread allocates from (`stats.arenas.<i>.nthreads`): the server binds
    /// its threads to one arena per CPU; 0 from servers of before it.
    #[serde(default)]
    pub arenas_in_use: u32,
}

/// Extra copies of events in the store: an event stored twice, typically an agent retry that
/// reached a second node of a fleet after the first had stored the batch. Reads show each event
/// once; the copies take room until the TTL removes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreCopies {
    /// Rows beyond the first of each event, among the events received in the window.
    pub copies: u64,
    /// How far back the count looked, by receipt time, seconds.
    pub window_secs: u64,
    /// When it was counted, RFC 3339.
    pub checked_at: String,
}

/// The store's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkStats {
    /// `sqlite` or `clickhouse`.
    pub kind: String,
    /// Whether the last write succeeded.
    pub healthy: bool,
    /// The last error.
    pub last_error: Option<String>,
    /// Failed writes since start.
    pub errors: u64,
    /// Consecutive retries of the current batch.
    pub retrying: u64,
    /// Events written since start.
    pub written_events: u64,
    /// Store writes (batches) since start: `written_events / written_batches` is the mean
    /// batch, which grows while the store catches up (`batch.catchup_max_events`). Absent from
    /// older servers.
    #[serde(default)]
    pub written_batches: u64,
    /// Store commits since start: a store with group commit (SQLite) commits several batches
    /// at once while it is behind (`batch.group_max_events`), so `written_batches / commits` is
    /// the mean group. Absent from older servers.
    #[serde(default)]
    pub commits: u64,
    /// Events acknowledged but not yet written.
    pub lag_events: u64,
    /// Age of the oldest of those, seconds.
    pub lag_secs: Option<f64>,
    /// Last successful write, RFC 3339.
    pub last_write_at: Option<String>,
    /// The last count of extra copies of events (ClickHouse only: SQLite keeps one row per
    /// event by its key); absent until counted, and from older servers.
    #[serde(default)]
    pub store_copies: Option<StoreCopies>,
}

/// One feed client.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedClientStats {
    /// Connection id.
    pub id: u64,
    /// Remote address.
    pub remote: String,
    /// Messages dropped because it read too slowly.
    pub dropped: u64,
    /// Topics.
    pub topics: Vec<Topic>,
}

/// Requests the ingest endpoint refused with one status and error code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// The `error` code of the answer's body (`unknown_key`, `too_large`, `rate_limited` …).
    pub code: String,
    /// Since start.
    pub count: u64,
}

/// Refused ingest requests of one sender, status and error code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SenderRefusal {
    /// Who sent them, never the key itself: `organization/application` of a known key,
    /// `key sha256:` and the first 8 hex digits of the SHA-256 of an unknown one, `no key`, or
    /// `other` once [`MAX_SENDERS`] senders are counted.
    pub sender: String,
    /// HTTP status.
    pub status: u16,
    /// The `error` code of the answer's body.
    pub code: String,
    /// Since start.
    pub count: u64,
}

/// Distinct senders (and applications) the server counts apart; the rest are `other`.
pub const MAX_SENDERS: usize = 64;

/// Counts of one application (a key's organization and application) since start, with its
/// rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppStats {
    /// Organization (empty for the `other` bucket).
    pub organization: String,
    /// Application (`other` for the applications past [`MAX_SENDERS`]).
    pub application: String,
    /// Events received.
    pub received: u64,
    /// Accepted.
    pub accepted: u64,
    /// Rejected.
    pub rejected: u64,
    /// Duplicates.
    pub duplicates: u64,
    /// Received per second over the last 10 s.
    pub rate_10s: f64,
    /// … over the last 60 s.
    pub rate_60s: f64,
    /// Rejected per second over the last 60 s.
    pub rejected_rate_60s: f64,
}

/// Accepted, rejected and duplicate events per second, the last 60 seconds, oldest first
/// (`None` where no snapshot ran).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Throughput {
    /// Accepted per second.
    pub accepted: Vec<Option<u64>>,
    /// Rejected per second.
    pub rejected: Vec<Option<u64>>,
    /// Duplicates per second.
    pub duplicates: Vec<Option<u64>>,
}

/// The `metrics` topic (and `/v1/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// When, RFC 3339.
    pub at: String,
    /// Seconds since start.
    pub uptime_secs: f64,
    /// The instance.
    pub instance_id: String,
    /// All types together.
    pub totals: TypeStats,
    /// Per type, by name.
    pub types: Vec<TypeStats>,
    /// Per rejection reason.
    pub reasons: Vec<ReasonStats>,
    /// Latency histograms (request, fsync, insert, end_to_end, event_age).
    pub latencies: Vec<Histo>,
    /// Events per request.
    pub batch_sizes: Histo,
    /// HTTP responses by status.
    pub responses: Vec<(u16, u64)>,
    /// The ingest endpoint's refusals (non-2xx) by status and error code; absent from older
    /// servers.
    #[serde(default)]
    pub refusals: Vec<Refusal>,
    /// The same refusals by sender (bounded: [`MAX_SENDERS`], then `other`); absent from
    /// older servers.
    #[serde(default)]
    pub refusals_by_sender: Vec<SenderRefusal>,
    /// Per application, the most events first (bounded: [`MAX_SENDERS`], then `other`);
    /// absent from older servers.
    #[serde(default)]
    pub apps: Vec<AppStats>,
    /// Accepted, rejected and duplicates per second, the last 60 s; absent from older servers.
    #[serde(default)]
    pub throughput: Throughput,
    /// Buffers and spool.
    pub buffers: BufferStats,
    /// The store.
    pub sink: SinkStats,
    /// Connected feed clients.
    pub feed_clients: Vec<FeedClientStats>,
    /// Schema drift seen by this process; absent from older servers.
    #[serde(default)]
    pub drift: DriftStats,
}

/// Schema drift counters of this process (the `metrics` topic and `/v1/stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftStats {
    /// Distinct drift keys kept in memory (at most `drift.max_keys_per_type` per type).
    pub keys: u64,
    /// Divergences seen since start, all kinds.
    pub occurrences: u64,
    /// Divergences since start, by kind code (`unknown_field`, `coerced` …).
    pub by_kind: Vec<(String, u64)>,
    /// Divergences not kept because their type had too many keys (or there were too many
    /// types): counted here, never stored.
    pub overflow: u64,
}

/// A schema drift key announced on the `drift` topic the first time this process sees it.
///
/// The JSON field `drift_kind` is the kind (`kind` is the message's tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftNotice {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// JSON Pointer from the event's root, indexes and map keys as `*`.
    pub path: String,
    /// The kind of divergence.
    pub drift_kind: crate::drift::DriftKind,
    /// The value as compact JSON, capped (ends with `…` when cut).
    pub sample: String,
    /// The id of the event that showed it.
    pub example_event_id: Option<String>,
    /// The application of the key that sent it.
    pub application: String,
    /// `X-Agent-Version` of the request.
    pub agent_version: Option<String>,
    /// When, RFC 3339.
    pub seen_at: String,
}

/// One schema drift key as `GET /v1/drift` (and the feed's `drift` query) reports it: the
/// stored rows of every node and this process's unflushed counts, merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftEntry {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// JSON Pointer from the event's root, indexes and map keys as `*` (`""` for
    /// `unknown_type`).
    pub path: String,
    /// The kind of divergence.
    pub kind: crate::drift::DriftKind,
    /// Occurrences.
    pub count: u64,
    /// First seen, RFC 3339.
    pub first_seen: String,
    /// Last seen, RFC 3339.
    pub last_seen: String,
    /// `X-Agent-Version`s seen (at most 8; requests without one are not listed).
    pub agent_versions: Vec<String>,
    /// Applications seen (at most 8).
    pub applications: Vec<String>,
    /// One value as compact JSON, capped (ends with `…` when cut).
    pub sample: String,
    /// The id of an event that showed it (`null` when that event had none).
    pub example_event_id: Option<String>,
}

/// Divergences of one type not kept because the type reached `drift.max_keys_per_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftOverflow {
    /// The event type (`*` for divergences of types beyond `drift.max_types`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Divergences counted and dropped since this process started.
    pub count: u64,
}

/// The body of `GET /v1/drift`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The keys, most recently seen first.
    pub drift: Vec<DriftEntry>,
    /// This process's overflow per type (not stored; resets at restart).
    #[serde(default)]
    pub overflow: Vec<DriftOverflow>,
}

/// An accepted event on the `events` tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailEvent {
    /// Event id.
    pub id: String,
    /// Type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Name.
    pub name: String,
    /// Event time, RFC 3339.
    pub timestamp: String,
    /// Received, RFC 3339.
    pub received_at: String,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Environment.
    pub environment: Option<String>,
    /// Organization (with the application and the id, what identifies the event; empty from
    /// servers of before tenant-scoped ids).
    #[serde(default)]
    pub organization: String,
    /// Application.
    pub application: String,
    /// Duration column.
    pub duration_ms: Option<f64>,
    /// Status column.
    pub status_code: Option<u16>,
    /// Error flag.
    pub is_error: bool,
    /// Severity column.
    pub severity: Option<String>,
    /// User column.
    pub user_id: Option<String>,
    /// Other top-level fields.
    pub envelope: serde_json::Value,
    /// The payload.
    pub data: serde_json::Value,
    /// `Some(n)` when the tail is sampled 1 in n.
    pub sampled_one_in: Option<u32>,
}

/// A rejected event on the `malformed` tail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailMalformed {
    /// Batch.
    pub batch_id: String,
    /// Index in the body (None for a whole body).
    pub index: Option<u32>,
    /// Type, when readable.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Id, when readable.
    pub event_id: Option<String>,
    /// Every reason (code, path, expected, found, message).
    pub reasons: Vec<Problem>,
    /// The key's application.
    pub application: String,
    /// `X-Agent-Version`.
    pub agent_version: Option<String>,
    /// Client address.
    pub remote_addr: Option<String>,
    /// The original bytes, capped.
    pub raw: String,
    /// The full size.
    pub raw_size: u64,
    /// When, RFC 3339.
    pub received_at: String,
}

/// One bar of a waterfall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaterfallSpan {
    /// `phase`, `span` or `trace_span`.
    pub kind: String,
    /// QUERY, CACHE_HIT, BOOTSTRAP …
    pub span_type: String,
    /// Label.
    pub label: String,
    /// Offset from the start, ms.
    pub start_ms: f64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Depth.
    pub depth: u8,
    /// Type-specific detail: SQL, cache key, URL, job class.
    pub detail: Option<String>,
}

/// A request waterfall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waterfall {
    /// The lifecycle event id (or the trace id for assembled trace spans).
    pub id: String,
    /// Trace id.
    pub trace_id: Option<String>,
    /// `lifecycle` or `trace_span`.
    pub source: String,
    /// Method.
    pub method: Option<String>,
    /// URL or path.
    pub url: Option<String>,
    /// Status.
    pub status_code: Option<u16>,
    /// Total, ms.
    pub total_ms: f64,
    /// Queries.
    pub query_count: Option<u64>,
    /// Counts as sent.
    pub counts: serde_json::Value,
    /// Memory figures as sent.
    pub memory: serde_json::Value,
    /// Phases and spans, in start order.
    pub spans: Vec<WaterfallSpan>,
    /// Event time, RFC 3339.
    pub timestamp: String,
    /// `Some(n)` when the lifecycle tail is sampled 1 in n (waterfalls of errors are always
    /// sent); absent from older servers.
    #[serde(default)]
    pub sampled_one_in: Option<u32>,
    /// The sending key's organization (of the request that sent the latest span, for an
    /// assembled trace); empty from older servers.
    #[serde(default)]
    pub organization: String,
    /// The sending key's application (as `organization`).
    #[serde(default)]
    pub application: String,
}

/// The server's own trace of one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineTrace {
    /// Batch.
    pub batch_id: String,
    /// Application.
    pub application: String,
    /// Received, RFC 3339.
    pub received_at: String,
    /// `accepted`, `partial`, `rejected`, `quarantined_body`, `refused`.
    pub outcome: String,
    /// HTTP status answered.
    pub status: u16,
    /// Why a request was refused (`refused`): the answer's error code and message; absent
    /// otherwise and from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Total, ms.
    pub total_ms: f64,
    /// Stages.
    pub stages: Vec<PipelineStage>,
    /// Compressed bytes.
    pub bytes_compressed: u64,
    /// Inflated bytes.
    pub bytes_inflated: u64,
    /// Events.
    pub events: u32,
    /// Accepted.
    pub accepted: u32,
    /// Rejected.
    pub rejected: u32,
    /// Duplicates.
    pub duplicates: u32,
}

/// The stages of the pipeline trace of one ingest request, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageName {
    /// The request arrived.
    Received,
    /// The key (and signature) checked.
    Authenticated,
    /// The body inflated.
    Inflated,
    /// The body split into events.
    Parsed,
    /// Every event checked.
    Validated,
    /// Batch metadata built, agent retries recognised.
    Enriched,
    /// Durable in the spool.
    Spooled,
    /// The 202 sent.
    Acknowledged,
    /// Written to the store.
    Inserted,
}

impl StageName {
    /// Its name on the wire and in the store (`received`, `inflated` …).
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Received => "received",
            StageName::Authenticated => "authenticated",
            StageName::Inflated => "inflated",
            StageName::Parsed => "parsed",
            StageName::Validated => "validated",
            StageName::Enriched => "enriched",
            StageName::Spooled => "spooled",
            StageName::Acknowledged => "acknowledged",
            StageName::Inserted => "inserted",
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time of one stage of a request, in µs: what the spool record carries, the
/// `ingest_traces.stages` column holds (as JSON text) and `/v1/pipeline` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTiming {
    /// The stage.
    pub stage: StageName,
    /// Start, µs since the request was received.
    pub start_us: u64,
    /// Duration, µs.
    pub duration_us: u64,
}

/// One stage of a pipeline trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineStage {
    /// The stage.
    pub stage: StageName,
    /// Start, ms from receipt.
    pub start_ms: f64,
    /// Duration, ms.
    pub duration_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> Vec<ServerMessage> {
        vec![
            ServerMessage::Metrics(Box::default()),
            ServerMessage::Dropped { count: 2, total: 9 },
            ServerMessage::Result {
                id: "q1".into(),
                data: serde_json::json!({"events": [], "next_cursor": null}),
            },
            ServerMessage::Error {
                id: None,
                message: "no \"seq\" here".into(),
            },
            ServerMessage::Pong { nonce: None },
            ServerMessage::Subscribed {
                topics: vec![Topic::Events, Topic::Pipeline],
            },
        ]
    }

    #[test]
    fn a_frame_is_the_envelope_byte_for_byte_and_peeks_back() {
        for (i, message) in messages().into_iter().enumerate() {
            let seq = (i as u64 + 1) * 1_000_003;
            let json = serde_json::to_string(&message).unwrap();
            let frame = encode_frame(seq, &json);
            let envelope = ServerEnvelope {
                seq,
                message: message.clone(),
            };
            assert_eq!(frame, serde_json::to_string(&envelope).unwrap());
            assert_eq!(
                serde_json::from_str::<ServerEnvelope>(&frame).unwrap(),
                envelope
            );
            let head = peek_frame(&frame).expect("the server's layout peeks");
            assert_eq!(head.seq, seq);
            let kind = serde_json::from_str::<serde_json::Value>(&json).unwrap()["kind"].clone();
            assert_eq!(Some(head.kind), kind.as_str());
        }
    }

    #[test]
    fn client_messages_of_protocol_1_still_read() {
        use crate::query::{EventFilter, TraceFilter, TraceOrder};
        let query = |text: &str| match ClientMessage::parse(text) {
            Ok(ClientMessage::Query { id, query }) => (id, query),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            query(
                r#"{"op": "query", "id": "q1", "kind": "events", "params": {"trace_id": "trace-abc", "limit": 1}}"#
            ),
            (
                "q1".to_owned(),
                Query::Events(EventFilter {
                    trace_id: Some("trace-abc".into()),
                    limit: Some(1),
                    ..EventFilter::default()
                })
            )
        );
        assert_eq!(
            query(r#"{"op":"query","id":"q2","kind":"traces","params":{"order":"slowest","failed":true,"limit":"7"}}"#).1,
            Query::Traces(TraceFilter {
                order: TraceOrder::Slowest,
                failed_only: true,
                limit: Some(7),
            })
        );
        assert_eq!(
            query(r#"{"op":"query","id":"q3","kind":"events"}"#).1,
            Query::Events(EventFilter::default())
        );
        assert_eq!(
            query(r#"{"op":"query","id":"q4","kind":"exception_groups","params":null}"#).1,
            Query::ExceptionGroups(EventFilter::default())
        );
        let subscribe = r#"{"op": "subscribe", "topics": ["events", "malformed"], "filter": {"type": "cache"}}"#;
        assert_eq!(
            ClientMessage::parse(subscribe),
            Ok(ClientMessage::Subscribe {
                topics: vec![Topic::Events, Topic::Malformed],
                filter: FeedFilter {
                    event_type: Some("cache".into()),
                    ..FeedFilter::default()
                },
            })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"op":"ping"}"#),
            Ok(ClientMessage::Ping { nonce: None })
        );
    }

    #[test]
    fn a_bad_query_is_answered_with_its_id() {
        let err = ClientMessage::parse(r#"{"op":"query","id":"q2","kind":"nope"}"#).unwrap_err();
        assert_eq!(err.id.as_deref(), Some("q2"));
        assert_eq!(
            err.message,
            "unknown query kind \"nope\": use events, malformed, exception_groups, trace, traces or drift"
        );
        let err = ClientMessage::parse(
            r#"{"op":"query","id":"q5","kind":"events","params":{"limit":"x"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.id.as_deref(), Some("q5"));
        assert_eq!(
            err.message,
            "query parameter `limit` must be a non-negative integer"
        );
        let err = ClientMessage::parse(r#"{"op":"nope"}"#).unwrap_err();
        assert_eq!(err.id, None);
        assert!(ClientMessage::parse(r#"{"op":"ping","extra":1}"#).is_err());
    }

    #[test]
    fn client_messages_round_trip() {
        use crate::query::{EventFilter, TraceFilter};
        let messages = [
            ClientMessage::Query {
                id: "a".into(),
                query: Query::Events(EventFilter {
                    until_ms: Some(1_749_567_234_300),
                    is_error: Some(true),
                    ..EventFilter::default()
                }),
            },
            ClientMessage::Query {
                id: "b".into(),
                query: Query::Traces(TraceFilter::default()),
            },
            ClientMessage::Get {
                id: "g".into(),
                event_id: "e".into(),
                organization: None,
                application: None,
            },
            ClientMessage::Get {
                id: "h".into(),
                event_id: "e".into(),
                organization: Some("acme".into()),
                application: Some("shop".into()),
            },
            ClientMessage::Unsubscribe {
                topics: vec![Topic::Metrics],
            },
        ];
        for message in messages {
            let text = serde_json::to_string(&message).unwrap();
            assert_eq!(ClientMessage::parse(&text), Ok(message.clone()), "{text}");
            assert_eq!(
                serde_json::from_str::<ClientMessage>(&text).unwrap(),
                message
            );
        }
    }

    #[test]
    fn stage_names_are_the_stored_strings() {
        let names = [
            StageName::Received,
            StageName::Authenticated,
            StageName::Inflated,
            StageName::Parsed,
            StageName::Validated,
            StageName::Enriched,
            StageName::Spooled,
            StageName::Acknowledged,
            StageName::Inserted,
        ];
        for name in names {
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{}\"", name.as_str()));
            assert_eq!(serde_json::from_str::<StageName>(&json).unwrap(), name);
        }
        // What a server of before this type wrote in ingest_traces.stages still reads.
        let stored = r#"[{"stage":"received","start_us":0,"duration_us":40},{"stage":"inserted","start_us":280,"duration_us":202720}]"#;
        let timings: Vec<StageTiming> = serde_json::from_str(stored).unwrap();
        assert_eq!(timings[1].stage, StageName::Inserted);
        assert_eq!(serde_json::to_string(&timings).unwrap(), stored);
    }

    #[test]
    fn an_empty_object_gets_only_the_seq() {
        assert_eq!(encode_frame(9, "{}"), r#"{"seq":9}"#);
        assert_eq!(peek_frame(r#"{"seq":9}"#), None);
    }

    #[test]
    fn another_layout_does_not_peek() {
        assert_eq!(peek_frame(r#"{"kind":"event","seq":1}"#), None);
        assert_eq!(peek_frame(r#"{"seq":,"kind":"event"}"#), None);
        let long = format!(r#"{{"seq":1,"kind":"{}"}}"#, "x".repeat(40));
        assert_eq!(peek_frame(&long), None);
        assert_eq!(
            peek_frame(r#"{"seq":12,"kind":"event","id":"x"}"#),
            Some(FrameHead {
                seq: 12,
                kind: "event"
            })
        );
    }
}

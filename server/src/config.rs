//! The server's one typed configuration: defaults < TOML file < environment (`BADDYBUGS_*`) <
//! command-line flags, validated before any port is bound.
//!
//! Environment: `BADDYBUGS_LISTEN`, `BADDYBUGS_DATA_DIR`, `BADDYBUGS_FEED_TOKEN`,
//! `BADDYBUGS_API_KEYS` (comma-separated `KEY[:SECRET]`), `BADDYBUGS_CLICKHOUSE_URL`,
//! `BADDYBUGS_CLICKHOUSE_PASSWORD`, and any nested option with `__` between levels
//! (`BADDYBUGS_SPOOL__QUOTA_BYTES=1000000`). Every option name carries its unit. Errors name the
//! file or field at fault. docs/OPERATIONS.md lists every option.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, the environment or a flag could not be read (names the field).
    #[error("configuration: {0}")]
    Load(String),
    /// A value is out of range or inconsistent (names the field).
    #[error("configuration: `{field}` {problem}")]
    Invalid {
        /// The option at fault (`spool.quota_bytes`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The largest `ingest.max_inflated_bytes`: half of [`crate::spool::MAX_RECORD_BYTES`], so the
/// spool record of a request (the inflated events plus the batch metadata: ids, stage timings,
/// a reason for each rejected event) always fits; an append over the record bound is refused
/// anyway ([`crate::spool::SpoolError::TooLarge`]).
pub const MAX_INFLATED_BYTES_LIMIT: usize = 512 << 20;
const _: () = assert!(MAX_INFLATED_BYTES_LIMIT * 2 <= crate::spool::MAX_RECORD_BYTES + 1);

/// Default `ingest.dedup_filter_bytes`: enough for the default ten-minute window at ~170k
/// events/s with ids (docs/OPERATIONS.md, Duplicates); a quiet server uses a few MiB of it.
pub const DEFAULT_DEDUP_FILTER_BYTES: u64 = 320 << 20;

fn invalid(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// One API key an agent may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The bearer key.
    pub key: String,
    /// The HMAC signing secret (the agent's `BADDYBUGS_SIGNING_SECRET`); the key itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The organization the key belongs to.
    #[serde(default = "default_org")]
    pub organization: String,
    /// The application the key belongs to.
    #[serde(default = "default_app")]
    pub application: String,
    /// Refuse unsigned requests from this key.
    #[serde(default)]
    pub require_signature: bool,
}

fn default_org() -> String {
    "default".into()
}
fn default_app() -> String {
    "default".into()
}

impl ApiKeyConfig {
    /// Parses the `KEY[:SECRET[:optional]]` form of flags and `BADDYBUGS_API_KEYS`. A key given
    /// with a secret requires signed requests (a secret is only given to sign with), unless
    /// `:optional` follows it.
    pub fn parse_short(text: &str) -> Result<ApiKeyConfig, ConfigError> {
        let text = text.trim();
        let (text, optional) = match text.strip_suffix(":optional") {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let (key, secret) = match text.split_once(':') {
            Some((k, s)) => (k, Some(s.to_owned()).filter(|s| !s.is_empty())),
            None => (text, None),
        };
        if key.is_empty() {
            return Err(invalid("api_keys", "contains an empty key"));
        }
        Ok(ApiKeyConfig {
            key: key.to_owned(),
            require_signature: secret.is_some() && !optional,
            secret,
            organization: default_org(),
            application: default_app(),
        })
    }
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to do with a body from an authenticated agent that cannot be decoded at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndecodableBody {
    /// Quarantine it whole and answer 202 with `accepted: 0` (the agent would re-send a 4xx'd
    /// batch forever and log two new events per attempt).
    Quarantine,
    /// Answer a plain 400.
    Reject,
}

/// Limits and behaviour of `POST /v1/ingest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body as sent (compressed), bytes → 413.
    pub max_body_bytes: usize,
    /// Largest body once inflated, bytes → 413 (checked while inflating).
    pub max_inflated_bytes: usize,
    /// Most events in one request → 413.
    pub max_events_per_batch: usize,
    /// Largest single event, bytes; a larger one is quarantined alone.
    pub max_event_bytes: usize,
    /// Accepted distance between `X-Timestamp` and the server clock, seconds.
    pub signature_skew_secs: u64,
    /// How long an accepted event `id` is remembered to spot agent retries, seconds.
    pub dedup_window_secs: u64,
    /// Most ids held by the dedup window's exact tier (the newest; ~40 bytes each with the index, 17 MiB at
    /// the default; the index doubles past 458,752 × 2^k ids: `dedup/exact.rs`).
    pub dedup_max_ids: usize,
    /// Memory budget of the dedup window's long tier (Bloom filters over the whole window);
    /// 0 turns it off, leaving the exact tier alone.
    pub dedup_filter_bytes: u64,
    /// False-positive rate of the long tier: each false "maybe seen" costs one store lookup,
    /// never an event.
    pub dedup_filter_false_positive_rate: f64,
    /// Undecodable bodies: `quarantine` (202) or `reject` (400).
    pub undecodable_body: UndecodableBody,
    /// Bytes of a rejected event (or body) kept in the quarantine.
    pub quarantine_raw_cap_bytes: usize,
    /// Events per second allowed per key (token bucket); 0 turns rate limiting off.
    pub rate_limit_events_per_sec: u32,
    /// Burst size of the rate limit, events.
    pub rate_limit_burst_events: u32,
    /// Ingest requests decoded, validated and spooled at once; more wait their turn, holding
    /// only the body they already read. Bounds the memory of inflated bodies: at most this many
    /// × (max_body_bytes + max_inflated_bytes).
    pub max_concurrent_requests: usize,
    /// Threads of the `ingest-cpu` pool (inflate, signature, split, validation); 0 = one per
    /// core.
    pub cpu_threads: usize,
    /// Longest wait for the next piece of a request body, ms → 408.
    pub body_idle_timeout_ms: u64,
    /// Slowest average upload accepted once `body_grace_ms` has passed, bytes/s → 408.
    pub body_min_bytes_per_sec: u64,
    /// Time a body may take before the minimum rate applies, ms.
    pub body_grace_ms: u64,
    /// Bytes of request bodies held at once (being read or processed); beyond it → 503.
    pub max_body_bytes_in_flight: usize,
    /// Signatures remembered to refuse a replayed signed request (within
    /// `signature_skew_secs`); the oldest are forgotten first.
    pub signature_cache_entries: usize,
    /// An event time further ahead of its receipt than this is not trusted for ordering: the
    /// receipt time is used, the original stays in the envelope and a `future_timestamp`
    /// warning is returned, seconds.
    pub future_timestamp_skew_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 10 << 20,
            max_inflated_bytes: 64 << 20,
            max_events_per_batch: 10_000,
            max_event_bytes: 1 << 20,
            signature_skew_secs: 300,
            dedup_window_secs: 600,
            dedup_max_ids: 450_000,
            dedup_filter_bytes: DEFAULT_DEDUP_FILTER_BYTES,
            dedup_filter_false_positive_rate: 0.001,
            undecodable_body: UndecodableBody::Quarantine,
            quarantine_raw_cap_bytes: 64 << 10,
            rate_limit_events_per_sec: 0,
            rate_limit_burst_events: 20_000,
            max_concurrent_requests: 32,
            cpu_threads: 0,
            body_idle_timeout_ms: 10_000,
            body_min_bytes_per_sec: 1024,
            body_grace_ms: 5_000,
            max_body_bytes_in_flight: 512 << 20,
            signature_cache_entries: 450_000,
            future_timestamp_skew_secs: 86_400,
        }
    }
}

/// Connections: timeouts and the connection budget (see `crate::accept`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// A request head (request line and headers) must arrive within this long of the
    /// connection opening or of its first byte after an idle period, else the connection is
    /// closed, ms.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection with no request in progress is closed after this long, ms.
    /// Longer than a load balancer's usual 60 s, so the balancer closes first.
    pub keep_alive_idle_timeout_ms: u64,
    /// Most connections served at once. Lowered at start to fit the descriptor limit (less
    /// `reserved_descriptors` and `operator_reserve_connections`); past it the oldest idle or
    /// half-open connection is closed to make room, and when none is, a new connection gets
    /// only the operator endpoints and 503 for everything else.
    pub max_connections: usize,
    /// Connections beyond `max_connections` kept for `/healthz`, `/readyz`, `/metrics` and
    /// the feed; other requests on them are answered 503 with `Retry-After`.
    pub operator_reserve_connections: usize,
    /// Descriptors kept for everything but connections (spool segments, the store, logs,
    /// pools, ClickHouse connections).
    pub reserved_descriptors: usize,
    /// A feed WebSocket client that has sent nothing (no frame, no pong) for this long is
    /// sent a ping, ms.
    pub websocket_ping_interval_ms: u64,
    /// A feed client that has not answered a ping (with a pong or any other frame) within
    /// this long is closed as a dead peer, ms.
    pub websocket_pong_timeout_ms: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            header_read_timeout_ms: 10_000,
            keep_alive_idle_timeout_ms: 75_000,
            max_connections: 65_536,
            operator_reserve_connections: 32,
            reserved_descriptors: 128,
            websocket_ping_interval_ms: 20_000,
            websocket_pong_timeout_ms: 40_000,
        }
    }
}

/// When the spool fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Before every 202 (group commit shares one fsync among concurrent requests).
    Always,
    /// Every `fsync_interval_ms`; a 202 may precede the fsync.
    Interval,
    /// Never (the OS decides); for benchmarks and throw-away environments.
    Never,
}

/// The durable spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Segment file size, bytes.
    pub segment_bytes: u64,
    /// Most bytes on disk; past it ingest answers 503 with Retry-After.
    pub quota_bytes: u64,
    /// `always`, `interval` or `never`.
    pub fsync: FsyncMode,
    /// Period of `fsync = "interval"`, ms.
    pub fsync_interval_ms: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_bytes: 64 << 20,
            quota_bytes: 4 << 30,
            fsync: FsyncMode::Always,
            fsync_interval_ms: 50,
        }
    }
}

/// The batcher between the spool and the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Most events per store write while the store keeps up: 5,000 for SQLite, 10,000 for
    /// ClickHouse ([`CLICKHOUSE_BATCH`]).
    pub max_events: usize,
    /// Most bytes of spool records per store write while the store keeps up: 4 MiB for SQLite,
    /// 8 MiB for ClickHouse.
    pub max_bytes: usize,
    /// Most events per store write while the store is behind (another `max_events` events wait
    /// in the spool past the batch being read); unset: `max_events`. ClickHouse's default is
    /// 25,000 ([`CLICKHOUSE_CATCHUP`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catchup_max_events: Option<usize>,
    /// Most bytes of spool records per store write while the store is behind; unset: `max_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catchup_max_bytes: Option<usize>,
    /// Most events one commit holds where the store has group commit (SQLite): while the next
    /// batch is already built when one is written, the writer writes it into the same
    /// transaction, up to this many events, and commits when none waits; each batch is still
    /// built and held alone, so memory does not grow. 0 commits every batch alone.
    pub group_max_events: usize,
    /// Flush when the oldest waiting event is this old, ms.
    pub flush_interval_ms: u64,
    /// Flush within this many ms when an exception or a security event waits.
    pub priority_flush_ms: u64,
    /// First retry delay after a store failure, ms.
    pub retry_initial_ms: u64,
    /// Longest retry delay, ms.
    pub retry_max_ms: u64,
    /// Nice value (0–19) added to the process's own for the `store-cpu` pool, which builds rows
    /// and writes the embedded store: when the cores are busy, acknowledging agents wins and the
    /// store catches up from the spool.
    pub background_nice: i32,
}

/// The batch limits (events, record bytes) when ClickHouse is the store and `batch.max_events` /
/// `batch.max_bytes` are not set: 10,000 events or 8 MiB of records per insert. The defaults of
/// [`BatchConfig`] (5,000 / 4 MiB) are SQLite's, whose group commit makes a small batch cost
/// about what a big one does while holding half the rows in memory (docs/BENCHMARKS.md,
/// 2026-12-05); ClickHouse makes a part per insert, so its inserts stay big.
pub const CLICKHOUSE_BATCH: (usize, usize) = (10_000, 8 << 20);

/// The catch-up limits (events, record bytes) when ClickHouse is the store and
/// `batch.catchup_max_events` / `batch.catchup_max_bytes` are not set: 25,000 events or 24 MiB of
/// records per insert while the store is behind. ClickHouse's cost per row falls with the
/// insert's size (fewer parts to write and merge): against 10,000 / 8 MiB, on a ClickHouse
/// sharing two cores with the server, it cut ClickHouse's CPU per stored event by 31 % and raised
/// the stored rate end to end by 23 %, for about 70 MiB more peak RSS (docs/BENCHMARKS.md,
/// 2026-12-04). While the store keeps up, batches stay at `max_events`, so a steady load's 202 →
/// stored latency is not that of a bigger batch's longer wait. SQLite does not catch up this way:
/// its writer spent 23 % more CPU per event with 25,000 (same page); it commits several batches
/// at once instead (`group_max_events`).
pub const CLICKHOUSE_CATCHUP: (usize, usize) = (25_000, 24 << 20);

impl BatchConfig {
    /// Events per batch while the store is behind (never below `max_events`).
    pub fn catchup_events(&self) -> usize {
        self.catchup_max_events
            .unwrap_or(self.max_events)
            .max(self.max_events)
    }

    /// Record bytes per batch while the store is behind (never below `max_bytes`).
    pub fn catchup_bytes(&self) -> usize {
        self.catchup_max_bytes
            .unwrap_or(self.max_bytes)
            .max(self.max_bytes)
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: 5_000,
            max_bytes: 4 << 20,
            catchup_max_events: None,
            catchup_max_bytes: None,
            group_max_events: 40_000,
            flush_interval_ms: 1000,
            priority_flush_ms: 200,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            background_nice: 10,
        }
    }
}

/// ClickHouse, when it is the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP(S) URL; setting it makes ClickHouse the store.
    pub url: Option<String>,
    /// Database.
    pub database: String,
    /// User.
    pub user: Option<String>,
    /// Password (prefer `password_file` or `BADDYBUGS_CLICKHOUSE_PASSWORD`); never logged.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// Create and migrate the schema at start; `false` leaves DDL to a DBA.
    pub migrate: bool,
    /// Retention of events, spans, exceptions and traces, days.
    pub ttl_days: u32,
    /// Retention of the quarantine, days.
    pub quarantine_ttl_days: u32,
    /// Put `ON CLUSTER <name>` on the DDL and use Replicated engines.
    pub cluster: Option<String>,
    /// Longest an insert, a query or the migration may take before it counts as failed
    /// (retryable), seconds.
    pub timeout_secs: u64,
    /// How often the node counts the extra copies of events stored twice (an agent retry that
    /// reached a second node of a fleet), seconds; 0 turns the count off.
    pub copies_check_secs: u64,
    /// How far back that count looks, by receipt time, seconds.
    pub copies_window_secs: u64,
    /// Compression of insert bodies: `lz4` (ClickHouse's native block compression, the default)
    /// or `none` (no compressing here nor decompressing there; measured no faster with
    /// ClickHouse on the same host: docs/BENCHMARKS.md, issue 18).
    pub compression: ClickHouseCompression,
}

/// `clickhouse.compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClickHouseCompression {
    /// LZ4, ClickHouse's native block compression.
    Lz4,
    /// Uncompressed bodies.
    None,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: None,
            database: "default".into(),
            user: None,
            password: None,
            password_file: None,
            migrate: true,
            ttl_days: 90,
            quarantine_ttl_days: 30,
            cluster: None,
            timeout_secs: 60,
            copies_check_secs: 60,
            copies_window_secs: 600,
            compression: ClickHouseCompression::Lz4,
        }
    }
}

/// The live feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Messages queued per client before the oldest tail messages are dropped.
    pub client_queue_messages: usize,
    /// Most `events` tail messages per second per client before sampling.
    pub events_tail_per_sec: u32,
    /// Most `lifecycle` waterfalls per second before sampling (errors are always sent).
    pub lifecycle_tail_per_sec: u32,
    /// A client whose queue stays full this long is disconnected, ms.
    pub slow_client_timeout_ms: u64,
    /// Tail messages kept for a newly subscribed client (per tail).
    pub tail_retention: usize,
    /// Keep every pipeline trace slower than this, ms (others are sampled).
    pub slow_batch_ms: u64,
    /// Keep 1 in N of the other pipeline traces.
    pub trace_sample_one_in: u32,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            client_queue_messages: 1024,
            events_tail_per_sec: 200,
            lifecycle_tail_per_sec: 50,
            slow_client_timeout_ms: 30_000,
            tail_retention: 100,
            slow_batch_ms: 50,
            trace_sample_one_in: 20,
        }
    }
}

/// Schema drift detection (see `crate::drift` and docs/CATALOG.md, Schema drift).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    /// Record what accepted events carry that the catalog does not describe.
    pub enabled: bool,
    /// Most drift keys (path and kind) kept per event type; further ones are counted as
    /// overflow, never kept.
    pub max_keys_per_type: usize,
    /// Most event types with drift kept (unknown types included); divergences of further
    /// types are counted as overflow.
    pub max_types: usize,
    /// Longest sample value kept per key, bytes (cut on a character boundary, ending in `…`).
    pub sample_bytes: usize,
    /// How often the counts are written to the store's `schema_drift` table, ms.
    pub flush_interval_ms: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            enabled: true,
            max_keys_per_type: 256,
            max_types: 512,
            sample_bytes: 256,
            flush_interval_ms: 10_000,
        }
    }
}

/// The embedded SQLite store (ignored with ClickHouse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// Page cache of the writer connection, bytes (SQLite's `cache_size`): index pages kept hot
    /// across batches.
    pub cache_bytes: u64,
    /// Page cache of each of the two read connections, bytes.
    pub read_cache_bytes: u64,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            cache_bytes: 16 << 20,
            read_cache_bytes: 2 << 20,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Data directory (spool, embedded store, logs, development credentials).
    pub data_dir: PathBuf,
    /// API keys; empty → development credentials are created on first start.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Token for the feed and the query API.
    pub feed_token: Option<String>,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Log filter (`info`, `baddybugs_ingest=debug`).
    pub log_level: String,
    /// Ingest endpoint.
    pub ingest: IngestConfig,
    /// Connections: timeouts and budget.
    pub connections: ConnectionsConfig,
    /// Spool.
    pub spool: SpoolConfig,
    /// Batcher.
    pub batch: BatchConfig,
    /// ClickHouse.
    pub clickhouse: ClickHouseConfig,
    /// Feed.
    pub feed: FeedConfig,
    /// Schema drift.
    pub drift: DriftConfig,
    /// The embedded SQLite store.
    pub sqlite: SqliteConfig,
    /// Seconds to wait for in-flight work on shutdown.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            api_keys: Vec::new(),
            feed_token: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            ingest: IngestConfig::default(),
            connections: ConnectionsConfig::default(),
            spool: SpoolConfig::default(),
            batch: BatchConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            feed: FeedConfig::default(),
            drift: DriftConfig::default(),
            sqlite: SqliteConfig::default(),
            shutdown_grace_secs: 20,
        }
    }
}

/// Values given on the command line (highest precedence); `None` means "not given".
#[derive(Debug, Clone, Default, Serialize)]
pub struct FlagOverrides {
    /// `--listen`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--data-dir`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--feed-token`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_token: Option<String>,
    /// `--log-format`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `--api-key` (repeatable), `KEY[:SECRET]`
    #[serde(skip)]
    pub api_keys: Vec<String>,
    /// `--clickhouse-url`
    #[serde(skip)]
    pub clickhouse_url: Option<String>,
    /// `--clickhouse-migrate`
    #[serde(skip)]
    pub clickhouse_migrate: Option<bool>,
}

/// The options read from `BADDYBUGS_<NAME>` (sections with `__`, e.g. `BADDYBUGS_SPOOL__QUOTA_BYTES`).
const ENV_KEYS: [&str; 14] = [
    "listen",
    "data_dir",
    "feed_token",
    "log_format",
    "log_level",
    "shutdown_grace_secs",
    "ingest",
    "connections",
    "spool",
    "batch",
    "clickhouse",
    "feed",
    "drift",
    "sqlite",
];

impl Config {
    /// Loads defaults < file < environment < flags, then validates.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, ConfigError> {
        // What the operator set (file, environment, flags), without the defaults: some defaults
        // depend on other options (the batch size on the store), so they are applied only where
        // this says nothing.
        let mut given = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            given = given.merge(Toml::file(path));
        }
        given = given
            .merge(
                // Only this server's options: the PHP agent's own BADDYBUGS_* variables
                // (BADDYBUGS_API_KEY, BADDYBUGS_ENDPOINT …) often share the environment.
                Env::prefixed("BADDYBUGS_")
                    .filter(|key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                    })
                    .split("__"),
            )
            .merge(Serialized::globals(flags));
        let mut config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(given.clone())
            .extract()
            .map_err(|e| ConfigError::Load(describe_figment_error(e, file)))?;

        if let Ok(keys) = std::env::var("BADDYBUGS_API_KEYS") {
            for part in keys.split(',').filter(|p| !p.trim().is_empty()) {
                config.api_keys.push(ApiKeyConfig::parse_short(part)?);
            }
        }
        for key in &flags.api_keys {
            config.api_keys.push(ApiKeyConfig::parse_short(key)?);
        }
        if let Ok(url) = std::env::var("BADDYBUGS_CLICKHOUSE_URL") {
            config.clickhouse.url = Some(url).filter(|u| !u.is_empty());
        }
        if let Ok(password) = std::env::var("BADDYBUGS_CLICKHOUSE_PASSWORD") {
            config.clickhouse.password = Some(password);
        }
        if let Some(url) = &flags.clickhouse_url {
            config.clickhouse.url = Some(url.clone());
        }
        if let Some(migrate) = flags.clickhouse_migrate {
            config.clickhouse.migrate = migrate;
        }
        if config.clickhouse.url.is_some() {
            let batch = &mut config.batch;
            let (events, bytes) = CLICKHOUSE_BATCH;
            if !given.contains("batch.max_events") {
                batch.max_events = events;
            }
            if !given.contains("batch.max_bytes") {
                batch.max_bytes = bytes;
            }
            let (events, bytes) = CLICKHOUSE_CATCHUP;
            if !given.contains("batch.catchup_max_events") {
                batch.catchup_max_events = Some(events);
            }
            if !given.contains("batch.catchup_max_bytes") {
                batch.catchup_max_bytes = Some(bytes);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency; errors name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let ing = &self.ingest;
        for (field, value) in [
            ("ingest.max_body_bytes", ing.max_body_bytes),
            ("ingest.max_inflated_bytes", ing.max_inflated_bytes),
            ("ingest.max_events_per_batch", ing.max_events_per_batch),
            ("ingest.max_event_bytes", ing.max_event_bytes),
            ("ingest.dedup_max_ids", ing.dedup_max_ids),
            (
                "ingest.max_concurrent_requests",
                ing.max_concurrent_requests,
            ),
            (
                "ingest.signature_cache_entries",
                ing.signature_cache_entries,
            ),
            (
                "ingest.body_idle_timeout_ms",
                ing.body_idle_timeout_ms as usize,
            ),
            (
                "connections.max_connections",
                self.connections.max_connections,
            ),
            ("batch.max_events", self.batch.max_events),
            ("batch.max_bytes", self.batch.max_bytes),
            (
                "batch.catchup_max_events",
                self.batch.catchup_max_events.unwrap_or(1),
            ),
            (
                "batch.catchup_max_bytes",
                self.batch.catchup_max_bytes.unwrap_or(1),
            ),
            (
                "feed.client_queue_messages",
                self.feed.client_queue_messages,
            ),
            ("drift.max_keys_per_type", self.drift.max_keys_per_type),
            ("drift.max_types", self.drift.max_types),
            ("sqlite.cache_bytes", self.sqlite.cache_bytes as usize),
            (
                "sqlite.read_cache_bytes",
                self.sqlite.read_cache_bytes as usize,
            ),
            (
                "drift.flush_interval_ms",
                self.drift.flush_interval_ms as usize,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be greater than 0"));
            }
        }
        if ing.max_inflated_bytes > MAX_INFLATED_BYTES_LIMIT {
            return Err(invalid(
                "ingest.max_inflated_bytes",
                format!(
                    "must be at most {MAX_INFLATED_BYTES_LIMIT} (512 MiB): a request becomes one spool record, which also holds its metadata and must stay under {} bytes",
                    crate::spool::MAX_RECORD_BYTES
                ),
            ));
        }
        if !(16..=baddybugs_common::drift::SAMPLE_MAX_BYTES).contains(&self.drift.sample_bytes) {
            return Err(invalid(
                "drift.sample_bytes",
                format!(
                    "must be between 16 and {}",
                    baddybugs_common::drift::SAMPLE_MAX_BYTES
                ),
            ));
        }
        let fp = ing.dedup_filter_false_positive_rate;
        if !(fp > 0.0 && fp < 1.0) {
            return Err(invalid(
                "ingest.dedup_filter_false_positive_rate",
                format!("must be between 0 and 1 (exclusive), not {fp}"),
            ));
        }
        if ing.max_inflated_bytes < ing.max_body_bytes {
            return Err(invalid(
                "ingest.max_inflated_bytes",
                "must be at least ingest.max_body_bytes",
            ));
        }
        let conn = &self.connections;
        for (field, value) in [
            (
                "connections.header_read_timeout_ms",
                conn.header_read_timeout_ms,
            ),
            (
                "connections.keep_alive_idle_timeout_ms",
                conn.keep_alive_idle_timeout_ms,
            ),
            (
                "connections.websocket_ping_interval_ms",
                conn.websocket_ping_interval_ms,
            ),
            (
                "connections.websocket_pong_timeout_ms",
                conn.websocket_pong_timeout_ms,
            ),
            (
                "ingest.future_timestamp_skew_secs",
                ing.future_timestamp_skew_secs,
            ),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be greater than 0"));
            }
        }
        if ing.future_timestamp_skew_secs > 100 * 365 * 86_400 {
            return Err(invalid(
                "ingest.future_timestamp_skew_secs",
                "must be at most 100 years",
            ));
        }
        if self.spool.segment_bytes < 4096 {
            return Err(invalid("spool.segment_bytes", "must be at least 4096"));
        }
        if self.spool.quota_bytes < self.spool.segment_bytes.saturating_mul(2) {
            // The active segment is never reclaimed: a quota of one segment could refuse every
            // append forever once that segment is full, even with nothing pending.
            return Err(invalid(
                "spool.quota_bytes",
                "must be at least twice spool.segment_bytes",
            ));
        }
        if self.spool.fsync == FsyncMode::Interval && self.spool.fsync_interval_ms == 0 {
            return Err(invalid(
                "spool.fsync_interval_ms",
                "must be > 0 with fsync = \"interval\"",
            ));
        }
        if ing.max_body_bytes_in_flight < ing.max_body_bytes {
            return Err(invalid(
                "ingest.max_body_bytes_in_flight",
                "must be at least ingest.max_body_bytes (one largest body must fit)",
            ));
        }
        if !(0..=19).contains(&self.batch.background_nice) {
            return Err(invalid(
                "batch.background_nice",
                "must be a nice value from 0 (same priority as ingest) to 19 (lowest)",
            ));
        }
        if self.batch.retry_initial_ms == 0 || self.batch.retry_max_ms < self.batch.retry_initial_ms
        {
            return Err(invalid(
                "batch.retry_max_ms",
                "must be >= batch.retry_initial_ms, which must be > 0",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.key.trim().is_empty() {
                return Err(invalid(&format!("api_keys[{i}].key"), "must not be empty"));
            }
            if !seen.insert(&key.key) {
                return Err(invalid(&format!("api_keys[{i}].key"), "is listed twice"));
            }
        }
        if let Some(token) = &self.feed_token {
            if token.trim().is_empty() {
                return Err(invalid("feed_token", "must not be empty"));
            }
        }
        if self.clickhouse.timeout_secs == 0 {
            return Err(invalid("clickhouse.timeout_secs", "must be greater than 0"));
        }
        if self.clickhouse.database.trim().is_empty() {
            return Err(invalid("clickhouse.database", "must not be empty"));
        }
        if let Some(url) = &self.clickhouse.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "clickhouse.url",
                    "must start with http:// or https://",
                ));
            }
        }
        Ok(())
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("is not an address:port ({:?})", self.listen),
            )
        })
    }

    /// The effective configuration as TOML, secrets masked (`print-config`).
    pub fn to_toml_masked(&self) -> String {
        let mut shown = self.clone();
        for key in &mut shown.api_keys {
            key.key = mask(&key.key);
            key.secret = key.secret.as_deref().map(mask);
        }
        shown.feed_token = shown.feed_token.as_deref().map(mask);
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

fn mask(secret: &str) -> String {
    let visible: String = secret.chars().take(4).collect();
    format!("{visible}…({} chars)", secret.chars().count())
}

fn describe_figment_error(error: figment::Error, file: Option<&Path>) -> String {
    let mut parts = Vec::new();
    for e in error {
        let field = if e.path.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", e.path.join("."))
        };
        let source = match (&e.metadata, file) {
            (Some(meta), _) => format!(" (from {})", meta.name),
            (None, Some(f)) => format!(" (in {})", f.display()),
            _ => String::new(),
        };
        parts.push(format!("{field}{}{source}", e.kind));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn file_values_and_flag_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[spool]\nquota_bytes = 200000000\n\n[[api_keys]]\nkey = \"k1\"\norganization = \"acme\"\napplication = \"shop\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let flags = FlagOverrides {
            listen: Some("127.0.0.1:9100".into()),
            api_keys: vec!["k2:sec".into()],
            ..Default::default()
        };
        let config = Config::load(Some(&path), &flags).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9100");
        assert_eq!(config.spool.quota_bytes, 200_000_000);
        assert_eq!(config.api_keys.len(), 2);
        assert_eq!(config.api_keys[0].organization, "acme");
        assert_eq!(config.api_keys[1].secret.as_deref(), Some("sec"));
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[spool]\nquota_bytes = \"lots\"\n").unwrap();
        let err = Config::load(Some(&path), &FlagOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("spool.quota_bytes"), "{err}");
        std::fs::write(&path, "[spool]\nquota_byte = 5\n").unwrap();
        let err = Config::load(Some(&path), &FlagOverrides::default()).unwrap_err();
        assert!(err.to_string().contains("quota_byte"), "{err}");
        let flags = FlagOverrides {
            listen: Some("nowhere".into()),
            ..Default::default()
        };
        let err = Config::load(None, &flags).unwrap_err();
        assert!(err.to_string().contains("`listen`"), "{err}");
    }

    /// With ClickHouse as the store, batches are 10,000 events and grow while the store is
    /// behind unless the operator sized that; the embedded store keeps one smaller size (it
    /// groups its commits instead).
    #[test]
    fn clickhouse_batches_are_bigger_unless_set() {
        let flags = FlagOverrides {
            clickhouse_url: Some("http://127.0.0.1:8123".into()),
            ..Default::default()
        };
        let config = Config::load(None, &flags).unwrap();
        assert_eq!(config.batch.max_events, 10_000);
        assert_eq!(config.batch.max_bytes, 8 << 20);
        assert_eq!(config.batch.catchup_events(), 25_000);
        assert_eq!(config.batch.catchup_bytes(), 24 << 20);

        let embedded = Config::load(None, &FlagOverrides::default()).unwrap();
        assert_eq!(embedded.batch, BatchConfig::default());
        assert_eq!(
            (embedded.batch.max_events, embedded.batch.max_bytes),
            (5_000, 4 << 20),
            "SQLite's batches are smaller: its group commit amortizes them"
        );
        assert_eq!(embedded.batch.catchup_events(), embedded.batch.max_events);
        assert_eq!(embedded.batch.catchup_bytes(), embedded.batch.max_bytes);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[batch]\ncatchup_max_events = 12000\n").unwrap();
        let set = Config::load(Some(&path), &flags).unwrap();
        assert_eq!(
            set.batch.catchup_events(),
            12_000,
            "the operator's value wins"
        );
        assert_eq!(
            set.batch.catchup_bytes(),
            24 << 20,
            "the other one follows the store"
        );

        std::fs::write(&path, "[batch]\nmax_events = 40000\n").unwrap();
        let raised = Config::load(Some(&path), &flags).unwrap();
        assert_eq!(
            raised.batch.catchup_events(),
            40_000,
            "never below max_events"
        );
        assert_eq!(
            raised.batch.max_bytes,
            8 << 20,
            "the other one follows the store"
        );
    }

    /// Issue 15: a request's spool record must stay under the record bound, or it would be
    /// acknowledged and then read back as damage.
    #[test]
    fn max_inflated_bytes_is_bounded_by_the_spool_record() {
        let mut config = Config::default();
        config.ingest.max_inflated_bytes = MAX_INFLATED_BYTES_LIMIT;
        config.validate().unwrap();
        config.ingest.max_inflated_bytes = 1 << 30;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("ingest.max_inflated_bytes") && err.contains("at most"),
            "{err}"
        );
    }
}

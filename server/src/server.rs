//! Starting and stopping the server: [`run`] wires the spool, the store, the batcher, the
//! metrics ticker and the HTTP listener, and shuts them down in order.
//!
//! Connections are accepted and served by [`crate::accept`] (timeouts, the connection budget
//! under the descriptor limit, panics answered 500).
//!
//! Shutdown (SIGTERM/SIGINT, or the future passed to [`run_until`]): stop accepting (ingest
//! answers 503), let in-flight requests finish (for at most `shutdown_grace_secs`), let the batcher flush what the store takes,
//! close the spool (final fsync), exit 0. What the store could not take stays in the spool and
//! is written at the next start.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::background::CpuPool;
use crate::batch::{Batcher, TraceObserver};
use crate::config::{ApiKeyConfig, Config, FsyncMode};
use crate::feed::{FeedHub, FeedTap};
use crate::http::app;
use crate::ingest::admit::Admission;
use crate::ingest::dedup::{DedupWindow, FilterConfig};
use crate::ingest::keys::KeyRing;
use crate::metrics::{Latency, Metrics};
use crate::sink::sqlite::SqliteStore;
use crate::sink::Store;
use crate::spool::{FsyncPolicy, Spool, SpoolConfig as SpoolOptions, SpoolEvent};
use crate::state::AppState;

/// Development credentials created on first start when no key is configured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevCredentials {
    /// The API key agents use.
    pub api_key: String,
    /// The feed / query token.
    pub feed_token: String,
}

/// Name of the development credentials file in the data directory.
pub const DEV_CREDENTIALS_FILE: &str = "dev-credentials.json";

fn random_token(prefix: &str) -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().gen();
    format!("{prefix}_{}", hex::encode(bytes))
}

/// Loads the development credentials of a data directory, creating them if needed.
pub fn dev_credentials(data_dir: &Path) -> anyhow::Result<(DevCredentials, bool)> {
    let path = data_dir.join(DEV_CREDENTIALS_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let creds = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid; delete it to create new development credentials",
                path.display()
            )
        })?;
        return Ok((creds, false));
    }
    let creds = DevCredentials {
        api_key: random_token("bbdev"),
        feed_token: random_token("bbfeed"),
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&creds)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((creds, true))
}

/// Opens the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if config.clickhouse.url.is_some() {
        let store = crate::sink::clickhouse::ClickHouseStore::connect(&config.clickhouse)
            .await
            .context("cannot use ClickHouse")?;
        return Ok(store);
    }
    let path = config.data_dir.join("store.sqlite");
    let store = SqliteStore::open_with(&path, sqlite_options(config))
        .with_context(|| format!("cannot open the embedded store {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Embedded store options from the configuration.
pub fn sqlite_options(config: &Config) -> crate::sink::sqlite::SqliteOptions {
    crate::sink::sqlite::SqliteOptions {
        cache_bytes: config.sqlite.cache_bytes,
        read_cache_bytes: config.sqlite.read_cache_bytes,
        ..Default::default()
    }
}

/// Spool options from the configuration (also used by the `spool` subcommands).
pub fn spool_options(config: &Config, metrics: Option<Arc<Metrics>>) -> SpoolOptions {
    let fsync = match config.spool.fsync {
        FsyncMode::Always => FsyncPolicy::Always,
        FsyncMode::Interval => FsyncPolicy::Interval {
            ms: config.spool.fsync_interval_ms,
        },
        FsyncMode::Never => FsyncPolicy::Never,
    };
    let mut options = SpoolOptions::new(config.data_dir.clone(), &[crate::batch::CHECKPOINT]);
    options.segment_bytes = config.spool.segment_bytes;
    options.quota_bytes = config.spool.quota_bytes;
    options.fsync = fsync;
    if let Some(metrics) = metrics {
        options.on_event = Some(Arc::new(move |event: SpoolEvent| match event {
            SpoolEvent::Fsync { micros, .. } => metrics.record_latency(Latency::Fsync, micros),
            SpoolEvent::Error { op, kind } => metrics.spool_error(op.as_str(), kind),
        }));
    }
    options
}

/// A running server (for tests and `main`).
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
}

/// Runs until SIGTERM or SIGINT.
///
/// The signal handlers are installed here, before anything is opened or bound: a SIGTERM sent
/// the moment the banner says "listening" (a supervisor stopping a node that has just started)
/// is a clean stop, not the default action's kill. Test:
/// `operations.rs::a_sigterm_right_after_the_banner_is_a_clean_stop`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("cannot install the SIGTERM/SIGINT handlers")?;
    run_until(config, shutdown, |_| {}).await
}

/// Runs until `shutdown` resolves; `on_ready` is told the bound address.
pub async fn run_until(
    mut config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    // One server per data directory: two would interleave the spool. Held until we return.
    let lock_path = config.data_dir.join("LOCK");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!(
            "another baddybugs-ingest is using the data directory {} (it holds {}); stop it or use another --data-dir",
            config.data_dir.display(),
            lock_path.display()
        );
    }

    let mut banner = None;
    if config.api_keys.is_empty() {
        let (creds, created) = dev_credentials(&config.data_dir)?;
        config
            .api_keys
            .push(ApiKeyConfig::parse_short(&creds.api_key)?);
        if config.feed_token.is_none() {
            config.feed_token = Some(creds.feed_token.clone());
        }
        banner = Some((creds, created));
    }
    // Keys given without a feed token: the token of the data directory's development
    // credentials (created if needed), and the banner says where it is.
    let mut token_from_file = false;
    let feed_token = match &config.feed_token {
        Some(token) => token.clone(),
        None => {
            let (creds, _) = dev_credentials(&config.data_dir)?;
            token_from_file = true;
            creds.feed_token
        }
    };

    // Before anything opens a file: the connection budget is fitted under this limit.
    let budget = crate::accept::Budget::at_start(&config.connections)?;
    baddybugs_common::timestamp::set_max_future_ms(
        i64::try_from(
            config
                .ingest
                .future_timestamp_skew_secs
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX),
    );

    let instance_id = uuid::Uuid::new_v4().to_string();
    let metrics = Arc::new(Metrics::new(instance_id.clone()));
    let (spool, report) = Spool::open(spool_options(&config, Some(metrics.clone())))
        .context("cannot open the spool")?;
    tracing::info!(?report, "spool opened");
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr()?)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;

    let config = Arc::new(config);
    let feed = Arc::new(FeedHub::new(
        config.feed.clone(),
        metrics.clone(),
        instance_id.clone(),
    ));
    let drift = Arc::new(crate::drift::DriftRegistry::new(
        config.drift.clone(),
        metrics.clone(),
    ));
    let state = Arc::new(AppState {
        drift: drift.clone(),
        keys: KeyRing::new(&config.api_keys, &config.ingest),
        feed_token: feed_token.clone(),
        spool: spool.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        dedup: DedupWindow::with_filter(
            config.ingest.dedup_window_secs,
            config.ingest.dedup_max_ids,
            Some(FilterConfig {
                budget_bytes: config.ingest.dedup_filter_bytes,
                false_positive_rate: config.ingest.dedup_filter_false_positive_rate,
            }),
            chrono::Utc::now().timestamp_millis(),
        ),
        feed: feed.clone(),
        feed_tap: FeedTap::start(feed.clone()).context("cannot start the feed-build thread")?,
        ingest_pool: CpuPool::new("ingest-cpu", config.ingest.cpu_threads, 0)
            .context("cannot start the ingest-cpu pool")?,
        shutting_down: Default::default(),
        last_quota_refusal_ms: Default::default(),
        admission: Admission::new(&config.ingest),
        // Twice the skew: a signature is acceptable from skew before its timestamp to skew after.
        signatures: DedupWindow::new(
            config.ingest.signature_skew_secs.saturating_mul(2),
            config.ingest.signature_cache_entries,
        ),
        config: config.clone(),
    });
    {
        let mut sink = metrics.gauges.sink.lock();
        sink.kind = if config.clickhouse.url.is_some() {
            "clickhouse"
        } else {
            "sqlite"
        }
        .into();
        sink.healthy = true;
    }

    crate::background::set_nice(config.batch.background_nice);
    let (stop_tx, stop_rx) = watch::channel(false);
    let observer_feed = feed.clone();
    let on_traces: TraceObserver =
        Arc::new(move |traces| observer_feed.publish_stored_traces(traces));
    let batcher = tokio::spawn(
        Batcher {
            spool: spool.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            config: config.batch.clone(),
            feed: config.feed.clone(),
            shutdown: stop_rx.clone(),
            on_traces: Some(on_traces),
        }
        .run(),
    );
    let drift_flusher = tokio::spawn(crate::drift::flush::run(
        drift.clone(),
        store.clone(),
        config.drift.flush_interval_ms,
        stop_rx.clone(),
    ));
    let ticker = tokio::spawn(metrics_ticker(
        state.clone(),
        spool.clone(),
        metrics.clone(),
        feed.clone(),
        stop_rx.clone(),
    ));

    let copies = (config.clickhouse.copies_check_secs > 0).then(|| {
        tokio::spawn(crate::sink::copies::count_copies(
            store.clone(),
            metrics.clone(),
            crate::sink::copies::CopiesCheck {
                every: Duration::from_secs(config.clickhouse.copies_check_secs),
                window: Duration::from_secs(config.clickhouse.copies_window_secs),
            },
            stop_rx.clone(),
        ))
    });

    let running = Running {
        addr,
        data_dir: config.data_dir.clone(),
    };
    print_banner(
        &running,
        banner.as_ref(),
        token_from_file.then_some(feed_token.as_str()),
        &feed_token,
        config.clickhouse.url.is_some(),
    );
    on_ready(&running);

    let shutdown_state = state.clone();
    let router = crate::accept::with_debug_routes(app(state.clone()));
    crate::accept::serve(
        listener,
        router,
        &config.connections,
        budget,
        metrics.clone(),
        async move {
            shutdown.await;
            tracing::info!("shutdown requested: finishing in-flight requests");
            shutdown_state.shutting_down.store(true, Ordering::SeqCst);
            shutdown_state.feed.close();
        },
        Duration::from_secs(config.shutdown_grace_secs),
    )
    .await;

    tracing::info!("flushing the spool to the store");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    if tokio::time::timeout(grace, batcher).await.is_err() {
        tracing::warn!("the store did not take everything within the grace period; the rest stays in the spool");
    }
    if tokio::time::timeout(grace, drift_flusher).await.is_err() {
        tracing::warn!(
            "the store did not take the last schema drift counts within the grace period"
        );
    }
    ticker.abort();
    if let Some(copies) = copies {
        copies.abort();
    }
    drop(state);
    spool.close().context("closing the spool")?;
    tracing::info!("stopped");
    Ok(())
}

async fn metrics_ticker(
    state: Arc<AppState>,
    spool: Spool,
    metrics: Arc<Metrics>,
    feed: Arc<FeedHub>,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let status = spool.status();
        let now = chrono::Utc::now().timestamp_millis();
        let consumer = status
            .consumers
            .iter()
            .find(|c| c.name == crate::batch::CHECKPOINT);
        let batcher_bytes = metrics.gauges.batcher_bytes.load(Ordering::Relaxed);
        let memory = crate::metrics::memory::memory_stats(&state, batcher_bytes);
        {
            let mut b = metrics.gauges.buffers.lock();
            b.memory = memory;
            b.spool_bytes = status.bytes_on_disk;
            b.spool_quota_bytes = status.quota_bytes;
            b.spool_segments = status.segments as u64;
            b.pending_records = consumer.map_or(0, |c| c.pending_records);
            b.oldest_pending_secs = consumer
                .and_then(|c| c.oldest_pending_unix_ms)
                .map(|ms| (now - ms as i64).max(0) as f64 / 1000.0);
            b.memory_bytes = feed.queued_bytes() + batcher_bytes;
            b.memory_events = metrics.gauges.batcher_events.load(Ordering::Relaxed);
        }
        {
            let mut sink = metrics.gauges.sink.lock();
            sink.lag_events = consumer.map_or(0, |c| c.pending_events);
            sink.lag_secs = consumer
                .and_then(|c| c.oldest_pending_unix_ms)
                .map(|ms| (now - ms as i64).max(0) as f64 / 1000.0);
        }
        *metrics.gauges.dedup.lock() = state.dedup.stats(now);
        let snapshot = metrics.tick();
        feed.publish_metrics(snapshot);
    }
}

fn print_banner(
    running: &Running,
    dev: Option<&(DevCredentials, bool)>,
    token_from_file: Option<&str>,
    feed_token: &str,
    clickhouse: bool,
) {
    let url = format!("http://{}", running.addr);
    // Everything else first: the `listening on` line comes last, so a supervisor (or a test)
    // that waits for it has the whole banner.
    println!(
        "  store: {}   data directory: {}",
        if clickhouse {
            "ClickHouse"
        } else {
            "embedded SQLite"
        },
        running.data_dir.display()
    );
    if let Some((creds, created)) = dev {
        let how = if *created { "created" } else { "loaded" };
        println!(
            "\n  No API key is configured: development credentials {how} in {}",
            running.data_dir.join(DEV_CREDENTIALS_FILE).display()
        );
        println!("    API key:    {}", creds.api_key);
        println!("    feed token: {feed_token}");
        println!("\n  Send an event:");
        println!(
            "    curl -sS -X POST {url}/v1/ingest -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n      -d '{{\"events\":[{{\"type\":\"log\",\"name\":\"error\",\"payload\":{{\"level\":\"error\",\"message\":\"hello\"}},\"timestamp\":'$(date +%s)'}}]}}'",
            creds.api_key
        );
        println!("  Read it back:");
        println!("    curl -sS '{url}/v1/events?limit=5' -H 'Authorization: Bearer {feed_token}'");
        println!("  Watch live:");
        println!("    cargo run --release -p baddybugs-console -- --url ws://{}/v1/feed --token {feed_token}", running.addr);
        println!();
    } else if let Some(token) = token_from_file {
        println!(
            "\n  No feed token is configured: the query API and the feed take the one in {}\n    feed token: {token}   (set --feed-token or BADDYBUGS_FEED_TOKEN to choose it)\n",
            running.data_dir.join(DEV_CREDENTIALS_FILE).display()
        );
    }
    println!(
        "baddybugs-ingest {} listening on {url}",
        env!("CARGO_PKG_VERSION")
    );
}

/// Installs the SIGTERM and SIGINT handlers now, and returns the future that resolves on
/// either. (Registering inside the future would leave the default action, an abrupt exit, in
/// place until the future is first polled.)
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

//! Accept: TCP connections in, HTTP/1.1 connections served by the router out.
//!
//! What no client may do here is hold what others need. So:
//! - **timeouts**: a request head must arrive within `connections.header_read_timeout_ms` of
//!   the accept (or of its first byte after an idle period); a keep-alive connection with no
//!   request is closed after `connections.keep_alive_idle_timeout_ms`. Body deadlines belong to
//!   the ingest admission stage; the feed's WebSocket has its own liveness rules (a ping and a
//!   dead-peer timeout, `feed::liveness`);
//! - **a budget under the descriptor limit**: the soft `RLIMIT_NOFILE` is raised to the hard
//!   limit at start and both are logged; regular connections are capped below it
//!   ([`rlimit::connection_cap`]), and a small reserve beyond the cap serves only the operator
//!   endpoints. When a pool is full, the oldest idle or half-open connection is closed to make
//!   room ([`budget`]); when none is, the reserve answers 503 with `Retry-After`, and past the
//!   reserve a new connection gets a canned 503 and is closed, never left hanging;
//! - **panics**: a handler that panics is answered 500 and logged with its request
//!   ([`service`]); [`log_panics`] sends every other panic to the log too.
//!
//! Measures: open connections per pool, connections closed by reason (`header_timeout`,
//! `idle_timeout`, `shed_half_open`, `shed_idle`, `refused`; `dead_peer` is counted by the
//! feed's WebSocket), accept errors and handler panics (docs/OPERATIONS.md). Shedding,
//! refusals and accept errors are logged at most once per [`LOG_EVERY`] each, with the count
//! since the last line.
//!
//! Graceful shutdown: stop accepting, let each connection finish its request (hyper closes
//! idle ones at once), wait at most the drain time, drop the rest.

pub mod budget;
pub mod io;
pub mod rlimit;
pub mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::ConnectionsConfig;
use crate::metrics::Metrics;
use budget::{Admission, Counts, Phase, Pool, Slot, Table, Timeouts};
use io::TrackedIo;
use service::{ConnService, BUSY_JSON, RETRY_AFTER_SECS};

/// Shortest interval between two log lines of one kind of connection trouble.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Refused connections answered at once; past this many, a refused connection is just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// Connections closed to make room whose socket may still be open before the accept loop waits
/// for them (part of `connections.reserved_descriptors`, with the refusals in flight).
const MAX_CLOSING: usize = 8;

/// How long the accept loop waits for closed-to-make-room connections to release their
/// descriptors before it accepts anyway.
const CLOSING_PATIENCE: Duration = Duration::from_millis(200);

/// How long a refused connection may take to get its 503.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The budget computed at start.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The descriptor limits.
    pub nofile: rlimit::NofileLimit,
    /// Regular and reserve connections allowed.
    pub limits: Counts,
}

impl Budget {
    /// Raises the descriptor limit and fits the connection budget under it; logs both.
    pub fn at_start(config: &ConnectionsConfig) -> anyhow::Result<Budget> {
        let nofile = rlimit::raise_nofile();
        let Some(regular) = rlimit::connection_cap(
            nofile.soft,
            config.max_connections,
            config.operator_reserve_connections,
            config.reserved_descriptors,
        ) else {
            anyhow::bail!(
                "the descriptor limit ({} open files) leaves no room for connections after connections.reserved_descriptors ({}) and connections.operator_reserve_connections ({}); raise `ulimit -n` or lower those",
                nofile.soft,
                config.reserved_descriptors,
                config.operator_reserve_connections
            );
        };
        tracing::info!(
            soft_at_start = nofile.soft_at_start,
            soft = nofile.soft,
            hard = nofile.hard,
            max_connections = regular,
            operator_reserve = config.operator_reserve_connections,
            "descriptor limit"
        );
        if regular < config.max_connections {
            // Expected wherever `ulimit -n` is below the default maximum: information only.
            tracing::info!(
                configured = config.max_connections,
                effective = regular,
                soft = nofile.soft,
                "connections.max_connections lowered to fit the descriptor limit"
            );
        }
        Ok(Budget {
            nofile,
            limits: Counts {
                regular,
                reserve: config.operator_reserve_connections,
            },
        })
    }
}

/// A log line at most every [`LOG_EVERY`], with how many were held back.
#[derive(Default)]
struct RateLimitedLog {
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl RateLimitedLog {
    /// `Some(held back since the last line)` when a line may be written now.
    fn ready(&self) -> Option<u64> {
        let mut last = self.last.lock();
        if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(Instant::now());
        Some(self.held.swap(0, Ordering::Relaxed))
    }
}

/// What the accept loop and the connection tasks share.
struct Shared {
    router: Router,
    metrics: Arc<Metrics>,
    table: Arc<Table>,
    timeouts: Timeouts,
    shed_log: RateLimitedLog,
    refused_log: RateLimitedLog,
    accept_log: RateLimitedLog,
    refusals: Arc<Semaphore>,
}

impl Shared {
    fn publish_counts(&self) {
        let counts = self.table.counts();
        let c = &self.metrics.connections;
        c.open_regular
            .store(counts.regular as u64, Ordering::Relaxed);
        c.open_reserve
            .store(counts.reserve as u64, Ordering::Relaxed);
    }

    fn shed(&self, phase: Phase, why: &'static str) {
        let c = &self.metrics.connections;
        match phase {
            Phase::Idle => c.shed_idle.fetch_add(1, Ordering::Relaxed),
            _ => c.shed_half_open.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(held) = self.shed_log.ready() {
            let limits = self.table.limits();
            tracing::warn!(
                phase = phase.label(),
                why,
                held_back = held,
                max_connections = limits.regular,
                operator_reserve = limits.reserve,
                "closed the oldest idle or half-open connection to make room"
            );
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ConnectionsConfig,
    budget: Budget,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) {
    let shared = Arc::new(Shared {
        router,
        metrics,
        table: Table::new(budget.limits),
        timeouts: Timeouts {
            header_read: Duration::from_millis(config.header_read_timeout_ms),
            keep_alive_idle: Duration::from_millis(config.keep_alive_idle_timeout_ms),
        },
        shed_log: RateLimitedLog::default(),
        refused_log: RateLimitedLog::default(),
        accept_log: RateLimitedLog::default(),
        refusals: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each connection task holds a sender: `recv` ends when the last one is gone.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        // A doomed connection keeps its descriptor until its task runs and drops it; accepting
        // faster than those tasks close would spend descriptors the budget counted as free
        // (and `accept` would fail with EMFILE). New connections wait in the listen backlog.
        if shared.table.closing() > MAX_CLOSING {
            let within = tokio::select! {
                within = shared.table.wait_for_closing(MAX_CLOSING, CLOSING_PATIENCE) => within,
                () = &mut shutdown => break,
            };
            if !within {
                if let Some(held) = shared.accept_log.ready() {
                    tracing::warn!(
                        closing = shared.table.closing(),
                        held_back = held,
                        "connections closed to make room are slow to close; accepting anyway"
                    );
                }
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, remote)) => {
                shared
                    .metrics
                    .connections
                    .accepted
                    .fetch_add(1, Ordering::Relaxed);
                match shared.table.admit() {
                    Admission::Admitted { slot, shed } => {
                        if let Some(phase) = shed {
                            shared.shed(phase, "connection limit");
                        }
                        let task = serve_connection(
                            shared.clone(),
                            stream,
                            remote,
                            slot,
                            stop_rx.clone(),
                            alive_tx.clone(),
                        );
                        tokio::spawn(task);
                    }
                    Admission::Refused => refuse(&shared, stream, remote),
                }
                shared.publish_counts();
            }
            Err(error) => {
                shared
                    .metrics
                    .connections
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                let out_of_descriptors = matches!(error.raw_os_error(), Some(23 | 24));
                if let Some(held) = shared.accept_log.ready() {
                    tracing::warn!(%error, held_back = held, "accept failed");
                }
                if out_of_descriptors {
                    if let Some(phase) = shared.table.shed_one() {
                        shared.shed(phase, "out of descriptors");
                    }
                }
                // Let the closing connections go before the next try.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    if tokio::time::timeout(drain, alive_rx.recv()).await.is_err() {
        tracing::warn!(
            open = ?shared.table.counts(),
            "connections still busy after the drain time; closing them"
        );
    }
}

/// How a connection ended, for the metrics.
enum Ended {
    Done,
    HeaderTimeout,
    IdleTimeout,
    Shed,
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    mut stop: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let _ = stream.set_nodelay(true);
    let conn = slot.conn().clone();
    let reserve = conn.pool() == Pool::Reserve;
    let service = ConnService {
        router: shared.router.clone(),
        conn: conn.clone(),
        remote,
        metrics: shared.metrics.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The head and idle deadlines are ours (hyper's would also cut idle keep-alive at the
    // head's deadline); a reserve connection serves one request.
    builder.header_read_timeout(None).keep_alive(!reserve);
    let connection = builder
        .serve_connection(TokioIo::new(TrackedIo::new(stream, slot)), service)
        .with_upgrades();
    // The connection lives in this block: leaving it closes the socket (unless a WebSocket
    // took it over), before the open counts are published.
    let ended = {
        let mut connection = std::pin::pin!(connection);
        let mut draining = *stop.borrow();
        if draining {
            connection.as_mut().graceful_shutdown();
        }
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let deadline = conn.deadline(&shared.timeouts);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%remote, %error, "connection ended with an error");
                    }
                    break Ended::Done;
                }
                () = conn.doomed() => break Ended::Shed,
                // The idle deadline starts now; the one taken above (if any) was the head's.
                () = conn.turned_idle() => {}
                _ = stop.changed(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() => {
                    // The phase may have moved on since the deadline was taken.
                    match conn.deadline(&shared.timeouts) {
                        Some(d) if d <= Instant::now() => {
                            break if conn.phase() == Phase::Idle {
                                Ended::IdleTimeout
                            } else {
                                Ended::HeaderTimeout
                            };
                        }
                        _ => {}
                    }
                }
            }
        }
    };
    let c = &shared.metrics.connections;
    match ended {
        Ended::Done | Ended::Shed => {}
        Ended::HeaderTimeout => {
            c.header_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%remote, "no complete request head in time: closed");
        }
        Ended::IdleTimeout => {
            c.idle_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
    shared.publish_counts();
}

/// Answers a connection that has no place a canned 503, off the accept loop, and closes it.
fn refuse(shared: &Arc<Shared>, stream: TcpStream, remote: SocketAddr) {
    shared
        .metrics
        .connections
        .refused
        .fetch_add(1, Ordering::Relaxed);
    if let Some(held) = shared.refused_log.ready() {
        tracing::warn!(
            %remote,
            held_back = held,
            open = ?shared.table.counts(),
            "connection refused with 503: every connection is in use"
        );
    }
    let Ok(permit) = shared.refusals.clone().try_acquire_owned() else {
        // Too many refusals in progress already: closing at once is the quick answer.
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_JSON}",
            BUSY_JSON.len()
        );
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent, so closing does not reset the connection before it
            // reads the answer.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    });
}

/// Sends every panic to the log (the log file included) as well as to stderr.
pub fn log_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        tracing::error!(
            panic = service::panic_message(info.payload()),
            location,
            thread,
            "panic"
        );
        previous(info);
    }));
}

/// Debug builds only: `GET /v1/debug/panic` panics, when `BADDYBUGS_DEBUG_PANIC_ROUTE=1` is
/// set, so the end-to-end tests can check what a panicking handler does. Release builds have
/// no such route whatever the environment says.
#[cfg(debug_assertions)]
pub fn with_debug_routes(router: Router) -> Router {
    if std::env::var("BADDYBUGS_DEBUG_PANIC_ROUTE").as_deref() != Ok("1") {
        return router;
    }
    tracing::warn!(
        "debug build: GET /v1/debug/panic panics on purpose (BADDYBUGS_DEBUG_PANIC_ROUTE=1)"
    );
    router.route(
        "/v1/debug/panic",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("deliberate panic (BADDYBUGS_DEBUG_PANIC_ROUTE)");
            }
            "unreachable"
        }),
    )
}

/// Release builds: no debug routes.
#[cfg(not(debug_assertions))]
pub fn with_debug_routes(router: Router) -> Router {
    router
}

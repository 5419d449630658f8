//! WAL checkpoints on their own thread, off the writer's.
//!
//! In WAL mode every page a batch changes is written twice: appended to the WAL at commit,
//! then copied into the database file by a checkpoint. SQLite runs that checkpoint inside the
//! commit that crosses `wal_autocheckpoint` pages (1000 by default), on the writer's thread:
//! the copy (over a third of SQLite's time in a batch write, profiled with `cargo bench -p
//! baddybugs-ingest --bench sqlite_drain`) then delays the next batch, and with a small WAL
//! the index pages every batch touches are copied again after every batch. Here the writer
//! only tells this thread how much it committed; once about [`CHECKPOINT_EVERY_BYTES`] have
//! gone into the WAL, the thread runs a `PASSIVE` checkpoint on its own connection, which
//! never takes the write lock, so the next batches are written while the last ones are copied,
//! and a page changed by several batches is copied once.
//!
//! Durability does not change: a commit is durable when its WAL frames are synced (the
//! writer's `synchronous` setting), before and after this change. If the checkpointer falls
//! behind (a slow disk) or fails, the writer's own autocheckpoint, set much higher
//! ([`WRITER_AUTOCHECKPOINT_PAGES`]), still bounds the WAL; a failure is logged and retried
//! after the next commit.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::sink::SinkBatch;

/// The writer's own autocheckpoint threshold, pages (128 MiB of 16 KiB pages): the valve when
/// this thread cannot keep up or a checkpoint raced the writer and left frames behind. The
/// writer's checkpoint runs between its transactions, so it catches up fully and the WAL
/// restarts: the WAL never grows much past this.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8192;

/// Row bytes committed between two checkpoints of this thread (the WAL grows by about twice
/// that with the index pages).
pub(super) const CHECKPOINT_EVERY_BYTES: u64 = 24 << 20;

/// Asks the checkpoint thread to run after commits; dropping it stops the thread.
pub(super) struct Checkpointer {
    path: PathBuf,
    busy_timeout: Duration,
    /// Wake the thread past this many row bytes.
    every_bytes: u64,
    /// Row bytes committed since the last wake-up.
    since_wake: AtomicU64,
    /// The thread, started by the first wake-up: from the writer's thread, so it runs at the
    /// writer's priority (`batch.background_nice`), not the ingest's. `Err` once it could not
    /// start (the writer then checkpoints alone).
    thread: Mutex<Option<Result<Thread, ()>>>,
}

struct Thread {
    wake: SyncSender<()>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    /// A checkpointer for the database at `path`; its thread starts on the first wake-up.
    pub(super) fn new(path: PathBuf, busy_timeout: Duration, every_bytes: u64) -> Checkpointer {
        Checkpointer {
            path,
            busy_timeout,
            every_bytes,
            since_wake: AtomicU64::new(0),
            thread: Mutex::new(None),
        }
    }

    /// Called after a commit of about `row_bytes`: past `every_bytes` since the last
    /// wake-up, the thread checkpoints (never blocks the caller).
    pub(super) fn committed(&self, row_bytes: u64) {
        let since = self.since_wake.fetch_add(row_bytes, Ordering::Relaxed) + row_bytes;
        if since < self.every_bytes {
            return;
        }
        self.since_wake.store(0, Ordering::Relaxed);
        let mut thread = self.thread.lock();
        let started = thread.get_or_insert_with(|| {
            self.start().map_err(|err| {
                tracing::warn!(%err, "no sqlite checkpoint thread; the writer checkpoints alone");
            })
        });
        if let Ok(running) = started {
            match running.wake.try_send(()) {
                // Full: a wake-up is pending, and its checkpoint will copy this commit too.
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!(
                        "the sqlite checkpoint thread stopped; the writer checkpoints alone"
                    );
                    *thread = Some(Err(()));
                }
            }
        }
    }

    fn start(&self) -> std::io::Result<Thread> {
        let (wake, woken) = mpsc::sync_channel(1);
        let (path, busy_timeout) = (self.path.clone(), self.busy_timeout);
        let handle = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                crate::arenas::bind_this_thread();
                run(&path, busy_timeout, &woken)
            })?;
        Ok(Thread { wake, handle })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(Ok(Thread { wake, handle })) = self.thread.get_mut().take() {
            drop(wake);
            if handle.join().is_err() {
                tracing::error!("the sqlite checkpoint thread panicked");
            }
        }
    }
}

fn run(path: &std::path::Path, busy_timeout: Duration, woken: &Receiver<()>) {
    let mut conn: Option<Connection> = None;
    let mut failures = 0u64;
    while woken.recv().is_ok() {
        let result = match &mut conn {
            Some(c) => checkpoint(c),
            None => Connection::open(path).and_then(|c| {
                c.busy_timeout(busy_timeout)?;
                checkpoint(&c)?;
                conn = Some(c);
                Ok(())
            }),
        };
        if let Err(err) = result {
            failures += 1;
            // A connection that failed may be stale (file replaced, permissions): reopen.
            conn = None;
            if failures.is_power_of_two() {
                tracing::warn!(%err, failures, "sqlite checkpoint failed; the writer's own checkpoint bounds the WAL meanwhile");
            }
        }
    }
}

/// One `PASSIVE` checkpoint: copies what no reader still needs, never waits for the writer.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// About how many bytes of rows `batch` writes (its columns' text; a fixed allowance for the
/// rest of each row). Only paces the checkpoints.
pub(super) fn row_bytes(batch: &SinkBatch) -> u64 {
    const ROW: usize = 160;
    let events: usize = batch
        .events
        .iter()
        .map(|e| e.data.len() + e.envelope.len() + ROW)
        .sum();
    let malformed: usize = batch.malformed.iter().map(|m| m.raw.len() + ROW).sum();
    (events + malformed + (batch.spans.len() + batch.exceptions.len() + batch.traces.len()) * ROW)
        as u64
}

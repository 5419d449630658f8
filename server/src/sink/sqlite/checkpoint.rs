//! WAL checkpoints off the writer's path.
//!
//! In WAL mode a commit appends the batch's pages to `store.sqlite-wal` and fsyncs that file
//! (`synchronous=FULL`): that is what makes the batch durable. A *checkpoint* later copies those
//! pages into the database file so the WAL can start over. SQLite's automatic checkpoint runs
//! inside the committing `sqlite3_step`, on the writer's thread; with 10k-event batches it ran
//! after every commit and cost about a tenth of the write (docs/BENCHMARKS.md, "Embedded store
//! drain"). Here the writer connection has `wal_autocheckpoint = 0`, and after each commit it
//! pokes the thread `sqlite-checkpoint`, which runs a `PASSIVE` checkpoint on a connection of
//! its own while the writer goes on with the next batch.
//!
//! The WAL restarts from its beginning only when a write transaction begins after a checkpoint
//! that copied every frame. A writer that never pauses always begins while the background
//! checkpoint is one batch behind, so the WAL would grow for as long as the drain lasts.
//! [`WAL_RESTART_BYTES`] bounds it: past that size the writer itself runs a `RESTART`
//! checkpoint after its commit (waiting, within the busy timeout, for the background one and for
//! readers), which leaves one batch to copy and lets the next transaction rewind the WAL.
//!
//! Durability does not depend on any of this: a committed batch is in the fsynced WAL, and
//! SQLite replays the WAL on open after a crash. A failed checkpoint is logged and retried on
//! the next poke; it never fails a write.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// Past this WAL size the writer checkpoints itself so that the WAL rewinds (see the module
/// docs). 128 MiB is about a dozen 10k-event batches.
pub(super) const WAL_RESTART_BYTES: u64 = 128 << 20;

/// The background checkpointer of one store. Dropping it stops the thread (after the
/// checkpoint in progress, if any).
pub(super) struct Checkpointer {
    poke: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    wal_path: PathBuf,
}

impl Checkpointer {
    /// Starts the thread for the database at `path`.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> std::io::Result<Checkpointer> {
        // One pending poke is enough: a checkpoint copies everything committed when it starts.
        let (poke, pokes) = mpsc::sync_channel(1);
        let db = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || run(&db, busy_timeout, &pokes))?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        Ok(Checkpointer {
            poke: Some(poke),
            thread: Some(thread),
            wal_path: wal_path.into(),
        })
    }

    /// Called by the writer after each commit, on its connection.
    pub(super) fn committed(&self, writer: &Connection) {
        let wal_bytes = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if wal_bytes >= WAL_RESTART_BYTES {
            match checkpoint(writer, "RESTART") {
                Ok((false, _, _)) => {}
                Ok((true, log, done)) => {
                    tracing::debug!(wal_bytes, log, done, "sqlite: WAL restart checkpoint blocked by a reader; retried after the next write");
                }
                Err(error) => tracing::warn!(%error, wal_bytes, "sqlite: WAL checkpoint failed"),
            }
            return;
        }
        if let Some(poke) = &self.poke {
            match poke.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::error!(
                        "sqlite: the checkpoint thread is gone; checkpointing on the writer"
                    );
                    let _ = checkpoint(writer, "PASSIVE");
                }
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.poke.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("sqlite: the checkpoint thread panicked");
            }
        }
    }
}

/// `PRAGMA wal_checkpoint(mode)`: (blocked, WAL frames, frames copied).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(bool, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
    })
}

fn run(path: &Path, busy_timeout: Duration, pokes: &Receiver<()>) {
    let mut conn: Option<Connection> = None;
    while pokes.recv().is_ok() {
        if conn.is_none() {
            conn = Connection::open(path)
                .and_then(|c| c.busy_timeout(busy_timeout).map(|()| c))
                .map_err(|error| tracing::warn!(%error, "sqlite: checkpoint connection failed"))
                .ok();
        }
        let Some(c) = &conn else { continue };
        if let Err(error) = checkpoint(c, "PASSIVE") {
            // A read-only or vanished file: open afresh on the next poke.
            tracing::warn!(%error, "sqlite: background WAL checkpoint failed");
            conn = None;
        }
    }
}

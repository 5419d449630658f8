//! The group-commit writer thread: drains every queued append, writes them, fsyncs once,
//! answers them all.
//!
//! Failures never lie. With `fsync = "always"` an append's frames are *staged*: written, but
//! not counted anywhere (LSN, index, segment size, what readers may see) until the group's
//! fdatasync succeeds. Then:
//!
//! - a failed write cuts the file back to the end of the last whole frame and refuses that
//!   append; the staged appends before it go on to the group's fsync;
//! - a failed fdatasync (or the fsync of a segment being rolled over) refuses every staged
//!   append, cuts their frames off (`truncate` to the last acknowledged frame, then `fsync`, so
//!   the cut itself is durable) and reuses their LSNs: no reader sees them now, no restart finds
//!   them, and the agent's retry is the only copy;
//! - when that cut fails too, nothing can be promised about the file any more: the writer stops.
//!   It refuses every later append ([`SpoolError::Stopped`], ingest answers 503 and `/readyz`
//!   says why), readers go on with what was acknowledged, and a durable note (`cut`, written by
//!   `recovery.rs`) makes the next open cut the refused frames before reading anything. If even
//!   the note cannot be written, the error log gives the file and length to cut by hand.
//!
//! With `interval` or `never`, an append is answered after its write, so a failed write is
//! handled the same way, but a failed timer fsync cannot be undone (the records were already
//! acknowledged): the writer stops, and `/readyz` says that records acknowledged since the last
//! fsync may not be durable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{self, segment_name};
use super::io::{copy_error, SegmentFile, SegmentIo};
use super::{
    chain, io_err, recovery, sync_dir, FsyncPolicy, Segment, Shared, SpoolConfig, SpoolError,
    SpoolEvent, SpoolOp,
};

/// A message to the writer.
pub(crate) enum Request {
    /// Append records; answered with their LSN range.
    Append {
        records: Vec<Vec<u8>>,
        reply: oneshot::Sender<Result<(u64, u64), SpoolError>>,
    },
    /// Fsync now (the interval timer).
    Sync,
    /// Fsync and stop.
    Close { reply: std::sync::mpsc::Sender<()> },
}

/// The answers of one group, in request order.
type Replies = Vec<(
    oneshot::Sender<Result<(u64, u64), SpoolError>>,
    Result<(u64, u64), SpoolError>,
)>;

/// A point in the active segment: through which LSN, at which length.
#[derive(Debug, Clone, Copy)]
struct Mark {
    lsn: u64,
    len: u64,
}

/// An append written but not yet answered (waiting for the group's fsync).
struct Staged {
    /// Its place in the group's replies.
    reply: usize,
    first: u64,
    last: u64,
    appended_ms: u64,
    /// Events per record (the index).
    events: Vec<u64>,
    bytes: u64,
}

pub(crate) struct Writer {
    config: SpoolConfig,
    shared: Arc<Mutex<Shared>>,
    visible: watch::Sender<u64>,
    io: Arc<dyn SegmentIo>,
    file: Option<Box<dyn SegmentFile>>,
    /// The active segment's path.
    path: PathBuf,
    /// Through the last frame answered with success (what readers may see).
    durable: Mark,
    /// Through the last whole frame written.
    written: Mark,
    staged: Vec<Staged>,
    /// Acknowledged but not yet fsync'd (`interval` / `never`).
    unsynced_records: usize,
    unsynced_bytes: usize,
    /// Why the writer stopped, once it has.
    stopped: Option<String>,
}

impl Writer {
    pub(crate) fn new(
        config: SpoolConfig,
        shared: Arc<Mutex<Shared>>,
        visible: watch::Sender<u64>,
    ) -> Result<Writer, SpoolError> {
        let io = config.io.clone();
        let (file, path, mark) = {
            let s = shared.lock();
            match s.segments.last() {
                Some(seg) => (
                    Some(
                        io.open_append(&seg.path)
                            .map_err(io_err(SpoolOp::Open, &seg.path))?,
                    ),
                    seg.path.clone(),
                    Mark {
                        lsn: s.last_lsn,
                        len: seg.bytes,
                    },
                ),
                None => (
                    None,
                    PathBuf::new(),
                    Mark {
                        lsn: s.last_lsn,
                        len: 0,
                    },
                ),
            }
        };
        Ok(Writer {
            config,
            shared,
            visible,
            io,
            file,
            path,
            durable: mark,
            written: mark,
            staged: Vec::new(),
            unsynced_records: 0,
            unsynced_bytes: 0,
            stopped: None,
        })
    }

    fn always(&self) -> bool {
        self.config.fsync == FsyncPolicy::Always
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            let mut replies: Replies = Vec::new();
            let mut sync_asked = false;
            let mut close = None;
            for request in group {
                match request {
                    Request::Append { records, reply } => {
                        let result = self.append(&records, &mut replies);
                        replies.push((reply, result));
                    }
                    Request::Sync => sync_asked = true,
                    Request::Close { reply } => close = Some(reply),
                }
            }
            if self.always() {
                self.settle(&mut replies);
            } else if sync_asked || close.is_some() {
                self.sync_acknowledged();
            }
            for (reply, result) in replies {
                let _ = reply.send(result);
            }
            if let Some(reply) = close {
                let _ = reply.send(());
                return;
            }
        }
        if !self.always() {
            self.sync_acknowledged();
        }
    }

    /// Writes one append's frames (staged until the group's fsync under `always`).
    fn append(
        &mut self,
        records: &[Vec<u8>],
        replies: &mut Replies,
    ) -> Result<(u64, u64), SpoolError> {
        if let Some(reason) = &self.stopped {
            return Err(SpoolError::Stopped {
                reason: reason.clone(),
            });
        }
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let size: u64 = records
            .iter()
            .map(|r| (r.len() + frame::HEADER) as u64)
            .sum();
        {
            let staged: u64 = self.staged.iter().map(|s| s.bytes).sum();
            let s = self.shared.lock();
            if s.bytes_on_disk + staged + size > s.quota_bytes {
                return Err(SpoolError::QuotaExceeded {
                    used: s.bytes_on_disk + staged,
                    quota: s.quota_bytes,
                });
            }
        }
        let magic = frame::MAGIC.len() as u64;
        let needs_new = self.file.is_none()
            || (self.written.len > magic && self.written.len + size > self.config.segment_bytes);
        if needs_new {
            self.roll(replies)?;
        }
        // After the roll: it may have refused (and cut) the staged appends before this one.
        let first = self.written.lsn + 1;
        let mut buf = Vec::with_capacity(size as usize);
        for (i, record) in records.iter().enumerate() {
            frame::encode(first + i as u64, now, record, &mut buf);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(SpoolError::Closed);
        };
        if let Err(source) = file.write_all(&buf) {
            let error = SpoolError::Io {
                op: SpoolOp::Write,
                path: self.path.clone(),
                source,
            };
            self.config.report(SpoolOp::Write, &error);
            // Leave no partial frame behind: cut back to the last whole one, so whatever is
            // written next follows a whole frame.
            if let Err(cut) = file.truncate(self.written.len) {
                let cut = SpoolError::Io {
                    op: SpoolOp::Truncate,
                    path: self.path.clone(),
                    source: cut,
                };
                self.config.report(SpoolOp::Truncate, &cut);
                self.stop(format!("{}; then {}", chain(&error), chain(&cut)), replies);
            } else {
                self.note_failure(&error);
            }
            return Err(error);
        }
        let last = first + records.len() as u64 - 1;
        self.written = Mark {
            lsn: last,
            len: self.written.len + buf.len() as u64,
        };
        self.staged.push(Staged {
            reply: replies.len(),
            first,
            last,
            appended_ms: now,
            events: records.iter().map(|r| super::record_events(r)).collect(),
            bytes: buf.len() as u64,
        });
        if !self.always() {
            // Answered after the write: acknowledged now, fsync'd by the timer.
            self.unsynced_records += records.len();
            self.unsynced_bytes += buf.len();
            self.commit();
        }
        Ok((first, last))
    }

    /// `always`: fsyncs the staged appends, then counts them (success) or refuses them and
    /// cuts their frames off (failure).
    fn settle(&mut self, replies: &mut Replies) {
        if self.staged.is_empty() {
            return;
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let records = self
            .staged
            .iter()
            .map(|s| (s.last + 1 - s.first) as usize)
            .sum();
        let bytes = self.staged.iter().map(|s| s.bytes as usize).sum();
        let result = timed_sync(file.as_mut(), &self.config, records, bytes);
        match result {
            Ok(()) => self.commit(),
            Err(source) => {
                let error = SpoolError::Io {
                    op: SpoolOp::Sync,
                    path: self.path.clone(),
                    source,
                };
                self.config.report(SpoolOp::Sync, &error);
                self.void(&error, replies);
            }
        }
    }

    /// Counts the staged appends: LSN, segment size, index, and what readers may see.
    fn commit(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        // After the group's fsync (`always`), or the write (`interval`): the records are as
        // durable as the 202 says from now on.
        let durable_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        {
            let mut s = self.shared.lock();
            for staged in self.staged.drain(..) {
                if let Some(seg) = s.segments.last_mut() {
                    seg.bytes += staged.bytes;
                    seg.last_lsn = staged.last;
                }
                s.bytes_on_disk += staged.bytes;
                s.last_lsn = staged.last;
                for (i, events) in staged.events.iter().enumerate() {
                    s.push_index(
                        staged.first + i as u64,
                        staged.appended_ms,
                        durable_ms.max(staged.appended_ms),
                        *events,
                    );
                }
            }
        }
        self.durable = self.written;
        let _ = self.visible.send(self.durable.lsn);
    }

    /// Refuses every staged append with `error` and cuts their frames off the file, durably;
    /// stops the writer if the cut fails.
    fn void(&mut self, error: &SpoolError, replies: &mut Replies) {
        let SpoolError::Io { op, source, .. } = error else {
            return;
        };
        for staged in &self.staged {
            if let Some((_, result)) = replies.get_mut(staged.reply) {
                *result = Err(SpoolError::Io {
                    op: *op,
                    path: self.path.clone(),
                    source: copy_error(source),
                });
            }
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let to = self.durable;
        match file.truncate(to.len).and_then(|()| file.sync_all()) {
            Ok(()) => {
                self.staged.clear();
                self.written = to;
                self.note_failure(error);
            }
            Err(source) => {
                let cut = SpoolError::Io {
                    op: SpoolOp::Truncate,
                    path: self.path.clone(),
                    source,
                };
                self.config.report(SpoolOp::Truncate, &cut);
                self.stop(format!("{}; then {}", chain(error), chain(&cut)), replies);
            }
        }
    }

    /// A failure that was undone: logged, and shown by `/readyz` for a while.
    fn note_failure(&self, error: &SpoolError) {
        tracing::error!(
            error = %chain(error),
            kind = error.kind(),
            "spool write failed; the appends it touched were refused and their frames cut off"
        );
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        self.shared.lock().health.last_write_error = Some((now, chain(error)));
    }

    /// Stops the writer: refuses the staged appends and every later one, and leaves a note so
    /// the next open cuts the refused frames.
    fn stop(&mut self, reason: String, replies: &mut Replies) {
        for staged in self.staged.drain(..) {
            // Those already refused keep their own cause.
            if let Some((_, result @ Ok(_))) = replies.get_mut(staged.reply) {
                *result = Err(SpoolError::Stopped {
                    reason: reason.clone(),
                });
            }
        }
        self.written = self.durable;
        let dir = self.shared.lock().dir.clone();
        let note = recovery::write_cut_note(&dir, &self.path, self.durable.len, self.durable.lsn);
        match note {
            Ok(()) => tracing::error!(
                %reason,
                file = %self.path.display(),
                keep_bytes = self.durable.len,
                "spool writer stopped: ingest answers 503 until a restart; the next start cuts the refused records off"
            ),
            Err(note) => {
                self.config.report(SpoolOp::Checkpoint, &note);
                tracing::error!(
                    %reason,
                    note_error = %chain(&note),
                    file = %self.path.display(),
                    keep_bytes = self.durable.len,
                    "spool writer stopped and could not leave a cut note: before restarting, run `truncate -s {} {}` so refused records are not stored",
                    self.durable.len,
                    self.path.display()
                );
            }
        }
        self.shared.lock().health.writer_stopped = Some(reason.clone());
        self.stopped = Some(reason);
    }

    /// `interval` / `never`: fsyncs what was acknowledged; a failure stops the writer (the
    /// records were already acknowledged, so they cannot be refused any more).
    fn sync_acknowledged(&mut self) {
        if self.unsynced_records == 0 || self.stopped.is_some() {
            return;
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let result = timed_sync(
            file.as_mut(),
            &self.config,
            self.unsynced_records,
            self.unsynced_bytes,
        );
        self.unsynced_records = 0;
        self.unsynced_bytes = 0;
        if let Err(source) = result {
            let error = SpoolError::Io {
                op: SpoolOp::Sync,
                path: self.path.clone(),
                source,
            };
            self.config.report(SpoolOp::Sync, &error);
            self.stop(
                format!(
                    "{}; records acknowledged since the last fsync may not be durable",
                    chain(&error)
                ),
                &mut Vec::new(),
            );
        }
    }

    /// Starts a new segment for the next record (after making the staged appends of the
    /// current one durable, or refusing them).
    fn roll(&mut self, replies: &mut Replies) -> Result<(), SpoolError> {
        if self.always() {
            self.settle(replies);
        } else {
            self.sync_acknowledged();
        }
        if let Some(reason) = &self.stopped {
            return Err(SpoolError::Stopped {
                reason: reason.clone(),
            });
        }
        let first_lsn = self.written.lsn + 1;
        let dir = self.shared.lock().dir.clone();
        let path = dir.join(segment_name(first_lsn));
        let created = self.io.create(&path).and_then(|mut file| {
            file.write_all(frame::MAGIC)?;
            file.sync_all()?;
            Ok(file)
        });
        let file = match created.map_err(io_err(SpoolOp::Create, &path)) {
            Ok(file) => file,
            Err(error) => {
                self.config.report(SpoolOp::Create, &error);
                // Best effort: a leftover short file is repaired at the next open anyway.
                let _ = std::fs::remove_file(&path);
                return Err(error);
            }
        };
        sync_dir(&dir).inspect_err(|e| self.config.report(SpoolOp::Create, e))?;
        let magic = frame::MAGIC.len() as u64;
        let mut s = self.shared.lock();
        s.bytes_on_disk += magic;
        s.segments.push(Segment {
            first_lsn,
            last_lsn: first_lsn - 1,
            path: path.clone(),
            bytes: magic,
        });
        drop(s);
        self.file = Some(file);
        self.path = path;
        self.durable = Mark {
            lsn: first_lsn - 1,
            len: magic,
        };
        self.written = self.durable;
        Ok(())
    }
}

/// One `fdatasync` of the active segment, reported to the spool's event hook with its duration.
fn timed_sync(
    file: &mut dyn SegmentFile,
    config: &SpoolConfig,
    records: usize,
    bytes: usize,
) -> std::io::Result<()> {
    let started = Instant::now();
    let result = file.sync_data();
    if let Some(hook) = &config.on_event {
        hook(SpoolEvent::Fsync {
            micros: started.elapsed().as_micros() as u64,
            records,
            bytes,
        });
    }
    result
}

//! The group-commit writer thread: drains every queued append, writes them, fsyncs once,
//! answers them all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{self, segment_name};
use super::{io_err, sync_dir, FsyncPolicy, Segment, Shared, SpoolConfig, SpoolError, SpoolEvent};

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

pub(crate) struct Writer {
    config: SpoolConfig,
    shared: Arc<Mutex<Shared>>,
    visible: watch::Sender<u64>,
    file: Option<File>,
    unsynced_records: usize,
    unsynced_bytes: usize,
    written_lsn: u64,
}

impl Writer {
    pub(crate) fn new(
        config: SpoolConfig,
        shared: Arc<Mutex<Shared>>,
        visible: watch::Sender<u64>,
    ) -> Result<Writer, SpoolError> {
        let (file, written_lsn) = {
            let s = shared.lock();
            let file = match s.segments.last() {
                Some(seg) => Some(
                    OpenOptions::new()
                        .append(true)
                        .open(&seg.path)
                        .map_err(io_err(&seg.path))?,
                ),
                None => None,
            };
            (file, s.last_lsn)
        };
        Ok(Writer {
            config,
            shared,
            visible,
            file,
            unsynced_records: 0,
            unsynced_bytes: 0,
            written_lsn,
        })
    }

    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while let Ok(more) = rx.try_recv() {
                group.push(more);
            }
            let mut replies = Vec::new();
            let mut sync_asked = false;
            let mut close = None;
            for request in group {
                match request {
                    Request::Append { records, reply } => {
                        let result = self.write(&records);
                        replies.push((reply, result));
                    }
                    Request::Sync => sync_asked = true,
                    Request::Close { reply } => close = Some(reply),
                }
            }
            let must_sync = match self.config.fsync {
                FsyncPolicy::Always => !replies.is_empty() || close.is_some(),
                FsyncPolicy::Interval { .. } => sync_asked || close.is_some(),
                FsyncPolicy::Never => close.is_some(),
            };
            let sync_result = if must_sync { self.sync() } else { Ok(()) };
            if self.config.fsync != FsyncPolicy::Always || sync_result.is_ok() {
                let _ = self.visible.send(self.written_lsn);
            }
            for (reply, result) in replies {
                let result = match (&sync_result, result) {
                    (Err(e), Ok(_)) if self.config.fsync == FsyncPolicy::Always => {
                        Err(SpoolError::Io {
                            path: self.shared.lock().dir.clone(),
                            source: std::io::Error::other(e.to_string()),
                        })
                    }
                    (_, r) => r,
                };
                let _ = reply.send(result);
            }
            if let Some(reply) = close {
                let _ = reply.send(());
                return;
            }
        }
        let _ = self.sync();
    }

    fn write(&mut self, records: &[Vec<u8>]) -> Result<(u64, u64), SpoolError> {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let size: u64 = records
            .iter()
            .map(|r| (r.len() + frame::HEADER) as u64)
            .sum();
        {
            let s = self.shared.lock();
            if s.bytes_on_disk + size > s.quota_bytes {
                return Err(SpoolError::QuotaExceeded {
                    used: s.bytes_on_disk,
                    quota: s.quota_bytes,
                });
            }
        }
        let first = self.written_lsn + 1;
        let active_bytes = self.shared.lock().segments.last().map(|s| s.bytes);
        let needs_new = match active_bytes {
            None => true,
            Some(bytes) => bytes > 8 && bytes + size > self.config.segment_bytes,
        };
        if needs_new || self.file.is_none() {
            self.roll(first)?;
        }
        let mut buf = Vec::with_capacity(size as usize);
        for (i, record) in records.iter().enumerate() {
            frame::encode(first + i as u64, now, record, &mut buf);
        }
        let path = self
            .shared
            .lock()
            .segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        let file = self.file.as_mut().ok_or(SpoolError::Closed)?;
        if let Err(source) = file.write_all(&buf) {
            // Leave no partial frame behind: cut back to the last whole one.
            let len = self.shared.lock().segments.last().map_or(8, |s| s.bytes);
            let _ = file.set_len(len);
            return Err(SpoolError::Io { path, source });
        }
        let last = first + records.len() as u64 - 1;
        self.written_lsn = last;
        self.unsynced_records += records.len();
        self.unsynced_bytes += buf.len();
        let mut s = self.shared.lock();
        if let Some(seg) = s.segments.last_mut() {
            seg.bytes += buf.len() as u64;
            seg.last_lsn = last;
        }
        s.bytes_on_disk += buf.len() as u64;
        s.last_lsn = last;
        for (i, record) in records.iter().enumerate() {
            s.push_index(first + i as u64, now, super::record_events(record));
        }
        Ok((first, last))
    }

    /// Starts a new segment whose first record will be `first_lsn`.
    fn roll(&mut self, first_lsn: u64) -> Result<(), SpoolError> {
        if self.file.is_some() {
            self.sync()?;
        }
        let dir = self.shared.lock().dir.clone();
        let path = dir.join(segment_name(first_lsn));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(frame::MAGIC).map_err(io_err(&path))?;
        file.sync_all().map_err(io_err(&path))?;
        sync_dir(&dir)?;
        let mut s = self.shared.lock();
        s.bytes_on_disk += 8;
        s.segments.push(Segment {
            first_lsn,
            last_lsn: first_lsn - 1,
            path,
            bytes: 8,
        });
        drop(s);
        self.file = Some(file);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        if self.unsynced_records == 0 {
            return Ok(());
        }
        let Some(file) = self.file.as_ref() else {
            return Ok(());
        };
        let started = Instant::now();
        let result = file.sync_data();
        if let Some(hook) = &self.config.on_event {
            hook(SpoolEvent::Fsync {
                micros: started.elapsed().as_micros() as u64,
                records: self.unsynced_records,
                bytes: self.unsynced_bytes,
            });
        }
        self.unsynced_records = 0;
        self.unsynced_bytes = 0;
        let dir = self.shared.lock().dir.clone();
        result.map_err(io_err(&dir))
    }
}

//! The spool: a segmented, checksummed write-ahead log with group commit.
//!
//! In: opaque records (one per ingest request) from [`Spool::append`]. Out: the same records,
//! in order, to named consumers ([`Spool::reader`]), until each consumer's durable checkpoint
//! ([`Spool::commit_checkpoint`]) lets whole segments be deleted.
//!
//! Durability: one dedicated writer thread owns the active segment. It takes every append
//! queued at that moment, writes them, and issues ONE `fdatasync` for the whole group before
//! answering each caller (`fsync = "always"`): concurrent requests share an fsync. With
//! `interval` the answer follows the write and a timer fsyncs; with `never` the OS decides.
//! Readers only see fsync'd records under `always`.
//!
//! Failures: an append that would pass `quota_bytes` is refused whole
//! ([`SpoolError::QuotaExceeded`] → 503), so is a record over [`MAX_RECORD_BYTES`]
//! ([`SpoolError::TooLarge`]). A failed write, truncate or fsync never lies (see `writer.rs`):
//! the appends it touches are refused and their frames are cut off the file before anything
//! else is written, so a refused record is never read, and no acknowledged frame ever follows a
//! torn one; when the cut itself fails the writer stops ([`SpoolError::Stopped`], `/readyz`
//! says why, reads go on) and leaves a durable note that the next open applies. At open, a torn
//! or corrupt tail of the last segment (a crash mid-write), or a last segment shorter than its
//! magic, is cut off and reported, never fatal; damage inside an older segment is an error
//! naming the file and offset. An unreadable checkpoint is a warning and a metric, and the
//! consumer resumes from its last write intent (see `recovery.rs`).
//!
//! Measures: fsync latency, group size and failed operations by kind through
//! [`SpoolConfig::on_event`]; bytes, segments and pending records through [`Spool::status`];
//! what is wrong now through [`Spool::health`].

mod frame;
mod io;
mod recovery;
mod tools;
mod writer;

pub use io::kind_label;
pub use tools::{dump, status_offline, verify, VerifyReport};

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use frame::{list_segments, scan, End};
use writer::{Request, Writer};

/// When the spool fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before answering an append (shared by the group).
    Always,
    /// Every `ms` milliseconds; appends are answered after the write.
    Interval {
        /// Period.
        ms: u64,
    },
    /// Never explicitly.
    Never,
}

/// Something the spool reports for metrics.
#[derive(Debug, Clone, Copy)]
pub enum SpoolEvent {
    /// One fdatasync.
    Fsync {
        /// Its duration.
        micros: u64,
        /// Records it made durable.
        records: usize,
        /// Bytes it made durable.
        bytes: usize,
    },
    /// A failed operation (the `baddybugs_ingest_spool_errors_total{op,kind}` metric).
    Error {
        /// What failed.
        op: SpoolOp,
        /// A bounded name of the cause ([`SpoolError::kind`]).
        kind: &'static str,
    },
}

/// A spool operation, as named in errors, logs and the error metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpoolOp {
    /// Opening the spool or a segment.
    Open,
    /// Creating a segment.
    Create,
    /// Appending frames.
    Write,
    /// Cutting refused frames off a segment.
    Truncate,
    /// fdatasync / fsync.
    Sync,
    /// Reading records for a consumer.
    Read,
    /// Reading or writing a checkpoint or write intent.
    Checkpoint,
    /// Deleting reclaimed segments.
    Reclaim,
}

impl SpoolOp {
    /// Every operation, in label order.
    pub const ALL: [SpoolOp; 8] = [
        SpoolOp::Open,
        SpoolOp::Create,
        SpoolOp::Write,
        SpoolOp::Truncate,
        SpoolOp::Sync,
        SpoolOp::Read,
        SpoolOp::Checkpoint,
        SpoolOp::Reclaim,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            SpoolOp::Open => "open",
            SpoolOp::Create => "create",
            SpoolOp::Write => "write",
            SpoolOp::Truncate => "truncate",
            SpoolOp::Sync => "sync",
            SpoolOp::Read => "read",
            SpoolOp::Checkpoint => "checkpoint",
            SpoolOp::Reclaim => "reclaim",
        }
    }
}

impl std::fmt::Display for SpoolOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest record the spool takes: 1 GiB - 1 byte. A frame's length is checked against it
/// when reading, so a larger record would be acknowledged and then read back as damage; it is
/// refused at append instead ([`SpoolError::TooLarge`]).
pub const MAX_RECORD_BYTES: usize = frame::MAX_RECORD;

/// Callback for [`SpoolEvent`]s.
pub type EventHook = Arc<dyn Fn(SpoolEvent) + Send + Sync>;

/// Spool settings.
#[derive(Clone)]
pub struct SpoolConfig {
    /// The data directory; the spool lives in `<data_dir>/spool`.
    pub data_dir: PathBuf,
    /// Segment size.
    pub segment_bytes: u64,
    /// Most bytes on disk.
    pub quota_bytes: u64,
    /// Fsync policy.
    pub fsync: FsyncPolicy,
    /// Metrics hook.
    pub on_event: Option<EventHook>,
    /// The consumers that read the spool (each has a checkpoint; segments are kept until every
    /// one of them is past them).
    pub consumers: Vec<String>,
    /// The writer's file operations (tests substitute failing ones).
    pub(crate) io: Arc<dyn io::SegmentIo>,
}

impl SpoolConfig {
    /// Defaults for a data directory read by the named consumers.
    pub fn new(data_dir: PathBuf, consumers: &[&str]) -> SpoolConfig {
        SpoolConfig {
            data_dir,
            segment_bytes: 64 << 20,
            quota_bytes: 4 << 30,
            fsync: FsyncPolicy::Always,
            on_event: None,
            consumers: consumers.iter().map(|c| (*c).to_owned()).collect(),
            io: Arc::new(io::RealIo),
        }
    }

    /// Tells the metrics hook about a failure.
    pub(crate) fn report(&self, op: SpoolOp, error: &SpoolError) {
        if let Some(hook) = &self.on_event {
            hook(SpoolEvent::Error {
                op,
                kind: error.kind(),
            });
        }
    }
}

/// Why a spool operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// An I/O error on a file; `kind` keeps ENOSPC apart from EIO ([`kind_label`]).
    #[error("spool {op} failed on {path} ({kind})", kind = kind_label(source))]
    Io {
        /// What was being done.
        op: SpoolOp,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Damage that cannot be repaired automatically.
    #[error("spool file {file} is damaged at offset {offset}: {reason} (run `baddybugs-ingest spool verify`)")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Where.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// The append would pass the quota.
    #[error("spool quota reached: {used} of {quota} bytes used")]
    QuotaExceeded {
        /// Bytes on disk.
        used: u64,
        /// The quota.
        quota: u64,
    },
    /// A record larger than [`MAX_RECORD_BYTES`]: it could never be read back.
    #[error("a spool record of {bytes} bytes is over the largest the spool takes ({max} bytes)")]
    TooLarge {
        /// The record's size.
        bytes: u64,
        /// [`MAX_RECORD_BYTES`].
        max: u64,
    },
    /// The writer stopped after a failure it could not undo; every append is refused until a
    /// restart (reads of what was acknowledged go on).
    #[error("the spool writer has stopped: {reason}")]
    Stopped {
        /// What failed, and what could not be undone.
        reason: String,
    },
    /// The spool was closed.
    #[error("the spool is closed")]
    Closed,
}

impl SpoolError {
    /// A bounded name of the cause: an io kind ([`kind_label`]) or the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            SpoolError::Io { source, .. } => kind_label(source),
            SpoolError::Corrupt { .. } => "corrupt",
            SpoolError::QuotaExceeded { .. } => "quota_exceeded",
            SpoolError::TooLarge { .. } => "too_large",
            SpoolError::Stopped { .. } => "stopped",
            SpoolError::Closed => "closed",
        }
    }
}

/// The error and its sources, `: `-separated (a log field).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

pub(crate) fn io_err(op: SpoolOp, path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct SpoolEntry {
    /// Sequence number.
    pub lsn: u64,
    /// When it was appended, epoch ms.
    pub appended_unix_ms: u64,
    /// When it was durable (its group's fsync returned; with `fsync = interval`, when it was
    /// written), epoch ms: the wait for the disk ends there. Records found at start say when
    /// they were appended.
    pub durable_unix_ms: u64,
    /// The record.
    pub payload: Vec<u8>,
}

/// What open found.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    /// Segment files.
    pub segments: usize,
    /// Records on disk.
    pub records: u64,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
    /// The last LSN.
    pub last_lsn: u64,
    /// Records not yet consumed, per consumer.
    pub pending: Vec<(String, u64)>,
}

/// One consumer's progress.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    /// Name.
    pub name: String,
    /// Last LSN it made durable elsewhere.
    pub checkpoint_lsn: u64,
    /// Records after it.
    pub pending_records: u64,
    /// Events in those records (each record is one request's accepted events).
    pub pending_events: u64,
    /// Append time of the oldest of those.
    pub oldest_pending_unix_ms: Option<u64>,
}

/// The spool's state.
#[derive(Debug, Clone, Serialize)]
pub struct SpoolStatus {
    /// Segment files.
    pub segments: usize,
    /// Bytes on disk.
    pub bytes_on_disk: u64,
    /// The quota.
    pub quota_bytes: u64,
    /// The last LSN written.
    pub last_lsn: u64,
    /// Consumers.
    pub consumers: Vec<ConsumerStatus>,
}

/// What is wrong with the spool now (`/readyz` reads it; cheap: no file access).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SpoolHealth {
    /// Set once the writer stopped: why. Every append is refused until a restart.
    pub writer_stopped: Option<String>,
    /// The last write failure the writer undid (its appends were refused and their frames cut
    /// off), with its time in epoch ms.
    pub last_write_error: Option<(u64, String)>,
    /// The last read error, while reads keep failing (cleared by a successful read).
    pub read_error: Option<String>,
    /// Consumers whose checkpoint file could not be read at open.
    pub unreadable_checkpoints: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub first_lsn: u64,
    pub last_lsn: u64,
    pub path: PathBuf,
    pub bytes: u64,
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub quota_bytes: u64,
    pub segments: Vec<Segment>,
    pub bytes_on_disk: u64,
    pub last_lsn: u64,
    pub checkpoints: HashMap<String, u64>,
    /// Every record after the smallest checkpoint, in LSN order with no gap.
    pub index: VecDeque<IndexEntry>,
    /// Events in every record indexed so far (the running total the entries count from).
    pub indexed_events: u64,
    /// What is wrong now.
    pub health: SpoolHealth,
}

/// What the spool remembers of one record it still holds for a consumer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    pub lsn: u64,
    pub appended_ms: u64,
    /// When it was durable (see [`SpoolEntry::durable_unix_ms`]), epoch ms.
    pub durable_ms: u64,
    /// `Shared::indexed_events` before this record: pending events are a subtraction away.
    pub events_before: u64,
}

/// Events in a spool record (its header's count; 0 for a record without one).
pub(crate) fn record_events(payload: &[u8]) -> u64 {
    crate::record::event_count(payload).unwrap_or(0) as u64
}

impl Shared {
    /// The first indexed record at or after `lsn` (binary search: the index is in LSN order).
    fn entry(&self, lsn: u64) -> Option<&IndexEntry> {
        let at = self.index.partition_point(|e| e.lsn < lsn);
        self.index.get(at)
    }

    /// Adds a record to the index.
    pub(crate) fn push_index(&mut self, lsn: u64, appended_ms: u64, durable_ms: u64, events: u64) {
        self.index.push_back(IndexEntry {
            lsn,
            appended_ms,
            durable_ms,
            events_before: self.indexed_events,
        });
        self.indexed_events += events;
    }

    fn min_checkpoint(&self) -> u64 {
        self.checkpoints.values().copied().min().unwrap_or(0)
    }
}

struct Inner {
    shared: Arc<Mutex<Shared>>,
    requests: mpsc::Sender<Request>,
    visible: watch::Receiver<u64>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    on_event: Option<EventHook>,
}

/// Cuts the damaged tail of the last segment at `offset` (a crash mid-write); a file shorter
/// than its magic (a crash while it was created) gets the magic back. Returns the bytes cut.
fn cut_torn_tail(path: &Path, offset: u64, reason: &str) -> Result<u64, SpoolError> {
    let magic = frame::MAGIC.len() as u64;
    let len = std::fs::metadata(path)
        .map_err(io_err(SpoolOp::Open, path))?
        .len();
    let keep = offset.max(magic);
    let cut = len.saturating_sub(keep);
    tracing::warn!(file = %path.display(), offset, %reason, cut, "spool: cutting a torn tail left by a crash");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(SpoolOp::Truncate, path))?;
    if offset < magic {
        // Not even a whole magic: rewrite it.
        file.set_len(0)
            .and_then(|()| std::fs::write(path, frame::MAGIC))
            .map_err(io_err(SpoolOp::Truncate, path))?;
    } else {
        file.set_len(keep)
            .map_err(io_err(SpoolOp::Truncate, path))?;
    }
    file.sync_all().map_err(io_err(SpoolOp::Sync, path))?;
    Ok(cut)
}

/// A handle on the spool (cheap to clone).
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

/// Name of the directory inside the data directory.
pub const SPOOL_DIR: &str = "spool";

fn checkpoint_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("checkpoint.{name}"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(SpoolOp::Sync, dir))
}

impl Spool {
    /// Opens (or creates) the spool, recovering from a crash.
    pub fn open(config: SpoolConfig) -> Result<(Spool, RecoveryReport), SpoolError> {
        let dir = config.data_dir.join(SPOOL_DIR);
        std::fs::create_dir_all(&dir).map_err(io_err(SpoolOp::Open, &dir))?;
        let mut truncated_bytes = recovery::apply_cut_note(&dir)?;
        let (mut checkpoints, unreadable) = recovery::read_checkpoints(&dir);
        for bad in &unreadable {
            tracing::warn!(
                consumer = %bad.consumer,
                error = %bad.why,
                kind = bad.kind,
                resume_after_lsn = bad.resume_after,
                "spool: unreadable checkpoint; the consumer resumes from its last write intent (or the start of the spool)"
            );
            if let Some(hook) = &config.on_event {
                hook(SpoolEvent::Error {
                    op: SpoolOp::Checkpoint,
                    kind: bad.kind,
                });
            }
        }
        for name in checkpoints.keys() {
            if !config.consumers.iter().any(|c| c == name) {
                tracing::warn!(
                    consumer = %name,
                    "spool: a checkpoint of a consumer that is not configured holds segments back; delete its checkpoint file if that consumer is gone"
                );
            }
        }
        for name in &config.consumers {
            checkpoints.entry(name.clone()).or_insert(0);
        }
        let files = list_segments(&dir).map_err(io_err(SpoolOp::Open, &dir))?;
        // A checkpoint behind the oldest segment: its write failed after the segments it covered
        // were reclaimed (`commit_checkpoint` on a full disk). Those records were stored; the
        // consumer resumes at the oldest record there is, and a stale write intent is ignored.
        if let Some((oldest, _)) = files.first() {
            for (name, checkpoint) in checkpoints.iter_mut() {
                if checkpoint.saturating_add(1) < *oldest {
                    tracing::info!(
                        consumer = %name,
                        checkpoint = *checkpoint,
                        oldest_lsn = *oldest,
                        "spool: checkpoint behind the oldest segment (its write failed after the segments were reclaimed); resuming at the oldest record"
                    );
                    *checkpoint = oldest - 1;
                }
            }
        }
        let min_checkpoint = checkpoints.values().copied().min().unwrap_or(0);
        let mut segments = Vec::new();
        let mut index: Vec<(u64, u64, u64)> = Vec::new();
        let mut records = 0u64;
        let mut last_lsn = 0u64;
        for (i, (first, path)) in files.iter().enumerate() {
            let is_last = i + 1 == files.len();
            let mut seg_last = first.saturating_sub(1);
            let mut expected = *first;
            let mut out_of_order = None;
            let (end, how) = scan(path, 0, |f| {
                if f.lsn != expected {
                    out_of_order = Some(f.offset);
                    return false;
                }
                expected += 1;
                seg_last = f.lsn;
                records += 1;
                if f.lsn > min_checkpoint {
                    index.push((f.lsn, f.appended_ms, record_events(&f.payload)));
                }
                true
            })
            .map_err(io_err(SpoolOp::Open, path))?;
            let damage = match (how, out_of_order) {
                (_, Some(offset)) => Some((offset, "LSN out of sequence".to_owned())),
                (End::Damaged(offset, reason), None) => Some((offset, reason)),
                (End::Clean, None) => None,
            };
            let mut bytes = end;
            if let Some((offset, reason)) = damage {
                if !is_last {
                    return Err(SpoolError::Corrupt {
                        file: path.clone(),
                        offset,
                        reason,
                    });
                }
                truncated_bytes += cut_torn_tail(path, offset, &reason)?;
                bytes = offset.max(frame::MAGIC.len() as u64);
            }
            if seg_last >= *first {
                last_lsn = last_lsn.max(seg_last);
            }
            segments.push(Segment {
                first_lsn: *first,
                last_lsn: seg_last,
                path: path.clone(),
                bytes,
            });
        }
        // Records before the first segment were reclaimed: every consumer was past them.
        let reclaimed_through = segments.first().map_or(0, |s| s.first_lsn - 1);
        for (name, lsn) in checkpoints.iter_mut() {
            if unreadable.iter().any(|u| &u.consumer == name) {
                *lsn = (*lsn).max(reclaimed_through);
            }
            // A checkpoint can never be past what is on disk (e.g. files deleted by hand).
            if *lsn > last_lsn && !segments.is_empty() {
                *lsn = last_lsn;
            }
        }
        if segments.is_empty() {
            // Continue the sequence after what consumers already confirmed.
            last_lsn = checkpoints.values().copied().max().unwrap_or(0);
        }
        let bytes_on_disk = segments.iter().map(|s| s.bytes).sum();
        let pending = checkpoints
            .iter()
            .map(|(n, c)| (n.clone(), last_lsn.saturating_sub(*c)))
            .collect();
        let report = RecoveryReport {
            segments: segments.len(),
            records,
            truncated_bytes,
            last_lsn,
            pending,
        };
        let shared = Arc::new(Mutex::new(Shared {
            dir: dir.clone(),
            quota_bytes: config.quota_bytes,
            segments,
            bytes_on_disk,
            last_lsn,
            checkpoints,
            index: VecDeque::with_capacity(index.len()),
            indexed_events: 0,
            health: SpoolHealth {
                unreadable_checkpoints: unreadable.into_iter().map(|u| u.consumer).collect(),
                ..SpoolHealth::default()
            },
        }));
        {
            let mut shared = shared.lock();
            for (lsn, appended_ms, events) in index {
                shared.push_index(lsn, appended_ms, appended_ms, events);
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        let (visible_tx, visible_rx) = watch::channel(last_lsn);
        let writer = Writer::new(config.clone(), shared.clone(), visible_tx)?;
        let handle = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || {
                crate::arenas::bind_this_thread();
                writer.run(rx)
            })
            .map_err(io_err(SpoolOp::Open, &dir))?;
        if let FsyncPolicy::Interval { ms } = config.fsync {
            let tick = tx.clone();
            std::thread::Builder::new()
                .name("spool-fsync".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_millis(ms.max(1)));
                    if tick.blocking_send(Request::Sync).is_err() {
                        return;
                    }
                })
                .map_err(io_err(SpoolOp::Open, &dir))?;
        }
        let spool = Spool {
            inner: Arc::new(Inner {
                shared,
                requests: tx,
                visible: visible_rx,
                writer: Mutex::new(Some(handle)),
                on_event: config.on_event.clone(),
            }),
        };
        spool.reclaim()?;
        Ok((spool, report))
    }

    /// Appends records (all or nothing); returns the LSN range once durable per the policy.
    ///
    /// An error means none of the records will ever be read: a caller may answer "not
    /// accepted" and let the client retry without creating a second copy.
    pub async fn append(&self, records: Vec<Vec<u8>>) -> Result<(u64, u64), SpoolError> {
        if let Some(big) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            return Err(SpoolError::TooLarge {
                bytes: big.len() as u64,
                max: MAX_RECORD_BYTES as u64,
            });
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .requests
            .send(Request::Append { records, reply: tx })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// A reader for a named consumer, starting after its checkpoint.
    pub fn reader(&self, name: &str) -> Result<SpoolReader, SpoolError> {
        let checkpoint = {
            let mut shared = self.inner.shared.lock();
            *shared.checkpoints.entry(name.to_owned()).or_insert(0)
        };
        Ok(SpoolReader {
            spool: self.clone(),
            name: name.to_owned(),
            next_lsn: checkpoint + 1,
            position: None,
        })
    }

    /// Makes a consumer's progress durable and deletes segments no consumer needs.
    ///
    /// On a full disk the checkpoint file cannot be written (it is replaced through a new
    /// file), and without it no segment is freed: the spool would stay full for good. The
    /// consumer calls this once its store holds everything through `lsn`, so those segments are
    /// not needed even before the file says so: they are reclaimed first, then the write is
    /// tried again. A restart with the older checkpoint resumes at the oldest segment left
    /// (`Spool::open`). Drilled by `scripts/drills.sh --only 9`.
    pub fn commit_checkpoint(&self, name: &str, lsn: u64) -> Result<(), SpoolError> {
        let dir = self.inner.shared.lock().dir.clone();
        let file = checkpoint_path(&dir, name);
        let file = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let write = || {
            recovery::write_durably(&dir, file.as_deref().unwrap_or_default(), &lsn.to_string())
                .inspect_err(|e| self.report(SpoolOp::Checkpoint, e))
        };
        if let Err(error) = write() {
            if error.kind() != "no_space" {
                return Err(error);
            }
            self.advance(name, lsn);
            self.reclaim()?;
            write()?;
        }
        self.advance(name, lsn);
        self.reclaim()
    }

    /// Moves a consumer's checkpoint forward in memory and forgets the index entries no
    /// consumer needs.
    fn advance(&self, name: &str, lsn: u64) {
        let mut shared = self.inner.shared.lock();
        let entry = shared.checkpoints.entry(name.to_owned()).or_insert(0);
        *entry = (*entry).max(lsn);
        let min = shared.min_checkpoint();
        while shared.index.front().is_some_and(|e| e.lsn <= min) {
            shared.index.pop_front();
        }
    }

    /// Records, durably, the LSN range a consumer is about to hand to its store, before the
    /// store write; [`Spool::write_intent`] gives it back after a restart.
    ///
    /// Why: a store that deduplicates whole inserts (ClickHouse's `insert_deduplication_token`,
    /// derived from the range) only drops a replay that covers exactly the same range. Batches
    /// are cut by size *and time*, so after a crash between the store write and the checkpoint,
    /// the replay would otherwise read more records at once, form a different range, and store
    /// the in-flight batch twice. The batcher cuts its first batch at the recorded range.
    /// Costs one small fsync'd file write per batch.
    pub fn set_write_intent(
        &self,
        name: &str,
        first_lsn: u64,
        last_lsn: u64,
    ) -> Result<(), SpoolError> {
        let dir = self.inner.shared.lock().dir.clone();
        recovery::write_durably(
            &dir,
            &format!("intent.{name}"),
            &format!("{first_lsn} {last_lsn}"),
        )
        .inspect_err(|e| self.report(SpoolOp::Checkpoint, e))
    }

    /// The range recorded by [`Spool::set_write_intent`] if it was not checkpointed yet (the
    /// process stopped between the store write and the checkpoint): `(first_lsn, last_lsn)`.
    pub fn write_intent(&self, name: &str) -> Option<(u64, u64)> {
        let (dir, checkpoint) = {
            let shared = self.inner.shared.lock();
            (
                shared.dir.clone(),
                shared.checkpoints.get(name).copied().unwrap_or(0),
            )
        };
        recovery::read_intent(&dir, name).filter(|(first, _)| *first == checkpoint + 1)
    }

    /// What is wrong with the spool now: a stopped writer, a recent write failure, failing
    /// reads, unreadable checkpoints (cheap: no file access).
    pub fn health(&self) -> SpoolHealth {
        self.inner.shared.lock().health.clone()
    }

    fn report(&self, op: SpoolOp, error: &SpoolError) {
        if let Some(hook) = &self.inner.on_event {
            hook(SpoolEvent::Error {
                op,
                kind: error.kind(),
            });
        }
    }

    /// Deletes whole segments every consumer is past (never the active one).
    fn reclaim(&self) -> Result<(), SpoolError> {
        let doomed: Vec<Segment> = {
            let mut shared = self.inner.shared.lock();
            let min = shared.min_checkpoint();
            let active = shared.segments.len().saturating_sub(1);
            let mut doomed = Vec::new();
            let mut keep = Vec::new();
            for (i, seg) in shared.segments.drain(..).enumerate() {
                if i < active && seg.last_lsn <= min {
                    doomed.push(seg);
                } else {
                    keep.push(seg);
                }
            }
            shared.segments = keep;
            let freed: u64 = doomed.iter().map(|s| s.bytes).sum();
            shared.bytes_on_disk = shared.bytes_on_disk.saturating_sub(freed);
            doomed
        };
        for seg in doomed {
            std::fs::remove_file(&seg.path)
                .map_err(io_err(SpoolOp::Reclaim, &seg.path))
                .inspect_err(|e| self.report(SpoolOp::Reclaim, e))?;
        }
        Ok(())
    }

    /// Events in the spool's records from `lsn` on (0 when it holds none): how far a reader
    /// whose next record is `lsn` is behind. Cheap: one lock, a binary search of the index.
    pub fn events_from(&self, lsn: u64) -> u64 {
        let shared = self.inner.shared.lock();
        shared
            .entry(lsn)
            .map_or(0, |e| shared.indexed_events - e.events_before)
    }

    /// Current state (cheap: no file access).
    pub fn status(&self) -> SpoolStatus {
        let shared = self.inner.shared.lock();
        let mut consumers: Vec<ConsumerStatus> = shared
            .checkpoints
            .iter()
            .map(|(name, lsn)| ConsumerStatus {
                name: name.clone(),
                checkpoint_lsn: *lsn,
                pending_records: shared.last_lsn.saturating_sub(*lsn),
                pending_events: shared
                    .entry(lsn + 1)
                    .map_or(0, |e| shared.indexed_events - e.events_before),
                oldest_pending_unix_ms: shared.entry(lsn + 1).map(|e| e.appended_ms),
            })
            .collect();
        consumers.sort_by(|a, b| a.name.cmp(&b.name));
        SpoolStatus {
            segments: shared.segments.len(),
            bytes_on_disk: shared.bytes_on_disk,
            quota_bytes: shared.quota_bytes,
            last_lsn: shared.last_lsn,
            consumers,
        }
    }

    /// Flushes, fsyncs and stops the writer thread.
    pub fn close(&self) -> Result<(), SpoolError> {
        // A std channel: close may be called from async code (a short block at shutdown).
        let (tx, rx) = std::sync::mpsc::channel();
        if self
            .inner
            .requests
            .try_send(Request::Close { reply: tx })
            .is_ok()
        {
            let _ = rx.recv();
        }
        if let Some(handle) = self.inner.writer.lock().take() {
            let _ = handle.join();
        }
        Ok(())
    }
}

/// Reads committed records in order for one consumer.
pub struct SpoolReader {
    spool: Spool,
    name: String,
    next_lsn: u64,
    /// (segment first LSN, offset of `next_lsn` in it) when known.
    position: Option<(u64, u64)>,
}

impl SpoolReader {
    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The LSN of the next record this reader returns.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Goes back to the record after the consumer's checkpoint.
    pub fn rewind(&mut self) {
        let checkpoint = self
            .spool
            .inner
            .shared
            .lock()
            .checkpoints
            .get(&self.name)
            .copied()
            .unwrap_or(0);
        self.next_lsn = checkpoint + 1;
        self.position = None;
    }

    /// Up to `max_records` / about `max_bytes` of the next records, waiting up to `wait` for at
    /// least one.
    pub async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<SpoolEntry>, SpoolError> {
        let mut visible = self.spool.inner.visible.clone();
        let want = self.next_lsn;
        if *visible.borrow() < want {
            let _ = tokio::time::timeout(wait, visible.wait_for(|v| *v >= want)).await;
        }
        let upto = *visible.borrow();
        if upto < want {
            return Ok(Vec::new());
        }
        let segments: Vec<Segment> = self.spool.inner.shared.lock().segments.clone();
        let position = self.position;
        let start = want;
        let max_records = max_records.max(1);
        let read = tokio::task::spawn_blocking(move || {
            read_range(&segments, start, upto, position, max_records, max_bytes)
        })
        .await
        .map_err(|_| SpoolError::Closed)
        .and_then(|r| r);
        // Failing reads are a `/readyz` reason and a metric until one succeeds.
        let (mut entries, new_position) = match read {
            Ok(read) => {
                let mut shared = self.spool.inner.shared.lock();
                if shared.health.read_error.is_some() {
                    shared.health.read_error = None;
                }
                read
            }
            Err(error) => {
                self.spool.report(SpoolOp::Read, &error);
                self.spool.inner.shared.lock().health.read_error = Some(chain(&error));
                return Err(error);
            }
        };
        {
            // The index remembers when each record became durable (the frame cannot: it is
            // written before its fsync).
            let shared = self.spool.inner.shared.lock();
            for entry in &mut entries {
                if let Some(indexed) = shared.entry(entry.lsn).filter(|e| e.lsn == entry.lsn) {
                    entry.durable_unix_ms = indexed.durable_ms;
                }
            }
        }
        if let Some(last) = entries.last() {
            self.next_lsn = last.lsn + 1;
            self.position = new_position;
        }
        Ok(entries)
    }
}

/// Where a reader is: (first LSN of the segment, byte offset of the next frame in it).
type Position = (u64, u64);

fn read_range(
    segments: &[Segment],
    start: u64,
    upto: u64,
    position: Option<(u64, u64)>,
    max_records: usize,
    max_bytes: usize,
) -> Result<(Vec<SpoolEntry>, Option<Position>), SpoolError> {
    let mut entries = Vec::new();
    let mut bytes = 0usize;
    let mut next = start;
    let mut last_position = None;
    let first_index = segments
        .iter()
        .rposition(|s| s.first_lsn <= start)
        .unwrap_or(0);
    for seg in &segments[first_index..] {
        if entries.len() >= max_records || bytes >= max_bytes || next > upto {
            break;
        }
        let offset = match position {
            Some((first, offset)) if first == seg.first_lsn => offset,
            _ => 0,
        };
        let (end, how) = scan(&seg.path, offset, |f| {
            if f.lsn < next {
                return true;
            }
            if f.lsn > upto || entries.len() >= max_records || bytes >= max_bytes {
                return false;
            }
            next = f.lsn + 1;
            bytes += f.payload.len();
            last_position = Some((
                seg.first_lsn,
                f.offset + (frame::HEADER + f.payload.len()) as u64,
            ));
            entries.push(SpoolEntry {
                lsn: f.lsn,
                appended_unix_ms: f.appended_ms,
                // Filled from the index by the reader (this runs off the lock).
                durable_unix_ms: f.appended_ms,
                payload: f.payload,
            });
            true
        })
        .map_err(io_err(SpoolOp::Read, &seg.path))?;
        if let End::Damaged(offset, reason) = how {
            // The writer may be mid-frame past `upto`; only damage before it is real.
            if next <= upto && end < seg.bytes {
                return Err(SpoolError::Corrupt {
                    file: seg.path.clone(),
                    offset,
                    reason,
                });
            }
        }
    }
    Ok((entries, last_position))
}

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn config(dir: &Path) -> SpoolConfig {
    let mut c = SpoolConfig::new(dir.to_path_buf(), &["sink"]);
    c.segment_bytes = 4096;
    c.quota_bytes = 1 << 20;
    c
}

fn record(i: usize) -> Vec<u8> {
    format!("record-{i:04}-{}", "x".repeat(200)).into_bytes()
}

async fn read_all(reader: &mut SpoolReader) -> Vec<SpoolEntry> {
    let mut out = Vec::new();
    loop {
        let batch = reader
            .next_batch(7, 1 << 20, Duration::from_millis(20))
            .await
            .unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

#[tokio::test]
async fn round_trip_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, report) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(report.last_lsn, 0);
    for i in 0..50 {
        let (first, last) = spool.append(vec![record(i)]).await.unwrap();
        assert_eq!((first, last), (i as u64 + 1, i as u64 + 1));
    }
    assert!(spool.status().segments > 2, "rolled over");
    let mut reader = spool.reader("sink").unwrap();
    let all = read_all(&mut reader).await;
    assert_eq!(all.len(), 50);
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, e)| e.lsn == i as u64 + 1 && e.payload == record(i)));
    spool.close().unwrap();
    let (spool, report) = Spool::open(config(dir.path())).unwrap();
    assert_eq!((report.records, report.last_lsn), (50, 50));
    assert_eq!(
        spool.append(vec![record(50)]).await.unwrap(),
        (51, 51),
        "LSNs continue"
    );
    spool.close().unwrap();
}

#[tokio::test]
async fn checkpoint_reclaims_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..60 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    let before = spool.status();
    spool.commit_checkpoint("sink", 40).unwrap();
    let after = spool.status();
    assert!(after.segments < before.segments);
    assert!(after.bytes_on_disk < before.bytes_on_disk);
    assert_eq!(after.consumers[0].pending_records, 20);
    let files = frame::list_segments(&dir.path().join(SPOOL_DIR)).unwrap();
    assert_eq!(files.len(), after.segments, "files really deleted");
    spool.close().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let mut reader = spool.reader("sink").unwrap();
    let rest = read_all(&mut reader).await;
    assert_eq!(rest.first().map(|e| e.lsn), Some(41));
    assert_eq!(rest.len(), 20);
    reader.rewind();
    assert_eq!(
        read_all(&mut reader).await.len(),
        20,
        "rewind re-reads from the checkpoint"
    );
    spool.close().unwrap();
}

#[tokio::test]
async fn torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..5 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    spool.close().unwrap();
    let files = frame::list_segments(&dir.path().join(SPOOL_DIR)).unwrap();
    let last = &files.last().unwrap().1;
    let len = std::fs::metadata(last).unwrap().len();
    // A crash mid-frame: the last frame is cut short.
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let (spool, report) = Spool::open(config(dir.path())).unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(report.last_lsn, 4);
    let mut reader = spool.reader("sink").unwrap();
    assert_eq!(read_all(&mut reader).await.len(), 4);
    assert_eq!(spool.append(vec![b"again".to_vec()]).await.unwrap(), (5, 5));
    spool.close().unwrap();
    // A flipped byte in the last frame is caught by its checksum.
    let files = frame::list_segments(&dir.path().join(SPOOL_DIR)).unwrap();
    let last = &files.last().unwrap().1;
    let mut bytes = std::fs::read(last).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(last, bytes).unwrap();
    let (spool, report) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(report.last_lsn, 4);
    spool.close().unwrap();
}

#[tokio::test]
async fn damage_in_an_older_segment_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..60 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    spool.close().unwrap();
    let files = frame::list_segments(&dir.path().join(SPOOL_DIR)).unwrap();
    let first = &files[0].1;
    let mut bytes = std::fs::read(first).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(first, bytes).unwrap();
    match Spool::open(config(dir.path())) {
        Err(SpoolError::Corrupt { file, offset, .. }) => {
            assert_eq!(&file, first);
            assert_eq!(offset, 8);
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("damage must not be ignored"),
    }
    let report = verify(dir.path(), false).unwrap();
    assert!(!report.ok);
    assert!(report.files[0].damage.is_some());
}

#[tokio::test]
async fn quota_refuses_whole_appends_until_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.quota_bytes = 8192;
    let (spool, _) = Spool::open(c).unwrap();
    let mut accepted = 0;
    loop {
        match spool
            .append(vec![record(accepted), record(accepted + 1)])
            .await
        {
            Ok(_) => accepted += 2,
            Err(SpoolError::QuotaExceeded { used, quota }) => {
                assert!(used <= quota);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let last = spool.status().last_lsn;
    assert_eq!(last, accepted as u64, "nothing partial written");
    let mut reader = spool.reader("sink").unwrap();
    let entries = read_all(&mut reader).await;
    spool
        .commit_checkpoint("sink", entries.last().unwrap().lsn)
        .unwrap();
    spool
        .append(vec![record(0)])
        .await
        .expect("room again after the checkpoint");
    spool.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let fsyncs = Arc::new(AtomicUsize::new(0));
    let mut c = config(dir.path());
    c.segment_bytes = 1 << 20;
    c.quota_bytes = 64 << 20;
    let counter = fsyncs.clone();
    c.on_event = Some(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    let (spool, _) = Spool::open(c).unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            let mut lsns = Vec::new();
            for i in 0..20 {
                let (a, b) = spool.append(vec![record(t * 100 + i)]).await.unwrap();
                lsns.push(a);
                assert_eq!(a, b);
            }
            lsns
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(
        all,
        (1..=640).collect::<Vec<u64>>(),
        "unique, contiguous LSNs"
    );
    let n = fsyncs.load(Ordering::Relaxed);
    assert!(n < 640, "{n} fsyncs for 640 appends: groups share them");
    spool.close().unwrap();
}

#[tokio::test]
async fn reader_wakes_up_on_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let mut reader = spool.reader("sink").unwrap();
    let writer = spool.clone();
    let handle = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.append(vec![b"late".to_vec()]).await.unwrap();
    });
    let started = std::time::Instant::now();
    let batch = reader
        .next_batch(10, 1 << 20, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the append, not the timeout"
    );
    handle.await.unwrap();
    spool.close().unwrap();
}

#[tokio::test]
async fn dump_and_status_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..3 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    spool.commit_checkpoint("sink", 1).unwrap();
    spool.close().unwrap();
    let mut out = Vec::new();
    let n = dump(
        dir.path(),
        Some(2),
        &mut out,
        |p| serde_json::json!(p.len()),
    )
    .unwrap();
    assert_eq!(n, 2);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["lsn"], 2);
    let status = status_offline(dir.path()).unwrap();
    assert_eq!(status.last_lsn, 3);
    assert_eq!(status.consumers[0].pending_records, 2);
}

/// A record as the ingest handler writes it: `events` accepted events.
fn request_record(events: usize) -> Vec<u8> {
    let meta = crate::record::BatchMeta::for_test(events as u32);
    let bodies: Vec<(u32, &[u8])> = (0..events)
        .map(|i| (i as u32, br#"{"type":"cache"}"#.as_slice()))
        .collect();
    crate::record::encode(&meta, &bodies, &[])
}

/// The sink's lag is reported in events, not records: each record counts the events it holds,
/// after appends, checkpoints and a reopen (the index is rebuilt from the files).
#[tokio::test]
async fn pending_events_count_the_events_in_pending_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_bytes = 1 << 16;
    let (spool, _) = Spool::open(c.clone()).unwrap();
    // 10 requests of 1..=10 events: 55 events in 10 records.
    for n in 1..=10 {
        spool.append(vec![request_record(n)]).await.unwrap();
    }
    let pending = |s: &Spool| {
        let status = s.status();
        let sink = status.consumers.iter().find(|c| c.name == "sink").unwrap();
        (sink.pending_records, sink.pending_events)
    };
    assert_eq!(pending(&spool), (10, 55));
    // Stored up to the 4th record (1+2+3+4 = 10 events).
    spool.commit_checkpoint("sink", 4).unwrap();
    assert_eq!(pending(&spool), (6, 45));
    spool.close().unwrap();

    let (spool, _) = Spool::open(c.clone()).unwrap();
    assert_eq!(pending(&spool), (6, 45), "rebuilt from the segment files");
    spool.append(vec![request_record(100)]).await.unwrap();
    assert_eq!(pending(&spool), (7, 145));
    spool.commit_checkpoint("sink", 11).unwrap();
    assert_eq!(pending(&spool), (0, 0));
    let offline = tools::status_offline(&c.data_dir).unwrap();
    let sink = offline.consumers.iter().find(|c| c.name == "sink").unwrap();
    assert_eq!((sink.pending_records, sink.pending_events), (0, 0));
    spool.close().unwrap();
}

// ---- Fault injection (issue 15: spool write failures never lie) ----

use std::sync::atomic::AtomicU32;

use super::io::{SegmentFile, SegmentIo};

/// Which of the writer's file operations fail next, and how.
#[derive(Default)]
struct Faults {
    /// Writes to fail; each failing write first writes half its bytes (a torn frame).
    write: AtomicU32,
    truncate: AtomicU32,
    sync_data: AtomicU32,
    sync_all: AtomicU32,
    create: AtomicU32,
    /// The errno they fail with (EIO when 0).
    errno: std::sync::atomic::AtomicI32,
}

impl Faults {
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn error(&self) -> std::io::Error {
        match self.errno.load(Ordering::SeqCst) {
            0 => std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error()),
            n => std::io::Error::from_raw_os_error(n),
        }
    }
}

/// Real files whose operations fail on demand.
struct FaultyIo(Arc<Faults>);

struct FaultyFile {
    inner: Box<dyn SegmentFile>,
    faults: Arc<Faults>,
}

impl SegmentIo for FaultyIo {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        if Faults::take(&self.0.create) {
            // Like a crash mid-create: the file exists, shorter than its magic.
            std::fs::write(path, b"BBS")?;
            return Err(self.0.error());
        }
        Ok(Box::new(FaultyFile {
            inner: super::io::RealIo.create(path)?,
            faults: self.0.clone(),
        }))
    }

    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultyFile {
            inner: super::io::RealIo.open_append(path)?,
            faults: self.0.clone(),
        }))
    }
}

impl SegmentFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if Faults::take(&self.faults.write) {
            self.inner.write_all(&buf[..buf.len() / 2])?;
            return Err(self.faults.error());
        }
        self.inner.write_all(buf)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if Faults::take(&self.faults.truncate) {
            return Err(self.faults.error());
        }
        self.inner.truncate(len)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        if Faults::take(&self.faults.sync_data) {
            return Err(self.faults.error());
        }
        self.inner.sync_data()
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        if Faults::take(&self.faults.sync_all) {
            return Err(self.faults.error());
        }
        self.inner.sync_all()
    }
}

/// Errors the spool reported to its metrics hook, as (op, kind).
type Reported = Arc<parking_lot::Mutex<Vec<(&'static str, &'static str)>>>;

/// A spool on failing files (one segment of 64 KiB unless told otherwise).
fn faulty(dir: &Path) -> (SpoolConfig, Arc<Faults>, Reported) {
    let faults = Arc::new(Faults::default());
    let reported: Reported = Arc::default();
    let mut c = config(dir);
    c.segment_bytes = 64 << 10;
    c.io = Arc::new(FaultyIo(faults.clone()));
    let seen = reported.clone();
    c.on_event = Some(Arc::new(move |event| {
        if let SpoolEvent::Error { op, kind } = event {
            seen.lock().push((op.as_str(), kind));
        }
    }));
    (c, faults, reported)
}

/// Every record of the spool directory, read back by a fresh open (a restart).
async fn reopen_and_read(dir: &Path) -> (RecoveryReport, Vec<Vec<u8>>) {
    let (spool, report) = Spool::open(config(dir)).unwrap();
    let mut reader = spool.reader("sink").unwrap();
    let payloads = read_all(&mut reader)
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    spool.close().unwrap();
    (report, payloads)
}

fn io_error_kind(result: Result<(u64, u64), SpoolError>) -> (SpoolOp, &'static str) {
    match result {
        Err(SpoolError::Io { op, ref source, .. }) => (op, kind_label(source)),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

/// Issue 15: a failed fdatasync answers an error, the refused record is never read (not now,
/// not after a restart), its LSN is reused, and what was acknowledged stays.
#[tokio::test]
async fn failed_fsync_refuses_the_append_and_cuts_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let (c, faults, reported) = faulty(dir.path());
    let (spool, _) = Spool::open(c).unwrap();
    assert_eq!(spool.append(vec![record(0)]).await.unwrap(), (1, 1));
    assert_eq!(spool.append(vec![record(1)]).await.unwrap(), (2, 2));
    faults.sync_data.store(1, Ordering::SeqCst);
    let refused = spool.append(vec![b"refused".to_vec()]).await;
    assert_eq!(io_error_kind(refused), (SpoolOp::Sync, "io_error"));
    assert_eq!(spool.status().last_lsn, 2, "the LSN did not advance");
    let health = spool.health();
    assert!(health.writer_stopped.is_none(), "the cut worked: no stop");
    assert!(health.last_write_error.is_some());
    assert_eq!(
        spool.append(vec![record(2)]).await.unwrap(),
        (3, 3),
        "the refused LSN is reused"
    );
    let mut reader = spool.reader("sink").unwrap();
    let read: Vec<Vec<u8>> = read_all(&mut reader)
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(read, vec![record(0), record(1), record(2)]);
    spool.close().unwrap();
    assert_eq!(*reported.lock(), vec![("sync", "io_error")]);

    let (report, payloads) = reopen_and_read(dir.path()).await;
    assert_eq!(report.truncated_bytes, 0, "no torn tail to cut");
    assert_eq!(payloads, vec![record(0), record(1), record(2)]);
}

/// Issue 15: a failed write leaves no torn frame that later acknowledged frames would follow
/// (the restart's torn-tail cut would discard them); ENOSPC and EIO stay apart.
#[tokio::test]
async fn failed_write_cuts_its_torn_frame_and_later_appends_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (c, faults, reported) = faulty(dir.path());
    let (spool, _) = Spool::open(c).unwrap();
    spool.append(vec![record(0)]).await.unwrap();
    faults
        .errno
        .store(rustix::io::Errno::NOSPC.raw_os_error(), Ordering::SeqCst);
    faults.write.store(1, Ordering::SeqCst);
    let refused = spool.append(vec![b"refused".to_vec()]).await;
    assert_eq!(io_error_kind(refused), (SpoolOp::Write, "no_space"));
    for i in 1..4 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    spool.close().unwrap();
    assert_eq!(*reported.lock(), vec![("write", "no_space")]);
    let (report, payloads) = reopen_and_read(dir.path()).await;
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(payloads, (0..4).map(record).collect::<Vec<_>>());
}

/// Issue 15: a failed write whose cut fails too stops the writer: every later append is
/// refused with the reason, reads of what was acknowledged go on, and the restart cuts the
/// torn frame and keeps every acknowledged record.
#[tokio::test]
async fn failed_write_and_failed_truncate_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (c, faults, reported) = faulty(dir.path());
    let (spool, _) = Spool::open(c).unwrap();
    spool.append(vec![record(0)]).await.unwrap();
    faults.write.store(1, Ordering::SeqCst);
    faults.truncate.store(1, Ordering::SeqCst);
    let refused = spool.append(vec![record(99)]).await;
    assert_eq!(io_error_kind(refused), (SpoolOp::Write, "io_error"));
    let stopped = spool.append(vec![record(1)]).await;
    let Err(SpoolError::Stopped { reason }) = stopped else {
        panic!("expected Stopped, got {stopped:?}");
    };
    assert!(
        reason.contains("write") && reason.contains("truncate"),
        "{reason}"
    );
    assert_eq!(
        spool.health().writer_stopped.as_deref(),
        Some(reason.as_str())
    );
    let mut reader = spool.reader("sink").unwrap();
    assert_eq!(read_all(&mut reader).await.len(), 1, "reads go on");
    spool.close().unwrap();
    assert_eq!(
        *reported.lock(),
        vec![("write", "io_error"), ("truncate", "io_error")]
    );
    assert!(dir.path().join(SPOOL_DIR).join("cut").exists());
    let (_, payloads) = reopen_and_read(dir.path()).await;
    assert_eq!(payloads, vec![record(0)]);
    assert!(
        !dir.path().join(SPOOL_DIR).join("cut").exists(),
        "the note is applied once"
    );
}

/// Issue 15: the hard case. The fsync failed, the records are whole on disk (valid checksums)
/// and the cut failed: without the note, the restart would store records that were refused.
#[tokio::test]
async fn failed_fsync_and_failed_cut_never_store_the_refused_records_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (c, faults, _) = faulty(dir.path());
    let (spool, _) = Spool::open(c.clone()).unwrap();
    spool.append(vec![record(0)]).await.unwrap();
    faults.sync_data.store(1, Ordering::SeqCst);
    faults.truncate.store(1, Ordering::SeqCst);
    let refused = spool.append(vec![record(98), record(99)]).await;
    assert_eq!(io_error_kind(refused), (SpoolOp::Sync, "io_error"));
    assert!(matches!(
        spool.append(vec![record(1)]).await,
        Err(SpoolError::Stopped { .. })
    ));
    spool.close().unwrap();
    let (report, payloads) = reopen_and_read(dir.path()).await;
    assert!(report.truncated_bytes > 0, "{report:?}");
    assert_eq!(payloads, vec![record(0)]);
    // And the spool takes appends again after the restart, continuing the sequence.
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    assert_eq!(spool.append(vec![record(1)]).await.unwrap(), (2, 2));
    spool.close().unwrap();
}

/// A failed fsync of the segment being rolled over refuses the appends staged in it, and a
/// failed segment creation refuses the append without stopping anything.
#[tokio::test]
async fn failures_around_a_roll_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, faults, reported) = faulty(dir.path());
    c.segment_bytes = 4096;
    let (spool, _) = Spool::open(c).unwrap();
    let mut acked = Vec::new();
    let mut i = 0;
    // Fill the first segment.
    while spool.status().segments < 2 {
        spool.append(vec![record(i)]).await.unwrap();
        acked.push(record(i));
        i += 1;
    }
    while spool.status().segments < 3 {
        faults.create.store(1, Ordering::SeqCst);
        match spool.append(vec![record(i)]).await {
            Ok(_) => acked.push(record(i)),
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        SpoolError::Io {
                            op: SpoolOp::Create,
                            ..
                        }
                    ),
                    "{e}"
                );
                faults.create.store(0, Ordering::SeqCst);
                spool.append(vec![record(i)]).await.unwrap();
                acked.push(record(i));
            }
        }
        i += 1;
    }
    assert!(reported.lock().contains(&("create", "io_error")));
    spool.close().unwrap();
    let (_, payloads) = reopen_and_read(dir.path()).await;
    assert_eq!(payloads, acked);
}

/// Issue 15: a record of 1 GiB or more is refused at append with a clear error (it would be
/// read back as damage). The buffer is zeroed lazily by the allocator: no GiB is touched.
#[tokio::test]
async fn oversize_record_is_refused_at_append() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let big = vec![0u8; MAX_RECORD_BYTES + 1];
    match spool.append(vec![record(0), big]).await {
        Err(SpoolError::TooLarge { bytes, max }) => {
            assert_eq!((bytes, max), (1 << 30, (1 << 30) - 1));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        spool.status().last_lsn,
        0,
        "nothing of the append was written"
    );
    spool.close().unwrap();
}

/// Issue 15: a last segment shorter than its magic (a crash while it was created) used to
/// underflow a length; it is repaired and the sequence continues.
#[tokio::test]
async fn short_last_segment_is_repaired() {
    for short in [&b""[..], &b"BBS"[..]] {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(config(dir.path())).unwrap();
        spool.append(vec![record(0)]).await.unwrap();
        spool.close().unwrap();
        let spool_dir = dir.path().join(SPOOL_DIR);
        std::fs::write(spool_dir.join(frame::segment_name(2)), short).unwrap();
        let report = verify(dir.path(), false).unwrap();
        assert!(!report.ok, "verify sees it");
        let (spool, report) = Spool::open(config(dir.path())).unwrap();
        assert_eq!((report.segments, report.last_lsn), (2, 1));
        assert_eq!(spool.append(vec![record(1)]).await.unwrap(), (2, 2));
        spool.close().unwrap();
        let (_, payloads) = reopen_and_read(dir.path()).await;
        assert_eq!(payloads, vec![record(0), record(1)]);
        assert!(verify(dir.path(), false).unwrap().ok);
    }
    // `spool verify --truncate` repairs it offline too.
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    spool.append(vec![record(0)]).await.unwrap();
    spool.close().unwrap();
    let short = dir.path().join(SPOOL_DIR).join(frame::segment_name(2));
    std::fs::write(&short, b"BB").unwrap();
    assert!(verify(dir.path(), true).unwrap().ok);
    assert_eq!(std::fs::read(&short).unwrap(), frame::MAGIC);
}

/// Issue 15: an unreadable checkpoint is a warning and a metric, and the consumer resumes from
/// its write intent (the replay is exactly the in-flight range, which the store's insert
/// token drops), not from LSN 0.
#[tokio::test]
async fn unreadable_checkpoint_resumes_from_the_write_intent() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..10 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    spool.commit_checkpoint("sink", 4).unwrap();
    spool.set_write_intent("sink", 5, 8).unwrap();
    spool.close().unwrap();
    let checkpoint = dir.path().join(SPOOL_DIR).join("checkpoint.sink");
    std::fs::write(&checkpoint, "\u{0}\u{0}garbage").unwrap();

    let (c, _, reported) = faulty(dir.path());
    let (spool, _) = Spool::open(c.clone()).unwrap();
    assert_eq!(*reported.lock(), vec![("checkpoint", "invalid_data")]);
    assert_eq!(
        spool.health().unreadable_checkpoints,
        vec!["sink".to_owned()]
    );
    let sink = spool.status().consumers[0].clone();
    assert_eq!((sink.checkpoint_lsn, sink.pending_records), (4, 6));
    assert_eq!(spool.write_intent("sink"), Some((5, 8)), "the replay cut");
    spool.close().unwrap();

    // No intent either (and a checkpoint that is not even a file): from the start, warned.
    std::fs::remove_file(dir.path().join(SPOOL_DIR).join("intent.sink")).unwrap();
    std::fs::remove_file(&checkpoint).unwrap();
    std::fs::create_dir(&checkpoint).unwrap();
    let (c, _, reported) = faulty(dir.path());
    let (spool, _) = Spool::open(c).unwrap();
    assert_eq!(reported.lock().len(), 1);
    assert_eq!(spool.status().consumers[0].checkpoint_lsn, 0);
    spool.close().unwrap();
}

/// Issue 15: read errors are a health reason and a metric until a read succeeds.
#[tokio::test]
async fn read_errors_show_in_health_until_a_read_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _, reported) = faulty(dir.path());
    let (spool, _) = Spool::open(c).unwrap();
    for i in 0..3 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    let segment = frame::list_segments(&dir.path().join(SPOOL_DIR)).unwrap()[0]
        .1
        .clone();
    let good = std::fs::read(&segment).unwrap();
    let mut bad = good.clone();
    bad[8 + frame::HEADER + 1] ^= 0xff;
    std::fs::write(&segment, &bad).unwrap();
    let mut reader = spool.reader("sink").unwrap();
    let failed = reader.next_batch(10, 1 << 20, Duration::ZERO).await;
    assert!(
        matches!(failed, Err(SpoolError::Corrupt { .. })),
        "{failed:?}"
    );
    assert!(spool.health().read_error.is_some());
    assert_eq!(*reported.lock(), vec![("read", "corrupt")]);
    std::fs::write(&segment, &good).unwrap();
    assert_eq!(read_all(&mut reader).await.len(), 3);
    assert!(
        spool.health().read_error.is_none(),
        "cleared by a good read"
    );
    spool.close().unwrap();
}

/// With `fsync = "interval"` an append is acknowledged after its write, so a failed timer
/// fsync cannot be undone: the writer stops and says records may not be durable.
#[tokio::test]
async fn failed_interval_fsync_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, faults, _) = faulty(dir.path());
    c.fsync = FsyncPolicy::Interval { ms: 1 };
    faults.sync_data.store(1, Ordering::SeqCst);
    let (spool, _) = Spool::open(c).unwrap();
    spool
        .append(vec![record(0)])
        .await
        .expect("acknowledged after the write");
    // The timer's next fsync fails; wait for the writer to say so (polling a condition).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spool.health().writer_stopped.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = match spool.append(vec![record(1)]).await {
        Err(SpoolError::Stopped { reason }) => Some(reason),
        other => panic!("expected Stopped, got {other:?}"),
    };
    let reason = stopped.expect("the writer stopped");
    assert!(reason.contains("may not be durable"), "{reason}");
    spool.close().unwrap();
}

/// Issue 13: the spool's consumers come from its configuration, and segments are kept until
/// every one of them is past them.
#[tokio::test]
async fn consumers_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = SpoolConfig::new(dir.path().to_path_buf(), &["store", "mirror"]);
    c.segment_bytes = 4096;
    let (spool, _) = Spool::open(c).unwrap();
    let names: Vec<String> = spool
        .status()
        .consumers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["mirror", "store"]);
    for i in 0..40 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    let segments = spool.status().segments;
    spool.commit_checkpoint("store", 40).unwrap();
    assert_eq!(spool.status().segments, segments, "mirror still needs them");
    spool.commit_checkpoint("mirror", 40).unwrap();
    assert!(spool.status().segments < segments);
    spool.close().unwrap();
}

/// A full disk can fail the checkpoint write after `commit_checkpoint` reclaimed the segments
/// it covers (their records are in the store). The next open finds the checkpoint behind the
/// oldest segment: it resumes at the oldest record left, and ignores the stale write intent.
#[tokio::test]
async fn a_checkpoint_behind_the_reclaimed_segments_resumes_at_the_oldest_record() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    for i in 0..60 {
        spool.append(vec![record(i)]).await.unwrap();
    }
    spool.commit_checkpoint("sink", 4).unwrap();
    spool.set_write_intent("sink", 5, 8).unwrap();
    spool.close().unwrap();
    // What a reclaim whose checkpoint write then failed leaves: the oldest segments gone.
    let segments = frame::list_segments(&dir.path().join(SPOOL_DIR)).unwrap();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    for (_, path) in &segments[..2] {
        std::fs::remove_file(path).unwrap();
    }
    let oldest = segments[2].0;

    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let sink = spool.status().consumers[0].clone();
    assert_eq!(sink.checkpoint_lsn, oldest - 1);
    assert_eq!(
        spool.write_intent("sink"),
        None,
        "the stale intent is ignored"
    );
    let mut reader = spool.reader("sink").unwrap();
    let rest = read_all(&mut reader).await;
    assert_eq!(rest.first().map(|e| e.lsn), Some(oldest));
    assert_eq!(rest.last().map(|e| e.lsn), Some(60));
    assert_eq!(
        rest.len() as u64,
        60 - oldest + 1,
        "nothing after it is skipped"
    );
    spool.close().unwrap();
}

/// Real files whose `fdatasync` takes the given milliseconds: a slow disk.
struct SlowSyncIo(u64);

struct SlowSyncFile(Box<dyn SegmentFile>, u64);

impl SegmentIo for SlowSyncIo {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(SlowSyncFile(
            super::io::RealIo.create(path)?,
            self.0,
        )))
    }

    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(SlowSyncFile(
            super::io::RealIo.open_append(path)?,
            self.0,
        )))
    }
}

impl SegmentFile for SlowSyncFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.0.truncate(len)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        // The disk is slow: that is what is measured, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(self.1));
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        self.0.sync_all()
    }
}

/// Issue 16, item 7: a record read back says when it became durable, after its fsync, so the
/// pipeline trace's `spooled` stage holds the wait for the disk (the frame's own time is taken
/// before the fsync).
#[tokio::test]
async fn a_record_says_when_its_fsync_made_it_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.io = Arc::new(SlowSyncIo(300));
    let (spool, _) = Spool::open(c).unwrap();
    spool.append(vec![record(0)]).await.unwrap();
    let mut reader = spool.reader("sink").unwrap();
    let all = read_all(&mut reader).await;
    assert_eq!(all.len(), 1);
    let waited = all[0].durable_unix_ms - all[0].appended_unix_ms;
    assert!(waited >= 250, "durable {waited} ms after the append");
    spool.close().unwrap();
    // Read again after a restart, a record says when it was appended (its fsync is long past).
    let (spool, _) = Spool::open(config(dir.path())).unwrap();
    let all = read_all(&mut spool.reader("sink").unwrap()).await;
    assert_eq!(all[0].durable_unix_ms, all[0].appended_unix_ms);
    spool.close().unwrap();
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn config(dir: &Path) -> SpoolConfig {
    let mut c = SpoolConfig::new(dir.to_path_buf());
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

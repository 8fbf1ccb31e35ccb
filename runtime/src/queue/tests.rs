//! The queue and its spool: order, bounds, crashes, torn records, locks.
use super::spool::segment_path;
use super::*;
use crate::bindings::types::MetricKind;
use crate::metric::Source;

type Row = (String, f64, u64, Option<f64>, Option<String>);

/// Metrics `range` as one chunk; sources alternate between two tenants.
fn chunk(range: std::ops::Range<u64>) -> Arc<Chunk> {
    let src = |t: bool| {
        Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: t.then(|| "t".to_string()),
            ttl: 20,
        })
    };
    let (even, odd) = (src(true), src(false));
    let mut c = Chunk::default();
    for i in range {
        c.push(
            &format!("a.b.m{i}"),
            i as f64 + 0.5,
            2,
            MetricKind::Gauge,
            1000 + i,
            (i % 3 == 0).then_some(i as f64 * 10.0),
            if i % 2 == 0 { &even } else { &odd },
        )
        .unwrap();
    }
    Arc::new(c)
}

fn rows(c: &Chunk) -> Vec<Row> {
    c.iter()
        .map(|m| {
            (
                m.path.to_string(),
                m.value,
                m.timestamp,
                m.raw_value,
                m.source.tenant.clone(),
            )
        })
        .collect()
}

fn drain(q: &Queue, n: usize) -> Vec<Row> {
    let mut got = Vec::new();
    while let Some((t, items)) = q.peek(n) {
        got.extend(rows(&items.to_chunk()));
        q.commit(t);
    }
    got
}

fn spool(dir: &std::path::Path, max: u64) -> Arc<Spool> {
    Spool::open(dir, max, std::time::Duration::from_secs(1)).unwrap()
}

#[test]
fn memory_overflow_stays_in_the_spool_and_comes_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(PluginStats::default());
    let q = Queue::new("h", 10, stats.clone(), Some(spool(dir.path(), 1 << 30)));
    q.push(&chunk(0..25));
    q.push(&chunk(25..30));
    assert_eq!(q.len(), 30);
    assert!(q.memory_bytes() > 0);
    assert_eq!(drain(&q, 4), rows(&chunk(0..30)));
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
    assert!(q.is_empty());
}

#[test]
fn every_queued_metric_is_on_disk_before_delivery_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(PluginStats::default());
    {
        let q = Queue::new("h", 1000, stats.clone(), Some(spool(dir.path(), 1 << 30)));
        q.push(&chunk(0..10));
        q.push(&chunk(10..20));
        // 4 delivered and synced, 3 more delivered but not synced.
        let (t, b) = q.peek(4).unwrap();
        assert_eq!(b.len(), 4);
        q.commit(t);
        q.sync();
        let (t, _) = q.peek(3).unwrap();
        q.commit(t);
        // "kill -9": no stop, no sync; the queue and its spool vanish.
    }
    let q = Queue::new("h", 1000, stats.clone(), Some(spool(dir.path(), 1 << 30)));
    // Nothing lost; what was confirmed after the last sync comes again.
    assert_eq!(q.len(), 16);
    assert_eq!(drain(&q, 5), rows(&chunk(4..20)));
    q.sync();
    drop(q);
    let q = Queue::new("h", 1000, stats, Some(spool(dir.path(), 1 << 30)));
    assert!(q.is_empty(), "all delivered and saved: nothing replayed");
}

#[test]
fn a_second_agent_cannot_open_a_locked_spool() {
    let dir = tempfile::tempdir().unwrap();
    let s = spool(dir.path(), 1 << 30);
    // Another open file description of the lock (as another process
    // would hold) is refused.
    let e = super::spool::lock_dir(dir.path()).unwrap_err();
    assert!(e.to_string().contains("locked by another process"), "{e}");
    // This process reopening it (a reload) gets the same spool.
    assert!(Arc::ptr_eq(&s, &spool(dir.path(), 1 << 30)));
    drop(s);
    let _again = spool(dir.path(), 1 << 30);
}

#[test]
fn batches_span_chunks_and_queues_share_them() {
    let stats = Arc::new(PluginStats::default());
    let (a, b) = (
        Queue::new("a", 1000, stats.clone(), None),
        Queue::new("b", 1000, stats.clone(), None),
    );
    for r in [0..3, 3..4, 4..11, 11..20] {
        let c = chunk(r);
        a.push(&c);
        b.push(&c);
    }
    // A peek not committed is seen again.
    let (_, first) = a.peek(5).unwrap();
    assert_eq!(rows(&first.to_chunk()), rows(&chunk(0..5)));
    assert_eq!(drain(&a, 5), rows(&chunk(0..20)));
    assert_eq!(drain(&b, 7), rows(&chunk(0..20)));
    assert!(a.is_empty() && b.is_empty());
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

fn drain_spool(s: &Spool, n: usize) -> Vec<Row> {
    let mut got = Vec::new();
    while let Some((first, items)) = s.peek(s.acked(), n) {
        got.extend(rows(&items));
        s.ack(first + items.len() as u64);
    }
    got
}

#[test]
fn the_spool_survives_a_restart_and_skips_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = spool(dir.path(), 1 << 30);
        s.append(&chunk(0..5)).unwrap();
        s.append(&chunk(5..8)).unwrap();
    }
    // A write torn mid-record: the last record cut in half.
    let tail = segment_path(dir.path(), 0);
    let data = std::fs::read(&tail).unwrap();
    std::fs::write(&tail, &data[..data.len() - 7]).unwrap();
    // The torn record (the second run) is skipped, the first kept.
    let s = spool(dir.path(), 1 << 30);
    assert_eq!(s.len(), 5);
    // Appending after the damage goes to a new segment: it is kept.
    s.append(&chunk(8..10)).unwrap();
    assert_eq!(
        drain_spool(&s, 3),
        rows(&chunk(0..5))
            .into_iter()
            .chain(rows(&chunk(8..10)))
            .collect::<Vec<_>>()
    );
    assert!(s.is_empty());
    // A flipped byte (a bad checksum) ends the replay the same way.
    s.sync().unwrap();
    drop(s);
    let s = spool(dir.path(), 1 << 30);
    s.append(&chunk(0..3)).unwrap();
    s.append(&chunk(3..4)).unwrap();
    drop(s);
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .max()
        .unwrap();
    let mut data = std::fs::read(&path).unwrap();
    let n = data.len();
    data[n - 3] ^= 0xff;
    std::fs::write(&path, data).unwrap();
    let s = spool(dir.path(), 1 << 30);
    assert_eq!(drain_spool(&s, 10), rows(&chunk(0..3)));
}

#[test]
fn segments_of_the_earlier_per_metric_format_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = b"WDSPOOL1".to_vec();
    let mut rec = Vec::new();
    for m in chunk(0..6).iter() {
        rec.clear();
        super::spool::legacy::encode(&m, &mut rec);
        data.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        data.extend_from_slice(&crc32fast::hash(&rec).to_le_bytes());
        data.extend_from_slice(&rec);
    }
    std::fs::write(segment_path(dir.path(), 3), data).unwrap();
    let s = spool(dir.path(), 1 << 30);
    s.append(&chunk(6..9)).unwrap();
    assert_eq!(drain_spool(&s, 4), rows(&chunk(0..9)));
}

#[test]
fn the_spool_is_bounded_and_drops_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(PluginStats::default());
    let q = Queue::new(
        "h",
        4,
        stats.clone(),
        Some(spool(dir.path(), 3 * super::spool::SEGMENT_BYTES)),
    );
    // Chunks of ~100 KB: segments roll at 1 MiB, the bound is 3 MiB.
    let big = |k: u64| chunk(k * 1000..k * 1000 + 1000);
    for k in 0..60 {
        q.push(&big(k));
    }
    let dropped = stats.dropped.load(Ordering::Relaxed) as usize;
    assert!(dropped > 0);
    assert!(q.spool().unwrap().bytes() <= 3 * super::spool::SEGMENT_BYTES + (1 << 20));
    assert_eq!(q.len() + dropped, 60_000);
    let (_, first) = q.peek(1).unwrap();
    assert_eq!(
        first.to_chunk().get(0).timestamp - 1000,
        dropped as u64,
        "the oldest went first"
    );
}

/// Bytes the files of `dir` take on disk (whole blocks, as `du`).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().blocks() * 512)
        .sum()
}

#[test]
fn the_spool_never_holds_more_than_its_quota_on_disk() {
    // Before, the newest segment was never dropped and a record was
    // written whole before the bound was looked at: one record past the
    // quota held the disk past it.
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(PluginStats::default());
    let quota = 300 << 10;
    let q = Queue::new("h", 4, stats.clone(), Some(spool(dir.path(), quota)));
    // Records of ~20 to ~200 KB: each fits, together they do not.
    for k in 0..40u64 {
        let n = 300 + (k % 7) * 400;
        q.push(&chunk(k * 10_000..k * 10_000 + n));
        let used = disk_usage(dir.path());
        assert!(
            used <= quota,
            "{used} bytes on disk past a {quota} byte quota after record {k}"
        );
        assert!(q.spool().unwrap().bytes() + super::spool::RESERVED <= quota);
    }
    assert!(stats.dropped.load(Ordering::Relaxed) > 0);
    // A record larger than the whole quota is refused, not written: the
    // disk keeps what it had; its metrics are dropped, counted.
    let before = disk_usage(dir.path());
    let written = q.spool().unwrap().written();
    let huge = chunk(1_000_000..1_010_000);
    match q.spool().unwrap().append(&huge) {
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull);
            assert!(e.to_string().contains("quota"), "{e}");
        }
        Ok(_) => panic!("a record past the whole quota was written"),
    }
    assert_eq!(disk_usage(dir.path()), before);
    assert_eq!(q.spool().unwrap().written(), written, "no sequence taken");
    let (dropped, queued) = (stats.dropped.load(Ordering::Relaxed), q.len());
    q.push(&huge);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), dropped + 10_000);
    assert_eq!(q.len(), queued);
    assert!(disk_usage(dir.path()) <= quota);
    // And what follows is queued and spooled as before.
    q.push(&chunk(2_000_000..2_000_010));
    assert_eq!(q.spool().unwrap().written(), written + 10);
}

#[test]
fn a_memory_queue_is_bounded_in_bytes_too() {
    let stats = Arc::new(PluginStats::default());
    let one = chunk(0..100);
    let q = Queue::bounded("h", 1_000_000, 5 * chunk_bytes(&one), stats.clone(), None);
    for k in 0..20 {
        q.push(&chunk(k * 100..k * 100 + 100));
    }
    assert!(q.memory_bytes() <= 5 * chunk_bytes(&one));
    assert!(stats.dropped.load(Ordering::Relaxed) >= 1500);
}

#[test]
fn without_a_spool_overflow_is_dropped_and_counted() {
    let stats = Arc::new(PluginStats::default());
    let q = Queue::new("h", 10, stats.clone(), None);
    q.push(&chunk(0..25));
    assert_eq!(q.len(), 5);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 20);
    let (_, items) = q.peek(100).unwrap();
    assert_eq!(
        items.to_chunk().get(0).timestamp,
        1020,
        "the newest are kept"
    );
}

#[test]
fn a_replaced_handlers_queue_goes_to_its_successor_in_order() {
    // Before, a reload that changed a handler left its memory queue with
    // the old one, which drained it for its grace and then dropped it.
    let stats = Arc::new(PluginStats::default());
    let old = Queue::new("h", 1000, stats.clone(), None);
    old.push(&chunk(0..5));
    old.push(&chunk(5..9));
    // The old handler delivered the first three.
    let (t, b) = old.peek(3).unwrap();
    assert_eq!(b.len(), 3);
    old.commit(t);
    let next = Arc::new(Queue::new(
        "h",
        1000,
        Arc::new(PluginStats::default()),
        None,
    ));
    assert_eq!(old.hand_over_to(&next), 6);
    assert_eq!((old.len(), next.len()), (0, 6));
    assert!(
        old.peek(10).is_none(),
        "the old handler delivers nothing more"
    );
    // Published to the old queue a moment longer, and spilled by it at its
    // stop (a sent batch not yet confirmed): both reach the successor.
    old.push(&chunk(9..10));
    assert_eq!(old.spill(Chunk::clone(&chunk(10..12)), "test"), 2);
    assert_eq!(drain(&next, 4), rows(&chunk(3..12)));
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
}

//! A handler's queue: bounded in memory, optionally backed by an on-disk
//! write-ahead spool, so that nothing is lost while a backend is down, at
//! a restart, or at a crash, within configured bounds.
//!
//! Without a spool the queue is memory only: past its capacity (metrics,
//! and bytes when a tenant quota sets it) the oldest half is dropped —
//! counted and logged, never silently.
//!
//! With a spool (`spool_dir`), every chunk is appended to the spool as it
//! is queued (see `queue/spool.rs`), and the memory queue is a cache of the
//! spool's tail: past its capacity the oldest metrics leave memory but stay
//! on disk. Delivery is oldest first: from memory when it holds the first
//! undelivered metric, else from the spool's segments. What a handler
//! confirms is acknowledged in the spool, whose segments are deleted once
//! delivered. Delivery is at least once: a crash re-delivers at most what
//! was confirmed since the last group sync.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::metric::{Batch, Chunk, MAX_LINES};
use crate::stats::PluginStats;

mod record;
mod spool;

pub use spool::Spool;

/// Which part of the queue a [`Queue::peek`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The spool's head segment.
    Spool {
        /// Segment id.
        segment: u64,
        /// How many metrics.
        n: usize,
    },
    /// Memory, from sequence number `first`.
    Memory {
        /// Sequence number of the first.
        first: u64,
        /// How many metrics.
        n: usize,
    },
}

/// A handler's queue.
pub struct Queue {
    name: String,
    capacity: usize,
    /// Most bytes of chunks held in memory.
    max_bytes: usize,
    inner: Mutex<Inner>,
    /// Woken on every push.
    pub notify: Notify,
    stats: Arc<PluginStats>,
    spool: Option<Arc<Spool>>,
    /// Its spool was handed to a successor: nothing more to deliver here.
    handed_over: std::sync::atomic::AtomicBool,
}

/// Queued metrics: the chunks collectors published (shared with the other
/// handlers' queues), the first one possibly partly delivered.
#[derive(Default)]
struct Inner {
    chunks: VecDeque<Arc<Chunk>>,
    /// Metrics of `chunks[0]` already gone.
    offset: usize,
    /// Metrics queued.
    len: usize,
    /// Sequence number of the first queued metric (with a spool: its
    /// sequence number in the spool).
    head: u64,
    /// Bytes of the chunks held.
    bytes: usize,
}

/// What a chunk held in memory costs, roughly: its lines and columns.
fn chunk_bytes(c: &Chunk) -> usize {
    c.lines().len() + c.len() * 40
}

impl Inner {
    /// Up to `n` of the oldest metrics as slices of the queued chunks (no
    /// copy), at most [`MAX_LINES`] bytes of lines (fewer metrics then).
    fn slice_front(&self, n: usize) -> Batch {
        let mut out = Batch::default();
        let (mut skip, mut bytes) = (self.offset, 0usize);
        for c in &self.chunks {
            if out.len() >= n {
                break;
            }
            let take = c.fitting(skip, n - out.len(), MAX_LINES.saturating_sub(bytes));
            if take == 0 {
                break;
            }
            out.push(c, skip..skip + take);
            bytes += out.slices().last().map_or(0, |s| s.lines().len());
            skip = 0;
        }
        out
    }

    /// Removes up to `n` of the oldest metrics.
    fn drop_front(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        self.head += n as u64;
        while n > 0 {
            let left = self.chunks[0].len() - self.offset;
            if n >= left {
                if let Some(c) = self.chunks.pop_front() {
                    self.bytes -= chunk_bytes(&c);
                }
                self.offset = 0;
                n -= left;
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }
}

/// What a queue without a spool logs when it drops its oldest metrics.
const NO_SPOOL_DROP: &str = "dropped the oldest metrics; the handler is too slow or its backend is down (raise queue_size, or set spool_dir to buffer on disk)";

impl Queue {
    /// A queue of at most `capacity` metrics in memory, backed by `spool`.
    pub fn new(
        name: &str,
        capacity: usize,
        stats: Arc<PluginStats>,
        spool: Option<Arc<Spool>>,
    ) -> Arc<Self> {
        Self::bounded(name, capacity, usize::MAX, stats, spool)
    }

    /// [`Queue::new`], holding at most `max_bytes` of chunks in memory too.
    pub fn bounded(
        name: &str,
        capacity: usize,
        max_bytes: usize,
        stats: Arc<PluginStats>,
        spool: Option<Arc<Spool>>,
    ) -> Arc<Self> {
        let inner = Inner {
            head: spool.as_ref().map_or(0, |s| s.written()),
            ..Default::default()
        };
        Arc::new(Queue {
            name: name.to_string(),
            capacity: capacity.max(2),
            max_bytes: max_bytes.max(1),
            inner: Mutex::new(inner),
            notify: Notify::new(),
            stats,
            spool,
            handed_over: Default::default(),
        })
    }

    /// Hands the spool to the handler replacing this one (same spool):
    /// this queue then holds nothing to deliver.
    pub fn hand_over(&self) {
        self.handed_over.store(true, Ordering::Relaxed);
        let mut q = self.lock();
        let n = q.len;
        q.drop_front(n);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many of the oldest metrics must leave memory: past the capacity,
    /// the oldest half; past the byte bound, the oldest chunks down to half
    /// of it.
    fn excess(q: &Inner, capacity: usize, max_bytes: usize) -> usize {
        if q.len > capacity {
            return q.len - capacity / 2;
        }
        if q.bytes <= max_bytes {
            return 0;
        }
        let (mut k, mut bytes, mut offset) = (0, q.bytes, q.offset);
        for c in &q.chunks {
            if bytes <= max_bytes / 2 {
                break;
            }
            k += c.len() - offset;
            offset = 0;
            bytes -= chunk_bytes(c);
        }
        k
    }

    /// Appends a chunk (shared, not copied). Never blocks on the handler.
    /// With a spool the chunk is written to it first; past the memory
    /// bounds the oldest leave memory (spooled, or without a spool dropped
    /// and counted).
    pub fn push(&self, chunk: &Arc<Chunk>) {
        if chunk.is_empty() {
            return;
        }
        if let Some(spool) = &self.spool {
            match spool.append(chunk) {
                Ok((_, dropped)) if dropped > 0 => self.count_dropped(
                    dropped,
                    "the spool is full (spool_max_mb): dropped its oldest segments",
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(handler = %self.name, error = %e, spool = %spool.dir.display(), "cannot write the spool: these metrics are queued in memory only (lost if the agent stops before delivering them)");
                }
            }
        }
        let dropped = {
            let mut q = self.lock();
            q.chunks.push_back(chunk.clone());
            q.len += chunk.len();
            q.bytes += chunk_bytes(chunk);
            let k = Self::excess(&q, self.capacity, self.max_bytes);
            q.drop_front(k);
            if self.spool.is_some() {
                0 // still on disk
            } else {
                k
            }
        };
        if dropped > 0 {
            self.count_dropped(dropped, NO_SPOOL_DROP);
        }
        self.notify.notify_one();
    }

    /// Appends `items` to the spool, behind what it holds (a batch the
    /// handler sent but the backend did not confirm, at a stop); without a
    /// spool they are counted as dropped, logging `why`. Returns how many
    /// were spooled.
    pub fn spill(&self, items: Chunk, why: &str) -> usize {
        let n = items.len();
        match &self.spool {
            Some(spool) => match spool.append(&items) {
                Ok((_, dropped)) => {
                    tracing::warn!(handler = %self.name, spooled = n, spool = %spool.dir.display(), spool_metrics = spool.len(), "{why}: kept in the spool");
                    if dropped > 0 {
                        self.count_dropped(
                            dropped,
                            "the spool is full (spool_max_mb): dropped its oldest segments",
                        );
                    }
                    n
                }
                Err(e) => {
                    tracing::error!(handler = %self.name, error = %e, spool = %spool.dir.display(), "cannot write the spool");
                    self.count_dropped(n, "dropped metrics that could not be spooled");
                    0
                }
            },
            None => {
                self.count_dropped(n, NO_SPOOL_DROP);
                0
            }
        }
    }

    fn count_dropped(&self, n: usize, what: &str) {
        let total = self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        tracing::warn!(handler = %self.name, dropped = n, total_dropped = total, capacity = self.capacity, "{what}");
    }

    /// Up to `n` of the oldest metrics, as slices of the queued chunks
    /// (shared, not copied) or read from the spool; they stay queued until
    /// [`Queue::commit`].
    pub fn peek(&self, n: usize) -> Option<(Taken, Batch)> {
        if self.handed_over.load(Ordering::Relaxed) {
            return None;
        }
        let Some(spool) = &self.spool else {
            let q = self.lock();
            if q.len == 0 {
                return None;
            }
            let items = q.slice_front(n);
            return Some((
                Taken::Memory {
                    first: q.head,
                    n: items.len(),
                },
                items,
            ));
        };
        let acked = spool.acked();
        {
            let mut q = self.lock();
            // Delivered already (from the spool, or by a handler this one
            // replaced): out of memory.
            if q.head < acked {
                let k = (acked - q.head) as usize;
                q.drop_front(k);
            }
            if q.len > 0 && q.head == acked {
                let items = q.slice_front(n);
                return Some((
                    Taken::Memory {
                        first: q.head,
                        n: items.len(),
                    },
                    items,
                ));
            }
        }
        if spool.is_empty() {
            return None;
        }
        match spool.peek(acked, n) {
            Some((first, items)) => {
                if first > acked {
                    // Metrics that were never written to disk (a write
                    // error) and have left memory since.
                    self.count_dropped(
                        (first - acked) as usize,
                        "metrics the spool could not keep (a write error) left memory before delivery",
                    );
                    spool.ack(first);
                }
                Some((
                    Taken::Spool {
                        segment: first,
                        n: items.len(),
                    },
                    items.into(),
                ))
            }
            None => {
                // Nothing on disk from `acked`: all of it was lost to
                // write errors and has left memory.
                let (written, lost) = (spool.written(), spool.len());
                let in_memory = self.lock().len;
                if in_memory == 0 && lost > 0 {
                    self.count_dropped(lost, "metrics the spool could not keep (a write error) left memory before delivery");
                    spool.ack(written);
                }
                None
            }
        }
    }

    /// Removes what a [`Queue::peek`] returned, once delivered.
    pub fn commit(&self, taken: Taken) {
        let end = match taken {
            Taken::Spool { segment, n } => segment + n as u64,
            Taken::Memory { first, n } => first + n as u64,
        };
        if let Some(spool) = &self.spool {
            spool.ack(end);
        }
        let mut q = self.lock();
        let k = end.saturating_sub(q.head) as usize;
        q.drop_front(k);
    }

    /// At a stop, when the backend cannot take what is queued: with a
    /// spool it is already there (synced now); without one it is dropped
    /// and counted. Returns how many stay in the spool.
    pub fn spill_all(&self, why: &str) -> usize {
        match &self.spool {
            Some(spool) => {
                if let Err(e) = spool.sync() {
                    tracing::error!(handler = %self.name, error = %e, spool = %spool.dir.display(), "cannot sync the spool");
                }
                let mut q = self.lock();
                let n = q.len;
                q.drop_front(n);
                spool.len()
            }
            None => {
                let n = {
                    let mut q = self.lock();
                    let n = q.len;
                    q.drop_front(n);
                    n
                };
                if n > 0 {
                    self.count_dropped(n, why);
                }
                0
            }
        }
    }

    /// When the spool's next group sync is due, if anything waits for one.
    pub fn sync_due(&self) -> Option<std::time::Instant> {
        self.spool.as_ref().and_then(|s| s.sync_due())
    }

    /// The spool's group sync (fsync); blocks. Errors are logged.
    pub fn sync(&self) {
        if let Some(spool) = &self.spool {
            if let Err(e) = spool.sync() {
                tracing::error!(handler = %self.name, error = %e, spool = %spool.dir.display(), "cannot sync the spool: what was written may not survive a power loss");
            }
        }
    }

    /// Metrics waiting: in memory, or in the spool (which holds them all).
    pub fn len(&self) -> usize {
        if self.handed_over.load(Ordering::Relaxed) {
            return 0;
        }
        match &self.spool {
            Some(s) => s.len(),
            None => self.lock().len,
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of chunks held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The spool, if the queue has one.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }
}

// ---------------------------------------------------------------------------
// The spool

#[cfg(test)]
mod tests {
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
            super::record::encode(&m, &mut rec);
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
}

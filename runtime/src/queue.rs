//! A handler's queue: bounded in memory, optionally backed by an on-disk
//! spool, so that nothing is lost while a backend is down or across a
//! restart, within configured bounds.
//!
//! Order: metrics are delivered oldest first. When the memory queue is full
//! its oldest half moves to the spool's tail; while the spool holds
//! anything, delivery takes from the spool's head. Without a spool, the
//! oldest metrics are dropped — counted and logged, never silently.
//!
//! The spool is a directory of segment files, each a sequence of records
//! `[u32 length][u32 crc32][metric]`, written to a temporary name and
//! renamed. A record whose checksum does not match ends the segment's
//! replay (logged, counted). Past `spool_max_mb` the oldest segments are
//! dropped (logged, counted). A segment is deleted once fully delivered;
//! a crash in between re-delivers it (at least once).

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
    inner: Mutex<Inner>,
    /// Woken on every push.
    pub notify: Notify,
    stats: Arc<PluginStats>,
    spool: Option<Arc<Spool>>,
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
    /// Sequence number of the first queued metric.
    head: u64,
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

    /// Removes the `n` oldest metrics, as chunks of at most [`MAX_LINES`].
    fn take_front(&mut self, n: usize) -> Vec<Chunk> {
        let mut pieces = Vec::new();
        let mut left = n.min(self.len);
        while left > 0 {
            let piece = self.slice_front(left).to_chunk();
            if piece.is_empty() {
                break; // cannot happen: one line is far below MAX_LINES
            }
            left -= piece.len();
            self.drop_front(piece.len());
            pieces.push(piece);
        }
        pieces
    }

    /// Removes up to `n` of the oldest metrics.
    fn drop_front(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        self.head += n as u64;
        while n > 0 {
            let left = self.chunks[0].len() - self.offset;
            if n >= left {
                self.chunks.pop_front();
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
    /// A queue of at most `capacity` metrics in memory, spilling to `spool`.
    pub fn new(
        name: &str,
        capacity: usize,
        stats: Arc<PluginStats>,
        spool: Option<Arc<Spool>>,
    ) -> Arc<Self> {
        Arc::new(Queue {
            name: name.to_string(),
            capacity: capacity.max(2),
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            stats,
            spool,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a chunk (shared, not copied). Never blocks on the handler;
    /// past the capacity the oldest half goes to the spool (or, without
    /// one, is dropped).
    pub fn push(&self, chunk: &Arc<Chunk>) {
        if chunk.is_empty() {
            return;
        }
        let (overflow, dropped) = {
            let mut q = self.lock();
            q.chunks.push_back(chunk.clone());
            q.len += chunk.len();
            if q.len <= self.capacity {
                (Vec::new(), 0)
            } else {
                let k = q.len - self.capacity / 2;
                if self.spool.is_some() {
                    (q.take_front(k), 0)
                } else {
                    // Nowhere to put them: dropped without a copy.
                    q.drop_front(k);
                    (Vec::new(), k)
                }
            }
        };
        for piece in overflow {
            self.spill(piece, "handler queue full");
        }
        if dropped > 0 {
            self.count_dropped(dropped, NO_SPOOL_DROP);
        }
        self.notify.notify_one();
    }

    /// Moves `items` to the spool (without one: counts them as dropped,
    /// logging `why`). Returns how many were spooled.
    pub fn spill(&self, items: Chunk, why: &str) -> usize {
        let n = items.len();
        match &self.spool {
            Some(spool) => match spool.append(&items) {
                Ok(dropped) => {
                    tracing::warn!(handler = %self.name, spooled = n, spool = %spool.dir.display(), spool_metrics = spool.len(), "{why}: moved the oldest metrics to the spool");
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
    /// (shared, not copied); they stay queued until [`Queue::commit`].
    pub fn peek(&self, n: usize) -> Option<(Taken, Batch)> {
        if let Some(spool) = &self.spool {
            if let Some((segment, items)) = spool.peek(n) {
                return Some((
                    Taken::Spool {
                        segment,
                        n: items.len(),
                    },
                    items.into(),
                ));
            }
        }
        let q = self.lock();
        if q.len == 0 {
            return None;
        }
        let items = q.slice_front(n);
        Some((
            Taken::Memory {
                first: q.head,
                n: items.len(),
            },
            items,
        ))
    }

    /// Removes what a [`Queue::peek`] returned, once delivered.
    pub fn commit(&self, taken: Taken) {
        match taken {
            Taken::Spool { segment, n } => {
                if let Some(spool) = &self.spool {
                    spool.commit(segment, n);
                }
            }
            Taken::Memory { first, n } => {
                let mut q = self.lock();
                let end = first + n as u64;
                let k = end.saturating_sub(q.head) as usize;
                q.drop_front(k);
            }
        }
    }

    /// Moves everything in memory to the spool (at shutdown, when the
    /// backend cannot take it). Returns how many were spooled; without a
    /// spool they are dropped and counted.
    pub fn spill_all(&self, why: &str) -> usize {
        let pieces = {
            let mut q = self.lock();
            let n = q.len;
            q.take_front(n)
        };
        pieces.into_iter().map(|p| self.spill(p, why)).sum()
    }

    /// Metrics waiting, in memory and in the spool.
    pub fn len(&self) -> usize {
        self.lock().len + self.spool.as_ref().map_or(0, |s| s.len())
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[test]
    fn memory_overflow_goes_to_the_spool_and_comes_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(PluginStats::default());
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let q = Queue::new("h", 10, stats.clone(), Some(spool));
        q.push(&chunk(0..25));
        assert_eq!(q.len(), 25);
        assert_eq!(drain(&q, 4), rows(&chunk(0..25)));
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "delivered segments are deleted"
        );
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

    #[test]
    fn the_spool_survives_a_restart_and_skips_a_damaged_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), 1 << 30).unwrap();
            s.append(&chunk(0..5)).unwrap();
            s.append(&chunk(5..8)).unwrap();
        }
        // Damage the last record of the second segment.
        let second = segment_path(dir.path(), 1);
        let mut data = std::fs::read(&second).unwrap();
        let n = data.len();
        data[n - 3] ^= 0xff;
        std::fs::write(&second, data).unwrap();
        let s = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(s.len(), 7);
        let mut got = Vec::new();
        while let Some((id, items)) = s.peek(3) {
            got.extend(rows(&items));
            s.commit(id, items.len());
        }
        assert_eq!(got, rows(&chunk(0..7)));
        assert!(s.is_empty());
    }

    #[test]
    fn the_spool_is_bounded_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 2000).unwrap();
        let mut dropped = 0;
        for k in 0..10 {
            dropped += s.append(&chunk(k * 10..k * 10 + 10)).unwrap();
        }
        assert!(dropped > 0);
        assert_eq!(s.len() + dropped, 100);
        let (_, first) = s.peek(1).unwrap();
        assert_eq!(
            first.get(0).timestamp - 1000,
            dropped as u64,
            "the oldest went first"
        );
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

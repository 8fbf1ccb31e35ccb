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
//!
//! The spool's format has one home, `queue/spool/`: the segments and their
//! framing (`spool.rs`, `files.rs`), a chunk's record (`codec.rs`), the
//! earlier per-metric record still read (`legacy.rs`), and the bytes both
//! are written in (`bytes.rs`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::metric::{Batch, Chunk, MAX_LINES};
use crate::stats::PluginStats;

mod hand_over;
mod spool;

pub use spool::Spool;

/// Opens (and locks) the spool `handler`'s section asks for
/// (`spool_dir`), with its quota and sync interval: the one way a
/// handler's spool is opened. `None` without `spool_dir`; the directory
/// with the error when it cannot be opened.
pub fn open_spool(
    handler: &crate::config::HandlerConfig,
) -> Option<Result<Arc<Spool>, (std::path::PathBuf, std::io::Error)>> {
    let dir = handler.spool_path()?;
    let sync = std::time::Duration::from_secs_f64(handler.spool_sync);
    Some(Spool::open(&dir, handler.spool_max, sync).map_err(|e| (dir, e)))
}

/// Which part of the queue a [`Queue::peek`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Read from the spool's segments.
    Spool {
        /// Sequence number of the first.
        first: u64,
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
    /// Woken when a push brings the queue to [`Queue::set_full_at`]
    /// metrics: a lingering handler delivers a full batch at once.
    pub full: Notify,
    full_at: std::sync::atomic::AtomicUsize,
    stats: Arc<PluginStats>,
    spool: Option<Arc<Spool>>,
    /// Its spool or its contents were handed to a successor: nothing more
    /// to deliver here.
    handed_over: std::sync::atomic::AtomicBool,
    /// The queue of the handler that replaced this one (a reload), which
    /// takes what this one still spills.
    successor: Mutex<Option<Arc<Queue>>>,
    /// Drop warnings, rate-limited (the totals are in every line logged).
    log_limit: crate::logging::LogLimit,
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
    /// Up to `n` of the oldest metrics in memory, as a peek returns them.
    fn front(&self, n: usize) -> Option<(Taken, Batch)> {
        if self.len == 0 {
            return None;
        }
        let items = self.slice_front(n);
        Some((
            Taken::Memory {
                first: self.head,
                n: items.len(),
            },
            items,
        ))
    }

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
            full: Notify::new(),
            full_at: std::sync::atomic::AtomicUsize::new(usize::MAX),
            stats,
            spool,
            handed_over: Default::default(),
            successor: Mutex::new(None),
            log_limit: Default::default(),
        })
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
        if let Some(next) = self.successor() {
            // Handed over (a reload): routed here a moment longer.
            return next.push(chunk);
        }
        // The spool's order and the memory queue's must be the same (their
        // sequence numbers are one): the append and the push happen under
        // the queue's lock, so two collectors publishing at once cannot
        // interleave them.
        let mut spool_dropped = 0;
        let full;
        let dropped = {
            let mut q = self.lock();
            let before = q.len;
            if let Some(spool) = &self.spool {
                match spool.append(chunk) {
                    Ok((first, dropped)) => {
                        if q.len == 0 {
                            q.head = first;
                        }
                        spool_dropped = dropped;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                        // Larger than the whole quota: not on disk, and
                        // not queued (no sequence number was taken).
                        drop(q);
                        self.count_dropped(chunk.len(), &e.to_string());
                        return;
                    }
                    Err(e) => {
                        tracing::error!(handler = %self.name, error = %e, spool = %spool.dir.display(), "cannot write the spool: these metrics are queued in memory only (lost if the agent stops before delivering them)");
                    }
                }
            }
            q.chunks.push_back(chunk.clone());
            q.len += chunk.len();
            let full_at = self.full_at.load(Ordering::Relaxed);
            full = before < full_at && q.len >= full_at;
            q.bytes += chunk_bytes(chunk);
            let k = Self::excess(&q, self.capacity, self.max_bytes);
            q.drop_front(k);
            if self.spool.is_some() {
                0 // still on disk
            } else {
                k
            }
        };
        if spool_dropped > 0 {
            self.count_dropped(
                spool_dropped,
                "the spool is full (spool_max_mb): dropped its oldest segments",
            );
        }
        if dropped > 0 {
            self.count_dropped(dropped, NO_SPOOL_DROP);
        }
        self.notify.notify_one();
        if full {
            self.full.notify_one();
        }
    }

    /// Makes a push that brings the queue to `n` metrics wake
    /// [`Queue::full`].
    pub fn set_full_at(&self, n: usize) {
        self.full_at.store(n, Ordering::Relaxed);
    }

    /// Appends `items` to the spool, behind what it holds (a batch the
    /// handler sent but the backend did not confirm, at a stop); without a
    /// spool they are counted as dropped, logging `why`. Returns how many
    /// were spooled.
    pub fn spill(&self, items: Chunk, why: &str) -> usize {
        if let Some(s) = self.successor() {
            let n = items.len();
            s.push(&Arc::new(items));
            return n;
        }
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
        if let Some(suppressed) = self.log_limit.admit(crate::logging::Kind::Drop) {
            tracing::warn!(handler = %self.name, dropped = n, total_dropped = total, capacity = self.capacity, suppressed, "{what}");
        }
    }

    /// Up to `n` of the oldest metrics, as slices of the queued chunks
    /// (shared, not copied) or read from the spool; they stay queued until
    /// [`Queue::commit`].
    pub fn peek(&self, n: usize) -> Option<(Taken, Batch)> {
        if self.handed_over.load(Ordering::Relaxed) {
            return None;
        }
        let Some(spool) = &self.spool else {
            return self.lock().front(n);
        };
        let acked = spool.acked();
        let memory_head = {
            let mut q = self.lock();
            // Delivered already (from the spool, or by a handler this one
            // replaced): out of memory.
            if q.head < acked {
                let k = (acked - q.head) as usize;
                q.drop_front(k);
            }
            if q.head == acked {
                if let Some(front) = q.front(n) {
                    return Some(front);
                }
            }
            (q.len > 0).then_some(q.head)
        };
        if spool.is_empty() {
            return None;
        }
        // `acked` left memory: the oldest undelivered metric is on disk, or
        // (a write error) nowhere; deliver whichever of disk and memory
        // comes first, and count the gap before it as lost.
        let disk = spool.peek(acked, n);
        let next = match (&disk, memory_head) {
            (Some((first, _)), Some(head)) => (*first).min(head),
            (Some((first, _)), None) => *first,
            (None, Some(head)) => head,
            (None, None) => spool.written(),
        };
        if next > acked {
            self.count_dropped(
                (next - acked) as usize,
                "metrics the spool could not keep (a write error) left memory before delivery",
            );
            spool.ack(next);
        }
        match disk {
            Some((first, items)) if first == next => Some((
                Taken::Spool {
                    first,
                    n: items.len(),
                },
                items.into(),
            )),
            // Memory holds the next one now.
            _ if memory_head.is_some() => self.peek(n),
            _ => None,
        }
    }

    /// Removes what a [`Queue::peek`] returned, once delivered.
    pub fn commit(&self, taken: Taken) {
        let end = match taken {
            Taken::Spool { first, n } => first + n as u64,
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

#[cfg(test)]
mod tests;

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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::bindings::types::MetricKind;
use crate::metric::{Batch, Chunk, Source, MAX_LINES};
use crate::stats::PluginStats;

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

/// An on-disk spool shared by the handlers that name its directory.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<SpoolInner>,
}

#[derive(Default)]
struct SpoolInner {
    /// (id, bytes, metrics) of every segment, oldest first.
    segments: VecDeque<(u64, u64, usize)>,
    /// The oldest segment, loaded, with how many of it were delivered.
    head: Option<(u64, Chunk, usize)>,
    next_id: u64,
    bytes: u64,
    count: usize,
}

const MAGIC: &[u8; 8] = b"WDSPOOL1";

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spool({})", self.dir.display())
    }
}

impl Spool {
    /// Opens (creating) the spool directory and indexes what is in it.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Arc<Spool>> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".spool")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let mut inner = SpoolInner::default();
        for id in ids {
            let path = segment_path(dir, id);
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let (items, corrupt) = read_segment(&path);
            if corrupt {
                tracing::warn!(segment = %path.display(), kept = items.len(), "spool segment is damaged; replaying what precedes the damage");
            }
            inner.segments.push_back((id, bytes, items.len()));
            inner.bytes += bytes;
            inner.count += items.len();
            inner.next_id = inner.next_id.max(id + 1);
        }
        if inner.count > 0 {
            tracing::info!(spool = %dir.display(), metrics = inner.count, segments = inner.segments.len(), "found spooled metrics; delivering them first");
        }
        Ok(Arc::new(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            inner: Mutex::new(inner),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Metrics in the spool.
    pub fn len(&self) -> usize {
        self.lock().count
    }

    /// Whether the spool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `items` as a new segment; returns how many metrics were
    /// dropped from the oldest segments to stay under the size bound.
    pub fn append(&self, items: &Chunk) -> std::io::Result<usize> {
        let mut buf = Vec::with_capacity(items.len() * 80 + 8);
        buf.extend_from_slice(MAGIC);
        let mut rec = Vec::new();
        for m in items.iter() {
            rec.clear();
            encode(&m, &mut rec);
            buf.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(&rec).to_le_bytes());
            buf.extend_from_slice(&rec);
        }
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let path = segment_path(&self.dir, id);
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, &path)?;
        inner
            .segments
            .push_back((id, buf.len() as u64, items.len()));
        inner.bytes += buf.len() as u64;
        inner.count += items.len();
        let mut dropped = 0;
        while inner.bytes > self.max_bytes && inner.segments.len() > 1 {
            let (old, bytes, n) = inner.segments.pop_front().expect("len > 1");
            let left = match &inner.head {
                Some((h, chunk, done)) if *h == old => {
                    let left = chunk.len() - done;
                    inner.head = None;
                    left
                }
                _ => n,
            };
            let _ = std::fs::remove_file(segment_path(&self.dir, old));
            inner.bytes -= bytes;
            inner.count -= left;
            dropped += left;
        }
        Ok(dropped)
    }

    /// Up to `n` metrics from the head segment, with its id.
    pub fn peek(&self, n: usize) -> Option<(u64, Chunk)> {
        let mut inner = self.lock();
        loop {
            if let Some((id, chunk, done)) = &inner.head {
                if *done < chunk.len() {
                    let mut out = Chunk::default();
                    out.extend_range(chunk, *done..chunk.len().min(done + n));
                    return Some((*id, out));
                }
            }
            let (id, _, _) = *inner.segments.front()?;
            if inner.head.as_ref().is_some_and(|(h, _, _)| *h == id) {
                // Loaded and empty: finished; drop it.
                self.finish_head(&mut inner);
                continue;
            }
            let (items, _) = read_segment(&segment_path(&self.dir, id));
            let (_, _, counted) = inner.segments[0];
            if items.len() != counted {
                // Damaged since it was indexed: account for what is left.
                inner.count = inner.count + items.len() - counted;
                inner.segments[0].2 = items.len();
            }
            inner.head = Some((id, items, 0));
        }
    }

    fn finish_head(&self, inner: &mut SpoolInner) {
        if let Some((id, _, _)) = inner.head.take() {
            if inner.segments.front().is_some_and(|s| s.0 == id) {
                let (_, bytes, _) = inner.segments.pop_front().expect("front");
                inner.bytes -= bytes;
            }
            let _ = std::fs::remove_file(segment_path(&self.dir, id));
        }
    }

    /// Marks `n` metrics of segment `id` delivered.
    pub fn commit(&self, id: u64, n: usize) {
        let mut inner = self.lock();
        let Some((h, chunk, done)) = &mut inner.head else {
            return;
        };
        if *h != id {
            return;
        }
        let k = n.min(chunk.len() - *done);
        *done += k;
        let empty = *done == chunk.len();
        inner.count -= k;
        if let Some(seg) = inner.segments.front_mut() {
            seg.2 -= k.min(seg.2);
        }
        if empty {
            self.finish_head(&mut inner);
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.spool"))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(m: &crate::metric::Published<'_>, out: &mut Vec<u8>) {
    put_str(out, m.path);
    out.extend_from_slice(&m.value.to_le_bytes());
    out.push(m.precision);
    out.push(matches!(m.kind, MetricKind::Counter) as u8);
    out.extend_from_slice(&m.timestamp.to_le_bytes());
    put_str(out, &m.source.host);
    out.extend_from_slice(&m.source.ttl.to_le_bytes());
    put_str(out, &m.source.collector);
    match &m.source.tenant {
        Some(t) => {
            out.push(1);
            put_str(out, t);
        }
        None => out.push(0),
    }
    match m.raw_value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Appends the metric of one record to `out`; `None` if it does not parse
/// (or holds what the host would never have queued).
fn decode(rec: &[u8], last: &mut Option<Arc<Source>>, out: &mut Chunk) -> Option<()> {
    let mut r = Reader(rec);
    let path = r.str()?;
    let value = f64::from_bits(r.u64()?);
    let precision = r.take(1)?[0];
    let kind = if r.take(1)?[0] == 1 {
        MetricKind::Counter
    } else {
        MetricKind::Gauge
    };
    let timestamp = r.u64()?;
    let host = r.str()?;
    let ttl = r.u32()?;
    let collector = r.str()?;
    let tenant = match r.take(1)?[0] {
        1 => Some(r.str()?),
        _ => None,
    };
    let raw_value = match r.take(1)?[0] {
        1 => Some(f64::from_bits(r.u64()?)),
        _ => None,
    };
    let source = Source {
        host,
        collector,
        tenant,
        ttl,
    };
    let source = match last {
        Some(s) if **s == source => s.clone(),
        _ => {
            let s = Arc::new(source);
            *last = Some(s.clone());
            s
        }
    };
    out.push(&path, value, precision, kind, timestamp, raw_value, &source)
        .ok()
}

/// Reads a segment; `true` when it ended in a damaged record.
fn read_segment(path: &Path) -> (Chunk, bool) {
    let Ok(data) = std::fs::read(path) else {
        return (Chunk::default(), true);
    };
    if !data.starts_with(MAGIC) {
        return (Chunk::default(), true);
    }
    let mut r = Reader(&data[MAGIC.len()..]);
    let mut out = Chunk::default();
    let mut last = None;
    while !r.0.is_empty() {
        let Some((len, crc)) = r.u32().zip(r.u32()) else {
            return (out, true);
        };
        let Some(rec) = r.take(len as usize) else {
            return (out, true);
        };
        if crc32fast::hash(rec) != crc {
            return (out, true);
        }
        if decode(rec, &mut last, &mut out).is_none() {
            return (out, true);
        }
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

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

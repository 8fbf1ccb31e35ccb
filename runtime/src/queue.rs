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

use crate::agent::PluginStats;
use crate::bindings::types::MetricKind;
use crate::metric::{Published as PublishedMetric, Source};

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

#[derive(Default)]
struct Inner {
    items: VecDeque<PublishedMetric>,
    /// Sequence number of `items[0]`.
    head: u64,
}

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

    /// Appends a batch. Never blocks on the handler; past the capacity the
    /// oldest half goes to the spool (or, without one, is dropped).
    pub fn push(&self, batch: &[PublishedMetric]) {
        let overflow: Vec<PublishedMetric> = {
            let mut q = self.lock();
            q.items.extend(batch.iter().cloned());
            if q.items.len() <= self.capacity {
                Vec::new()
            } else {
                let k = q.items.len() - self.capacity / 2;
                q.head += k as u64;
                q.items.drain(..k).collect()
            }
        };
        if !overflow.is_empty() {
            self.spill(overflow, "handler queue full");
        }
        self.notify.notify_one();
    }

    fn spill(&self, items: Vec<PublishedMetric>, why: &str) -> usize {
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
                self.count_dropped(n, "dropped the oldest metrics; the handler is too slow or its backend is down (raise queue_size, or set spool_dir to buffer on disk)");
                0
            }
        }
    }

    fn count_dropped(&self, n: usize, what: &str) {
        let total = self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        tracing::warn!(handler = %self.name, dropped = n, total_dropped = total, capacity = self.capacity, "{what}");
    }

    /// Copies up to `n` of the oldest metrics; they stay queued until
    /// [`Queue::commit`].
    pub fn peek(&self, n: usize) -> Option<(Taken, Vec<PublishedMetric>)> {
        if let Some(spool) = &self.spool {
            if let Some((segment, items)) = spool.peek(n) {
                return Some((
                    Taken::Spool {
                        segment,
                        n: items.len(),
                    },
                    items,
                ));
            }
        }
        let q = self.lock();
        if q.items.is_empty() {
            return None;
        }
        let items: Vec<PublishedMetric> = q.items.iter().take(n).cloned().collect();
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
                let k = end.saturating_sub(q.head).min(q.items.len() as u64) as usize;
                q.items.drain(..k);
                q.head += k as u64;
            }
        }
    }

    /// Moves everything in memory to the spool (at shutdown, when the
    /// backend cannot take it). Returns how many were spooled; without a
    /// spool they are dropped and counted.
    pub fn spill_all(&self, why: &str) -> usize {
        let items: Vec<PublishedMetric> = {
            let mut q = self.lock();
            let n = q.items.len() as u64;
            q.head += n;
            q.items.drain(..).collect()
        };
        if items.is_empty() {
            return 0;
        }
        self.spill(items, why)
    }

    /// Metrics waiting, in memory and in the spool.
    pub fn len(&self) -> usize {
        self.lock().items.len() + self.spool.as_ref().map_or(0, |s| s.len())
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
    /// The oldest segment, loaded, with what is left of it.
    head: Option<(u64, VecDeque<PublishedMetric>)>,
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
    pub fn append(&self, items: &[PublishedMetric]) -> std::io::Result<usize> {
        let mut buf = Vec::with_capacity(items.len() * 80 + 8);
        buf.extend_from_slice(MAGIC);
        let mut rec = Vec::new();
        for m in items {
            rec.clear();
            encode(m, &mut rec);
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
                Some((h, rest)) if *h == old => {
                    let left = rest.len();
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
    pub fn peek(&self, n: usize) -> Option<(u64, Vec<PublishedMetric>)> {
        let mut inner = self.lock();
        loop {
            if let Some((id, rest)) = &inner.head {
                if !rest.is_empty() {
                    return Some((*id, rest.iter().take(n).cloned().collect()));
                }
            }
            let (id, _, _) = *inner.segments.front()?;
            if inner.head.as_ref().is_some_and(|(h, _)| *h == id) {
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
            inner.head = Some((id, items.into()));
        }
    }

    fn finish_head(&self, inner: &mut SpoolInner) {
        if let Some((id, _)) = inner.head.take() {
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
        let Some((h, rest)) = &mut inner.head else {
            return;
        };
        if *h != id {
            return;
        }
        let k = n.min(rest.len());
        rest.drain(..k);
        let empty = rest.is_empty();
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

fn encode(m: &PublishedMetric, out: &mut Vec<u8>) {
    put_str(out, &m.path);
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

fn decode(rec: &[u8], last: &mut Option<Arc<Source>>) -> Option<PublishedMetric> {
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
    Some(PublishedMetric {
        path,
        value,
        precision,
        kind,
        timestamp,
        raw_value,
        source,
    })
}

/// Reads a segment; `true` when it ended in a damaged record.
fn read_segment(path: &Path) -> (Vec<PublishedMetric>, bool) {
    let Ok(data) = std::fs::read(path) else {
        return (Vec::new(), true);
    };
    if !data.starts_with(MAGIC) {
        return (Vec::new(), true);
    }
    let mut r = Reader(&data[MAGIC.len()..]);
    let mut out = Vec::new();
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
        match decode(rec, &mut last) {
            Some(m) => out.push(m),
            None => return (out, true),
        }
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u64) -> PublishedMetric {
        PublishedMetric {
            path: format!("a.b.m{i}"),
            value: i as f64 + 0.5,
            precision: 2,
            kind: MetricKind::Gauge,
            timestamp: 1000 + i,
            raw_value: (i % 3 == 0).then_some(i as f64 * 10.0),
            source: Arc::new(Source {
                host: "h".into(),
                collector: "c".into(),
                tenant: (i % 2 == 0).then(|| "t".to_string()),
                ttl: 20,
            }),
        }
    }

    #[test]
    fn memory_overflow_goes_to_the_spool_and_comes_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Arc::new(PluginStats::default());
        let spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let q = Queue::new("h", 10, stats.clone(), Some(spool));
        q.push(&(0..25).map(m).collect::<Vec<_>>());
        assert_eq!(q.len(), 25);
        let mut got = Vec::new();
        while let Some((t, items)) = q.peek(4) {
            got.extend(items.iter().map(|x| x.timestamp - 1000));
            q.commit(t);
        }
        assert_eq!(got, (0..25).collect::<Vec<_>>());
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "delivered segments are deleted"
        );
    }

    #[test]
    fn the_spool_survives_a_restart_and_skips_a_damaged_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), 1 << 30).unwrap();
            s.append(&(0..5).map(m).collect::<Vec<_>>()).unwrap();
            s.append(&(5..8).map(m).collect::<Vec<_>>()).unwrap();
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
        while let Some((id, items)) = s.peek(100) {
            got.extend(items.clone());
            s.commit(id, items.len());
        }
        assert_eq!(got, (0..7).map(m).collect::<Vec<_>>());
        assert!(s.is_empty());
    }

    #[test]
    fn the_spool_is_bounded_and_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), 2000).unwrap();
        let mut dropped = 0;
        for k in 0..10 {
            dropped += s
                .append(&(k * 10..k * 10 + 10).map(m).collect::<Vec<_>>())
                .unwrap();
        }
        assert!(dropped > 0);
        assert_eq!(s.len() + dropped, 100);
        let (_, first) = s.peek(1).unwrap();
        assert_eq!(
            first[0].timestamp - 1000,
            dropped as u64,
            "the oldest went first"
        );
    }

    #[test]
    fn without_a_spool_overflow_is_dropped_and_counted() {
        let stats = Arc::new(PluginStats::default());
        let q = Queue::new("h", 10, stats.clone(), None);
        q.push(&(0..25).map(m).collect::<Vec<_>>());
        assert_eq!(q.len(), 5);
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 20);
        let (_, items) = q.peek(100).unwrap();
        assert_eq!(items[0].timestamp, 1020, "the newest are kept");
    }
}

//! A handler's write-ahead spool: every metric queued for the handler is
//! appended here first (one write per published chunk), so that a crash —
//! `kill -9`, or power loss past the last group sync — loses nothing that
//! was queued, or nothing older than `spool_sync`.
//!
//! The spool is a log of segment files `NNNN.spool` (`WDSPOOL2`, then one
//! record `[u32 length][u32 crc32][a chunk's columns]` per queued chunk;
//! `WDSPOOL1` segments of one record per metric are still read); the
//! newest is the open tail,
//! appended to; the others are sealed and never change. Every metric has a
//! sequence number in the log; `acked` is the first not yet delivered.
//! Delivery reads the handler's memory queue (a cache of the log's tail)
//! when it holds `acked`, else the sealed segments from disk. A sealed
//! segment is deleted once delivered; the delivered position is written to
//! `acked` at each group sync, so a restart neither loses nor (beyond the
//! last sync) repeats. A damaged record (a torn write at a crash, a bad
//! checksum) ends its segment's replay: counted and logged, never a reason
//! not to start. A lock file keeps a second agent out of the directory.
//!
//! The quota (`spool_max_mb`, or the tenant's share of `max_spool_mb`) is
//! kept *before* a byte is written: the spool counts its files as the disk
//! holds them (whole 4 KiB blocks, and [`RESERVED`] for the lock and the
//! delivered position), drops its oldest segments — the tail too — until
//! the record fits, and refuses a record larger than the whole quota
//! ([`Refused`]; the caller drops those metrics, counted).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::metric::Chunk;

mod bytes;
mod codec;
mod files;
pub(super) mod legacy;
pub(super) use files::segment_path;
use files::{on_disk, read_acked, read_segment, write_acked};
pub use files::{Refused, RESERVED};

/// A segment is sealed (and a new tail begun) past this size, or past an
/// eighth of the spool's bound if smaller (so that dropping the oldest
/// segment keeps the spool near its bound): at least 64 KiB.
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// A group sync is also due once this much is written and not synced.
pub const SYNC_BYTES: u64 = 4 << 20;

/// Segments of one record per metric (earlier versions; still read).
pub(super) const MAGIC_V1: &[u8; 8] = b"WDSPOOL1";
/// Segments of one record per chunk: the chunk's columns as they are.
pub(super) const MAGIC: &[u8; 8] = b"WDSPOOL2";

/// One segment of the log.
#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    /// Sequence number of its first metric.
    first: u64,
    /// Metrics in it.
    count: u64,
    bytes: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        self.first + self.count
    }
}

#[derive(Default)]
struct SpoolInner {
    /// Every segment, oldest first; the last is the tail if `tail` is open.
    segments: VecDeque<Segment>,
    /// The open tail segment's file.
    tail: Option<File>,
    /// A sealed segment loaded for delivery.
    loaded: Option<(u64, Chunk)>,
    next_id: u64,
    /// Sequence number of the next metric appended.
    written: u64,
    /// Every metric before this one is delivered.
    acked: u64,
    /// `acked` as last written to the `acked` file.
    acked_saved: u64,
    /// Disk space of the segments ([`on_disk`] of each).
    bytes: u64,
    /// Bytes written since the last sync, and since when anything (bytes,
    /// a sealed segment, the delivered position) waits for one.
    unsynced: u64,
    unsynced_since: Option<Instant>,
    /// Sealed segments not yet synced.
    unsynced_sealed: Vec<File>,
}

/// A handler's spool (one per `spool_dir`, at most one agent per directory).
pub struct Spool {
    pub(super) dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sync_every: Duration,
    inner: Mutex<SpoolInner>,
    /// Held for the spool's life: the directory's lock.
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spool({})", self.dir.display())
    }
}

/// What a replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Metrics waiting for delivery.
    pub metrics: u64,
    /// Segments holding damaged records (replayed up to the damage).
    pub damaged: u64,
}

/// The spools this process has open, by directory: a reload reopens the
/// same one (its lock is held once per process).
fn open_spools() -> &'static Mutex<HashMap<PathBuf, Weak<Spool>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Spool>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

pub(super) fn lock_dir(dir: &Path) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            e.kind(),
            format!(
                "{} is locked by another process (another wdiamond using the same spool_dir?): {e}",
                dir.display()
            ),
        ));
    }
    Ok(f)
}

impl Spool {
    /// Opens (creating) the spool in `dir`, locks it, and replays its
    /// index. `sync_every`: the longest written data waits for a sync.
    pub fn open(dir: &Path, max_bytes: u64, sync_every: Duration) -> std::io::Result<Arc<Spool>> {
        std::fs::create_dir_all(dir)?;
        let key = std::fs::canonicalize(dir)?;
        let mut open = open_spools().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get(&key).and_then(Weak::upgrade) {
            return Ok(s);
        }
        let lock = lock_dir(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".spool")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let saved = read_acked(dir);
        let mut inner = SpoolInner {
            // Ids only grow, even past segments deleted since the save.
            next_id: saved.map_or(0, |(id, _)| id),
            ..Default::default()
        };
        let mut replayed = Replayed::default();
        for id in ids {
            let path = segment_path(dir, id);
            inner.next_id = inner.next_id.max(id + 1);
            if saved.is_some_and(|(sid, _)| id < sid) {
                // Delivered before the last sync; its deletion was lost.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let (items, damaged) = read_segment(&path);
            if damaged {
                replayed.damaged += 1;
                tracing::warn!(segment = %path.display(), kept = items.len(), "spool segment is damaged (a torn write at a crash?); replaying what precedes the damage");
            }
            let seg = Segment {
                id,
                first: inner.written,
                count: items.len() as u64,
                bytes,
            };
            if let Some((sid, k)) = saved {
                if sid == id {
                    inner.acked = seg.first + k.min(seg.count);
                }
            }
            inner.written = seg.end();
            inner.bytes += on_disk(bytes);
            inner.segments.push_back(seg);
        }
        inner.acked_saved = inner.acked;
        replayed.metrics = inner.written - inner.acked;
        if replayed.metrics > 0 {
            tracing::info!(spool = %dir.display(), metrics = replayed.metrics, segments = inner.segments.len(), "found spooled metrics; delivering them first");
        }
        let spool = Arc::new(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, SEGMENT_BYTES),
            sync_every,
            inner: Mutex::new(inner),
            _lock: lock,
        });
        open.insert(key, Arc::downgrade(&spool));
        Ok(spool)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpoolInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Metrics not yet delivered.
    pub fn len(&self) -> usize {
        let i = self.lock();
        (i.written - i.acked) as usize
    }

    /// Whether everything is delivered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sequence number of the next metric appended.
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    /// The first metric not yet delivered.
    pub fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// Disk space of the segments (whole blocks).
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Appends `items` to the tail (one write). Returns the sequence number
    /// of the first, and how many undelivered metrics were dropped from the
    /// oldest segments to make room for it within the quota. A record
    /// larger than the whole quota is not written and takes no sequence
    /// numbers ([`Refused`], as an `io::Error` of kind `StorageFull`). On
    /// a write error the sequence numbers are used all the same (a hole:
    /// those metrics are only in memory).
    pub fn append(&self, items: &Chunk) -> std::io::Result<(u64, usize)> {
        // One record: [u32 length][u32 crc32][the chunk's columns].
        let mut buf = Vec::with_capacity(items.lines().len() + items.len() * 24 + 64);
        buf.extend_from_slice(&[0; 8]);
        codec::encode(items, &mut buf);
        let len = (buf.len() - 8) as u32;
        let crc = crc32fast::hash(&buf[8..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let alone = on_disk(MAGIC.len() as u64 + buf.len() as u64);
        if alone + RESERVED > self.max_bytes {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                Refused {
                    metrics: items.len(),
                    bytes: alone,
                    quota: self.max_bytes,
                },
            ));
        }
        let mut inner = self.lock();
        let first = inner.written;
        inner.written += items.len() as u64;
        let n = items.len() as u64;
        let dropped = self.make_room(&mut inner, buf.len() as u64);
        self.write_tail(&mut inner, &buf, first, n)
            .map(|()| (first, dropped))
    }

    /// Whether a record of `len` bytes goes to a new segment.
    fn needs_new_segment(&self, inner: &SpoolInner, len: u64) -> bool {
        inner.tail.is_none()
            || inner
                .segments
                .back()
                .is_some_and(|s| s.bytes + len > self.segment_bytes && s.count > 0)
    }

    /// Drops the oldest segments (the tail too, if need be) until a record
    /// of `len` bytes fits in the quota. Returns the undelivered metrics
    /// dropped.
    fn make_room(&self, inner: &mut SpoolInner, len: u64) -> usize {
        let mut dropped = 0;
        loop {
            let growth = if self.needs_new_segment(inner, len) {
                on_disk(MAGIC.len() as u64 + len)
            } else {
                let tail = inner.segments.back().map_or(0, |s| s.bytes);
                on_disk(tail + len) - on_disk(tail)
            };
            if inner.bytes + growth + RESERVED <= self.max_bytes {
                return dropped;
            }
            let Some(old) = inner.segments.pop_front() else {
                return dropped;
            };
            if inner.segments.is_empty() {
                // The tail itself: later records begin a new one.
                inner.tail = None;
            }
            let _ = std::fs::remove_file(segment_path(&self.dir, old.id));
            inner.bytes -= on_disk(old.bytes);
            if old.end() > inner.acked {
                dropped += (old.end() - inner.acked.max(old.first)) as usize;
                inner.acked = old.end();
            }
            if inner.loaded.as_ref().is_some_and(|(id, _)| *id == old.id) {
                inner.loaded = None;
            }
        }
    }

    fn write_tail(
        &self,
        inner: &mut SpoolInner,
        buf: &[u8],
        first: u64,
        n: u64,
    ) -> std::io::Result<()> {
        if inner.tail.is_some() && self.needs_new_segment(inner, buf.len() as u64) {
            self.seal(inner);
        }
        if inner.tail.is_none() {
            let id = inner.next_id;
            inner.next_id += 1;
            let mut f = std::fs::OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&self.dir, id))?;
            f.write_all(MAGIC)?;
            inner.segments.push_back(Segment {
                id,
                first,
                count: 0,
                bytes: MAGIC.len() as u64,
            });
            inner.bytes += on_disk(MAGIC.len() as u64);
            inner.tail = Some(f);
            // The new file's name must survive a power loss too.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        let tail = inner.tail.as_mut().expect("opened above");
        let r = tail.write_all(buf);
        let seg = inner.segments.back_mut().expect("tail segment");
        if r.is_ok() {
            if seg.count == 0 {
                seg.first = first;
            }
            if seg.first + seg.count == first {
                seg.count += n;
            }
            let before = on_disk(seg.bytes);
            seg.bytes += buf.len() as u64;
            let grown = on_disk(seg.bytes) - before;
            inner.bytes += grown;
            inner.unsynced += buf.len() as u64;
            inner.unsynced_since.get_or_insert_with(Instant::now);
        } else {
            // A partly written record would end the segment's replay:
            // start a new segment for what follows.
            self.seal(inner);
        }
        r
    }

    /// Seals the tail: later appends go to a new segment.
    fn seal(&self, inner: &mut SpoolInner) {
        if let Some(f) = inner.tail.take() {
            inner.unsynced_sealed.push(f);
            inner.unsynced_since.get_or_insert_with(Instant::now);
        }
    }

    /// Up to `n` metrics from disk starting at sequence `from` (or the
    /// first one after it that is on disk), with the sequence number of the
    /// first. The tail is sealed first when `from` is in it.
    pub fn peek(&self, from: u64, n: usize) -> Option<(u64, Chunk)> {
        let mut inner = self.lock();
        let seg = *inner
            .segments
            .iter()
            .find(|s| s.end() > from && s.count > 0)?;
        let is_tail = inner.tail.is_some() && inner.segments.back().is_some_and(|s| s.id == seg.id);
        if is_tail {
            self.seal(&mut inner);
        }
        if inner.loaded.as_ref().is_none_or(|(id, _)| *id != seg.id) {
            let (items, _) = read_segment(&segment_path(&self.dir, seg.id));
            inner.loaded = Some((seg.id, items));
        }
        let (_, chunk) = inner.loaded.as_ref().expect("loaded above");
        let start = from.saturating_sub(seg.first) as usize;
        if start >= chunk.len() {
            // Damaged since it was indexed: nothing more in it.
            let k = chunk.len() as u64;
            if let Some(s) = inner.segments.iter_mut().find(|s| s.id == seg.id) {
                s.count = k;
            }
            drop(inner);
            return self.peek(seg.first + seg.count, n);
        }
        let mut out = Chunk::default();
        out.extend_range(chunk, start..chunk.len().min(start + n));
        Some((seg.first + start as u64, out))
    }

    /// Marks every metric before sequence `upto` delivered; deletes the
    /// sealed segments that holds only delivered ones.
    pub fn ack(&self, upto: u64) {
        let mut inner = self.lock();
        if upto <= inner.acked {
            return;
        }
        inner.acked = upto.min(inner.written);
        inner.unsynced_since.get_or_insert_with(Instant::now);
        let tail_id = inner.tail.as_ref().and(inner.segments.back().map(|s| s.id));
        while let Some(s) = inner.segments.front().copied() {
            if s.end() > inner.acked || Some(s.id) == tail_id {
                break;
            }
            inner.segments.pop_front();
            inner.bytes -= on_disk(s.bytes);
            let _ = std::fs::remove_file(segment_path(&self.dir, s.id));
            if inner.loaded.as_ref().is_some_and(|(id, _)| *id == s.id) {
                inner.loaded = None;
            }
        }
    }

    /// When the next group sync is due, if anything waits for one.
    pub fn sync_due(&self) -> Option<Instant> {
        let i = self.lock();
        if i.unsynced >= SYNC_BYTES {
            return Some(Instant::now());
        }
        i.unsynced_since.map(|t| t + self.sync_every)
    }

    /// The group sync: what was written reaches the disk (fsync), and the
    /// delivered position is saved. Blocks; call it off the async workers.
    pub fn sync(&self) -> std::io::Result<()> {
        let (tail, sealed, acked) = {
            let mut i = self.lock();
            i.unsynced = 0;
            i.unsynced_since = None;
            if i.acked == i.written && i.tail.is_some() {
                // All delivered: the tail goes too (at most one file
                // begun and deleted per sync while the backend keeps up).
                i.tail = None;
                while let Some(s) = i.segments.pop_front() {
                    i.bytes -= on_disk(s.bytes);
                    let _ = std::fs::remove_file(segment_path(&self.dir, s.id));
                }
                i.loaded = None;
                i.acked_saved = u64::MAX;
            }
            let tail = i.tail.as_ref().map(|f| f.try_clone()).transpose()?;
            let sealed = std::mem::take(&mut i.unsynced_sealed);
            // The position saved: the segment holding `acked` and how far
            // in, or (all delivered) the id the next segment will have.
            let at = match i.segments.iter().find(|s| s.end() > i.acked) {
                Some(s) => (s.id, i.acked - s.first.min(i.acked)),
                None => (i.next_id, 0),
            };
            let changed = i.acked != i.acked_saved;
            i.acked_saved = i.acked;
            (tail, sealed, changed.then_some(at))
        };
        for f in sealed.iter().chain(tail.iter()) {
            f.sync_data()?;
        }
        if let Some((id, k)) = acked {
            write_acked(&self.dir, id, k)?;
        }
        Ok(())
    }
}

//! A handler's on-disk spool: checksummed segment files that take what does
//! not fit in its memory queue (and what is left at a stop), bounded by
//! `spool_max_mb` (the oldest dropped, counted), delivered first at the next
//! start.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::record::{decode, encode, Reader};
use crate::metric::Chunk;

/// An on-disk spool shared by the handlers that name its directory.
pub struct Spool {
    pub(super) dir: PathBuf,
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

pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.spool"))
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

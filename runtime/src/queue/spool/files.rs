//! The spool's files: segment names, reading a segment back, the saved
//! delivered position, and the disk space they take of the quota.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::bytes::Bytes;
use super::{codec, legacy};
use super::{MAGIC, MAGIC_V1};
use crate::metric::Chunk;

/// The disk's allocation unit the quota counts in.
pub(super) const BLOCK: u64 = 4096;
/// What the lock file and the delivered position take of the quota.
pub const RESERVED: u64 = 2 * BLOCK;

/// The disk space a file of `bytes` takes (whole blocks).
pub(super) fn on_disk(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK) * BLOCK
}

/// A record larger than the spool's whole quota: not written.
#[derive(Debug, thiserror::Error)]
#[error("a record of {metrics} metrics ({bytes} bytes on disk) does not fit in the spool's quota of {quota} bytes (spool_max_mb, or the tenant's share of max_spool_mb): dropped")]
pub struct Refused {
    /// Metrics in it.
    pub metrics: usize,
    /// Bytes it would take.
    pub bytes: u64,
    /// The spool's quota.
    pub quota: u64,
}

pub(in crate::queue) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.spool"))
}

/// The saved delivered position: (segment id, metrics delivered in it).
pub(super) fn read_acked(dir: &Path) -> Option<(u64, u64)> {
    let b = std::fs::read(dir.join("acked")).ok()?;
    if b.len() != 20 || crc32fast::hash(&b[..16]).to_le_bytes() != b[16..20] {
        return None;
    }
    let id = u64::from_le_bytes(b[0..8].try_into().ok()?);
    let k = u64::from_le_bytes(b[8..16].try_into().ok()?);
    Some((id, k))
}

pub(super) fn write_acked(dir: &Path, id: u64, k: u64) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(20);
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&k.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    // One 20-byte write in place: a torn one fails its checksum and the
    // next start re-delivers its segment (duplicates, never a loss).
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("acked"))?;
    f.write_all_at(&b, 0)?;
    f.sync_data()
}

/// Reads a segment; `true` when it ended in a damaged record.
pub(super) fn read_segment(path: &Path) -> (Chunk, bool) {
    let Ok(data) = std::fs::read(path) else {
        return (Chunk::default(), true);
    };
    let per_chunk = data.starts_with(MAGIC);
    if !per_chunk && !data.starts_with(MAGIC_V1) {
        return (Chunk::default(), !data.is_empty());
    }
    let mut r = Bytes(&data[MAGIC.len()..]);
    let mut out = Chunk::default();
    let mut last = None;
    while !r.is_empty() {
        let Some((len, crc)) = r.u32().zip(r.u32()) else {
            return (out, true);
        };
        let Some(rec) = r.take(len as usize) else {
            return (out, true);
        };
        if crc32fast::hash(rec) != crc {
            return (out, true);
        }
        if per_chunk {
            match codec::decode(rec) {
                Some(c) => out.extend_range(&c, 0..c.len()),
                None => return (out, true),
            }
        } else if legacy::decode(rec, &mut last, &mut out).is_none() {
            return (out, true);
        }
    }
    (out, false)
}

//! A chunk's columns, taken apart and put back together: what the spool
//! stores (`queue/spool/codec.rs` lays them out as bytes). Put back, every
//! invariant of [`Chunk`] is checked again: columns that passed the
//! spool's checksum but do not hold together are refused, never a panic
//! later.

use std::sync::Arc;

use wdiamond_wire::columns::fits;

use super::{Chunk, Source};
use crate::metric::name::ALLOWED;

/// A chunk's columns, owned (see [`Chunk`] for what each holds).
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub lines: String,
    pub line_ends: Vec<u32>,
    pub path_lens: Vec<u16>,
    pub values: Vec<f64>,
    pub precisions: Vec<u8>,
    pub counters: Vec<u8>,
    pub timestamps: Vec<u64>,
    pub raw_values: Vec<f64>,
    pub source_ids: Vec<u16>,
    pub sources: Vec<Arc<Source>>,
}

/// A chunk's columns, borrowed.
pub(crate) struct ColumnsRef<'a> {
    pub lines: &'a str,
    pub line_ends: &'a [u32],
    pub path_lens: &'a [u16],
    pub values: &'a [f64],
    pub precisions: &'a [u8],
    pub counters: &'a [u8],
    pub timestamps: &'a [u64],
    pub raw_values: &'a [f64],
    pub source_ids: &'a [u16],
    pub sources: &'a [Arc<Source>],
}

impl Chunk {
    /// Its columns, for the spool to write.
    pub(crate) fn columns(&self) -> ColumnsRef<'_> {
        ColumnsRef {
            lines: &self.lines,
            line_ends: &self.line_ends,
            path_lens: &self.path_lens,
            values: &self.values,
            precisions: &self.precisions,
            counters: &self.counters,
            timestamps: &self.timestamps,
            raw_values: &self.raw_values,
            source_ids: &self.source_ids,
            sources: &self.sources,
        }
    }

    /// A chunk of columns read back; `None` if they do not hold together.
    pub(crate) fn from_columns(c: Columns) -> Option<Chunk> {
        let n = c.line_ends.len();
        if c.path_lens.len() != n || c.values.len() != n {
            return None;
        }
        if n > 0
            && !(fits(&c.precisions, n)
                && fits(&c.counters, n)
                && fits(&c.timestamps, n)
                && fits(&c.raw_values, n)
                && fits(&c.source_ids, n))
        {
            return None;
        }
        // Lines: increasing ends, the last at the end; each starting with
        // a path of allowed bytes.
        let mut start = 0usize;
        for (i, &end) in c.line_ends.iter().enumerate() {
            let end = end as usize;
            let path = c.path_lens[i] as usize;
            if end < start || end > c.lines.len() || path == 0 || start + path > end {
                return None;
            }
            if !c.lines.as_bytes()[start..start + path]
                .iter()
                .all(|&b| ALLOWED[b as usize])
            {
                return None;
            }
            start = end;
        }
        if start != c.lines.len()
            || c.source_ids.iter().any(|&s| s as usize >= c.sources.len())
            || c.counters.iter().any(|&k| k > 1)
        {
            return None;
        }
        Some(Chunk {
            lines: c.lines,
            line_ends: c.line_ends,
            path_lens: c.path_lens,
            values: c.values,
            precisions: c.precisions,
            counters: c.counters,
            timestamps: c.timestamps,
            raw_values: c.raw_values,
            source_ids: c.source_ids,
            sources: c.sources,
            stamp: (u64::MAX, String::new()),
        })
    }
}

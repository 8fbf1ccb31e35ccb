//! What a handler gets: a [`Batch`] of slices of queued chunks (cutting it
//! copies nothing).

use crate::metric::Chunk;
use std::sync::Arc;

/// Metrics `range` of a shared chunk: part of a queued run, not copied.
#[derive(Debug, Clone)]
pub struct Slice {
    chunk: Arc<Chunk>,
    /// Which of its metrics; never empty.
    range: std::ops::Range<usize>,
}

impl Slice {
    /// The slice's Diamond lines, concatenated.
    pub fn lines(&self) -> &str {
        let c = &self.chunk;
        &c.lines[c.start(self.range.start)..c.line_ends[self.range.end - 1] as usize]
    }
}

/// A handler's batch as the queue hands it out: slices of the queued
/// chunks, in order, shared with the queue (and the other handlers'
/// queues) instead of copied. At most [`MAX_LINES`] bytes of lines, so
/// [`Batch::to_chunk`] fits a chunk.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    slices: Vec<Slice>,
}

impl Batch {
    /// How many metrics.
    pub fn len(&self) -> usize {
        self.slices.iter().map(|s| s.range.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Appends metrics `range` of `chunk` (no copy).
    pub fn push(&mut self, chunk: &Arc<Chunk>, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.slices.push(Slice {
            chunk: chunk.clone(),
            range,
        });
    }

    /// The slices, in order.
    pub fn slices(&self) -> &[Slice] {
        &self.slices
    }

    /// Bytes of lines.
    pub fn lines_len(&self) -> usize {
        self.slices.iter().map(|s| s.lines().len()).sum()
    }

    /// The metrics copied into one chunk (what a handler's `columns`
    /// reads, and tests).
    pub fn to_chunk(&self) -> Chunk {
        let mut out = Chunk::with_capacity(self.len(), self.lines_len());
        for s in &self.slices {
            out.extend_range(&s.chunk, s.range.clone());
        }
        out
    }
}

impl From<Chunk> for Batch {
    fn from(c: Chunk) -> Batch {
        Batch::from(Arc::new(c))
    }
}

impl From<Arc<Chunk>> for Batch {
    fn from(c: Arc<Chunk>) -> Batch {
        let mut b = Batch::default();
        let n = c.len();
        b.push(&c, 0..n);
        b
    }
}

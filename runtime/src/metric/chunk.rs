//! The columnar store a run's metrics travel in: one [`Chunk`] of paths,
//! values and the Diamond lines formatted once, shared by every handler's
//! queue.

use crate::bindings::types::MetricBatch;
use crate::bindings::types::MetricKind;
use crate::bindings::types::MetricSource;
use crate::metric::Rejection;
use std::sync::Arc;
use wdiamond_wire::columns::{at, expand, extend_shared, share};

use super::name::{check_value, shown, ALLOWED};

mod columns;

pub(crate) use columns::Columns;

/// Most bytes of lines one chunk holds: its offsets are `u32`, and a
/// chunk is also what one spill or batch copies at most.
pub const MAX_LINES: usize = 1 << 30;
/// Where a published metric came from; shared by all metrics of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The host name used in the paths (Diamond's `metric.host`).
    pub host: String,
    /// The collector instance.
    pub collector: String,
    /// Its tenant.
    pub tenant: Option<String>,
    /// Diamond's ttl, seconds.
    pub ttl: u32,
}

/// One published metric, read from a [`Chunk`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published<'a> {
    /// The full path.
    pub path: &'a str,
    /// Diamond's line for it, `path value timestamp\n`.
    pub line: &'a str,
    /// The value; finite.
    pub value: f64,
    /// Decimals to print.
    pub precision: u8,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// Diamond's `raw_value`.
    pub raw_value: Option<f64>,
    /// Where it came from.
    pub source: &'a Arc<Source>,
}

/// Checked metrics in the columns a handler's `metric-batch` has, each
/// with its Diamond line (`str(metric)`: `path value timestamp\n`)
/// formatted once for every handler: what a collector run publishes, what
/// the queues hold (shared between handlers through an `Arc`), what the
/// spool reads back. One allocation per column, none per metric.
///
/// Invariants (kept by every constructor): `lines` holds one line per
/// metric whose first `path_lens[i]` bytes are a path of allowed ASCII
/// bytes, followed by the value and timestamp of the other columns;
/// `line_ends` is increasing and ends at `lines.len()`; `path_lens` and
/// `values` have one entry per metric, the other columns one per metric
/// or a single shared one (as in the WIT's `metric-batch`); every source
/// id indexes `sources`.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub(super) lines: String,
    pub(super) line_ends: Vec<u32>,
    path_lens: Vec<u16>,
    values: Vec<f64>,
    pub(super) precisions: Vec<u8>,
    counters: Vec<u8>,
    pub(super) timestamps: Vec<u64>,
    raw_values: Vec<f64>,
    pub(super) source_ids: Vec<u16>,
    sources: Vec<Arc<Source>>,
    /// The last timestamp printed, and its digits (runs share one).
    stamp: (u64, String),
}

impl Default for Chunk {
    fn default() -> Chunk {
        Chunk::with_capacity(0, 0)
    }
}

impl Chunk {
    /// An empty chunk with room for `n` metrics and `bytes` of lines.
    pub fn with_capacity(n: usize, bytes: usize) -> Chunk {
        Chunk {
            lines: String::with_capacity(bytes),
            line_ends: Vec::with_capacity(n),
            path_lens: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            precisions: Vec::new(),
            counters: Vec::new(),
            timestamps: Vec::new(),
            raw_values: Vec::new(),
            source_ids: Vec::new(),
            sources: Vec::new(),
            stamp: (u64::MAX, String::new()),
        }
    }

    /// How many metrics.
    pub fn len(&self) -> usize {
        self.line_ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.line_ends.is_empty()
    }

    pub(super) fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.line_ends[i - 1] as usize
        }
    }

    /// Every metric's Diamond line, concatenated.
    pub fn lines(&self) -> &str {
        &self.lines
    }

    /// How many of the (at most `n`) metrics from `from` have lines of at
    /// most `bytes` bytes together.
    pub fn fitting(&self, from: usize, n: usize, bytes: usize) -> usize {
        let end = (from + n).min(self.len());
        let limit = self.start(from) + bytes;
        self.line_ends[from..end].partition_point(|&e| e as usize <= limit)
    }

    /// Metric `i` (panics past the end).
    pub fn get(&self, i: usize) -> Published<'_> {
        let raw = at(&self.raw_values, i);
        let start = self.start(i);
        Published {
            path: &self.lines[start..start + self.path_lens[i] as usize],
            line: &self.lines[start..self.line_ends[i] as usize],
            value: self.values[i],
            precision: at(&self.precisions, i),
            kind: if at(&self.counters, i) == 1 {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            },
            timestamp: at(&self.timestamps, i),
            raw_value: (!raw.is_nan()).then_some(raw),
            source: &self.sources[at(&self.source_ids, i) as usize],
        }
    }

    /// The metrics, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Published<'_>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The id of `source` in this chunk, adding it if new (runs of one
    /// source are the common case: the last one is compared first).
    pub(super) fn source_id(&mut self, source: &Arc<Source>) -> u16 {
        if let Some(last) = self.sources.last() {
            if Arc::ptr_eq(last, source) {
                return (self.sources.len() - 1) as u16;
            }
        }
        match self
            .sources
            .iter()
            .position(|s| Arc::ptr_eq(s, source) || **s == **source)
        {
            Some(k) => k as u16,
            None if self.sources.len() < u16::MAX as usize => {
                self.sources.push(source.clone());
                (self.sources.len() - 1) as u16
            }
            None => 0,
        }
    }

    /// Ends the line whose path was just written from `line_start`:
    /// appends the value and timestamp text and fills the other columns.
    /// A path longer than `u16::MAX` bytes, or a line past [`MAX_LINES`]
    /// bytes of lines, is taken back and refused (the offsets are `u32`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_line(
        &mut self,
        line_start: usize,
        value: f64,
        precision: u8,
        kind: MetricKind,
        timestamp: u64,
        raw_value: Option<f64>,
        source: u16,
    ) -> Result<(), Rejection> {
        let path_len = self.lines.len() - line_start;
        let refused = if path_len > u16::MAX as usize {
            Some(format!("its full path is over {} bytes", u16::MAX))
        } else if self.lines.len() > MAX_LINES {
            Some(format!("one run's lines are over {MAX_LINES} bytes"))
        } else {
            None
        };
        if let Some(why) = refused {
            let shown = shown(&self.lines.as_bytes()[line_start..]);
            self.lines.truncate(line_start);
            return Err(Rejection::Name(format!("{shown}: {why}")));
        }
        self.lines.push(' ');
        wdiamond_wire::push_fixed(&mut self.lines, value, precision);
        self.lines.push(' ');
        if self.stamp.0 != timestamp {
            self.stamp.1.clear();
            wdiamond_wire::push_uint(&mut self.stamp.1, timestamp);
            self.stamp.0 = timestamp;
        }
        self.lines.push_str(&self.stamp.1);
        self.lines.push('\n');
        let n = self.len();
        let eq = |a: u8, b: u8| a == b;
        extend_shared(&mut self.precisions, n, precision, 1, eq);
        extend_shared(
            &mut self.counters,
            n,
            u8::from(kind == MetricKind::Counter),
            1,
            eq,
        );
        extend_shared(&mut self.timestamps, n, timestamp, 1, |a, b| a == b);
        let raw = raw_value.unwrap_or(f64::NAN);
        extend_shared(&mut self.raw_values, n, raw, 1, |a, b| {
            a.to_bits() == b.to_bits()
        });
        extend_shared(&mut self.source_ids, n, source, 1, |a, b| a == b);
        self.line_ends.push(self.lines.len() as u32);
        self.path_lens.push(path_len as u16);
        self.values.push(value);
        Ok(())
    }

    /// Appends one metric whose path the host built (health metrics,
    /// `collector_time_ms`, the spool). A path that is not a valid name is
    /// refused.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        path: &str,
        value: f64,
        precision: u8,
        kind: MetricKind,
        timestamp: u64,
        raw_value: Option<f64>,
        source: &Arc<Source>,
    ) -> Result<(), Rejection> {
        if path.is_empty() || !path.bytes().all(|b| ALLOWED[b as usize]) {
            return Err(Rejection::Name(shown(path.as_bytes())));
        }
        check_value(value, precision, || shown(path.as_bytes()))?;
        let id = self.source_id(source);
        let start = self.lines.len();
        self.lines.push_str(path);
        self.finish_line(start, value, precision, kind, timestamp, raw_value, id)
    }

    /// Appends metrics `range` of `other` (block copies).
    pub fn extend_range(&mut self, other: &Chunk, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        // Metrics before these (the shared columns need it).
        let n = self.len();
        let (from, to) = (
            other.start(range.start),
            other.line_ends[range.end - 1] as usize,
        );
        let shift = self.lines.len() as i64 - from as i64;
        self.lines.push_str(&other.lines[from..to]);
        self.line_ends.extend(
            other.line_ends[range.clone()]
                .iter()
                .map(|&e| (e as i64 + shift) as u32),
        );
        self.path_lens
            .extend_from_slice(&other.path_lens[range.clone()]);
        self.values.extend_from_slice(&other.values[range.clone()]);
        let map: Vec<u16> = other.sources.iter().map(|s| self.source_id(s)).collect();
        let k = range.len();
        fn copy<T: Copy>(
            dst: &mut Vec<T>,
            n: usize,
            src: &[T],
            range: std::ops::Range<usize>,
            same: impl Fn(T, T) -> bool,
        ) {
            if src.len() == 1 {
                extend_shared(dst, n, src[0], range.len(), same);
            } else {
                expand(dst, n);
                dst.extend_from_slice(&src[range]);
            }
        }
        copy(
            &mut self.precisions,
            n,
            &other.precisions,
            range.clone(),
            |a, b| a == b,
        );
        copy(
            &mut self.counters,
            n,
            &other.counters,
            range.clone(),
            |a, b| a == b,
        );
        copy(
            &mut self.timestamps,
            n,
            &other.timestamps,
            range.clone(),
            |a, b| a == b,
        );
        copy(
            &mut self.raw_values,
            n,
            &other.raw_values,
            range.clone(),
            |a, b| a.to_bits() == b.to_bits(),
        );
        if other.source_ids.len() == 1 {
            let id = map[other.source_ids[0] as usize];
            extend_shared(&mut self.source_ids, n, id, k, |a, b| a == b);
        } else {
            expand(&mut self.source_ids, n);
            self.source_ids
                .extend(other.source_ids[range].iter().map(|&s| map[s as usize]));
        }
    }

    /// The `metric-batch` a handler receives: the columns move, nothing is
    /// copied per metric; a column whose entries are all equal is sent as
    /// one shared entry.
    pub fn into_batch(mut self) -> MetricBatch {
        share(&mut self.precisions, |a, b| a == b);
        share(&mut self.counters, |a, b| a == b);
        share(&mut self.timestamps, |a, b| a == b);
        share(&mut self.raw_values, |a, b| a.to_bits() == b.to_bits());
        share(&mut self.source_ids, |a, b| a == b);
        MetricBatch {
            lines: self.lines.into_bytes(),
            line_ends: self.line_ends,
            path_lens: self.path_lens,
            values: self.values,
            precisions: self.precisions,
            counters: self.counters,
            timestamps: self.timestamps,
            raw_values: self.raw_values,
            source_ids: self.source_ids,
            sources: self
                .sources
                .iter()
                .map(|s| MetricSource {
                    host: s.host.clone(),
                    collector: s.collector.clone(),
                    tenant: s.tenant.clone(),
                    ttl: s.ttl,
                })
                .collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Chunk {
    type Item = Published<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Published<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::bindings::types::MetricKind;

    fn source() -> Arc<Source> {
        Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: None,
            ttl: 20,
        })
    }

    #[test]
    fn chunks_keep_shared_columns_and_read_back_exactly() {
        let src = source();
        let mut a = Chunk::default();
        for i in 0..4 {
            a.push(
                &format!("a.m{i}"),
                i as f64,
                2,
                MetricKind::Gauge,
                100,
                None,
                &src,
            )
            .unwrap();
        }
        // Every column but the lines, ends, path lengths and values is one
        // shared entry.
        assert_eq!(
            (a.precisions.len(), a.timestamps.len(), a.source_ids.len()),
            (1, 1, 1)
        );
        let mut b = Chunk::default();
        b.push("b.x", 0.125, 3, MetricKind::Counter, 101, Some(7.0), &src)
            .unwrap();
        let mut c = Chunk::default();
        c.extend_range(&a, 1..3);
        c.extend_range(&b, 0..1);
        c.extend_range(&a, 3..4);
        let got: Vec<String> = c.iter().map(|m| m.line.to_string()).collect();
        assert_eq!(
            got,
            [
                "a.m1 1.00 100\n",
                "a.m2 2.00 100\n",
                "b.x 0.125 101\n",
                "a.m3 3.00 100\n"
            ]
        );
        let x = c.get(2);
        assert_eq!(
            (x.path, x.precision, x.kind, x.timestamp, x.raw_value),
            ("b.x", 3, MetricKind::Counter, 101, Some(7.0))
        );
        assert_eq!((c.get(3).precision, c.get(3).raw_value), (2, None));
        assert_eq!(c.lines(), got.concat());
        let batch = c.into_batch();
        assert_eq!(batch.precisions, [2, 2, 3, 2]);
        assert_eq!(batch.source_ids, [0], "one source: shared");
        assert_eq!(batch.path_lens, [4, 4, 3, 4]);
        assert_eq!(batch.lines, got.concat().into_bytes());
    }

    #[test]
    fn host_made_paths_are_checked() {
        let src = source();
        let mut c = Chunk::default();
        assert!(c
            .push("a b", 1.0, 0, MetricKind::Gauge, 1, None, &src)
            .is_err());
        assert!(c
            .push("a.b", f64::NAN, 0, MetricKind::Gauge, 1, None, &src)
            .is_err());
        assert!(c
            .push("", 1.0, 0, MetricKind::Gauge, 1, None, &src)
            .is_err());
        assert!(c.is_empty());
    }

    #[test]
    fn overlong_paths_are_refused_and_taken_back() {
        let src = source();
        let mut c = Chunk::default();
        c.push("a.b", 1.0, 0, MetricKind::Gauge, 5, None, &src)
            .unwrap();
        let long = "x".repeat(u16::MAX as usize + 1);
        let e = c
            .push(&long, 1.0, 0, MetricKind::Gauge, 5, None, &src)
            .unwrap_err();
        assert!(e.to_string().contains("over 65535 bytes"), "{e}");
        assert_eq!(
            c.lines(),
            "a.b 1 5\n",
            "the refused line left nothing behind"
        );
        // How many lines fit a byte budget.
        c.push("a.c", 2.0, 0, MetricKind::Gauge, 5, None, &src)
            .unwrap();
        assert_eq!(c.fitting(0, 2, 8), 1);
        assert_eq!(c.fitting(0, 2, 16), 2);
        assert_eq!(c.fitting(1, 5, 8), 1);
        assert_eq!(c.fitting(0, 2, 7), 0);
    }
}

//! From what a collector returns to what handlers receive: Diamond's metric
//! paths, the host's checks on untrusted guest output, and the filters.

use std::sync::Arc;

use wdiamond_wire::columns::{at, expand, extend_shared, fits, share};

use crate::bindings::types::{Metric, MetricBatch, MetricKind, MetricSet, MetricSource};
use crate::config::CollectorConfig;
use crate::series::{Resolved, SeriesTable, NAMED};

/// Longest metric name accepted from a guest, bytes.
pub const MAX_NAME: usize = 255;
/// Most bytes of lines one chunk holds: its offsets are `u32`, and a
/// chunk is also what one spill or batch copies at most.
pub const MAX_LINES: usize = 1 << 30;
/// Most decimals accepted.
pub const MAX_PRECISION: u8 = 15;

/// Why a guest's metric was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Empty, too long, a bad character, or an empty path segment.
    #[error("bad name {0}")]
    Name(String),
    /// NaN or infinite.
    #[error("value of {0} is not finite")]
    Value(String),
    /// More decimals than [`MAX_PRECISION`].
    #[error("precision of {0} is over {MAX_PRECISION}")]
    Precision(String),
    /// The columns do not agree.
    #[error("malformed metric set: {0}")]
    Malformed(String),
}

/// Bytes allowed in a name: ASCII letters, digits and `_-:#@%+=()[],.`.
const ALLOWED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let extra = b"_-:#@%+=()[],.";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// A shortened, printable rendering of an untrusted name for logs.
fn shown(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    let mut s: String = name.chars().take(80).collect();
    if name.chars().count() > 80 {
        s.push('…');
    }
    format!("{s:?}")
}

/// Checks a name (or an instance) from a guest: 1 to [`MAX_NAME`]
/// allowed bytes, no empty `.`-separated segment. One pass, no allocation.
pub fn check_name_bytes(name: &[u8]) -> Result<&str, Rejection> {
    let mut ok = !name.is_empty() && name.len() <= MAX_NAME;
    // The byte before the current one; '.' first, so a leading dot fails.
    let mut prev = b'.';
    for &b in name {
        ok &= ALLOWED[b as usize] & !(b == b'.' && prev == b'.');
        prev = b;
    }
    ok &= prev != b'.';
    match std::str::from_utf8(name) {
        Ok(s) if ok => Ok(s),
        _ => Err(Rejection::Name(shown(name))),
    }
}

/// Checks a metric's value (finite) and precision (at most
/// [`MAX_PRECISION`]); `what` names the metric in the rejection.
fn check_value(value: f64, precision: u8, what: impl Fn() -> String) -> Result<(), Rejection> {
    if !value.is_finite() {
        Err(Rejection::Value(what()))
    } else if precision > MAX_PRECISION {
        Err(Rejection::Precision(what()))
    } else {
        Ok(())
    }
}

/// Checks a name (or an instance) from a guest.
pub fn check_name(name: &str) -> Result<(), Rejection> {
    check_name_bytes(name.as_bytes()).map(|_| ())
}

/// Builds full metric paths the way Diamond's `get_metric_path` does.
#[derive(Debug, Clone, PartialEq)]
pub struct PathBuilder {
    prefix: String,
    path: String,
    instance_prefix: String,
    /// The host name used (`""` when `hostname_method = "none"`).
    pub hostname: String,
}

impl PathBuilder {
    /// For a collector with its resolved host name and default path.
    pub fn new(c: &CollectorConfig, hostname: Option<&str>, default_path: &str) -> Self {
        let mut prefix = c.path_prefix.clone();
        if let Some(h) = hostname {
            prefix = if prefix.is_empty() {
                h.to_string()
            } else {
                format!("{prefix}.{h}")
            };
        }
        if !c.path_suffix.is_empty() {
            // Diamond would give ".suffix" with an empty prefix; we don't.
            prefix = if prefix.is_empty() {
                c.path_suffix.clone()
            } else {
                format!("{prefix}.{}", c.path_suffix)
            };
        }
        PathBuilder {
            prefix,
            path: c.path.clone().unwrap_or_else(|| default_path.to_string()),
            instance_prefix: c.instance_prefix.clone(),
            hostname: hostname.unwrap_or_default().to_string(),
        }
    }

    /// The path every name of a metric is appended to (Diamond's
    /// `prefix.hostname.suffix.path`, or `instance_prefix.instance.path`
    /// with an instance); may be empty.
    pub fn base(&self, instance: Option<&str>) -> String {
        let no_path = self.path.is_empty() || self.path == ".";
        let (first, second) = match instance {
            Some(i) => (self.instance_prefix.as_str(), i),
            None => (self.prefix.as_str(), ""),
        };
        let path = if no_path { "" } else { self.path.as_str() };
        let mut out = String::new();
        for p in [first, second, path].iter().filter(|p| !p.is_empty()) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
        out
    }

    /// The full path of `name` (with `instance`, Diamond's
    /// `instance_prefix.instance.path.name`).
    pub fn path(&self, name: &str, instance: Option<&str>) -> String {
        join(self.base(instance), name)
    }
}

/// `base.name`, or `name` when `base` is empty.
fn join(base: String, name: &str) -> String {
    let mut out = String::with_capacity(base.len() + 1 + name.len());
    push_path(&mut out, &base, name);
    out
}

/// Appends `base.name` (`name` alone when `base` is empty) to `out`:
/// Diamond's join of a prefix and a name, written in place.
pub(crate) fn push_path(out: &mut String, base: &str, name: &str) {
    out.push_str(base);
    if !base.is_empty() && !name.is_empty() {
        out.push('.');
    }
    out.push_str(name);
}

/// Diamond's whitelist/blacklist, anchored at the start of the name as
/// Python's `re.match`; the whitelist wins when both are set.
#[derive(Debug, Clone)]
pub struct Filter {
    whitelist: Option<regex::Regex>,
    blacklist: Option<regex::Regex>,
}

impl Filter {
    /// From a collector's config.
    pub fn new(c: &CollectorConfig) -> Self {
        let anchor = |r: &regex::Regex| {
            regex::Regex::new(&format!("^(?:{})", r.as_str())).expect("a valid regex stays valid")
        };
        Filter {
            whitelist: c.whitelist.as_ref().map(|f| anchor(&f.0)),
            blacklist: c.blacklist.as_ref().map(|f| anchor(&f.0)),
        }
    }

    /// Whether `name` is published.
    pub fn keep(&self, name: &str) -> bool {
        match (&self.whitelist, &self.blacklist) {
            (Some(w), _) => w.is_match(name),
            (None, Some(b)) => !b.is_match(name),
            (None, None) => true,
        }
    }
}

/// Everything needed to turn a collector's metrics into published ones.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Paths.
    pub paths: PathBuilder,
    /// Filters.
    pub filter: Filter,
    /// `ttl_multiplier * interval`, seconds.
    pub ttl: u32,
    /// Collector instance name.
    pub collector: String,
    /// The tenant, and the prefix every path is forced under.
    pub tenant: Option<(String, String)>,
}

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
    lines: String,
    line_ends: Vec<u32>,
    path_lens: Vec<u16>,
    values: Vec<f64>,
    precisions: Vec<u8>,
    counters: Vec<u8>,
    timestamps: Vec<u64>,
    raw_values: Vec<f64>,
    source_ids: Vec<u16>,
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

    fn start(&self, i: usize) -> usize {
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
    fn source_id(&mut self, source: &Arc<Source>) -> u16 {
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
    fn finish_line(
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

impl<'a> IntoIterator for &'a Chunk {
    type Item = Published<'a>;
    type IntoIter = Box<dyn ExactSizeIterator<Item = Published<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// What came out of checking one run's metrics.
#[derive(Debug, Default)]
pub struct Checked {
    /// Metrics to hand to the handlers, in order.
    pub published: Chunk,
    /// Filtered out by the whitelist/blacklist.
    pub filtered: usize,
    /// Rejected (the first few reasons kept for the log).
    pub rejected: usize,
    /// Up to 5 rejection reasons.
    pub reasons: Vec<Rejection>,
}

/// Where a published metric's path comes from.
enum PathOf<'a> {
    /// A declared series' path, made when it was declared.
    Series(&'a str),
    /// A declared series the filters leave out.
    Filtered,
    /// A checked name, and the index of its instance (if any).
    Name(&'a str, Option<usize>),
}

impl Publication {
    /// Checks a named metric's name and its instance (`instance_id`: 0
    /// for none, else 1 + an index into `instances`).
    fn named<'a>(
        &self,
        name: &'a [u8],
        instance_id: u16,
        instances: &[String],
    ) -> Result<(&'a str, Option<usize>), Rejection> {
        let name = check_name_bytes(name)?;
        let inst = match instance_id {
            0 => None,
            k => {
                let x = instances
                    .get(k as usize - 1)
                    .ok_or_else(|| Rejection::Malformed(format!("instance index {k}")))?;
                check_name(x)?;
                Some(k as usize - 1)
            }
        };
        Ok((name, inst))
    }

    /// The source record of this collector's metrics.
    pub fn source(&self) -> Arc<Source> {
        Arc::new(Source {
            host: self.paths.hostname.clone(),
            collector: self.collector.clone(),
            tenant: self.tenant.as_ref().map(|(t, _)| t.clone()),
            ttl: self.ttl,
        })
    }

    /// What names are appended to: the path builder's base under the
    /// tenant's forced prefix.
    pub(crate) fn base(&self, instance: Option<&str>) -> String {
        let base = self.paths.base(instance);
        match &self.tenant {
            Some((_, prefix)) => join(prefix.clone(), &base),
            None => base,
        }
    }

    /// The full path of `name` (host-made metrics such as
    /// `collector_time_ms`).
    pub fn path(&self, name: &str) -> String {
        join(self.base(None), name)
    }

    /// Checks and converts a guest's metrics; `now` is the default
    /// timestamp. A set that refers to declared series needs the
    /// instance's table: [`Publication::publish_with`].
    pub fn publish(&self, set: MetricSet, now: u64) -> Checked {
        self.publish_with(set, now, &mut SeriesTable::default())
    }

    /// Checks and converts a guest's metrics, its declared series taken
    /// from `series` (resolved here first if new ones were declared); `now`
    /// is the default timestamp. Paths are written straight into the
    /// chunk's column: a named metric's built from its name, a declared
    /// one's copied from the table.
    pub fn publish_with(&self, set: MetricSet, now: u64, series: &mut SeriesTable) -> Checked {
        let n = count(&set);
        let named = if set.series.is_empty() {
            n
        } else {
            set.series.iter().filter(|&&s| s == NAMED).count()
        };
        let ok = set.values.len() == n
            && set.name_ends.len() == named
            && fits(&set.precisions, n)
            && fits(&set.counters, n)
            && fits(&set.timestamps, n)
            && fits(&set.raw_values, n)
            && fits(&set.instance_ids, n);
        if !ok {
            let lens = [
                set.values.len(),
                set.precisions.len(),
                set.counters.len(),
                set.timestamps.len(),
                set.raw_values.len(),
                set.instance_ids.len(),
            ];
            return Checked {
                rejected: n,
                reasons: vec![Rejection::Malformed(format!(
                    "{n} metrics ({named} named, {} names), but columns of {lens:?} entries (each must have one per metric, or one shared)",
                    set.name_ends.len()
                ))],
                ..Default::default()
            };
        }
        if named < n {
            series.resolve(self);
        }
        let base = self.base(None);
        let mut out = Checked {
            // Room for every line at once (a regrowth copies them all):
            // paths, plus up to 32 bytes for the value, timestamp and
            // separators of a typical line.
            published: Chunk::with_capacity(
                n,
                set.names.len()
                    + named * (base.len() + 1)
                    + (n - named) * series.mean_path_len()
                    + n * 32,
            ),
            ..Default::default()
        };
        let source = self.source();
        let sid = out.published.source_id(&source);
        // Bases of the instances, built when first used.
        let mut instance_bases: Vec<Option<String>> = vec![None; set.instances.len()];
        // The next name of `names`: its index and where it starts.
        let (mut next_name, mut start) = (0usize, 0usize);
        for i in 0..n {
            let (value, precision) = (set.values[i], at(&set.precisions, i));
            // Where the path comes from, checked as a name is (name and
            // instance, value and precision, then the filters).
            let from = match set.series.get(i).copied().filter(|&s| s != NAMED) {
                Some(id) => match series.get(id) {
                    Some(Resolved::Path(path)) => Ok((PathOf::Series(path), path.as_bytes())),
                    Some(Resolved::Filtered) => Ok((PathOf::Filtered, &b"a filtered series"[..])),
                    Some(Resolved::Rejected(r)) => Err(r.clone()),
                    None => Err(Rejection::Malformed(format!(
                        "series {id} was not declared (this instance declared {})",
                        series.len()
                    ))),
                },
                None => {
                    let end = set.name_ends[next_name] as usize;
                    next_name += 1;
                    let name = set.names.get(start..end).unwrap_or(b"");
                    start = end.max(start);
                    self.named(name, at(&set.instance_ids, i), &set.instances)
                        .map(|(name, inst)| (PathOf::Name(name, inst), name.as_bytes()))
                }
            };
            let from = from.and_then(|(from, what)| {
                check_value(value, precision, || shown(what)).map(|_| from)
            });
            let c = &mut out.published;
            let line_start = c.lines.len();
            let check = match from {
                Err(r) => Err(r),
                Ok(PathOf::Filtered) => Ok(false),
                Ok(PathOf::Name(name, _)) if !self.filter.keep(name) => Ok(false),
                Ok(PathOf::Series(path)) => {
                    c.lines.push_str(path);
                    Ok(true)
                }
                Ok(PathOf::Name(name, inst)) => {
                    let base = match inst {
                        None => base.as_str(),
                        Some(k) => instance_bases[k]
                            .get_or_insert_with(|| self.base(Some(&set.instances[k])))
                            .as_str(),
                    };
                    push_path(&mut c.lines, base, name);
                    Ok(true)
                }
            };
            let written = check.and_then(|kept| {
                if !kept {
                    return Ok(false);
                }
                let (raw, timestamp) = (at(&set.raw_values, i), at(&set.timestamps, i));
                let kind = if at(&set.counters, i) == 1 {
                    MetricKind::Counter
                } else {
                    MetricKind::Gauge
                };
                let timestamp = if timestamp == 0 { now } else { timestamp };
                let raw = raw.is_finite().then_some(raw);
                c.finish_line(line_start, value, precision, kind, timestamp, raw, sid)
                    .map(|_| true)
            });
            match written {
                Ok(true) => {}
                Ok(false) => out.filtered += 1,
                Err(r) => {
                    out.rejected += 1;
                    if out.reasons.len() < 5 {
                        out.reasons.push(r);
                    }
                }
            }
        }
        out
    }
}

/// Packs metrics into a collector's columns (what a guest's publisher
/// builds); for tests and tools that hold `metric` records.
pub fn set_of(metrics: Vec<Metric>) -> MetricSet {
    let mut set = MetricSet {
        names: Vec::new(),
        name_ends: Vec::new(),
        values: Vec::new(),
        precisions: Vec::new(),
        counters: Vec::new(),
        timestamps: Vec::new(),
        raw_values: Vec::new(),
        instance_ids: Vec::new(),
        instances: Vec::new(),
        series: Vec::new(),
    };
    for m in metrics {
        set.names.extend_from_slice(m.name.as_bytes());
        set.name_ends.push(set.names.len() as u32);
        set.values.push(m.value);
        set.precisions.push(m.precision);
        set.counters.push(u8::from(m.kind == MetricKind::Counter));
        set.timestamps.push(m.timestamp.unwrap_or(0));
        set.raw_values.push(m.raw_value.unwrap_or(f64::NAN));
        set.instance_ids.push(match m.instance {
            None => 0,
            Some(i) => {
                set.instances.push(i);
                set.instances.len() as u16
            }
        });
    }
    set
}

/// How many metrics a set holds (named and declared).
pub fn count(set: &MetricSet) -> usize {
    if set.series.is_empty() {
        set.name_ends.len()
    } else {
        set.series.len()
    }
}

/// Keeps the first `n` metrics of a set.
pub fn truncate(set: &mut MetricSet, n: usize) {
    let total = count(set);
    if n >= total {
        return;
    }
    let names = if set.series.is_empty() {
        n
    } else {
        set.series[..n].iter().filter(|&&s| s == NAMED).count()
    };
    let bytes = match names {
        0 => 0,
        k => set
            .name_ends
            .get(k - 1)
            .map_or(set.names.len(), |&e| e as usize),
    };
    set.names.truncate(bytes);
    set.name_ends.truncate(names);
    set.values.truncate(n);
    set.series.truncate(n);
    // A shared column (one entry) stays shared unless nothing is left.
    fn cut<T>(col: &mut Vec<T>, n: usize, total: usize) {
        if col.len() == total || n == 0 {
            col.truncate(n);
        }
    }
    cut(&mut set.precisions, n, total);
    cut(&mut set.counters, n, total);
    cut(&mut set.timestamps, n, total);
    cut(&mut set.raw_values, n, total);
    cut(&mut set.instance_ids, n, total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(toml: &str) -> CollectorConfig {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        crate::config::load(&p).unwrap().collectors.remove(0)
    }

    #[test]
    fn paths_as_diamond() {
        let c = collector("[collectors.cpu]\n");
        let p = PathBuilder::new(&c, Some("web1"), "cpu");
        assert_eq!(p.path("total.idle", None), "servers.web1.cpu.total.idle");
        assert_eq!(p.path("x", Some("db2")), "instances.db2.cpu.x");
        let c =
            collector("[collectors.cpu]\npath_prefix = \"\"\npath_suffix = \"s\"\npath = \".\"\n");
        let p = PathBuilder::new(&c, Some("h"), "cpu");
        assert_eq!(p.path("n", None), "h.s.n");
        let p = PathBuilder::new(&c, None, "cpu");
        assert_eq!(p.path("n", None), "s.n");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("cpu0.idle").is_ok());
        assert!(check_name("IO-APIC-edge.timer.0.CPU0").is_ok());
        assert!(check_name("has space").is_err());
        assert!(check_name("new\nline").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name(&"x".repeat(10_000)).is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn whitelist_is_anchored_and_wins() {
        let c = collector(
            "[collectors.cpu]\nmetrics_whitelist = \"total\\\\.\"\nmetrics_blacklist = \"total\"\n",
        );
        let f = Filter::new(&c);
        assert!(f.keep("total.idle"));
        assert!(!f.keep("cpu0.total.idle"));
        let c = collector("[collectors.cpu]\nmetrics_blacklist = \"cpu[0-9]+\"\n");
        let f = Filter::new(&c);
        assert!(!f.keep("cpu1.idle"));
        assert!(f.keep("total.idle"));
    }

    #[test]
    fn chunks_keep_shared_columns_and_read_back_exactly() {
        let src = Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: None,
            ttl: 20,
        });
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
        let src = Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: None,
            ttl: 20,
        });
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
        let src = Arc::new(Source {
            host: "h".into(),
            collector: "c".into(),
            tenant: None,
            ttl: 20,
        });
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

    /// The publication of a `cpu` collector on host `web1`, with `keys`
    /// in its section.
    fn cpu_on_web1(keys: &str, tenant: Option<(String, String)>) -> Publication {
        let c = collector(&format!("[collectors.cpu]\n{keys}"));
        Publication {
            paths: PathBuilder::new(&c, Some("web1"), "cpu"),
            filter: Filter::new(&c),
            ttl: 1,
            collector: "cpu".into(),
            tenant,
        }
    }

    #[test]
    fn a_tenant_prefix_covers_host_made_paths() {
        let p = cpu_on_web1("", Some(("acme".into(), "tenants.acme".into())));
        assert_eq!(
            p.path("collector_time_ms"),
            "tenants.acme.servers.web1.cpu.collector_time_ms"
        );
    }

    fn gauge(name: &str, value: f64) -> Metric {
        Metric {
            name: name.into(),
            value,
            precision: 1,
            kind: MetricKind::Gauge,
            timestamp: None,
            instance: None,
            raw_value: None,
        }
    }

    #[test]
    fn declared_and_named_metrics_mix_in_one_set() {
        let p = cpu_on_web1("", None);
        let mut table = SeriesTable::default();
        table.declare(b"d0d1", &[2, 4], None, 10).unwrap();
        // named a, declared d1, named b, declared d0, unknown 7, declared NaN
        let mut set = set_of(vec![
            gauge("a", 1.0),
            gauge("", 2.0),
            gauge("b", 3.0),
            gauge("", 4.0),
            gauge("", 5.0),
            gauge("", f64::NAN),
        ]);
        set.names = b"ab".to_vec();
        set.name_ends = vec![1, 2];
        set.series = vec![NAMED, 1, NAMED, 0, 7, 0];
        let checked = p.publish_with(set.clone(), 9, &mut table);
        assert_eq!(
            checked.published.lines(),
            "servers.web1.cpu.a 1.0 9\nservers.web1.cpu.d1 2.0 9\nservers.web1.cpu.b 3.0 9\nservers.web1.cpu.d0 4.0 9\n"
        );
        assert_eq!(checked.rejected, 2, "{:?}", checked.reasons);
        assert!(checked.reasons[0]
            .to_string()
            .contains("series 7 was not declared"));
        assert!(matches!(checked.reasons[1], Rejection::Value(_)));
        // Without the table, declared metrics are unknown.
        assert_eq!(p.publish(set.clone(), 9).rejected, 4);
        // `max_metrics` keeps the first metrics, names and series alike.
        let mut cut = set.clone();
        truncate(&mut cut, 3);
        assert_eq!(
            (cut.series.len(), cut.name_ends.len(), cut.names.len()),
            (3, 2, 2)
        );
        assert_eq!(count(&cut), 3);
        let mut cut = set.clone();
        truncate(&mut cut, 2);
        assert_eq!((cut.name_ends.len(), cut.names.as_slice()), (1, &b"a"[..]));
        // Names that do not match the series column are malformed.
        let mut bad = set;
        bad.name_ends = vec![1];
        bad.names = b"a".to_vec();
        let checked = p.publish_with(bad, 9, &mut table);
        assert_eq!((checked.published.len(), checked.rejected), (0, 6));
    }

    #[test]
    fn declared_metrics_are_checked_in_the_order_named_ones_are() {
        let p = cpu_on_web1("metrics_blacklist = \"secret\"\n", None);
        let mut table = SeriesTable::default();
        table.declare(b"secret", &[6], None, 10).unwrap();
        // NaN under a filtered name: rejected either way (values before filters).
        let mut named = set_of(vec![gauge("secret", f64::NAN), gauge("secret", 1.0)]);
        let mut declared = named.clone();
        declared.names.clear();
        declared.name_ends.clear();
        declared.series = vec![0, 0];
        for set in [&mut named, &mut declared] {
            let c = p.publish_with(set.clone(), 9, &mut table);
            assert_eq!((c.rejected, c.filtered, c.published.len()), (1, 1, 0));
            assert!(matches!(c.reasons[0], Rejection::Value(_)));
        }
    }
}

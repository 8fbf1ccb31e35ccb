//! The small shared library of wdiamond's guest plugins.
//!
//! A collector is a type implementing [`Collector`], exported with
//! [`export_collector!`]; a handler implements [`Handler`] and is exported
//! with [`export_handler!`]. Build the crate with exactly one of the cargo
//! features `collector` or `handler`.
//!
//! # Layout
//! - `bindings`: the WIT bindings of `wit/wdiamond.wit` (generated, one world).
//! - [`columns`]: the shared-column rule of `metric-set` and `metric-batch`.
//! - [`derive`]: Diamond's `Collector.derivative()`, value for value.
//! - [`units`]: Diamond's binary unit convertor (`byte_unit`).
//! - [`format`]: Diamond's graphite plaintext line.
//! - [`text`]: Python's string splitting as Diamond's collectors use it.
//! - [`config`]: typed access to the merged configuration, with Diamond's
//!   `str_to_bool` and list rules.
//! - [`host`]: thin wrappers over the host imports (files, log).
//! - [`net`]: request/response and HTTP/1.1 GET over granted sockets.
//!
//! The pure modules ([`derive`], [`units`], [`format`]) do not touch the bindings and
//! are unit-tested on the host target.
#![deny(missing_docs)]

pub use wdiamond_wire::columns;
pub mod derive;
pub mod format;
pub mod text;
pub mod units;

#[cfg(any(feature = "collector", feature = "handler"))]
pub mod config;
#[cfg(any(feature = "collector", feature = "handler"))]
pub mod host;
#[cfg(any(feature = "collector", feature = "handler"))]
pub mod net;

#[cfg(all(feature = "collector", feature = "handler"))]
compile_error!("enable exactly one of the features `collector` and `handler`");

/// Generated bindings of the `collector-plugin` world.
#[cfg(feature = "collector")]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "collector-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_collector_world",
        default_bindings_module: "wdiamond_sdk::bindings",
    });
}

/// Generated bindings of the `handler-plugin` world.
#[cfg(feature = "handler")]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_handler_world",
        default_bindings_module: "wdiamond_sdk::bindings",
    });
}

#[cfg(feature = "collector")]
pub use bindings::wdiamond::plugin::types::MetricSet;
#[cfg(any(feature = "collector", feature = "handler"))]
pub use bindings::wdiamond::plugin::types::{
    Capability, ConfigEntry, ConfigOption, ConfigValue, Description, HostError, MetricKind,
};
#[cfg(feature = "handler")]
pub use bindings::wdiamond::plugin::types::{MetricBatch, MetricSource};

/// One metric as a collector publishes it: Diamond's `Metric`.
#[cfg(feature = "collector")]
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name relative to the collector's path, e.g. `cpu0.idle`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Decimals printed on the wire.
    pub precision: u8,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// Seconds since the Unix epoch (default: the host's collection time).
    pub timestamp: Option<u64>,
    /// Diamond's `instance`.
    pub instance: Option<String>,
    /// Diamond's `raw_value`.
    pub raw_value: Option<f64>,
}

/// One metric of a batch, borrowed from the batch's columns.
#[cfg(feature = "handler")]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PublishedMetric<'a> {
    /// The full path.
    pub path: &'a str,
    /// The value (finite).
    pub value: f64,
    /// Decimals to print.
    pub precision: u8,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// Diamond's `raw_value`.
    pub raw_value: Option<f64>,
    /// The host name in the path.
    pub host: &'a str,
    /// The collector instance.
    pub collector: &'a str,
    /// The tenant.
    pub tenant: Option<&'a str>,
    /// Diamond's ttl, seconds.
    pub ttl: u32,
}

/// The batch handle the host passes to `process`.
#[cfg(feature = "handler")]
pub use bindings::wdiamond::plugin::batches::Batch as HostBatch;

/// A batch as a handler's `process` sees it. Its metrics stay in the host
/// until read: [`Batch::len`] asks the host, the first read of a column
/// (through [`Columns`], which a `Batch` derefs to) copies the columns in
/// once, and [`net::LineSender::send_batch`] has the host write the lines
/// to the connection without copying them in at all.
#[cfg(feature = "handler")]
pub struct Batch {
    host: Option<std::rc::Rc<HostBatch>>,
    len: usize,
    columns: std::cell::OnceCell<Columns>,
}

#[cfg(feature = "handler")]
impl Batch {
    /// The batch the host passed to `process`.
    pub fn from_host(handle: HostBatch) -> Batch {
        Batch {
            len: handle.len() as usize,
            host: Some(std::rc::Rc::new(handle)),
            columns: std::cell::OnceCell::new(),
        }
    }

    /// A batch of these columns, held by the guest (tests, tools); checked
    /// as [`Columns::new`] does.
    pub fn new(b: MetricBatch) -> Result<Batch, String> {
        Ok(Batch::local(Columns::new(b)?))
    }

    fn local(c: Columns) -> Batch {
        Batch {
            host: None,
            len: c.len(),
            columns: std::cell::OnceCell::from(c),
        }
    }

    /// How many metrics.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The host's handle, for host calls that take the batch (`None` for
    /// a batch built in the guest).
    pub fn host_handle(&self) -> Option<&std::rc::Rc<HostBatch>> {
        self.host.as_ref()
    }

    /// The columns, copied from the host at the first call. Panics (a
    /// trap: the host counts it and retries the batch) if the host sends
    /// malformed columns, which it never does.
    pub fn columns(&self) -> &Columns {
        self.columns.get_or_init(|| {
            let h = self.host.as_ref().expect("a local batch has its columns");
            let b = h
                .columns()
                .unwrap_or_else(|e| panic!("reading the batch: {}", host::describe_error(&e)));
            Columns::new(b).unwrap_or_else(|e| panic!("{e}"))
        })
    }
}

#[cfg(feature = "handler")]
impl std::ops::Deref for Batch {
    type Target = Columns;
    fn deref(&self) -> &Columns {
        self.columns()
    }
}

/// A batch's columns, checked once, read as [`PublishedMetric`]s without
/// building a record per metric.
#[cfg(feature = "handler")]
pub struct Columns {
    b: MetricBatch,
}

#[cfg(feature = "handler")]
impl Columns {
    /// Checks that the columns agree (lengths, offsets, source indexes);
    /// the host always sends them so, but a guest trusts nothing. The
    /// lines are not scanned here (that cost as much as the rest of a
    /// graphite handler's work): a path or line is checked as UTF-8 when
    /// read as text.
    pub fn new(b: MetricBatch) -> Result<Columns, String> {
        use columns::fits;
        let n = b.line_ends.len();
        let ok = b.values.len() == n
            && b.path_lens.len() == n
            && fits(&b.precisions, n)
            && fits(&b.counters, n)
            && fits(&b.timestamps, n)
            && fits(&b.raw_values, n)
            && fits(&b.source_ids, n);
        if !ok {
            return Err(format!(
                "malformed batch: column lengths differ from {n} lines"
            ));
        }
        let mut start = 0usize;
        for (&end, &path) in b.line_ends.iter().zip(&b.path_lens) {
            if (end as usize) < start + path as usize {
                return Err("malformed batch: bad line offsets".into());
            }
            start = end as usize;
        }
        if start != b.lines.len() {
            return Err("malformed batch: line offsets do not end with the lines".into());
        }
        if b.source_ids.iter().any(|&k| k as usize >= b.sources.len()) {
            return Err("malformed batch: bad source index".into());
        }
        Ok(Columns { b })
    }

    /// How many metrics.
    pub fn len(&self) -> usize {
        self.b.line_ends.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.b.line_ends[i - 1] as usize
        }
    }

    /// Path of metric `i` (empty if the host sent a path that is not
    /// UTF-8, which it never does).
    #[inline]
    pub fn path(&self, i: usize) -> &str {
        let start = self.start(i);
        // Offsets were checked in `new`.
        let bytes = &self.b.lines[start..start + self.b.path_lens[i] as usize];
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// Diamond's line of metric `i` (`path value timestamp\n`).
    #[inline]
    pub fn line(&self, i: usize) -> &str {
        let bytes = &self.b.lines[self.start(i)..self.b.line_ends[i] as usize];
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// Every metric's Diamond line, concatenated: the graphite plaintext
    /// of the whole batch, formatted by the host (ASCII).
    pub fn lines(&self) -> &[u8] {
        &self.b.lines
    }

    /// Value of metric `i`.
    #[inline]
    pub fn value(&self, i: usize) -> f64 {
        self.b.values[i]
    }

    /// Decimals of metric `i`.
    #[inline]
    pub fn precision(&self, i: usize) -> u8 {
        columns::at(&self.b.precisions, i)
    }

    /// Timestamp of metric `i`.
    #[inline]
    pub fn timestamp(&self, i: usize) -> u64 {
        columns::at(&self.b.timestamps, i)
    }

    /// Metric `i` (panics past the end, as slice indexing does).
    pub fn get(&self, i: usize) -> PublishedMetric<'_> {
        let b = &self.b;
        let src = &b.sources[columns::at(&b.source_ids, i) as usize];
        let raw = columns::at(&b.raw_values, i);
        PublishedMetric {
            path: self.path(i),
            value: b.values[i],
            precision: self.precision(i),
            kind: if columns::at(&b.counters, i) == 1 {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            },
            timestamp: self.timestamp(i),
            raw_value: (!raw.is_nan()).then_some(raw),
            host: &src.host,
            collector: &src.collector,
            tenant: src.tenant.as_deref(),
            ttl: src.ttl,
        }
    }

    /// The metrics, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            batch: self,
            next: 0,
        }
    }
}

#[cfg(feature = "handler")]
impl std::fmt::Debug for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "handler")]
impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.columns().fmt(f)
    }
}

/// Builds a batch from metrics (for handlers' unit tests on the host
/// target, and tools).
#[cfg(feature = "handler")]
impl<'a> FromIterator<PublishedMetric<'a>> for Batch {
    fn from_iter<I: IntoIterator<Item = PublishedMetric<'a>>>(iter: I) -> Batch {
        let mut lines = String::new();
        let mut b = MetricBatch {
            lines: Vec::new(),
            line_ends: Vec::new(),
            path_lens: Vec::new(),
            values: Vec::new(),
            precisions: Vec::new(),
            counters: Vec::new(),
            timestamps: Vec::new(),
            raw_values: Vec::new(),
            source_ids: Vec::new(),
            sources: Vec::new(),
        };
        for m in iter {
            format::graphite_line(&mut lines, m.path, m.value, m.precision, m.timestamp);
            b.line_ends.push(lines.len() as u32);
            b.path_lens.push(m.path.len() as u16);
            b.values.push(m.value);
            b.precisions.push(m.precision);
            b.counters.push(u8::from(m.kind == MetricKind::Counter));
            b.timestamps.push(m.timestamp);
            b.raw_values.push(m.raw_value.unwrap_or(f64::NAN));
            let src = MetricSource {
                host: m.host.into(),
                collector: m.collector.into(),
                tenant: m.tenant.map(Into::into),
                ttl: m.ttl,
            };
            let same = |s: &MetricSource| {
                (&s.host, &s.collector, &s.tenant, s.ttl)
                    == (&src.host, &src.collector, &src.tenant, src.ttl)
            };
            let k = match b.sources.iter().position(same) {
                Some(k) => k,
                None => {
                    b.sources.push(src);
                    b.sources.len() - 1
                }
            };
            b.source_ids.push(k as u16);
        }
        b.lines = lines.into_bytes();
        Batch::local(Columns { b })
    }
}

/// The metrics of a [`Batch`], in order.
#[cfg(feature = "handler")]
pub struct Iter<'a> {
    batch: &'a Columns,
    next: usize,
}

#[cfg(feature = "handler")]
impl<'a> Iterator for Iter<'a> {
    type Item = PublishedMetric<'a>;
    fn next(&mut self) -> Option<PublishedMetric<'a>> {
        (self.next < self.batch.len()).then(|| {
            self.next += 1;
            self.batch.get(self.next - 1)
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.batch.len() - self.next;
        (n, Some(n))
    }
}

#[cfg(feature = "handler")]
impl ExactSizeIterator for Iter<'_> {}

#[cfg(feature = "handler")]
impl<'a> IntoIterator for &'a Batch {
    type Item = PublishedMetric<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.columns().iter()
    }
}
#[cfg(any(feature = "collector", feature = "handler"))]
pub use config::Config;

/// Metrics published during one collection, in order, kept in the
/// columns the host receives (see `metric-set` in the WIT).
#[cfg(feature = "collector")]
pub struct Publisher {
    set: MetricSet,
}

#[cfg(feature = "collector")]
impl Default for Publisher {
    fn default() -> Self {
        Publisher::with_capacity(0, 0)
    }
}

#[cfg(feature = "collector")]
impl Publisher {
    /// A publisher with room for `metrics` metrics and `name_bytes` bytes
    /// of names (the SDK sizes it from the collector's previous run).
    pub fn with_capacity(metrics: usize, name_bytes: usize) -> Self {
        Publisher {
            set: MetricSet {
                names: Vec::with_capacity(name_bytes),
                name_ends: Vec::with_capacity(metrics),
                values: Vec::with_capacity(metrics),
                precisions: Vec::new(),
                counters: Vec::new(),
                timestamps: Vec::new(),
                raw_values: Vec::new(),
                instance_ids: Vec::new(),
                instances: Vec::new(),
                series: Vec::new(),
            },
        }
    }

    /// Diamond's `publish(name, value, precision=precision)`: a gauge.
    pub fn gauge(&mut self, name: impl AsRef<str>, value: f64, precision: u8) {
        self.push(
            name.as_ref(),
            value,
            precision,
            MetricKind::Gauge,
            None,
            f64::NAN,
            0,
        );
    }

    /// [`Publisher::gauge`] with the name formatted straight into the
    /// columns, `out.gauge_args(format_args!("cpu{n}.idle"), v, 2)`: no
    /// allocation per name, for collectors publishing many metrics.
    pub fn gauge_args(&mut self, name: std::fmt::Arguments<'_>, value: f64, precision: u8) {
        struct Names<'a>(&'a mut Vec<u8>);
        impl std::fmt::Write for Names<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        let _ = std::fmt::Write::write_fmt(&mut Names(&mut self.set.names), name);
        self.push_columns(value, precision, MetricKind::Gauge, None, f64::NAN, 0);
    }

    /// Diamond's `publish(..., metric_type='COUNTER')`.
    pub fn counter(&mut self, name: impl AsRef<str>, value: f64, precision: u8) {
        self.push(
            name.as_ref(),
            value,
            precision,
            MetricKind::Counter,
            None,
            f64::NAN,
            0,
        );
    }

    /// Diamond's `publish_counter`: the rate, with the raw counter kept as
    /// `raw_value` (statsd sends deltas of it).
    pub fn counter_raw(&mut self, name: impl AsRef<str>, rate: f64, raw: f64, precision: u8) {
        self.push(
            name.as_ref(),
            rate,
            precision,
            MetricKind::Counter,
            None,
            raw,
            0,
        );
    }

    /// Publish a fully specified metric (timestamp, instance).
    pub fn metric(&mut self, m: Metric) {
        let instance = match m.instance {
            None => 0,
            Some(i) => match self.set.instances.iter().position(|x| *x == i) {
                Some(k) => k as u16 + 1,
                None => {
                    self.set.instances.push(i);
                    self.set.instances.len() as u16
                }
            },
        };
        let raw = m.raw_value.unwrap_or(f64::NAN);
        self.push(
            &m.name,
            m.value,
            m.precision,
            m.kind,
            m.timestamp,
            raw,
            instance,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        value: f64,
        precision: u8,
        kind: MetricKind,
        timestamp: Option<u64>,
        raw: f64,
        instance: u16,
    ) {
        self.set.names.extend_from_slice(name.as_bytes());
        self.push_columns(value, precision, kind, timestamp, raw, instance);
    }

    /// A gauge of a declared series ([`declare_series`]): only the value
    /// crosses to the host; the name was checked and made a path once.
    pub fn gauge_series(&mut self, series: Series, value: f64, precision: u8) {
        self.push_series(series, value, precision, MetricKind::Gauge);
    }

    /// A counter of a declared series ([`declare_series`]).
    pub fn counter_series(&mut self, series: Series, value: f64, precision: u8) {
        self.push_series(series, value, precision, MetricKind::Counter);
    }

    /// Gauges of every series of `range`, `values` in the range's order
    /// (one per series: panics otherwise), all with `precision`: the
    /// columns grow by block, for collectors publishing many series.
    pub fn gauge_range<I>(&mut self, range: &SeriesRange, values: I, precision: u8)
    where
        I: IntoIterator<Item = f64>,
        I::IntoIter: ExactSizeIterator,
    {
        let values = values.into_iter();
        let k = range.len();
        assert_eq!(values.len(), k, "one value per series of the range");
        let n = self.set.values.len();
        self.series_column()
            .extend(range.first..range.first + range.len);
        self.set.values.extend(values);
        self.extend_common(n, k, precision, MetricKind::Gauge, None, f64::NAN, 0);
    }

    fn push_series(&mut self, series: Series, value: f64, precision: u8, kind: MetricKind) {
        self.series_column().push(series.0);
        self.push_common(value, precision, kind, None, f64::NAN, 0);
    }

    /// The `series` column, made one entry per metric (`NAMED` for those
    /// so far) at the first declared metric.
    fn series_column(&mut self) -> &mut Vec<u32> {
        let s = &mut self.set;
        if s.series.is_empty() {
            s.series.resize(s.values.len(), NAMED);
        }
        &mut s.series
    }

    /// Ends the name just written to `names` and fills the other columns.
    fn push_columns(
        &mut self,
        value: f64,
        precision: u8,
        kind: MetricKind,
        timestamp: Option<u64>,
        raw: f64,
        instance: u16,
    ) {
        let s = &mut self.set;
        s.name_ends.push(s.names.len() as u32);
        if !s.series.is_empty() {
            s.series.push(NAMED);
        }
        self.push_common(value, precision, kind, timestamp, raw, instance);
    }

    /// The value and the shared columns of one more metric.
    fn push_common(
        &mut self,
        value: f64,
        precision: u8,
        kind: MetricKind,
        timestamp: Option<u64>,
        raw: f64,
        instance: u16,
    ) {
        let n = self.set.values.len();
        self.set.values.push(value);
        self.extend_common(n, 1, precision, kind, timestamp, raw, instance);
    }

    /// The shared columns of `k` more metrics, all alike (`n` before them).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn extend_common(
        &mut self,
        n: usize,
        k: usize,
        precision: u8,
        kind: MetricKind,
        timestamp: Option<u64>,
        raw: f64,
        instance: u16,
    ) {
        use columns::extend_shared;
        let s = &mut self.set;
        let counter = u8::from(kind == MetricKind::Counter);
        extend_shared(&mut s.precisions, n, precision, k, |a, b| a == b);
        extend_shared(&mut s.counters, n, counter, k, |a, b| a == b);
        extend_shared(&mut s.timestamps, n, timestamp.unwrap_or(0), k, |a, b| {
            a == b
        });
        extend_shared(&mut s.raw_values, n, raw, k, |a, b| {
            a.to_bits() == b.to_bits()
        });
        extend_shared(&mut s.instance_ids, n, instance, k, |a, b| a == b);
    }

    /// How many metrics were published.
    pub fn len(&self) -> usize {
        self.set.values.len()
    }

    /// Whether nothing was published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of names published.
    pub fn name_bytes(&self) -> usize {
        self.set.names.len()
    }

    /// The columns, for the host.
    pub fn into_set(self) -> MetricSet {
        self.set
    }
}

#[cfg(feature = "collector")]
use wdiamond_wire::NAMED;

/// A series declared with [`declare_series`]: publish it with
/// [`Publisher::gauge_series`] or [`Publisher::counter_series`].
#[cfg(feature = "collector")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Series(u32);

/// The series of one [`declare_series`] call, in the order of its names.
#[cfg(feature = "collector")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRange {
    first: u32,
    len: u32,
}

#[cfg(feature = "collector")]
impl SeriesRange {
    /// The series of name `i` (panics past the end).
    pub fn get(&self, i: usize) -> Series {
        assert!(i < self.len as usize, "series {i} of {}", self.len);
        Series(self.first + i as u32)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The series, in the order of their names.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Series> {
        (self.first..self.first + self.len).map(Series)
    }
}

/// Declares names the collector publishes at every run (under `instance`,
/// Diamond's instance, or the host name): the host checks them and makes
/// their paths once, and each run sends only their values. For collectors
/// whose names are stable and many (per process, per device). The ids last
/// as long as the instance; at most `max_metrics` per instance.
#[cfg(feature = "collector")]
pub fn declare_series<S: AsRef<str>>(
    names: impl IntoIterator<Item = S>,
    instance: Option<&str>,
) -> Result<SeriesRange, String> {
    let (mut bytes, mut ends) = (Vec::new(), Vec::new());
    for name in names {
        bytes.extend_from_slice(name.as_ref().as_bytes());
        ends.push(bytes.len() as u32);
    }
    match bindings::wdiamond::plugin::series::declare(&bytes, &ends, instance) {
        Ok(first) => Ok(SeriesRange {
            first,
            len: ends.len() as u32,
        }),
        Err(HostError::TooLarge(limit)) => Err(format!(
            "declaring {} series: over this collector's limit of {limit} series (max_metrics)",
            ends.len()
        )),
        Err(e) => Err(format!(
            "declaring {} series: {}",
            ends.len(),
            host::describe_error(&e)
        )),
    }
}

/// A collector: Diamond's `Collector` subclass.
#[cfg(feature = "collector")]
pub trait Collector: Sized + 'static {
    /// Name, version, options with defaults and help, capabilities.
    fn describe() -> Description;
    /// Build the collector from its merged configuration; an error names the key.
    fn configure(config: &Config) -> Result<Self, String>;
    /// One collection. `self` keeps state (previous samples) between runs.
    fn collect(&mut self, out: &mut Publisher) -> Result<(), String>;
}

/// A handler: Diamond's `Handler` subclass.
#[cfg(feature = "handler")]
pub trait Handler: Sized + 'static {
    /// Name, version, options with defaults and help, capabilities.
    fn describe() -> Description;
    /// Build the handler from its merged configuration; an error names the key.
    fn configure(config: &Config) -> Result<Self, String>;
    /// Handle one batch; an error makes the host keep the batch for a retry.
    fn process(&mut self, batch: &Batch) -> Result<(), String>;
    /// Push out anything buffered.
    fn flush(&mut self) -> Result<(), String>;
}

/// Builds a [`Description`] option entry.
#[cfg(any(feature = "collector", feature = "handler"))]
pub fn option(key: &str, default: ConfigValue, help: &str) -> ConfigOption {
    ConfigOption {
        key: key.to_string(),
        default,
        help: help.to_string(),
    }
}

/// Exports a [`Collector`] type as the component's `collector` interface.
#[cfg(feature = "collector")]
#[macro_export]
macro_rules! export_collector {
    ($ty:ty) => {
        struct __WdiamondCollector;
        ::std::thread_local! {
            static __WDIAMOND_STATE: ::std::cell::RefCell<Option<$ty>> =
                const { ::std::cell::RefCell::new(None) };
            // Metrics and name bytes of the previous run: the next
            // publisher starts that large instead of growing step by step.
            static __WDIAMOND_LAST: ::std::cell::Cell<(usize, usize)> =
                const { ::std::cell::Cell::new((0, 0)) };
        }
        impl $crate::bindings::exports::wdiamond::plugin::collector::Guest for __WdiamondCollector {
            fn describe() -> $crate::Description {
                <$ty as $crate::Collector>::describe()
            }
            fn configure(config: Vec<$crate::ConfigEntry>) -> Result<(), String> {
                let config = $crate::Config::new(config);
                let state = <$ty as $crate::Collector>::configure(&config)?;
                __WDIAMOND_STATE.with(|s| *s.borrow_mut() = Some(state));
                Ok(())
            }
            fn collect() -> Result<$crate::MetricSet, String> {
                __WDIAMOND_STATE.with(|s| {
                    let mut guard = s.borrow_mut();
                    let state = guard
                        .as_mut()
                        .ok_or_else(|| "collect called before configure".to_string())?;
                    let (n, bytes) = __WDIAMOND_LAST.get();
                    let mut out = $crate::Publisher::with_capacity(n, bytes);
                    $crate::Collector::collect(state, &mut out)?;
                    __WDIAMOND_LAST.set((out.len(), out.name_bytes()));
                    Ok(out.into_set())
                })
            }
        }
        // Only a wasm build exports the component's functions: the names
        // (`wdiamond:plugin/collector@0.1.0#collect`) are not valid native
        // linker symbols, and native builds exist for unit tests.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_collector_world!(__WdiamondCollector);
    };
}

/// Exports a [`Handler`] type as the component's `handler` interface.
#[cfg(feature = "handler")]
#[macro_export]
macro_rules! export_handler {
    ($ty:ty) => {
        struct __WdiamondHandler;
        ::std::thread_local! {
            static __WDIAMOND_STATE: ::std::cell::RefCell<Option<$ty>> =
                const { ::std::cell::RefCell::new(None) };
        }
        fn __wdiamond_with<R>(f: impl FnOnce(&mut $ty) -> Result<R, String>) -> Result<R, String> {
            __WDIAMOND_STATE.with(|s| {
                let mut guard = s.borrow_mut();
                let state = guard
                    .as_mut()
                    .ok_or_else(|| "called before configure".to_string())?;
                f(state)
            })
        }
        impl $crate::bindings::exports::wdiamond::plugin::handler::Guest for __WdiamondHandler {
            fn describe() -> $crate::Description {
                <$ty as $crate::Handler>::describe()
            }
            fn configure(config: Vec<$crate::ConfigEntry>) -> Result<(), String> {
                let config = $crate::Config::new(config);
                let state = <$ty as $crate::Handler>::configure(&config)?;
                __WDIAMOND_STATE.with(|s| *s.borrow_mut() = Some(state));
                Ok(())
            }
            fn process(batch: $crate::HostBatch) -> Result<(), String> {
                let batch = $crate::Batch::from_host(batch);
                __wdiamond_with(|h| $crate::Handler::process(h, &batch))
            }
            fn flush() -> Result<(), String> {
                __wdiamond_with(|h| $crate::Handler::flush(h))
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_handler_world!(__WdiamondHandler);
    };
}

#[cfg(all(test, feature = "handler"))]
mod batch_tests {
    use super::*;

    fn metric(path: &str, value: f64, timestamp: u64) -> PublishedMetric<'_> {
        PublishedMetric {
            path,
            value,
            precision: 2,
            kind: MetricKind::Gauge,
            timestamp,
            raw_value: None,
            host: "h",
            collector: "c",
            tenant: None,
            ttl: 20,
        }
    }

    #[test]
    fn a_batch_reads_back_its_metrics_and_lines() {
        let b: Batch = [metric("a.b", 1.5, 7), metric("a.c", 0.115, 8)]
            .into_iter()
            .collect();
        assert_eq!(b.len(), 2);
        assert_eq!(b.lines(), b"a.b 1.50 7\na.c 0.12 8\n");
        assert_eq!(b.path(1), "a.c");
        assert_eq!(b.line(0), "a.b 1.50 7\n");
        let back: Vec<_> = b.iter().collect();
        assert_eq!(back, [metric("a.b", 1.5, 7), metric("a.c", 0.115, 8)]);
    }

    #[test]
    fn shared_columns_apply_to_every_metric() {
        let b: Batch = [metric("a.b", 1.0, 7), metric("a.c", 2.0, 7)]
            .into_iter()
            .collect();
        let mut cols = b.columns().b.clone();
        cols.timestamps = vec![9];
        cols.precisions = vec![0];
        let b = Batch::new(cols).unwrap();
        assert_eq!((b.timestamp(1), b.precision(1)), (9, 0));
        assert_eq!(b.get(1).timestamp, 9);
    }

    #[test]
    fn malformed_batches_are_refused() {
        let good = || -> MetricBatch {
            let b: Batch = [metric("a.b", 1.0, 7), metric("a.c", 2.0, 7)]
                .into_iter()
                .collect();
            b.columns().b.clone()
        };
        let mut b = good();
        b.line_ends[1] += 1;
        assert!(Batch::new(b).is_err(), "offsets past the lines");
        let mut b = good();
        b.path_lens[0] = 200;
        assert!(Batch::new(b).is_err(), "a path longer than its line");
        let mut b = good();
        b.source_ids = vec![3];
        assert!(Batch::new(b).is_err(), "an unknown source");
        let mut b = good();
        b.values.pop();
        assert!(Batch::new(b).is_err(), "a short column");
        let mut b = good();
        b.timestamps = vec![];
        assert!(Batch::new(b).is_err(), "an empty column for two metrics");
        assert!(Batch::new(good()).is_ok());
    }
}

#[cfg(all(test, feature = "collector"))]
mod publisher_tests {
    use super::*;

    #[test]
    fn named_and_declared_metrics_fill_the_columns_the_host_reads() {
        let range = SeriesRange { first: 5, len: 3 };
        let mut p = Publisher::default();
        p.gauge("a", 1.0, 2);
        assert!(p.set.series.is_empty(), "all named: no series column");
        p.gauge_series(range.get(1), 2.0, 2);
        p.gauge_range(&range, [3.0, 4.0, 5.0], 2);
        p.counter("b", 6.0, 2);
        assert_eq!(p.len(), 6);
        let set = p.into_set();
        assert_eq!(set.series, [NAMED, 6, 5, 6, 7, NAMED]);
        assert_eq!(
            (set.names.as_slice(), set.name_ends.as_slice()),
            (&b"ab"[..], &[1, 2][..])
        );
        assert_eq!(set.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(set.precisions, [2], "shared");
        assert_eq!(set.counters, [0, 0, 0, 0, 0, 1]);
        assert_eq!(set.timestamps, [0]);
    }

    #[test]
    #[should_panic(expected = "one value per series")]
    fn a_range_needs_one_value_per_series() {
        let range = SeriesRange { first: 0, len: 3 };
        Publisher::default().gauge_range(&range, [1.0], 0);
    }
}

//! The collector side: [`Collector`], the [`Publisher`] a collection fills,
//! declared series, and [`export_collector!`](crate::export_collector).

use crate::bindings::wdiamond::plugin::types::MetricSet;
use crate::{bindings, host, Config, Description, HostError, MetricKind};

/// One metric as a collector publishes it: Diamond's `Metric`.
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

/// Metrics published during one collection, in order, kept in the
/// columns the host receives (see `metric-set` in the WIT).
pub struct Publisher {
    set: MetricSet,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher::with_capacity(0, 0)
    }
}

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
        use crate::columns::extend_shared;
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

use wdiamond_wire::NAMED;

/// A series declared with [`declare_series`]: publish it with
/// [`Publisher::gauge_series`] or [`Publisher::counter_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Series(u32);

/// The series of one [`declare_series`] call, in the order of its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRange {
    first: u32,
    len: u32,
}

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
pub trait Collector: Sized + 'static {
    /// Name, version, options with defaults and help, capabilities.
    fn describe() -> Description;
    /// Build the collector from its merged configuration; an error names the key.
    fn configure(config: &Config) -> Result<Self, String>;
    /// One collection. `self` keeps state (previous samples) between runs.
    fn collect(&mut self, out: &mut Publisher) -> Result<(), String>;
}

/// Exports a [`Collector`] type as the component's `collector` interface.
#[macro_export]
macro_rules! export_collector {
    ($ty:ty) => {
        struct __WdiamondCollector;
        ::std::thread_local! {
            static __WDIAMOND_STATE: $crate::State<$ty> = const { $crate::State::new() };
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
                __WDIAMOND_STATE
                    .with(|s| s.configure(config, <$ty as $crate::Collector>::configure))
            }
            fn collect() -> Result<$crate::MetricSet, String> {
                __WDIAMOND_STATE.with(|s| {
                    s.with(|state| {
                        let (n, bytes) = __WDIAMOND_LAST.get();
                        let mut out = $crate::Publisher::with_capacity(n, bytes);
                        $crate::Collector::collect(state, &mut out)?;
                        __WDIAMOND_LAST.set((out.len(), out.name_bytes()));
                        Ok(out.into_set())
                    })
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

#[cfg(test)]
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

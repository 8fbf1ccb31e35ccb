//! The handler side: [`Handler`], the [`Batch`] `process` reads, and
//! [`export_handler!`](crate::export_handler).

use crate::{
    bindings, columns, format, host, Config, Description, MetricBatch, MetricKind, MetricSource,
};

/// One metric of a batch, borrowed from the batch's columns.
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
pub use bindings::wdiamond::plugin::batches::Batch as HostBatch;

/// A batch as a handler's `process` sees it. Its metrics stay in the host
/// until read: [`Batch::len`] asks the host, the first read of a column
/// (through [`Columns`], which a `Batch` derefs to) copies the columns in
/// once, and [`crate::net::LineSender::send_batch`] has the host write the lines
/// to the connection without copying them in at all.
pub struct Batch {
    host: Option<std::rc::Rc<HostBatch>>,
    len: usize,
    columns: std::cell::OnceCell<Columns>,
    refused: std::cell::Cell<bool>,
}

impl Batch {
    /// The batch the host passed to `process`.
    pub fn from_host(handle: HostBatch) -> Batch {
        Batch {
            len: handle.len() as usize,
            host: Some(std::rc::Rc::new(handle)),
            columns: std::cell::OnceCell::new(),
            refused: std::cell::Cell::new(false),
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
            refused: std::cell::Cell::new(false),
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

    /// Says the receiver refused these metrics for good (sending them
    /// again cannot succeed): return `Ok` from `process` and the host counts
    /// them as dropped, not delivered, logging `reason`. Contract 0.1.3.
    pub fn refuse(&self, reason: &str) {
        if let Some(h) = &self.host {
            h.refuse(reason);
        }
        self.refused.set(true);
    }

    /// Whether [`Batch::refuse`] was called.
    pub fn refused(&self) -> bool {
        self.refused.get()
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

impl std::ops::Deref for Batch {
    type Target = Columns;
    fn deref(&self) -> &Columns {
        self.columns()
    }
}

/// A batch's columns, checked once, read as [`PublishedMetric`]s without
/// building a record per metric.
pub struct Columns {
    b: MetricBatch,
}

impl Columns {
    /// Checks that the columns agree (lengths, offsets, source indexes);
    /// the host always sends them so, but a guest trusts nothing. The
    /// lines are not scanned here (that cost as much as the rest of a
    /// graphite handler's work): a path or line is checked as UTF-8 when
    /// read as text.
    pub fn new(b: MetricBatch) -> Result<Columns, String> {
        use crate::columns::fits;
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

impl std::fmt::Debug for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.columns().fmt(f)
    }
}

/// Builds a batch from metrics (for handlers' unit tests on the host
/// target, and tools).
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
pub struct Iter<'a> {
    batch: &'a Columns,
    next: usize,
}

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

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Batch {
    type Item = PublishedMetric<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.columns().iter()
    }
}

/// A handler: Diamond's `Handler` subclass.
pub trait Handler: Sized + 'static {
    /// Name, version, options with defaults and help, capabilities.
    fn describe() -> Description;
    /// Build the handler from its merged configuration; an error names the key.
    fn configure(config: &Config) -> Result<Self, String>;
    /// Handle one batch; an error makes the host keep the batch for a retry.
    fn process(&mut self, batch: &Batch) -> Result<(), String>;
    /// Push out anything buffered (by default there is nothing: a handler
    /// that sends each batch in `process` need not write one).
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// An exporter: a [`Handler`] whose page the host serves over HTTP (the
/// `exporter-plugin` world, cargo feature `exporter`): metrics arrive in
/// `process`, the page is rendered at each scrape.
#[cfg(feature = "exporter")]
pub trait Exporter: Handler {
    /// The page for one scrape (the host checks and serves it).
    fn render(&mut self, scrape: &crate::Scrape) -> Result<crate::Page, String>;
}

/// The export type `$name`, the thread-local `$state` holding a
/// [`Handler`] type, and the `handler` export's functions as the trait
/// `$guest` of a world's bindings wants them.
#[doc(hidden)]
#[macro_export]
macro_rules! __handler_guest {
    ($guest:path, $name:ident, $ty:ty, $state:ident) => {
        struct $name;
        ::std::thread_local! {
            static $state: $crate::State<$ty> = const { $crate::State::new() };
        }
        impl $guest for $name {
            fn describe() -> $crate::Description {
                <$ty as $crate::Handler>::describe()
            }
            fn configure(config: Vec<$crate::ConfigEntry>) -> Result<(), String> {
                $state.with(|s| s.configure(config, <$ty as $crate::Handler>::configure))
            }
            fn process(batch: $crate::HostBatch) -> Result<(), String> {
                let batch = $crate::Batch::from_host(batch);
                $state.with(|s| s.with(|h| $crate::Handler::process(h, &batch)))
            }
            fn flush() -> Result<(), String> {
                $state.with(|s| s.with(|h| $crate::Handler::flush(h)))
            }
        }
    };
}

/// Exports a [`Handler`] type as the component's `handler` interface.
#[macro_export]
macro_rules! export_handler {
    ($ty:ty) => {
        $crate::__handler_guest!(
            $crate::bindings::exports::wdiamond::plugin::handler::Guest,
            __WdiamondHandler,
            $ty,
            __WDIAMOND_STATE
        );
        #[cfg(target_arch = "wasm32")]
        $crate::__export_handler_world_of_feature!(__WdiamondHandler);
    };
}

/// The handler world's export, when the SDK is built for it.
#[cfg(not(feature = "exporter"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_handler_world_of_feature {
    ($name:ident) => {
        $crate::bindings::__export_handler_world!($name);
    };
}

/// With feature `exporter` the bindings are the exporter world's: a plain
/// handler must be built without it.
#[cfg(feature = "exporter")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_handler_world_of_feature {
    ($name:ident) => {
        compile_error!("the SDK is built with feature `exporter`: export an exporter with `export_exporter!`, or build this handler without the feature");
    };
}

/// Exports an [`Exporter`] type: the `handler` interface and `exposition`
/// (the `exporter-plugin` world).
#[cfg(feature = "exporter")]
#[macro_export]
macro_rules! export_exporter {
    ($ty:ty) => {
        $crate::__handler_guest!(
            $crate::bindings::exports::wdiamond::plugin::handler::Guest,
            __WdiamondExporter,
            $ty,
            __WDIAMOND_STATE
        );
        impl $crate::bindings::exports::wdiamond::plugin::exposition::Guest for __WdiamondExporter {
            fn render(scrape: $crate::Scrape) -> Result<$crate::Page, String> {
                __WDIAMOND_STATE.with(|s| s.with(|h| $crate::Exporter::render(h, &scrape)))
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_exporter_world!(__WdiamondExporter);
    };
}

#[cfg(test)]
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

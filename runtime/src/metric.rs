//! From what a collector returns to what handlers receive: Diamond's metric
//! paths, the host's checks on untrusted guest output, and the filters.

use std::sync::Arc;

use crate::bindings::types::{Metric, MetricBatch, MetricKind, MetricSet, MetricSource};
use crate::config::CollectorConfig;

/// Longest metric name accepted from a guest, bytes.
pub const MAX_NAME: usize = 255;
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

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-:#@%+=()[],.".contains(c)
}

/// A shortened, printable rendering of an untrusted name for logs.
fn shown(name: &str) -> String {
    let mut s: String = name.chars().take(80).collect();
    if name.chars().count() > 80 {
        s.push('…');
    }
    format!("{s:?}")
}

/// Checks a name (or an instance) from a guest.
pub fn check_name(name: &str) -> Result<(), Rejection> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name.chars().all(allowed)
        || name.split('.').any(str::is_empty)
    {
        return Err(Rejection::Name(shown(name)));
    }
    Ok(())
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

    /// The full path of `name` (with `instance`, Diamond's
    /// `instance_prefix.instance.path.name`).
    pub fn path(&self, name: &str, instance: Option<&str>) -> String {
        let no_path = self.path.is_empty() || self.path == ".";
        // Joined by hand: this runs once per metric, and `format!` is
        // several times slower than a few appends into one allocation.
        let (first, second) = match instance {
            Some(i) => (self.instance_prefix.as_str(), i),
            None => (self.prefix.as_str(), ""),
        };
        let path = if no_path { "" } else { self.path.as_str() };
        let parts = [first, second, path, name];
        let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for p in parts.iter().filter(|p| !p.is_empty()) {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(p);
        }
        out
    }
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

/// A checked metric with its full path, as queued for the handlers.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// The full path.
    pub path: String,
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
    pub source: Arc<Source>,
}

/// What came out of checking one run's metrics.
#[derive(Debug, Default)]
pub struct Checked {
    /// Metrics to hand to the handlers, in order.
    pub published: Vec<Published>,
    /// Filtered out by the whitelist/blacklist.
    pub filtered: usize,
    /// Rejected (the first few reasons kept for the log).
    pub rejected: usize,
    /// Up to 5 rejection reasons.
    pub reasons: Vec<Rejection>,
}

impl Publication {
    /// The source record of this collector's metrics.
    pub fn source(&self) -> Arc<Source> {
        Arc::new(Source {
            host: self.paths.hostname.clone(),
            collector: self.collector.clone(),
            tenant: self.tenant.as_ref().map(|(t, _)| t.clone()),
            ttl: self.ttl,
        })
    }

    /// Checks and converts a guest's metrics; `now` is the default timestamp.
    pub fn publish(&self, set: MetricSet, now: u64) -> Checked {
        let n = set.name_ends.len();
        let mut out = Checked {
            published: Vec::with_capacity(n),
            ..Default::default()
        };
        let lens = [
            set.values.len(),
            set.precisions.len(),
            set.counters.len(),
            set.timestamps.len(),
            set.raw_values.len(),
            set.instance_ids.len(),
        ];
        if lens.iter().any(|l| *l != n) {
            out.rejected = n;
            out.reasons.push(Rejection::Malformed(format!(
                "column lengths {n} and {lens:?} differ"
            )));
            return out;
        }
        // Names are checked one by one (ASCII only), so a lossy view of a
        // bad buffer only ever yields names that are then rejected.
        let names = String::from_utf8_lossy(&set.names);
        let source = self.source();
        let mut start = 0usize;
        for i in 0..n {
            let end = set.name_ends[i] as usize;
            let name = names.get(start..end).unwrap_or("");
            start = end.max(start);
            let instance = match set.instance_ids[i] {
                0 => Ok(None),
                k => set
                    .instances
                    .get(k as usize - 1)
                    .map(|s| Some(s.as_str()))
                    .ok_or_else(|| Rejection::Malformed(format!("instance index {k}"))),
            };
            let value = set.values[i];
            let precision = set.precisions[i];
            let check = instance.and_then(|inst| {
                check_name(name)?;
                if let Some(x) = inst {
                    check_name(x)?;
                }
                if !value.is_finite() {
                    return Err(Rejection::Value(shown(name)));
                }
                if precision > MAX_PRECISION {
                    return Err(Rejection::Precision(shown(name)));
                }
                Ok(inst)
            });
            let inst = match check {
                Ok(inst) => inst,
                Err(r) => {
                    out.rejected += 1;
                    if out.reasons.len() < 5 {
                        out.reasons.push(r);
                    }
                    continue;
                }
            };
            if !self.filter.keep(name) {
                out.filtered += 1;
                continue;
            }
            let path = self.paths.path(name, inst);
            let path = match &self.tenant {
                Some((_, prefix)) => format!("{prefix}.{path}"),
                None => path,
            };
            let raw = set.raw_values[i];
            out.published.push(Published {
                path,
                value,
                precision,
                kind: if set.counters[i] == 1 {
                    MetricKind::Counter
                } else {
                    MetricKind::Gauge
                },
                timestamp: if set.timestamps[i] == 0 {
                    now
                } else {
                    set.timestamps[i]
                },
                raw_value: (raw.is_finite()).then_some(raw),
                source: source.clone(),
            });
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

/// Keeps the first `n` metrics of a set.
pub fn truncate(set: &mut MetricSet, n: usize) {
    if n >= set.name_ends.len() {
        return;
    }
    let bytes = if n == 0 {
        0
    } else {
        set.name_ends[n - 1] as usize
    };
    set.names.truncate(bytes);
    set.name_ends.truncate(n);
    set.values.truncate(n);
    set.precisions.truncate(n);
    set.counters.truncate(n);
    set.timestamps.truncate(n);
    set.raw_values.truncate(n);
    set.instance_ids.truncate(n);
}

/// Packs metrics into the columns a handler receives (see `metric-batch`
/// in the WIT): a few block copies across the boundary instead of several
/// allocations per metric.
pub fn pack(items: &[Published]) -> MetricBatch {
    let n = items.len();
    let mut b = MetricBatch {
        paths: Vec::with_capacity(n * 48),
        path_ends: Vec::with_capacity(n),
        values: Vec::with_capacity(n),
        precisions: Vec::with_capacity(n),
        counters: Vec::with_capacity(n),
        timestamps: Vec::with_capacity(n),
        raw_values: Vec::with_capacity(n),
        source_ids: Vec::with_capacity(n),
        sources: Vec::new(),
    };
    let mut seen: Vec<Arc<Source>> = Vec::new();
    let mut last: Option<(&Arc<Source>, u16)> = None;
    for m in items {
        b.paths.extend_from_slice(m.path.as_bytes());
        b.path_ends.push(b.paths.len() as u32);
        b.values.push(m.value);
        b.precisions.push(m.precision);
        b.counters.push(u8::from(m.kind == MetricKind::Counter));
        b.timestamps.push(m.timestamp);
        b.raw_values.push(m.raw_value.unwrap_or(f64::NAN));
        // Runs of one source are the common case: compare pointers first.
        let id = match last {
            Some((s, id)) if Arc::ptr_eq(s, &m.source) => id,
            _ => match seen
                .iter()
                .position(|s| Arc::ptr_eq(s, &m.source) || **s == *m.source)
            {
                Some(k) => k as u16,
                None if seen.len() < u16::MAX as usize => {
                    seen.push(m.source.clone());
                    let s = &m.source;
                    b.sources.push(MetricSource {
                        host: s.host.clone(),
                        collector: s.collector.clone(),
                        tenant: s.tenant.clone(),
                        ttl: s.ttl,
                    });
                    (seen.len() - 1) as u16
                }
                None => 0,
            },
        };
        last = Some((&m.source, id));
        b.source_ids.push(id);
    }
    b
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
}

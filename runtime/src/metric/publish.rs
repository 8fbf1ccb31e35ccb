//! A collector's run turned into published metrics: its `metric-set`
//! checked (names, values, precision), filtered, given its paths (and the
//! tenant's prefix) and lines, in one pass.

use crate::bindings::types::Metric;
use crate::bindings::types::MetricKind;
use crate::bindings::types::MetricSet;
use crate::metric::check_name;
use crate::metric::check_name_bytes;
use crate::metric::push_path;
use crate::metric::series::Resolved;
use crate::metric::series::SeriesTable;
use crate::metric::series::NAMED;
use crate::metric::Chunk;
use crate::metric::Filter;
use crate::metric::PathBuilder;
use crate::metric::Rejection;
use crate::metric::Source;
use std::sync::Arc;
use wdiamond_wire::columns::{at, fits};

use super::name::{check_value, shown};
use super::path::join;

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
        if let Some(refused) = malformed(&set, n, named) {
            return refused;
        }
        if named < n {
            series.resolve(|i| self.base(i), |n| self.filter.keep(n));
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

/// A set whose columns do not line up (one entry per metric, or one
/// shared): every metric of it rejected, with the lengths seen.
fn malformed(set: &MetricSet, n: usize, named: usize) -> Option<Checked> {
    let ok = set.values.len() == n
        && set.name_ends.len() == named
        && fits(&set.precisions, n)
        && fits(&set.counters, n)
        && fits(&set.timestamps, n)
        && fits(&set.raw_values, n)
        && fits(&set.instance_ids, n);
    if ok {
        return None;
    }
    let lens = [
        set.values.len(),
        set.precisions.len(),
        set.counters.len(),
        set.timestamps.len(),
        set.raw_values.len(),
        set.instance_ids.len(),
    ];
    Some(Checked {
        rejected: n,
        reasons: vec![Rejection::Malformed(format!(
            "{n} metrics ({named} named, {} names), but columns of {lens:?} entries (each must have one per metric, or one shared)",
            set.name_ends.len()
        ))],
        ..Default::default()
    })
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
    use crate::metric::{Filter, PathBuilder, Rejection};

    /// The publication of a `cpu` collector on host `web1` (Diamond's
    /// default paths), with an optional blacklist.
    fn cpu_on_web1(keys: Option<&str>, tenant: Option<(String, String)>) -> Publication {
        let blacklist = keys.map(|k| regex::Regex::new(k).unwrap());
        Publication {
            paths: PathBuilder::new("servers", "", None, "instances", Some("web1"), "cpu"),
            filter: Filter::new(None, blacklist.as_ref()),
            ttl: 1,
            collector: "cpu".into(),
            tenant,
        }
    }

    #[test]
    fn a_tenant_prefix_covers_host_made_paths() {
        let p = cpu_on_web1(None, Some(("acme".into(), "tenants.acme".into())));
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
        let p = cpu_on_web1(None, None);
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
        let p = cpu_on_web1(Some("secret"), None);
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

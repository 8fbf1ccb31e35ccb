//! From what a collector returns to what handlers receive: Diamond's metric
//! paths, the host's checks on untrusted guest output, and the filters.

mod batch;
mod chunk;
mod filter;
mod name;
mod path;
mod publish;
pub mod series;

pub use batch::{Batch, Slice};
pub use chunk::{Chunk, Published, Source, MAX_LINES};
pub use filter::Filter;
pub use name::{check_name, check_name_bytes, Rejection, MAX_NAME, MAX_PRECISION};
pub(crate) use path::push_path;
pub use path::PathBuilder;
pub use publish::{count, set_of, truncate, Checked, Publication};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::series::{SeriesTable, NAMED};
    use super::*;
    use crate::bindings::types::{Metric, MetricKind};
    use crate::config::CollectorConfig;

    fn collector(toml: &str) -> CollectorConfig {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        crate::config::load(&p).unwrap().collectors.remove(0)
    }

    #[test]
    fn paths_as_diamond() {
        let c = collector("[collectors.cpu]\n");
        let p = c.paths(Some("web1"), "cpu");
        assert_eq!(p.path("total.idle", None), "servers.web1.cpu.total.idle");
        assert_eq!(p.path("x", Some("db2")), "instances.db2.cpu.x");
        let c =
            collector("[collectors.cpu]\npath_prefix = \"\"\npath_suffix = \"s\"\npath = \".\"\n");
        let p = c.paths(Some("h"), "cpu");
        assert_eq!(p.path("n", None), "h.s.n");
        let p = c.paths(None, "cpu");
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
        let f = c.filter();
        assert!(f.keep("total.idle"));
        assert!(!f.keep("cpu0.total.idle"));
        let c = collector("[collectors.cpu]\nmetrics_blacklist = \"cpu[0-9]+\"\n");
        let f = c.filter();
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
            paths: c.paths(Some("web1"), "cpu"),
            filter: c.filter(),
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

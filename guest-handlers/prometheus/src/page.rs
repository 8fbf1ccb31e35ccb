//! The latest value of each series, and the text exposition format (0.0.4)
//! of them: pure, unit-tested natively.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;

use wdiamond_sdk::prometheus::{escape_help, escape_label_value, Mapper};

/// One published metric, as the store takes it.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// Full graphite path.
    pub path: &'a str,
    /// Host name in the path.
    pub host: &'a str,
    /// Collector instance.
    pub collector: &'a str,
    /// The value.
    pub value: f64,
    /// Diamond's raw value (a counter's count).
    pub raw_value: Option<f64>,
    /// A counter (else a gauge).
    pub counter: bool,
    /// Seconds since the epoch.
    pub timestamp: u64,
    /// Seconds the value stays fresh.
    pub ttl: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    value: f64,
    timestamp: u64,
    expires: u64,
}

#[derive(Debug, Default)]
struct Family {
    counter: bool,
    help: String,
    series: BTreeMap<Rc<str>, Sample>,
}

/// The series the page shows: a family per metric name, each series by its
/// rendered label set.
pub struct Store {
    mapper: Mapper,
    ttl: Option<u32>,
    max_series: usize,
    families: BTreeMap<Rc<str>, Family>,
    /// host -> path -> (family, labels, factor): mapping a path is most of
    /// the work, and the same at every run (looked up without allocating).
    names: HashMap<String, HashMap<String, Name>>,
    mapped: usize,
    series: usize,
    /// Metrics not kept: past `max_series`, or a name already used by
    /// the other kind.
    pub dropped: u64,
}

/// A path's family, rendered labels and value factor.
type Name = (Rc<str>, Rc<str>, f64);

/// Most mapped paths remembered (the map starts over past it).
const MAX_NAMES: usize = 400_000;

impl Store {
    /// An empty store: `mapper` names the series; `ttl` overrides each
    /// metric's own; at most `max_series` series.
    pub fn new(mapper: Mapper, ttl: Option<u32>, max_series: usize) -> Store {
        Store {
            mapper,
            ttl,
            max_series,
            families: BTreeMap::new(),
            names: HashMap::new(),
            mapped: 0,
            series: 0,
            dropped: 0,
        }
    }

    /// How many series are held.
    pub fn len(&self) -> usize {
        self.series
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.series == 0
    }

    fn name_of(&mut self, path: &str, host: &str, counter: bool) -> Name {
        if let Some(n) = self.names.get(host).and_then(|m| m.get(path)) {
            return n.clone();
        }
        let mapped = self.mapper.map(path, host, counter);
        let labels = mapped.labels;
        let mut rendered = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            rendered.push(if i == 0 { '{' } else { ',' });
            rendered.push_str(k);
            rendered.push_str("=\"");
            escape_label_value(v, &mut rendered);
            rendered.push('"');
        }
        if !labels.is_empty() {
            rendered.push('}');
        }
        if self.mapped >= MAX_NAMES {
            self.names.clear();
            self.mapped = 0;
        }
        let n: Name = (mapped.name.into(), rendered.into(), mapped.scale);
        self.names
            .entry(host.to_string())
            .or_default()
            .insert(path.to_string(), n.clone());
        self.mapped += 1;
        n
    }

    /// Keeps `m` as its series' latest value (an older point than the one
    /// held is ignored).
    pub fn update(&mut self, m: Update<'_>) {
        let (name, labels, scale) = self.name_of(m.path, m.host, m.counter);
        let value = scale
            * if m.counter {
                m.raw_value.unwrap_or(m.value)
            } else {
                m.value
            };
        let expires = m
            .timestamp
            .saturating_add(u64::from(self.ttl.unwrap_or(m.ttl)));
        let sample = Sample {
            value,
            timestamp: m.timestamp,
            expires,
        };
        let full = self.series >= self.max_series;
        let family = match self.families.get_mut(&*name) {
            Some(f) => f,
            None if full => {
                self.dropped += 1;
                return;
            }
            None => self.families.entry(name).or_insert_with(|| Family {
                counter: m.counter,
                help: format!("{} (collector {})", m.path, m.collector),
                series: BTreeMap::new(),
            }),
        };
        if family.counter != m.counter {
            self.dropped += 1;
            return;
        }
        match family.series.get_mut(&*labels) {
            Some(s) if s.timestamp > m.timestamp => {}
            Some(s) => *s = sample,
            None if full => self.dropped += 1,
            None => {
                family.series.insert(labels, sample);
                self.series += 1;
            }
        }
    }

    /// Forgets the series whose value went stale before `now`.
    pub fn expire(&mut self, now: u64) {
        let mut gone = 0;
        self.families.retain(|_, f| {
            let before = f.series.len();
            f.series.retain(|_, s| s.expires >= now);
            gone += before - f.series.len();
            !f.series.is_empty()
        });
        self.series -= gone;
    }

    /// The page: `# HELP` and `# TYPE` per family, a line per series (with
    /// its timestamp in milliseconds when `timestamps`).
    pub fn render(&self, timestamps: bool) -> String {
        let mut out = String::with_capacity(self.series * 64 + self.families.len() * 96);
        for (name, f) in &self.families {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape_help(&f.help, &mut out);
            out.push_str("\n# TYPE ");
            out.push_str(name);
            out.push_str(if f.counter { " counter\n" } else { " gauge\n" });
            for (labels, s) in &f.series {
                out.push_str(name);
                out.push_str(labels);
                let _ = write!(out, " {}", s.value);
                if timestamps {
                    let _ = write!(out, " {}", s.timestamp.saturating_mul(1000));
                }
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wdiamond_sdk::prometheus::parse_rule;

    fn m(path: &str, value: f64, timestamp: u64) -> Update<'_> {
        Update {
            path,
            host: "web1",
            collector: "c",
            value,
            raw_value: None,
            counter: false,
            timestamp,
            ttl: 20,
        }
    }

    #[test]
    fn the_page_holds_the_latest_value_of_each_series() {
        let mapper = Mapper::new(Vec::new(), vec![("env".into(), "a\"b".into())], true);
        let mut s = Store::new(mapper, None, 100);
        s.update(m("servers.web1.loadavg.01", 0.5, 10));
        s.update(m("servers.web1.loadavg.01", 0.7, 20));
        s.update(m("servers.web1.loadavg.01", 0.1, 15)); // older: ignored
        s.update(Update {
            raw_value: Some(12345.0),
            counter: true,
            ..m("servers.web1.network.eth0.rx_byte", 1.5, 20)
        });
        let page = s.render(false);
        assert_eq!(
            page,
            "# HELP loadavg_01 servers.web1.loadavg.01 (collector c)\n\
             # TYPE loadavg_01 gauge\n\
             loadavg_01{env=\"a\\\"b\",host=\"web1\"} 0.7\n\
             # HELP network_rx_byte_total servers.web1.network.eth0.rx_byte (collector c)\n\
             # TYPE network_rx_byte_total counter\n\
             network_rx_byte_total{env=\"a\\\"b\",host=\"web1\",interface=\"eth0\"} 12345\n"
        );
        assert!(s.render(true).contains("} 0.7 20000\n"));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn rules_map_and_stale_series_expire() {
        let rules =
            vec![
                parse_rule(r#"servers.*.cpu.*.* cpu_percent{host="$1",cpu="$2",mode="$3"}"#)
                    .unwrap(),
            ];
        let mut s = Store::new(Mapper::new(rules, Vec::new(), true), None, 100);
        s.update(m("servers.web1.cpu.cpu0.idle", 90.0, 100));
        s.update(m("servers.web1.cpu.cpu1.idle", 80.0, 110));
        let page = s.render(false);
        assert!(
            page.contains("cpu_percent{cpu=\"cpu0\",host=\"web1\",mode=\"idle\"} 90\n"),
            "{page}"
        );
        assert_eq!(page.matches("# TYPE cpu_percent gauge").count(), 1);
        s.expire(125);
        assert_eq!(s.len(), 1);
        assert!(!s.render(false).contains("cpu=\"cpu0\""));
        s.expire(1000);
        assert!(s.is_empty());
        assert_eq!(s.render(false), "");
    }

    #[test]
    fn series_are_bounded_and_kinds_do_not_mix() {
        let mut s = Store::new(Mapper::new(Vec::new(), Vec::new(), true), Some(5), 2);
        s.update(m("servers.web1.a", 1.0, 1));
        s.update(m("servers.web1.b", 1.0, 1));
        s.update(m("servers.web1.c", 1.0, 1));
        assert_eq!((s.len(), s.dropped), (2, 1));
        // Updating a held series still works when full.
        s.update(m("servers.web1.a", 2.0, 2));
        assert!(s.render(false).contains("a{host=\"web1\"} 2\n"));
        let rules = vec![
            parse_rule("servers.*.x same").unwrap(),
            parse_rule("servers.*.y same_total").unwrap(),
        ];
        let mut s = Store::new(Mapper::new(rules, Vec::new(), true), None, 10);
        s.update(m("servers.web1.y", 1.0, 1));
        s.update(Update {
            counter: true,
            ..m("servers.web1.x", 1.0, 1)
        });
        assert_eq!(s.dropped, 1);
        assert!(s.render(false).contains("# TYPE same_total gauge"));
    }

    #[test]
    fn a_factor_scales_the_value() {
        let mut s = Store::new(Mapper::new(Vec::new(), Vec::new(), true), None, 10);
        s.update(m("servers.web1.uptime.minutes", 2.5, 1));
        s.update(m("servers.web1.iostat.vda.reads_milliseconds", 250.0, 1));
        let page = s.render(false);
        assert!(
            page.contains("uptime_seconds{host=\"web1\"} 150\n"),
            "{page}"
        );
        assert!(
            page.contains("iostat_read_seconds{device=\"vda\",host=\"web1\"} 0.25\n"),
            "{page}"
        );
    }
}

//! Diamond's MemcachedCollector: `stats` of one or more memcached servers
//! over a granted socket (`<alias>.curr_items`, `<alias>.get_hits`, ...);
//! gauges as they are, everything else as a rate (COUNTER).

use std::collections::BTreeMap;

use wdiamond_sdk::derive::{Derivative, Per};
use wdiamond_sdk::hosts::{parse_host_spec, wanted, HostSpec};
use wdiamond_sdk::net::each_host;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

/// Diamond's GAUGES: published as they are.
pub const GAUGES: [&str; 11] = [
    "bytes",
    "connection_structures",
    "curr_connections",
    "curr_items",
    "threads",
    "reserved_fds",
    "limit_maxbytes",
    "hash_power_level",
    "hash_bytes",
    "hash_is_expanding",
    "uptime",
];
const IGNORED: [&str; 8] = [
    "libevent",
    "pointer_size",
    "time",
    "version",
    "repcached_version",
    "replication",
    "accepting_conns",
    "pid",
];

/// Parses a `stats` reply: `STAT name value` lines up to `END`.
pub fn parse_stats(text: &str) -> BTreeMap<String, f64> {
    let mut stats = BTreeMap::new();
    for line in text.lines() {
        let p: Vec<&str> = line.split(' ').collect();
        if p.len() < 3 || p[0] != "STAT" || IGNORED.contains(&p[1]) {
            continue;
        }
        if let Ok(v) = p[2].trim().parse::<f64>() {
            stats.insert(p[1].to_string(), v);
        }
    }
    stats
}

/// The collector's state.
pub struct Memcached {
    servers: Vec<HostSpec>,
    publish: Vec<String>,
    interval: f64,
    derivative: Derivative,
}

impl Collector for Memcached {
    fn describe() -> Description {
        Description {
            name: "memcached".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "memcached stats (Diamond's MemcachedCollector).".into(),
            options: vec![
                option(
                    "hosts",
                    ConfigValue::TextList(vec!["localhost:11211".into()]),
                    "List of hosts, [alias@]host:port (or a Unix socket path)",
                ),
                option(
                    "publish",
                    ConfigValue::TextList(vec![]),
                    "Which stats to publish; empty: all",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:localhost:11211".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Memcached {
            servers: config
                .list("hosts")
                .iter()
                .map(|h| parse_host_spec(h))
                .collect(),
            publish: config.list("publish"),
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let (publish, interval, derivative) = (&self.publish, self.interval, &mut self.derivative);
        let done = |b: &[u8]| b.ends_with(b"END\r\n");
        each_host(
            &self.servers,
            b"stats\r\n",
            3000,
            done,
            "memcached",
            |s, raw| {
                let stats = parse_stats(&String::from_utf8_lossy(raw));
                for stat in wanted(publish, stats.keys()) {
                    let Some(v) = stats.get(&stat) else {
                        host::warn(&format!(
                            "No such key '{stat}' available, issue 'stats' for a full list"
                        ));
                        continue;
                    };
                    let name = format!("{}.{stat}", s.alias_or_host());
                    if GAUGES.contains(&stat.as_str()) {
                        out.gauge(name, *v, 0);
                    } else if let Some(rate) =
                        derivative.rate_f64(&name, *v, 0.0, Per::Seconds(interval), false)
                    {
                        out.counter_raw(name, rate, *v, 0);
                    }
                }
                Ok(())
            },
        )
    }
}

export_collector!(Memcached);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats() {
        let s = parse_stats("STAT pid 1\r\nSTAT curr_items 3\r\nSTAT rusage_user 0.5\r\nSTAT version 1.6\r\nEND\r\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s["rusage_user"], 0.5);
        assert_eq!(parse_host_spec("c1@10.0.0.1:11212").alias_or_host(), "c1");
    }
}

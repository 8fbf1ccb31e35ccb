//! Diamond's ZookeeperCollector: the `mntr` four-letter command of one or
//! more ZooKeeper servers over a granted socket, every numeric line a gauge
//! under its own name (`zk_avg_latency`, `zk_znode_count`, ...), prefixed
//! with the host's alias when it has one.
//!
//! Diamond's script reads the answer with one `recv(4096)`: a ZooKeeper of
//! 3.6 or later answers `mntr` with some 16 KB (its metrics system's
//! summaries), so under Diamond the script fails on the line cut at byte
//! 4096. This port reads the whole answer (the server closes the
//! connection after it).

use std::collections::BTreeMap;

use wdiamond_sdk::hosts::{parse_host_spec, wanted, HostSpec};
use wdiamond_sdk::net::each_host;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

/// Lines Diamond never publishes (not numbers).
const IGNORED: [&str; 2] = ["zk_version", "zk_server_state"];

/// Parses an `mntr` answer: `key<TAB>value` lines; lines whose value is
/// not a number are left out.
pub fn parse_mntr(text: &str) -> BTreeMap<String, f64> {
    let mut stats = BTreeMap::new();
    for line in text.lines() {
        let mut pieces = line.split_whitespace();
        let (Some(key), Some(value)) = (pieces.next(), pieces.next()) else {
            continue;
        };
        if IGNORED.contains(&key) {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            if v.is_finite() {
                stats.insert(key.to_string(), v);
            }
        }
    }
    stats
}

/// The metric name of `stat` from `server`: `alias.stat`, or the stat
/// alone when the entry has no alias (as Diamond names them).
pub fn metric_name(server: &HostSpec, stat: &str) -> String {
    match &server.alias {
        Some(a) => format!("{a}.{stat}"),
        None => stat.to_string(),
    }
}

/// The collector's state.
pub struct Zookeeper {
    servers: Vec<HostSpec>,
    publish: Vec<String>,
}

impl Collector for Zookeeper {
    fn describe() -> Description {
        Description {
            name: "zookeeper".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "ZooKeeper `mntr` (Diamond's ZookeeperCollector).".into(),
            options: vec![
                option(
                    "hosts",
                    ConfigValue::TextList(vec!["localhost:2181".into()]),
                    "List of hosts, [alias@]host:port (or a Unix socket path)",
                ),
                option(
                    "publish",
                    ConfigValue::TextList(vec![]),
                    "Which mntr keys to publish; empty: all",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:localhost:2181".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Zookeeper {
            servers: config
                .list("hosts")
                .iter()
                .map(|h| parse_host_spec(h))
                .collect(),
            publish: config.list("publish"),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let publish = &self.publish;
        each_host(
            &self.servers,
            b"mntr\n",
            3000,
            |_| false,
            "zookeeper",
            |s, raw| {
                let text = String::from_utf8_lossy(raw);
                let stats = parse_mntr(&text);
                if stats.is_empty() {
                    // Not serving yet, mntr not in 4lw.commands.whitelist, or
                    // not a ZooKeeper: say what it answered.
                    let start: String = text.chars().take(100).collect();
                    return Err(format!(
                        "{} answered mntr with no stats: {start:?}",
                        s.address
                    ));
                }
                for stat in wanted(publish, stats.keys()) {
                    match stats.get(&stat) {
                        Some(v) => out.gauge(metric_name(s, &stat), *v, 0),
                        None => host::warn(&format!(
                            "No such key '{stat}' available, issue 'mntr' for a full list"
                        )),
                    }
                }
                Ok(())
            },
        )
    }
}

export_collector!(Zookeeper);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mntr() {
        let s = parse_mntr("zk_version\t3.8.0-abc, built on 2024\nzk_server_state\tstandalone\nzk_avg_latency\t0.5\nzk_znode_count\t5\nzk_cut");
        assert_eq!(s.len(), 2);
        assert_eq!(s["zk_avg_latency"], 0.5);
        assert_eq!(s["zk_znode_count"], 5.0);
    }

    #[test]
    fn names_with_and_without_alias() {
        let stat = "zk_znode_count";
        assert_eq!(metric_name(&parse_host_spec("localhost:2181"), stat), stat);
        assert_eq!(
            metric_name(&parse_host_spec("app@localhost:2181"), stat),
            "app.zk_znode_count"
        );
    }
}

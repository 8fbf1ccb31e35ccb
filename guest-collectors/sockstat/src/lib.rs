//! Diamond's SockstatCollector: socket counts from `/proc/net/sockstat`
//! and `/proc/net/sockstat6`, summed over IPv4 and IPv6 (path `sockets`).

use std::collections::BTreeMap;

use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROCS: [&str; 2] = ["/proc/net/sockstat", "/proc/net/sockstat6"];

/// Adds the counts of one file to `data` (Diamond's regex groups:
/// `sockets: used`, `TCP|TCP6: inuse orphan tw alloc mem`, `UDP|UDP6: inuse mem`).
pub fn add(data: &mut BTreeMap<String, i64>, text: &str) {
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
        let mut put = |k: &str, v: Option<i64>| {
            if let Some(v) = v {
                *data.entry(k.to_string()).or_insert(0) += v;
            }
        };
        match f.first().copied() {
            Some("sockets:") if f.get(1) == Some(&"used") => put("used", num(2)),
            Some("TCP:") | Some("TCP6:") if f.get(1) == Some(&"inuse") => {
                put("tcp_inuse", num(2));
                if f.len() >= 11
                    && f[3] == "orphan"
                    && f[5] == "tw"
                    && f[7] == "alloc"
                    && f[9] == "mem"
                {
                    put("tcp_orphan", num(4));
                    put("tcp_tw", num(6));
                    put("tcp_alloc", num(8));
                    put("tcp_mem", num(10));
                }
            }
            Some("UDP:") | Some("UDP6:") if f.get(1) == Some(&"inuse") => {
                put("udp_inuse", num(2));
                if f.len() >= 5 && f[3] == "mem" {
                    put("udp_mem", num(4));
                }
            }
            _ => {}
        }
    }
}

/// The collector.
pub struct Sockstat;

impl Collector for Sockstat {
    fn describe() -> Description {
        Description {
            name: "sockets".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Socket counts from /proc/net/sockstat and sockstat6 (Diamond's SockstatCollector)."
                    .into(),
            options: vec![],
            capabilities: PROCS
                .iter()
                .map(|p| Capability::ReadFiles(p.to_string()))
                .collect(),
        }
    }

    fn configure(_: &Config) -> Result<Self, String> {
        Ok(Sockstat)
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let mut data = BTreeMap::new();
        for p in PROCS {
            if let Some(text) = host::read_optional(p)? {
                add(&mut data, &text);
            }
        }
        for (k, v) in data {
            out.gauge(k, v as f64, 0);
        }
        Ok(())
    }
}

export_collector!(Sockstat);

#[cfg(test)]
mod tests {
    #[test]
    fn sums_v4_and_v6() {
        let mut d = Default::default();
        super::add(&mut d, "sockets: used 5\nTCP: inuse 10 orphan 0 tw 1 alloc 13 mem 1\nUDP: inuse 0 mem 0\nUDPLITE: inuse 9\n");
        super::add(&mut d, "TCP6: inuse 51\nUDP6: inuse 6\n");
        assert_eq!(d["tcp_inuse"], 61);
        assert_eq!(d["udp_inuse"], 6);
        assert_eq!(d["tcp_orphan"], 0);
        assert_eq!(d.len(), 8);
    }
}

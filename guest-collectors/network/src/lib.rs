//! Diamond's NetworkCollector: per-interface traffic per second from
//! `/proc/net/dev`, bytes converted into each `byte_unit`
//! (`eth0.rx_bit`, `eth0.tx_megabyte`, `eth0.rx_packets`, ...).

use regex_lite::Regex;
use wdiamond_sdk::derive::{parse_counter, Derivative, Per, MAX_COUNTER};
use wdiamond_sdk::units::Unit;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC: &str = "/proc/net/dev";
/// The columns of /proc/net/dev, in order.
pub const FIELDS: [&str; 16] = [
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_drop",
    "rx_fifo",
    "rx_frame",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_drop",
    "tx_fifo",
    "tx_colls",
    "tx_carrier",
    "tx_compressed",
];

/// Diamond's interface regex for `interfaces` and `greedy`.
pub fn interface_regex(interfaces: &[String], greedy: bool) -> Result<Regex, String> {
    let greed = if greedy { r"\S*" } else { "" };
    let mut exp = format!(r"^(?:\s*)((?:{}){greed}):(?:\s*)", interfaces.join("|"));
    for (i, f) in FIELDS.iter().enumerate() {
        let class = if f.ends_with("packets") {
            r"\w+"
        } else {
            r"\d+"
        };
        let sep = if i + 1 == FIELDS.len() {
            "(?:.*)$"
        } else {
            r"(?:\s*)"
        };
        exp.push_str(&format!("({class}){sep}"));
    }
    Regex::new(&exp).map_err(|e| format!("`interfaces`: {e}"))
}

/// The collector's state.
pub struct Network {
    regex: Regex,
    units: Vec<(String, Unit)>,
    interval: f64,
    derivative: Derivative,
}

impl Network {
    /// Diamond's metrics of one sample: `(name, value, precision)`.
    pub fn compute(&mut self, text: &str) -> Vec<(String, f64, u8)> {
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(c) = self.regex.captures(line) else {
                continue;
            };
            let device = &c[1];
            for (i, field) in FIELDS.iter().enumerate() {
                let Some(v) = parse_counter(&c[i + 2]) else {
                    continue;
                };
                let name = format!("{device}.{field}");
                let Some(rate) =
                    self.derivative
                        .rate(&name, v, MAX_COUNTER, Per::Seconds(self.interval), false)
                else {
                    continue;
                };
                if *field == "rx_bytes" || *field == "tx_bytes" {
                    let bits = Unit::parse("byte").expect("byte").to_bits(rate);
                    for (u, unit) in &self.units {
                        // Diamond passes 2 as raw_value, so its wire shows 0
                        // decimals; we print the intended 2 (see README).
                        out.push((name.replace("bytes", u), unit.from_bits(bits), 2));
                    }
                } else {
                    out.push((name, rate, 0));
                }
            }
        }
        out
    }
}

impl Collector for Network {
    fn describe() -> Description {
        Description {
            name: "network".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Network interface traffic per second from /proc/net/dev (Diamond's NetworkCollector).".into(),
            options: vec![
                option("interfaces", ConfigValue::TextList(["eth", "bond", "em", "p1p", "eno", "enp", "ens", "enx"].map(String::from).to_vec()), "List of interface name prefixes (regex fragments) to collect"),
                option("greedy", ConfigValue::Boolean(true), "Match any interface that starts with a prefix (eth matches eth0, eth1, ...)"),
                option("byte_unit", ConfigValue::TextList(vec!["bit".into(), "byte".into()]), "Units for rx/tx bytes (Diamond's network default: bit and byte)"),
            ],
            capabilities: vec![Capability::ReadFiles(PROC.into()), Capability::ReadFiles("/proc/self/net/dev".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let interfaces = config.list("interfaces");
        let regex = interface_regex(&interfaces, config.bool("greedy")?)?;
        let mut units = Vec::new();
        for u in config.list("byte_unit") {
            let unit = Unit::parse(&u).ok_or_else(|| format!("`byte_unit`: unknown unit {u:?}"))?;
            units.push((u, unit));
        }
        Ok(Network {
            regex,
            units,
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        for (name, v, p) in self.compute(&text) {
            out.gauge(name, v, p);
        }
        Ok(())
    }
}

export_collector!(Network);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_glued_counters_and_skips_lo() {
        let r = interface_regex(&["eth".into(), "em".into()], true).unwrap();
        assert!(r.is_match("  em1:0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"));
        assert!(!r.is_match("    lo: 1 2 0 0 0 0 0 0 1 2 0 0 0 0 0 0"));
        let c = r
            .captures(" eth0: 10 2 0 0 0 0 0 0 30 4 0 0 0 0 0 0")
            .unwrap();
        assert_eq!((&c[1], &c[2], &c[10]), ("eth0", "10", "30"));
    }
}

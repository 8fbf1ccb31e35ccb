//! Diamond's TCPCollector: TCP counters from `/proc/net/netstat` (TcpExt)
//! and `/proc/net/snmp` (Tcp), as rates (COUNTER) except the gauges.

use std::collections::BTreeMap;

use wdiamond_sdk::derive::{parse_counter, Derivative, Per};
use wdiamond_sdk::text::header_table;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROCS: [&str; 2] = ["/proc/net/netstat", "/proc/net/snmp"];
const ALLOWED: &str = "ListenOverflows, ListenDrops, TCPLoss, TCPTimeouts, TCPFastRetrans, TCPLostRetransmit, TCPForwardRetrans, TCPSlowStartRetrans, CurrEstab, TCPAbortOnMemory, TCPBacklogDrop, AttemptFails, EstabResets, InErrs, ActiveOpens, PassiveOpens";

/// The collector's state.
pub struct Tcp {
    allowed: Vec<String>,
    gauges: Vec<String>,
    interval: f64,
    derivative: Derivative,
}

/// Merges the `Tcp*` tables of the files, later files overwriting.
pub fn merge(files: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for text in files {
        if let Some(t) = header_table(text, "Tcp") {
            m.extend(t);
        }
    }
    m
}

impl Collector for Tcp {
    fn describe() -> Description {
        Description {
            name: "tcp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "TCP statistics from /proc/net/netstat and /proc/net/snmp (Diamond's TCPCollector)."
                    .into(),
            options: vec![
                option(
                    "allowed_names",
                    ConfigValue::Text(ALLOWED.into()),
                    "list of entries to collect, empty to collect all",
                ),
                option(
                    "gauges",
                    ConfigValue::Text("CurrEstab, MaxConn".into()),
                    "list of metrics to be published as gauges",
                ),
            ],
            capabilities: PROCS
                .iter()
                .map(|p| Capability::ReadFiles(p.to_string()))
                .collect(),
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Tcp {
            allowed: config.list("allowed_names"),
            gauges: config.list("gauges"),
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let mut files = Vec::new();
        for p in PROCS {
            match host::read_optional(p)? {
                Some(t) => files.push(t),
                None => host::debug(&format!("{p} does not exist; skipped")),
            }
        }
        for (name, value) in merge(&files) {
            if !self.allowed.is_empty() && !self.allowed.contains(&name) {
                continue;
            }
            let Some(v) = parse_counter(&value) else {
                continue;
            };
            if self.gauges.contains(&name) {
                out.gauge(name, v as f64, 0);
            } else {
                if let Some(rate) =
                    self.derivative
                        .rate(&name, v, 0, Per::Seconds(self.interval), false)
                {
                    out.counter_raw(name, rate, v as f64, 0);
                }
            }
        }
        Ok(())
    }
}

export_collector!(Tcp);

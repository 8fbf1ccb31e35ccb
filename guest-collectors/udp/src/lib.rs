//! Diamond's UDPCollector: UDP counters per second from `/proc/net/snmp`.

use wdiamond_sdk::derive::{parse_counter, Derivative, Per};
use wdiamond_sdk::text::header_table;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC: &str = "/proc/net/snmp";

/// The collector's state.
pub struct Udp {
    allowed: Vec<String>,
    interval: f64,
    derivative: Derivative,
}

impl Collector for Udp {
    fn describe() -> Description {
        Description {
            name: "udp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "UDP statistics per second from /proc/net/snmp (Diamond's UDPCollector)."
                .into(),
            options: vec![option(
                "allowed_names",
                ConfigValue::Text(
                    "InDatagrams, NoPorts, InErrors, OutDatagrams, RcvbufErrors, SndbufErrors"
                        .into(),
                ),
                "list of entries to collect, empty to collect all",
            )],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Udp {
            allowed: config.list("allowed_names"),
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        let Some(table) = header_table(&text, "Udp") else {
            host::warn(&format!("{PROC} has no lines with Udp"));
            return Ok(());
        };
        for (name, value) in table {
            if !self.allowed.is_empty() && !self.allowed.contains(&name) {
                continue;
            }
            let Some(v) = parse_counter(&value) else {
                continue;
            };
            if let Some(rate) =
                self.derivative
                    .rate(&name, v, 0, Per::Seconds(self.interval), false)
            {
                out.gauge(name, rate, 0);
            }
        }
        Ok(())
    }
}

export_collector!(Udp);

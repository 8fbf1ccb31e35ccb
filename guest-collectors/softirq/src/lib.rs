//! Diamond's SoftInterruptCollector: softirqs per second, in total and per
//! type, from the `softirq` line of `/proc/stat`.

use wdiamond_sdk::derive::{parse_counter, Derivative, Per, MAX_COUNTER};
use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROC: &str = "/proc/stat";

/// The collector's state.
pub struct Softirq {
    interval: f64,
    derivative: Derivative,
}

impl Collector for Softirq {
    fn describe() -> Description {
        Description {
            name: "softirq".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Soft interrupts per second from /proc/stat (Diamond's SoftInterruptCollector)."
                    .into(),
            options: vec![],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Softirq {
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        for line in text.lines().filter(|l| l.starts_with("softirq")) {
            for (i, v) in line.split_whitespace().skip(1).enumerate() {
                let name = if i == 0 {
                    "total".to_string()
                } else {
                    (i - 1).to_string()
                };
                let v = parse_counter(v)
                    .ok_or_else(|| format!("{PROC}: softirq: not a number: {v:?}"))?;
                if let Some(rate) =
                    self.derivative
                        .rate(&name, v, MAX_COUNTER, Per::Seconds(self.interval), false)
                {
                    out.gauge(name, rate.trunc(), 0);
                }
            }
        }
        Ok(())
    }
}

export_collector!(Softirq);

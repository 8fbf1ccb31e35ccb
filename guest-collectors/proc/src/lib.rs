//! Diamond's ProcessStatCollector: context switches and forks per second,
//! running and blocked processes and boot time, from `/proc/stat`.

use wdiamond_sdk::derive::{parse_counter, Derivative, Per, MAX_COUNTER};
use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROC: &str = "/proc/stat";

/// The collector's state.
pub struct Proc {
    interval: f64,
    derivative: Derivative,
}

impl Collector for Proc {
    fn describe() -> Description {
        Description {
            name: "proc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Process statistics from /proc/stat (Diamond's ProcessStatCollector).".into(),
            options: vec![],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Proc {
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(name), Some(value)) = (f.next(), f.next()) else {
                continue;
            };
            let Some(v) = parse_counter(value) else {
                continue;
            };
            if line.starts_with("ctxt") || line.starts_with("processes") {
                if let Some(rate) =
                    self.derivative
                        .rate(name, v, MAX_COUNTER, Per::Seconds(self.interval), false)
                {
                    out.gauge(name, rate.trunc(), 0);
                }
            }
            if line.starts_with("procs_") || line.starts_with("btime") {
                out.gauge(name, v as f64, 0);
            }
        }
        Ok(())
    }
}

export_collector!(Proc);

//! Diamond's EntropyStatCollector: available entropy from
//! `/proc/sys/kernel/random/entropy_avail`.

use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROC: &str = "/proc/sys/kernel/random/entropy_avail";

/// The collector.
pub struct Entropy;

impl Collector for Entropy {
    fn describe() -> Description {
        Description {
            name: "entropy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Available entropy (Diamond's EntropyStatCollector).".into(),
            options: vec![],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(_: &Config) -> Result<Self, String> {
        Ok(Entropy)
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{PROC}: not a number: {:?}", text.trim()))?;
        out.gauge("available", v, 0);
        Ok(())
    }
}

export_collector!(Entropy);

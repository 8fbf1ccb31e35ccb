//! Diamond's UptimeCollector: time since boot from `/proc/uptime`, in the
//! unit named by `metric_name` (which is also the metric's name).

use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC: &str = "/proc/uptime";

/// Seconds per unit, for Diamond's time convertor.
pub fn seconds_per(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" | "nanosecond" | "nanoseconds" => 1e-9,
        "us" | "microsecond" | "microseconds" => 1e-6,
        "ms" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "sec" | "second" | "seconds" => 1.0,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return None,
    })
}

/// Uptime in `unit` from the file's text.
pub fn uptime(text: &str, unit: &str) -> Result<f64, String> {
    let first = text.split_whitespace().next().ok_or("empty file")?;
    let secs: f64 = first
        .parse()
        .map_err(|_| format!("could not convert string to float: {first:?}"))?;
    Ok(secs * 1.0 / seconds_per(unit).ok_or_else(|| format!("unknown unit {unit:?}"))?)
}

/// The collector's state.
pub struct Uptime {
    unit: String,
}

impl Collector for Uptime {
    fn describe() -> Description {
        Description {
            name: "uptime".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Uptime from /proc/uptime (Diamond's UptimeCollector).".into(),
            options: vec![option(
                "metric_name",
                ConfigValue::Text("minutes".into()),
                "the unit (seconds, minutes, hours, days, ...) and metric name",
            )],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let unit = config.text("metric_name")?;
        seconds_per(&unit).ok_or_else(|| format!("`metric_name`: unknown time unit {unit:?}"))?;
        Ok(Uptime { unit })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            host::warn(&format!("Input path {PROC} does not exist"));
            return Ok(());
        };
        match uptime(&text, &self.unit) {
            Ok(v) => out.gauge(self.unit.clone(), v, 0),
            // As Diamond: log, publish nothing.
            Err(e) => host::warn(&format!("Unable to read uptime from {PROC}: {e}")),
        }
        Ok(())
    }
}

export_collector!(Uptime);

#[cfg(test)]
mod tests {
    #[test]
    fn converts() {
        assert_eq!(super::uptime("3600 1.0", "minutes"), Ok(60.0));
        assert_eq!(super::uptime("3600 1.0", "seconds"), Ok(3600.0));
        assert!(super::uptime("x 1", "minutes").is_err());
    }
}

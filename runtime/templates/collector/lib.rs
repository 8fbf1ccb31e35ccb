//! {{name}}: a wdiamond collector. It reads `/proc/uptime` and publishes
//! how long the machine has been up, and how long its CPUs were idle.
//!
//! The parsing is a pure function ([`parse`]), unit-tested natively with
//! `cargo test`; the [`Collector`] impl only reads, parses and publishes.

use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const SOURCE: &str = "/proc/uptime";

/// The two numbers of /proc/uptime: seconds up, seconds idle (all CPUs).
pub fn parse(text: &str) -> Result<(f64, f64), String> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(up)), Some(Ok(idle))) => Ok((up, idle)),
        _ => Err(format!("{SOURCE}: expected two numbers, got {text:?}")),
    }
}

/// The collector's state, built by `configure`.
pub struct Plugin {
    /// Publish minutes instead of seconds (the `minutes` option).
    minutes: bool,
}

impl Collector for Plugin {
    fn describe() -> Description {
        Description {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Seconds since boot and idle seconds, from /proc/uptime.".into(),
            // Every option, with its default (written only here) and help.
            options: vec![option(
                "minutes",
                ConfigValue::Boolean(false),
                "Publish minutes instead of seconds",
            )],
            // What the plugin needs; the operator grants it in the config.
            capabilities: vec![Capability::ReadFiles(SOURCE.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Plugin {
            minutes: config.bool("minutes")?,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let text = host::read_to_string(SOURCE).map_err(|e| host::describe_error(&e))?;
        let (up, idle) = parse(&text)?;
        let unit = if self.minutes { 60.0 } else { 1.0 };
        out.gauge("up", up / unit, 2);
        out.gauge("idle", idle / unit, 2);
        Ok(())
    }
}

export_collector!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_uptime() {
        assert_eq!(parse("350735.47 234388.90\n"), Ok((350735.47, 234388.90)));
        assert!(parse("garbage").is_err());
    }
}

//! A test-only collector whose `describe` returns garbage: a name that is
//! not a path segment, 100,000 options and a 1 MiB summary.

use wdiamond_sdk::{
    export_collector, option, Collector, Config, ConfigValue, Description, Publisher,
};

/// The collector.
pub struct BadDescribe;

impl Collector for BadDescribe {
    fn describe() -> Description {
        Description {
            name: "bad name\nwith newline".into(),
            version: "not-semver".into(),
            summary: "x".repeat(1 << 20),
            options: (0..100_000)
                .map(|i| option(&format!("k{i}"), ConfigValue::Integer(i), ""))
                .collect(),
            capabilities: vec![],
        }
    }

    fn configure(_: &Config) -> Result<Self, String> {
        Ok(BadDescribe)
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        out.gauge("x", 1.0, 0);
        Ok(())
    }
}

export_collector!(BadDescribe);

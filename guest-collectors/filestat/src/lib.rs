//! Diamond's FilestatCollector (file-nr part): allocated, unused and
//! maximum file handles from `/proc/sys/fs/file-nr` (path `files`).

use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC: &str = "/proc/sys/fs/file-nr";

/// The collector.
pub struct Filestat;

impl Collector for Filestat {
    fn describe() -> Description {
        Description {
            name: "files".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "File handles from /proc/sys/fs/file-nr (Diamond's FilestatCollector).".into(),
            options: vec![option(
                "collect_user_data",
                ConfigValue::Boolean(false),
                "per-user open files via lsof: not supported by this collector",
            )],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        if config.bool("collect_user_data")? {
            return Err(
                "`collect_user_data` (lsof per user) is not supported; set it to false".into(),
            );
        }
        Ok(Filestat)
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        let f: Vec<&str> = text.split_whitespace().collect();
        let [assigned, unused, max] = f[..] else {
            return Err(format!("{PROC}: expected 3 numbers, got {text:?}"));
        };
        for (name, v) in [("assigned", assigned), ("unused", unused), ("max", max)] {
            let v: i64 = v
                .parse()
                .map_err(|_| format!("{PROC}: not a number: {v:?}"))?;
            out.gauge(name, v as f64, 0);
        }
        Ok(())
    }
}

export_collector!(Filestat);

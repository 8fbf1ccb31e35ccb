//! Diamond's DiskUsageCollector: per-device I/O from `/proc/diskstats`
//! (path `iostat`): operations, bytes, await, service time, utilisation.

use std::collections::BTreeMap;

use regex_lite::Regex;
use wdiamond_sdk::bindings::wdiamond::plugin::host_info;
use wdiamond_sdk::derive::{Derivative, Per};
use wdiamond_sdk::units::{convert, Unit};
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC: &str = "/proc/diskstats";
const DEVICES: &str = r"PhysicalDrive[0-9]+$|md[0-9]+$|sd[a-z]+[0-9]*$|x?vd[a-z]+[0-9]*$|disk[0-9]+$|nvme[0-9]+n[0-9]+(p[0-9]+)?$|dm\-[0-9]+$";
const COLUMNS: [&str; 11] = [
    "reads",
    "reads_merged",
    "reads_sectors",
    "reads_milliseconds",
    "writes",
    "writes_merged",
    "writes_sectors",
    "writes_milliseconds",
    "io_in_progress",
    "io_milliseconds",
    "io_milliseconds_weighted",
];
const MAX32: f64 = 4294967295.0;

/// One device line of /proc/diskstats (Diamond keeps the values as floats).
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    /// Device name.
    pub device: String,
    /// Values by [`COLUMNS`] position.
    pub values: [f64; 11],
}

/// Parses /proc/diskstats: lines with at least 14 columns, not ram*/loop*.
pub fn parse(text: &str) -> Vec<Disk> {
    let mut out = Vec::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split_whitespace().collect();
        if c.len() < 14 || c[0].parse::<i64>().is_err() || c[1].parse::<i64>().is_err() {
            continue;
        }
        let device = c[2];
        if device.starts_with("ram") || device.starts_with("loop") {
            continue;
        }
        let mut values = [0.0; 11];
        let ok = values
            .iter_mut()
            .zip(&c[3..14])
            .all(|(slot, v)| v.parse::<f64>().map(|x| *slot = x).is_ok());
        if ok {
            out.push(Disk {
                device: device.to_string(),
                values,
            });
        }
    }
    out
}

/// The collector's state.
pub struct DiskUsage {
    devices: Regex,
    exclude: Option<Regex>,
    sector_size: f64,
    units: Vec<(String, Unit)>,
    interval: f64,
    send_zero: bool,
    last_time: Option<f64>,
    derivative: Derivative,
}

impl DiskUsage {
    /// Diamond's metrics for one sample taken at `now`: `(name, value)`, precision 3.
    pub fn compute(&mut self, disks: &[Disk], now: f64) -> Vec<(String, f64)> {
        let mut time_delta = self.interval;
        if let Some(last) = self.last_time {
            if last != 0.0 {
                time_delta = now - last;
            }
        }
        if time_delta == 0.0 {
            time_delta = self.interval;
        }
        self.last_time = Some(now);
        let kb = Unit::parse("kB").expect("kB");
        let byte = Unit::parse("byte").expect("byte");
        let mut out = Vec::new();
        for d in disks {
            if !self.devices.is_match(&d.device)
                || self.exclude.as_ref().is_some_and(|r| r.is_match(&d.device))
            {
                continue;
            }
            let mut m: BTreeMap<String, f64> = BTreeMap::new();
            // A device's first sample has no rates: nothing of it goes out.
            let mut first = false;
            for (key, value) in COLUMNS.iter().zip(d.values) {
                let mut value = value;
                for (u, unit) in &self.units {
                    let (key, max) = if key.ends_with("sectors") {
                        // Diamond divides (and converts) again for every unit.
                        value /= 1024.0 / self.sector_size;
                        value = convert(value, kb, *unit);
                        (
                            key.replace("sectors", u),
                            convert(u64::MAX as f64, byte, *unit),
                        )
                    } else {
                        (key.to_string(), MAX32)
                    };
                    let v = if key == "io_in_progress" {
                        value
                    } else {
                        let rate = self.derivative.rate_f64(
                            &format!("{}.{key}", d.device),
                            value,
                            max,
                            Per::Sample,
                            false,
                        );
                        first |= rate.is_none();
                        rate.unwrap_or(0.0)
                    };
                    m.insert(key, v);
                }
            }
            let g = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
            m.insert(
                "read_requests_merged_per_second".into(),
                g(&m, "reads_merged") / time_delta,
            );
            m.insert(
                "write_requests_merged_per_second".into(),
                g(&m, "writes_merged") / time_delta,
            );
            m.insert("reads_per_second".into(), g(&m, "reads") / time_delta);
            m.insert("writes_per_second".into(), g(&m, "writes") / time_delta);
            for (u, _) in &self.units {
                m.insert(
                    format!("read_{u}_per_second"),
                    g(&m, &format!("reads_{u}")) / time_delta,
                );
                m.insert(
                    format!("write_{u}_per_second"),
                    g(&m, &format!("writes_{u}")) / time_delta,
                );
            }
            let io = g(&m, "reads") + g(&m, "writes");
            m.insert("io".into(), io);
            m.insert(
                "average_queue_length".into(),
                g(&m, "io_milliseconds_weighted") / time_delta / 1000.0,
            );
            m.insert(
                "util_percentage".into(),
                g(&m, "io_milliseconds") / time_delta / 10.0,
            );
            let reads = g(&m, "reads");
            m.insert(
                "read_await".into(),
                if reads > 0.0 {
                    g(&m, "reads_milliseconds") / reads
                } else {
                    0.0
                },
            );
            let writes = g(&m, "writes");
            m.insert(
                "write_await".into(),
                if writes > 0.0 {
                    g(&m, "writes_milliseconds") / writes
                } else {
                    0.0
                },
            );
            for (u, _) in &self.units {
                let v = if io > 0.0 {
                    (g(&m, &format!("reads_{u}")) + g(&m, &format!("writes_{u}"))) / io
                } else {
                    0.0
                };
                m.insert(format!("average_request_size_{u}"), v);
            }
            m.insert("iops".into(), io / time_delta);
            let (service, wait) = if io > 0.0 {
                (
                    g(&m, "io_milliseconds") / io,
                    (g(&m, "reads_milliseconds") + g(&m, "writes_milliseconds")) / io,
                )
            } else {
                (0.0, 0.0)
            };
            m.insert("service_time".into(), service);
            m.insert("await".into(), wait);
            m.insert(
                "concurrent_io".into(),
                (g(&m, "reads_per_second") + g(&m, "writes_per_second")) * (service / 1000.0),
            );
            if !first && (io > 0.0 || self.send_zero) {
                for (k, v) in m {
                    out.push((format!("{}.{k}", d.device).replace('/', "_"), v));
                }
            }
        }
        out
    }
}

impl Collector for DiskUsage {
    fn describe() -> Description {
        Description {
            name: "iostat".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Disk I/O per device from /proc/diskstats (Diamond's DiskUsageCollector)."
                .into(),
            options: vec![
                option(
                    "devices",
                    ConfigValue::Text(DEVICES.into()),
                    "A regex of which devices to gather metrics for",
                ),
                option(
                    "exclude_devices",
                    ConfigValue::Text(String::new()),
                    "A regex of devices to leave out (empty: none)",
                ),
                option(
                    "sector_size",
                    ConfigValue::Integer(512),
                    "The size to use to calculate sector usage",
                ),
                option(
                    "send_zero",
                    ConfigValue::Boolean(false),
                    "Send io data even when there is no io",
                ),
                option(
                    "persistent_naming",
                    ConfigValue::Boolean(false),
                    "Accepted for compatibility; must be false (device names are used)",
                ),
            ],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let anchored = |s: &str| Regex::new(&format!("^(?:{s})"));
        let devices = config.text("devices")?;
        let devices = anchored(&devices).map_err(|e| format!("`devices`: {e}"))?;
        let exclude = match config.str("exclude_devices").filter(|s| !s.is_empty()) {
            Some(s) => Some(anchored(&s).map_err(|e| format!("`exclude_devices`: {e}"))?),
            None => None,
        };
        if config.bool("persistent_naming")? {
            return Err("`persistent_naming` is not supported; set it to false".into());
        }
        let sector_size = config.f64("sector_size")?.trunc();
        if sector_size <= 0.0 || sector_size > 1024.0 {
            return Err(format!(
                "`sector_size` must be between 1 and 1024, not {sector_size}"
            ));
        }
        let mut units = Vec::new();
        for u in config.list("byte_unit") {
            let unit = Unit::parse(&u).ok_or_else(|| format!("`byte_unit`: unknown unit {u:?}"))?;
            units.push((u, unit));
        }
        Ok(DiskUsage {
            devices,
            exclude,
            sector_size,
            units,
            interval: config.f64("interval")?,
            send_zero: config.bool("send_zero")?,
            last_time: None,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        let disks = parse(&text);
        for (name, v) in self.compute(&disks, host_info::now()) {
            out.gauge(name, v, 3);
        }
        Ok(())
    }
}

export_collector!(DiskUsage);

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_skips_short_and_ram_lines() {
        let d = super::parse("   8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n 1 0 ram0 1 2 3 4 5 6 7 8 9 10 11\n 8 1 sda1 1 2 3 4\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].values[10], 11.0);
    }
}

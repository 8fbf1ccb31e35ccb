//! Diamond's DiskSpaceCollector: space and inodes of each mounted
//! filesystem of the configured types, from `/proc/mounts` and statvfs.

use regex_lite::Regex;
use wdiamond_sdk::bindings::wdiamond::plugin::{files, fs_stats};
use wdiamond_sdk::units::{convert, Unit};
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const FILESYSTEMS: &str =
    "ext2, ext3, ext4, xfs, glusterfs, nfs, nfs4, ntfs, hfs, fat32, fat16, btrfs";

/// One eligible mount.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
}

/// Diamond's `get_file_systems` filter over /proc/mounts (before the
/// per-device de-duplication, which needs `stat`).
pub fn eligible(text: &str, filesystems: &[String], exclude: Option<&Regex>) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [device, mount_point, fs_type, ..] = f[..] else {
            continue;
        };
        if !filesystems.iter().any(|t| t == fs_type) {
            continue;
        }
        if exclude.is_some_and(|r| r.is_match(mount_point)) {
            continue;
        }
        if (device.contains('/') || device.contains(':') || device == "tmpfs")
            && mount_point.starts_with('/')
        {
            out.push(Mount {
                mount_point: mount_point.to_string(),
                fs_type: fs_type.to_string(),
            });
        }
    }
    out
}

/// Diamond's metric name of a mount point.
pub fn mount_name(mount_point: &str) -> String {
    let n = mount_point
        .replace('/', "_")
        .replace('.', "_")
        .replace('\\', "");
    // Diamond special-cases exactly these two.
    match n.as_str() {
        "_" => "root".into(),
        "_tmp" => "tmp".into(),
        _ => n,
    }
}

/// Diamond's metrics for one filesystem: `(name, value, precision)`.
pub fn compute(
    name: &str,
    s: &fs_stats::Statvfs,
    units: &[(String, Unit)],
) -> Vec<(String, f64, u8)> {
    let byte = Unit::parse("byte").expect("byte");
    let (bs, total, free, avail) = (s.frsize as f64, s.blocks, s.bfree, s.bavail);
    let mut out = Vec::new();
    for (u, unit) in units {
        // Diamond: float(free) / float(free + (total - free)) * 100.
        let pf = if total == 0 {
            0.0
        } else {
            free as f64 / total as f64 * 100.0
        };
        out.push((format!("{name}.{u}_percentfree"), pf, 2));
        out.push((
            format!("{name}.{u}_used"),
            convert(bs * total.saturating_sub(free) as f64, byte, *unit),
            2,
        ));
        out.push((
            format!("{name}.{u}_free"),
            convert(bs * free as f64, byte, *unit),
            2,
        ));
        out.push((
            format!("{name}.{u}_avail"),
            convert(bs * avail as f64, byte, *unit),
            2,
        ));
    }
    if s.files > 0 {
        out.push((
            format!("{name}.inodes_percentfree"),
            s.ffree as f64 / s.files as f64 * 100.0,
            0,
        ));
    }
    out.push((
        format!("{name}.inodes_used"),
        s.files.saturating_sub(s.ffree) as f64,
        0,
    ));
    out.push((format!("{name}.inodes_free"), s.ffree as f64, 0));
    out.push((format!("{name}.inodes_avail"), s.favail as f64, 0));
    out
}

/// The collector's state.
pub struct DiskSpace {
    filesystems: Vec<String>,
    exclude: Option<Regex>,
    units: Vec<(String, Unit)>,
}

impl Collector for DiskSpace {
    fn describe() -> Description {
        Description {
            name: "diskspace".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Free and used space and inodes per filesystem (Diamond's DiskSpaceCollector)."
                    .into(),
            options: vec![
                option(
                    "filesystems",
                    ConfigValue::Text(FILESYSTEMS.into()),
                    "filesystems to examine",
                ),
                option(
                    "exclude_filters",
                    ConfigValue::TextList(vec!["^/export/home".into()]),
                    "A list of regex patterns: a mount point matching any is left out",
                ),
            ],
            capabilities: vec![
                Capability::ReadFiles("/proc/mounts".into()),
                Capability::FilesystemStats("/**".into()),
            ],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let filters = config.list("exclude_filters");
        let exclude = if filters.is_empty() {
            None
        } else {
            Some(Regex::new(&filters.join("|")).map_err(|e| format!("`exclude_filters`: {e}"))?)
        };
        let mut units = Vec::new();
        for u in config.list("byte_unit") {
            let unit = Unit::parse(&u).ok_or_else(|| format!("`byte_unit`: unknown unit {u:?}"))?;
            units.push((u, unit));
        }
        Ok(DiskSpace {
            filesystems: config.list("filesystems"),
            exclude,
            units,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional("/proc/mounts")? else {
            return Ok(());
        };
        let mut seen = Vec::new();
        for m in eligible(&text, &self.filesystems, self.exclude.as_ref()) {
            let Ok(info) = files::metadata(&m.mount_point) else {
                host::debug(&format!(
                    "Path {} is not mounted - skipping.",
                    m.mount_point
                ));
                continue;
            };
            if seen.contains(&info.device) {
                continue;
            }
            seen.push(info.device);
            let s = match fs_stats::stat(&m.mount_point) {
                Ok(s) => s,
                Err(e) => {
                    host::warn(&format!(
                        "statvfs {}: {}",
                        m.mount_point,
                        host::describe_error(&e)
                    ));
                    continue;
                }
            };
            for (name, v, p) in compute(&mount_name(&m.mount_point), &s, &self.units) {
                out.gauge(name, v, p);
            }
        }
        Ok(())
    }
}

export_collector!(DiskSpace);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_mounts_like_diamond() {
        let text = "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/sdb1 /export/home ext4 rw 0 0\n";
        let ex = Regex::new("^/export/home").unwrap();
        let m = eligible(text, &["ext4".into(), "tmpfs".into()], Some(&ex));
        assert_eq!(
            m.iter().map(|m| m.mount_point.as_str()).collect::<Vec<_>>(),
            vec!["/", "/tmp"]
        );
        assert_eq!(mount_name("/"), "root");
        assert_eq!(mount_name("/tmp"), "tmp");
        assert_eq!(mount_name("/tmp/x"), "_tmp_x");
        assert_eq!(mount_name("/sys/fs/cgroup"), "_sys_fs_cgroup");
    }
}

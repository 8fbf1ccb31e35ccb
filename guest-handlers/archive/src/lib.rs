//! Diamond's ArchiveHandler as a wdiamond component: one graphite plaintext
//! line per metric appended to `log_file`, rotated at midnight (UTC) to
//! `log_file.YYYY-MM-DD`, keeping `days` old files.
//!
//! The directory of `log_file` is the one thing this handler can write: the
//! host preopens it (capability `write-directory("log_file")`).

use std::io::Write;
use wdiamond_sdk::bindings::wdiamond::plugin::host_info;
use wdiamond_sdk::format::graphite_lines;
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// Days since 1970-01-01 to a `YYYY-MM-DD` string (proleptic Gregorian).
pub fn date_string(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Of the file names in a directory, the rotated copies of `base`
/// (`base.YYYY-MM-DD`) that fall outside the newest `keep`, oldest first.
pub fn expired(names: &[String], base: &str, keep: usize) -> Vec<String> {
    let prefix = format!("{base}.");
    let mut rotated: Vec<&String> = names
        .iter()
        .filter(|n| {
            n.strip_prefix(&prefix).is_some_and(|d| {
                d.len() == 10
                    && d.bytes().enumerate().all(|(i, b)| {
                        if i == 4 || i == 7 {
                            b == b'-'
                        } else {
                            b.is_ascii_digit()
                        }
                    })
            })
        })
        .collect();
    rotated.sort();
    let excess = rotated.len().saturating_sub(keep);
    rotated.into_iter().take(excess).cloned().collect()
}

/// The handler's state.
pub struct Archive {
    log_file: String,
    days: usize,
    current_day: Option<i64>,
    file: Option<std::fs::File>,
}

impl Archive {
    fn dir_and_base(&self) -> (String, String) {
        match self.log_file.rsplit_once('/') {
            Some((dir, base)) => (
                if dir.is_empty() {
                    "/".into()
                } else {
                    dir.into()
                },
                base.into(),
            ),
            None => (".".into(), self.log_file.clone()),
        }
    }

    fn rotate_if_needed(&mut self, today: i64) -> Result<(), String> {
        let day = *self.current_day.get_or_insert_with(|| {
            std::fs::metadata(&self.log_file)
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64 / 86_400)
                .unwrap_or(today)
        });
        if today <= day {
            return Ok(());
        }
        self.file = None;
        let rotated = format!("{}.{}", self.log_file, date_string(day));
        if std::fs::metadata(&self.log_file).is_ok() {
            std::fs::rename(&self.log_file, &rotated)
                .map_err(|e| format!("rotating {} to {rotated}: {e}", self.log_file))?;
        }
        let (dir, base) = self.dir_and_base();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| format!("listing {dir}: {e}"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        for old in expired(&names, &base, self.days) {
            let _ = std::fs::remove_file(format!("{dir}/{old}"));
        }
        self.current_day = Some(today);
        Ok(())
    }
}

impl Handler for Archive {
    fn describe() -> Description {
        Description {
            name: "archive".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Appends one graphite plaintext line per metric to a file, rotated daily (Diamond's ArchiveHandler).".into(),
            options: vec![
                option("log_file", ConfigValue::Text("/tmp/wdiamond/archive.log".into()), "Path to the archive file"),
                option("days", ConfigValue::Integer(7), "How many days of rotated files to keep"),
            ],
            capabilities: vec![Capability::WriteDirectory("log_file".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let log_file = config.str("log_file").ok_or("`log_file` is required")?;
        if !log_file.starts_with('/') {
            return Err(format!(
                "`log_file` must be an absolute path, not {log_file:?}"
            ));
        }
        let days = config.f64("days")?;
        if days < 0.0 {
            return Err("`days` must not be negative".into());
        }
        Ok(Archive {
            log_file,
            days: days as usize,
            current_day: None,
            file: None,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        let today = (host_info::now() / 86_400.0).floor() as i64;
        self.rotate_if_needed(today)?;
        let text = graphite_lines(&batch);
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_file)
                .map_err(|e| format!("opening {}: {e}", self.log_file))?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        if let Err(e) = f.write_all(text) {
            self.file = None;
            return Err(format!("writing {}: {e}", self.log_file));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(f) = self.file.as_mut() {
            f.flush()
                .map_err(|e| format!("flushing {}: {e}", self.log_file))?;
        }
        Ok(())
    }
}

export_handler!(Archive);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_days() {
        assert_eq!(date_string(0), "1970-01-01");
        assert_eq!(date_string(20_782), "2026-11-25");
        assert_eq!(date_string(11_016), "2000-02-29");
    }

    #[test]
    fn keeps_the_newest_rotated_files() {
        let names: Vec<String> = [
            "a.log",
            "a.log.2026-11-20",
            "a.log.2026-11-22",
            "a.log.2026-11-21",
            "a.log.junk",
            "b.log.2026-01-01",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            expired(&names, "a.log", 2),
            vec!["a.log.2026-11-20".to_string()]
        );
        assert!(expired(&names, "a.log", 5).is_empty());
    }
}

//! Diamond's UserScriptsCollector: every executable file in
//! `scripts_path` is run (no arguments) at each collection, and each line
//! of its output, `metric.path value`, is published as it is, directly
//! under the host name (Diamond's path `.`). A third field, a Unix
//! timestamp, is taken too.
//!
//! The host runs only what the grant admits: `{scripts_path}/*`, files of
//! that directory whose real path stays in it, without arguments.

use wdiamond_sdk::bindings::wdiamond::plugin::files::{self, FileKind};
use wdiamond_sdk::bindings::wdiamond::plugin::process::{self, Command};
use wdiamond_sdk::host::describe_error;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    HostError, Metric, MetricKind, Publisher,
};

/// One line of a script's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The metric's path.
    pub name: String,
    /// Its value.
    pub value: f64,
    /// Decimals: `floatprecision` when the value has a `.`, else 0.
    pub precision: u8,
    /// The timestamp, if the line gave one.
    pub timestamp: Option<u64>,
}

/// Parses a script's output (Diamond's rules): blank lines are skipped; a
/// line is `name value` (or `name value timestamp`) with a numeric value,
/// anything else is reported in `bad` and skipped.
pub fn parse_output(out: &str, floatprecision: u8) -> (Vec<Line>, Vec<String>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parsed = match fields.as_slice() {
            [name, value] => value.parse::<f64>().ok().map(|v| (name, value, v, None)),
            [name, value, ts] => match (value.parse::<f64>(), ts.parse::<u64>()) {
                (Ok(v), Ok(t)) => Some((name, value, v, Some(t))),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some((name, text, value, timestamp)) => good.push(Line {
                name: name.to_string(),
                value,
                precision: if text.contains('.') {
                    floatprecision
                } else {
                    0
                },
                timestamp,
            }),
            None => bad.push(line.chars().take(200).collect()),
        }
    }
    (good, bad)
}

/// The collector's state.
pub struct UserScripts {
    scripts_path: String,
    floatprecision: u8,
    timeout_ms: u32,
}

impl UserScripts {
    fn run(&self, path: &str, out: &mut Publisher) {
        let cmd = Command {
            argv: vec![path.to_string()],
            stdin: Vec::new(),
            timeout_ms: self.timeout_ms,
        };
        let o = match process::run(&cmd) {
            Ok(o) => o,
            Err(HostError::Io(e)) if e.contains("ermission denied") => {
                host::info(&format!("{path} is not executable"));
                return;
            }
            Err(e) => {
                host::warn(&format!(
                    "{path} error launching: {}; skipping",
                    describe_error(&e)
                ));
                return;
            }
        };
        if o.status != Some(0) {
            let how = match (o.status, o.signal) {
                (Some(s), _) => format!("status {s}"),
                (None, Some(sig)) => format!("signal {sig}"),
                _ => "no exit status".into(),
            };
            host::warn(&format!(
                "{path} exited with {how} (its output is still published, as Diamond does)"
            ));
        }
        if o.stdout.is_empty() {
            host::info(&format!("{path} return no output"));
            return;
        }
        if !o.stderr.is_empty() {
            let err: String = String::from_utf8_lossy(&o.stderr)
                .chars()
                .take(500)
                .collect();
            host::warn(&format!("{path} returned error output (stderr): {err}"));
        }
        let (lines, bad) = parse_output(&String::from_utf8_lossy(&o.stdout), self.floatprecision);
        for b in bad.iter().take(10) {
            host::warn(&format!("{path} returned invalid/unparsable output: {b}"));
        }
        for l in lines {
            out.metric(Metric {
                name: l.name,
                value: l.value,
                precision: l.precision,
                kind: MetricKind::Gauge,
                timestamp: l.timestamp,
                instance: None,
                raw_value: None,
            });
        }
    }
}

impl Collector for UserScripts {
    fn describe() -> Description {
        Description {
            // Diamond's path `.`: the scripts' metrics directly under the host name.
            name: ".".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Runs the executables in a directory and publishes their `name value` lines (Diamond's UserScriptsCollector).".into(),
            options: vec![
                option("scripts_path", ConfigValue::Text("/etc/diamond/user_scripts/".into()), "Path to find the scripts to run"),
                option("floatprecision", ConfigValue::Integer(4), "Decimals of a value written with a `.`"),
                option("timeout", ConfigValue::Integer(30), "Seconds one script may run (the host caps it)"),
            ],
            capabilities: vec![
                Capability::ReadFiles("{scripts_path}".into()),
                Capability::RunCommand("{scripts_path}/*".into()),
            ],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let scripts_path = config.text("scripts_path")?;
        if !scripts_path.starts_with('/') {
            return Err(format!(
                "`scripts_path` {scripts_path:?} must be an absolute path"
            ));
        }
        Ok(UserScripts {
            scripts_path: scripts_path.trim_end_matches('/').to_string(),
            floatprecision: config.f64("floatprecision")?.clamp(0.0, 15.0) as u8,
            timeout_ms: config.timeout_ms("timeout")?,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let dir = if self.scripts_path.is_empty() {
            "/"
        } else {
            &self.scripts_path
        };
        let mut entries = match files::list_dir(dir) {
            Ok(e) => e,
            // Diamond: a directory it cannot read is no metrics, no error.
            Err(HostError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(format!("{dir}: {}", describe_error(&e))),
        };
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let path = format!("{}/{}", self.scripts_path, e.name);
            // A link is run as it is: the host runs it only when the file
            // it resolves to is in the directory too.
            if matches!(e.kind, FileKind::File | FileKind::Symlink) {
                self.run(&path, out);
            }
        }
        Ok(())
    }
}

export_collector!(UserScripts);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_like_diamond() {
        let (good, bad) = parse_output(
            "a.b 1\n\nc.d 2.5\nnot a number\ne.f x\ng.h 3 1700000000\n",
            4,
        );
        assert_eq!(
            good,
            vec![
                Line {
                    name: "a.b".into(),
                    value: 1.0,
                    precision: 0,
                    timestamp: None
                },
                Line {
                    name: "c.d".into(),
                    value: 2.5,
                    precision: 4,
                    timestamp: None
                },
                Line {
                    name: "g.h".into(),
                    value: 3.0,
                    precision: 0,
                    timestamp: Some(1_700_000_000)
                },
            ]
        );
        assert_eq!(bad, vec!["not a number", "e.f x"]);
    }
}

//! Diamond's CephCollector: for every admin socket
//! `<socket_path>/<socket_prefix>*.<socket_ext>`, runs
//! `<ceph_binary> --admin-daemon <socket> perf dump` through the granted
//! run-command call and publishes the JSON flattened as
//! `ceph.<daemon>.<key>...` gauges. A failing, hanging or non-JSON command
//! is logged and publishes nothing for that socket.

use wdiamond_sdk::bindings::wdiamond::plugin::{files, process};
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

/// Diamond's `_get_counter_prefix_from_socket_name`.
pub fn counter_prefix(socket_file: &str, prefix: &str) -> String {
    let base = socket_file.rsplit('/').next().unwrap_or(socket_file);
    let base = match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    };
    format!("ceph.{}", base.strip_prefix(prefix).unwrap_or(base))
}

/// Diamond's `flatten_dictionary`: sorted keys, nested objects joined with
/// `.`; numbers kept, booleans as 0/1, everything else skipped.
pub fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                let name = if prefix.is_empty() {
                    k.clone()
                } else if k.is_empty() {
                    prefix.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, &m[k], out);
            }
        }
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push((prefix.to_string(), f));
            }
        }
        serde_json::Value::Bool(b) => out.push((prefix.to_string(), if *b { 1.0 } else { 0.0 })),
        _ => {}
    }
}

/// The collector's state.
pub struct Ceph {
    socket_path: String,
    socket_prefix: String,
    socket_ext: String,
    binary: String,
    timeout_ms: u32,
}

impl Collector for Ceph {
    fn describe() -> Description {
        Description {
            name: "ceph".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Ceph daemon perf counters through `ceph --admin-daemon <socket> perf dump` (Diamond's CephCollector).".into(),
            options: vec![
                option("socket_path", ConfigValue::Text("/var/run/ceph".into()), "The location of the ceph monitoring sockets"),
                option("socket_prefix", ConfigValue::Text("ceph-".into()), "The first part of all socket names"),
                option("socket_ext", ConfigValue::Text("asok".into()), "Extension for socket filenames"),
                option("ceph_binary", ConfigValue::Text("/usr/bin/ceph".into()), "Path to \"ceph\" executable"),
                option("timeout", ConfigValue::Integer(10), "Seconds one `perf dump` may take before it is killed"),
            ],
            capabilities: vec![Capability::ReadFiles("{socket_path}/*".into()), Capability::RunCommand("{ceph_binary}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let binary = config.text("ceph_binary")?;
        if !binary.starts_with('/') {
            return Err(format!(
                "`ceph_binary` must be an absolute path, not {binary:?}"
            ));
        }
        Ok(Ceph {
            socket_path: config
                .text("socket_path")?
                .trim_end_matches('/')
                .to_string(),
            socket_prefix: config.text("socket_prefix")?,
            socket_ext: config.text("socket_ext")?,
            binary,
            timeout_ms: config.timeout_ms("timeout")?,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let entries = match files::list_dir(&self.socket_path) {
            Ok(e) => e,
            Err(e) => {
                host::warn(&format!(
                    "{}: {}",
                    self.socket_path,
                    host::describe_error(&e)
                ));
                return Ok(());
            }
        };
        let suffix = format!(".{}", self.socket_ext);
        for e in entries
            .iter()
            .filter(|e| e.name.starts_with(&self.socket_prefix) && e.name.ends_with(&suffix))
        {
            let socket = format!("{}/{}", self.socket_path, e.name);
            let cmd = process::Command {
                argv: vec![
                    self.binary.clone(),
                    "--admin-daemon".into(),
                    socket.clone(),
                    "perf".into(),
                    "dump".into(),
                ],
                stdin: vec![],
                timeout_ms: self.timeout_ms,
            };
            let output = match process::run(&cmd) {
                Ok(o) => o,
                Err(err) => {
                    host::warn(&format!(
                        "Could not get stats from {socket}: {}",
                        host::describe_error(&err)
                    ));
                    continue;
                }
            };
            if output.status != Some(0) {
                let stderr = String::from_utf8_lossy(&output.stderr);
                host::warn(&format!(
                    "Could not get stats from {socket}: exit {:?}, signal {:?}: {}",
                    output.status,
                    output.signal,
                    stderr.trim()
                ));
                continue;
            }
            let json: serde_json::Value = match serde_json::from_slice(&output.stdout) {
                Ok(j) => j,
                Err(err) => {
                    host::warn(&format!("Could not parse stats from {socket}: {err}"));
                    continue;
                }
            };
            let mut flat = Vec::new();
            flatten(
                &counter_prefix(&socket, &self.socket_prefix),
                &json,
                &mut flat,
            );
            for (name, v) in flat {
                out.gauge(name, v, 0);
            }
        }
        Ok(())
    }
}

export_collector!(Ceph);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_flatten_like_diamond() {
        assert_eq!(
            counter_prefix("/var/run/ceph/ceph-osd.0.asok", "ceph-"),
            "ceph.osd.0"
        );
        let j: serde_json::Value = serde_json::from_str(
            r#"{"b": {"y": 2, "x": {"avgcount": 1, "sum": 0.5}}, "a": 1, "s": "text"}"#,
        )
        .unwrap();
        let mut out = Vec::new();
        flatten("ceph.osd.0", &j, &mut out);
        assert_eq!(
            out,
            vec![
                ("ceph.osd.0.a".to_string(), 1.0),
                ("ceph.osd.0.b.x.avgcount".to_string(), 1.0),
                ("ceph.osd.0.b.x.sum".to_string(), 0.5),
                ("ceph.osd.0.b.y".to_string(), 2.0),
            ]
        );
    }
}

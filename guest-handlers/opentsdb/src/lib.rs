//! Diamond's TSDBHandler: metrics to OpenTSDB's HTTP `/api/put` as JSON,
//! the metric named by its path below the host name, tagged with the host
//! (`hostname=<host>`) and the configured `tags`.

use wdiamond_sdk::net::{host_port, http_post};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// The metric name OpenTSDB gets: the path after `.<host>.` (Diamond's
/// collector path and metric path), else the whole path.
pub fn metric_name<'a>(path: &'a str, host: &str) -> &'a str {
    if host.is_empty() {
        return path;
    }
    let needle = format!(".{host}.");
    match path.find(&needle) {
        Some(i) => &path[i + needle.len()..],
        None => path.strip_prefix(&format!("{host}.")).unwrap_or(path),
    }
}

/// The JSON body of a batch.
pub fn body(batch: &Batch, prefix: &str, tags: &[(String, String)]) -> String {
    let items: Vec<serde_json::Value> = batch
        .iter()
        .map(|m| {
            let mut t = serde_json::Map::new();
            t.insert("hostname".into(), m.host.into());
            for (k, v) in tags {
                t.insert(k.clone(), v.clone().into());
            }
            let name = metric_name(&m.path, &m.host);
            let name = if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
            serde_json::json!({"metric": name, "timestamp": m.timestamp, "value": m.value, "tags": t})
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// The handler's state.
pub struct Tsdb {
    address: String,
    host: String,
    prefix: String,
    tags: Vec<(String, String)>,
    timeout_ms: u32,
}

impl Handler for Tsdb {
    fn describe() -> Description {
        Description {
            name: "opentsdb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Sends metrics to OpenTSDB's HTTP /api/put (Diamond's TSDBHandler).".into(),
            options: vec![
                option("host", ConfigValue::Text("127.0.0.1".into()), "Hostname"),
                option("port", ConfigValue::Integer(4242), "Port"),
                option(
                    "timeout",
                    ConfigValue::Integer(5),
                    "Seconds to wait for the server",
                ),
                option(
                    "tags",
                    ConfigValue::TextList(vec![]),
                    "Tags added to every metric, as key=value",
                ),
                option(
                    "prefix",
                    ConfigValue::Text(String::new()),
                    "Prefix added to every metric name",
                ),
                option(
                    "batch",
                    ConfigValue::Integer(1),
                    "Accepted for compatibility: the host batches metrics",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let host = config.text("host")?;
        let port = config.port("port")?;
        let mut tags = Vec::new();
        for t in config.list("tags") {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| format!("`tags`: {t:?} is not key=value"))?;
            tags.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(Tsdb {
            address: host_port(&host, port),
            host,
            prefix: config.text("prefix")?,
            tags,
            timeout_ms: config.timeout_ms("timeout")?,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let r = http_post(
            &self.address,
            &self.host,
            "/api/put",
            "application/json",
            body(&batch, &self.prefix, &self.tags).as_bytes(),
            self.timeout_ms,
        )?;
        r.delivered("OpenTSDB", batch)
    }
}

export_handler!(Tsdb);

#[cfg(test)]
mod tests {
    #[test]
    fn names_below_the_host() {
        assert_eq!(
            super::metric_name("servers.web1.cpu.total.idle", "web1"),
            "cpu.total.idle"
        );
        assert_eq!(super::metric_name("web1.cpu.x", "web1"), "cpu.x");
        assert_eq!(super::metric_name("a.b", ""), "a.b");
    }
}

//! Diamond's HttpPostHandler: batches POSTed to a URL, as graphite
//! plaintext lines (Diamond's format) or as a JSON array.

use wdiamond_sdk::format::graphite_lines;
use wdiamond_sdk::net::{url_option, Url};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// The JSON body of a batch.
pub fn json(batch: &Batch) -> String {
    let items: Vec<serde_json::Value> = batch
        .iter()
        .map(|m| {
            serde_json::json!({
                "path": m.path,
                "value": m.value,
                "timestamp": m.timestamp,
                "host": m.host,
                "type": if m.kind == wdiamond_sdk::MetricKind::Counter { "COUNTER" } else { "GAUGE" },
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// The handler's state.
pub struct HttpPost {
    url: Url,
    json: bool,
    timeout_ms: u32,
}

impl Handler for HttpPost {
    fn describe() -> Description {
        Description {
            name: "httppost".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "POSTs batches of metrics to a URL (Diamond's HttpPostHandler).".into(),
            options: vec![
                option(
                    "url",
                    ConfigValue::Text("http://localhost/blah/blah/blah".into()),
                    "Fully qualified url to send metrics to",
                ),
                option(
                    "format",
                    ConfigValue::Text("lines".into()),
                    "lines (graphite plaintext, as Diamond) or json",
                ),
                option(
                    "timeout",
                    ConfigValue::Integer(10),
                    "Seconds to wait for the server",
                ),
                option(
                    "batch",
                    ConfigValue::Integer(100),
                    "Accepted for compatibility: the host batches metrics (batch_size)",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:{url|hostport}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let url = url_option(config, "url")?;
        let json = match config.text("format")?.as_str() {
            "lines" => false,
            "json" => true,
            other => return Err(format!("`format` must be lines or json, not {other:?}")),
        };
        Ok(HttpPost {
            url,
            json,
            timeout_ms: config.timeout_ms("timeout")?,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let (body, ctype) = if self.json {
            (json(&batch), "application/json")
        } else {
            (
                String::from_utf8_lossy(graphite_lines(batch)).into_owned(),
                "text/plain",
            )
        };
        let r = self
            .url
            .post(&[("Content-Type", ctype)], body.as_bytes(), self.timeout_ms)?;
        r.delivered(&format!("POST {}", self.url.path), batch)
    }
}

export_handler!(HttpPost);

//! Diamond's HttpPostHandler: batches POSTed to a URL, as graphite
//! plaintext lines (Diamond's format) or as a JSON array.

use wdiamond_sdk::format::graphite_lines;
use wdiamond_sdk::net::http_post;
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// An `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    /// `host:port`.
    pub address: String,
    /// The host, for the Host header.
    pub host: String,
    /// The path (with query).
    pub path: String,
}

/// Parses an `http://` URL, or an `https://` one when the host does TLS on
/// this handler's connections (`tls`: its section sets `tls = true`).
pub fn parse_url(url: &str, tls: bool) -> Result<Url, String> {
    let (rest, default_port) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) if !tls => (rest, 80),
        (Some(_), _) => {
            return Err(format!(
                "{url:?} is http://, but this section sets `tls = true`: use https://"
            ))
        }
        (_, Some(rest)) if tls => (rest, 443),
        (_, Some(_)) => {
            return Err(format!(
                "{url:?} is https://: add `tls = true` to this section (and `tls_ca` if its CA is your own)"
            ))
        }
        _ => return Err(format!("{url:?}: only http:// and https:// URLs are supported")),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>().map_err(|_| format!("{url:?}: bad port"))?,
        ),
        _ => (hostport.to_string(), default_port),
    };
    if host.is_empty() || path.contains(char::is_whitespace) {
        return Err(format!("{url:?}: bad URL"));
    }
    Ok(Url {
        address: format!("{host}:{port}"),
        host,
        path: path.to_string(),
    })
}

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
        let tls = matches!(config.get("tls"), Some(ConfigValue::Boolean(true)));
        let url = parse_url(&config.text("url")?, tls).map_err(|e| format!("`url`: {e}"))?;
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
        let r = http_post(
            &self.url.address,
            &self.url.host,
            &self.url.path,
            ctype,
            body.as_bytes(),
            self.timeout_ms,
        )?;
        r.success(&format!("POST {}", self.url.path))
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

export_handler!(HttpPost);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/m?x=1", false).unwrap();
        assert_eq!(
            (u.address.as_str(), u.path.as_str()),
            ("127.0.0.1:8080", "/m?x=1")
        );
        assert_eq!(
            parse_url("http://example.com", false).unwrap().address,
            "example.com:80"
        );
        assert!(parse_url("https://x/", false).is_err());
        assert_eq!(parse_url("https://x/m", true).unwrap().address, "x:443");
        assert!(parse_url("http://x/", true).is_err());
    }
}

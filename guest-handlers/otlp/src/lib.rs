//! OpenTelemetry metrics over OTLP/HTTP (protobuf): each batch as an
//! `ExportMetricsServiceRequest` POSTed to `url` (an OpenTelemetry
//! Collector's `/v1/metrics`, or any OTLP receiver). One resource per host
//! (`host.name`, `service.name`), one metric per name (the path after the
//! host, dots kept); gauges as gauges, counters as monotonic cumulative
//! sums of the raw counter (Diamond's rate when there is none, as a
//! gauge). Encoded by hand (`proto`). Delivery is the host's: a failed POST
//! (connection, 5xx, and the 4xx an operator fixes: 404, 401/403, 429) is retried;
//! another 4xx is refused: dropped and counted as such by the host.

pub mod proto;

use std::collections::BTreeMap;

use wdiamond_sdk::net::{url_option, Url};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
    MetricKind,
};

use proto::{Point, Series};

/// The metric name of `path`: what follows `.<host>.`, else the path.
pub fn metric_name<'a>(path: &'a str, host: &str) -> &'a str {
    if host.is_empty() {
        return path;
    }
    let b = path.as_bytes();
    let mut from = 0;
    while let Some(i) = path[from..].find(host) {
        let (at, end) = (from + i, from + i + host.len());
        if at > 0 && b[at - 1] == b'.' && end < b.len() && b[end] == b'.' {
            return &path[end + 1..];
        }
        from = at + 1;
    }
    path
}

/// The series of a batch by host, then by name: (host -> [(name, series)]).
pub fn group<'a>(
    metrics: impl Iterator<Item = (&'a str, &'a str, f64, Option<f64>, bool, u64)>,
) -> BTreeMap<&'a str, BTreeMap<(&'a str, bool), Series>> {
    let mut out: BTreeMap<&'a str, BTreeMap<(&'a str, bool), Series>> = BTreeMap::new();
    for (path, host, value, raw, counter, t) in metrics {
        let (value, monotonic) = match (counter, raw) {
            (true, Some(r)) if r.is_finite() => (r, true),
            _ => (value, false),
        };
        let name = metric_name(path, host);
        let s = out
            .entry(host)
            .or_default()
            .entry((name, monotonic))
            .or_insert_with(|| Series {
                name: name.to_string(),
                monotonic,
                points: Vec::new(),
            });
        s.points.push(Point {
            time_unix_nano: t.saturating_mul(1_000_000_000),
            value,
        });
    }
    out
}

/// The handler's state.
pub struct Otlp {
    url: Url,
    service: String,
    timeout_ms: u32,
    /// When this instance started: the start time of its cumulative sums.
    start_unix_nano: u64,
}

impl Handler for Otlp {
    fn describe() -> Description {
        Description {
            name: "otlp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "OpenTelemetry metrics over OTLP/HTTP (protobuf) to an OTLP receiver.".into(),
            options: vec![
                option(
                    "url",
                    ConfigValue::Text("http://localhost:4318/v1/metrics".into()),
                    "The receiver's OTLP/HTTP metrics URL (https:// with `tls = true`)",
                ),
                option(
                    "service_name",
                    ConfigValue::Text("wdiamond".into()),
                    "The `service.name` resource attribute",
                ),
                option(
                    "timeout",
                    ConfigValue::Integer(10),
                    "Seconds to wait for the receiver",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:{url|hostport}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let url = url_option(config, "url")?;
        let now = wdiamond_sdk::bindings::wdiamond::plugin::host_info::now();
        Ok(Otlp {
            url,
            service: config.text("service_name")?,
            timeout_ms: config.timeout_ms("timeout")?,
            start_unix_nano: (now.max(0.0) * 1e9) as u64,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let groups = group(batch.iter().map(|m| {
            (
                m.path,
                m.host,
                m.value,
                m.raw_value,
                m.kind == MetricKind::Counter,
                m.timestamp,
            )
        }));
        let body = proto::export_request(&groups, &self.service, self.start_unix_nano);
        let r = self.url.post(
            &[("Content-Type", "application/x-protobuf")],
            &body,
            self.timeout_ms,
        )?;
        r.delivered(&format!("POST {}", self.url.path), batch)
    }
}

export_handler!(Otlp);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_groups() {
        assert_eq!(
            metric_name("servers.web1.cpu.total.idle", "web1"),
            "cpu.total.idle"
        );
        assert_eq!(metric_name("x.y", ""), "x.y");
        assert_eq!(metric_name("servers.aa.a.b", "a"), "b");
        assert_eq!(metric_name("servers.web.x", "web1"), "servers.web.x");
        let g = group(
            [
                ("servers.a.loadavg.01", "a", 0.5, None, false, 10),
                (
                    "servers.a.tcp.ActiveOpens",
                    "a",
                    2.0,
                    Some(1234.0),
                    true,
                    10,
                ),
                ("servers.b.loadavg.01", "b", 0.7, None, false, 10),
                ("servers.a.loadavg.01", "a", 0.6, None, false, 20),
            ]
            .into_iter(),
        );
        assert_eq!(g.len(), 2);
        let a = &g["a"];
        assert_eq!(a[&("loadavg.01", false)].points.len(), 2);
        let sum = a.values().find(|s| s.monotonic).unwrap();
        assert_eq!(
            (sum.name.as_str(), sum.points[0].value),
            ("tcp.ActiveOpens", 1234.0)
        );
    }
}

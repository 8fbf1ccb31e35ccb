//! Diamond's NginxCollector: nginx's `stub_status` page over HTTP/1.1
//! (`active_connections`, `conn_accepted`, `req_handled`, `act_reads`, ...).

use wdiamond_sdk::derive::{Derivative, Per};
use wdiamond_sdk::net::http_get;
use wdiamond_sdk::{
    export_collector, option, Capability, Collector, Config, ConfigValue, Description, Publisher,
};

/// What one metric is: gauge, or counter published as a rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// As is.
    Gauge,
    /// Per second.
    Counter,
}

/// Parses stub_status: `(name, value, precision, kind)`.
pub fn parse_status(text: &str) -> Vec<(&'static str, f64, u8, Kind)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_end_matches(['\r', '\n']);
        let f: Vec<&str> = l.split_whitespace().collect();
        if let Some(rest) = l.strip_prefix("Active connections: ") {
            if let Ok(n) = rest.trim().parse::<i64>() {
                out.push(("active_connections", n as f64, 0, Kind::Gauge));
            }
        } else if l.starts_with(char::is_whitespace)
            && f.len() >= 3
            && f[..3].iter().all(|x| x.parse::<u64>().is_ok())
        {
            let (conn, acc, req) = (
                f[0].parse::<f64>().unwrap(),
                f[1].parse::<f64>().unwrap(),
                f[2].parse::<f64>().unwrap(),
            );
            out.push(("conn_accepted", conn, 0, Kind::Counter));
            out.push(("conn_handled", acc, 0, Kind::Counter));
            out.push(("req_handled", req, 0, Kind::Counter));
            if acc > 0.0 {
                out.push(("req_per_conn", req / acc, 2, Kind::Gauge));
            }
        } else if l.starts_with("Reading: ")
            && f.len() >= 6
            && f[2] == "Writing:"
            && f[4] == "Waiting:"
        {
            for (name, v) in [
                ("act_reads", f[1]),
                ("act_writes", f[3]),
                ("act_waits", f[5]),
            ] {
                if let Ok(n) = v.parse::<i64>() {
                    out.push((name, n as f64, 0, Kind::Gauge));
                }
            }
        }
    }
    out
}

/// The collector's state.
pub struct Nginx {
    address: String,
    host_header: String,
    path: String,
    interval: f64,
    derivative: Derivative,
}

impl Collector for Nginx {
    fn describe() -> Description {
        Description {
            name: "nginx".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "nginx stub_status over HTTP (Diamond's NginxCollector).".into(),
            options: vec![
                option(
                    "req_host",
                    ConfigValue::Text("localhost".into()),
                    "Hostname",
                ),
                option("req_port", ConfigValue::Integer(8080), "Port"),
                option(
                    "req_path",
                    ConfigValue::Text("/nginx_status".into()),
                    "Path of the stub_status page",
                ),
                option(
                    "req_host_header",
                    ConfigValue::Text(String::new()),
                    "HTTP Host header (empty: req_host)",
                ),
                option(
                    "req_ssl",
                    ConfigValue::Boolean(false),
                    "HTTPS: not supported (must be false)",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:{req_host}:{req_port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        if config.bool("req_ssl")? {
            return Err(
                "`req_ssl`: HTTPS is not supported; serve stub_status over plain HTTP on localhost"
                    .into(),
            );
        }
        let host = config.text("req_host")?;
        let port = config.port("req_port")?;
        let header = config
            .str("req_host_header")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| host.clone());
        let path = config.text("req_path")?;
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(format!(
                "`req_path` must start with / and have no spaces, not {path:?}"
            ));
        }
        Ok(Nginx {
            address: format!("{host}:{port}"),
            host_header: header,
            path,
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let r = http_get(&self.address, &self.host_header, &self.path, 10_000)?;
        if r.status != 200 {
            return Err(format!(
                "http://{}{} answered {}",
                self.address, self.path, r.status
            ));
        }
        if r.content_type == "application/json" {
            return Err("nginx plus (JSON status) is not supported".into());
        }
        let body = String::from_utf8_lossy(&r.body);
        let metrics = parse_status(&body);
        if metrics.is_empty() {
            let start: String = body.chars().take(60).collect();
            return Err(format!(
                "no stub_status data in the response of http://{}{} (it starts {start:?})",
                self.address, self.path
            ));
        }
        for (name, v, p, kind) in metrics {
            match kind {
                Kind::Gauge => out.gauge(name, v, p),
                Kind::Counter => {
                    if let Some(rate) =
                        self.derivative
                            .rate_f64(name, v, 0.0, Per::Seconds(self.interval), false)
                    {
                        out.counter_raw(name, rate, v, p);
                    }
                }
            }
        }
        Ok(())
    }
}

export_collector!(Nginx);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stub_status() {
        let m = parse_status("Active connections: 2 \nserver accepts handled requests\n 10 10 25 \nReading: 0 Writing: 1 Waiting: 1 \n");
        assert_eq!(m.len(), 8);
        assert_eq!(m[0], ("active_connections", 2.0, 0, Kind::Gauge));
        assert_eq!(m[4], ("req_per_conn", 2.5, 2, Kind::Gauge));
        assert_eq!(m[7], ("act_waits", 1.0, 0, Kind::Gauge));
    }
}

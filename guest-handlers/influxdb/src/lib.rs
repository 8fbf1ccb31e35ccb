//! Diamond's InfluxdbHandler: metrics to InfluxDB 1.x over HTTP, as line
//! protocol (`<path> value=<v> <timestamp>`) POSTed to `/write`.

use wdiamond_sdk::net::{host_port, http_post};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// Escapes a measurement name for line protocol.
pub fn measurement(path: &str) -> String {
    path.replace(',', "\\,").replace(' ', "\\ ")
}

/// The line protocol of a batch (seconds precision).
pub fn lines(batch: &Batch) -> String {
    let mut out = String::with_capacity(batch.len() * 64);
    for m in batch {
        out.push_str(&format!(
            "{} value={:?} {}\n",
            measurement(&m.path),
            m.value,
            m.timestamp
        ));
    }
    out
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The handler's state.
pub struct Influx {
    address: String,
    host: String,
    path: String,
    timeout_ms: u32,
}

impl Handler for Influx {
    fn describe() -> Description {
        Description {
            name: "influxdb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Writes metrics to InfluxDB 1.x with the line protocol (Diamond's InfluxdbHandler)."
                    .into(),
            options: vec![
                option(
                    "hostname",
                    ConfigValue::Text("localhost".into()),
                    "Hostname",
                ),
                option("port", ConfigValue::Integer(8086), "Port"),
                option(
                    "ssl",
                    ConfigValue::Boolean(false),
                    "HTTPS: not supported (must be false)",
                ),
                option("username", ConfigValue::Text("root".into()), "Username"),
                option("password", ConfigValue::Text("root".into()), "Password"),
                option(
                    "database",
                    ConfigValue::Text("graphite".into()),
                    "Database name",
                ),
                option(
                    "time_precision",
                    ConfigValue::Text("s".into()),
                    "Accepted for compatibility: timestamps are seconds",
                ),
                option(
                    "batch_size",
                    ConfigValue::Integer(1),
                    "Accepted for compatibility: the host batches metrics",
                ),
                option(
                    "cache_size",
                    ConfigValue::Integer(20000),
                    "Accepted for compatibility: the host's queue_size bounds the buffer",
                ),
            ],
            capabilities: vec![Capability::Connect("tcp:{hostname}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        if config.bool("ssl")? {
            return Err("`ssl`: HTTPS is not supported".into());
        }
        let host = config.text("hostname")?;
        let port = config.port("port")?;
        let db = config.text("database")?;
        let user = config.text("username")?;
        let pass = config.text("password")?;
        let path = format!(
            "/write?db={}&precision=s&u={}&p={}",
            percent_encode(&db),
            percent_encode(&user),
            percent_encode(&pass)
        );
        Ok(Influx {
            address: host_port(&host, port),
            host,
            path,
            timeout_ms: 10_000,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let r = http_post(
            &self.address,
            &self.host,
            &self.path,
            "text/plain",
            lines(&batch).as_bytes(),
            self.timeout_ms,
        )?;
        r.delivered("influxdb", batch)
    }
}

export_handler!(Influx);

//! Diamond's StatsdHandler: metrics to statsd over UDP. Gauges go as
//! `path:value|g`; counters as Diamond sends them, the delta of the raw
//! counter since the previous batch, `path:delta|c`.

use std::collections::HashMap;

use wdiamond_sdk::bindings::wdiamond::plugin::sockets::Protocol;
use wdiamond_sdk::net::{host_port, LineSender};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
    MetricKind,
};

/// Most bytes in one datagram (a safe payload on most networks).
pub const MAX_DATAGRAM: usize = 1400;

/// The handler's state.
pub struct Statsd {
    sender: LineSender,
    old: HashMap<String, f64>,
}

impl Statsd {
    /// The statsd lines of a batch (updates the counters' previous values).
    pub fn lines(&mut self, batch: &Batch) -> Vec<String> {
        let mut out = Vec::with_capacity(batch.len());
        for m in batch {
            match m.kind {
                MetricKind::Gauge => out.push(format!("{}:{}|g", m.path, m.value)),
                MetricKind::Counter => {
                    let raw = m.raw_value.unwrap_or(m.value);
                    let delta = match self.old.insert(m.path.to_string(), raw) {
                        Some(old) => raw - old,
                        None => raw,
                    };
                    out.push(format!("{}:{}|c", m.path, delta));
                }
            }
        }
        out
    }
}

impl Handler for Statsd {
    fn describe() -> Description {
        Description {
            name: "statsd".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Sends metrics to statsd over UDP (Diamond's StatsdHandler).".into(),
            options: vec![
                option("host", ConfigValue::Text("localhost".into()), "Hostname of statsd"),
                option("port", ConfigValue::Integer(8125), "Port of statsd"),
                option("batch", ConfigValue::Integer(1), "Accepted for compatibility: lines are packed into datagrams of up to 1400 bytes"),
            ],
            capabilities: vec![Capability::Connect("udp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let host = config.text("host")?;
        let port = config.port("port")?;
        Ok(Statsd {
            sender: LineSender::new(Protocol::Udp, host_port(&host, port), 5000),
            old: HashMap::new(),
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        let mut datagram = String::new();
        for line in self.lines(&batch) {
            if !datagram.is_empty() && datagram.len() + 1 + line.len() > MAX_DATAGRAM {
                self.sender.send(datagram.as_bytes())?;
                datagram.clear();
            }
            if !datagram.is_empty() {
                datagram.push('\n');
            }
            datagram.push_str(&line);
        }
        if !datagram.is_empty() {
            self.sender.send(datagram.as_bytes())?;
        }
        Ok(())
    }
}

export_handler!(Statsd);

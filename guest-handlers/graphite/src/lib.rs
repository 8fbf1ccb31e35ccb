//! Diamond's GraphiteHandler as a wdiamond component: graphite plaintext
//! lines over TCP (or UDP) to carbon, through the host's granted sockets.
//!
//! Each `process` call has the host write the batch's lines (formatted by
//! the host, kept in its memory) to the connection in one write. A failed send
//! returns an error: the host keeps the batch and retries it with backoff,
//! reconnecting. A batch that may have gone to a peer that had just closed
//! is sent again ([`LineSender`]): delivery is at least once, and carbon
//! keeps one value per series and second, so a repeat is harmless. After a
//! failure, what went out in the last `replay` seconds is sent again too:
//! a carbon that crashed loses what it had read but not yet written.

use wdiamond_sdk::net::{host_port, LineSender};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// The handler's state.
pub struct Graphite {
    sender: LineSender,
}

/// Reads `host`, `port`, `proto`, `timeout` and the keepalive keys.
pub fn sender(config: &Config) -> Result<LineSender, String> {
    let host = config.text("host")?;
    let port = config.port("port")?;
    let proto = config.protocol("proto")?;
    let timeout_ms = config.timeout_ms("timeout")?;
    let keepalive = if config.bool("keepalive")? {
        Some(config.f64("keepaliveinterval")?.clamp(1.0, 7200.0) as u32)
    } else {
        None
    };
    Ok(LineSender::new(proto, host_port(&host, port), timeout_ms)
        .with_keepalive(keepalive)
        .with_replay(wdiamond_sdk::net::replay_secs(config)?))
}

impl Handler for Graphite {
    fn describe() -> Description {
        Description {
            name: "graphite".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Sends graphite plaintext lines to carbon over TCP or UDP (Diamond's GraphiteHandler).".into(),
            options: vec![
                option("host", ConfigValue::Text("localhost".into()), "Hostname of carbon"),
                option("port", ConfigValue::Integer(2003), "Port of carbon's plaintext listener"),
                option("proto", ConfigValue::Text("tcp".into()), "tcp or udp"),
                option("timeout", ConfigValue::Integer(15), "Seconds to wait for a connect or a send"),
                option("batch", ConfigValue::Integer(1), "Accepted for compatibility: the host batches metrics (batch_size)"),
                option("keepalive", ConfigValue::Boolean(false), "Enable TCP keepalive on the connection to carbon"),
                option("keepaliveinterval", ConfigValue::Integer(10), "Seconds between keepalive probes"),
                wdiamond_sdk::net::replay_option(),
            ],
            capabilities: vec![Capability::Connect("{proto}:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Graphite {
            sender: sender(config)?,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        // The host writes the lines it formatted to the connection.
        self.sender.send_batch(batch)
    }

    fn flush(&mut self) -> Result<(), String> {
        // A last check that the final batch did not go to a closed peer.
        self.sender.send(&[])
    }
}

export_handler!(Graphite);

//! Diamond's GraphiteHandler as a wdiamond component: graphite plaintext
//! lines over TCP (or UDP) to carbon, through the host's granted sockets.
//!
//! Each `process` call sends its whole batch in one write. A failed send
//! drops the connection and returns an error: the host keeps the batch and
//! retries it with backoff; the next call reconnects.
//!
//! The plaintext protocol has no acknowledgements: a write to a connection
//! the peer has just closed can succeed and still be lost. So the handler
//! keeps the last batch it sent until the connection proves alive at the
//! next call (carbon never writes on this port, so a readable connection
//! means it was closed); if it was closed, the last batch is sent again on
//! the new connection. Carbon stores one value per series and timestamp, so
//! a repeat is harmless: delivery is at least once.

use wdiamond_sdk::bindings::wdiamond::plugin::sockets::{Connection, Protocol};
use wdiamond_sdk::format::graphite_line;
use wdiamond_sdk::host::describe_error;
use wdiamond_sdk::{
    export_handler, option, Capability, Config, ConfigValue, Description, Handler, HostError,
    PublishedMetric,
};

/// The handler's state.
pub struct Graphite {
    address: String,
    proto: Protocol,
    timeout_ms: u32,
    conn: Option<Connection>,
    /// The last batch sent, until the connection is seen alive afterwards.
    unconfirmed: Vec<u8>,
}

/// Renders a batch as graphite plaintext.
pub fn render(batch: &[PublishedMetric]) -> String {
    let mut text = String::with_capacity(batch.len() * 64);
    for m in batch {
        graphite_line(&mut text, &m.path, m.value, m.precision, m.timestamp);
    }
    text
}

/// `host:port`, with brackets around IPv6 literals.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether the peer closed (or reset) the connection: carbon never sends
/// on the plaintext port, so anything but "nothing to read yet" means so.
fn peer_closed(conn: &Connection) -> bool {
    !matches!(conn.receive(64, 1), Err(HostError::TimedOut))
}

impl Graphite {
    fn send(&mut self, text: Vec<u8>) -> Result<(), String> {
        let tcp = self.proto == Protocol::Tcp;
        if let Some(c) = &self.conn {
            if tcp && peer_closed(c) {
                // The previous batch may not have arrived: resent below.
                self.conn = None;
            } else {
                self.unconfirmed.clear();
            }
        }
        if text.is_empty() && self.unconfirmed.is_empty() {
            return Ok(());
        }
        if self.conn.is_none() {
            let c = Connection::open(self.proto, &self.address, self.timeout_ms)
                .map_err(|e| format!("connecting to {}: {}", self.address, describe_error(&e)))?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_ref().expect("connected above");
        let mut payload = std::mem::take(&mut self.unconfirmed);
        let kept = payload.len();
        payload.extend_from_slice(&text);
        if let Err(e) = conn.send(&payload, self.timeout_ms) {
            self.conn = None;
            // What was unconfirmed stays so; the new batch is the host's to retry.
            payload.truncate(kept);
            self.unconfirmed = payload;
            return Err(format!(
                "sending to {}: {}",
                self.address,
                describe_error(&e)
            ));
        }
        if tcp {
            self.unconfirmed = payload;
        }
        Ok(())
    }
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
            ],
            capabilities: vec![Capability::Connect("{proto}:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let host = config.str("host").unwrap_or_else(|| "localhost".into());
        let port = config.f64("port", 2003.0)?;
        if !(1.0..=65535.0).contains(&port) || port.fract() != 0.0 {
            return Err(format!("`port` must be 1..65535, not {port}"));
        }
        let proto = match config.str("proto").as_deref().unwrap_or("tcp") {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => return Err(format!("`proto` must be tcp or udp, not {other:?}")),
        };
        let timeout = config.f64("timeout", 15.0)?;
        Ok(Graphite {
            address: address(&host, port as u16),
            proto,
            timeout_ms: (timeout * 1000.0).clamp(1.0, u32::MAX as f64) as u32,
            conn: None,
            unconfirmed: Vec::new(),
        })
    }

    fn process(&mut self, batch: Vec<PublishedMetric>) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        self.send(render(&batch).into_bytes())
    }

    fn flush(&mut self) -> Result<(), String> {
        // A last check that the final batch did not go to a closed peer.
        self.send(Vec::new())
    }
}

export_handler!(Graphite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(address("127.0.0.1", 2003), "127.0.0.1:2003");
        assert_eq!(address("::1", 2003), "[::1]:2003");
    }
}

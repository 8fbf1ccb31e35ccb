//! Diamond's GraphitePickleHandler: batches to carbon's pickle receiver
//! (port 2004), each a 4-byte big-endian length and a pickle (protocol 2)
//! of a list of `(path, (timestamp, value))` tuples.

use wdiamond_sdk::bindings::wdiamond::plugin::sockets::Protocol;
use wdiamond_sdk::net::{host_port, LineSender};
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// Carbon's default `PICKLE_RECEIVER_MAX_LENGTH` is 1 MiB: stay under it.
pub const MAX_FRAME: usize = 900 * 1024;

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X'); // BINUNICODE
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn push_int(out: &mut Vec<u8>, v: u64) {
    if v <= i32::MAX as u64 {
        out.push(b'J'); // BININT
        out.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        out.push(0x8a); // LONG1
        let bytes = v.to_le_bytes();
        let mut n = 8;
        while n > 1 && bytes[n - 1] == 0 && bytes[n - 2] & 0x80 == 0 {
            n -= 1;
        }
        let extra = if bytes[n - 1] & 0x80 != 0 { 1 } else { 0 };
        out.push((n + extra) as u8);
        out.extend_from_slice(&bytes[..n]);
        if extra == 1 {
            out.push(0);
        }
    }
}

/// Frames of at most [`MAX_FRAME`] bytes, each `[u32 BE length][pickle]`.
pub fn frames(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        let mut p = vec![0x80, 2, b']', b'(']; // PROTO 2, EMPTY_LIST, MARK
        while i < batch.len() && p.len() < MAX_FRAME {
            let m = batch.get(i);
            // Diamond sends the value rounded to its precision.
            let v: f64 = format!("{:.*}", m.precision as usize, m.value)
                .parse()
                .unwrap_or(m.value);
            push_str(&mut p, &m.path);
            push_int(&mut p, m.timestamp);
            p.push(b'G'); // BINFLOAT
            p.extend_from_slice(&v.to_be_bytes());
            p.extend_from_slice(&[0x86, 0x86]); // TUPLE2, TUPLE2
            i += 1;
        }
        p.extend_from_slice(b"e."); // APPENDS, STOP
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(&p);
    }
    out
}

/// The handler's state.
pub struct Pickle {
    sender: LineSender,
}

impl Handler for Pickle {
    fn describe() -> Description {
        Description {
            name: "graphite_pickle".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Sends batches to carbon's pickle receiver (Diamond's GraphitePickleHandler)."
                .into(),
            options: vec![
                option(
                    "host",
                    ConfigValue::Text("localhost".into()),
                    "Hostname of carbon",
                ),
                option(
                    "port",
                    ConfigValue::Integer(2004),
                    "Port of carbon's pickle receiver",
                ),
                option(
                    "timeout",
                    ConfigValue::Integer(15),
                    "Seconds to wait for a connect or a send",
                ),
                option(
                    "batch",
                    ConfigValue::Integer(1),
                    "Accepted for compatibility: the host batches metrics (batch_size)",
                ),
                wdiamond_sdk::net::replay_option(),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let host = config.text("host")?;
        let port = config.port("port")?;
        let timeout_ms = config.timeout_ms("timeout")?;
        Ok(Pickle {
            sender: LineSender::new(Protocol::Tcp, host_port(&host, port), timeout_ms)
                .with_replay(wdiamond_sdk::net::replay_secs(config)?),
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        self.sender.send(&frames(&batch))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.sender.send(&[])
    }
}

export_handler!(Pickle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_in_pickle() {
        let mut v = Vec::new();
        push_int(&mut v, 1_700_000_000);
        assert_eq!(v, [b'J', 0x00, 0xf1, 0x53, 0x65]);
        let mut v = Vec::new();
        push_int(&mut v, 1 << 40);
        assert_eq!(v, [0x8a, 6, 0, 0, 0, 0, 0, 1]);
    }
}

//! Diamond's MQTTHandler as a wdiamond component: each metric published to
//! an MQTT broker (3.1.1) on the topic made from its path (`.` becomes `/`,
//! `#` and `+` become `&`, under `prefix`), its payload `value timestamp`
//! (or the value alone with `timestamp = false`), with Diamond's last will
//! on `clients/diamond/<hostname>`. A clean stop (or a reload that replaces
//! the handler) ends the session with DISCONNECT, so the broker publishes
//! the will only when the agent dies. The client id is `client_id`, or by
//! default one two agents cannot share ([`client_id`]).
//!
//! With `qos = 1` every PUBLISH of a batch must be acknowledged (PUBACK)
//! before `process` returns; with `qos = 0` the broker's answer to a
//! PINGREQ sent after them says it has read them. An error drops the
//! connection and returns it: the host keeps the batch and retries it on a
//! new connection (delivery at least once). The packets and the topics are
//! pure functions ([`topic`], [`connect_packet`], [`publish_packet`],
//! [`Reader`]), unit-tested natively.

use wdiamond_sdk::bindings::wdiamond::plugin::{
    host_info,
    sockets::{Connection, Protocol},
};
use wdiamond_sdk::host::describe_error;
use wdiamond_sdk::net::host_port;
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// DISCONNECT: the session ends cleanly (no last will).
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// The client id: the configured one, or `wdiamond-<host>-<nonce>`
/// (host cut to 40 characters; the nonce random per instance), so that two
/// agents with one host name do not knock each other off the broker.
pub fn client_id(configured: &str, host: &str, nonce: u32) -> String {
    if configured.is_empty() {
        format!(
            "wdiamond-{}-{nonce:08x}",
            host.chars().take(40).collect::<String>()
        )
    } else {
        configured.to_string()
    }
}

/// The MQTT topic of a metric path (Diamond's rule).
pub fn topic(prefix: &str, path: &str) -> String {
    let t = if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    };
    t.replace('.', "/").replace(['#', '+'], "&")
}

/// MQTT's variable-length "remaining length".
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len().min(u16::MAX as usize) as u16).to_be_bytes());
    out.extend_from_slice(&s[..s.len().min(u16::MAX as usize)]);
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    put_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// CONNECT: a clean session, keep-alive 60 s, the last will.
pub fn connect_packet(client_id: &str, will_topic: &str, will: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_str(&mut b, b"MQTT");
    b.push(4); // protocol level: 3.1.1
    b.push(0x02 | 0x04); // clean session, will flag (QoS 0, not retained)
    b.extend_from_slice(&60u16.to_be_bytes());
    put_str(&mut b, client_id.as_bytes());
    put_str(&mut b, will_topic.as_bytes());
    put_str(&mut b, will);
    packet(0x10, &b)
}

/// PUBLISH of `payload` on `topic`; `id` is the packet id (QoS 1 only).
pub fn publish_packet(topic: &str, payload: &[u8], qos: u8, id: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut b, topic.as_bytes());
    if qos > 0 {
        b.extend_from_slice(&id.to_be_bytes());
    }
    b.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &b)
}

/// PINGREQ.
pub const PINGREQ: [u8; 2] = [0xc0, 0x00];

/// One packet the broker sent: its type (the high nibble) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The first byte.
    pub header: u8,
    /// The rest.
    pub body: Vec<u8>,
}

/// Splits the broker's bytes into packets as they arrive.
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Adds bytes read.
    pub fn feed(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// The next whole packet, if one is there; an error for a length
    /// that is not MQTT.
    pub fn next(&mut self) -> Result<Option<Packet>, String> {
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let Some(&b) = self.buf.get(i) else {
                return Ok(None);
            };
            len |= ((b & 0x7f) as usize) << shift;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                return Err("a malformed packet length from the broker".into());
            }
        }
        if self.buf.len() < i + len {
            return Ok(None);
        }
        let header = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Ok(Some(Packet { header, body }))
    }

    /// Bytes waiting.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Most bytes read while waiting for the broker.
const MAX_PENDING: usize = 1 << 20;

/// The handler's state.
pub struct Mqtt {
    address: String,
    prefix: String,
    qos: u8,
    timestamp: bool,
    timeout_ms: u32,
    client_id: String,
    conn: Option<Connection>,
    next_id: u16,
}

impl Mqtt {
    fn read_until(
        &self,
        c: &Connection,
        r: &mut Reader,
        mut done: impl FnMut(&Packet) -> Result<bool, String>,
    ) -> Result<(), String> {
        loop {
            while let Some(p) = r.next()? {
                if done(&p)? {
                    return Ok(());
                }
            }
            if r.pending() > MAX_PENDING {
                return Err(format!(
                    "{}: more than {MAX_PENDING} bytes without an answer",
                    self.address
                ));
            }
            let chunk = c
                .receive(65536, self.timeout_ms)
                .map_err(|e| format!("waiting for {}: {}", self.address, describe_error(&e)))?;
            if chunk.is_empty() {
                return Err(format!("{} closed the connection", self.address));
            }
            r.feed(&chunk);
        }
    }

    fn connect(&self) -> Result<Connection, String> {
        let c = Connection::open(Protocol::Tcp, &self.address, self.timeout_ms)
            .map_err(|e| format!("connecting to {}: {}", self.address, describe_error(&e)))?;
        let host = host_info::hostname();
        c.send(
            &connect_packet(
                &self.client_id,
                &format!("clients/diamond/{host}"),
                b"Adios!",
            ),
            self.timeout_ms,
        )
        .map_err(|e| {
            format!(
                "sending CONNECT to {}: {}",
                self.address,
                describe_error(&e)
            )
        })?;
        let mut r = Reader::default();
        self.read_until(&c, &mut r, |p| {
            if p.header >> 4 != 2 {
                return Err(format!(
                    "{} did not answer CONNECT with CONNACK",
                    self.address
                ));
            }
            match p.body.get(1) {
                Some(0) => Ok(true),
                code => Err(format!(
                    "{} refused the connection (CONNACK code {code:?})",
                    self.address
                )),
            }
        })?;
        Ok(c)
    }

    fn send(&mut self, batch: &Batch) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let mut wire = Vec::new();
        let mut waiting = std::collections::BTreeSet::new();
        for m in batch.iter() {
            // Diamond's payload: the value as its line prints it, and the
            // timestamp.
            let payload = if self.timestamp {
                format!("{:.*} {}", m.precision as usize, m.value, m.timestamp)
            } else {
                format!("{:.*}", m.precision as usize, m.value)
            };
            let id = if self.qos > 0 {
                self.next_id = self.next_id.wrapping_add(1).max(1);
                waiting.insert(self.next_id);
                self.next_id
            } else {
                0
            };
            wire.extend_from_slice(&publish_packet(
                &topic(&self.prefix, m.path),
                payload.as_bytes(),
                self.qos,
                id,
            ));
        }
        if self.qos == 0 {
            wire.extend_from_slice(&PINGREQ);
        }
        let c = self.conn.as_ref().expect("connected above");
        c.send(&wire, self.timeout_ms)
            .map_err(|e| format!("sending to {}: {}", self.address, describe_error(&e)))?;
        let mut r = Reader::default();
        let qos = self.qos;
        self.read_until(c, &mut r, |p| match p.header >> 4 {
            4 if qos > 0 && p.body.len() >= 2 => {
                waiting.remove(&u16::from_be_bytes([p.body[0], p.body[1]]));
                Ok(waiting.is_empty())
            }
            13 if qos == 0 => Ok(true), // PINGRESP
            _ => Ok(false),
        })
    }
}

impl Handler for Mqtt {
    fn describe() -> Description {
        Description {
            name: "mqtt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Publishes each metric to an MQTT broker on a topic made from its path (Diamond's MQTTHandler).".into(),
            options: vec![
                option("host", ConfigValue::Text("localhost".into()), "Host name of the MQTT broker"),
                option("port", ConfigValue::Integer(1883), "Port of the broker"),
                option("qos", ConfigValue::Integer(0), "0 (confirmed by a ping) or 1 (every message acknowledged)"),
                option("prefix", ConfigValue::Text(String::new()), "Topic prefix (e.g. some/pre/fix)"),
                option("timestamp", ConfigValue::Boolean(true), "Payload `value timestamp`; false: the value alone"),
                option("timeout", ConfigValue::Integer(15), "Seconds to wait for a connect, a send or the broker's answer"),
                option("client_id", ConfigValue::Text(String::new()), "MQTT client id (default: wdiamond-<hostname>-<random>, unique per agent)"),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let qos = match config.f64("qos")? {
            q if q == 0.0 => 0,
            q if q == 1.0 => 1,
            q => return Err(format!("`qos` must be 0 or 1, not {q}")),
        };
        Ok(Mqtt {
            address: host_port(&config.text("host")?, config.port("port")?),
            prefix: config.text("prefix")?.trim_matches('/').to_string(),
            qos,
            timestamp: config.bool("timestamp")?,
            timeout_ms: config.timeout_ms("timeout")?,
            client_id: {
                let configured = config.text("client_id")?;
                if configured.len() > 65535 {
                    return Err("`client_id` is longer than MQTT allows (65535 bytes)".into());
                }
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(host_info::now().to_bits());
                client_id(&configured, &host_info::hostname(), h.finish() as u32)
            },
            conn: None,
            next_id: 0,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let r = self.send(batch);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    fn flush(&mut self) -> Result<(), String> {
        // The last call of this instance: end the session cleanly.
        if host_info::stopping() {
            if let Some(c) = self.conn.take() {
                let _ = c.send(&DISCONNECT, self.timeout_ms);
            }
        }
        Ok(())
    }
}

export_handler!(Mqtt);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_the_configured_one_or_unique() {
        assert_eq!(client_id("mine", "h", 7), "mine");
        assert_eq!(client_id("", "web1", 0xab), "wdiamond-web1-000000ab");
        assert_ne!(client_id("", "web1", 1), client_id("", "web1", 2));
        assert_eq!(
            client_id("", &"h".repeat(100), 0).len(),
            "wdiamond--00000000".len() + 40
        );
    }

    #[test]
    fn topics_are_diamond_s() {
        assert_eq!(topic("", "servers.h.cpu.total"), "servers/h/cpu/total");
        assert_eq!(topic("some/pre/fix", "a.b#c+d"), "some/pre/fix/a/b&c&d");
    }

    #[test]
    fn packets_round_trip_through_the_reader() {
        let p = publish_packet("a/b", b"1.5 7", 1, 258);
        assert_eq!(p[0], 0x32);
        let mut r = Reader::default();
        r.feed(&p[..3]);
        assert_eq!(r.next().unwrap(), None);
        r.feed(&p[3..]);
        r.feed(&[0x40, 0x02, 0x01, 0x02]);
        let got = r.next().unwrap().unwrap();
        assert_eq!(got.header, 0x32);
        assert_eq!(&got.body[..5], b"\x00\x03a/b");
        assert_eq!(&got.body[5..7], &258u16.to_be_bytes());
        assert_eq!(&got.body[7..], b"1.5 7");
        assert_eq!(r.next().unwrap().unwrap().header, 0x40);
        // A long payload takes a multi-byte length.
        let big = publish_packet("t", &vec![b'x'; 300], 0, 0);
        // 303 bytes after the header: 47 + 2 * 128.
        assert_eq!(&big[1..3], &[0x80 | 47, 0x02]);
        let mut r = Reader::default();
        r.feed(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(r.next().is_err());
        let c = connect_packet("id", "clients/diamond/h", b"Adios!");
        assert_eq!(c[0], 0x10);
        assert_eq!(&c[2..8], b"\x00\x04MQTT");
    }
}

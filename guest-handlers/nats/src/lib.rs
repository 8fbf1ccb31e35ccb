//! A NATS handler: publishes metrics on subjects built from where they
//! came from, `SUBJECT.<tenant>.<host>` (`host` for the host's own
//! metrics), as graphite lines or JSON, over NATS's text protocol through
//! the host's granted sockets.
//!
//! Each `process` call sends one `PUB` per subject (payloads cut below the
//! server's `max_payload`), then `PING`, and returns once the server's
//! `PONG` says it has read them all; an error (the server down, `-ERR`)
//! drops the connection and returns it, so the host keeps the batch and
//! retries it on a new connection. Delivery to the server is at least once;
//! core NATS itself delivers to the subscribers connected at that moment.
//! The building of subjects and payloads is pure ([`publications`]), and
//! so is the CONNECT line with its credentials ([`connect_line`]: `user` and
//! `password`, or `token`; NKeys and JWTs are not supported).

use wdiamond_sdk::bindings::wdiamond::plugin::sockets::{Connection, Protocol};
use wdiamond_sdk::host::describe_error;
use wdiamond_sdk::net::host_port;
use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// Most bytes of one `PUB` payload (NATS servers accept 1 MiB by default).
pub const MAX_PAYLOAD: usize = 512 << 10;
/// Most bytes read while waiting for the server's answer.
const MAX_ANSWER: usize = 64 << 10;

/// A JSON string literal of `s`.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The CONNECT line, with `user`/`password` or `token` when set.
pub fn connect_line(user: &str, password: &str, token: &str) -> Vec<u8> {
    let mut fields = vec![
        r#""verbose":false"#.to_string(),
        r#""pedantic":false"#.to_string(),
        r#""name":"wdiamond""#.to_string(),
        r#""lang":"wasm""#.to_string(),
        r#""version":"1""#.to_string(),
    ];
    if !user.is_empty() {
        fields.push(format!(r#""user":{}"#, json_str(user)));
        fields.push(format!(r#""pass":{}"#, json_str(password)));
    }
    if !token.is_empty() {
        fields.push(format!(r#""auth_token":{}"#, json_str(token)));
    }
    format!("CONNECT {{{}}}\r\n", fields.join(",")).into_bytes()
}

/// A NATS subject token from a name: NATS separates tokens with `.` and
/// reserves `*`, `>` and white space.
pub fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// One metric as the handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item<'a> {
    /// Full path.
    pub path: &'a str,
    /// Its Diamond line (`path value timestamp\n`).
    pub line: &'a str,
    /// Value.
    pub value: f64,
    /// Seconds since the epoch.
    pub timestamp: u64,
    /// The host name in the path.
    pub host: &'a str,
    /// The tenant, if any.
    pub tenant: Option<&'a str>,
}

/// The payloads to publish: `(subject, payload)`, in order, each payload
/// at most [`MAX_PAYLOAD`] bytes (or one line, if a line is longer).
pub fn publications(items: &[Item<'_>], prefix: &str, json: bool) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new(); // subject -> index in out
    for m in items {
        let subject = format!(
            "{prefix}.{}.{}",
            token(m.tenant.unwrap_or("host")),
            token(m.host)
        );
        let text = if json {
            format!(
                "{{\"path\":{:?},\"value\":{},\"timestamp\":{}}}\n",
                m.path,
                if m.value.is_finite() { m.value } else { 0.0 },
                m.timestamp
            )
        } else {
            m.line.to_string()
        };
        let slot = open.iter().position(|(s, _)| *s == subject);
        match slot {
            Some(k) if out[open[k].1].1.len() + text.len() <= MAX_PAYLOAD => {
                out[open[k].1].1.extend_from_slice(text.as_bytes());
            }
            Some(k) => {
                out.push((subject, text.into_bytes()));
                open[k].1 = out.len() - 1;
            }
            None => {
                out.push((subject.clone(), text.into_bytes()));
                open.push((subject, out.len() - 1));
            }
        }
    }
    out
}

/// The protocol bytes of the publications, then a `PING`.
pub fn wire(pubs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = Vec::new();
    for (subject, payload) in pubs {
        w.extend_from_slice(format!("PUB {subject} {}\r\n", payload.len()).as_bytes());
        w.extend_from_slice(payload);
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(b"PING\r\n");
    w
}

/// What the server's answer so far says: `Some(Ok)` at its `PONG`,
/// `Some(Err)` at an `-ERR`, `None` to read on. A server `PING` is
/// answered through `pong`.
pub fn answer(buf: &[u8], mut pong: impl FnMut()) -> Option<Result<(), String>> {
    for line in buf.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line == "PONG" {
            return Some(Ok(()));
        }
        if line == "PING" {
            pong();
        }
        if let Some(e) = line.strip_prefix("-ERR") {
            let e: String = e.trim().chars().take(200).collect();
            return Some(Err(format!("the NATS server refused: {e}")));
        }
    }
    None
}

/// The handler's state.
pub struct Nats {
    address: String,
    subject: String,
    json: bool,
    timeout_ms: u32,
    connect: Vec<u8>,
    conn: Option<Connection>,
}

impl Nats {
    fn connect(&self) -> Result<Connection, String> {
        let c = Connection::open(Protocol::Tcp, &self.address, self.timeout_ms)
            .map_err(|e| format!("connecting to {}: {}", self.address, describe_error(&e)))?;
        // The server greets with INFO; the client says CONNECT.
        let info = c
            .receive(MAX_ANSWER as u32, self.timeout_ms)
            .map_err(|e| format!("reading {}'s INFO: {}", self.address, describe_error(&e)))?;
        if !info.starts_with(b"INFO ") {
            return Err(format!("{} is not a NATS server (no INFO)", self.address));
        }
        c.send(&self.connect, self.timeout_ms).map_err(|e| {
            format!(
                "sending CONNECT to {}: {}",
                self.address,
                describe_error(&e)
            )
        })?;
        Ok(c)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let c = self.conn.as_ref().expect("connected above");
        c.send(bytes, self.timeout_ms)
            .map_err(|e| format!("sending to {}: {}", self.address, describe_error(&e)))?;
        let mut got = Vec::new();
        loop {
            let chunk = c.receive(MAX_ANSWER as u32, self.timeout_ms).map_err(|e| {
                format!(
                    "waiting for {}'s PONG: {}",
                    self.address,
                    describe_error(&e)
                )
            })?;
            if chunk.is_empty() {
                return Err(format!("{} closed the connection", self.address));
            }
            got.extend_from_slice(&chunk);
            let mut pings = 0;
            let done = answer(&got, || pings += 1);
            for _ in 0..pings {
                let _ = c.send(b"PONG\r\n", self.timeout_ms);
            }
            match done {
                Some(r) => return r,
                None if got.len() > MAX_ANSWER => {
                    return Err(format!("{}: no PONG in {MAX_ANSWER} bytes", self.address))
                }
                None => {
                    // Keep only the last partial line.
                    if let Some(k) = got.iter().rposition(|&b| b == b'\n') {
                        got.drain(..=k);
                    }
                }
            }
        }
    }
}

impl Handler for Nats {
    fn describe() -> Description {
        Description {
            name: "nats".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Publishes metrics to a NATS server on SUBJECT.<tenant>.<host>, as graphite lines or JSON.".into(),
            options: vec![
                option("host", ConfigValue::Text("localhost".into()), "Host name of the NATS server"),
                option("port", ConfigValue::Integer(4222), "Port of the NATS server"),
                option("subject", ConfigValue::Text("metrics".into()), "First token(s) of every subject"),
                option("format", ConfigValue::Text("lines".into()), "lines (graphite plaintext) or json (one object per line)"),
                option("user", ConfigValue::Text(String::new()), "User name, for a server with user/password authentication"),
                option("password", ConfigValue::Text(String::new()), "Password of `user`"),
                option("token", ConfigValue::Text(String::new()), "Token, for a server with token authentication"),
                option("timeout", ConfigValue::Integer(15), "Seconds to wait for a connect, a send or the server's answer"),
            ],
            capabilities: vec![Capability::Connect("tcp:{host}:{port}".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let host = config.text("host")?;
        let port = config.port("port")?;
        let subject = config.text("subject")?;
        if subject.is_empty()
            || subject
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>']) || t.contains(char::is_whitespace))
        {
            return Err(format!(
                "`subject` must be NATS subject tokens separated by `.`, without wildcards: not {subject:?}"
            ));
        }
        let json = match config.text("format")?.as_str() {
            "lines" => false,
            "json" => true,
            other => return Err(format!("`format` must be lines or json, not {other:?}")),
        };
        let (user, password, token) = (
            config.text("user")?,
            config.text("password")?,
            config.text("token")?,
        );
        if user.is_empty() && !password.is_empty() {
            return Err("`password` is set without `user`".into());
        }
        Ok(Nats {
            address: host_port(&host, port),
            subject,
            json,
            connect: connect_line(&user, &password, &token),
            timeout_ms: config.timeout_ms("timeout")?,
            conn: None,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let items: Vec<Item<'_>> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| Item {
                path: m.path,
                line: batch.line(i),
                value: m.value,
                timestamp: m.timestamp,
                host: m.host,
                tenant: m.tenant,
            })
            .collect();
        let bytes = wire(&publications(&items, &self.subject, self.json));
        let r = self.send(&bytes);
        if r.is_err() {
            // A new connection for the retry.
            self.conn = None;
        }
        r
    }
}

export_handler!(Nats);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_carries_the_credentials_as_json() {
        let plain = String::from_utf8(connect_line("", "", "")).unwrap();
        assert!(
            plain.starts_with("CONNECT {") && plain.ends_with("}\r\n"),
            "{plain}"
        );
        assert!(!plain.contains("user") && !plain.contains("auth_token"));
        let up = String::from_utf8(connect_line("wd", "p\"a\\s\n", "")).unwrap();
        assert!(up.contains(r#""user":"wd","pass":"p\"a\\s\u000a""#), "{up}");
        let t = String::from_utf8(connect_line("", "", "s3cret")).unwrap();
        assert!(t.contains(r#""auth_token":"s3cret""#), "{t}");
        assert_eq!(
            up.matches("\r\n").count(),
            1,
            "one line whatever the password holds"
        );
    }

    fn item<'a>(path: &'a str, line: &'a str, tenant: Option<&'a str>) -> Item<'a> {
        Item {
            path,
            line,
            value: 1.5,
            timestamp: 7,
            host: "web.1",
            tenant,
        }
    }

    #[test]
    fn subjects_come_from_tenant_and_host_and_payloads_stay_small() {
        let items = vec![
            item("servers.web.cpu.x", "servers.web.cpu.x 1.5 7\n", None),
            item("tenants.a.y", "tenants.a.y 1.5 7\n", Some("a")),
            item("servers.web.cpu.z", "servers.web.cpu.z 1.5 7\n", None),
        ];
        let p = publications(&items, "metrics", false);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "metrics.host.web_1");
        assert_eq!(
            p[0].1,
            b"servers.web.cpu.x 1.5 7\nservers.web.cpu.z 1.5 7\n"
        );
        assert_eq!(p[1].0, "metrics.a.web_1");
        let j = publications(&items[..1], "m", true);
        assert_eq!(
            j[0].1,
            b"{\"path\":\"servers.web.cpu.x\",\"value\":1.5,\"timestamp\":7}\n"
        );
        let line = "x".repeat(1000) + "\n";
        let many: Vec<Item<'_>> = (0..2000).map(|_| item("x", &line, None)).collect();
        let p = publications(&many, "m", false);
        assert!(p.len() >= 4 && p.iter().all(|(_, b)| b.len() <= MAX_PAYLOAD));
        assert_eq!(p.iter().map(|(_, b)| b.len()).sum::<usize>(), 2000 * 1001);
    }

    #[test]
    fn the_wire_and_the_answers() {
        let w = wire(&[("m.host.h".into(), b"a 1 2\n".to_vec())]);
        assert_eq!(w, b"PUB m.host.h 6\r\na 1 2\n\r\nPING\r\n");
        let mut pings = 0;
        assert_eq!(answer(b"PING\r\nPONG\r\n", || pings += 1), Some(Ok(())));
        assert_eq!(pings, 1);
        assert!(answer(b"-ERR 'Maximum Payload Violation'\r\n", || {})
            .unwrap()
            .is_err());
        assert_eq!(answer(b"PON", || {}), None);
        assert_eq!(token("a.b*c> d"), "a_b_c__d");
    }
}

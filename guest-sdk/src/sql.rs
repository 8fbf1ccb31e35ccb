//! Database clients for collectors, speaking the servers' wire protocols
//! through the host's granted sockets (feature `sql`): PostgreSQL's v3
//! protocol ([`pg`], also PgBouncer's admin console) and MySQL's / MariaDB's
//! ([`mysql`]). Only what a metrics collector needs: authentication and
//! simple text queries.
//!
//! Everything a server sends is bounded: one message at most
//! [`MAX_MESSAGE`] bytes, one result at most [`MAX_RESULT`] bytes and
//! [`MAX_ROWS`] rows, and a whole session (connect, authenticate, every
//! query) within one deadline. A server that answers garbage, stalls in the
//! middle of a packet or announces a 4 GiB length gets an error that says
//! so, never a trap.
//!
//! The protocols are written against a [`Transport`] so that they run
//! natively in unit tests against recorded server bytes.

pub mod mysql;
pub mod pg;
mod scram;

/// Most bytes of one protocol message (a PostgreSQL message, a MySQL packet).
pub const MAX_MESSAGE: usize = 1 << 20;
/// Most bytes of one query's result, all rows together.
pub const MAX_RESULT: usize = 8 << 20;
/// Most rows of one query's result.
pub const MAX_ROWS: usize = 100_000;

/// A byte stream to a server.
pub trait Transport {
    /// Sends all of `data`.
    fn send(&mut self, data: &[u8]) -> Result<(), String>;
    /// Receives what has arrived (at least one byte); `Ok(empty)` when the
    /// peer closed the connection.
    fn receive(&mut self) -> Result<Vec<u8>, String>;
    /// Switches the stream to TLS (after the protocol's own request).
    fn start_tls(&mut self) -> Result<(), String> {
        Err("TLS is not available on this connection".into())
    }
}

/// The text result of one query: column names and rows of nullable text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// The column names, in order.
    pub columns: Vec<String>,
    /// Each row's values, in column order (`None` for SQL NULL).
    pub rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// Rows from string slices (a result as a test, or a fixture, writes it).
    pub fn of(columns: &[&str], rows: &[&[Option<&str>]]) -> Rows {
        Rows {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
        }
    }

    /// Each row as `(column, value)` pairs.
    pub fn records(&self) -> impl Iterator<Item = Vec<(&str, Option<&str>)>> {
        self.rows.iter().map(|r| {
            self.columns
                .iter()
                .map(String::as_str)
                .zip(r.iter().map(Option::as_deref))
                .collect()
        })
    }
}

/// Reads framed messages off a [`Transport`], buffering what arrived.
pub(crate) struct Reader<T: Transport> {
    pub(crate) transport: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    pos: usize,
}

impl<T: Transport> Reader<T> {
    pub(crate) fn new(transport: T) -> Self {
        Reader {
            transport,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Bytes received and not yet handed out.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes (waiting for them).
    pub(crate) fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() - self.pos < n {
            let chunk = self.transport.receive()?;
            if chunk.is_empty() {
                return Err(format!(
                    "the server closed the connection in the middle of a message ({} of {n} bytes)",
                    self.buf.len() - self.pos
                ));
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.extend_from_slice(&chunk);
        }
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(out)
    }
}

/// The real transport: a host connection, every wait within one deadline.
#[cfg(feature = "collector")]
pub struct HostTransport {
    conn: crate::bindings::wdiamond::plugin::sockets::Connection,
    address: String,
    /// Host time (seconds) by which the session must be over.
    deadline: f64,
}

#[cfg(feature = "collector")]
impl HostTransport {
    /// Connects to `address` (`host:port`, or a Unix socket's path), the
    /// whole session bounded by `timeout_ms` from now. With `upgradable`,
    /// a TCP connection stays plaintext for the protocol's own TLS request
    /// ([`Transport::start_tls`]); the section must set `tls = true`.
    pub fn open(unix: bool, address: &str, timeout_ms: u32) -> Result<Self, String> {
        Self::open_with(unix, address, timeout_ms, false)
    }

    /// [`HostTransport::open`] for a protocol that starts TLS itself.
    pub fn open_upgradable(address: &str, timeout_ms: u32) -> Result<Self, String> {
        Self::open_with(false, address, timeout_ms, true)
    }

    fn open_with(
        unix: bool,
        address: &str,
        timeout_ms: u32,
        upgradable: bool,
    ) -> Result<Self, String> {
        use crate::bindings::wdiamond::plugin::{host_info, sockets};
        let deadline = host_info::now() + f64::from(timeout_ms) / 1000.0;
        let proto = if unix {
            sockets::Protocol::Unix
        } else {
            sockets::Protocol::Tcp
        };
        let opened = if upgradable {
            sockets::Connection::open_plain(proto, address, timeout_ms)
        } else {
            sockets::Connection::open(proto, address, timeout_ms)
        };
        let conn = opened.map_err(|e| {
            format!(
                "connecting to {address}: {}",
                crate::host::describe_error(&e)
            )
        })?;
        Ok(HostTransport {
            conn,
            address: address.to_string(),
            deadline,
        })
    }

    fn remaining_ms(&self) -> Result<u32, String> {
        let left = self.deadline - crate::bindings::wdiamond::plugin::host_info::now();
        if left <= 0.0 {
            return Err(format!("{}: the session's timeout passed", self.address));
        }
        Ok(((left * 1000.0).ceil() as u32).max(1))
    }
}

#[cfg(feature = "collector")]
impl Transport for HostTransport {
    fn send(&mut self, data: &[u8]) -> Result<(), String> {
        let ms = self.remaining_ms()?;
        self.conn.send(data, ms).map(|_| ()).map_err(|e| {
            format!(
                "sending to {}: {}",
                self.address,
                crate::host::describe_error(&e)
            )
        })
    }

    fn start_tls(&mut self) -> Result<(), String> {
        let ms = self.remaining_ms()?;
        self.conn.start_tls(ms).map_err(|e| {
            format!(
                "TLS with {}: {}",
                self.address,
                crate::host::describe_error(&e)
            )
        })
    }

    fn receive(&mut self) -> Result<Vec<u8>, String> {
        let ms = self.remaining_ms()?;
        self.conn.receive(65536, ms).map_err(|e| {
            format!(
                "reading from {}: {}",
                self.address,
                crate::host::describe_error(&e)
            )
        })
    }
}

/// A scripted server for unit tests: hands out `replies` in order and
/// records what the client sent.
#[cfg(test)]
pub(crate) struct Script {
    pub(crate) replies: std::collections::VecDeque<Vec<u8>>,
    pub(crate) sent: Vec<Vec<u8>>,
}

#[cfg(test)]
impl Script {
    pub(crate) fn new(replies: Vec<Vec<u8>>) -> Self {
        Script {
            replies: replies.into(),
            sent: Vec::new(),
        }
    }
}

#[cfg(test)]
impl Transport for &mut Script {
    fn send(&mut self, data: &[u8]) -> Result<(), String> {
        self.sent.push(data.to_vec());
        Ok(())
    }
    fn receive(&mut self) -> Result<Vec<u8>, String> {
        Ok(self.replies.pop_front().unwrap_or_default())
    }
    fn start_tls(&mut self) -> Result<(), String> {
        self.sent.push(b"<start-tls>".to_vec());
        Ok(())
    }
}

/// A fresh random nonce for SCRAM (24 bytes, base64: printable, no commas).
pub fn nonce() -> Result<String, String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the SCRAM nonce: {e}"))?;
    Ok(scram::base64_encode(&b))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! `wdiamond:plugin/sockets`: TCP, UDP and Unix connections to granted
//! peers, every operation with a timeout and every read capped.
//!
//! Names are resolved only when the name itself is granted, and within
//! the call's deadline (`host::resolve`). A call's
//! timeout is the whole call's (a `send` to a slow reader ends at it, not
//! at each `write(2)`'s), and never past the run's deadline: sockets are
//! non-blocking and every wait is a `poll(2)` for the time left. A Unix
//! path is checked as written (no `..`) and as the kernel names the socket
//! it resolves to, and that very socket is connected to (through its
//! `O_PATH` descriptor), so a symlink cannot lead to another.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::component::Resource;

mod stream;

use stream::connect_unix;
pub use stream::set_keepalive;

use super::batches::HeldBatch;
use super::HostState;
use crate::bindings::sockets::{Host, HostConnection, Protocol};
use crate::bindings::types::HostError;

/// Most bytes one `receive` returns.
pub const MAX_RECEIVE: u32 = 1 << 20;
/// Most open connections per plugin.
pub const MAX_CONNECTIONS: usize = 64;

/// An open connection (the host side of the `connection` resource).
pub enum Connection {
    /// TCP.
    Tcp(TcpStream),
    /// Connected UDP.
    Udp(UdpSocket),
    /// Unix stream.
    Unix(UnixStream),
    /// TCP with TLS done by the host (the section's `tls = true`; see
    /// `host::tls`).
    Tls(Box<super::tls::TlsStream>),
    /// TCP from `open-plain`: plaintext until `start-tls`, which needs the
    /// name it was opened to.
    Plain {
        /// The socket.
        sock: TcpStream,
        /// The host name or address it was opened to (TLS verifies it).
        host: String,
    },
}

fn timeout(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms.max(1)))
}

fn split_host_port(address: &str) -> Result<(String, u16), HostError> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| HostError::Invalid(format!("{address:?}: expected host:port")))?;
    let port = port
        .parse()
        .map_err(|_| HostError::Invalid(format!("{address:?}: bad port")))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

impl HostState {
    fn open_connection(
        &mut self,
        proto: Protocol,
        address: &str,
        timeout_ms: u32,
        plain: bool,
    ) -> Result<Connection, HostError> {
        if self.sockets_open >= MAX_CONNECTIONS {
            return Err(HostError::Invalid(format!(
                "more than {MAX_CONNECTIONS} open connections"
            )));
        }
        let t = self.within_deadline(timeout(timeout_ms).min(self.ctx.limits.socket_timeout));
        if proto == Protocol::Unix {
            self.check_form(address)?;
            if let Err(d) = self.ctx.grants.check_unix(Path::new(address)) {
                return Err(self.denied(d));
            }
            let (_fd, real, via) = super::files::open_socket_path(Path::new(address))
                .map_err(|e| super::io_error(address, e))?;
            if let Err(d) = self.ctx.grants.check_unix(&real) {
                return Err(self.denied(d));
            }
            let s =
                connect_unix(&via, Instant::now() + t).map_err(|e| super::io_error(address, e))?;
            return Ok(Connection::Unix(s));
        }
        let p = if proto == Protocol::Tcp { "tcp" } else { "udp" };
        let (host, port) = split_host_port(address)?;
        if let Err(d) = self.ctx.grants.check_connect_name(p, &host, port) {
            return Err(self.denied(d));
        }
        // The whole call — resolving, then connecting to each address —
        // ends by one deadline.
        let deadline = Instant::now() + t;
        let abort = self.abort.clone();
        let addrs = super::resolve::resolve(&self.ctx.name, &host, port, deadline, || {
            abort.as_ref().is_some_and(|a| *a.borrow())
        })
        .map_err(|e| self.failed(e))?;
        let mut last = HostError::NotFound(format!("{host}: no addresses"));
        for addr in addrs {
            if let Err(d) = self.ctx.grants.check_connect_addr(p, &host, addr) {
                last = self.denied(d);
                continue;
            }
            let r = match proto {
                Protocol::Tcp => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(self.failed(HostError::TimedOut));
                    }
                    let tcp = TcpStream::connect_timeout(&addr, left).and_then(|s| {
                        s.set_nodelay(true).ok();
                        s.set_nonblocking(true)?;
                        Ok(s)
                    });
                    match (tcp, self.ctx.tls.clone()) {
                        (Ok(sock), _) if plain => {
                            return Ok(Connection::Plain {
                                sock,
                                host: host.clone(),
                            })
                        }
                        (Ok(s), Some(tls)) => {
                            // The handshake within what is left of the timeout;
                            // its failure is the call's, with the reason.
                            return tls
                                .handshake(s, &host, deadline)
                                .map(|s| Connection::Tls(Box::new(s)))
                                .map_err(|e| self.failed(e));
                        }
                        (tcp, _) => tcp.map(Connection::Tcp),
                    }
                }
                _ => {
                    let bind: SocketAddr = if addr.is_ipv4() {
                        "0.0.0.0:0".parse().unwrap()
                    } else {
                        "[::]:0".parse().unwrap()
                    };
                    UdpSocket::bind(bind).and_then(|s| {
                        s.connect(addr)?;
                        s.set_nonblocking(true)?;
                        Ok(Connection::Udp(s))
                    })
                }
            };
            match r {
                Ok(c) => return Ok(c),
                Err(e) => last = super::io_error(address, e),
            }
        }
        Err(last)
    }
}

impl HostState {
    /// When a socket call asking for `timeout_ms` must end.
    fn socket_deadline(&self, timeout_ms: u32) -> Instant {
        Instant::now()
            + self.within_deadline(timeout(timeout_ms).min(self.ctx.limits.socket_timeout))
    }

    /// Writes all of `data` (one datagram for UDP) within the timeout.
    fn write(
        &mut self,
        this: &Resource<Connection>,
        data: &[u8],
        deadline: Instant,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        let conn = self.table.get_mut(this)?;
        Ok(match conn.write_all_by(data, deadline) {
            Ok(()) => Ok(data.len() as u64),
            Err(e) => Err(self.failed(super::io_error("send", e))),
        })
    }
}

impl Host for HostState {}

impl HostState {
    fn open_resource(
        &mut self,
        proto: Protocol,
        address: &str,
        timeout_ms: u32,
        plain: bool,
    ) -> wasmtime::Result<Result<Resource<Connection>, HostError>> {
        match self.open_connection(proto, address, timeout_ms, plain) {
            Ok(c) => {
                self.sockets_open += 1;
                Ok(Ok(self.table.push(c)?))
            }
            Err(e @ HostError::Denied(_)) => Ok(Err(e)),
            Err(e) => Ok(Err(self.failed(e))),
        }
    }
}

impl HostConnection for HostState {
    fn open(
        &mut self,
        proto: Protocol,
        address: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Resource<Connection>, HostError>> {
        self.open_resource(proto, &address, timeout_ms, false)
    }

    fn open_plain(
        &mut self,
        proto: Protocol,
        address: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Resource<Connection>, HostError>> {
        self.open_resource(proto, &address, timeout_ms, true)
    }

    fn start_tls(
        &mut self,
        this: Resource<Connection>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<(), HostError>> {
        let deadline = self.socket_deadline(timeout_ms);
        let Some(tls) = self.ctx.tls.clone() else {
            let section = self.ctx.grants.section.clone();
            let e = HostError::Denied(format!(
                "TLS is not on for this plugin: set `tls = true` in [{section}]"
            ));
            return Ok(Err(self.failed(e)));
        };
        let (sock, host) = match self.table.get(&this)? {
            Connection::Plain { sock, host } => (sock.try_clone(), host.clone()),
            _ => {
                let e = HostError::Invalid(
                    "start-tls needs a plaintext TCP connection from open-plain".into(),
                );
                return Ok(Err(self.failed(e)));
            }
        };
        let sock = match sock {
            Ok(s) => s,
            Err(e) => return Ok(Err(self.failed(super::io_error("start-tls", e)))),
        };
        // The duplicate descriptor carries the session; the plaintext
        // variant (and its descriptor) is replaced whatever the outcome.
        let outcome = tls.handshake(sock, &host, deadline);
        let conn = self.table.get_mut(&this)?;
        match outcome {
            Ok(s) => {
                *conn = Connection::Tls(Box::new(s));
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(self.failed(e))),
        }
    }

    fn send(
        &mut self,
        this: Resource<Connection>,
        data: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        let deadline = self.socket_deadline(timeout_ms);
        self.write(&this, &data, deadline)
    }

    fn send_lines(
        &mut self,
        this: Resource<Connection>,
        lines: Resource<HeldBatch>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        let batch = match self.table.get(&lines)?.batch() {
            Ok(b) => b.clone(),
            Err(e) => return Ok(Err(self.failed(e))),
        };
        let deadline = self.socket_deadline(timeout_ms);
        if matches!(self.table.get(&this)?, Connection::Udp(_)) {
            // One datagram.
            let joined: String = batch.slices().iter().map(|s| s.lines()).collect();
            return self.write(&this, joined.as_bytes(), deadline);
        }
        // A stream: the slices one after the other, no copy, all of them
        // within the one call's timeout.
        let mut sent = 0;
        for s in batch.slices() {
            match self.write(&this, s.lines().as_bytes(), deadline)? {
                Ok(n) => sent += n,
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(sent))
    }

    fn receive(
        &mut self,
        this: Resource<Connection>,
        max_bytes: u32,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, HostError>> {
        // A timeout of 0 polls: read what is there now, without waiting.
        let deadline = (timeout_ms != 0).then(|| self.socket_deadline(timeout_ms));
        let conn = self.table.get_mut(&this)?;
        let mut buf = vec![0u8; max_bytes.min(MAX_RECEIVE) as usize];
        Ok(match conn.read_by(&mut buf, deadline) {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) => Err(self.failed(super::io_error("receive", e))),
        })
    }

    fn set_keepalive(
        &mut self,
        this: Resource<Connection>,
        interval_s: u32,
    ) -> wasmtime::Result<Result<(), HostError>> {
        let conn = self.table.get_mut(&this)?;
        Ok(match conn {
            Connection::Tcp(s) | Connection::Plain { sock: s, .. } => set_keepalive(s, interval_s)
                .map_err(|e| self.failed(super::io_error("keepalive", e))),
            Connection::Tls(s) => set_keepalive(&s.sock, interval_s)
                .map_err(|e| self.failed(super::io_error("keepalive", e))),
            _ => Ok(()),
        })
    }

    fn drop(&mut self, this: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        self.sockets_open = self.sockets_open.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_set_on_the_socket() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        set_keepalive(&s, 7).unwrap();
        let get = |level, name| {
            let mut v: i32 = 0;
            let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
            // SAFETY: valid fd and out-pointers.
            unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    level,
                    name,
                    (&mut v as *mut i32).cast(),
                    &mut len,
                )
            };
            v
        };
        assert_eq!(get(libc::SOL_SOCKET, libc::SO_KEEPALIVE), 1);
        assert_eq!(get(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE), 7);
    }
}

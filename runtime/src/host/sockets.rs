//! `wdiamond:plugin/sockets`: TCP, UDP and Unix connections to granted
//! peers, every operation with a timeout and every read capped.
//!
//! Names are resolved only when the name itself is granted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use wasmtime::component::Resource;

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
    ) -> Result<Connection, HostError> {
        if self.sockets_open >= MAX_CONNECTIONS {
            return Err(HostError::Invalid(format!(
                "more than {MAX_CONNECTIONS} open connections"
            )));
        }
        let t = self.within_deadline(timeout(timeout_ms).min(self.ctx.limits.socket_timeout));
        if proto == Protocol::Unix {
            if let Err(d) = self.ctx.grants.check_unix(Path::new(address)) {
                return Err(self.denied(d));
            }
            let s = UnixStream::connect(address).map_err(|e| super::io_error(address, e))?;
            s.set_read_timeout(Some(t)).ok();
            s.set_write_timeout(Some(t)).ok();
            return Ok(Connection::Unix(s));
        }
        let p = if proto == Protocol::Tcp { "tcp" } else { "udp" };
        let (host, port) = split_host_port(address)?;
        if let Err(d) = self.ctx.grants.check_connect_name(p, &host, port) {
            return Err(self.denied(d));
        }
        let addrs: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| HostError::NotFound(format!("{host}: {e}")))?
            .collect();
        let mut last = HostError::NotFound(format!("{host}: no addresses"));
        for addr in addrs {
            if let Err(d) = self.ctx.grants.check_connect_addr(p, &host, addr) {
                last = self.denied(d);
                continue;
            }
            let r = match proto {
                Protocol::Tcp => TcpStream::connect_timeout(&addr, t).map(|s| {
                    s.set_read_timeout(Some(t)).ok();
                    s.set_write_timeout(Some(t)).ok();
                    s.set_nodelay(true).ok();
                    Connection::Tcp(s)
                }),
                _ => {
                    let bind: SocketAddr = if addr.is_ipv4() {
                        "0.0.0.0:0".parse().unwrap()
                    } else {
                        "[::]:0".parse().unwrap()
                    };
                    UdpSocket::bind(bind).and_then(|s| {
                        s.connect(addr)?;
                        s.set_read_timeout(Some(t)).ok();
                        s.set_write_timeout(Some(t)).ok();
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

/// SO_KEEPALIVE with probes every `interval_s` seconds (at least 1).
pub fn set_keepalive(s: &TcpStream, interval_s: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let set = |level: i32, name: i32, v: i32| -> std::io::Result<()> {
        // SAFETY: fd is a live socket; the option value is a c_int.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&v as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    let secs = interval_s.clamp(1, 7200) as i32;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs)
}

impl HostState {
    /// Writes all of `data` (one datagram for UDP) within the timeout.
    fn write(
        &mut self,
        this: &Resource<Connection>,
        data: &[u8],
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        let t = Some(self.within_deadline(timeout(timeout_ms).min(self.ctx.limits.socket_timeout)));
        let conn = self.table.get_mut(this)?;
        let r = match conn {
            Connection::Tcp(s) => s.set_write_timeout(t).and_then(|_| s.write_all(data)),
            Connection::Unix(s) => s.set_write_timeout(t).and_then(|_| s.write_all(data)),
            Connection::Udp(s) => s
                .set_write_timeout(t)
                .and_then(|_| s.send(data).map(|_| ())),
        };
        Ok(match r {
            Ok(()) => Ok(data.len() as u64),
            Err(e) => Err(self.failed(super::io_error("send", e))),
        })
    }
}

impl Host for HostState {}

impl HostConnection for HostState {
    fn open(
        &mut self,
        proto: Protocol,
        address: String,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Resource<Connection>, HostError>> {
        match self.open_connection(proto, &address, timeout_ms) {
            Ok(c) => {
                self.sockets_open += 1;
                Ok(Ok(self.table.push(c)?))
            }
            Err(e @ HostError::Denied(_)) => Ok(Err(e)),
            Err(e) => Ok(Err(self.failed(e))),
        }
    }

    fn send(
        &mut self,
        this: Resource<Connection>,
        data: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<u64, HostError>> {
        self.write(&this, &data, timeout_ms)
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
        if matches!(self.table.get(&this)?, Connection::Udp(_)) {
            // One datagram.
            let joined: String = batch.slices().iter().map(|s| s.lines()).collect();
            return self.write(&this, joined.as_bytes(), timeout_ms);
        }
        // A stream: the slices one after the other, no copy.
        let mut sent = 0;
        for s in batch.slices() {
            match self.write(&this, s.lines().as_bytes(), timeout_ms)? {
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
        let t = Some(self.within_deadline(timeout(timeout_ms).min(self.ctx.limits.socket_timeout)));
        let conn = self.table.get_mut(&this)?;
        let mut buf = vec![0u8; max_bytes.min(MAX_RECEIVE) as usize];
        // A timeout of 0 polls: read what is there now, without waiting.
        let poll = timeout_ms == 0;
        let r = match conn {
            Connection::Tcp(s) => s
                .set_nonblocking(poll)
                .and_then(|_| s.set_read_timeout(t))
                .and_then(|_| s.read(&mut buf)),
            Connection::Unix(s) => s
                .set_nonblocking(poll)
                .and_then(|_| s.set_read_timeout(t))
                .and_then(|_| s.read(&mut buf)),
            Connection::Udp(s) => s
                .set_nonblocking(poll)
                .and_then(|_| s.set_read_timeout(t))
                .and_then(|_| s.recv(&mut buf)),
        };
        if poll {
            let _ = match conn {
                Connection::Tcp(s) => s.set_nonblocking(false),
                Connection::Unix(s) => s.set_nonblocking(false),
                Connection::Udp(s) => s.set_nonblocking(false),
            };
        }
        Ok(match r {
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
            Connection::Tcp(s) => set_keepalive(s, interval_s)
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

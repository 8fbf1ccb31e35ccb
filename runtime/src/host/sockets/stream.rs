//! A connection's bytes: connecting a Unix socket by a deadline,
//! keepalive, and the reads and writes every socket call makes (plain,
//! TLS, datagram), each bounded by its deadline.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::super::poll::wait_ready;
use super::Connection;

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

/// Connects a non-blocking Unix stream socket to `path` by `deadline` (a
/// listener with a full backlog makes `connect` fail with `EAGAIN`).
pub(super) fn connect_unix(path: &Path, deadline: Instant) -> std::io::Result<UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if bytes.len() >= addr.sun_path.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of the given length.
        let r = unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(stream);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(libc::EAGAIN) => return Err(std::io::ErrorKind::TimedOut.into()),
            _ => return Err(e),
        }
    }
}

impl Connection {
    pub(super) fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd;
        match self {
            Connection::Tcp(s) => s.as_raw_fd(),
            Connection::Udp(s) => s.as_raw_fd(),
            Connection::Unix(s) => s.as_raw_fd(),
            Connection::Tls(s) => s.sock.as_raw_fd(),
            Connection::Plain { sock, .. } => sock.as_raw_fd(),
        }
    }

    fn write_once(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Connection::Tcp(s) | Connection::Plain { sock: s, .. } => s.write(data),
            Connection::Unix(s) => s.write(data),
            Connection::Udp(s) => s.send(data),
            Connection::Tls(s) => s.write(data),
        }
    }

    fn read_once(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Connection::Tcp(s) | Connection::Plain { sock: s, .. } => s.read(buf),
            Connection::Unix(s) => s.read(buf),
            Connection::Udp(s) => s.recv(buf),
            // A peer that closes without TLS's close_notify (many HTTP
            // servers after `Connection: close`) has closed all the same.
            Connection::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }

    /// TLS records rustls still holds, written by `deadline`.
    fn flush_tls(&mut self, deadline: Instant) -> std::io::Result<()> {
        let Connection::Tls(s) = self else {
            return Ok(());
        };
        use std::os::fd::AsRawFd;
        while s.conn.wants_write() {
            match s.conn.write_tls(&mut s.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_ready(s.sock.as_raw_fd(), libc::POLLOUT, deadline)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `data` (one datagram for UDP) by `deadline`.
    pub(super) fn write_all_by(&mut self, data: &[u8], deadline: Instant) -> std::io::Result<()> {
        let datagram = matches!(self, Connection::Udp(_));
        let mut off = 0;
        while off < data.len() || (datagram && off == 0 && data.is_empty()) {
            match self.write_once(&data[off..]) {
                Ok(n) if datagram => {
                    return if n == data.len() {
                        Ok(())
                    } else {
                        Err(std::io::ErrorKind::WriteZero.into())
                    }
                }
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_ready(self.fd(), libc::POLLOUT, deadline)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if off < data.len() && Instant::now() >= deadline {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
        }
        self.flush_tls(deadline)
    }

    /// Reads what arrives first, waiting at most until `deadline` (not at
    /// all when `deadline` is `None`: a poll).
    pub(super) fn read_by(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> std::io::Result<usize> {
        loop {
            match self.read_once(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => match deadline {
                    Some(d) => wait_ready(self.fd(), libc::POLLIN, d)?,
                    None => return Err(e),
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

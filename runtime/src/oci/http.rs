//! The registry's HTTP, client side: one blocking HTTP/1.1 request per
//! connection, over TLS (the host's rustls settings, as for plugins) or,
//! only where allowed, plain TCP. Everything a registry controls is
//! bounded: the whole exchange ends at the operation's deadline (a stalled
//! registry is an error, not a hang), headers are at most 64 KiB, a body
//! is at most what its caller expects, redirects are at most 5 and never
//! go from HTTPS to plain HTTP.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

mod answer;

pub use answer::Response;
use answer::{read_response, Conn};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

/// How a registry is reached.
#[derive(Clone)]
pub struct Transport {
    /// TLS settings (CAs, client certificate).
    pub tls: Arc<ClientConfig>,
    /// Plain HTTP allowed to every host (the operator's `insecure`);
    /// loopback hosts are always allowed it.
    pub insecure: bool,
    /// When the whole operation must be over.
    pub deadline: Instant,
    /// The operation's time, for messages.
    pub timeout: Duration,
}

/// A request's parts.
pub struct Request<'a> {
    /// `GET`, `HEAD`, `PUT`, `POST`.
    pub method: &'a str,
    /// Where.
    pub url: url::Url,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none).
    pub body: &'a [u8],
    /// Largest body accepted in the answer, bytes.
    pub max_body: u64,
}

/// A TCP stream whose every read and write ends by the deadline.
struct Deadlined {
    tcp: TcpStream,
    deadline: Instant,
    timeout: Duration,
}

impl Deadlined {
    fn arm(&self) -> std::io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the registry did not finish answering within {:?}",
                    self.timeout
                ),
            ));
        }
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.set_write_timeout(Some(left))
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.tcp.read(buf).map_err(timed_out(self.timeout))
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.tcp.write(buf).map_err(timed_out(self.timeout))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

fn timed_out(timeout: Duration) -> impl Fn(std::io::Error) -> std::io::Error {
    move |e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the registry did not answer within {timeout:?} (it stalled)"),
        ),
        _ => e,
    }
}

impl Transport {
    fn left(&self) -> anyhow::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the registry did not answer within {:?}", self.timeout);
        }
        Ok(left)
    }

    fn connect(&self, url: &url::Url) -> anyhow::Result<Box<dyn Conn>> {
        if !matches!(url.scheme(), "https" | "http") {
            bail!(
                "{}: the scheme {} is neither https nor http",
                redacted(url),
                shown(url.scheme())
            );
        }
        let host = url
            .host_str()
            .ok_or_else(|| anyhow!("{} names no host", redacted(url)))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| anyhow!("{} names no port", redacted(url)))?;
        let plain = url.scheme() == "http";
        if plain && !self.insecure && !super::reference::is_loopback_host(&host) {
            bail!("{}: plain HTTP is allowed only to this machine's registries or with `insecure` for that registry", redacted(url));
        }
        // Name resolution may block in the C library: on a thread the
        // deadline can leave behind.
        let (tx, rx) = std::sync::mpsc::channel();
        let target = (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
        );
        std::thread::spawn(move || {
            let _ = tx.send(target.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
        });
        let addrs = rx
            .recv_timeout(self.left()?)
            .map_err(|_| anyhow!("resolving {host} took longer than {:?}", self.timeout))?
            .with_context(|| format!("resolving {host}"))?;
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.left()?) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(t), _) => t,
            (None, Some(e)) => return Err(anyhow!("connecting to {host}:{port}: {e}")),
            (None, None) => bail!("{host} resolves to no address"),
        };
        let _ = tcp.set_nodelay(true);
        let stream = Deadlined {
            tcp,
            deadline: self.deadline,
            timeout: self.timeout,
        };
        if plain {
            return Ok(Box::new(stream));
        }
        let name = ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|_| anyhow!("{host:?} is not a TLS server name"))?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), name)
            .map_err(|e| anyhow!("TLS with {host}: {e}"))?;
        Ok(Box::new(rustls::StreamOwned::new(conn, stream)))
    }

    /// Sends `req`, following redirects of GET and HEAD (an `Authorization`
    /// header only to the host it was meant for).
    pub fn send(&self, req: Request<'_>) -> anyhow::Result<Response> {
        let mut url = req.url.clone();
        let mut headers = req.headers.clone();
        let mut seen = 0;
        loop {
            let resp = self
                .exchange(req.method, &url, &headers, req.body, req.max_body)
                .with_context(|| format!("{} {}", req.method, redacted(&url)))?;
            let redirect = matches!(resp.status, 301 | 302 | 303 | 307 | 308)
                && matches!(req.method, "GET" | "HEAD");
            if !redirect {
                return Ok(resp);
            }
            seen += 1;
            if seen > MAX_REDIRECTS {
                bail!(
                    "{} {}: the registry redirected more than {MAX_REDIRECTS} times (a loop?)",
                    req.method,
                    redacted(&req.url)
                );
            }
            let location = resp
                .header("location")
                .ok_or_else(|| anyhow!("{}: a redirect without a Location", redacted(&url)))?;
            let next = url.join(location).with_context(|| {
                format!("{}: the redirect's Location is not a URL", redacted(&url))
            })?;
            if url.scheme() == "https" && next.scheme() != "https" {
                bail!(
                    "{}: the registry redirected from HTTPS to {}; refused",
                    redacted(&url),
                    redacted(&next)
                );
            }
            if next.host_str() != url.host_str()
                || next.port_or_known_default() != url.port_or_known_default()
            {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
            }
            url = next;
        }
    }

    fn exchange(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(String, String)],
        body: &[u8],
        max_body: u64,
    ) -> anyhow::Result<Response> {
        let mut conn = self.connect(url)?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wdiamond/{}\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes())?;
        conn.write_all(body)?;
        conn.flush()?;
        read_response(&mut conn, method == "HEAD", max_body, url.clone())
    }
}

/// `url` without its query (where a token or an upload's state may be),
/// as a registry may have written it: cut and escaped.
pub fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    let _ = u.set_password(None);
    shown(u.as_str())
}

/// Text a registry controls, for a message: at most 160 characters,
/// escaped.
pub fn shown(s: &str) -> String {
    let cut: String = s.chars().take(160).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{}{more}", crate::logging::guest_text(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_goes_only_to_loopback_unless_insecure() {
        let transport = |insecure| Transport {
            tls: crate::host::tls::TlsSettings::load(&Default::default())
                .unwrap()
                .client_config(),
            insecure,
            deadline: Instant::now() + Duration::from_millis(300),
            timeout: Duration::from_millis(300),
        };
        // TEST-NET-1: never reachable, so the insecure attempt fails at
        // the connect, past the check that refuses the other.
        let url = url::Url::parse("http://192.0.2.1:5000/v2/").unwrap();
        let refused = format!("{:#}", transport(false).connect(&url).err().unwrap());
        assert!(refused.contains("plain HTTP is allowed only"), "{refused}");
        let tried = format!("{:#}", transport(true).connect(&url).err().unwrap());
        assert!(!tried.contains("plain HTTP is allowed only"), "{tried}");
        let file = url::Url::parse("file:///etc/passwd").unwrap();
        let e = format!("{:#}", transport(true).connect(&file).err().unwrap());
        assert!(e.contains("neither https nor http"), "{e}");
    }
}

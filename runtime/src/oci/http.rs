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

/// Largest response head (status line and headers), bytes.
const MAX_HEAD: usize = 64 << 10;
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

/// A registry's answer.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: url::Url,
}

impl Response {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text for an error message: its start, escaped.
    pub fn body_excerpt(&self) -> String {
        let s = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
        crate::logging::guest_text(s.trim()).into_owned()
    }
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

trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

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

fn read_response(
    conn: &mut dyn Conn,
    head_only: bool,
    max_body: u64,
    url: url::Url,
) -> anyhow::Result<Response> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            bail!(
                "the answer's headers are larger than {} KiB",
                MAX_HEAD >> 10
            );
        }
        let n = conn.read(&mut chunk).or_else(eof_ok)?;
        if n == 0 {
            if buf.is_empty() {
                bail!("the registry closed the connection without answering");
            }
            bail!("the registry's answer ended inside its headers");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| anyhow!("the answer is not HTTP (its headers are not text)"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (proto, code) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !proto.starts_with("HTTP/1.") || code.len() != 3 {
        bail!(
            "the answer is not HTTP: {:?}",
            crate::logging::guest_text(&status_line.chars().take(80).collect::<String>())
        );
    }
    let status: u16 = code
        .parse()
        .map_err(|_| anyhow!("the answer's status {} is not a number", shown(code)))?;
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| anyhow!("the answer has a header line without `:`"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
        url,
    };
    let rest = buf[end + 4..].to_vec();
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(resp);
    }
    let too_big = |n: u64| {
        anyhow!("the answer's body ({n} bytes or more) is larger than the {max_body} bytes expected here")
    };
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let mut raw = BoundedReader { pre: rest, conn };
    if chunked {
        resp.body = read_chunked(&mut raw, max_body)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| anyhow!("the answer's Content-Length {} is not a number", shown(len)))?;
        if len > max_body {
            return Err(too_big(len));
        }
        let mut body = vec![0u8; len as usize];
        raw.read_exact(&mut body)
            .map_err(|e| anyhow!("reading the answer's {len} bytes: {e}"))?;
        resp.body = body;
    } else {
        let mut body = Vec::new();
        (&mut raw)
            .take(max_body + 1)
            .read_to_end(&mut body)
            .or_else(|e| eof_ok(e).map(|_| 0))?;
        if body.len() as u64 > max_body {
            return Err(too_big(body.len() as u64));
        }
        resp.body = body;
    }
    Ok(resp)
}

/// A TLS peer that closes without `close_notify` ends the body all the same.
fn eof_ok(e: std::io::Error) -> std::io::Result<usize> {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        Ok(0)
    } else {
        Err(e)
    }
}

struct BoundedReader<'a> {
    pre: Vec<u8>,
    conn: &'a mut dyn Conn,
}

impl Read for BoundedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.pre.is_empty() {
            let n = buf.len().min(self.pre.len());
            buf[..n].copy_from_slice(&self.pre[..n]);
            self.pre.drain(..n);
            return Ok(n);
        }
        self.conn.read(buf)
    }
}

fn read_line(r: &mut impl Read) -> anyhow::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if r.read(&mut b)? == 0 {
            bail!("the answer ended inside a chunk header");
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > 1024 {
            bail!("a chunk header longer than 1 KiB");
        }
    }
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

fn read_chunked(r: &mut impl Read, max_body: u64) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let n = u64::from_str_radix(size, 16)
            .map_err(|_| anyhow!("a chunk size {} is not hex", shown(size)))?;
        if n == 0 {
            return Ok(body);
        }
        if body.len() as u64 + n > max_body {
            bail!("the answer's body is larger than the {max_body} bytes expected here");
        }
        let start = body.len();
        body.resize(start + n as usize, 0);
        r.read_exact(&mut body[start..])?;
        read_line(r)?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], max: u64) -> anyhow::Result<Response> {
        let mut c = std::io::Cursor::new(raw.to_vec());
        struct W<'a>(&'a mut std::io::Cursor<Vec<u8>>);
        impl Read for W<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(b)
            }
        }
        impl Write for W<'_> {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        read_response(
            &mut W(&mut c),
            false,
            max,
            url::Url::parse("http://x/").unwrap(),
        )
    }

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

    #[test]
    fn answers_are_read_within_their_bounds() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\nabc",
            10,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("x-a")),
            (200, &b"abc"[..], Some("b"))
        );
        let c = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
            10,
        )
        .unwrap();
        assert_eq!(c.body, b"abc");
        let e = parse(b"HTTP/1.1 200 OK\r\n\r\nabcdef", 10).unwrap();
        assert_eq!(e.body, b"abcdef");
        for (raw, want) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"[..],
                "larger than",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n0123456789abc", "larger than"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n",
                "larger than",
            ),
            (b"\x00\x01garbage\r\n\r\n", "not HTTP"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
            (b"", "without answering"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "reading"),
        ] {
            let e = format!("{:#}", parse(raw, 10).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
        let huge = [b"HTTP/1.1 200 OK\r\n".to_vec(), vec![b'a'; 70_000]].concat();
        assert!(format!("{:#}", parse(&huge, 10).unwrap_err()).contains("headers are larger"));
    }
}

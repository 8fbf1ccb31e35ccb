//! A registry's answer, read off the connection within its bounds: the
//! head at most 64 KiB, the body at most what the caller expects (by
//! `Content-Length`, chunked, or to the end), text checked before it is
//! believed.

use std::io::{Read, Write};

use anyhow::{anyhow, bail};

use super::shown;

/// Largest response head (status line and headers), bytes.
const MAX_HEAD: usize = 64 << 10;

/// A connection an answer is read from (TLS or plain).
pub(super) trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

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

/// Reads one answer off `conn`; `head_only` for a `HEAD` request's.
pub(super) fn read_response(
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

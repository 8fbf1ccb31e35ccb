//! Small network clients over the host's granted sockets: a request /
//! response exchange, and HTTP/1.1 GET.

use crate::bindings::wdiamond::plugin::sockets::{Connection, Protocol};
use crate::host::describe_error;
use crate::hosts::HostSpec;

/// Most bytes one exchange reads.
pub const MAX_RESPONSE: usize = 4 << 20;

/// Sends `request` and reads until the peer closes, `done(response)` says
/// the response is complete, or [`MAX_RESPONSE`] is reached.
pub fn exchange(
    proto: Protocol,
    address: &str,
    request: &[u8],
    timeout_ms: u32,
    done: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, String> {
    let conn = Connection::open(proto, address, timeout_ms)
        .map_err(|e| format!("connecting to {address}: {}", describe_error(&e)))?;
    conn.send(request, timeout_ms)
        .map_err(|e| format!("sending to {address}: {}", describe_error(&e)))?;
    let mut response = Vec::new();
    loop {
        let chunk = conn
            .receive(65536, timeout_ms)
            .map_err(|e| format!("reading from {address}: {}", describe_error(&e)))?;
        if chunk.is_empty() {
            break;
        }
        response.extend_from_slice(&chunk);
        if done(&response) {
            break;
        }
        if response.len() > MAX_RESPONSE {
            return Err(format!(
                "{address}: response larger than {MAX_RESPONSE} bytes"
            ));
        }
    }
    Ok(response)
}

/// [`exchange`] with one of Diamond's `hosts` entries: TCP to its
/// `host:port`, or its Unix socket.
pub fn exchange_host(
    spec: &HostSpec,
    request: &[u8],
    timeout_ms: u32,
    done: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, String> {
    let proto = if spec.unix {
        Protocol::Unix
    } else {
        Protocol::Tcp
    };
    exchange(proto, &spec.address, request, timeout_ms, done)
}

/// [`exchange_host`] with every entry of Diamond's `hosts`, each reply
/// handed to `answer`: an entry that does not answer, or whose reply
/// `answer` refuses, is logged and passed over; `Err` when none of them
/// gave a reply `answer` took ("no {what} server answered").
pub fn each_host(
    servers: &[HostSpec],
    request: &[u8],
    timeout_ms: u32,
    done: impl Fn(&[u8]) -> bool,
    what: &str,
    mut answer: impl FnMut(&HostSpec, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut failed = 0;
    for s in servers {
        let taken = exchange_host(s, request, timeout_ms, &done)
            .map_err(|e| format!("Failed to get stats from {}: {e}", s.address))
            .and_then(|reply| answer(s, &reply));
        if let Err(e) = taken {
            crate::host::warn(&e);
            failed += 1;
        }
    }
    if failed > 0 && failed == servers.len() {
        return Err(format!("no {what} server answered"));
    }
    Ok(())
}

/// A connection to a line-oriented receiver that never answers (carbon's
/// plaintext and pickle ports, statsd over TCP), delivering at least once.
///
/// Such protocols have no acknowledgements: a write to a connection the
/// peer has just closed can succeed and still be lost. So the sender keeps
/// the last payload until the connection proves alive at the next send (a
/// readable connection means the peer closed it); if it was closed, the last
/// payload is sent again on a new connection. Receivers such as carbon store
/// one value per series and timestamp, so a repeat is harmless. A payload
/// sent with [`LineSender::send_batch`] is kept as its batch handle (the
/// lines stay in the host), one sent with [`LineSender::send`] as bytes.
///
/// A receiver that crashes loses what it had read but not yet written,
/// though the connection was alive when the next payload went out (so
/// those payloads counted as confirmed). With a replay window
/// ([`LineSender::with_replay`]) the payloads confirmed in its last seconds
/// are kept too, and sent again first on the connection that follows a
/// failure (a closed peer, a failed send): a crash costs nothing of what
/// was sent within the window. Bounded: [`MAX_REPLAY`] payloads and
/// [`MAX_REPLAY_BYTES`] of byte payloads; a batch whose lines the host no
/// longer keeps is skipped.
pub struct LineSender {
    address: String,
    proto: Protocol,
    timeout_ms: u32,
    conn: Option<Connection>,
    unconfirmed: Option<Payload>,
    keepalive: Option<u32>,
    replay_secs: f64,
    /// Payloads confirmed within the replay window: (sent at, payload).
    recent: std::collections::VecDeque<(f64, Payload)>,
    /// Bytes of the payloads in `recent`.
    recent_bytes: usize,
    /// The last connection failed: the next one replays `recent` first.
    broken: bool,
}

/// The `replay` option of a handler that sends over a [`LineSender`]
/// (default 10 s).
#[cfg(feature = "handler")]
pub fn replay_option() -> crate::ConfigOption {
    crate::option(
        "replay",
        crate::ConfigValue::Integer(10),
        "Seconds of what was sent that go again on the connection after a failure (a receiver that crashed loses what it had read but not written; carbon keeps one value per series and second, so a repeat is harmless); 0: off",
    )
}

/// Reads `replay` (0 to 300 seconds).
#[cfg(feature = "handler")]
pub fn replay_secs(config: &crate::Config) -> Result<f64, String> {
    let r = config.f64("replay")?;
    if !(0.0..=300.0).contains(&r) {
        return Err(format!(
            "`replay` must be between 0 and 300 seconds, not {r}"
        ));
    }
    Ok(r)
}

/// Most payloads kept for a replay.
pub const MAX_REPLAY: usize = 64;
/// Most bytes of byte payloads kept for a replay.
pub const MAX_REPLAY_BYTES: usize = 16 << 20;

/// What a send carries.
#[derive(Clone)]
enum Payload {
    Bytes(Vec<u8>),
    #[cfg(feature = "handler")]
    Lines(std::rc::Rc<crate::HostBatch>),
}

impl Payload {
    /// Bytes it holds in the guest (a batch's lines stay in the host).
    fn bytes(&self) -> usize {
        match self {
            Payload::Bytes(b) => b.len(),
            #[cfg(feature = "handler")]
            Payload::Lines(_) => 0,
        }
    }

    fn send(&self, conn: &Connection, timeout_ms: u32) -> Result<u64, crate::HostError> {
        match self {
            Payload::Bytes(b) => conn.send(b, timeout_ms),
            #[cfg(feature = "handler")]
            Payload::Lines(h) => conn.send_lines(h, timeout_ms),
        }
    }
}

impl LineSender {
    /// A sender to `address` (`host:port`).
    pub fn new(proto: Protocol, address: String, timeout_ms: u32) -> Self {
        LineSender {
            address,
            proto,
            timeout_ms,
            conn: None,
            unconfirmed: None,
            keepalive: None,
            replay_secs: 0.0,
            recent: std::collections::VecDeque::new(),
            recent_bytes: 0,
            broken: false,
        }
    }

    /// Keeps what was confirmed in the last `secs` seconds and sends it
    /// again on the connection that follows a failure (0: off).
    pub fn with_replay(mut self, secs: f64) -> Self {
        self.replay_secs = secs.max(0.0);
        self
    }

    /// Keeps a confirmed payload for a replay, within the bounds.
    fn remember(&mut self, p: Payload) {
        if self.replay_secs <= 0.0 {
            return;
        }
        let now = crate::bindings::wdiamond::plugin::host_info::now();
        self.recent_bytes += p.bytes();
        self.recent.push_back((now, p));
        while let Some((t, p)) = self.recent.front() {
            let stale = now - t > self.replay_secs;
            let over = self.recent.len() > MAX_REPLAY || self.recent_bytes > MAX_REPLAY_BYTES;
            if !(stale || over) {
                break;
            }
            self.recent_bytes -= p.bytes();
            self.recent.pop_front();
        }
    }

    /// Turns TCP keepalive on for every connection, probing every
    /// `interval_s` seconds.
    pub fn with_keepalive(mut self, interval_s: Option<u32>) -> Self {
        self.keepalive = interval_s;
        self
    }

    /// The address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn peer_closed(conn: &Connection) -> bool {
        !matches!(conn.receive(64, 0), Err(crate::HostError::TimedOut))
    }

    /// Sends `data` (an empty `data` only re-checks the last payload). An
    /// error leaves `data` undelivered: the caller (the host) retries it.
    pub fn send(&mut self, data: &[u8]) -> Result<(), String> {
        let payload = (!data.is_empty()).then(|| Payload::Bytes(data.to_vec()));
        self.deliver(payload)
    }

    /// Sends a batch's graphite lines: the host writes them to the
    /// connection from its own memory (a batch built in the guest is sent
    /// as bytes). An error leaves the batch undelivered, as [`Self::send`].
    #[cfg(feature = "handler")]
    pub fn send_batch(&mut self, batch: &crate::Batch) -> Result<(), String> {
        if batch.is_empty() {
            return self.deliver(None);
        }
        let payload = match batch.host_handle() {
            Some(h) => Payload::Lines(h.clone()),
            None => Payload::Bytes(batch.lines().to_vec()),
        };
        self.deliver(Some(payload))
    }

    fn deliver(&mut self, payload: Option<Payload>) -> Result<(), String> {
        let stream = self.proto != Protocol::Udp;
        if let Some(c) = &self.conn {
            if stream && Self::peer_closed(c) {
                // The previous payload may not have arrived: resent below.
                self.conn = None;
                self.broken = true;
            } else if payload.is_none() {
                // A check (a flush) on a live connection: the last payload
                // stays unconfirmed until a later send finds the peer still
                // there — a flush right after a send proves nothing, and at
                // a stop a dead peer's payload must still be resent (or
                // left to the host to spool).
                return Ok(());
            } else if let Some(p) = self.unconfirmed.take() {
                self.remember(p);
            }
        }
        if payload.is_none() && self.unconfirmed.is_none() {
            return Ok(());
        }
        if self.conn.is_none() {
            let c = Connection::open(self.proto, &self.address, self.timeout_ms)
                .map_err(|e| format!("connecting to {}: {}", self.address, describe_error(&e)))?;
            if let Some(secs) = self.keepalive {
                c.set_keepalive(secs).map_err(|e| {
                    format!("keepalive on {}: {}", self.address, describe_error(&e))
                })?;
            }
            self.conn = Some(c);
        }
        let conn = self.conn.as_ref().expect("connected above");
        // After a failure, what the window holds first (the receiver may
        // have lost it); a batch the host no longer keeps is skipped.
        let replay = if self.broken && !self.recent.is_empty() {
            let now = crate::bindings::wdiamond::plugin::host_info::now();
            self.recent
                .iter()
                .filter(|(t, _)| now - t <= self.replay_secs)
                .try_for_each(|(_, p)| match p.send(conn, self.timeout_ms) {
                    Ok(_) | Err(crate::HostError::Invalid(_)) => Ok(()),
                    Err(e) => Err(e),
                })
        } else {
            Ok(())
        };
        // The unconfirmed payload next (again), then the new one.
        let sent = replay.and_then(|()| {
            self.unconfirmed
                .iter()
                .chain(&payload)
                .try_for_each(|p| p.send(conn, self.timeout_ms).map(|_| ()))
        });
        if let Err(e) = sent {
            // The old payloads stay kept; the new one is the host's to retry.
            self.conn = None;
            self.broken = true;
            return Err(format!(
                "sending to {}: {}",
                self.address,
                describe_error(&e)
            ));
        }
        self.broken = false;
        // Both went out: only the newest needs confirming (the old one was
        // sent again on this connection before it).
        self.unconfirmed = if stream {
            match (payload, self.unconfirmed.take()) {
                // The old one is confirmed by the new one behind it only
                // when the connection proves alive later: until then both
                // stay in the window.
                (Some(p), Some(old)) => {
                    self.remember(old);
                    Some(p)
                }
                (p, old) => p.or(old),
            }
        } else {
            None
        };
        Ok(())
    }
}

/// `host:port`, with brackets around IPv6 literals.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An `http://` or `https://` URL, split for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    /// `host:port`.
    pub address: String,
    /// The host, for the Host header.
    pub host: String,
    /// The path (with query).
    pub path: String,
}

/// Parses an `http://` URL, or an `https://` one when the host does TLS on
/// this handler's connections (`tls`: its section sets `tls = true`).
pub fn parse_url(url: &str, tls: bool) -> Result<Url, String> {
    let (rest, default_port) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) if !tls => (rest, 80),
        (Some(_), _) => {
            return Err(format!(
                "{url:?} is http://, but this section sets `tls = true`: use https://"
            ))
        }
        (_, Some(rest)) if tls => (rest, 443),
        (_, Some(_)) => {
            return Err(format!(
                "{url:?} is https://: add `tls = true` to this section (and `tls_ca` if its CA is your own)"
            ))
        }
        _ => return Err(format!("{url:?}: only http:// and https:// URLs are supported")),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.to_string(),
            p.parse::<u16>().map_err(|_| format!("{url:?}: bad port"))?,
        ),
        _ => (hostport.to_string(), default_port),
    };
    if host.is_empty() || path.contains(char::is_whitespace) {
        return Err(format!("{url:?}: bad URL"));
    }
    Ok(Url {
        address: format!("{host}:{port}"),
        host,
        path: path.to_string(),
    })
}

/// The URL in option `key`: `https://` when the host does TLS on this
/// plugin's connections (its section sets `tls = true`, which the plugin
/// sees as the `tls` key), else `http://`.
pub fn url_option(config: &crate::Config, key: &str) -> Result<Url, String> {
    let tls = matches!(config.get("tls"), Some(crate::ConfigValue::Boolean(true)));
    parse_url(&config.text(key)?, tls).map_err(|e| format!("`{key}`: {e}"))
}

impl Url {
    /// `POST` of `body` with these headers to this URL; the response.
    pub fn post(
        &self,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<HttpResponse, String> {
        http_post_with(
            &self.address,
            &self.host,
            &self.path,
            headers,
            body,
            timeout_ms,
        )
    }
}

/// `POST path` over HTTP/1.1 with `body`; the response.
pub fn http_post(
    address: &str,
    host: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    timeout_ms: u32,
) -> Result<HttpResponse, String> {
    http_post_with(
        address,
        host,
        path,
        &[("Content-Type", content_type)],
        body,
        timeout_ms,
    )
}

/// `POST path` over HTTP/1.1 with `body` and these headers (besides Host,
/// User-Agent, Content-Length and `Connection: close`); the response.
pub fn http_post_with(
    address: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u32,
) -> Result<HttpResponse, String> {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wdiamond\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let raw = exchange(Protocol::Tcp, address, &request, timeout_ms, |_| false)?;
    parse_http(&raw)
}

impl HttpResponse {
    /// `Ok` for a 2xx status; otherwise an error naming `what`, the status
    /// and the start of the body (for the log).
    pub fn success(&self, what: &str) -> Result<(), String> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        let body: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(200)
            .collect();
        Err(format!("{what} answered {}: {}", self.status, body.trim()))
    }
}

#[cfg(feature = "handler")]
impl HttpResponse {
    /// A handler's verdict on a POST of `batch`: `Ok` for a 2xx. `Err`
    /// (the host keeps the batch and retries) for a 5xx, and for a 4xx the
    /// operator fixes ([`fixable`]: a wrong path or URL — a Prometheus
    /// without `--web.enable-remote-write-receiver` answers 404 —,
    /// credentials, a rate limit), with what to check. For another 4xx the
    /// receiver refuses these metrics for good, so a retry would block the
    /// queue for ever: the batch is refused ([`crate::Batch::refuse`]:
    /// counted as dropped by the host, with the receiver's reason) and
    /// `Ok` releases it.
    pub fn delivered(&self, what: &str, batch: &crate::Batch) -> Result<(), String> {
        match self.status {
            200..=299 => Ok(()),
            s if fixable(s) => {
                let reason = self.success(what).err().unwrap_or_default();
                Err(format!(
                    "{reason} — {}; the metrics are kept and retried",
                    fix_hint(s)
                ))
            }
            400..=499 => {
                let reason = self.success(what).err().unwrap_or_default();
                batch.refuse(&format!(
                    "{reason}; {} metrics dropped (the receiver refuses them; retrying would not help)",
                    batch.len()
                ));
                Ok(())
            }
            _ => self.success(what),
        }
    }
}

/// The 4xx statuses that say the request, not the metrics, is wrong: the
/// operator can fix them (the URL, credentials, the receiver's setup), so
/// the batch is kept and retried.
pub fn fixable(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 405 | 407 | 408 | 421 | 426 | 429)
}

#[cfg(feature = "handler")]
fn fix_hint(status: u16) -> &'static str {
    match status {
        404 | 405 => "the receiver has no such endpoint: check `url` (a Prometheus receives remote-write only with --web.enable-remote-write-receiver; an InfluxDB answers 404 for a database that does not exist)",
        401 | 403 | 407 => "the receiver refuses the credentials: check the handler's authentication keys",
        408 | 429 => "the receiver is busy",
        _ => "the receiver refuses the request as sent: check `url`",
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, lower-cased, without parameters.
    pub content_type: String,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

/// `GET path` over HTTP/1.1 (`Connection: close`) to `address`, with `Host: host`.
pub fn http_get(
    address: &str,
    host: &str,
    path: &str,
    timeout_ms: u32,
) -> Result<HttpResponse, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wdiamond\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    let raw = exchange(
        Protocol::Tcp,
        address,
        request.as_bytes(),
        timeout_ms,
        |_| false,
    )?;
    parse_http(&raw)
}

/// Parses a complete HTTP/1.x response.
pub fn parse_http(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete HTTP response: no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| {
            format!(
                "not an HTTP response: {:?}",
                status_line.chars().take(80).collect::<String>()
            )
        })?;
    let mut content_type = String::new();
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => {
                content_type = v
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            }
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "content-length" => length = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(n) = length {
        body.truncate(n);
    }
    Ok(HttpResponse {
        status,
        content_type,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunked body")?;
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|_| "bad chunk size")?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "handler")]
    #[test]
    fn http_verdicts_keep_refuse_or_release_a_batch() {
        let resp = |status| HttpResponse {
            status,
            content_type: String::new(),
            body: b"why".to_vec(),
        };
        let batch = || -> crate::Batch {
            [crate::PublishedMetric {
                path: "a.b",
                value: 1.0,
                precision: 0,
                kind: crate::MetricKind::Gauge,
                timestamp: 7,
                raw_value: None,
                host: "h",
                collector: "c",
                tenant: None,
                ttl: 20,
            }]
            .into_iter()
            .collect()
        };
        let ok = batch();
        assert!(resp(204).delivered("POST /w", &ok).is_ok());
        assert!(!ok.refused());
        // A missing endpoint is the operator's to fix: kept and retried.
        let missing = batch();
        let e = resp(404).delivered("POST /w", &missing).unwrap_err();
        assert!(
            e.contains("--web.enable-remote-write-receiver") && e.contains("retried"),
            "{e}"
        );
        assert!(!missing.refused());
        for s in [401, 403, 405, 408, 429, 500, 503] {
            let b = batch();
            assert!(resp(s).delivered("POST /w", &b).is_err(), "{s}");
            assert!(!b.refused(), "{s}");
        }
        // Metrics the receiver refuses: released, and refused (dropped).
        for s in [400, 413, 422] {
            let b = batch();
            assert!(resp(s).delivered("POST /w", &b).is_ok(), "{s}");
            assert!(b.refused(), "{s}");
        }
    }

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/m?x=1", false).unwrap();
        assert_eq!(
            (u.address.as_str(), u.path.as_str()),
            ("127.0.0.1:8080", "/m?x=1")
        );
        assert_eq!(
            parse_url("http://example.com", false).unwrap().address,
            "example.com:80"
        );
        assert!(parse_url("https://x/", false).is_err());
        assert_eq!(parse_url("https://x/m", true).unwrap().address, "x:443");
        assert!(parse_url("http://x/", true).is_err());
    }

    #[test]
    fn parses_plain_and_chunked_responses() {
        let r = parse_http(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        )
        .unwrap();
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_slice()),
            (200, "text/plain", &b"hello"[..])
        );
        let r = parse_http(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_http(b"garbage").is_err());
        assert!(parse_http(b"SSH-2.0\r\n\r\n").is_err());
    }
}

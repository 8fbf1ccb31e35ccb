//! Serving an exporter's page: the host binds the operator's `listen`
//! address, reads each HTTP request under its own bounds, and hands a
//! `GET` of `listen_path` to the handler's task, which calls the plugin's
//! `render` in its turn. The plugin never sees a socket; what it returns is
//! checked ([`check_page`]) before a client sees it.
//!
//! Bounds, whoever the client is: [`MAX_REQUEST`] bytes of request head,
//! read within [`READ_TIMEOUT`]; [`MAX_CONNECTIONS`] at once; [`MAX_WAITING`]
//! scrapes queued for the handler (more are answered 503 at once); a
//! response written within [`WRITE_TIMEOUT`], and at most [`MAX_IN_FLIGHT`]
//! bytes of pages being written at once. `Connection: close` on every
//! response.
//!
//! Slow clients cannot starve a fast one: while [`MAX_CONNECTIONS`] are
//! open, a new one closes the *oldest* that is not waiting for the plugin's
//! render and has had its first read (a head still trickling in, an idle
//! connection, a response read slowly). Every connection gets that first
//! read, for up to [`FIRST_READ_GRACE`]: when every place is that young,
//! new connections wait in the kernel's backlog, in order, until one may be
//! closed. A scraper sends its head with its connect, so its first read
//! finds it and it is served; a slowloris only pushes out its own
//! connections ([`Connections`]), however fast it reconnects.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

mod connections;

use crate::bindings::exposition::{Page, Scrape};
use crate::config::Listen;
use connections::{Connections, Phase, Registered, Slot};

/// Most bytes of a request head (request line and headers).
pub const MAX_REQUEST: usize = 8 << 10;
/// Longest wait for a request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a response takes to write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
pub use connections::{FIRST_READ_GRACE, MAX_CONNECTIONS};
/// Scrapes waiting for the handler's turn.
pub const MAX_WAITING: usize = 4;
/// Largest page a plugin may return.
pub const MAX_PAGE: usize = 64 << 20;
/// Most bytes of pages being written to clients at once (a hostile page
/// of 64 MiB read slowly by many clients would otherwise hold a copy each).
pub const MAX_IN_FLIGHT: usize = 128 << 20;
/// Longest `Content-Type` a plugin may set.
pub const MAX_CONTENT_TYPE: usize = 256;
/// Longest query string or `Accept` header handed to the plugin.
const MAX_FIELD: usize = 1 << 10;
/// Longest error text of a plugin sent to the client.
const MAX_ERROR_BODY: usize = 1 << 10;

/// A scrape waiting for the handler: the request and where the answer goes.
pub(super) struct ScrapeRequest {
    /// What the client asked.
    pub scrape: Scrape,
    /// The answer.
    pub reply: oneshot::Sender<Reply>,
}

/// The handler's answer to a scrape.
pub(super) enum Reply {
    /// The page, checked.
    Page(Page),
    /// An HTTP status and a plain-text body.
    Error(u16, String),
}

/// A request head, parsed.
#[derive(Debug, PartialEq)]
pub(super) struct Request {
    method: String,
    path: String,
    query: String,
    accept: String,
    gzip: bool,
}

/// Parses a request head (up to the blank line). `None`: not HTTP/1.x.
pub(super) fn parse_request(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if first.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: cut(query, MAX_FIELD),
        accept: String::new(),
        gzip: false,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("accept") {
            req.accept = cut(value, MAX_FIELD);
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            req.gzip = value.split(',').any(|e| {
                let mut parts = e.split(';').map(str::trim);
                let coding = parts.next().unwrap_or_default();
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q == 0.0)
                });
                coding.eq_ignore_ascii_case("gzip") && !refused
            });
        }
    }
    Some(req)
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Why a page a plugin rendered is not served.
pub(super) fn check_page(page: &Page) -> Result<(), String> {
    let ct = &page.content_type;
    if ct.is_empty()
        || ct.len() > MAX_CONTENT_TYPE
        || !ct.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        return Err(format!(
            "its Content-Type is not printable ASCII of 1-{MAX_CONTENT_TYPE} bytes ({} bytes: {})",
            ct.len(),
            crate::logging::guest_text(&ct.chars().take(64).collect::<String>())
        ));
    }
    if page.body.len() > MAX_PAGE {
        return Err(format!(
            "its page is {} bytes, more than the {} MiB served",
            page.body.len(),
            MAX_PAGE >> 20
        ));
    }
    Ok(())
}

/// A plugin's error text as a response body: bounded, one paragraph.
pub(super) fn error_body(msg: &str) -> String {
    crate::logging::guest_text(&cut(msg, MAX_ERROR_BODY)).into_owned()
}

fn response(status: u16, content_type: &str, gzip: bool, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = Vec::with_capacity(body.len() + 160);
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}{}Connection: close\r\n\r\n",
        body.len(),
        if gzip { "Content-Encoding: gzip\r\n" } else { "" },
        if status == 405 { "Allow: GET\r\n" } else { "" },
    );
    out.extend_from_slice(body);
    out
}

fn plain(status: u16, text: &str) -> Vec<u8> {
    response(
        status,
        "text/plain; charset=utf-8",
        false,
        format!("{text}\n").as_bytes(),
    )
}

fn gzipped(body: &[u8]) -> Option<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    e.write_all(body).ok()?;
    e.finish().ok()
}

/// Serves `listen` until `stop` turns true, handing scrapes to `scrapes`.
/// An address in use (an old handler still draining after a reload, or
/// another program) is retried every few seconds, never fatal.
pub(super) async fn serve(
    listen: Listen,
    section: String,
    scrapes: mpsc::Sender<ScrapeRequest>,
    wait: Duration,
    stop: watch::Receiver<bool>,
) {
    let paths = vec![listen.path.clone()];
    serve_paths(listen, paths, section, scrapes, wait, stop).await
}

/// [`serve`] for several paths (the agent's status endpoint): a `GET` of
/// any of `paths` goes to `scrapes`, with the path asked for.
pub(super) async fn serve_paths(
    listen: Listen,
    paths: Vec<String>,
    section: String,
    scrapes: mpsc::Sender<ScrapeRequest>,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tries = 0u32;
    let listener = loop {
        match TcpListener::bind(listen.address).await {
            Ok(l) => break l,
            Err(e) => {
                tries += 1;
                // The first failures are quiet: a reload's old handler may
                // still hold the address for a moment.
                if tries == 3 || tries.is_multiple_of(60) {
                    tracing::error!(address = %listen.address, error = %e, "cannot serve the page on {} ([{section}] listen, {}:{}): retrying every 2 s", listen.address, listen.location.file.display(), listen.location.line);
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(if tries < 3 { 200 } else { 2000 })) => continue,
                    _ = stop.changed() => return,
                }
            }
        }
    };
    tracing::info!(address = %listen.address, path = %paths.join(" "), "serving the page");
    let connections = Arc::new(Connections::default());
    let in_flight = Arc::new(AtomicUsize::new(0));
    let path = Arc::new(paths);
    let mut warned: Option<std::time::Instant> = None;
    let mut evicted_since: (usize, Option<std::time::Instant>) = (0, None);
    let mut next_id = 0u64;
    loop {
        // Room first: while every place is new or rendering, connections
        // wait in the kernel's backlog.
        let evicted = loop {
            if let Some(evicted) = connections.make_room() {
                break evicted;
            }
            tokio::select! {
                _ = connections.changed() => {}
                _ = stop.changed() => return,
            }
        };
        if evicted > 0 {
            evicted_since.0 += evicted;
            // Many slow clients: said once a minute at most.
            if evicted_since
                .1
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                tracing::warn!(address = %listen.address, closed = evicted_since.0, "more than {MAX_CONNECTIONS} connections open at once: the oldest idle or slow ones were closed to serve new ones");
                evicted_since = (0, Some(std::time::Instant::now()));
            }
        }
        let (conn, _) = tokio::select! {
            c = listener.accept() => match c {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors, say: logged once a minute at most.
                    if warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(error = %e, "cannot accept a scrape's connection; retrying");
                        warned = Some(std::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        next_id += 1;
        let id = next_id;
        let slot = connections.admit(id);
        let (path, scrapes, in_flight) = (path.clone(), scrapes.clone(), in_flight.clone());
        let registry = connections.clone();
        let task = tokio::spawn(async move {
            let _registered = Registered(&registry, id);
            let _ = tokio::time::timeout(
                READ_TIMEOUT + wait + WRITE_TIMEOUT,
                answer(conn, &path, &scrapes, wait, &in_flight, &slot),
            )
            .await;
        });
        connections.started(id, task.abort_handle());
    }
}

/// Reads a request head: `Err(status)` when it is too long or too slow.
/// The connection turns [`Phase::Open`] (closable) once its first read
/// found only part of a head, or found nothing within [`FIRST_READ_GRACE`].
async fn read_head(conn: &mut TcpStream, slot: &Slot) -> Result<Vec<u8>, u16> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        let mut first = true;
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                head.truncate(end + 2);
                return Ok(());
            }
            if head.len() >= MAX_REQUEST {
                return Err(431);
            }
            if std::mem::take(&mut first) {
                match tokio::time::timeout(FIRST_READ_GRACE, conn.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return Err(0),
                    Ok(Ok(n)) => {
                        head.extend_from_slice(&buf[..n]);
                        if !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            slot.set(Phase::Open);
                        }
                        continue;
                    }
                    Err(_) => slot.set(Phase::Open),
                }
            }
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return Err(0),
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(())) => Ok(head),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(0),
    }
}

/// Bytes of a response being written, counted in the shared budget while
/// the guard lives.
struct InFlight<'a>(&'a AtomicUsize, usize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

async fn answer(
    mut conn: TcpStream,
    paths: &[String],
    scrapes: &mpsc::Sender<ScrapeRequest>,
    wait: Duration,
    in_flight: &AtomicUsize,
    slot: &Slot,
) {
    let mut out = match read_head(&mut conn, slot).await {
        Err(0) => return,
        Err(status) => plain(status, "the request head is too large"),
        Ok(head) => match parse_request(&head) {
            None => plain(400, "not an HTTP/1.x request"),
            Some(r) if !paths.contains(&r.path) => plain(
                404,
                &format!("not found: the page is at {}", paths.join(", ")),
            ),
            Some(r) if r.method != "GET" => plain(405, "only GET"),
            Some(r) => {
                let (tx, rx) = oneshot::channel();
                let scrape = Scrape {
                    path: r.path,
                    query: r.query,
                    accept: r.accept,
                };
                if scrapes
                    .try_send(ScrapeRequest { scrape, reply: tx })
                    .is_err()
                {
                    plain(503, "the handler is busy with other scrapes; try again")
                } else {
                    slot.set(Phase::Rendering);
                    let reply = tokio::time::timeout(wait, rx).await;
                    match reply {
                        Ok(Ok(Reply::Page(page))) if r.gzip && page.body.len() > 256 => {
                            // Compressing is CPU work: off the async threads.
                            let ct = page.content_type;
                            let body = page.body;
                            match tokio::task::spawn_blocking(move || (gzipped(&body), body)).await
                            {
                                Ok((Some(z), _)) => response(200, &ct, true, &z),
                                Ok((None, body)) => response(200, &ct, false, &body),
                                Err(_) => plain(500, "compressing the page failed"),
                            }
                        }
                        Ok(Ok(Reply::Page(page))) => {
                            response(200, &page.content_type, false, &page.body)
                        }
                        Ok(Ok(Reply::Error(status, text))) => plain(status, &text),
                        Ok(Err(_)) => plain(503, "the handler stopped before rendering the page"),
                        Err(_) => plain(503, "the handler did not render the page in time"),
                    }
                }
            }
        },
    };
    // Waiting for nothing but the client from here: closable.
    slot.set(Phase::Open);
    let held = out.len();
    if in_flight.fetch_add(held, Ordering::Relaxed) + held > MAX_IN_FLIGHT && held > 1 << 20 {
        out = plain(503, "too many large pages being sent at once; try again");
    }
    let _budget = InFlight(in_flight, held);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        conn.write_all(&out).await?;
        conn.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_gzip_is_negotiated() {
        let r = parse_request(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain;version=0.0.4\r\nAccept-Encoding: deflate, gzip\r\n").unwrap();
        assert_eq!(
            r,
            Request {
                method: "GET".into(),
                path: "/metrics".into(),
                query: "x=1".into(),
                accept: "text/plain;version=0.0.4".into(),
                gzip: true
            }
        );
        let r = parse_request(b"GET /metrics HTTP/1.0\r\naccept-encoding: gzip;q=0, identity\r\n")
            .unwrap();
        assert!(!r.gzip);
        assert!(parse_request(b"GET /metrics\r\n").is_none());
        assert!(parse_request(b"GET /m HTTP/2\r\n").is_none());
        assert!(parse_request(b"GET /m HTTP/1.1\r\nno colon\r\n").is_none());
        assert!(parse_request(b"\xff\xfe HTTP/1.1\r\n").is_none());
        let long = format!("GET /m?{} HTTP/1.1\r\n", "q".repeat(5000));
        assert_eq!(
            parse_request(long.as_bytes()).unwrap().query.len(),
            MAX_FIELD
        );
    }

    #[test]
    fn pages_are_checked() {
        let page = |ct: &str, n: usize| Page {
            content_type: ct.into(),
            body: vec![b'x'; n],
        };
        assert!(check_page(&page("text/plain; version=0.0.4", 10)).is_ok());
        assert!(check_page(&page("text/plain\r\nSet-Cookie: a=b", 1)).is_err());
        assert!(check_page(&page("", 1)).is_err());
        assert!(check_page(&page(&"a".repeat(MAX_CONTENT_TYPE + 1), 1)).is_err());
        assert!(check_page(&page("text/plain", MAX_PAGE + 1)).is_err());
        assert!(error_body(&"é".repeat(4000)).len() <= MAX_ERROR_BODY);
    }

    #[test]
    fn gzip_round_trips() {
        let body = b"a 1\n".repeat(1000);
        let z = gzipped(&body).unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut back).unwrap();
        assert_eq!(back, body);
        assert!(z.len() < body.len() / 10);
    }
}

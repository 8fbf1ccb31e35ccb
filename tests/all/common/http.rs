//! A minimal HTTP receiver, for the handlers that post (httppost, the
//! refusals' stand-ins): each request's head and body, answered `200`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A minimal HTTP server that records request bodies (as text).
pub fn http_server() -> (u16, Arc<Mutex<Vec<(String, String)>>>) {
    http_receiver(|b| String::from_utf8_lossy(b).into_owned())
}

/// A minimal HTTP server: each request's head and its body as `parse`
/// makes it, answered `200` with an empty body.
pub fn http_receiver<T: Send + 'static>(
    parse: fn(&[u8]) -> T,
) -> (u16, Arc<Mutex<Vec<(String, T)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let mut r = BufReader::new(stream);
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            g.lock().unwrap().push((head, parse(&body)));
            let mut s = r.into_inner();
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// A request's head (up to its blank line, at most 64 KiB, within 5 s),
/// or `None` when the peer closed first or did not speak HTTP (a TLS
/// client hello, say).
pub fn read_head(c: &mut std::net::TcpStream) -> Option<String> {
    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
        match c.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return None,
            Ok(k) => n += k,
        }
        if !buf[0].is_ascii_uppercase() {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

//! Debian's nats-server, and a subscriber speaking NATS's text protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Killed;

/// Debian's nats-server on 127.0.0.1:`port`.
pub fn nats_server(port: u16) -> Killed {
    nats_server_with(port, &[])
}

/// The same, with `extra` arguments (authentication).
pub fn nats_server_with(port: u16, extra: &[&str]) -> Killed {
    Killed(
        Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian's nats-server package)"),
    )
}

/// A subscriber to `metrics.>` on the server at `port` (waits until the
/// server runs and the subscription is active): every message's
/// `(subject, payload)` lands in the vector.
pub fn nats_subscribe(port: u16) -> Arc<Mutex<Vec<(String, String)>>> {
    nats_subscribe_as(port, "")
}

/// The same, with `auth` (JSON fields such as `"user":"u","pass":"p"`) in
/// its CONNECT.
pub fn nats_subscribe_as(port: u16, auth: &str) -> Arc<Mutex<Vec<(String, String)>>> {
    let start = Instant::now();
    let s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("nats-server on {port}: {e}"),
        }
    };
    // The handshake is bounded; the subscription then waits as long as
    // the test runs.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("INFO "), "{line}");
    let comma = if auth.is_empty() { "" } else { "," };
    w.write_all(
        format!("CONNECT {{\"verbose\":false{comma}{auth}}}\r\nSUB metrics.> 1\r\nPING\r\n")
            .as_bytes(),
    )
    .unwrap();
    loop {
        line.clear();
        let n = r.read_line(&mut line).unwrap();
        assert!(n > 0, "nats-server on {port} closed before PONG");
        if line.trim_end() == "PONG" {
            break;
        }
    }
    r.get_ref().set_read_timeout(None).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first().copied() {
            Some("PING") => {
                let _ = w.write_all(b"PONG\r\n");
            }
            Some("MSG") => {
                let len: usize = f.last().unwrap().parse().unwrap();
                let mut payload = vec![0u8; len + 2];
                r.read_exact(&mut payload).unwrap();
                payload.truncate(len);
                sink.lock()
                    .unwrap()
                    .push((f[1].to_string(), String::from_utf8(payload).unwrap()));
            }
            _ => {}
        }
    });
    got
}

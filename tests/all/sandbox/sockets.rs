//! TLS a plugin starts on a plaintext connection (`open-plain` then
//! `start-tls`, what the database collectors do): refused where the
//! section does not set `tls = true`, on a datagram socket, twice, or to an
//! address not granted; a peer that answers garbage or stalls in the
//! handshake costs at most the call's timeout.

use std::io::Write;
use std::net::TcpListener;

use super::*;

/// A peer on a free port that answers each connection with `reply` (then
/// holds it open, silent).
fn peer(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(reply);
            held.push(s);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_tls_is_the_hosts_and_bounded() {
    let garbage = peer(b"HTTP/1.1 400 Bad Request\r\n\r\nnot TLS at all");
    let stall = peer(b"");
    let g = guest();
    let section = |name: &str, mode: &str, port: u16, tls: bool, granted: bool| {
        let mut s = format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = {mode:?}\narg = \"127.0.0.1:{port}\"\n");
        if tls {
            s += "tls = true\n";
        }
        if granted {
            let proto = if mode == "starttls-udp" { "udp" } else { "tcp" };
            s += &format!("[collectors.{name}.grants]\nconnect = [\"{proto}:127.0.0.1:{port}\"]\n");
        }
        s
    };
    let sections = [
        section("notls", "starttls", garbage, false, true),
        section("garbage", "starttls", garbage, true, true),
        section("stall", "starttls", stall, true, true),
        section("udp", "starttls-udp", stall, true, true),
        section("ungranted", "starttls", garbage, true, false),
    ]
    .concat();
    let o = beside_neighbour("start-tls refused or bounded", &sections, "stall").await;
    let st = |name: &str| o.others.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for name in ["notls", "garbage", "stall", "udp"] {
        let s = st(name);
        assert!(
            get(&s.guest_errors) >= 2,
            "{name}: {} errors",
            get(&s.guest_errors)
        );
        assert_eq!(get(&s.failures), 0, "{name} trapped");
        // Each call within its 1 s timeout (and a connect's).
        assert!(
            get(&s.last_duration_us) < 2_500_000,
            "{name}: {} µs",
            get(&s.last_duration_us)
        );
    }
    assert!(get(&st("ungranted").denials) >= 2);
    assert!(
        o.lines.iter().all(|l| !l.contains(".tls ")),
        "TLS was started somewhere: {:?}",
        o.lines
    );
}

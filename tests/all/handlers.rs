//! Each handler against its real backend: carbon's pickle receiver and two
//! carbons (graphite-carbon, read back from whisper), InfluxDB 1.x (Debian's
//! influxdb, queried back over HTTP) for both the line protocol and the
//! OpenTSDB `/api/put` API (InfluxDB's OpenTSDB service), a UDP listener
//! that parses statsd, and an HTTP server for httppost. What each backend
//! holds must equal what the archive handler wrote beside it. TLS to the
//! backends is in `handlers/tls.rs`; the backends themselves are in
//! `common/` (carbon, influx, nats, http).

use crate::common;
mod mqtt;
mod prometheus;
mod refusals;
mod tls;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::carbon::Carbon;
use common::free_port;
use common::http::{http_receiver, http_server};
use common::influx::Influx;
use common::nats::{nats_server, nats_server_with, nats_subscribe, nats_subscribe_as};
use wdiamond::agent::{self, Agent};
use wdiamond::host::HostFacts;

/// Runs loadavg and a counter collector for `secs` with `handler` (TOML for
/// `[handlers.NAME]`) beside the archive; returns the archive's
/// `path -> [(timestamp, value)]`.
async fn run_with(
    handler_name: &str,
    handler: &str,
    secs: f64,
) -> BTreeMap<String, Vec<(u64, f64)>> {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [{handler_name:?}, \"archive\"]\nplugin_cache_dir = {:?}\n{handler}\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\nhostname = \"hnd\"\n[collectors.loadavg]\nenabled = true\n[collectors.tcp]\nenabled = true\n",
            common::cache_dir()
        ),
    );
    let agent = common::start_agent(&conf);
    let collectors = ["loadavg", "tcp"].map(|c| agent.collector_stats(c).unwrap());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    agent.shutdown().await;
    // The archive is the oracle of the backends' checks: it holds every
    // metric the collectors counted as published (nothing lost before the
    // handlers' queues).
    let text = std::fs::read_to_string(&archive).unwrap();
    let published: u64 = collectors
        .iter()
        .map(|c| c.metrics.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(
        text.lines().count() as u64,
        published,
        "archive vs published"
    );
    let mut out: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        out.entry(f[0].to_string())
            .or_default()
            .push((f[2].parse().unwrap(), f[1].parse().unwrap()));
    }
    assert!(out.len() >= 8, "{out:?}");
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(1.0)
}

/// Equal up to the archive's rounding (it prints the metric's precision,
/// 2 decimals at most here; handlers like influxdb send the full value).
fn same(sent: f64, printed: f64) -> bool {
    close(sent, printed) || (sent - printed).abs() <= 0.0051
}

fn check_carbon(carbon: &Carbon, want: &BTreeMap<String, Vec<(u64, f64)>>) {
    let start = Instant::now();
    loop {
        let mut missing = Vec::new();
        for (path, points) in want {
            let lo = points.iter().map(|p| p.0).min().unwrap();
            let hi = points.iter().map(|p| p.0).max().unwrap();
            let stored = carbon.fetch(path, lo - 1, hi + 1);
            for (t, v) in points {
                // One value per second in whisper: any published one.
                let same_second: Vec<f64> =
                    points.iter().filter(|p| p.0 == *t).map(|p| p.1).collect();
                if !stored
                    .get(t)
                    .is_some_and(|s| same_second.iter().any(|v| close(*s, *v)))
                {
                    missing.push(format!("{path} {v} {t}: {:?}", stored.get(t)));
                }
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} points missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_pickle_into_carbon() {
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(dir.path());
    carbon.start();
    let want = run_with(
        "graphite_pickle",
        &format!(
            "[handlers.graphite_pickle]\nhost = \"127.0.0.1\"\nport = {}\n",
            carbon.pickle_port
        ),
        3.5,
    )
    .await;
    check_carbon(&carbon, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multigraphite_into_two_carbons() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut c1, mut c2) = (Carbon::new(d1.path()), Carbon::new(d2.path()));
    c1.start();
    c2.start();
    let handler = format!(
        "[handlers.multigraphite]\nhost = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n[handlers.multigraphite.grants]\nconnect = [\"tcp:127.0.0.1:{}\", \"tcp:127.0.0.1:{}\"]\n",
        c1.port, c2.port, c1.port, c2.port
    );
    let want = run_with("multigraphite", &handler, 3.5).await;
    check_carbon(&c1, &want);
    check_carbon(&c2, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_over_udp() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let r = received.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let listener = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf) {
                r.lock().unwrap().extend(
                    String::from_utf8_lossy(&buf[..n])
                        .lines()
                        .map(str::to_string),
                );
            }
        }
    });
    let want = run_with(
        "statsd",
        &format!("[handlers.statsd]\nhost = \"127.0.0.1\"\nport = {port}\n"),
        3.5,
    )
    .await;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    listener.join().unwrap();
    let lines = received.lock().unwrap().clone();
    // Every line is `path:value|g` or `path:delta|c`.
    let mut gauges: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut counters: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in &lines {
        let (path, rest) = l
            .split_once(':')
            .unwrap_or_else(|| panic!("not statsd: {l:?}"));
        let (v, kind) = rest
            .split_once('|')
            .unwrap_or_else(|| panic!("not statsd: {l:?}"));
        let v: f64 = v.parse().unwrap_or_else(|_| panic!("not a number: {l:?}"));
        match kind {
            "g" => gauges.entry(path.to_string()).or_default().push(v),
            "c" => counters.entry(path.to_string()).or_default().push(v),
            other => panic!("unknown type {other:?} in {l:?}"),
        }
    }
    // Gauges are the published values, in order.
    for (path, points) in &want {
        if path.contains(".loadavg.") {
            let got = &gauges[path];
            assert_eq!(got.len(), points.len(), "{path}");
            for (g, (_, v)) in got.iter().zip(points) {
                // The archive prints the value rounded to its precision (2).
                assert!((g - v).abs() <= 0.0051, "{path}: {g} vs {v}");
            }
        }
    }
    // Counters (tcp) go as deltas of the raw counter: the first is the raw
    // counter itself, then non-negative deltas; one for each published
    // sample (a run's first sample publishes none, so at least 2 in 3.5 s).
    let active = counters
        .get("servers.hnd.tcp.ActiveOpens")
        .expect("ActiveOpens counter");
    assert_eq!(active.len(), want["servers.hnd.tcp.ActiveOpens"].len());
    assert!(active.len() >= 2, "{active:?}");
    assert!(active[1..].iter().all(|d| *d >= 0.0), "{active:?}");
    assert!(active[0] >= active[1..].iter().sum::<f64>() || active[0] > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httppost_lines_and_json() {
    let (port, got) = http_server();
    let want = run_with(
        "httppost",
        &format!("[handlers.httppost]\nurl = \"http://127.0.0.1:{port}/metrics\"\n"),
        2.5,
    )
    .await;
    let posts = got.lock().unwrap().clone();
    assert!(!posts.is_empty());
    assert!(posts[0].0.starts_with("POST /metrics HTTP/1.1"));
    let lines: Vec<String> = posts
        .iter()
        .flat_map(|(_, b)| b.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let total: usize = want.values().map(Vec::len).sum();
    assert_eq!(lines.len(), total, "every published metric was posted once");

    let (port, got) = http_server();
    run_with(
        "httppost",
        &format!("[handlers.httppost]\nurl = \"http://127.0.0.1:{port}/m\"\nformat = \"json\"\n"),
        2.5,
    )
    .await;
    let posts = got.lock().unwrap().clone();
    let first: serde_json::Value = serde_json::from_str(&posts[0].1).unwrap();
    let item = &first[0];
    assert!(item["path"].as_str().unwrap().starts_with("servers.hnd."));
    assert!(item["value"].is_number() && item["timestamp"].is_u64());
    assert_eq!(item["host"], "hnd");
}

fn eventually(mut f: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if start.elapsed() > Duration::from_secs(20) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_line_protocol_and_opentsdb_api() {
    let influx = Influx::start();
    influx.query("", "CREATE DATABASE graphite");
    influx.query("", "CREATE DATABASE opentsdb");
    let want = run_with(
        "influxdb",
        &format!(
            "[handlers.influxdb]\nhostname = \"127.0.0.1\"\nport = {}\n",
            influx.http
        ),
        3.5,
    )
    .await;
    for (path, points) in &want {
        eventually(|| {
            let got = influx.points("graphite", path, None);
            let mut expect: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for (t, v) in points {
                expect.entry(*t).or_default().push(*v);
            }
            if got.len() != expect.len() {
                return Err(format!(
                    "{path}: {} points in influxdb, {} published",
                    got.len(),
                    expect.len()
                ));
            }
            for (t, v) in &got {
                if !expect
                    .get(t)
                    .is_some_and(|vs| vs.iter().any(|x| same(*v, *x)))
                {
                    return Err(format!("{path}: {t} {v} not published"));
                }
            }
            Ok(())
        });
    }

    // OpenTSDB's /api/put, into InfluxDB's OpenTSDB service.
    let want = run_with(
        "opentsdb",
        &format!(
            "[handlers.opentsdb]\nhost = \"127.0.0.1\"\nport = {}\ntags = [\"env=test\"]\n",
            influx.tsdb
        ),
        3.5,
    )
    .await;
    let (path, points) = want
        .iter()
        .find(|(p, _)| p.ends_with(".loadavg.01"))
        .unwrap();
    assert_eq!(path, "servers.hnd.loadavg.01");
    eventually(|| {
        let got = influx.points("opentsdb", "loadavg.01", Some(("hostname", "hnd")));
        let env = influx.points("opentsdb", "loadavg.01", Some(("env", "test")));
        if got.len() != points.len() || env.len() != points.len() {
            return Err(format!(
                "{} / {} points in the opentsdb database, {} published",
                got.len(),
                env.len(),
                points.len()
            ));
        }
        for ((t, v), (wt, wv)) in got.iter().zip(points) {
            if t != wt || !same(*v, *wv) {
                return Err(format!("{t} {v} vs published {wt} {wv}"));
            }
        }
        Ok(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_over_ipv6_with_keepalive() {
    let l = TcpListener::bind("[::1]:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let got = lines.clone();
    // The handler's side of each connection, by its port.
    let peers = Arc::new(Mutex::new(Vec::<u16>::new()));
    let accepted = peers.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            accepted.lock().unwrap().push(s.peer_addr().unwrap().port());
            let got = got.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(s).lines().map_while(Result::ok) {
                    got.lock().unwrap().push(line);
                }
            });
        }
    });
    // While it runs, the kernel's view of the handler's socket: its timer
    // (`tr` 2 is keepalive) and when it fires, from /proc/net/tcp6.
    let timers = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let (seen, who, done) = (
        timers.clone(),
        peers.clone(),
        Arc::new(AtomicBool::new(false)),
    );
    let stop = done.clone();
    let watcher = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let ports = who.lock().unwrap().clone();
            let table = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
            for row in table.lines().skip(1) {
                let f: Vec<&str> = row.split_whitespace().collect();
                let local = f[1].rsplit_once(':').map(|(_, p)| p).unwrap_or("");
                let Ok(p) = u16::from_str_radix(local, 16) else {
                    continue;
                };
                if ports.contains(&p) && f[3] == "01" {
                    let (tr, when) = f[5].split_once(':').unwrap();
                    let when = u64::from_str_radix(when, 16).unwrap();
                    seen.lock().unwrap().push((tr.to_string(), when));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let want = run_with("graphite", &format!("[handlers.graphite]\nhost = \"::1\"\nport = {port}\nkeepalive = true\nkeepaliveinterval = 5\n"), 2.5).await;
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // One connection, kept; keepalive on it, idle probes within 5 s (the
    // kernel's default would be 2 hours).
    assert_eq!(peers.lock().unwrap().len(), 1, "one connection, reused");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let timers = timers.lock().unwrap().clone();
    assert!(
        timers
            .iter()
            .any(|(tr, when)| tr == "02" && *when <= 5 * hz + hz / 10),
        "no keepalive timer within 5 s on the handler's socket: {timers:?}"
    );
    let got = lines.lock().unwrap().clone();
    let total: usize = want.values().map(Vec::len).sum();
    assert_eq!(got.len(), total, "every metric arrived over [::1]");
    for l in &got {
        let f: Vec<&str> = l.split(' ').collect();
        let v: f64 = f[1].parse().unwrap();
        let t: u64 = f[2].parse().unwrap();
        assert!(
            want[f[0]].iter().any(|(wt, wv)| *wt == t && close(*wv, v)),
            "{l}"
        );
    }
}

/// The graphite handler sends a batch's lines from the host's memory and
/// keeps the batch's handle until the connection proves alive: when the
/// peer closed after reading a batch, that batch goes again, before the
/// next, on a new connection (at least once).
#[test]
fn graphite_resends_the_unconfirmed_batch_after_the_peer_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut h = common::handler(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {port}\ntimeout = 2\n",
            common::cache_dir()
        ),
    );
    let batch = |name: &str| common::gauges([name]);
    let read_all = |s: &mut TcpStream, want: usize| {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while got.len() < want {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    };
    let (r, _) = h.process(batch("first"), Duration::from_secs(5));
    r.unwrap().unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    assert_eq!(read_all(&mut conn, 10), "first 1 7\n");
    drop(conn); // the peer closes: was "first" stored? The sender cannot know.
    std::thread::sleep(Duration::from_millis(100));
    let (r, _) = h.process(batch("second"), Duration::from_secs(5));
    r.unwrap().unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    assert_eq!(read_all(&mut conn, 21), "first 1 7\nsecond 1 7\n");
    // The connection is alive now: the next batch goes alone, here one
    // spanning two queued runs (two slices, written one after the other).
    let mut two = wdiamond::metric::Batch::default();
    two.push(&batch("third"), 0..1);
    two.push(&batch("fourth"), 0..1);
    let (r, _) = h.process(two, Duration::from_secs(5));
    r.unwrap().unwrap();
    assert_eq!(read_all(&mut conn, 21), "third 1 7\nfourth 1 7\n");
}

/// Over UDP the host sends a batch's lines as one datagram, even when the
/// batch spans two queued runs (two slices, joined for the datagram).
#[test]
fn graphite_over_udp_sends_a_batch_as_one_datagram() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let port = sink.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut h = common::handler(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {port}\nproto = \"udp\"\n",
            common::cache_dir()
        ),
    );
    let (a, b) = (common::gauges(["a.x", "a.y"]), common::gauges(["b.z"]));
    let mut batch = wdiamond::metric::Batch::default();
    batch.push(&a, 1..2);
    batch.push(&b, 0..1);
    let (r, _) = h.process(batch, Duration::from_secs(5));
    r.unwrap().unwrap();
    let mut buf = [0u8; 1500];
    let n = sink.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "a.y 1 7\nb.z 1 7\n"
    );
}

/// `path -> [(timestamp, value)]` of the lines NATS delivered.
fn nats_points(
    got: &Mutex<Vec<(String, String)>>,
    subject: &str,
    json: bool,
) -> BTreeMap<String, Vec<(u64, f64)>> {
    let mut out: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    for (s, payload) in got.lock().unwrap().iter() {
        assert_eq!(s, subject, "{payload}");
        for l in payload.lines() {
            let (path, t, v) = if json {
                let j: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    j["path"].as_str().unwrap().to_string(),
                    j["timestamp"].as_u64().unwrap(),
                    j["value"].as_f64().unwrap(),
                )
            } else {
                let f: Vec<&str> = l.split(' ').collect();
                (
                    f[0].to_string(),
                    f[2].parse().unwrap(),
                    f[1].parse().unwrap(),
                )
            };
            out.entry(path).or_default().push((t, v));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_publishes_every_metric_on_its_subject() {
    for json in [false, true] {
        let port = free_port();
        let mut server = nats_server(port);
        let got = nats_subscribe(port);
        let format = if json { "json" } else { "lines" };
        let want = run_with(
            "nats",
            &format!("[handlers.nats]\nhost = \"127.0.0.1\"\nport = {port}\nformat = {format:?}\n"),
            3.5,
        )
        .await;
        eventually(|| {
            let have = nats_points(&got, "metrics.host.hnd", json);
            for (path, points) in &want {
                for (t, v) in points {
                    let ok = have
                        .get(path)
                        .is_some_and(|p| p.iter().any(|(t2, v2)| t2 == t && same(*v2, *v)));
                    if !ok {
                        return Err(format!("{format}: {path} {v} {t} not received"));
                    }
                }
            }
            Ok(())
        });
        let _ = server.kill();
        let _ = server.wait();
    }
}

/// The server restarted under a running agent: the handler reconnects and
/// what was published while it was down is delivered after (the host kept
/// the batches and retried them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_authenticates_with_a_password_or_a_token() {
    // Fleets run NATS with authentication; before, the handler had no keys
    // for it and a server with auth refused every batch.
    for (server, subscriber, keys) in [
        (
            vec!["--user", "wd", "--pass", "s3cret"],
            r#""user":"wd","pass":"s3cret""#,
            "user = \"wd\"\npassword = \"s3cret\"\n",
        ),
        (
            vec!["--auth", "tok3n"],
            r#""auth_token":"tok3n""#,
            "token = \"tok3n\"\n",
        ),
    ] {
        let port = free_port();
        let mut nats = nats_server_with(port, &server);
        let got = nats_subscribe_as(port, subscriber);
        let want = run_with(
            "nats",
            &format!("[handlers.nats]\nhost = \"127.0.0.1\"\nport = {port}\n{keys}"),
            3.5,
        )
        .await;
        eventually(|| {
            let have = nats_points(&got, "metrics.host.hnd", false);
            match want.keys().find(|p| !have.contains_key(*p)) {
                Some(p) => Err(format!("{keys}: {p} not delivered")),
                None => Ok(()),
            }
        });
        let _ = nats.kill();
        let _ = nats.wait();
    }
}

/// NATS down for 2 s: the deliveries of the outage fail (counted), their
/// batches are kept and delivered once it is back, and what is published
/// after reaches the new subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_reconnects_after_the_server_restarts() {
    let port = free_port();
    let mut server = nats_server(port);
    let _first = nats_subscribe(port);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"nats\", \"archive\"]\nplugin_cache_dir = {:?}\n[handlers.nats]\nhost = \"127.0.0.1\"\nport = {port}\ntimeout = 1\nretry_max = 1\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\nhostname = \"re\"\n[collectors.loadavg]\nenabled = true\n",
            common::cache_dir()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let loaded =
        tokio::task::block_in_place(|| agent::load(&rt, &config, &HostFacts::default())).unwrap();
    let agent = Agent::start(rt, HostFacts::default(), &conf, &config, loaded);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = server.kill();
    let _ = server.wait();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut server = nats_server(port);
    let again = tokio::task::spawn_blocking(move || nats_subscribe(port))
        .await
        .unwrap();
    let up_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // At least one collection after the restart reaches the new
    // subscriber (polled, not a fixed sleep: a loaded CI machine may take
    // longer than the backoff's second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let start = Instant::now();
    while !nats_points(&again, "metrics.host.re", false)
        .values()
        .any(|v| v.iter().any(|(t, _)| *t > up_at))
        && start.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = agent.handler_stats("nats").unwrap();
    agent.shutdown().await;
    let published: Vec<(String, u64)> = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[2].parse().unwrap())
        })
        .collect();
    // Everything published once the new server and its subscriber were up
    // reached it: the handler reconnected (what was published while the
    // server was down was retried too, but core NATS hands it only to the
    // subscribers there at that moment, so it is not counted here).
    let late: Vec<&(String, u64)> = published.iter().filter(|(_, t)| *t > up_at).collect();
    assert!(!late.is_empty(), "nothing published after the restart");
    // The deliveries during the outage failed (counted), their batches were
    // kept and, once the server was back, delivered: every metric the
    // archive holds was delivered to NATS too, none dropped.
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    assert!(
        get(&stats.guest_errors) + get(&stats.failures) >= 1,
        "no failed delivery while the server was down: {stats:?}"
    );
    assert_eq!(get(&stats.dropped), 0, "{stats:?}");
    assert!(
        get(&stats.metrics) >= published.len() as u64,
        "{} delivered of {} published",
        get(&stats.metrics),
        published.len()
    );
    // The last batch, delivered at the stop, may still be on its way
    // through the server to the subscriber's thread.
    eventually(|| {
        let have = nats_points(&again, "metrics.host.re", false);
        match late
            .iter()
            .find(|(p, t)| !have.get(p).is_some_and(|v| v.iter().any(|(t2, _)| t2 == t)))
        {
            Some((p, t)) => Err(format!("{p} at {t} not received after the restart")),
            None => Ok(()),
        }
    });
    let _ = server.kill();
    let _ = server.wait();
}

/// The OTLP messages, decoded for real by prost (opentelemetry-proto v1
/// field numbers; only the fields the test reads).
mod otlp {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportMetricsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_metrics: Vec<ResourceMetrics>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceMetrics {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_metrics: Vec<ScopeMetrics>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(string, tag = "1")]
        pub string_value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeMetrics {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub metrics: Vec<Metric>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "5")]
        pub gauge: Option<Gauge>,
        #[prost(message, optional, tag = "7")]
        pub sum: Option<Sum>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Gauge {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sum {
        #[prost(message, repeated, tag = "1")]
        pub data_points: Vec<NumberDataPoint>,
        #[prost(int32, tag = "2")]
        pub aggregation_temporality: i32,
        #[prost(bool, tag = "3")]
        pub is_monotonic: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NumberDataPoint {
        #[prost(fixed64, tag = "2")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "3")]
        pub time_unix_nano: u64,
        #[prost(double, tag = "4")]
        pub as_double: f64,
    }
}

/// An OTLP/HTTP receiver: every request's body decoded as an
/// `ExportMetricsServiceRequest` (a body that does not decode fails the
/// test).
fn otlp_receiver() -> (
    u16,
    Arc<Mutex<Vec<(String, otlp::ExportMetricsServiceRequest)>>>,
) {
    http_receiver(|body| {
        <otlp::ExportMetricsServiceRequest as prost::Message>::decode(body)
            .expect("an ExportMetricsServiceRequest")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_metrics_decoded_by_a_receiver() {
    let (port, got) = otlp_receiver();
    let want = run_with(
        "otlp",
        &format!(
            "[handlers.otlp]\nurl = \"http://127.0.0.1:{port}/v1/metrics\"\nservice_name = \"wdiamond-test\"\n"
        ),
        3.5,
    )
    .await;
    let requests = got.lock().unwrap().clone();
    assert!(!requests.is_empty());
    assert!(requests[0].0.starts_with("POST /v1/metrics HTTP/1.1"));
    assert!(requests[0].0.contains("application/x-protobuf"));
    let mut gauges: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let mut sums = 0;
    for (_, req) in &requests {
        for rm in &req.resource_metrics {
            let attrs: BTreeMap<&str, &str> = rm
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .iter()
                .map(|kv| {
                    (
                        kv.key.as_str(),
                        kv.value.as_ref().unwrap().string_value.as_str(),
                    )
                })
                .collect();
            assert_eq!(attrs["host.name"], "hnd");
            assert_eq!(attrs["service.name"], "wdiamond-test");
            for sm in &rm.scope_metrics {
                assert_eq!(sm.scope.as_ref().unwrap().name, "wdiamond");
                for m in &sm.metrics {
                    if let Some(g) = &m.gauge {
                        for p in &g.data_points {
                            gauges
                                .entry(format!("servers.hnd.{}", m.name))
                                .or_default()
                                .push((p.time_unix_nano / 1_000_000_000, p.as_double));
                        }
                    }
                    if let Some(s) = &m.sum {
                        // Counters: the raw counter, cumulative, monotonic.
                        assert!(s.is_monotonic && s.aggregation_temporality == 2, "{m:?}");
                        for p in &s.data_points {
                            assert!(p.start_time_unix_nano <= p.time_unix_nano);
                            assert!(p.as_double >= 0.0 && p.as_double.fract() == 0.0, "{m:?}");
                        }
                        sums += 1;
                    }
                }
            }
        }
    }
    assert!(sums > 0, "the tcp collector's counters arrive as sums");
    let points = &want["servers.hnd.loadavg.01"];
    let mut received = gauges["servers.hnd.loadavg.01"].clone();
    received.sort_by_key(|p| p.0);
    assert_eq!(received.len(), points.len());
    for ((t, v), (wt, wv)) in received.iter().zip(points) {
        assert!(t == wt && same(*v, *wv), "{t} {v} vs published {wt} {wv}");
    }
}

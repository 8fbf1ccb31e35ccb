//! Throughput of the network handlers, side by side: one run of 10,000
//! metrics (declared series, as a real collector of that size publishes)
//! cut into batches as the queue cuts them, each handler's `process` timed
//! to a local sink that takes everything: graphite plaintext to a TCP sink,
//! Prometheus remote-write (protobuf + snappy), OTLP/HTTP (protobuf),
//! httppost and influxdb (line protocol) to an HTTP sink that answers 204 to each request. Wall time
//! of the handler call (its own encoding, the host's socket calls, the
//! sink's answer); metrics per second. The Prometheus exporter's `process`
//! (keeping the latest value of each series) is timed the same way, and
//! its `render` of the page of those 10,000 series apart.
//!
//! Run: `cargo bench --bench handlers`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wdiamond::agent;
use wdiamond::host::HostFacts;
use wdiamond::plugin::Runtime;

mod common;
use common::median;

const METRICS: usize = 10_000;
const BATCH: usize = 2_000;
const ROUNDS: usize = 15;

/// A TCP sink that reads and drops everything.
fn tcp_sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 1 << 20];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// An HTTP sink: reads each request (headers, `Content-Length` body) and
/// answers `204 No Content`.
fn http_sink() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(s);
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let mut s = r.into_inner();
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            });
        }
    });
    port
}

fn main() {
    let (tcp, http) = (tcp_sink(), http_sink());
    let dir = tempfile::tempdir().unwrap();
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache");
    let guest = wdiamond::plugin::guest_wasm_dir().join("collector_misbehave.wasm");
    let conf = dir.path().join("h.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nhandlers = [\"graphite\", \"prometheus_remote_write\", \"otlp\", \"influxdb\", \"httppost\", \"prometheus\"]\nplugin_cache_dir = {cache:?}\n\
             [handlers.graphite]\nhost = \"127.0.0.1\"\nport = {tcp}\n\
             [handlers.prometheus_remote_write]\nurl = \"http://127.0.0.1:{http}/api/v1/write\"\n\
             [handlers.otlp]\nurl = \"http://127.0.0.1:{http}/v1/metrics\"\n\
             [handlers.influxdb]\nhostname = \"127.0.0.1\"\nport = {http}\n\
             [handlers.httppost]\nurl = \"http://127.0.0.1:{http}/metrics\"\n\
             [handlers.prometheus]\nlisten = \"127.0.0.1:1\"\nttl = 1000000000\n\
             [collectors.default]\ninterval = 10\nhostname = \"bench\"\n\
             [collectors.declared]\nenabled = true\ncomponent = {guest:?}\nmode = \"flood-series\"\ncount = {}\n[collectors.declared.limits]\nmemory_mb = 256\n",
            METRICS - 1
        ),
    )
    .unwrap();
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = Runtime::new(&cache).unwrap();
    let mut loaded = agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let mut lc = loaded.collectors.remove(0);
    let (r, _) = lc
        .instance
        .as_mut()
        .expect("a persistent instance")
        .collect(Duration::from_secs(60));
    let checked = lc.publication.publish_with(
        r.unwrap().unwrap(),
        1_795_000_000,
        lc.instance
            .as_mut()
            .expect("a persistent instance")
            .series_mut(),
    );
    assert_eq!(checked.published.len(), METRICS);
    let all = Arc::new(checked.published);
    println!("{METRICS} metrics (declared series) per round in batches of {BATCH}, {ROUNDS} rounds after a warm-up; wall time of `process`");
    println!("| handler | median per round | metrics/s | ratio to graphite |");
    println!("|---|---|---|---|");
    let mut graphite = 0.0;
    for h in &mut loaded.handlers {
        let mut times = Vec::new();
        for round in 0..=ROUNDS {
            let t = Instant::now();
            for start in (0..all.len()).step_by(BATCH) {
                let mut packed = wdiamond::metric::Batch::default();
                packed.push(&all, start..(start + BATCH).min(all.len()));
                let (r, _) = h.instance.process(packed, Duration::from_secs(60));
                r.unwrap().unwrap();
            }
            if round > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let m = median(times);
        let rate = METRICS as f64 / m;
        let name = h.config.plugin.name.clone();
        if name == "graphite" {
            graphite = rate;
        }
        println!(
            "| {name} | {:.2} ms | {:.0} | {:.2}x |",
            m * 1e3,
            rate,
            rate / graphite
        );
    }
    // The exporter's page of those series, rendered as a scrape asks.
    let h = loaded
        .handlers
        .iter_mut()
        .find(|h| h.config.plugin.name == "prometheus")
        .unwrap();
    let scrape = wdiamond::bindings::exposition::Scrape {
        path: "/metrics".into(),
        query: String::new(),
        accept: String::new(),
    };
    let mut times = Vec::new();
    let mut size = 0;
    for round in 0..=ROUNDS {
        let t = Instant::now();
        let (r, _) = h.instance.render(&scrape, Duration::from_secs(60));
        let page = r.unwrap().unwrap();
        if round > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
        size = page.body.len();
    }
    let m = median(times);
    println!(
        "| prometheus render (page of {METRICS} series, {size} bytes) | {:.2} ms | {:.0} series/s | |",
        m * 1e3,
        METRICS as f64 / m
    );
}

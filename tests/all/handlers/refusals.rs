//! What a receiver refuses is counted as dropped, and what the operator
//! can fix is kept. Before, remote-write and OTLP logged "N metrics
//! dropped" for a 4xx but counted the batch delivered (`delivered=147
//! dropped=0`), and httppost, influxdb and opentsdb retried a refused batch
//! for ever (the queue blocked behind it). Now a 4xx that the metrics
//! cause is dropped and counted as dropped; a 404 — a typo in the URL, a
//! Prometheus without its remote-write receiver — keeps the metrics and
//! retries until the operator fixes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::common;

/// An HTTP server answering every request with `status`; counts them.
fn answering(status: u16) -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let requests = Arc::new(AtomicU64::new(0));
    let n = requests.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let mut r = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            n.fetch_add(1, Ordering::Relaxed);
            let mut s = r.into_inner();
            let _ = write!(
                s,
                "HTTP/1.1 {status} No\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nbad sample x\n"
            );
        }
    });
    (port, requests)
}

/// Runs loadavg every second for `secs` with the handler `section` named
/// `name`; returns (delivered, dropped, still queued).
async fn run(name: &str, section: &str, secs: u64) -> (u64, u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [{name:?}]\nplugin_cache_dir = {:?}\n[handlers.{name}]\n{section}retry_max = 1\n[collectors.default]\ninterval = 1\nhostname = \"hnd\"\n[collectors.loadavg]\nenabled = true\n",
            common::cache_dir()
        ),
    );
    let agent = common::start_agent(&conf);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let st = agent.handler_stats(name).unwrap();
    let queued = agent.handler_queue_len(name).unwrap();
    let counts = (
        st.metrics.load(Ordering::Relaxed),
        st.dropped.load(Ordering::Relaxed),
        queued,
    );
    agent.shutdown().await;
    counts
}

/// The HTTP handlers, each with its section for a receiver on `port`.
const HTTP_HANDLERS: [&str; 5] = [
    "prometheus_remote_write",
    "otlp",
    "httppost",
    "influxdb",
    "opentsdb",
];

fn section(name: &str, port: u16) -> String {
    match name {
        "prometheus_remote_write" => format!("url = \"http://127.0.0.1:{port}/api/v1/write\"\n"),
        "otlp" => format!("url = \"http://127.0.0.1:{port}/v1/metrics\"\n"),
        "httppost" => format!("url = \"http://127.0.0.1:{port}/m\"\n"),
        "influxdb" => format!("hostname = \"127.0.0.1\"\nport = {port}\n"),
        _ => format!("host = \"127.0.0.1\"\nport = {port}\n"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_a_receiver_refuses_are_dropped_not_delivered() {
    for name in HTTP_HANDLERS {
        let (port, requests) = answering(400);
        let (delivered, dropped, queued) = run(name, &section(name, port), 4).await;
        println!("{name} against a 400: delivered {delivered}, dropped {dropped}, queued {queued}");
        assert_eq!(delivered, 0, "{name}: refused metrics counted as delivered");
        // loadavg publishes 8 a run; at least two runs went and were
        // refused once each, not retried for ever.
        assert!(dropped >= 16, "{name}: dropped {dropped}");
        assert_eq!(dropped % 8, 0, "{name}: whole runs dropped");
        assert!(requests.load(Ordering::Relaxed) >= 2, "{name}");
        // At most the newest run waits (its delivery lingers up to 1 s).
        assert!(
            queued <= 8,
            "{name}: {queued} still queued behind a refused batch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_endpoint_keeps_the_metrics_for_a_retry() {
    for name in HTTP_HANDLERS {
        let (port, requests) = answering(404);
        let (delivered, dropped, queued) = run(name, &section(name, port), 4).await;
        println!("{name} against a 404: delivered {delivered}, dropped {dropped}, queued {queued}");
        assert_eq!((delivered, dropped), (0, 0), "{name}");
        assert!(
            queued >= 16,
            "{name}: the metrics are kept ({queued} queued)"
        );
        assert!(requests.load(Ordering::Relaxed) >= 2, "{name}: retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_to_a_prometheus_without_its_receiver_is_retried() {
    // The most common setup mistake, against the real server: Prometheus
    // without --web.enable-remote-write-receiver answers 404.
    let prom = super::prometheus::Prometheus::start_without_receiver();
    let (delivered, dropped, queued) = run(
        "prometheus_remote_write",
        &section("prometheus_remote_write", prom.port),
        4,
    )
    .await;
    assert_eq!((delivered, dropped), (0, 0));
    assert!(queued >= 16, "{queued} queued");
}

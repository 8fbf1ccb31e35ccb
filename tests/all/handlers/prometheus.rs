//! Prometheus, both ways, against Debian's Prometheus: remote-write into
//! its receiver, and its scraper reading the agent's exposition endpoint
//! (the `prometheus` exporter, served by the host), whose page
//! `promtool check metrics` must pass.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::common::{self, free_port};
use super::{eventually, run_with, same};

/// A real Prometheus (Debian's) with the remote-write receiver on a free
/// port; killed on drop.
pub(super) struct Prometheus {
    child: Child,
    pub(super) port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Started with the remote-write receiver, and scraping
    /// `127.0.0.1:PORT/metrics` every second when `scrape` names a port.
    fn start(scrape: Option<u16>) -> Prometheus {
        Self::start_with(scrape, true)
    }

    /// Started as many are by mistake: without the remote-write receiver
    /// (its `/api/v1/write` answers 404).
    pub(super) fn start_without_receiver() -> Prometheus {
        Self::start_with(None, false)
    }

    fn start_with(scrape: Option<u16>, receiver: bool) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("prometheus.yml");
        let scrapes = match scrape {
            Some(p) => format!("scrape_configs:\n  - job_name: wdiamond\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{p}']\n"),
            None => "scrape_configs: []\n".to_string(),
        };
        std::fs::write(&conf, format!("global:\n  scrape_interval: 1m\n{scrapes}")).unwrap();
        let child = Command::new("prometheus")
            .args([
                &format!("--config.file={}", conf.display()),
                &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
                &if receiver {
                    "--web.enable-remote-write-receiver".to_string()
                } else {
                    "--web.enable-lifecycle".to_string()
                },
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's prometheus package)");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        eventually(|| match p.get("/-/ready") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("prometheus not ready: {other:?}")),
        });
        p
    }

    /// `GET path`: (status, body).
    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
        let (head, body) = raw.split_once("\r\n\r\n").ok_or("no body")?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("no status")?;
        Ok((status, body.to_string()))
    }

    /// An instant PromQL query: the value of each series it returns.
    fn query(&self, promql: &str) -> Vec<f64> {
        let q = url_encode(promql);
        let (status, body) = self.get(&format!("/api/v1/query?query={q}")).unwrap();
        assert_eq!(status, 200, "{body}");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        j["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
            .collect()
    }

    /// The raw samples of a PromQL selector over the last 10 minutes:
    /// timestamp (s) -> value.
    fn samples(&self, selector: &str) -> BTreeMap<u64, f64> {
        let q = url_encode(&format!("{selector}[10m]"));
        let (status, body) = self.get(&format!("/api/v1/query?query={q}")).unwrap();
        assert_eq!(status, 200, "{body}");
        let j: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut out = BTreeMap::new();
        for series in j["data"]["result"].as_array().unwrap() {
            for v in series["values"].as_array().unwrap() {
                out.insert(
                    v[0].as_f64().unwrap() as u64,
                    v[1].as_str().unwrap().parse().unwrap(),
                );
            }
        }
        out
    }
}

/// `text` percent-encoded for a URL's query.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Opens TCP connections to `port` (ten a second) until `stop`: the
/// host's `ActiveOpens` counter grows, so a `rate()` of it is positive.
fn open_connections(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let _ = TcpStream::connect(("127.0.0.1", port));
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// `rate()` of the host's `ActiveOpens` counter, as Prometheus computes it
/// from what it received (waits until it can).
fn active_opens_rate(prom: &Prometheus) -> f64 {
    let mut rate = Vec::new();
    eventually(|| {
        rate = prom.query(r#"rate(tcp_active_opens_total{host="hnd"}[1m])"#);
        match rate.first() {
            Some(r) if *r > 0.0 => Ok(()),
            other => Err(format!("rate(tcp_active_opens_total): {other:?}")),
        }
    });
    rate[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_into_a_real_prometheus() {
    let prom = Prometheus::start(None);
    let stop = Arc::new(AtomicBool::new(false));
    let opener = open_connections(prom.port, stop.clone());
    let want = run_with(
        "prometheus_remote_write",
        &format!(
            "[handlers.prometheus_remote_write]\nurl = \"http://127.0.0.1:{}/api/v1/write\"\nlabels = [\"env=test\"]\nmappings = ['servers.*.loadavg.01 load{{host=\"$1\",window=\"01\"}}', 'servers.*.loadavg.15 load{{host=\"$1\",window=\"15\"}}']\n",
            prom.port
        ),
        3.5,
    )
    .await;
    // A mapped series and a default-mapped one (the path after the host,
    // labelled with it), every published sample queried back.
    for (path, selector) in [
        (
            "servers.hnd.loadavg.01",
            r#"load{host="hnd",window="01",env="test"}"#,
        ),
        (
            "servers.hnd.loadavg.15",
            r#"load{host="hnd",window="15",env="test"}"#,
        ),
    ] {
        let points = &want[path];
        eventually(|| {
            let got = prom.samples(selector);
            // Two runs may share a second when one started late (a loaded
            // machine); Prometheus keeps one sample per series and
            // timestamp, so either of that second's values will do.
            for (t, _) in points {
                let of_second: Vec<f64> =
                    points.iter().filter(|p| p.0 == *t).map(|p| p.1).collect();
                if !got
                    .get(t)
                    .is_some_and(|g| of_second.iter().any(|v| same(*g, *v)))
                {
                    return Err(format!(
                        "{selector}: {t} {of_second:?} not in prometheus: {got:?}"
                    ));
                }
            }
            if got.len()
                != points
                    .iter()
                    .map(|p| p.0)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            {
                return Err(format!(
                    "{selector}: {} samples, {} published",
                    got.len(),
                    points.len()
                ));
            }
            Ok(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    opener.join().unwrap();
    // A counter goes as its count, named `_total`, one sample per run: the
    // count never decreases, and Prometheus's rate() of it is positive.
    let runs = want["servers.hnd.tcp.ActiveOpens"].len();
    let counts = prom.samples(r#"tcp_active_opens_total{host="hnd",env="test"}"#);
    assert!(
        counts.len() + 1 >= runs,
        "{} counts for {runs} runs",
        counts.len()
    );
    let values: Vec<f64> = counts.values().copied().collect();
    assert!(values.windows(2).all(|w| w[1] >= w[0]), "{values:?}");
    assert!(
        values.last() > values.first(),
        "the connections opened: {values:?}"
    );
    let rate = active_opens_rate(&prom);
    println!("remote-write: rate(tcp_active_opens_total[1m]) = {rate}");
    assert!(
        prom.samples(r#"tcp_active_opens{host="hnd"}"#).is_empty(),
        "no rate series without _total"
    );
    // The default mappings, as on the page: a gauge keeps no `_total`.
    let runs = want["servers.hnd.loadavg.processes_total"].len();
    let gauge = prom.samples(r#"loadavg_processes{host="hnd",env="test"}"#);
    assert!(gauge.len() + 1 >= runs, "{gauge:?} for {runs} runs");
    assert!(prom
        .samples(r#"loadavg_processes_total{host="hnd"}"#)
        .is_empty());
}

/// `GET path` from the agent's endpoint: (status, headers, body), the body
/// gunzipped when the response says gzip.
pub fn http_get(port: u16, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    try_get(port, path, extra).unwrap()
}

/// [`http_get`], an error when nothing answers (yet).
pub fn try_get(port: u16, path: &str, extra: &str) -> Result<(u16, String, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    let head = String::from_utf8(raw[..at].to_vec()).unwrap();
    let mut body = raw[at + 4..].to_vec();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{head}");
    if head.contains("Content-Encoding: gzip") {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .unwrap();
        body = plain;
    }
    Ok((status, head, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_exposition_endpoint() {
    let port = free_port();
    let prom = Prometheus::start(Some(port));
    let stop = Arc::new(AtomicBool::new(false));
    let opener = open_connections(prom.port, stop.clone());
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"prometheus\", \"archive\"]\nplugin_cache_dir = {:?}\n[handlers.prometheus]\nlisten = \"127.0.0.1:{port}\"\nlabels = [\"env=test\"]\nmappings = ['servers.*.loadavg.* load{{host=\"$1\",window=\"$2\"}}']\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\nhostname = \"hnd\"\n[collectors.loadavg]\nenabled = true\n[collectors.tcp]\nenabled = true\n",
            common::cache_dir()
        ),
    );
    let agent = common::start_agent(&conf);
    let selector = r#"load{host="hnd",window="01",env="test",job="wdiamond"}"#;
    let (page, zipped) = tokio::task::block_in_place(|| {
        // Prometheus scrapes it: several samples of a mapped series.
        eventually(|| match prom.samples(selector).len() {
            n if n >= 3 => Ok(()),
            n => Err(format!(
                "{n} scraped samples of {selector}; up: {:?}",
                prom.samples("up")
            )),
        });
        let (status, head, page) = http_get(port, "/metrics", "");
        assert_eq!(status, 200, "{head}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(!head.contains("Content-Encoding"), "{head}");
        let (status, head, zipped) = http_get(port, "/metrics", "Accept-Encoding: gzip\r\n");
        assert_eq!(status, 200);
        assert!(head.contains("Content-Encoding: gzip"), "{head}");
        // A counter end to end: scraped as its count, rate() of it positive.
        let rate = active_opens_rate(&prom);
        println!("scrape: rate(tcp_active_opens_total[1m]) = {rate}");
        (page, zipped)
    });
    stop.store(true, Ordering::Relaxed);
    opener.join().unwrap();
    agent.shutdown().await;
    let text = String::from_utf8(page.clone()).unwrap();
    let (ok, lint) = common::promtool(&page);
    assert!(ok, "promtool check metrics: {lint}\n{text}");
    // The page: a family per name, typed; counters by their count, named _total.
    for want in [
        "# TYPE load gauge\n",
        "load{env=\"test\",host=\"hnd\",window=\"01\"} ",
        "# TYPE tcp_active_opens_total counter\n",
        "tcp_active_opens_total{env=\"test\",host=\"hnd\"} ",
    ] {
        assert!(text.contains(want), "{want:?} not on the page:\n{text}");
    }
    let series = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(series(&text), series(std::str::from_utf8(&zipped).unwrap()));
    // Every scraped value is one the collector published.
    let mut published: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for l in std::fs::read_to_string(&archive).unwrap().lines() {
        let f: Vec<&str> = l.split(' ').collect();
        published
            .entry(f[0].to_string())
            .or_default()
            .push(f[1].parse().unwrap());
    }
    let loads = &published["servers.hnd.loadavg.01"];
    let scraped = prom.samples(selector);
    assert!(scraped.len() >= 3);
    for v in scraped.values() {
        assert!(
            loads.iter().any(|p| same(*v, *p)),
            "{v} scraped, published {loads:?}"
        );
    }
    // Prometheus took the counter as a counter.
    let (status, body) = prom
        .get("/api/v1/metadata?metric=tcp_active_opens_total")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        j["data"]["tcp_active_opens_total"][0]["type"], "counter",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_changed_exporter_on_the_same_address() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let conf_text = |env: &str| {
        format!(
            "[server]\nhandlers = [\"prometheus\"]\nplugin_cache_dir = {:?}\n[handlers.prometheus]\nlisten = \"127.0.0.1:{port}\"\nlisten_path = \"/m\"\nlabels = [\"env={env}\"]\n[collectors.default]\ninterval = 1\nhostname = \"hnd\"\n[collectors.loadavg]\nenabled = true\n",
            common::cache_dir()
        )
    };
    let conf = common::write_config(dir.path(), &conf_text("one"));
    let mut agent = common::start_agent(&conf);
    let page_with = |label: &'static str| {
        tokio::task::block_in_place(|| {
            eventually(|| {
                let (status, _, body) = try_get(port, "/m", "")?;
                let body = String::from_utf8_lossy(&body).into_owned();
                if status == 200 && body.contains(label) {
                    Ok(())
                } else {
                    Err(format!("{status}: {body}"))
                }
            })
        })
    };
    page_with("loadavg_01{env=\"one\",host=\"hnd\"}");
    // The new handler binds the address the old one gives up.
    common::write_config(dir.path(), &conf_text("two"));
    agent.reload().await;
    page_with("loadavg_01{env=\"two\",host=\"hnd\"}");
    let (status, _, _) = tokio::task::block_in_place(|| http_get(port, "/metrics", ""));
    assert_eq!(status, 404);
    agent.shutdown().await;
    // Stopped: the address is free again.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

/// `[server] status_listen`: `/-/ready`, `/-/healthy` (503 naming a
/// collector whose runs keep failing, 200 again once a reload drops it),
/// and `/metrics`, which a real Prometheus scrapes and promtool accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_answers_health_and_prometheus_scrapes_it() {
    let port = free_port();
    let prom = Prometheus::start(Some(port));
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let body = |redis: bool| {
        format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\nstatus_listen = \"127.0.0.1:{port}\"\n[handlers.archive]\nlog_file = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"st\"\n[collectors.loadavg]\nenabled = true\n[collectors.redis]\nenabled = {redis}\nhost = \"127.0.0.1\"\nport = {closed}\ntimeout = 1\n",
            common::cache_dir(),
            dir.path().join("archive.log"),
        )
    };
    let conf = common::write_config(dir.path(), &body(true));
    let mut agent = common::start_agent(&conf);
    tokio::task::block_in_place(|| {
        eventually(|| match try_get(port, "/-/ready", "") {
            Ok((200, _, b)) if b == b"ready\n" => Ok(()),
            other => Err(format!("/-/ready: {other:?}")),
        });
        eventually(|| match try_get(port, "/-/healthy", "") {
            Ok((503, _, b)) if String::from_utf8_lossy(&b).contains("collectors.redis (") => Ok(()),
            other => Err(format!("/-/healthy with redis down: {other:?}")),
        });
        let (status, _, b) = http_get(port, "/-/healthy", "");
        let text = String::from_utf8_lossy(&b);
        assert_eq!(status, 503);
        assert!(!text.contains("loadavg"), "{text}");
        let (status, _, _) = http_get(port, "/nowhere", "");
        assert_eq!(status, 404);
        // Prometheus scrapes the agent's own counters.
        eventually(|| {
            let runs = prom
                .query(r#"wdiamond_plugin_runs_total{plugin="collectors.loadavg",job="wdiamond"}"#);
            match runs.first() {
                Some(n) if *n >= 2.0 => Ok(()),
                other => Err(format!(
                    "scraped runs: {other:?}; up: {:?}",
                    prom.samples("up")
                )),
            }
        });
        let failing = prom.query("wdiamond_plugins_failing");
        assert_eq!(failing, vec![1.0]);
        let (status, head, page) = http_get(port, "/metrics", "");
        assert_eq!(status, 200, "{head}");
        let (ok, lint) = common::promtool(&page);
        assert!(ok, "promtool: {lint}\n{}", String::from_utf8_lossy(&page));
        let text = String::from_utf8_lossy(&page);
        for want in [
            "wdiamond_ready 1\n",
            "wdiamond_handler_queued{plugin=\"handlers.archive\"} ",
            "wdiamond_plugin_peak_memory_bytes{plugin=\"collectors.loadavg\"} ",
            "wdiamond_plugin_errors_total{plugin=\"collectors.redis\"} ",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    });
    // The operator fixes the config: healthy again after the reload.
    std::fs::write(&conf, body(false)).unwrap();
    agent.reload().await;
    tokio::task::block_in_place(|| {
        eventually(|| match try_get(port, "/-/healthy", "") {
            Ok((200, _, b)) if String::from_utf8_lossy(&b).starts_with("healthy: 2 plugins") => {
                Ok(())
            }
            other => Err(format!("/-/healthy after the reload: {other:?}")),
        });
    });
    agent.shutdown().await;
    assert!(
        try_get(port, "/-/ready", "").is_err(),
        "still serving after the agent stopped"
    );
}

//! Service collectors against real servers (Debian's redis-server, memcached
//! nginx and zookeeper, started here on free ports on 127.0.0.1 and stopped after),
//! and the ceph command collector against a stand-in `ceph` executable.

use crate::common;
use crate::common::servers;
mod diamond;
mod page;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use wdiamond::bindings::types::MetricKind;
use wdiamond::host::HostFacts;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Metrics of a collector's runs, by name relative to `servers.svc.<path>.`.
struct Collected {
    runs: Vec<BTreeMap<String, (f64, u8, MetricKind)>>,
    errors: Vec<String>,
    denials: u64,
}

fn run_collector(section: &str, runs: usize, between: Duration) -> Collected {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!("[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"svc\"\n{section}", common::cache_dir()),
    );
    let config = wdiamond::config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
    let rt = common::runtime();
    let mut loaded = wdiamond::agent::load(&rt, &config, &HostFacts::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let lc = &mut loaded.collectors[0];
    let prefix = format!("servers.svc.{}.", lc.description.name);
    let mut out = Collected {
        runs: Vec::new(),
        errors: Vec::new(),
        denials: 0,
    };
    for i in 0..runs {
        if i > 0 {
            std::thread::sleep(between);
        }
        let (r, usage) = lc
            .instance_mut(&rt)
            .unwrap()
            .collect(Duration::from_secs(30));
        out.denials += usage.calls.denials;
        let mut m = BTreeMap::new();
        match r {
            Ok(Ok(metrics)) => {
                let checked = lc.publication.publish(metrics, 0);
                assert_eq!(checked.rejected, 0, "{:?}", checked.reasons);
                for p in checked.published.iter() {
                    m.insert(
                        p.path.trim_start_matches(&prefix).to_string(),
                        (p.value, p.precision, p.kind),
                    );
                }
            }
            Ok(Err(e)) => out.errors.push(e),
            Err(f) => panic!("collector failed: {f}"),
        }
        out.runs.push(m);
    }
    out
}

fn redis_cmd(port: u16, cmd: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn redis_info_from_a_real_server() {
    let (_server, port) = servers::redis();
    for k in 0..5 {
        assert!(redis_cmd(port, &format!("SET key{k} value{k}")).starts_with("+OK"));
    }
    redis_cmd(port, "EXPIRE key0 1000");
    redis_cmd(port, "GET key1");
    redis_cmd(port, "GET nosuchkey");
    let c = run_collector(
        &format!("[collectors.redis]\nenabled = true\nhost = \"127.0.0.1\"\nport = {port}\n"),
        1,
        Duration::ZERO,
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let m = &c.runs[0];
    let get = |k: &str| {
        m.get(&format!("{port}.{k}"))
            .unwrap_or_else(|| panic!("{port}.{k} missing in {:?}", m.keys().collect::<Vec<_>>()))
            .0
    };
    assert_eq!(get("db0.keys"), 5.0);
    assert_eq!(get("db0.expires"), 1.0);
    assert_eq!(get("replication.master"), 1.0);
    assert!(get("clients.connected") >= 1.0);
    assert!(get("keyspace.hits") >= 1.0 && get("keyspace.misses") >= 1.0);
    assert!(get("memory.internal_view") > 0.0);
    let pct = get("memory.used_percent");
    assert!(pct > 0.0 && pct < 100.0, "{pct}");
    // The server started with this test: up for less than a minute.
    let up = get("process.uptime");
    assert!((0.0..60.0).contains(&up), "uptime {up}");
    // Precision follows the text of the value (Diamond's _precision).
    assert_eq!(m[&format!("{port}.memory.fragmentation_ratio")].1, {
        let v = m[&format!("{port}.memory.fragmentation_ratio")].0;
        let s = format!("{v:?}");
        (s.len() - s.rfind('.').unwrap() - 1) as u8
    });

    // A port that is not granted: denied, not connected.
    let other = free_port();
    let c = run_collector(
        &format!("[collectors.redis]\nenabled = true\ninstances = [\"127.0.0.1:{other}\"]\nhost = \"127.0.0.1\"\nport = {port}\n"),
        1,
        Duration::ZERO,
    );
    assert_eq!(c.denials, 1);
    assert!(
        c.errors[0].contains("no redis instance answered"),
        "{:?}",
        c.errors
    );
}

#[test]
fn memcached_stats_from_a_real_server() {
    let (_server, port) = servers::memcached();
    let section = format!("[collectors.memcached]\nenabled = true\nhosts = [\"cache@127.0.0.1:{port}\"]\n[collectors.memcached.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n");
    let c = run_collector(&section, 2, Duration::from_millis(1100));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let (first, second) = (&c.runs[0], &c.runs[1]);
    assert_eq!(second["cache.curr_items"], (3.0, 0, MetricKind::Gauge));
    assert_eq!(second["cache.threads"].2, MetricKind::Gauge);
    // cmd_set is a counter: nothing on the first run (no rate yet), a
    // rate after; the gauges are there from the first run.
    assert!(!first.contains_key("cache.cmd_set"), "{first:?}");
    assert_eq!(first["cache.curr_items"], (3.0, 0, MetricKind::Gauge));
    assert_eq!(second["cache.cmd_set"].2, MetricKind::Counter);
    // A counter's rate (Diamond's, per interval of 1 s): the collector's
    // own connection of the second run, and nobody else's.
    assert_eq!(second["cache.total_connections"].0, 1.0, "{second:?}");
    assert!(!second.contains_key("cache.pid") && !second.contains_key("cache.version"));
}

/// ZooKeeper 3.8 answers `mntr` with some 16 KB: the port reads it whole.
#[test]
fn zookeeper_mntr_from_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::zookeeper(dir.path());
    let section = format!("[collectors.zookeeper]\nenabled = true\nhosts = [\"zk@127.0.0.1:{port}\"]\n[collectors.zookeeper.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n");
    let c = run_collector(&section, 1, Duration::ZERO);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let m = &c.runs[0];
    // The tree's own znodes (/, /zookeeper, its quota and config nodes).
    assert!(m["zk.zk_znode_count"].0 >= 4.0, "{m:?}");
    assert_eq!(m["zk.zk_num_alive_connections"].2, MetricKind::Gauge);
    assert!(m["zk.zk_num_alive_connections"].0 >= 1.0);
    // Every numeric line, far past the first 4 KB; never version or state.
    assert!(m.len() > 300, "{} metrics", m.len());
    assert!(!m
        .keys()
        .any(|k| k.contains("zk_version") || k.contains("zk_server_state")));
    // No alias: the stats under their own names, as Diamond names them;
    // `publish` keeps the keys it lists.
    let section = format!("[collectors.zookeeper]\nenabled = true\nhosts = [\"127.0.0.1:{port}\"]\npublish = [\"zk_znode_count\", \"zk_watch_count\"]\n[collectors.zookeeper.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n");
    let c = run_collector(&section, 1, Duration::ZERO);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let names: Vec<&String> = c.runs[0].keys().collect();
    assert_eq!(names, ["zk_watch_count", "zk_znode_count"]);
}

#[test]
fn nginx_stub_status_from_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::nginx(dir.path());
    let section = format!(
        "[collectors.nginx]\nenabled = true\nreq_host = \"127.0.0.1\"\nreq_port = {port}\n"
    );
    let c = run_collector(&section, 2, Duration::from_millis(1100));
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let m = &c.runs[1];
    assert!(
        m["active_connections"].0 >= 1.0,
        "our own request is active"
    );
    assert_eq!(m["conn_accepted"].2, MetricKind::Counter);
    assert!(
        m["conn_accepted"].0 > 0.0,
        "one connection per second between the runs"
    );
    let rpc = m["req_per_conn"];
    assert!(rpc.0 > 0.5 && rpc.0 <= 2.0 && rpc.1 == 2, "{rpc:?}");
    for k in [
        "act_reads",
        "act_writes",
        "act_waits",
        "conn_handled",
        "req_handled",
    ] {
        assert!(m.contains_key(k), "{k}");
    }

    // A wrong path: an error result, not a crash.
    let c = run_collector(
        &format!("{section}req_path = \"/nope\"\n"),
        1,
        Duration::ZERO,
    );
    assert!(c.errors[0].contains("answered 404"), "{:?}", c.errors);
    // A page that is not stub_status: an error, not silence.
    let c = run_collector(&format!("{section}req_path = \"/\"\n"), 1, Duration::ZERO);
    assert!(
        c.errors[0].contains("no stub_status data"),
        "{:?}",
        c.errors
    );
}

#[test]
fn ceph_perf_dump_through_a_stand_in_command() {
    ceph_case("");
}

/// The same case through the Diamond-style Python port
/// (`python/collectors/ceph.py`): glob, subprocess and json in the Python
/// runtime, the command run (and cut off) by the host.
#[test]
fn ceph_python_port_through_a_stand_in_command() {
    let script = common::repo().join("python/collectors/ceph.py");
    ceph_case(&format!(
        "component = {:?}\npath = \"ceph\"\n",
        script.display().to_string()
    ));
}

/// Runs the ceph collector (`extra`: lines added to its section) against
/// sockets that answer, fail, answer garbage and hang.
fn ceph_case(extra: &str) {
    // The stand-in's hanging `sleep 600` is looked for by name at the end:
    // the two ceph tests take turns, so neither sees the other's.
    static TURNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = TURNS.lock().unwrap_or_else(|p| p.into_inner());
    let sockets = tempfile::tempdir().unwrap();
    for name in [
        "ceph-osd.0.asok",
        "ceph-osd.1-fail.asok",
        "ceph-mon.garbage.asok",
        "ceph-osd.2-hang.asok",
        "other.asok",
        "ceph-osd.3.sock",
    ] {
        std::fs::write(sockets.path().join(name), b"").unwrap();
    }
    let ceph = common::repo().join("tests/fixtures/ceph/ceph");
    let section = format!(
        "[collectors.ceph]\nenabled = true\nsocket_path = {:?}\nceph_binary = {:?}\ntimeout = 1\n{extra}",
        sockets.path(),
        ceph
    );
    let section = if extra.is_empty() {
        section
    } else {
        // A third-party plugin gets only what the config grants.
        format!(
            "{section}[collectors.ceph.grants]\nfiles = [\"{}/**\"]\ncommands = [[{:?}, \"**\"]]\n",
            sockets.path().display(),
            ceph.display().to_string()
        )
    };
    let start = Instant::now();
    let c = run_collector(&section, 1, Duration::ZERO);
    let took = start.elapsed();
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let m = &c.runs[0];
    // Only the healthy socket published; the failing, garbage and hanging
    // ones published nothing, and the hang was killed at its 1 s timeout.
    assert!(
        m.keys().all(|k| k.starts_with("ceph.osd.0.")),
        "{:?}",
        m.keys().collect::<Vec<_>>()
    );
    assert_eq!(m["ceph.osd.0.osd.op"].0, 5129.0);
    assert_eq!(m["ceph.osd.0.osd.op_latency.sum"].0, 33.008751882);
    assert_eq!(
        m["ceph.osd.0.filestore.journal_latency.avgcount"].0,
        12745.0
    );
    assert_eq!(
        m["ceph.osd.0.throttle-msgr_dispatch_throttler-client.max"].0,
        104857600.0
    );
    assert_eq!(m.len(), 32);
    assert!(
        took < Duration::from_secs(8),
        "the hanging command was not cut off: {took:?}"
    );
    // No stray `sleep` left behind by the hanging stand-in.
    std::thread::sleep(Duration::from_millis(200));
    let ps = Command::new("pgrep")
        .args(["-f", "sleep 600"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "left a process behind: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

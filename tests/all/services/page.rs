//! Every built-in collector on one Prometheus page: the host's own (cpu,
//! disks, interfaces, interrupts…), memcached, nginx, redis and zookeeper
//! against the real servers, ceph through its stand-in command. With the
//! default mappings the page is idiomatic (core, mode, device, interface,
//! mount, irq and server as labels) and `promtool check metrics` finds
//! nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::servers;

/// The built-in collectors that need nothing but the host.
const LOCAL: &[&str] = &[
    "cpu",
    "diskspace",
    "diskusage",
    "entropy",
    "filestat",
    "interrupt",
    "loadavg",
    "memory",
    "netstat",
    "network",
    "proc",
    "sockstat",
    "softirq",
    "tcp",
    "udp",
    "uptime",
    "vmstat",
];

/// The body of `GET /metrics` on `port`, if it answers 200.
fn page(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut b = Vec::new();
    s.read_to_end(&mut b).ok()?;
    let text = String::from_utf8(b).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The families of a page (`# TYPE` lines): name -> type.
fn families(page: &str) -> Vec<(String, String)> {
    page.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_in_collector_on_one_page_passes_promtool() {
    let (_redis, redis) = servers::redis();
    let (_memcached, memcached) = servers::memcached();
    let dir = tempfile::tempdir().unwrap();
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir(&nginx_dir).unwrap();
    let (_nginx, nginx) = servers::nginx(&nginx_dir);
    let zk_dir = dir.path().join("zookeeper");
    std::fs::create_dir(&zk_dir).unwrap();
    let (_zookeeper, zookeeper) = servers::zookeeper(&zk_dir);
    let sockets = dir.path().join("ceph");
    std::fs::create_dir(&sockets).unwrap();
    std::fs::write(sockets.join("ceph-osd.0.asok"), b"").unwrap();
    let ceph = common::repo().join("tests/fixtures/ceph/ceph");
    let listen = common::free_port();
    let mut conf = format!(
        "[server]\nhandlers = [\"prometheus\"]\nplugin_cache_dir = {:?}\n[handlers.prometheus]\nlisten = \"127.0.0.1:{listen}\"\n[collectors.default]\ninterval = 1\nhostname = \"all\"\n",
        common::cache_dir()
    );
    for c in LOCAL {
        conf.push_str(&format!("[collectors.{c}]\nenabled = true\n"));
    }
    conf.push_str(&format!(
        "[collectors.memcached]\nenabled = true\nhosts = [\"cache@127.0.0.1:{memcached}\"]\n\
         [collectors.memcached.grants]\nconnect = [\"tcp:127.0.0.1:{memcached}\"]\n\
         [collectors.nginx]\nenabled = true\nreq_host = \"127.0.0.1\"\nreq_port = {nginx}\n\
         [collectors.redis]\nenabled = true\nhost = \"127.0.0.1\"\nport = {redis}\n\
         [collectors.zookeeper]\nenabled = true\nhosts = [\"zk@127.0.0.1:{zookeeper}\"]\n\
         [collectors.zookeeper.grants]\nconnect = [\"tcp:127.0.0.1:{zookeeper}\"]\n\
         [collectors.ceph]\nenabled = true\nsocket_path = {sockets:?}\nceph_binary = {ceph:?}\n"
    ));
    let conf = common::write_config(dir.path(), &conf);
    let agent = common::start_agent(&conf);
    // A family of every collector, the counters among them (which publish
    // from their second run).
    let wanted = [
        "cpu_percent",
        "cpu_total_percent",
        "diskspace_byte_free",
        "entropy_available",
        "files_max",
        "interrupts",
        "interrupts_by_cpu",
        "loadavg_01",
        "loadavg_processes",
        "memory_mem_total_bytes",
        "memory_used_percent",
        "netstat_listen",
        "network_rx_byte",
        "proc_procs_running",
        "sockets_used",
        "softirq",
        "softirq_all_vectors",
        "tcp_active_opens_total",
        "udp_in_datagrams",
        "uptime_seconds",
        "vmstat_pgfault",
        "memcached_curr_items",
        "memcached_cmd_get_total",
        "nginx_active_connections",
        "nginx_conn_accepted_total",
        "redis_clients_connected",
        "zookeeper_znode_count_value",
        "zookeeper_avg_latency",
        "ceph_osd_op",
    ];
    let start = Instant::now();
    let text = tokio::task::block_in_place(|| loop {
        let text = page(listen).unwrap_or_default();
        let names: Vec<String> = families(&text).into_iter().map(|f| f.0).collect();
        let missing: Vec<&&str> = wanted
            .iter()
            .filter(|w| !names.iter().any(|n| n == **w))
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not on the page after 60 s: {missing:?}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    });
    agent.shutdown().await;
    let (ok, lint) = common::promtool(text.as_bytes());
    assert!(ok, "promtool check metrics: {lint}\n{text}");
    // Core, mode, mount, interface, irq and server are labels, not names.
    for want in [
        "cpu_percent{cpu=\"cpu0\",host=\"all\",mode=\"idle\"} ",
        "cpu_total_percent{host=\"all\",mode=\"user\"} ",
        "memcached_curr_items{host=\"all\",server=\"cache\"} 3\n",
        "zookeeper_znode_count_value{host=\"all\",server=\"zk\"} ",
        "ceph_osd_op{cluster=\"ceph\",daemon=\"osd\",host=\"all\",id=\"0\"} 5129\n",
        &format!("redis_clients_connected{{host=\"all\",server=\"{redis}\"}} "),
    ] {
        assert!(text.contains(want), "{want:?} not on the page:\n{text}");
    }
    for (family, label) in [
        ("diskspace_byte_free", "mount=\""),
        ("network_rx_byte", "interface=\""),
        ("interrupts_by_cpu", "irq=\""),
        ("softirq", "vector=\""),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{family}{{")) && l.contains(label)),
            "{family} has no {label}:\n{text}"
        );
    }
    for (name, kind) in families(&text) {
        assert!(
            !name.contains("cpu0") && !name.contains("eth") && !name.contains("vda"),
            "{name}: a core or device in a name"
        );
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} {kind}");
    }
}

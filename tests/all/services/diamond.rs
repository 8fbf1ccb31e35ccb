//! Diamond's own collector scripts (released 4.0.515, fetched from PyPI,
//! run unchanged through the Python 2 bridge) against the real servers,
//! beside the Rust ports on the same server: the same metric names.

use std::collections::BTreeSet;
use std::time::Duration;

use wdiamond::bindings::types::MetricKind;

use super::{run_collector, Collected};
use crate::common;
use crate::common::servers;

/// A section running Diamond's `script` as collector `name`, publishing at
/// `path` (a built-in's path: the operator says so), allowed to connect
/// to `port` on 127.0.0.1, with `extra` keys.
fn diamond_section(name: &str, script: &str, path: &str, port: u16, extra: &str) -> String {
    format!(
        "[collectors.{name}]\nenabled = true\ncomponent = {:?}\npath = {path:?}\n{extra}[collectors.{name}.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n",
        common::diamond::script(script).display().to_string()
    )
}

fn names(c: &Collected, run: usize) -> BTreeSet<String> {
    c.runs[run].keys().cloned().collect()
}

#[test]
fn diamond_memcached_script_against_a_real_memcached() {
    let (_server, port) = servers::memcached();
    let hosts = format!("hosts = [\"cache@127.0.0.1:{port}\"]\n");
    let diamond = run_collector(
        &diamond_section(
            "memcached",
            "memcached/memcached.py",
            "memcached",
            port,
            &hosts,
        ),
        2,
        Duration::from_millis(1100),
    );
    assert!(diamond.errors.is_empty(), "{:?}", diamond.errors);
    // Diamond's script reads /proc/<pid>/cmdline for the connection limit,
    // with the pid it has just skipped (`/proc/None/cmdline`): a denial a
    // run, which it ignores, as Diamond's ENOENT.
    assert!(diamond.denials <= 2, "{} denials", diamond.denials);
    let second = &diamond.runs[1];
    // Text on a socket, as Python 2 wrote it: `sock.send('stats\n')`.
    assert_eq!(second["cache.curr_items"], (3.0, 0, MetricKind::Gauge));
    assert_eq!(second["cache.cmd_set"].2, MetricKind::Counter);
    // A counter's first sample publishes nothing (no rate yet).
    assert!(!diamond.runs[0].contains_key("cache.cmd_set"));
    let rust = run_collector(
        &format!("[collectors.memcached]\nenabled = true\n{hosts}[collectors.memcached.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n"),
        2,
        Duration::from_millis(1100),
    );
    assert_eq!(names(&diamond, 1), names(&rust, 1));
}

#[test]
fn diamond_nginx_script_against_a_real_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::nginx(dir.path());
    let keys = format!("req_host = \"127.0.0.1\"\nreq_port = {port}\n");
    let diamond = run_collector(
        &diamond_section("nginx", "nginx/nginx.py", "nginx", port, &keys),
        2,
        Duration::from_millis(1100),
    );
    assert!(diamond.errors.is_empty(), "{:?}", diamond.errors);
    assert_eq!(diamond.denials, 0);
    // urllib2 through the host's socket, a str regex over the body's lines.
    let m = &diamond.runs[1];
    assert!(m["active_connections"].0 >= 1.0, "{m:?}");
    assert_eq!(m["conn_accepted"].2, MetricKind::Counter);
    let rust = run_collector(
        &format!("[collectors.nginx]\nenabled = true\n{keys}"),
        2,
        Duration::from_millis(1100),
    );
    assert_eq!(names(&diamond, 1), names(&rust, 1));
}

#[test]
fn diamond_haproxy_script_against_a_real_haproxy() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::haproxy(dir.path());
    let url = format!("url = \"http://127.0.0.1:{port}/haproxy?stats;csv\"\n");
    let c = run_collector(
        &diamond_section("haproxy", "haproxy/haproxy.py", "haproxy", port, &url),
        1,
        Duration::ZERO,
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.denials, 0);
    // The stats CSV through urllib2 and csv: a row per proxy and server.
    let m = &c.runs[0];
    assert!(m["web.frontend.slim"].0 == 64.0, "{m:?}");
    assert!(m.contains_key("web.frontend.scur"), "{m:?}");
    assert!(m.contains_key("app.s1.weight"), "{m:?}");
}

#[test]
fn diamond_httpd_script_against_a_real_apache2() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::apache2(dir.path());
    let urls = format!("urls = [\"local http://127.0.0.1:{port}/server-status?auto\"]\n");
    let c = run_collector(
        &diamond_section("httpd", "httpd/httpd.py", "httpd", port, &urls),
        2,
        Duration::from_millis(300),
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.denials, 0);
    // mod_status's ?auto page: the collector's own requests are counted.
    let (first, second) = (&c.runs[0], &c.runs[1]);
    assert!(second["local.TotalAccesses"].0 > first["local.TotalAccesses"].0);
    assert!(second["local.BusyWorkers"].0 >= 1.0, "{second:?}");
    assert!(second.contains_key("local.IdleWorkers"), "{second:?}");
}

/// Diamond's `redisstat` imports redis-py: a pure-Python package from
/// PyPI, unpacked into a directory its section's `python_path` names.
#[test]
fn diamond_redisstat_script_with_redis_py_from_its_python_path() {
    let (_server, port) = servers::redis();
    let site = common::diamond::pypi("redis", "3.5.3");
    let keys = format!(
        "python_path = [{:?}]\nhost = \"127.0.0.1\"\nport = {port}\n",
        site.display().to_string()
    );
    let c = run_collector(
        &diamond_section("redisstat", "redisstat/redisstat.py", "redis", port, &keys),
        1,
        Duration::ZERO,
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.denials, 0);
    let m = &c.runs[0];
    let get = |k: &str| {
        m.get(&format!("{port}.{k}"))
            .unwrap_or_else(|| panic!("{port}.{k} not in {:?}", m.keys().collect::<Vec<_>>()))
            .0
    };
    assert!(get("clients.connected") >= 1.0);
    assert!(get("process.uptime") >= 0.0);
    // Without the python path the script's `import redis` fails (it says
    // so in its log) and it publishes nothing.
    let c = run_collector(
        &diamond_section("redisstat", "redisstat/redisstat.py", "redis", port, ""),
        1,
        Duration::ZERO,
    );
    assert!(c.runs[0].is_empty(), "{:?}", c.runs[0]);
}

#[test]
fn diamond_rabbitmq_script_against_a_real_rabbitmq() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::rabbitmq(dir.path());
    let host = format!("host = \"127.0.0.1:{port}\"\n");
    // The API answers before every part of the node is up (its own stats,
    // `health.*`, come last): a few tries.
    let section = diamond_section("rabbitmq", "rabbitmq/rabbitmq.py", "rabbitmq", port, &host);
    let mut tries = 0;
    let c = loop {
        let c = run_collector(&section, 1, Duration::ZERO);
        tries += 1;
        let m = &c.runs[0];
        if tries == 40
            || (m.contains_key("object_totals.exchanges") && m.contains_key("health.fd_used"))
        {
            break c;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.denials, 0);
    // urllib2 with Python 2's base64 of a str (basic auth), JSON bodies.
    let m = &c.runs[0];
    assert!(m["object_totals.exchanges"].0 >= 7.0, "{m:?}");
    assert!(m.contains_key("health.fd_used"), "{m:?}");
}

/// Diamond's zookeeper script reads `mntr` with one `recv(4096)`; ZooKeeper
/// 3.8 (Debian's) answers with some 16 KB. As under Diamond, the script sees
/// the first 4 KB: the line cut there raises IndexError (a cut key), or it
/// publishes only what came before. The Rust port reads the whole answer.
#[test]
fn diamond_zookeeper_script_against_a_real_zookeeper() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = servers::zookeeper(dir.path());
    let hosts = format!("hosts = [\"zk@127.0.0.1:{port}\"]\n");
    let diamond = run_collector(
        &diamond_section(
            "zookeeper",
            "zookeeper/zookeeper.py",
            "zookeeper",
            port,
            &hosts,
        ),
        1,
        Duration::ZERO,
    );
    // The script reads /proc/None/cmdline for a limit (ignored, as Diamond).
    assert!(diamond.denials <= 1, "{} denials", diamond.denials);
    let rust = run_collector(
        &format!("[collectors.zookeeper]\nenabled = true\n{hosts}[collectors.zookeeper.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n"),
        1,
        Duration::ZERO,
    );
    assert!(rust.errors.is_empty(), "{:?}", rust.errors);
    assert!(rust.runs[0].len() > 300, "{}", rust.runs[0].len());
    if diamond.errors.is_empty() {
        let d = names(&diamond, 0);
        assert!(!d.is_empty() && d.len() < 150, "{d:?}");
        assert!(d.is_subset(&names(&rust, 0)), "{d:?}");
    } else {
        assert!(
            diamond.errors.iter().any(|e| e.contains("IndexError")),
            "{:?}",
            diamond.errors
        );
    }
}

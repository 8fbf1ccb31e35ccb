//! Debian's redis-server, memcached, nginx, haproxy, apache2, rabbitmq and
//! zookeeper, started on free ports on 127.0.0.1 (in temp dirs) and killed
//! when their handle is dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Killed};

/// Starts `program` with `args` and waits until it listens on `port`.
fn start(program: &str, args: &[&str], port: u16) -> Killed {
    let path = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists());
    let path = path.unwrap_or_else(|| panic!("{program} is not installed (.ci/run installs it: apt-get install redis-server memcached nginx-light haproxy apache2)"));
    let child = Command::new(path)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Killed(child);
    common::wait_listening(port, Duration::from_secs(10), program);
    server
}

/// A redis-server that saves nothing, and its port.
pub fn redis() -> (Killed, u16) {
    redis_with(&[])
}

/// The same with `extra` arguments (`--requirepass`, say).
pub fn redis_with(extra: &[&str]) -> (Killed, u16) {
    let port = common::free_port();
    let p = port.to_string();
    let mut args = vec![
        "--port",
        &p,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        "64mb",
    ];
    args.extend_from_slice(extra);
    (start("redis-server", &args, port), port)
}

/// A memcached holding three items (`k0`…`k2`), and its port.
pub fn memcached() -> (Killed, u16) {
    let port = common::free_port();
    let p = port.to_string();
    let args = [
        "-p",
        &p,
        "-l",
        "127.0.0.1",
        "-U",
        "0",
        "-u",
        "root",
        "-m",
        "16",
    ];
    let server = start("memcached", &args, port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for k in 0..3 {
        s.write_all(format!("set k{k} 0 0 5\r\nhello\r\n").as_bytes())
            .unwrap();
    }
    let mut buf = [0u8; 64];
    let mut got = String::new();
    while got.matches("STORED").count() < 3 {
        let n = s.read(&mut buf).unwrap();
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    (server, port)
}

/// An nginx with `stub_status` on `/nginx_status` (its files in `dir`),
/// after four requests to it, and its port.
pub fn nginx(dir: &Path) -> (Killed, u16) {
    let port = common::free_port();
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port};\n    location /nginx_status {{ stub_status; }}\n    location = / {{ return 200 \"ok\\n\"; }}\n    location / {{ return 404; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    let server = start(
        "nginx",
        &["-c", conf.to_str().unwrap(), "-g", "daemon off;"],
        port,
    );
    for _ in 0..4 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut b = Vec::new();
        s.read_to_end(&mut b).unwrap();
    }
    (server, port)
}

/// An haproxy whose frontend serves its stats on `/haproxy` (CSV with
/// `;csv`), its config in `dir`, and its port.
pub fn haproxy(dir: &Path) -> (Killed, u16) {
    let port = common::free_port();
    let conf = dir.join("haproxy.cfg");
    std::fs::write(
        &conf,
        format!(
            "global\n  maxconn 64\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\nfrontend web\n  bind 127.0.0.1:{port}\n  stats enable\n  stats uri /haproxy\n  default_backend app\nbackend app\n  server s1 127.0.0.1:9\n"
        ),
    )
    .unwrap();
    (
        start("haproxy", &["-f", conf.to_str().unwrap(), "-db"], port),
        port,
    )
}

/// An apache2 with `mod_status` on `/server-status` (ExtendedStatus on),
/// its files in `dir`, and its port.
pub fn apache2(dir: &Path) -> (Killed, u16) {
    let port = common::free_port();
    let d = dir.display();
    let m = "/usr/lib/apache2/modules";
    let conf = dir.join("httpd.conf");
    std::fs::write(
        &conf,
        format!(
            "ServerRoot {d}\nServerName localhost\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nUser daemon\nGroup daemon\nLoadModule mpm_event_module {m}/mod_mpm_event.so\nLoadModule authz_core_module {m}/mod_authz_core.so\nLoadModule status_module {m}/mod_status.so\nExtendedStatus On\n<Location /server-status>\n  SetHandler server-status\n</Location>\n"
        ),
    )
    .unwrap();
    (
        start(
            "apache2",
            &["-f", conf.to_str().unwrap(), "-DFOREGROUND"],
            port,
        ),
        port,
    )
}

/// A RabbitMQ node with the management plugin (its files in `dir`, the
/// default `guest` user, loopback only), and the management API's port.
pub fn rabbitmq(dir: &Path) -> (Killed, u16) {
    let (amqp, api, dist) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    std::fs::write(dir.join("enabled_plugins"), "[rabbitmq_management].\n").unwrap();
    std::fs::write(
        dir.join("rabbitmq.conf"),
        format!("listeners.tcp.default = 127.0.0.1:{amqp}\nmanagement.tcp.port = {api}\nmanagement.tcp.ip = 127.0.0.1\n"),
    )
    .unwrap();
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();
    let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
        .env("HOME", dir)
        .env("RABBITMQ_NODENAME", format!("wdtest{amqp}@localhost"))
        .env("RABBITMQ_DIST_PORT", dist.to_string())
        .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
        .env("RABBITMQ_LOG_BASE", d("log"))
        .env("RABBITMQ_CONFIG_FILE", d("rabbitmq"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
        .env("RABBITMQ_PID_FILE", d("pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rabbitmq-server (.ci/run installs it)");
    let server = Killed(child);
    // The management API is the last to listen (30 s: a slow machine).
    common::wait_listening(api, Duration::from_secs(60), "rabbitmq's management API");
    (server, api)
}

/// A standalone ZooKeeper (Debian's 3.8, its data in `dir`) that answers
/// the `mntr` four-letter command, and its client port.
pub fn zookeeper(dir: &Path) -> (Killed, u16) {
    let port = common::free_port();
    let conf = dir.join("zoo.cfg");
    std::fs::write(
        &conf,
        format!(
            "dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=mntr\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("java")
        .args(["-Xmx128m", "-cp", "/usr/share/java/zookeeper.jar"])
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("java and zookeeper (.ci/run installs them: apt-get install zookeeper)");
    let server = Killed(child);
    // A JVM on a busy machine: up to 60 s until it serves (it listens
    // before, answering "not currently serving requests").
    let start = Instant::now();
    let serving = || -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        // A JVM still starting may accept and say nothing: never wait on
        // it for ever (this read once hung a whole test run).
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut answer = String::new();
        s.write_all(b"mntr\n").is_ok()
            && s.read_to_string(&mut answer).is_ok()
            && answer.contains("zk_server_state")
    };
    while !serving() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "zookeeper did not serve on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

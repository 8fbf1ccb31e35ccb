//! TLS to the backends, done by the host: graphite, influxdb, opentsdb and
//! httppost with `tls = true` against a real nginx (Debian's, with its
//! stream module for graphite's plaintext) terminating TLS in front of the
//! real carbon-cache, InfluxDB (its HTTP API and its OpenTSDB service) and
//! an HTTP receiver; certificates made here by openssl (a CA and leaves it
//! signs: rustls refuses a self-signed leaf). Verification on: what each
//! backend holds equals what the archive wrote. Then the failures an
//! operator meets, each named in the log: an unknown CA, a wrong name, a
//! missing client certificate; and the config errors.

use super::mqtt::mqtt_subscribe_qos;
use super::*;
use std::path::{Path, PathBuf};

/// A CA, a server leaf for `localhost` and 127.0.0.1 it signs, a client
/// certificate it signs, and another CA.
struct Certs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Certs {
    fn file(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let (key, pem, subj) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN=wdiamond test {ca}"),
        );
        args.extend([
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(d, &args);
    }
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(
        d.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for leaf in ["server", "client"] {
        let mut args = vec!["req"];
        args.extend(ec);
        let (key, csr, subj) = (
            format!("{leaf}.key"),
            format!("{leaf}.csr"),
            format!("/CN={leaf}"),
        );
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(d, &args);
        let (pem, ext) = (format!("{leaf}.pem"), format!("{leaf}.ext"));
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    let path = d.to_path_buf();
    Certs { _dir: dir, path }
}

/// What one TLS listener of nginx forwards to.
enum Upstream {
    /// HTTP (an `http` server proxying to this port).
    Http(u16),
    /// HTTP, requiring a client certificate signed by the CA.
    HttpMutual(u16),
    /// TCP (a `stream` server proxying to this port).
    Stream(u16),
}

/// nginx terminating TLS on a free port for each upstream; killed on drop.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
    ports: Vec<u16>,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(certs: &Certs, upstreams: &[Upstream]) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let tls = format!(
        "ssl_certificate {};\n    ssl_certificate_key {};\n",
        certs.file("server.pem"),
        certs.file("server.key")
    );
    let mut http = String::new();
    let mut stream = String::new();
    let mut ports = Vec::new();
    for u in upstreams {
        let port = free_port();
        ports.push(port);
        match u {
            Upstream::Http(to) | Upstream::HttpMutual(to) => {
                let mutual = if matches!(u, Upstream::HttpMutual(_)) {
                    format!(
                        "ssl_client_certificate {};\n    ssl_verify_client on;\n",
                        certs.file("ca.pem")
                    )
                } else {
                    String::new()
                };
                http.push_str(&format!(
                    "  server {{\n    listen 127.0.0.1:{port} ssl;\n    {tls}    {mutual}    location / {{ proxy_pass http://127.0.0.1:{to}; proxy_http_version 1.1; }}\n  }}\n"
                ));
            }
            Upstream::Stream(to) => stream.push_str(&format!(
                "  server {{\n    listen 127.0.0.1:{port} ssl;\n    {tls}    proxy_pass 127.0.0.1:{to};\n  }}\n"
            )),
        }
    }
    let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
    let load = if stream.is_empty() {
        String::new()
    } else {
        assert!(
            Path::new(module).exists(),
            "{module} is missing (.ci/run installs it: apt-get install libnginx-mod-stream)"
        );
        format!("load_module {module};\n")
    };
    let stream = if stream.is_empty() {
        String::new()
    } else {
        format!("stream {{\n{stream}}}\n")
    };
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "{load}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{http}}}\n{stream}"
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx (apt-get install nginx-light)");
    let child = Command::new(bin)
        .args(["-c", conf.to_str().unwrap(), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let n = Nginx {
        child,
        _dir: dir,
        ports,
    };
    for p in &n.ports {
        common::wait_listening(*p, Duration::from_secs(10), "nginx");
    }
    n
}

fn verified(certs: &Certs) -> String {
    format!("tls = true\ntls_ca = {:?}\n", certs.file("ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphite_influxdb_opentsdb_and_httppost_over_verified_tls() {
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(dir.path());
    carbon.start();
    let influx = Influx::start();
    influx.query("", "CREATE DATABASE graphite");
    influx.query("", "CREATE DATABASE opentsdb");
    let (http_port, posts) = http_server();
    let (mutual_port, mutual_posts) = http_server();
    let proxy = nginx(
        &certs,
        &[
            Upstream::Stream(carbon.port),
            Upstream::Http(influx.http),
            Upstream::Http(influx.tsdb),
            Upstream::Http(http_port),
            Upstream::HttpMutual(mutual_port),
        ],
    );
    let [graphite, influxdb, opentsdb, httppost, mutual] = proxy.ports[..] else {
        unreachable!()
    };
    let tls = verified(&certs);

    // graphite plaintext through TLS into carbon, read back from whisper.
    let want = run_with(
        "graphite",
        &format!("[handlers.graphite]\nhost = \"localhost\"\nport = {graphite}\n{tls}"),
        3.5,
    )
    .await;
    check_carbon(&carbon, &want);

    // InfluxDB's line protocol over HTTPS.
    let want = run_with(
        "influxdb",
        &format!("[handlers.influxdb]\nhostname = \"127.0.0.1\"\nport = {influxdb}\n{tls}"),
        3.5,
    )
    .await;
    let (path, points) = want
        .iter()
        .find(|(p, _)| p.ends_with(".loadavg.01"))
        .unwrap();
    eventually(|| {
        let got = influx.points("graphite", path, None);
        if got.len() != points.len() {
            return Err(format!(
                "{path}: {} in influxdb, {} published",
                got.len(),
                points.len()
            ));
        }
        Ok(())
    });

    // OpenTSDB's /api/put over HTTPS, into InfluxDB's OpenTSDB service.
    let want = run_with(
        "opentsdb",
        &format!("[handlers.opentsdb]\nhost = \"localhost\"\nport = {opentsdb}\n{tls}"),
        3.5,
    )
    .await;
    let points = &want["servers.hnd.loadavg.01"];
    eventually(|| {
        let got = influx.points("opentsdb", "loadavg.01", Some(("hostname", "hnd")));
        if got.len() != points.len() {
            return Err(format!(
                "{} in the opentsdb database, {} published",
                got.len(),
                points.len()
            ));
        }
        Ok(())
    });

    // httppost to an https:// URL, and with a client certificate (mTLS).
    let want = run_with(
        "httppost",
        &format!("[handlers.httppost]\nurl = \"https://localhost:{httppost}/metrics\"\n{tls}"),
        2.5,
    )
    .await;
    let total: usize = want.values().map(Vec::len).sum();
    let lines: usize = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.lines().count())
        .sum();
    assert_eq!(lines, total, "every metric posted once over TLS");
    let want = run_with(
        "httppost",
        &format!(
            "[handlers.httppost]\nurl = \"https://localhost:{mutual}/metrics\"\n{tls}tls_cert = {:?}\ntls_key = {:?}\n",
            certs.file("client.pem"),
            certs.file("client.key")
        ),
        2.5,
    )
    .await;
    let total: usize = want.values().map(Vec::len).sum();
    let lines: usize = mutual_posts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.lines().count())
        .sum();
    assert_eq!(
        lines, total,
        "every metric posted once with a client certificate"
    );
}

/// Runs the agent binary for `secs` with a graphite handler section (its
/// `port` and TLS keys in `handler`) and loadavg at 1 s; returns its log.
fn agent_log(handler: &str, host: &str, secs: f64) -> String {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {:?}\n[handlers.graphite]\nhost = \"localhost\"\n{handler}\n[collectors.default]\ninterval = 1\nhostname = {host:?}\n[collectors.loadavg]\nenabled = true\n",
            common::cache_dir()
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_wdiamond"))
        .args(["run", conf.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs_f64(secs));
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn tls_failures_name_their_reason_and_bad_settings_are_config_errors() {
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(dir.path());
    carbon.start();
    let proxy = nginx(&certs, &[Upstream::Stream(carbon.port)]);
    let port = proxy.ports[0];

    // Another CA: the server's certificate is not trusted.
    let log = agent_log(
        &format!(
            "port = {port}\ntls = true\ntls_ca = {:?}\n",
            certs.file("other-ca.pem")
        ),
        "unknownca",
        2.5,
    );
    assert!(log.contains("UnknownIssuer"), "{log}");
    // The right CA, another name: the certificate is not for it.
    let log = agent_log(
        &format!(
            "port = {port}\n{}tls_server_name = \"db.example.org\"\n",
            verified(&certs)
        ),
        "wrongname",
        2.5,
    );
    assert!(
        log.contains("certificate not valid for name \"db.example.org\""),
        "{log}"
    );
    // No verification: it connects (and says loudly that it does not verify).
    let log = agent_log(
        &format!("port = {port}\ntls = true\ninsecure_skip_verify = true\n"),
        "insecure",
        3.5,
    );
    assert!(log.contains("NOT verified"), "{log}");
    assert!(!log.contains("handshake"), "{log}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    eventually(|| {
        let got = carbon.fetch("servers.insecure.loadavg.01", now - 60, now + 2);
        if got.is_empty() {
            return Err("nothing arrived without verification".into());
        }
        Ok(())
    });
    // Nothing arrived from the runs whose handshake failed.
    for host in ["unknownca", "wrongname"] {
        assert!(carbon
            .fetch(&format!("servers.{host}.loadavg.01"), now - 60, now + 2)
            .is_empty());
    }
    // Plaintext to a TLS port: the server hangs up; an error, no trap.
    let log = agent_log(&format!("port = {port}\n"), "plain", 2.5);
    assert!(!log.contains("panicked"), "{log}");

    // Settings that cannot work: config errors naming the key, exit 78.
    for (keys, says) in [
        (format!("port = {port}\ntls_ca = {:?}\n", certs.file("ca.pem")), "`handlers.graphite.tls_ca`: `tls_ca` configures TLS, which is off here: add `tls = true`"),
        (format!("port = {port}\ntls = true\ntls_ca = \"/nonexistent/ca.pem\"\n"), "`handlers.graphite.tls_ca`: /nonexistent/ca.pem"),
        (format!("port = {port}\ntls = true\ntls_ca = {:?}\n", certs.file("server.ext")), "no PEM certificate"),
        (format!("port = {port}\ntls = true\ntls_cert = {:?}\n", certs.file("client.pem")), "set `tls_key` too"),
        (format!("port = {port}\ntls = \"maybe\"\n"), "`handlers.graphite.tls`: expected true or false"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conf = common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {:?}\n[handlers.graphite]\nhost = \"localhost\"\n{keys}",
                common::cache_dir()
            ),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_wdiamond"))
            .args(["check", conf.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{keys}: {err}");
        assert!(err.contains(says), "{keys}: {err}");
    }
}

/// MQTT over TLS to mosquitto's own TLS listener (the backend's TLS, no
/// proxy), QoS 1; a subscriber on its plain listener gets every metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_tls_to_mosquittos_own_listener() {
    let certs = certs();
    let (plain, tls_port) = (free_port(), free_port());
    let conf = certs.path.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nallow_anonymous true\nlistener {plain} 127.0.0.1\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            certs.file("ca.pem"),
            certs.file("server.pem"),
            certs.file("server.key")
        ),
    )
    .unwrap();
    let mut broker = Command::new("mosquitto")
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian's mosquitto package)");
    common::wait_listening(tls_port, Duration::from_secs(10), "mosquitto");
    let (got, arrived) = mqtt_subscribe_qos(plain);
    let want = run_with(
        "mqtt",
        &format!(
            "[handlers.mqtt]\nhost = \"localhost\"\nport = {tls_port}\nqos = 1\n{}",
            verified(&certs)
        ),
        3.5,
    )
    .await;
    assert!(want.keys().any(|p| p.ends_with(".loadavg.01")), "{want:?}");
    // Every metric published, with its value and timestamp, came over TLS.
    eventually(|| {
        let got = got.lock().unwrap();
        for (path, points) in &want {
            for (t, v) in points {
                let topic = path.replace('.', "/");
                let here = got.iter().any(|(tp, payload)| {
                    *tp == topic
                        && payload.split_once(' ').is_some_and(|(pv, pt)| {
                            pt.parse::<u64>().ok() == Some(*t)
                                && pv
                                    .parse::<f64>()
                                    .is_ok_and(|x| (x - v).abs() <= 1e-6 * v.abs().max(1.0))
                        })
                });
                if !here {
                    return Err(format!("{path} {v} {t} not received over TLS"));
                }
            }
        }
        Ok(())
    });
    let arrived = arrived.lock().unwrap().clone();
    assert!(
        arrived.iter().all(|q| *q == 1),
        "qos 1: received at {arrived:?}"
    );
    let _ = broker.kill();
    let _ = broker.wait();
}

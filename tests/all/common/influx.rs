//! Debian's influxd on free ports, with its HTTP API and its OpenTSDB
//! service, queried back over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A real influxd with HTTP and the OpenTSDB service on free ports.
pub struct Influx {
    /// Its HTTP API's port.
    pub http: u16,
    /// Its OpenTSDB service's port.
    pub tsdb: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Influx {
    /// Starts one; waits until both ports answer. A start that fails
    /// (another test's server took one of the free ports between the
    /// check and the bind) is tried again on other ports, three times.
    pub fn start() -> Influx {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Influx::try_start() {
                Ok(i) => return i,
                Err(e) => failures.push(e),
            }
        }
        panic!("influxd did not start:\n{}", failures.join("\n"));
    }

    fn try_start() -> Result<Influx, String> {
        let dir = tempfile::tempdir().unwrap();
        let (http, tsdb, rpc) = (free_port(), free_port(), free_port());
        let d = dir.path().display();
        let conf = dir.path().join("influxdb.conf");
        std::fs::write(
            &conf,
            format!(
                "reporting-enabled = false\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n  query-log-enabled = false\n[monitor]\n  store-enabled = false\n[http]\n  enabled = true\n  bind-address = \"127.0.0.1:{http}\"\n  log-enabled = false\n[[opentsdb]]\n  enabled = true\n  bind-address = \"127.0.0.1:{tsdb}\"\n  database = \"opentsdb\"\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("influxd.log");
        let mut child = Command::new("influxd")
            .arg("-config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("influxd (.ci/run installs influxdb)");
        let start = Instant::now();
        let listening = |p: u16| TcpStream::connect(("127.0.0.1", p)).is_ok();
        while !(listening(http) && listening(tsdb)) {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || start.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = said.lines().rev().take(5).collect();
                return Err(format!(
                    "ports {http}, {tsdb}, {rpc}: {} ({exited:?}); its log ends: {}",
                    if exited.is_some() {
                        "exited"
                    } else {
                        "not listening after 60 s"
                    },
                    tail.join(" | ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Influx {
            http,
            tsdb,
            child,
            _dir: dir,
        })
    }

    /// The JSON answer of InfluxQL `q` on `db`.
    pub fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let q: String = q
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /query?db={db}&epoch=s&q={q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
        // Chunked or not, the JSON object is the first '{'..last '}'.
        let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
        serde_json::from_str(json).unwrap()
    }

    /// `(timestamp, value)` of a measurement.
    pub fn points(
        &self,
        db: &str,
        measurement: &str,
        tag: Option<(&str, &str)>,
    ) -> Vec<(u64, f64)> {
        let filter = tag
            .map(|(k, v)| format!(" WHERE \"{k}\" = '{v}'"))
            .unwrap_or_default();
        let r = self.query(db, &format!("SELECT value FROM \"{measurement}\"{filter}"));
        r["results"][0]["series"][0]["values"]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .map(|v| (v[0].as_u64().unwrap(), v[1].as_f64().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

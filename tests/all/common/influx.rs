//! Debian's influxd on free ports, with its HTTP API and its OpenTSDB
//! service, queried back over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    /// Starts one; waits until both ports answer.
    pub fn start() -> Influx {
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
        let child = Command::new("influxd")
            .arg("-config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("influxd (.ci/run installs influxdb)");
        super::wait_listening(http, Duration::from_secs(30), "influxd's HTTP API");
        super::wait_listening(tsdb, Duration::from_secs(30), "influxd's OpenTSDB service");
        Influx {
            http,
            tsdb,
            child,
            _dir: dir,
        }
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

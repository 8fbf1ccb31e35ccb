//! A real carbon-cache (Debian's graphite-carbon) for tests: its own
//! config, free ports, its own storage; whisper files read back with
//! `whisper-fetch`.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::free_port;

/// A carbon-cache with its own config and storage.
pub struct Carbon {
    dir: PathBuf,
    /// The plaintext port.
    pub port: u16,
    /// The pickle port.
    pub pickle_port: u16,
    child: Option<Child>,
}

impl Carbon {
    /// A carbon in `dir` (not started).
    pub fn new(dir: &Path) -> Carbon {
        let port = free_port();
        let (pickle, query) = (free_port(), free_port());
        for d in ["conf", "storage/whisper", "log", "run"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let d = dir.display();
        std::fs::write(
            dir.join("conf/carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {d}/storage/\nLOCAL_DATA_DIR = {d}/storage/whisper/\nCONF_DIR = {d}/conf/\nLOG_DIR = {d}/log/\nPID_DIR = {d}/run/\nDATABASE = whisper\nUSER =\nMAX_CACHE_SIZE = inf\nMAX_UPDATES_PER_SECOND = 100000\nMAX_CREATES_PER_MINUTE = 100000\nLINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {port}\nENABLE_UDP_LISTENER = False\nPICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle}\nCACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = {query}\nWHISPER_AUTOFLUSH = True\nLOG_LISTENER_CONNECTIONS = False\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("conf/storage-schemas.conf"),
            "[all]\npattern = .*\nretentions = 1s:2h\n",
        )
        .unwrap();
        Carbon {
            dir: dir.to_path_buf(),
            port,
            pickle_port: pickle,
            child: None,
        }
    }

    /// Starts it and waits for its port.
    pub fn start(&mut self) {
        let d = self.dir.display();
        let out = std::fs::File::create(self.dir.join("log/console.log")).unwrap();
        let child = Command::new("carbon-cache")
            .args([
                format!("--config={d}/conf/carbon.conf"),
                "--nodaemon".into(),
                format!("--pidfile={d}/run/carbon.pid"),
                "start".into(),
            ])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("carbon-cache is not installed (.ci/run installs graphite-carbon)");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "carbon did not start: {}",
                std::fs::read_to_string(self.dir.join("log/console.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// Sends `sig` to it (SIGSTOP: a hung cache; SIGCONT: back).
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: plain kill(2) of our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// `(timestamp -> value)` stored for `path`.
    pub fn fetch(&self, path: &str, from: u64, until: u64) -> BTreeMap<u64, f64> {
        let file = self
            .dir
            .join("storage/whisper")
            .join(path.replace('.', "/") + ".wsp");
        if !file.exists() {
            return BTreeMap::new();
        }
        let out = Command::new("whisper-fetch")
            .arg(format!("--from={from}"))
            .arg(format!("--until={until}"))
            .arg(&file)
            .output()
            .expect("whisper-fetch (python3-whisper)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (t, v) = l.split_once('\t')?;
                Some((t.parse().ok()?, v.trim().parse().ok()?))
            })
            .collect()
    }
}

impl Drop for Carbon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

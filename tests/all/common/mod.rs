//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wdiamond::plugin::Runtime;

pub mod carbon;
pub mod databases;
pub mod diamond;
pub mod http;
pub mod influx;
pub mod nats;
pub mod registry;
pub mod servers;

/// One engine for the whole test binary (components compile once).
pub fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(&cache_dir()).expect("runtime"))
        .clone()
}

/// The compiled-component cache used by tests.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Writes `text` as a config file in `dir`.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("wdiamond.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A test-only guest built alongside the binary.
pub fn test_guest(name: &str) -> PathBuf {
    wdiamond::plugin::guest_wasm_dir().join(format!("{name}.wasm"))
}

/// Waits until something listens on `port` of 127.0.0.1, failing the test
/// (naming `what`) after `within`.
pub fn wait_listening(port: u16, within: std::time::Duration, what: &str) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < within,
            "{what} did not listen on {port} within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The one handler of the config `text` (written to `dir`), loaded and
/// configured, for tests that call `process` directly.
pub fn handler(dir: &Path, text: &str) -> wdiamond::plugin::Instance<wdiamond::plugin::Handler> {
    let conf = write_config(dir, text);
    let config = wdiamond::config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime();
    let mut loaded = wdiamond::agent::load(&rt, &config, &wdiamond::host::HostFacts::default())
        .unwrap_or_else(|e| panic!("{e}"));
    loaded.handlers.remove(0).instance
}

/// A chunk of gauges with these paths, value 1, timestamp 7.
pub fn gauges<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> Arc<wdiamond::metric::Chunk> {
    let source = Arc::new(wdiamond::metric::Source {
        host: "h".into(),
        collector: "c".into(),
        tenant: None,
        ttl: 60,
    });
    let mut c = wdiamond::metric::Chunk::default();
    for p in paths {
        c.push(
            p.as_ref(),
            1.0,
            0,
            wdiamond::bindings::types::MetricKind::Gauge,
            7,
            None,
            &source,
        )
        .unwrap();
    }
    Arc::new(c)
}

/// Spool segment files (`*.spool`) in a handler's spool directory.
pub fn spool_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "spool"))
                .count()
        })
        .unwrap_or(0)
}

/// Loads the config file `conf` (every plugin described and configured)
/// and starts an agent on it, in this test's tokio runtime.
pub fn start_agent(conf: &Path) -> wdiamond::agent::Agent {
    let config = wdiamond::config::load(conf).unwrap_or_else(|e| panic!("{e}"));
    let rt = runtime();
    let facts = wdiamond::host::HostFacts::default();
    let loaded = tokio::task::block_in_place(|| wdiamond::agent::load(&rt, &config, &facts))
        .unwrap_or_else(|e| panic!("{e}"));
    wdiamond::agent::Agent::start(rt, facts, conf, &config, loaded)
}

/// The lines of a text file (an archive handler's log), none if it is
/// missing.
pub fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A server the test started, killed when dropped — also when the test
/// panics before its own cleanup, so a failed run leaves no server (nor a
/// pipe held open) behind.
pub struct Killed(pub std::process::Child);

impl std::ops::Deref for Killed {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        // SIGTERM first, so that a server with workers (nginx, apache2)
        // stops them; SIGKILL if it is still there after 3 s.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(3) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `promtool check metrics` on a page: its output, and whether it passed.
pub fn promtool(page: &[u8]) -> (bool, String) {
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), page).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Runs the agent's `run` command `cmd` for `for_`, then SIGTERM: its
/// output (stdout and stderr captured).
pub fn run_then_stop(
    mut cmd: std::process::Command,
    for_: std::time::Duration,
) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(for_);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait_with_output().unwrap()
}

/// Every file under `dir` (an archive, a spool) whose bytes hold
/// `needle` (every file when it is empty), but those `skip` names (the
/// secret's own file, the config).
pub fn files_holding(dir: &Path, needle: &str, skip: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !skip(&p) {
                let bytes = std::fs::read(&p).unwrap_or_default();
                // An empty needle: every file.
                if needle.is_empty() || bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

/// Runs the agent's binary with `args` and `env` (its compiled-component
/// cache the tests' own), failing the test if it has not ended within
/// `limit` (a hang).
pub fn wdiamond_within(
    args: &[&str],
    env: &[(&str, &str)],
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_wdiamond"))
        .args(args)
        .envs(env.iter().copied())
        .env("XDG_CACHE_HOME", cache_dir().parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("wdiamond {args:?} hung");
        }
    }
}

//! The daemon as an operator runs it (the release binary on a config,
//! signalled, its log read), and the processes it leaves on the machine.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// The release binary, running a config.
pub(super) struct Daemon {
    pub(super) child: Child,
    log: std::path::PathBuf,
    pub(super) dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `wdiamond run` on `sections` (archive handler, interval 1).
    pub(super) fn start(sections: &str, nofile: Option<u64>) -> Daemon {
        Daemon::start_with(&["archive"], sections, nofile)
    }

    /// The same with these handlers (`sections` configures any but the
    /// archive).
    pub(super) fn start_with(handlers: &[&str], sections: &str, nofile: Option<u64>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive.log");
        let conf = common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = {handlers:?}\nplugin_cache_dir = {:?}\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\nhostname = \"d\"\n{sections}",
                common::cache_dir()
            ),
        );
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wdiamond"));
        cmd.args(["run", conf.to_str().unwrap()])
            .env("WDIAMOND_TEST_SECRET", "hunter2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    libc::setrlimit(libc::RLIMIT_NOFILE, &l);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().unwrap();
        Daemon { child, log, dir }
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn count(&self, what: &str) -> usize {
        std::fs::read_dir(format!("/proc/{}/{what}", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub(super) fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub(super) fn archive(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("archive.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` and waits for the exit; returns the time it took.
    pub(super) fn signal_and_wait(&mut self, sig: i32, bound: Duration) -> Duration {
        let t = Instant::now();
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid() as i32, sig) };
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(s.success(), "exit status {s:?}; log:\n{}", self.log());
                return t.elapsed();
            }
            if t.elapsed() > bound {
                let _ = self.child.kill();
                panic!("no exit {bound:?} after signal {sig}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sleep` duration no other test process uses: strays of an earlier run
/// cannot be mistaken for this run's.
pub(super) fn unique_secs(offset: u32) -> u32 {
    100_000 + (std::process::id() % 100_000) * 10 + offset
}

/// Processes whose command line is exactly `cmdline` (space-separated).
pub(super) fn processes(cmdline: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let c: Vec<String> = c
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            if c.join(" ") == cmdline {
                found.push(pid);
            }
        }
    }
    found
}

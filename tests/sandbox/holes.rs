//! The holes a hostile plugin found (a sleep that held the agent, a FIFO, a
//! daemonised grandchild, a slow peer, symlink races, `..` in argv and Unix
//! paths, log floods, aliased strings) and their neighbours. Each test
//! fails on the code before the fix (checked by hand when it was written).

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use wdiamond::plugin::FailureKind;

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

// ---------------------------------------------------------------------------
// 1. Hangs: a guest that sleeps, wherever it sleeps.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_collect_ends_at_its_deadline() {
    let o = beside_neighbour(
        "sleep 20 s in collect",
        &bad(
            "sleep",
            "count = 20\n[collectors.bad.limits]\ntimeout = 1\n",
        ),
        "bad",
    )
    .await;
    // Every run is cut at 1 s (not 20 s), counted as a timeout, and the
    // instance replaced; the stop did not wait for the sleep either.
    assert!(
        get(&o.bad.timeouts) >= 2,
        "timeouts {}",
        get(&o.bad.timeouts)
    );
    assert!(
        get(&o.bad.last_duration_us) < 1_500_000,
        "a run took {} µs",
        get(&o.bad.last_duration_us)
    );
}

#[test]
fn a_setup_call_that_sleeps_ends_at_the_setup_deadline() {
    // In `configure` (mode read from the config) and in `describe`.
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n{}\n[collectors.stall]\nenabled = true\ncomponent = {:?}\n",
            common::cache_dir(),
            bad("sleep-configure", "count = 60\n"),
            common::test_guest("collector_stall")
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let t = Instant::now();
    let errors = wdiamond::agent::load(&common::runtime(), &config, &HostFacts::default())
        .err()
        .expect("both refused");
    let took = t.elapsed();
    assert_eq!(errors.0.len(), 2, "{errors}");
    let text = errors.to_string();
    assert!(
        text.contains("collectors.bad") && text.contains("collectors.stall"),
        "{text}"
    );
    assert!(text.contains("blocked"), "{text}");
    // Two setup deadlines of 5 s, one after the other; not 60 s or a day.
    assert!(took < Duration::from_secs(16), "loading took {took:?}");
}

#[test]
fn a_handler_sleeping_in_process_is_cut_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = common::handler(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"stall\"]\nplugin_cache_dir = {:?}\n[handlers.stall]\ncomponent = {:?}\n",
            common::cache_dir(),
            common::test_guest("handler_stall")
        ),
    );
    let t = Instant::now();
    let (r, _) = h.process(common::gauges(["a.b"]), Duration::from_millis(700));
    let f = r.expect_err("cut");
    assert_eq!(f.kind, FailureKind::Timeout, "{}", f.message);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t.elapsed()
    );
}

// ---------------------------------------------------------------------------
// The daemon as an operator runs it: signals, resources, the log.

/// The release binary, running a config.
struct Daemon {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `wdiamond run` on `sections` (archive handler, interval 1).
    fn start(sections: &str, nofile: Option<u64>) -> Daemon {
        Daemon::start_with(&["archive"], sections, nofile)
    }

    /// The same with these handlers (`sections` configures any but the
    /// archive).
    fn start_with(handlers: &[&str], sections: &str, nofile: Option<u64>) -> Daemon {
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
        Daemon {
            child,
            log,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn count(&self, what: &str) -> usize {
        std::fs::read_dir(format!("/proc/{}/{what}", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn archive(&self) -> Vec<String> {
        std::fs::read_to_string(self._dir.path().join("archive.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `sig` and waits for the exit; returns the time it took.
    fn signal_and_wait(&mut self, sig: i32, bound: Duration) -> Duration {
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
fn unique_secs(offset: u32) -> u32 {
    100_000 + (std::process::id() % 100_000) * 10 + offset
}

/// Processes whose command line is exactly `cmdline` (space-separated).
fn processes(cmdline: &str) -> Vec<u32> {
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

#[test]
fn sigterm_ends_the_agent_within_its_grace_with_plugins_stuck_everywhere() {
    // A collector asleep in collect (its deadline far away), one asleep in
    // a granted command, a handler asleep in process: SIGTERM still ends
    // the agent within the stated bound, exit 0.
    let g = guest();
    let n = unique_secs(1);
    let stall = common::test_guest("handler_stall");
    let mut d = Daemon::start_with(
        &["archive", "stall"],
        &format!(
            "[handlers.stall]\ncomponent = {stall:?}\n[collectors.neighbour]\nenabled = true\ncomponent = \"loadavg\"\n\
             [collectors.sleeper]\nenabled = true\ncomponent = {g:?}\nmode = \"sleep\"\ncount = 1000\n[collectors.sleeper.limits]\ntimeout = 600\n\
             [collectors.cmd]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"/bin/sleep {n}\"\n[collectors.cmd.grants]\ncommands = [[\"/bin/sleep\", \"{n}\"]]\n[collectors.cmd.limits]\ntimeout = 600\ncommand_timeout = 600\n"
        ),
        None,
    );
    std::thread::sleep(Duration::from_millis(2500));
    let took = d.signal_and_wait(libc::SIGTERM, STOP_BOUND);
    eprintln!("SIGTERM with stuck plugins: exited in {took:?}");
    assert!(
        processes(&format!("/bin/sleep {n}")).is_empty(),
        "the command outlived the agent"
    );
    // The archive delivered beside the stuck handler.
    assert!(
        d.archive()
            .iter()
            .any(|l| l.starts_with("servers.d.loadavg.01 ")),
        "log:\n{}",
        d.log()
    );
}

#[test]
fn sigterm_during_a_reload_stuck_in_describe_is_acted_on() {
    let mut d = Daemon::start(
        "[collectors.neighbour]\nenabled = true\ncomponent = \"loadavg\"\n",
        None,
    );
    std::thread::sleep(Duration::from_millis(1500));
    // The new configuration adds a plugin whose describe never returns.
    let conf = d._dir.path().join("wdiamond.toml");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "[collectors.stall]\nenabled = true\ncomponent = {:?}\n",
        common::test_guest("collector_stall")
    ));
    std::fs::write(&conf, text).unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    let took = d.signal_and_wait(libc::SIGTERM, Duration::from_secs(4) + STOP_BOUND);
    eprintln!("SIGTERM during a stuck reload: exited in {took:?}");
    assert!(d.log().contains("stopping during a reload"), "{}", d.log());
}

// ---------------------------------------------------------------------------
// 2. FIFOs, devices and secrets under a granted glob.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_under_a_glob_is_denied_and_an_exactly_granted_one_never_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (d, g) = (dir.path().display(), guest());
    let sections = format!(
        "[collectors.bad]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"{d}/fifo\"\n[collectors.bad.grants]\nfiles = [\"{d}/*\"]\n[collectors.bad.limits]\ntimeout = 1\n\
         [collectors.exact]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"{d}/fifo\"\n[collectors.exact.grants]\nfiles = [\"{d}/fifo\"]\n[collectors.exact.limits]\ntimeout = 1\n\
         [collectors.environ]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"/proc/self/environ\"\n[collectors.environ.grants]\nfiles = [\"/proc/self/*\"]\n"
    );
    let o = beside_neighbour("a FIFO under a glob", &sections, "bad").await;
    assert!(get(&o.bad.denials) >= 3, "the FIFO needs an exact grant");
    assert_eq!(get(&o.bad.timeouts), 0);
    // Granted exactly, a FIFO without a writer is read without blocking:
    // every run ends (with an error result: timed out), none is cut.
    let (_, exact) = o.others.iter().find(|(n, _)| n == "exact").unwrap();
    assert!(
        get(&exact.runs) >= 3 && get(&exact.timeouts) == 0,
        "runs {} timeouts {}",
        get(&exact.runs),
        get(&exact.timeouts)
    );
    assert_eq!(get(&exact.denials), 0);
    // The agent's environment is not reachable through /proc/self/*.
    let (_, environ) = o.others.iter().find(|(n, _)| n == "environ").unwrap();
    assert!(get(&environ.denials) >= 3);
}

// ---------------------------------------------------------------------------
// 3 and 8. Commands: daemonised grandchildren, leaks, stdin.

#[test]
fn a_command_that_daemonises_returns_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("daemonise.sh");
    // A grandchild in a session of its own holding stdout, and a double
    // fork that escapes the process group.
    let (a, b, c) = (unique_secs(2), unique_secs(3), unique_secs(4));
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsetsid /bin/sleep {a} &\n( ( /bin/sleep {b} & ) & )\necho started\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.display();
    let g = guest();
    let mut d = Daemon::start(
        &format!(
            "[collectors.daemoniser]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"{s}\"\n[collectors.daemoniser.grants]\ncommands = [[\"{s}\"]]\n[collectors.daemoniser.limits]\ncommand_timeout = 1\n\
             [collectors.timeout]\nenabled = true\ncomponent = {g:?}\nmode = \"run-stdin\"\ncount = 33554432\narg = \"/bin/sleep {c}\"\n[collectors.timeout.grants]\ncommands = [[\"/bin/sleep\", \"{c}\"]]\n[collectors.timeout.limits]\ncommand_timeout = 1\n\
             [collectors.neighbour]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"/bin/true\"\n[collectors.neighbour.grants]\ncommands = [[\"/bin/true\"]]\n"
        ),
        Some(256),
    );
    std::thread::sleep(Duration::from_millis(3000));
    let (fds, threads, rss) = (d.count("fd"), d.count("task"), d.rss_kib());
    std::thread::sleep(Duration::from_millis(5000));
    let (fds2, threads2, rss2) = (d.count("fd"), d.count("task"), d.rss_kib());
    eprintln!("fds {fds} -> {fds2}, threads {threads} -> {threads2}, RSS {rss} -> {rss2} KiB");
    // 32 MiB of stdin per run to a command that never reads it: no buffer
    // is held past its call (before: +32 MiB a run).
    assert!(rss2 < rss + (48 << 10), "RSS {rss} -> {rss2} KiB");
    // Nothing accumulates run after run (a few fds and threads of slack
    // for the blocking pool's coming and going).
    assert!(fds2 <= fds + 4, "fds {fds} -> {fds2}");
    assert!(threads2 <= threads + 4, "threads {threads} -> {threads2}");
    let sleeps = [a, b, c].map(|n| format!("/bin/sleep {n}"));
    for c in &sleeps {
        assert!(
            processes(c).len() <= 1,
            "{c} accumulates: {:?}",
            processes(c)
        );
    }
    let lines = d.archive();
    // The daemonising command returned its exit status at every run.
    let exits = lines
        .iter()
        .filter(|l| l.starts_with("servers.d.misbehave.exit "))
        .count();
    assert!(exits >= 10, "{exits} exits; log:\n{}", d.log());
    d.signal_and_wait(libc::SIGTERM, STOP_BOUND);
    std::thread::sleep(Duration::from_millis(200));
    for c in &sleeps {
        assert!(
            processes(c).is_empty(),
            "{c} outlived the agent: {:?}",
            processes(c)
        );
    }
}

#[test]
fn a_killed_agent_takes_its_commands_descendants_along() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("d.sh");
    let (a, b) = (unique_secs(5), unique_secs(6));
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsetsid /bin/sleep {a} &\n/bin/sleep {b}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.display();
    let mut d = Daemon::start(
        &format!(
            "[collectors.c]\nenabled = true\ncomponent = {:?}\nmode = \"run\"\narg = \"{s}\"\n[collectors.c.grants]\ncommands = [[\"{s}\"]]\n[collectors.c.limits]\ntimeout = 60\ncommand_timeout = 60\n",
            guest()
        ),
        None,
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (a, b) = (format!("/bin/sleep {a}"), format!("/bin/sleep {b}"));
    assert_eq!(processes(&a).len(), 1, "the daemon runs");
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        processes(&a).is_empty() && processes(&b).is_empty(),
        "a descendant outlived the killed agent"
    );
}

// ---------------------------------------------------------------------------
// 4. A slow peer.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_to_a_slow_reader_ends_at_the_socket_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let mut conns = Vec::new();
            let mut buf = vec![0u8; 16 << 10];
            while !done.load(Ordering::Relaxed) {
                if let Ok((c, _)) = listener.accept() {
                    c.set_nonblocking(true).unwrap();
                    conns.push(c);
                }
                for c in &mut conns {
                    let _ = c.read(&mut buf);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let o = beside_neighbour(
        "send 16 MiB to a slow reader",
        &bad(
            "send",
            &format!("arg = \"127.0.0.1:{port}\"\ncount = 16777216\n[collectors.bad.grants]\nconnect = [\"tcp:127.0.0.1:{port}\"]\n[collectors.bad.limits]\nsocket_timeout = 1\ntimeout = 3\n"),
        ),
        "bad",
    )
    .await;
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    // The send gave up after its 1 s (an error result), well before the
    // run's 3 s deadline.
    assert!(
        get(&o.bad.guest_errors) >= 2,
        "errors {}",
        get(&o.bad.guest_errors)
    );
    assert_eq!(get(&o.bad.timeouts), 0);
    assert!(
        get(&o.bad.last_duration_us) < 2_000_000,
        "{} µs",
        get(&o.bad.last_duration_us)
    );
}

// ---------------------------------------------------------------------------
// 5. A symlink swapped between check and read.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_race_never_reads_the_ungranted_file() {
    let dir = tempfile::tempdir().unwrap();
    let (race, secret) = (dir.path().join("race"), dir.path().join("secret"));
    std::fs::create_dir_all(&race).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("s.txt"), "TOPSECRET").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, race) = (stop.clone(), race.clone());
        std::thread::spawn(move || {
            let (x, tmp_f, tmp_l) = (race.join("x"), race.join(".f"), race.join(".l"));
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::write(&tmp_f, "fine");
                let _ = std::fs::rename(&tmp_f, &x);
                let _ = symlink("../secret/s.txt", &tmp_l);
                let _ = std::fs::rename(&tmp_l, &x);
            }
        })
    };
    let o = beside_neighbour(
        "symlink race",
        &bad(
            "read-many",
            &format!(
                "arg = \"{}/x\"\ncount = 3000\n[collectors.bad.grants]\nfiles = [\"{}/*\"]\n",
                race.display(),
                race.display()
            ),
        ),
        "bad",
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let ok = sum_values(&o.lines, "servers.adv.misbehave.ok");
    let leaked = sum_values(&o.lines, "servers.adv.misbehave.secret");
    eprintln!("symlink race: {ok} reads of the granted file, {leaked} of the secret");
    assert!(ok > 0.0, "the race never let the granted file through");
    assert_eq!(leaked, 0.0, "the ungranted file was read");
    assert!(get(&o.bad.denials) > 0, "the link was seen and denied");
}

// ---------------------------------------------------------------------------
// 6 and 7. `..` and `*` across `/` in argv and Unix socket grants.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_and_slashes_do_not_pass_argv_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let (zone, secret) = (dir.path().join("zone"), dir.path().join("secret"));
    std::fs::create_dir_all(zone.join("sub")).unwrap();
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("s.txt"), "TOPSECRET").unwrap();
    std::fs::write(zone.join("sub/t.txt"), "deep").unwrap();
    std::fs::write(zone.join("ok.txt"), "fine").unwrap();
    symlink(secret.join("s.txt"), zone.join("link.txt")).unwrap();
    let (z, g) = (zone.display(), guest());
    let run = |name: &str, arg: String| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"run\"\narg = \"/bin/cat {arg}\"\n[collectors.{name}.grants]\ncommands = [[\"/bin/cat\", \"{z}/*\"]]\n")
    };
    let sections = [
        run("bad", format!("{z}/../secret/s.txt")),
        run("deep", format!("{z}/sub/t.txt")),
        run("linked", format!("{z}/link.txt")),
        run("fine", format!("{z}/ok.txt")),
    ]
    .concat();
    let o = beside_neighbour("`..`, `/` and links in argv", &sections, "bad").await;
    for name in ["bad", "deep", "linked"] {
        let (_, st) = o.others.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            get(&st.denials) >= 3,
            "{name}: {} denials",
            get(&st.denials)
        );
    }
    let (_, fine) = o.others.iter().find(|(n, _)| n == "fine").unwrap();
    assert_eq!(get(&fine.denials) + get(&fine.guest_errors), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_grants_are_checked_as_file_paths() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::create_dir_all(zone.join("a")).unwrap();
    let victim = dir.path().join("victim.sock");
    let victim_l = std::os::unix::net::UnixListener::bind(&victim).unwrap();
    victim_l.set_nonblocking(true).unwrap();
    let good = zone.join("a/good.sock");
    let good_l = std::os::unix::net::UnixListener::bind(&good).unwrap();
    good_l.set_nonblocking(true).unwrap();
    symlink(&victim, zone.join("a/link.sock")).unwrap();
    let (z, g) = (zone.display(), guest());
    let unix = |name: &str, path: String| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"unix\"\narg = \"{path}\"\n[collectors.{name}.grants]\nconnect = [\"unix:{z}/*/*.sock\", \"unix:{z}/**\"]\n")
    };
    let sections = [
        unix("bad", format!("{z}/a/../../victim.sock")),
        unix("link", format!("{z}/a/link.sock")),
        unix("deep", format!("{z}/a/../../zone/../victim.sock")),
        unix("good", format!("{z}/a/good.sock")),
    ]
    .concat();
    let o = beside_neighbour("`..` and links in Unix socket paths", &sections, "bad").await;
    for name in ["bad", "link", "deep"] {
        let (_, st) = o.others.iter().find(|(n, _)| n == name).unwrap();
        assert!(get(&st.guest_errors) >= 3, "{name} connected");
    }
    let (_, link) = o.others.iter().find(|(n, _)| n == "link").unwrap();
    assert!(get(&link.denials) >= 3, "the link's target is checked");
    assert!(
        victim_l.accept().is_err(),
        "a connection reached the victim"
    );
    let (_, good) = o.others.iter().find(|(n, _)| n == "good").unwrap();
    assert_eq!(get(&good.guest_errors), 0, "the granted socket connects");
    assert!(good_l.accept().is_ok());
}

// ---------------------------------------------------------------------------
// 9. Guest strings flooding the log.

#[test]
fn guest_strings_reach_the_log_cut_and_rate_limited() {
    let g = guest();
    // A Python collector flooding `self.log` and `print` (100,000 lines of
    // 10 kB each a run) beside the Rust floods.
    let py = common::repo()
        .join("tests/fixtures/python/hostile.py")
        .display()
        .to_string();
    let mut d = Daemon::start(
        &format!(
            "[collectors.errors]\nenabled = true\ncomponent = {g:?}\nmode = \"error-flood\"\ncount = 33554432\n\
             [collectors.denials]\nenabled = true\ncomponent = {g:?}\nmode = \"deny-flood\"\ncount = 1048576\n\
             [collectors.stdout]\nenabled = true\ncomponent = {g:?}\nmode = \"stdout-flood\"\ncount = 1000\n\
             [collectors.py]\nenabled = true\ncomponent = {py:?}\nmode = \"flood\"\n[collectors.py.limits]\ntimeout = 0.9\n"
        ),
        None,
    );
    std::thread::sleep(Duration::from_millis(5000));
    d.signal_and_wait(libc::SIGTERM, STOP_BOUND);
    let log = d.log();
    eprintln!("log after 5 s of floods: {} bytes", log.len());
    // Before: 33 MB per error line, 2 MiB per denial.
    assert!(log.len() < 400 << 10, "{} bytes of log", log.len());
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
    assert!(log.contains("bytes cut"), "cut strings are marked");
    // The Python flood reached the log, cut and rate-limited like the rest.
    let python = log.lines().filter(|l| l.contains("flood ")).count();
    assert!(python >= 1, "the Python log flood is not in the log");
    assert!(python < 200, "{python} lines of the Python flood");
    assert!(
        log.contains("line\\nline"),
        "newlines are escaped, not written"
    );
    assert!(!log.contains("hunter2"));
}

// ---------------------------------------------------------------------------
// 10. Smaller holes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_directories_a_glob_can_match_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("f"), "x").unwrap();
    symlink("/etc", zone.join("etc")).unwrap();
    let (z, g) = (zone.display(), guest());
    let mode = |name: &str, mode: &str, arg: String, grants: &str| {
        format!("[collectors.{name}]\nenabled = true\ncomponent = {g:?}\nmode = \"{mode}\"\narg = \"{arg}\"\n[collectors.{name}.grants]\n{grants}\n")
    };
    let files = format!("files = [\"{z}/*\"]");
    let statvfs = format!("statvfs = [\"{z}/*\"]");
    let sections = [
        mode("bad", "list", "/".into(), &files),
        mode("tmp", "list", dir.path().display().to_string(), &files),
        mode("zone", "list", z.to_string(), &files),
        mode("statlink", "stat", format!("{z}/etc"), &statvfs),
        mode("statdots", "stat", format!("{z}/../zone/f"), &statvfs),
        mode("vfslink", "statvfs", format!("{z}/etc"), &statvfs),
    ]
    .concat();
    let o = beside_neighbour("listing ancestors, stat through links", &sections, "bad").await;
    let st = |n: &str| o.others.iter().find(|(m, _)| m == n).unwrap().1.clone();
    assert!(get(&o.bad.denials) >= 3, "/ is not listable");
    assert!(
        get(&st("tmp").denials) >= 3,
        "the zone's parent is not listable"
    );
    assert_eq!(get(&st("zone").guest_errors), 0, "the zone itself is");
    assert!(
        get(&st("statlink").denials) >= 3,
        "metadata follows no link out"
    );
    assert!(
        get(&st("statdots").guest_errors) >= 3,
        "metadata refuses `..`"
    );
    assert!(
        get(&st("vfslink").denials) >= 3,
        "statvfs follows no link out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_plant_symlinks_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link");
    let o = beside_neighbour(
        "symlink in a directories grant",
        &bad(
            "symlink",
            &format!(
                "arg = {link:?}\n[collectors.bad.grants]\ndirectories = [{:?}]\n",
                dir.path()
            ),
        ),
        "bad",
    )
    .await;
    assert!(get(&o.bad.guest_errors) >= 3, "symlink-at is refused");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "a link was planted"
    );
}

#[test]
fn a_third_party_plugin_cannot_take_a_builtin_path_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.mine]\nenabled = true\ncomponent = {:?}\n[collectors.ok]\nenabled = true\ncomponent = {:?}\npath = \"cpu\"\n",
            common::cache_dir(),
            common::test_guest("collector_impostor"),
            common::test_guest("collector_impostor"),
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let errors = wdiamond::agent::load(&common::runtime(), &config, &HostFacts::default())
        .err()
        .expect("refused");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = errors.0[0].to_string();
    assert!(
        e.contains("collectors.mine") && e.contains("path of a built-in collector"),
        "{e}"
    );
}

#[test]
fn the_builtin_paths_list_matches_the_builtins() {
    // Every built-in collector's describe name is in BUILTIN_PATHS.
    let rt = common::runtime();
    let mut checked = 0;
    for name in wdiamond::plugin::builtin_names() {
        let r = wdiamond::config::ComponentRef::Builtin(name.to_string());
        let c = rt.component(&r, wdiamond::plugin::Metering::None).unwrap();
        if wdiamond::plugin::contract::read(&c).unwrap().world != "collector" {
            continue;
        }
        let ctx = Arc::new(wdiamond::host::PluginContext {
            name: name.into(),
            grants: Default::default(),
            limits: wdiamond::config::Limits::default(),
            config: vec![],
            hostname: String::new(),
            interval: 0.0,
            facts: Default::default(),
            span: tracing::Span::none(),
            log_limit: Default::default(),
            script: None,
            tls: None,
        });
        let described = rt.collector(&c, ctx.clone()).unwrap().describe().unwrap();
        assert!(
            agent::BUILTIN_PATHS.contains(&described.name.as_str()),
            "{name} describes itself as {:?}",
            described.name
        );
        checked += 1;
    }
    // Every built-in collector checked, and no path listed for none.
    assert_eq!(checked, agent::BUILTIN_PATHS.len());
}

// ---------------------------------------------------------------------------
// 11. Host memory for what a guest hands over.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliased_strings_cannot_make_the_host_lift_more_than_the_memory_cap() {
    // 100 argv entries aliasing one 1 MiB string: 100 MiB to lift from a
    // guest capped at 16 MiB. The host refuses to lift past 16 MiB: the
    // call traps before the grant check (no denial), whatever the guest.
    let o = beside_neighbour(
        "aliased strings",
        &bad(
            "alias-argv",
            "count = 100\n[collectors.bad.limits]\nmemory_mb = 16\n",
        ),
        "bad",
    )
    .await;
    assert!(
        get(&o.bad.failures) >= 2,
        "failures {}",
        get(&o.bad.failures)
    );
    assert_eq!(get(&o.bad.denials), 0, "the arguments were lifted whole");
    assert!(last_value(&o.lines, "servers.adv.misbehave.lifted").is_none());
}

//! Name resolution is part of the call. A collector granted
//! `tcp:NAME:PORT` whose resolver never answers (`options timeout:30`, an
//! operator's choice) held its call for the resolver's whole timeout, past
//! `socket_timeout` and the run's deadline, and a SIGTERM during it was
//! only ended by the stop watchdog. The agent here runs in a mount
//! namespace whose `/etc/resolv.conf` names a nameserver that reads and
//! never answers (as root, with unshare(1)); the name is granted.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common;

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

/// A nameserver that never answers (a UDP socket on port 53 that nobody
/// reads), and a resolv.conf naming it with a 30 s timeout.
fn silent_resolver(dir: &Path, ip: &str) -> (UdpSocket, PathBuf) {
    let sock = UdpSocket::bind((ip, 53))
        .unwrap_or_else(|e| panic!("this test binds {ip}:53 (it runs as root, as CI does): {e}"));
    let conf = dir.join("resolv.conf");
    std::fs::write(
        &conf,
        format!("nameserver {ip}\noptions timeout:30 attempts:1\n"),
    )
    .unwrap();
    (sock, conf)
}

/// `wdiamond ARGS` where /etc/resolv.conf is `resolv`.
fn under_resolver(resolv: &Path, args: &[&str]) -> Child {
    Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
        ])
        .arg(resolv)
        .arg(BIN)
        .args(args)
        .env("RES_OPTIONS", "timeout:30 attempts:1")
        .env("XDG_CACHE_HOME", common::cache_dir().parent().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare(1) (util-linux)")
}

/// Waits for `child` at most `limit`; kills it past that. Returns the
/// time it took and its output, or `None` if it had to be killed.
fn wait_for(child: Child, limit: Duration) -> (Duration, Option<std::process::Output>) {
    let started = Instant::now();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => (started.elapsed(), Some(out.unwrap())),
        Err(_) => {
            // SAFETY: kill(2) of our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = rx.recv_timeout(Duration::from_secs(5));
            (started.elapsed(), None)
        }
    }
}

fn config(dir: &Path, interval: u32) -> PathBuf {
    common::write_config(
        dir,
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.redis]\nenabled = true\nhost = \"blackhole.wdiamond.test\"\nport = 6379\ninterval = {interval}\n[collectors.redis.limits]\ntimeout = 2\nsocket_timeout = 1\n",
            common::cache_dir()
        ),
    )
}

#[test]
fn a_resolver_that_never_answers_ends_at_the_socket_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_ns, resolv) = silent_resolver(dir.path(), "127.0.0.77");
    let conf = config(dir.path(), 10);
    let conf = conf.to_str().unwrap();
    let (took, out) = wait_for(
        under_resolver(&resolv, &["once", conf, "--wait", "0"]),
        Duration::from_secs(60),
    );
    let out = out.expect("once never ended");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("timed") || text.contains("timeout"),
        "the runs end timed out: {text}"
    );
    // Two runs of at most socket_timeout (1 s) each, plus start-up; the
    // resolver's own timeout is 30 s.
    println!("once with a silent resolver took {took:?}");
    assert!(took < Duration::from_secs(20), "once took {took:?}: {text}");
}

#[test]
fn a_stop_is_not_held_by_a_resolver_that_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_ns, resolv) = silent_resolver(dir.path(), "127.0.0.78");
    let conf = config(dir.path(), 1);
    let child = under_resolver(&resolv, &["run", conf.to_str().unwrap()]);
    let pid = child.id() as i32;
    // Runs start, each waiting in the resolver.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) of our own child (sh exec'd into unshare, then the agent).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (took, out) = wait_for(child, Duration::from_secs(40));
    let out = out.expect("the agent never stopped");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("the stop took {took:?}");
    assert!(
        !err.contains("the stop took longer"),
        "the watchdog ended the stop: {err}"
    );
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

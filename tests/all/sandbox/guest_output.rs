//! What a guest hands the host: strings that reach the log (cut, rate
//! limited) and strings aliased so that the host would lift more than the
//! guest's memory cap.

use std::time::Duration;

use super::*;

use super::daemon::Daemon;

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

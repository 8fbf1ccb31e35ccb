//! Hangs: a guest that sleeps wherever it can (in collect, in setup, in a
//! handler's process, in describe during a reload, in a send to a peer
//! that never reads) ends at its deadline, and SIGTERM is acted on within
//! its grace whatever the plugins are stuck in.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::daemon::{processes, unique_secs, Daemon};
use super::*;
use wdiamond::plugin::FailureKind;

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
    let conf = d.dir.path().join("wdiamond.toml");
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

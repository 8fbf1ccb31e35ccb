//! Collectors' schedules, kept by the agent's scheduler thread: a run that
//! outlives its interval skips the windows it overlaps (counted, published
//! in the health metrics) and never delays its neighbours; a stop waits
//! for the run in flight. Counts, not timings, are asserted.

use crate::common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A collector that sleeps 3 s in every run (its deadline, 10 s, lets it),
/// every second, beside loadavg every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_its_interval_skips_windows_and_delays_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\nhealth_path = \"wdiamond\"\nhealth_interval = 1\n\
             [handlers.archive]\nlog_file = {archive:?}\nbatch_timeout = 0\n\
             [collectors.default]\ninterval = 1\nhostname = \"h\"\n\
             [collectors.slow]\nenabled = true\ncomponent = {:?}\nmode = \"sleep\"\ncount = 3\n\
             [collectors.slow.limits]\ntimeout = 10\n\
             [collectors.loadavg]\nenabled = true\n",
            common::cache_dir(),
            common::test_guest("collector_misbehave"),
        ),
    );
    let agent = common::start_agent(&conf);
    let (slow, loadavg) = (
        agent.collector_stats("slow").unwrap(),
        agent.collector_stats("loadavg").unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    // The stop waits for the slow run in flight (within the grace): stopped
    // right after a run of 3 s starts, it ends no sooner than that run.
    let before = slow.runs.load(Ordering::Relaxed);
    let waited = Instant::now();
    while slow.runs.load(Ordering::Relaxed) == before {
        assert!(waited.elapsed() < Duration::from_secs(6), "no new slow run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = Instant::now();
    agent.shutdown().await;
    let stop_took = stopping.elapsed();
    assert!(
        stop_took >= Duration::from_millis(2500),
        "the stop took {stop_took:?}: it did not wait for the run in flight"
    );
    let (slow_runs, skipped) = (
        slow.runs.load(Ordering::Relaxed),
        slow.skipped_runs.load(Ordering::Relaxed),
    );
    assert!(slow_runs >= 1, "the slow collector never ran");
    assert!(
        skipped >= 2,
        "{slow_runs} slow runs of 3 s in 7 s at interval 1, but {skipped} windows skipped"
    );
    assert_eq!(
        slow.failures.load(Ordering::Relaxed),
        0,
        "a slow run is not a failure"
    );
    let neighbour = loadavg.runs.load(Ordering::Relaxed);
    assert!(
        neighbour >= 4,
        "loadavg ran {neighbour} times in 7 s beside {slow_runs} slow runs: it was held up"
    );
    assert_eq!(loadavg.skipped_runs.load(Ordering::Relaxed), 0);
    let lines = std::fs::read_to_string(&archive).unwrap();
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("servers.h.wdiamond.collectors.slow.schedule.skipped ")),
        "the health metrics carry the skipped windows"
    );
}

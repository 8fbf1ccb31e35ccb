//! How a handler's deliveries are cut: `batch_timeout` lets the runs of
//! several collectors share one delivery, a full batch goes at once, and
//! nothing waits past the stop. Counts, not timings, are asserted.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn config(dir: &Path, archive: &Path, collectors: usize, handler_keys: &str) -> std::path::PathBuf {
    let mut text = format!(
        "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n\
         [handlers.archive]\nlog_file = {archive:?}\n{handler_keys}\n\
         [collectors.default]\ninterval = 1\n",
        common::cache_dir()
    );
    for i in 0..collectors {
        text += &format!("[collectors.load{i}]\nenabled = true\ncomponent = \"loadavg\"\n");
    }
    common::write_config(dir, &text)
}

/// Four collectors every second into a handler whose batches wait 3 s:
/// every run's metrics are delivered (at the latest at the stop), in far
/// fewer deliveries than runs. Without the wait each run was a delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_share_deliveries_within_the_batch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.log");
    let conf = config(
        dir.path(),
        &archive,
        4,
        "batch_timeout = 3\nflush_interval = 100",
    );
    let agent = common::start_agent(&conf);
    let stats = agent.handler_stats("archive").unwrap();
    let collectors: Vec<_> = (0..4)
        .map(|i| agent.collector_stats(&format!("load{i}")).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let deliveries = stats.wakeups.load(Ordering::Relaxed);
    agent.shutdown().await;
    let lines = common::file_lines(&archive);
    // loadavg publishes 8 metrics a run.
    let runs = lines.iter().filter(|l| l.contains(".loadavg.01 ")).count() as u64;
    assert!(runs >= 8, "only {runs} runs in 7 s: {lines:?}");
    // What the collectors themselves counted as published, every metric
    // of it in the archive: none left waiting at the stop.
    let published: u64 = collectors
        .iter()
        .map(|c| c.metrics.load(Ordering::Relaxed))
        .sum();
    assert_eq!(
        lines.len() as u64,
        published,
        "every published metric delivered, the last batch at the stop"
    );
    assert_eq!(published, runs * 8);
    // The stop's final delivery and flush are two more.
    assert!(
        deliveries * 2 < runs,
        "{deliveries} handler wake-ups for {runs} runs: batches were not shared"
    );
}

/// A batch that fills up (`batch_size`) is delivered at once, however long
/// `batch_timeout` is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_does_not_wait_for_the_batch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.log");
    let conf = config(
        dir.path(),
        &archive,
        2,
        "batch_timeout = 300\nbatch_size = 20\nflush_interval = 0.1",
    );
    let agent = common::start_agent(&conf);
    let end = Instant::now() + Duration::from_secs(60);
    while common::file_lines(&archive).len() < 20 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = common::file_lines(&archive).len();
    agent.shutdown().await;
    assert!(
        seen >= 20,
        "a full batch of 20 was not delivered before the 300 s batch_timeout ({seen} lines)"
    );
}

/// `batch_timeout = 0` delivers at once (its errors are fixtures of
/// `config_errors`).
#[test]
fn a_zero_batch_timeout_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.log");
    let conf = config(dir.path(), &archive, 1, "batch_timeout = 0");
    let c = wdiamond::config::load(&conf).unwrap();
    assert_eq!(c.handlers[0].batch_timeout, 0.0);
}

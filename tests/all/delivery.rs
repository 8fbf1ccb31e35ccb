//! Delivery without loss, against a real carbon-cache (Debian's
//! graphite-carbon) started here on free ports with its own storage: what
//! wdiamond published (the archive handler's file, written beside) must be
//! in carbon's whisper files, read back with `whisper-fetch`, across a
//! carbon outage and across a wdiamond restart with the spool.
//!
//! `WDIAMOND_OUTAGE_SECS` sets the outage (default 60 s, as the issue asks).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::carbon::Carbon;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

/// `(path, timestamp, value)` lines of the archive: what was published.
fn published(archive: &Path) -> BTreeSet<(String, u64, String)> {
    std::fs::read_to_string(archive)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 3).then(|| (f[0].to_string(), f[2].parse().unwrap(), f[1].to_string()))
        })
        .collect()
}

/// What of `want` carbon has not stored (waits up to 30 s for its writer).
fn missing(carbon: &Carbon, want: &BTreeSet<(String, u64, String)>) -> Vec<String> {
    let start = Instant::now();
    loop {
        let mut by_path: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
        for (p, t, v) in want {
            by_path.entry(p).or_default().push((*t, v));
        }
        let mut miss = Vec::new();
        for (p, points) in by_path {
            let lo = points.iter().map(|x| x.0).min().unwrap();
            let hi = points.iter().map(|x| x.0).max().unwrap();
            let stored = carbon.fetch(p, lo - 1, hi + 1);
            // Whisper keeps one value per second: when a series was
            // published twice in one second (a run right after a catch-up),
            // any of its values may be the stored one.
            let mut per_second: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
            for (t, v) in points {
                per_second.entry(t).or_default().push(v.parse().unwrap());
            }
            for (t, values) in per_second {
                match stored.get(&t) {
                    Some(s)
                        if values
                            .iter()
                            .any(|v| (s - v).abs() <= 1e-6 * v.abs().max(1.0)) => {}
                    other => miss.push(format!("{p} {values:?} {t} (whisper: {other:?})")),
                }
            }
        }
        if miss.is_empty() || start.elapsed() > Duration::from_secs(30) {
            return miss;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn config(dir: &Path, carbon_port: u16, spool: bool) -> PathBuf {
    let spool = if spool {
        format!("spool_dir = {:?}\n", dir.join("spool"))
    } else {
        String::new()
    };
    common::write_config(
        dir,
        &format!(
            "[server]\nhandlers = [\"graphite\", \"archive\"]\nplugin_cache_dir = {:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {carbon_port}\ntimeout = 2\nretry_max = 1\n{spool}[handlers.archive]\nlog_file = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"dlv\"\n[collectors.loadavg]\nenabled = true\n[collectors.counter]\nenabled = true\ncomponent = {:?}\n",
            common::cache_dir(),
            dir.join("archive.log"),
            common::test_guest("collector_misbehave"),
        ),
    )
}

fn start_agent(conf: &Path) -> Child {
    Command::new(BIN)
        .arg("run")
        .arg(conf)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

fn stop_agent(child: Child) -> String {
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

#[test]
fn carbon_stores_exactly_what_was_published() {
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    carbon.start();
    let conf = config(dir.path(), carbon.port, false);
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(4));
    stop_agent(agent);
    let want = published(&dir.path().join("archive.log"));
    assert!(want.len() >= 3 * 9, "published {} points", want.len());
    let miss = missing(&carbon, &want);
    assert!(
        miss.is_empty(),
        "{} of {} points missing in whisper, e.g. {:?}",
        miss.len(),
        want.len(),
        &miss[..miss.len().min(5)]
    );
}

#[test]
fn nothing_is_lost_while_carbon_is_down() {
    let outage: u64 = std::env::var("WDIAMOND_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    carbon.start();
    let conf = config(dir.path(), carbon.port, false);
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(3));
    // Stop carbon cleanly: freeze the agent, let carbon write what it has
    // (carbon itself drops its in-memory cache on SIGTERM), then stop it.
    signal(&agent, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    carbon.stop();
    signal(&agent, libc::SIGCONT);
    eprintln!("carbon down for {outage} s");
    std::thread::sleep(Duration::from_secs(outage));
    carbon.start();
    // The backlog drains (backoff at most retry_max = 1 s), then stop.
    std::thread::sleep(Duration::from_secs(5));
    let log = stop_agent(agent);
    let want = published(&dir.path().join("archive.log"));
    assert!(
        want.len() as u64 >= (outage + 6) * 9,
        "published only {} points",
        want.len()
    );
    let miss = missing(&carbon, &want);
    assert!(
        miss.is_empty(),
        "{} of {} points lost, e.g. {:?}\n{log}",
        miss.len(),
        want.len(),
        &miss[..miss.len().min(5)]
    );
    assert!(
        log.contains("handler failed; the batch is kept and retried"),
        "{log}"
    );
    assert!(log.contains("delivering again"), "{log}");
    eprintln!(
        "outage of {outage} s: {} points published, all {} in whisper",
        want.len(),
        want.len()
    );
}

#[test]
fn the_spool_carries_metrics_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    let conf = config(dir.path(), carbon.port, true);
    // Carbon is down: the first agent cannot deliver and spools at shutdown.
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(4));
    let log = stop_agent(agent);
    assert!(
        log.contains("undelivered metrics stay in the spool"),
        "{log}"
    );
    let spooled = published(&dir.path().join("archive.log"));
    assert!(spooled.len() >= 27);
    assert!(
        common::spool_segments(&dir.path().join("spool/graphite")) >= 1,
        "a spool segment on disk"
    );
    // Carbon up, agent restarted: the spool is delivered first.
    carbon.start();
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(4));
    let log = stop_agent(agent);
    assert!(log.contains("found spooled metrics"), "{log}");
    let want = published(&dir.path().join("archive.log"));
    assert!(want.len() > spooled.len());
    let miss = missing(&carbon, &want);
    assert!(
        miss.is_empty(),
        "{} of {} points lost, e.g. {:?}",
        miss.len(),
        want.len(),
        &miss[..miss.len().min(5)]
    );
    assert_eq!(
        common::spool_segments(&dir.path().join("spool/graphite")),
        0,
        "delivered segments are deleted"
    );
}

#[test]
fn a_reload_that_replaces_the_handler_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    let conf = config(dir.path(), carbon.port, true);
    // Carbon is down: metrics queue up in the running graphite handler.
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(3));
    // Change the handler's options and reload: the old handler instance
    // hands its spool (which holds all it queued) to the new one.
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("timeout = 2\n", "timeout = 3\n");
    std::fs::write(&conf, text).unwrap();
    signal(&agent, libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    carbon.start();
    std::thread::sleep(Duration::from_secs(5));
    let log = stop_agent(agent);
    assert!(
        log.contains("handler changed: the new one takes over its spool"),
        "{log}"
    );
    let want = published(&dir.path().join("archive.log"));
    assert!(want.len() >= 9 * 9, "published {} points", want.len());
    let miss = missing(&carbon, &want);
    assert!(
        miss.is_empty(),
        "{} of {} points lost across the reload, e.g. {:?}\n{log}",
        miss.len(),
        want.len(),
        &miss[..miss.len().min(5)]
    );
}

/// The graphite handler keeps its last sent batch until the connection
/// proves alive. When the backend dies right after reading a batch and the
/// agent stops before it is back, that batch is spooled with the rest and
/// sent again by the next agent (at least once), not lost with the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_batch_not_yet_confirmed_is_spooled_at_shutdown() {
    use std::io::Read;
    use std::net::TcpListener;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {port}\ntimeout = 1\nretry_max = 1\nspool_dir = {:?}\n[collectors.default]\ninterval = 1\nhostname = \"unc\"\n[collectors.counter]\nenabled = true\ncomponent = {:?}\n",
            common::cache_dir(),
            dir.path().join("spool"),
            common::test_guest("collector_misbehave"),
        ),
    );
    // A backend that reads until the counter's second run, then dies
    // (whatever it read of that batch counts as never stored).
    let listen = move |until: String| {
        let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let (mut got, mut buf) = (String::new(), [0u8; 4096]);
            let start = Instant::now();
            while !got.lines().any(|l| l.contains(&until)) {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no {until:?} in {got:?}"
                );
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed early: {got:?}");
                got.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            got
        })
    };
    let run = |until: &str| {
        let reader = listen(until.to_string());
        let config = wdiamond::config::load(&conf).unwrap();
        let rt = common::runtime();
        let loaded = tokio::task::block_in_place(|| {
            wdiamond::agent::load(&rt, &config, &wdiamond::host::HostFacts::default())
        })
        .unwrap();
        let agent = wdiamond::agent::Agent::start(
            rt,
            wdiamond::host::HostFacts::default(),
            &conf,
            &config,
            loaded,
        );
        (agent, reader)
    };
    let (agent, reader) = run(".misbehave.runs 2 ");
    let got = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    // The backend is gone (listener and connection closed); stop now,
    // before the next run.
    agent.shutdown().await;
    let lost = got
        .lines()
        .find(|l| l.contains(".misbehave.runs 2 "))
        .unwrap()
        .to_string();
    // The next agent delivers the spool first: the unconfirmed batch too.
    let (agent, reader) = run(&lost);
    let again = tokio::task::spawn_blocking(move || reader.join().unwrap());
    let again = tokio::time::timeout(Duration::from_secs(15), again)
        .await
        .expect("the unconfirmed batch was not sent again")
        .unwrap();
    agent.shutdown().await;
    assert!(again.lines().any(|l| l == lost), "{again}");
}

/// The newest spool segment of the graphite handler.
fn last_segment(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("spool/graphite"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "spool"))
        .max()
        .expect("a spool segment")
}

/// Carbon down, the agent killed with SIGKILL (no stop, no flush), carbon
/// back, the agent started again: with `spool_dir`, every point published
/// before the kill reaches whisper (the spool is written ahead, as each
/// run is queued). With `torn`, the last record of the spool is cut in two
/// first, as a crash mid-write leaves it: the agent starts, logs it, and
/// delivers everything else.
fn killed_during_an_outage(torn: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    let conf = config(dir.path(), carbon.port, true);
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(5));
    signal(&agent, libc::SIGKILL);
    let _ = agent.wait_with_output();
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let before = published(&dir.path().join("archive.log"));
    assert!(before.len() >= 30, "published {}", before.len());
    if torn {
        let seg = last_segment(dir.path());
        let data = std::fs::read(&seg).unwrap();
        std::fs::write(&seg, &data[..data.len() - 5]).unwrap();
    }
    carbon.start();
    // The second agent's first run (at once) must not share a second with
    // the first agent's last: whisper keeps one value per series and
    // second, and the later would replace the one checked for.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let next_second = killed_at.floor() + 1.05;
    if now < next_second {
        std::thread::sleep(Duration::from_secs_f64(next_second - now));
    }
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(5));
    let log = stop_agent(agent);
    assert!(log.contains("found spooled metrics"), "{log}");
    if torn {
        assert!(log.contains("spool segment is damaged"), "{log}");
    }
    let miss = missing(&carbon, &before);
    // A torn write costs the one record it cut: what one tick queued (the
    // runs of loadavg and the counter, together at most what any one
    // second published), all of one timestamp.
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, t, _) in &before {
        *per_second.entry(*t).or_default() += 1;
    }
    let allowed = if torn {
        per_second.values().copied().max().unwrap_or(0)
    } else {
        0
    };
    let seconds: BTreeSet<&str> = miss
        .iter()
        .filter_map(|m| m.split(" (whisper").next()?.rsplit(' ').next())
        .collect();
    assert!(
        miss.len() <= allowed && seconds.len() <= 1,
        "{} of {} points published before the kill are not in whisper (of {} seconds), e.g. {:?}\n{log}",
        miss.len(),
        before.len(),
        seconds.len(),
        &miss[..miss.len().min(5)]
    );
}

#[test]
fn nothing_queued_is_lost_when_the_agent_is_killed() {
    killed_during_an_outage(false);
}

#[test]
fn a_torn_spool_record_is_skipped_and_the_rest_delivered() {
    killed_during_an_outage(true);
}

#[test]
fn a_second_agent_on_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), common::free_port(), true);
    let first = start_agent(&conf);
    let start = Instant::now();
    while !dir.path().join("spool/graphite/lock").exists()
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let second = Command::new(BIN).arg("run").arg(&conf).output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(78), "{err}");
    assert!(
        err.contains("`handlers.graphite.spool_dir`") && err.contains("locked by another process"),
        "{err}"
    );
    // `check` beside the running agent still works.
    let check = Command::new(BIN).arg("check").arg(&conf).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    stop_agent(first);
}

#[test]
fn a_reload_that_fixes_a_handler_delivers_its_backlog() {
    // The handler points at a port where nothing listens: its metrics
    // queue (in memory, no spool). The operator fixes the port and sends
    // SIGHUP: the new handler takes the old one's queue over. Before, the
    // old handler drained for its grace and dropped it (`undelivered=305`,
    // the first seconds missing in whisper).
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    carbon.start();
    let dead = common::free_port();
    let conf = config(dir.path(), dead, false);
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(4));
    let before = published(&dir.path().join("archive.log")).len();
    assert!(
        before >= 2 * 9,
        "published {before} points while the port was wrong"
    );
    std::fs::write(
        &conf,
        std::fs::read_to_string(&conf).unwrap().replace(
            &format!("port = {dead}\n"),
            &format!("port = {}\n", carbon.port),
        ),
    )
    .unwrap();
    signal(&agent, libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    let log = stop_agent(agent);
    assert!(log.contains("takes over its queue"), "{log}");
    let want = published(&dir.path().join("archive.log"));
    let miss = missing(&carbon, &want);
    assert!(
        miss.is_empty(),
        "{} of {} points missing, e.g. {:?}\n{log}",
        miss.len(),
        want.len(),
        &miss[..miss.len().min(5)]
    );
}

#[test]
fn a_carbon_that_crashes_after_reading_loses_nothing() {
    // Carbon hangs (SIGSTOP) for 4 s: the kernel still accepts what the
    // agent sends, and each send finds the connection alive, so each
    // earlier payload counts as confirmed; then it is killed (what it had read is
    // gone) and started again. The graphite handler sends what went out in
    // its `replay` window again on the new connection. Before, those
    // seconds were lost (one run in three of the crash test).
    let dir = tempfile::tempdir().unwrap();
    let mut carbon = Carbon::new(&dir.path().join("carbon"));
    carbon.start();
    // The default replay window (10 s).
    let conf = config(dir.path(), carbon.port, false);
    let agent = start_agent(&conf);
    std::thread::sleep(Duration::from_secs(3));
    carbon.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(4));
    carbon.signal(libc::SIGKILL);
    carbon.stop();
    carbon.start();
    std::thread::sleep(Duration::from_secs(4));
    let log = stop_agent(agent);
    let want = published(&dir.path().join("archive.log"));
    let miss = missing(&carbon, &want);
    assert!(
        miss.is_empty(),
        "{} of {} points lost in the crash, e.g. {:?}\n{log}",
        miss.len(),
        want.len(),
        &miss[..miss.len().min(5)]
    );
}

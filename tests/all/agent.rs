//! The agent end to end: the real binary on a config, bad configs, and
//! misbehaving guests beside well-behaved ones.

use crate::common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use wdiamond::agent::{self, Agent};
use wdiamond::host::HostFacts;

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

/// Distinct timestamps of lines whose path ends with `suffix`.
fn runs_of(lines: &[String], suffix: &str) -> Vec<u64> {
    let mut ts: Vec<u64> = lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 3 && f[0].ends_with(suffix)).then(|| f[2].parse().unwrap())
        })
        .collect();
    ts.dedup();
    ts
}

fn meminfo_kb(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn binary_collects_every_interval_into_the_archive_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("out/archive.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n\n[handlers.archive]\nlog_file = {:?}\n\n[collectors.default]\ninterval = 1\nhostname = \"e2e\"\n\n[collectors.cpu]\nenabled = true\n[collectors.memory]\nenabled = true\n[collectors.loadavg]\nenabled = true\nmeasure_collector_time = true\n",
            common::cache_dir(),
            archive
        ),
    );
    let child = Command::new(BIN)
        .arg("run")
        .arg(&conf)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(250));
        lines = common::file_lines(&archive);
        if runs_of(&lines, ".cpu.total.idle").len() >= 2
            && runs_of(&lines, ".memory.MemTotal").len() >= 2
            && runs_of(&lines, ".loadavg.01").len() >= 2
        {
            break;
        }
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{log}", out.status);
    assert!(
        log.contains(&format!(
            "may write in {}",
            archive.parent().unwrap().display()
        )),
        "the start-up log names the archive's directory\n{log}"
    );

    assert!(
        runs_of(&lines, ".cpu.total.idle").len() >= 2,
        "two cpu collections\n{}",
        lines.join("\n")
    );
    assert!(runs_of(&lines, ".memory.MemTotal").len() >= 2);
    assert!(runs_of(&lines, ".loadavg.01").len() >= 2);
    // measure_collector_time: Diamond's collector_time_ms, for loadavg only.
    assert!(lines
        .iter()
        .any(|l| l.starts_with("servers.e2e.loadavg.collector_time_ms ")));
    assert!(!lines
        .iter()
        .any(|l| l.starts_with("servers.e2e.cpu.collector_time_ms ")));
    for name in [
        "servers.e2e.cpu.total.user",
        "servers.e2e.cpu.cpu_count",
        "servers.e2e.memory.MemUsedPercentage",
        "servers.e2e.loadavg.processes_total",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing"
        );
    }
    // memory.MemTotal is /proc/meminfo's, in bytes (Diamond's default byte_unit).
    let total = lines
        .iter()
        .find(|l| l.starts_with("servers.e2e.memory.MemTotal "))
        .unwrap();
    let v: f64 = total.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(v, meminfo_kb("MemTotal") * 1024.0);
    // cpu_count is the number of CPUs.
    let cc = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("servers.e2e.cpu.cpu_count "))
        .unwrap();
    let n: f64 = cc.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(n as u32, wdiamond::host::info::online_cpus());
    // Every line is "path value timestamp" with a sane timestamp.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "{l}");
        let ts: u64 = f[2].parse().unwrap();
        assert!(ts <= now && ts + 120 > now, "{l}");
        f[1].parse::<f64>().unwrap();
    }
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(BIN)
        .arg("check")
        .arg(common::repo().join("conf/wdiamond.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(": OK\n")
            && shown.contains(
                "collectors: 7 enabled: cpu, diskspace, diskusage, loadavg, memory, network, vmstat"
            )
            && shown.contains("handlers: archive"),
        "{shown}"
    );
}

/// Misbehaving collectors beside a well-behaved neighbour on a 1 s interval:
/// each failure is classified, counted, the instance re-instantiated, and
/// the neighbour keeps its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_spinning_or_bloated_guest_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let guest = common::test_guest("collector_misbehave");
    let conf = common::write_config(
        dir.path(),
        &format!(
            r#"[server]
handlers = ["archive"]
plugin_cache_dir = {cache:?}
[handlers.archive]
log_file = {archive:?}
[collectors.default]
interval = 1
hostname = "iso"
[collectors.loadavg]
enabled = true
[collectors.trap]
enabled = true
component = {guest:?}
mode = "trap"
[collectors.spin]
enabled = true
component = {guest:?}
mode = "spin"
[collectors.spin.limits]
timeout = 0.3
[collectors.bomb]
enabled = true
component = {guest:?}
mode = "bomb"
[collectors.bomb.limits]
memory_mb = 16
[collectors.error]
enabled = true
component = {guest:?}
mode = "error"
[collectors.shadow]
enabled = true
component = {guest:?}
mode = "read"
arg = "/etc/shadow"
path = "shadow"
"#,
            cache = common::cache_dir(),
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let loaded =
        tokio::task::block_in_place(|| agent::load(&rt, &config, &HostFacts::default())).unwrap();
    let agent = Agent::start(rt, HostFacts::default(), &conf, &config, loaded);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let stats = |n: &str| agent.collector_stats(n).unwrap();
    let (trap, spin, bomb, error, shadow) = (
        stats("trap"),
        stats("spin"),
        stats("bomb"),
        stats("error"),
        stats("shadow"),
    );
    agent.shutdown().await;

    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert!(
        get(&trap.failures) >= 1 && get(&trap.timeouts) == 0,
        "trap: {trap:?}"
    );
    assert!(get(&spin.timeouts) >= 1, "spin: {spin:?}");
    assert!(get(&bomb.memory_exhausted) >= 1, "bomb: {bomb:?}");
    assert!(
        get(&error.guest_errors) >= 3 && get(&error.failures) == 0,
        "error: {error:?}"
    );
    assert!(
        get(&shadow.denials) >= 3 && get(&shadow.guest_errors) >= 3,
        "shadow: {shadow:?}"
    );
    // Re-instantiated after a trap: the trapping guest ran again.
    assert!(get(&trap.runs) >= 2, "trap re-instantiated: {trap:?}");

    // The neighbour kept its 1 s schedule: a run in (nearly) every window.
    let lines = common::file_lines(&archive);
    let runs = runs_of(&lines, ".loadavg.01");
    assert!(
        runs.len() >= 4,
        "neighbour ran {} times: {runs:?}",
        runs.len()
    );
    for w in runs.windows(2) {
        assert_eq!(w[1] - w[0], 1, "neighbour missed a window: {runs:?}");
    }
    assert!(
        !lines.iter().any(|l| l.contains(".shadow.bytes ")),
        "nothing read from /etc/shadow (it would publish under its path, `shadow`)"
    );
}

#[test]
fn sighup_applies_changed_options_and_a_bad_reload_keeps_the_running_config() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let write = |percore: &str| {
        common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\nhostname = \"hup\"\n[collectors.cpu]\nenabled = true\npercore = {percore}\n",
                common::cache_dir()
            ),
        )
    };
    let conf = write("true");
    let child = Command::new(BIN)
        .arg("run")
        .arg(&conf)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let wait_for = |pred: &dyn Fn(&[String]) -> bool| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if pred(&common::file_lines(&archive)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(
        wait_for(&|l| l.iter().any(|x| x.contains(".cpu.cpu0."))),
        "per-core metrics before the reload"
    );

    write("false");
    let reloaded_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    // The runs of the windows after the reload's (the old instance may
    // finish the run it was in).
    let after_reload = |l: &[String]| -> Vec<String> {
        l.iter()
            .filter(|x| {
                x.rsplit(' ')
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_some_and(|t| t >= reloaded_at + 2)
            })
            .cloned()
            .collect()
    };
    assert!(
        wait_for(&|l| after_reload(l).len() > 20),
        "still collecting after the reload"
    );
    let after: Vec<String> = after_reload(&common::file_lines(&archive));
    assert!(after.iter().any(|x| x.contains(".cpu.total.")), "{after:?}");
    assert!(
        !after.iter().any(|x| x.contains(".cpu.cpu0.")),
        "percore = false took effect: {after:?}"
    );

    // A broken config on reload: logged, the running one is kept.
    std::fs::write(&conf, "[collectors.cpu\n").unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(300));
    let n = common::file_lines(&archive).len();
    assert!(
        wait_for(&|l| l.len() > n + 10),
        "still collecting after a failed reload"
    );

    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("collector configuration changed: restarting it"),
        "{log}"
    );
    assert!(log.contains("still running the previous one"), "{log}");
    assert!(
        log.contains("invalid TOML"),
        "the reload error names the problem: {log}"
    );
}

/// Only a plugin with a fuel limit counts fuel: its spinning run ends on
/// fuel, well before its deadline; an unlimited one reports no fuel used.
#[test]
fn a_fuel_limit_stops_a_spinning_run_and_only_limited_plugins_count_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::test_guest("collector_misbehave");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\n[handlers.archive]\nlog_file = {:?}\n\
             [collectors.limited]\nenabled = true\ncomponent = {guest:?}\nmode = \"spin\"\n\
             [collectors.limited.limits]\nfuel = 20000000\ntimeout = 20\n\
             [collectors.free]\nenabled = true\ncomponent = {guest:?}\n",
            dir.path().join("a.log")
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let mut loaded = agent::load(&common::runtime(), &config, &HostFacts::default()).unwrap();
    let at = |loaded: &agent::Loaded, name: &str| {
        loaded
            .collectors
            .iter()
            .position(|c| c.config.plugin.name == name)
            .unwrap()
    };
    let limited = at(&loaded, "limited");
    let (r, usage) = loaded.collectors[limited]
        .instance
        .as_mut()
        .expect("a persistent collector's instance")
        .collect(Duration::from_secs(20));
    let failure = r.expect_err("the spin never returns");
    assert_eq!(
        failure.kind,
        wdiamond::plugin::FailureKind::Fuel,
        "{failure}"
    );
    assert!(usage.fuel >= 20_000_000, "fuel used: {}", usage.fuel);
    assert!(
        usage.elapsed < Duration::from_secs(10),
        "stopped by fuel, not by the 20 s deadline: {:?}",
        usage.elapsed
    );
    let free = at(&loaded, "free");
    let (r, usage) = loaded.collectors[free]
        .instance
        .as_mut()
        .expect("a persistent collector's instance")
        .collect(Duration::from_secs(20));
    assert!(matches!(r, Ok(Ok(_))));
    assert_eq!(
        usage.fuel, 0,
        "a plugin without a fuel limit is not metered"
    );
}

/// Declared series publish exactly what named metrics publish (paths,
/// lines, filters), run after run; a declaration past `max_metrics` is
/// refused and the run fails with the guest's error, not a trap.
#[test]
fn declared_series_publish_the_same_lines_as_named_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::test_guest("collector_misbehave");
    let conf = common::write_config(
        dir.path(),
        &format!(
            r#"[server]
handlers = []
plugin_cache_dir = {cache:?}
[collectors.default]
hostname = "ser"
[collectors.named]
enabled = true
component = {guest:?}
mode = "flood"
count = 300
[collectors.declared]
enabled = true
component = {guest:?}
mode = "flood-series"
count = 300
[collectors.named_filtered]
enabled = true
component = {guest:?}
mode = "flood"
count = 300
metrics_whitelist = "(m1[0-9]*$|runs)"
[collectors.declared_filtered]
enabled = true
component = {guest:?}
mode = "flood-series"
count = 300
metrics_whitelist = "(m1[0-9]*$|runs)"
[collectors.too_many]
enabled = true
component = {guest:?}
mode = "flood-series"
count = 300
[collectors.too_many.limits]
max_metrics = 100
"#,
            cache = common::cache_dir(),
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let mut loaded = agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let mut run = |name: &str| {
        let lc = loaded
            .collectors
            .iter_mut()
            .find(|c| c.config.plugin.name == name)
            .unwrap();
        let (r, _) = lc
            .instance_mut(&rt)
            .unwrap()
            .collect(Duration::from_secs(10));
        match r.unwrap() {
            Ok(set) => {
                let checked = lc.publication.publish_with(
                    set,
                    1_700_000_000,
                    lc.instance.as_mut().unwrap().series_mut(),
                );
                assert_eq!(checked.rejected, 0, "{name}: {:?}", checked.reasons);
                Ok((checked.published.lines().to_string(), checked.filtered))
            }
            Err(e) => Err(e),
        }
    };
    for round in 1..=3 {
        let (named, _) = run("named").unwrap();
        let (declared, _) = run("declared").unwrap();
        assert_eq!(named.lines().count(), 301);
        assert!(named.starts_with("servers.ser.misbehave.m0 0 1700000000\n"));
        assert!(named.ends_with(&format!("servers.ser.misbehave.runs {round} 1700000000\n")));
        assert_eq!(declared, named, "round {round}");
        let (named, nf) = run("named_filtered").unwrap();
        let (declared, df) = run("declared_filtered").unwrap();
        // m1, m10..m19, m100..m199, and runs.
        assert_eq!(named.lines().count(), 1 + 10 + 100 + 1, "{named}");
        assert_eq!((declared, df), (named, nf));
        let e = run("too_many").unwrap_err();
        assert_eq!(
            e,
            "declaring 300 series: over this collector's limit of 100 series (max_metrics)"
        );
    }
}

/// An idle handler (nothing queued, nothing to flush) sleeps until metrics
/// arrive: it wakes to start and to stop, not at every flush interval, and
/// never in a loop (which used to spin a worker ~90 % of the time). A
/// multi-thread runtime, so that a spinning task shows as a count instead
/// of freezing the test; no timing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_handler_does_not_wake() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n[handlers.archive]\nlog_file = {archive:?}\nflush_interval = 0.05\n",
            common::cache_dir()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let loaded =
        tokio::task::block_in_place(|| agent::load(&rt, &config, &HostFacts::default())).unwrap();
    let agent = Agent::start(rt, HostFacts::default(), &conf, &config, loaded);
    let stats = agent.handler_stats("archive").unwrap();
    // Twenty flush intervals with nothing to do.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let wakeups = stats.wakeups.load(Ordering::Relaxed);
    agent.shutdown().await;
    assert!(
        wakeups <= 2,
        "an idle handler woke {wakeups} times in 20 flush intervals"
    );
}

/// The README's Python example for real: Diamond-style Python collectors
/// (the ports in `python/collectors/`) beside the built-in Rust ones, in
/// one agent, into one archive, with the same names and values.
#[test]
fn python_and_rust_collectors_run_side_by_side_into_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let py = |name: &str| {
        common::repo()
            .join(format!("python/collectors/{name}.py"))
            .display()
            .to_string()
    };
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n\n[handlers.archive]\nlog_file = {:?}\n\n[collectors.default]\ninterval = 1\nhostname = \"mixed\"\n\n[collectors.memory]\nenabled = true\n[collectors.loadavg]\nenabled = true\n\n[collectors.pymemory]\nenabled = true\ncomponent = {:?}\npath = \"pymemory\"\n[collectors.pymemory.grants]\nfiles = [\"/proc/meminfo\"]\n\n[collectors.pyloadavg]\nenabled = true\ncomponent = {:?}\npath = \"pyloadavg\"\n[collectors.pyloadavg.grants]\nfiles = [\"/proc/loadavg\"]\n",
            common::cache_dir(),
            archive,
            py("memory"),
            py("loadavg"),
        ),
    );
    let child = Command::new(BIN)
        .arg("run")
        .arg(&conf)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut lines = Vec::new();
    let suffixes = [
        ".memory.MemTotal",
        ".pymemory.MemTotal",
        ".loadavg.01",
        ".pyloadavg.01",
    ];
    while start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(250));
        lines = common::file_lines(&archive);
        if suffixes.iter().all(|s| runs_of(&lines, s).len() >= 3) {
            break;
        }
    }
    // SAFETY: plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{log}", out.status);
    for s in suffixes {
        assert!(
            runs_of(&lines, s).len() >= 3,
            "{s}: fewer than 3 runs\n{log}"
        );
    }
    assert!(!log.contains("denied"), "{log}");
    let names = |segment: &str| -> std::collections::BTreeSet<String> {
        let prefix = format!("servers.mixed.{segment}.");
        lines
            .iter()
            .filter_map(|l| {
                l.split(' ')
                    .next()?
                    .strip_prefix(&prefix)
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(names("pymemory"), names("memory"));
    assert_eq!(names("pyloadavg"), names("loadavg"));
    let value = |path: &str| -> f64 {
        let l = lines
            .iter()
            .rev()
            .find(|l| l.starts_with(&format!("{path} ")))
            .unwrap();
        l.split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(
        value("servers.mixed.pymemory.MemTotal"),
        meminfo_kb("MemTotal") * 1024.0
    );
    assert_eq!(
        value("servers.mixed.pymemory.MemTotal"),
        value("servers.mixed.memory.MemTotal")
    );
}

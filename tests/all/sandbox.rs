//! The adversarial suite: each hostile guest runs beside a well-behaved
//! neighbour (loadavg) on a 1 s interval; each test asserts the outcome of
//! the attack *and* that the neighbour kept its schedule, and prints the
//! neighbour's jitter (`--nocapture` to see it).

use crate::common;
mod commands;
mod daemon;
mod disk;
mod dns;
mod exporter;
mod files;
mod guest_output;
mod hangs;
mod paths;
mod per_run;
mod python;
mod sockets;
mod spool;
mod store;

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wdiamond::agent::{self, Agent, PluginStats};
use wdiamond::host::HostFacts;

const SECONDS: f64 = 4.5;

fn guest() -> String {
    common::test_guest("collector_misbehave")
        .display()
        .to_string()
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

struct Outcome {
    bad: Arc<PluginStats>,
    others: Vec<(String, Arc<PluginStats>)>,
    lines: Vec<String>,
}

/// The longest a stop may take whatever a plugin does: collectors' grace,
/// handlers' grace, and the aborted calls' return.
const STOP_BOUND: Duration = Duration::from_secs(2 * agent::SHUTDOWN_GRACE.as_secs() + 4);

/// Runs `sections` (TOML for the hostile collector(s)) beside the neighbour
/// for [`SECONDS`]; `bad` names the collector whose stats are returned.
async fn beside_neighbour(case: &str, sections: &str, bad: &str) -> Outcome {
    beside_neighbour_with(case, "", sections, bad).await
}

/// The same, with extra keys for the neighbour's section.
async fn beside_neighbour_with(case: &str, neighbour: &str, sections: &str, bad: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n[handlers.archive]\nlog_file = {archive:?}\n# Every tenant's metrics, to see where they went.\ntenants = \"*\"\n[collectors.default]\ninterval = 1\nhostname = \"adv\"\n[collectors.neighbour]\nenabled = true\ncomponent = \"loadavg\"\n{neighbour}{sections}",
            common::cache_dir()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
    let rt = common::runtime();
    let loaded = tokio::task::block_in_place(|| agent::load(&rt, &config, &HostFacts::default()))
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = loaded
        .collectors
        .iter()
        .map(|c| c.config.plugin.name.clone())
        .collect();
    let agent = Agent::start(rt, HostFacts::default(), &conf, &config, loaded);
    tokio::time::sleep(Duration::from_secs_f64(SECONDS)).await;
    let stats = |n: &str| agent.collector_stats(n).unwrap();
    let neighbour = stats("neighbour");
    let bad_stats = stats(bad);
    let others = names.iter().map(|n| (n.clone(), stats(n))).collect();
    let stopping = std::time::Instant::now();
    agent.shutdown().await;
    assert!(
        stopping.elapsed() < STOP_BOUND,
        "{case}: the stop took {:?}",
        stopping.elapsed()
    );

    // The neighbour ran in every window, on time.
    let starts = neighbour.starts();
    assert!(
        starts.len() as f64 >= SECONDS - 1.5,
        "{case}: the neighbour ran only {} times",
        starts.len()
    );
    // From its second run on: the first run of a start is at once, the
    // second at the next window (a shorter gap by design).
    let gaps: Vec<f64> = starts.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
    // Half a window: a neighbour held up by the hostile plugin would miss
    // whole windows; a busy test machine moves a start by tens of ms.
    let jitter = gaps.iter().map(|g| (g - 1.0).abs()).fold(0.0, f64::max);
    assert!(
        jitter < 0.5,
        "{case}: the neighbour's runs drifted: gaps {gaps:?}"
    );
    assert_eq!(
        get(&neighbour.failures) + get(&neighbour.guest_errors),
        0,
        "{case}: the neighbour failed"
    );
    let jitter_ms = jitter * 1000.0;
    eprintln!("case {case:<34} neighbour runs {} max jitter {jitter_ms:6.1} ms | bad: runs {} failures {} (timeout {} fuel {} memory {}) errors {} denials {} rejected {} dropped {}",
        starts.len(), get(&bad_stats.runs), get(&bad_stats.failures), get(&bad_stats.timeouts), get(&bad_stats.fuel_exhausted), get(&bad_stats.memory_exhausted),
        get(&bad_stats.guest_errors), get(&bad_stats.denials), get(&bad_stats.rejected), get(&bad_stats.dropped));
    let lines = std::fs::read_to_string(&archive)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    Outcome {
        bad: bad_stats,
        others,
        lines,
    }
}

fn bad(mode: &str, extra: &str) -> String {
    format!(
        "[collectors.bad]\nenabled = true\ncomponent = {:?}\nmode = {mode:?}\n{extra}",
        guest()
    )
}

/// The last value of `path` in the archive lines.
fn last_value(lines: &[String], path: &str) -> Option<f64> {
    lines
        .iter()
        .rfind(|l| l.starts_with(&format!("{path} ")))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
}

/// The sum of every value of `path` in the archive lines.
fn sum_values(lines: &[String], path: &str) -> f64 {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("{path} ")))
        .filter_map(|l| l.split(' ').nth(1)?.parse::<f64>().ok())
        .sum()
}

fn published(lines: &[String], collector_path: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with(&format!("servers.adv.{collector_path}.")))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_interrupted_at_the_deadline() {
    let o = beside_neighbour(
        "infinite loop",
        &bad("spin", "[collectors.bad.limits]\ntimeout = 0.3\n"),
        "bad",
    )
    .await;
    assert!(get(&o.bad.timeouts) >= 2, "interrupted every run");
    assert!(get(&o.bad.runs) >= 2, "re-instantiated and run again");
}

/// The epoch timer that interrupts a computing guest is armed while any
/// call is in flight, and only the last call out disarms it: spinning
/// guests — one on the fuel-metered engine, one not — are interrupted at
/// their deadlines while short calls of six other collectors start and
/// end around them every second (a timer disarmed by any call's end would
/// leave them spinning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spinning_guests_are_interrupted_while_short_calls_come_and_go() {
    let mut sections = bad("spin", "[collectors.bad.limits]\ntimeout = 1.5\n");
    sections += &format!(
        "[collectors.metered]\nenabled = true\ncomponent = {:?}\nmode = \"spin\"\n[collectors.metered.limits]\ntimeout = 1.5\nfuel = 1000000000000000\n",
        guest()
    );
    for i in 0..6 {
        sections += &format!("[collectors.short{i}]\nenabled = true\ncomponent = \"loadavg\"\n");
    }
    // Never interrupted, the spinners would hold even the stop (its abort
    // is noticed at an epoch tick): a failure, not a hang.
    let o = tokio::time::timeout(
        Duration::from_secs(60),
        beside_neighbour("spinning among short calls", &sections, "bad"),
    )
    .await
    .expect("the spinning guests were never interrupted: the agent could not stop");
    assert!(
        get(&o.bad.timeouts) >= 1,
        "the unmetered spinner was interrupted"
    );
    let (_, metered) = o.others.iter().find(|(n, _)| n == "metered").unwrap();
    assert!(
        get(&metered.timeouts) >= 1,
        "the metered spinner was interrupted"
    );
    assert_eq!(
        get(&metered.fuel_exhausted),
        0,
        "by its deadline, not its fuel"
    );
    for (name, st) in o.others.iter().filter(|(n, _)| n.starts_with("short")) {
        assert!(get(&st.runs) >= 2, "{name} ran beside the spinners");
        assert_eq!(get(&st.failures), 0, "{name} failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_never_returns_is_killed_at_the_deadline() {
    let o = beside_neighbour(
        "loop inside a host call",
        &bad("run", "arg = \"/bin/sleep 1000\"\n[collectors.bad.grants]\ncommands = [[\"/bin/sleep\", \"*\"]]\n[collectors.bad.limits]\ntimeout = 0.5\n"),
        "bad",
    )
    .await;
    // The host call ends at the run's deadline with `timed-out` (an error
    // result to the guest), and its process group is killed.
    assert!(
        get(&o.bad.guest_errors) >= 2,
        "every run ended with the command timed out"
    );
    assert!(
        get(&o.bad.last_duration_us) < 900_000,
        "the run ended at its 0.5 s deadline"
    );
    std::thread::sleep(Duration::from_millis(100));
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "^/bin/sleep 1000$"])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "a killed command survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_cap() {
    let o = beside_neighbour(
        "memory bomb",
        &bad("bomb", "[collectors.bad.limits]\nmemory_mb = 16\n"),
        "bad",
    )
    .await;
    assert!(get(&o.bad.memory_exhausted) >= 2);
    assert!(
        get(&o.bad.peak_memory) <= 16 << 20,
        "peak {} over the cap",
        get(&o.bad.peak_memory)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_trap_not_a_crash() {
    let o = beside_neighbour("deep recursion", &bad("recurse", ""), "bad").await;
    assert!(
        get(&o.bad.failures) >= 2 && get(&o.bad.timeouts) == 0 && get(&o.bad.memory_exhausted) == 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_trap_and_the_plugin_is_restarted() {
    let o = beside_neighbour("panic/abort", &bad("trap", ""), "bad").await;
    assert!(get(&o.bad.failures) >= 2 && get(&o.bad.runs) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_etc_shadow_is_denied() {
    let o = beside_neighbour(
        "read /etc/shadow",
        &bad("read", "arg = \"/etc/shadow\"\n"),
        "bad",
    )
    .await;
    assert!(get(&o.bad.denials) >= 3 && get(&o.bad.guest_errors) >= 3);
    assert!(published(&o.lines, "misbehave")
        .iter()
        .all(|l| !l.contains(".bytes ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_environment_is_unreachable() {
    // Even with /proc/*/stat granted, /proc/1/environ is not.
    let o = beside_neighbour(
        "read /proc/1/environ",
        &bad(
            "read",
            "arg = \"/proc/1/environ\"\n[collectors.bad.grants]\nfiles = [\"/proc/*/stat\"]\n",
        ),
        "bad",
    )
    .await;
    assert!(get(&o.bad.denials) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_and_symlink_escapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("link")).unwrap();
    std::fs::write(dir.path().join("ok"), "fine").unwrap();
    let (d, g) = (dir.path().display(), guest());
    let sections = format!(
        "[collectors.bad]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"{d}/link\"\n[collectors.bad.grants]\nfiles = [\"{d}/*\"]\n\
         [collectors.dotdot]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"/proc/../etc/shadow\"\n[collectors.dotdot.grants]\nfiles = [\"/proc/*\"]\n\
         [collectors.fine]\nenabled = true\ncomponent = {g:?}\nmode = \"read\"\narg = \"{d}/ok\"\n[collectors.fine.grants]\nfiles = [\"{d}/*\"]\n"
    );
    let o = beside_neighbour("../ and symlink escapes", &sections, "bad").await;
    assert!(
        get(&o.bad.denials) >= 3,
        "the symlink to /etc/shadow is denied after canonicalisation"
    );
    let (_, dotdot) = o.others.iter().find(|(n, _)| n == "dotdot").unwrap();
    assert!(get(&dotdot.guest_errors) >= 3, "`..` is refused");
    let (_, fine) = o.others.iter().find(|(n, _)| n == "fine").unwrap();
    assert_eq!(
        get(&fine.guest_errors),
        0,
        "a granted file in the same directory is readable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_command_is_denied() {
    let o = beside_neighbour(
        "run an ungranted command",
        &bad("run", "arg = \"/bin/ls /\"\n"),
        "bad",
    )
    .await;
    assert!(get(&o.bad.denials) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_port_is_never_connected() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let o = beside_neighbour(
        "connect to an ungranted port",
        &bad("connect", &format!("arg = \"127.0.0.1:{port}\"\n")),
        "bad",
    )
    .await;
    assert!(get(&o.bad.denials) >= 3);
    assert!(listener.accept().is_err(), "a connection reached the port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_ten_million_metrics_is_bounded() {
    // 10^7 records do not fit in the 64 MiB guest memory: the guest traps on
    // its memory cap, long before the host would have to hold them.
    let o = beside_neighbour(
        "flood 10^7 metrics",
        &bad("flood", "count = 10000000\n"),
        "bad",
    )
    .await;
    assert!(get(&o.bad.memory_exhausted) >= 1, "memory cap");
    assert_eq!(get(&o.bad.metrics), 0);
    // A flood that fits is cut at max_metrics; the rest is counted.
    let o = beside_neighbour(
        "flood 200k with max_metrics 1000",
        &bad(
            "flood",
            "count = 200000\n[collectors.bad.limits]\nmax_metrics = 1000\n",
        ),
        "bad",
    )
    .await;
    let runs = get(&o.bad.runs);
    assert!(runs >= 2);
    assert_eq!(get(&o.bad.metrics), 1000 * runs);
    assert_eq!(get(&o.bad.dropped), (200_001 - 1000) * runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_and_infinities_are_rejected_and_counted() {
    let o = beside_neighbour("NaN/inf values", &bad("nan", ""), "bad").await;
    let runs = get(&o.bad.runs);
    assert_eq!(get(&o.bad.rejected), 3 * runs);
    assert_eq!(
        get(&o.bad.metrics),
        runs,
        "the valid `runs` metric still goes out"
    );
    assert!(o
        .lines
        .iter()
        .all(|l| !l.contains("nan") && !l.contains("inf")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_rejected_and_counted() {
    let o = beside_neighbour("spaces, newlines, 10 KB names", &bad("names", ""), "bad").await;
    let runs = get(&o.bad.runs);
    assert_eq!(get(&o.bad.rejected), 5 * runs);
    for l in &o.lines {
        assert_eq!(l.split(' ').count(), 3, "a line was split: {l:?}");
        assert!(l.len() < 400);
    }
}

#[test]
fn a_guest_that_describes_itself_with_garbage_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.weird]\nenabled = true\ncomponent = {:?}\n[collectors.cpu]\nenabled = true\n",
            common::cache_dir(),
            common::test_guest("collector_bad_describe")
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let errors = wdiamond::agent::load(&common::runtime(), &config, &HostFacts::default())
        .err()
        .expect("refused");
    assert_eq!(errors.0.len(), 1, "{errors}");
    let e = errors.0[0].to_string();
    assert!(
        e.contains("`collectors.weird.component`")
            && e.contains("describes itself badly: its name \"bad name\\nwith newline\""),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_cannot_publish_outside_its_prefix() {
    let sections = format!(
        "[tenants.acme]\nprefix = \"tenants.acme\"\n{}tenant = \"acme\"\narg = \"victim\"\npath_prefix = \"servers\"\n",
        bad("instance", "")
    );
    let o = beside_neighbour("tenant publishing outside its prefix", &sections, "bad").await;
    let mine: Vec<&String> = o
        .lines
        .iter()
        .filter(|l| l.contains("stolen") || l.contains(".misbehave.runs "))
        .collect();
    assert!(mine.len() >= 4, "{mine:?}");
    for l in mine {
        assert!(l.starts_with("tenants.acme."), "escaped its namespace: {l}");
    }
    assert!(o
        .lines
        .iter()
        .any(|l| l.starts_with("tenants.acme.instances.victim.misbehave.stolen ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_quota_affects_no_other_tenant() {
    let sections = format!(
        "[tenants.greedy]\nmax_metrics_per_interval = 50\ninterval = 60\n[tenants.modest]\nmax_metrics_per_interval = 1000\n{}tenant = \"greedy\"\n",
        bad("flood", "count = 40\n")
    );
    let o = beside_neighbour_with(
        "tenant over its metrics quota",
        "tenant = \"modest\"\n",
        &sections,
        "bad",
    )
    .await;
    let runs = get(&o.bad.runs);
    assert!(runs >= 3);
    // 41 metrics per run against a quota of 50 per minute.
    assert_eq!(get(&o.bad.metrics), 50);
    assert_eq!(get(&o.bad.dropped), 41 * runs - 50);
    // The other tenant's collector published everything, every run.
    let (_, n) = o.others.iter().find(|(n, _)| n == "neighbour").unwrap();
    assert_eq!(get(&n.dropped), 0);
    assert_eq!(get(&n.metrics), 8 * get(&n.runs));
    assert!(o
        .lines
        .iter()
        .any(|l| l.starts_with("tenants.modest.servers.adv.loadavg.01 ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_out_of_fuel_skips_runs_until_its_window_ends() {
    let sections = format!(
        "[tenants.burner]\nmax_fuel_per_interval = 200000000\ninterval = 2\n{}tenant = \"burner\"\n[collectors.bad.limits]\ntimeout = 0.8\n",
        bad("spin", "")
    );
    let o = beside_neighbour("tenant over its fuel quota", &sections, "bad").await;
    // Windows of 2 s over the 4.5 s run: the first run is cut at the
    // tenant's fuel, the next in its window skipped; a run in a later
    // window gets fuel again (and is cut again).
    assert!(get(&o.bad.quota_skips) >= 1, "later runs were skipped");
    assert!(
        get(&o.bad.fuel_exhausted) >= 2,
        "runs resumed when the window ended: {} cut at the fuel",
        get(&o.bad.fuel_exhausted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_tell_what_each_plugin_did() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\nhealth_path = \"wdiamond\"\nhealth_interval = 1\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\nhostname = \"h\"\n{}[collectors.loadavg]\nenabled = true\n",
            common::cache_dir(),
            bad("trap", "")
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let loaded =
        tokio::task::block_in_place(|| agent::load(&rt, &config, &HostFacts::default())).unwrap();
    let agent = Agent::start(rt, HostFacts::default(), &conf, &config, loaded);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    agent.shutdown().await;
    let lines = std::fs::read_to_string(&archive).unwrap();
    let last = |name: &str| -> f64 {
        lines
            .lines()
            .filter(|l| l.starts_with(&format!("servers.h.wdiamond.{name} ")))
            .next_back()
            .unwrap_or_else(|| panic!("{name} missing"))
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(last("collectors.bad.failures.trap") >= 1.0);
    assert!(last("collectors.loadavg.runs") >= 2.0);
    assert!(last("collectors.loadavg.metrics.published") >= 16.0);
    assert_eq!(last("collectors.loadavg.failures.total"), 0.0);
    assert!(last("collectors.loadavg.peak_memory_bytes") > 0.0);
    // How late the last run started after its schedule: published, a
    // duration, bounded by the interval (a neighbour kept its schedule).
    let late = last("collectors.loadavg.schedule.lateness_ms");
    assert!((0.0..1000.0).contains(&late), "lateness {late} ms");
    assert!(last("handlers.archive.metrics.published") >= 16.0);
}

/// A handler that keeps every batch handle (`handler_hoard`): the host
/// keeps the metrics of only its MAX_KEPT (8) most recent batches (an older one
/// reads as released), and deletes handles past 1,024 (reading one traps).
#[test]
fn a_handler_hoarding_batches_holds_only_bounded_host_memory() {
    use wdiamond::host::batches::{MAX_HANDLES, MAX_KEPT};
    use wdiamond::plugin::FailureKind;
    let dir = tempfile::tempdir().unwrap();
    let mut h = common::handler(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"hoard\"]\nplugin_cache_dir = {:?}\n[handlers.hoard]\ncomponent = {:?}\n",
            common::cache_dir(),
            common::test_guest("handler_hoard")
        ),
    );
    let batch = |lines: usize| common::gauges((0..lines).map(|i| format!("a.b{i}")));
    for k in 1..=MAX_HANDLES + 1 {
        // Batch k has k lines (up to 9), so the oldest read says which it is.
        let (r, _) = h.process(batch(k.min(9)), Duration::from_secs(5));
        match (k, r) {
            (k, Ok(Err(e))) if k <= MAX_KEPT => {
                assert_eq!(e, format!("read {k} held, oldest has 1 lines"))
            }
            (k, Ok(Err(e))) if k <= MAX_HANDLES => {
                assert!(e.contains("this batch was released"), "batch {k}: {e}")
            }
            (k, Err(f)) if k == MAX_HANDLES + 1 => {
                // The oldest handle was deleted: using it traps.
                assert_eq!(f.kind, FailureKind::Trap, "{}", f.message);
            }
            (k, other) => panic!("batch {k}: {other:?}"),
        }
    }
}

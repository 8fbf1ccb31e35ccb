//! How long a collector's instance lives (`instance = "persistent"` or
//! `"per-run"`): a per-run collector starts from nothing at every run —
//! through `once` and through the running agent — while a persistent one
//! keeps what it counted; traps and failed configurations of per-run
//! instances give their pool slots back; what does not go together is a
//! configuration error naming `instance`. (That the built-ins run per run
//! by default give Diamond's figures is the compat suite's: each sample
//! there gets a fresh instance.)

use crate::common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wdiamond");

fn wdiamond(args: &[&str]) -> Output {
    common::wdiamond_within(args, &[], Duration::from_secs(120))
}

/// The `runs` values a collector published, in order, from `once`'s JSON.
fn runs_of(stdout: &str, collector: &str) -> Vec<(u64, f64)> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| {
            m["collector"] == collector && m["path"].as_str().unwrap_or("").ends_with(".runs")
        })
        .map(|m| (m["run"].as_u64().unwrap(), m["value"].as_f64().unwrap()))
        .collect()
}

#[test]
fn a_per_run_collector_starts_from_nothing_and_gives_its_slot_back() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::test_guest("collector_misbehave");
    let mut text = format!(
        "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.default]\nhostname = \"h\"\n\
         [collectors.fresh]\nenabled = true\ncomponent = {guest:?}\ninstance = \"per-run\"\npath = \"fresh\"\n\
         [collectors.kept]\nenabled = true\ncomponent = {guest:?}\npath = \"kept\"\n",
        common::cache_dir()
    );
    // More per-run collectors than the pool has slots (64 here), half of
    // them trapping at every run and some rejecting nothing: `once` runs
    // each twice, so a slot not given back would exhaust the pool.
    for i in 0..80 {
        let mode = if i % 2 == 0 { "ok" } else { "trap" };
        text.push_str(&format!(
            "[collectors.many{i}]\nenabled = true\ncomponent = {guest:?}\ninstance = \"per-run\"\nmode = {mode:?}\npath = \"many{i}\"\n"
        ));
    }
    let conf = common::write_config(dir.path(), &text);
    let o = wdiamond(&[
        "once",
        conf.to_str().unwrap(),
        "--wait",
        "0",
        "--format",
        "json",
    ]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    // The persistent one counted its two runs; the per-run one saw one
    // run in each of its instances.
    assert_eq!(
        runs_of(&stdout, "kept"),
        vec![(1, 1.0), (2, 2.0)],
        "{stderr}"
    );
    assert_eq!(
        runs_of(&stdout, "fresh"),
        vec![(1, 1.0), (2, 1.0)],
        "{stderr}"
    );
    for i in (0..80).step_by(2) {
        assert_eq!(
            runs_of(&stdout, &format!("many{i}")),
            vec![(1, 1.0), (2, 1.0)],
            "many{i}: {stderr}"
        );
    }
    // The trapping ones failed their runs, and only those.
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("collectors.many1: 2 of 2 runs failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cannot instantiate"),
        "no slot ran out: {stderr}"
    );
    assert!(
        stderr.contains("collectors.fresh: ok, 2 metrics"),
        "{stderr}"
    );
}

#[test]
fn the_running_agent_makes_a_per_run_instance_at_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let guest = common::test_guest("collector_misbehave");
    let archive = dir.path().join("archive.log");
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {:?}\n[handlers.archive]\nlog_file = {archive:?}\n\
             [collectors.default]\nhostname = \"h\"\ninterval = 1\n\
             [collectors.fresh]\nenabled = true\ncomponent = {guest:?}\ninstance = \"per-run\"\npath = \"fresh\"\n\
             [collectors.kept]\nenabled = true\ncomponent = {guest:?}\npath = \"kept\"\n\
             [collectors.loadavg]\nenabled = true\n",
            common::cache_dir()
        ),
    );
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", conf.to_str().unwrap()])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let values = |path: &str| -> Vec<f64> {
        std::fs::read_to_string(&archive)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("servers.h.{path}.runs ")))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end && (values("kept").len() < 3 || values("fresh").len() < 3) {
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let agent_log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    let (kept, fresh) = (values("kept"), values("fresh"));
    assert!(
        kept.len() >= 3 && fresh.len() >= 3,
        "{kept:?} {fresh:?}\n{agent_log}"
    );
    assert_eq!(&kept[..3], &[1.0, 2.0, 3.0], "{agent_log}");
    assert!(fresh.iter().all(|v| *v == 1.0), "{fresh:?}\n{agent_log}");
    // Beside them, a built-in (persistent in an agent of few collectors).
    let archived = std::fs::read_to_string(&archive).unwrap();
    assert!(archived.contains("servers.h.loadavg.01 "), "{agent_log}");
    // Quietly: a per-run instance is not a re-instantiation after a failure.
    assert!(!agent_log.contains("re-instantiated"), "{agent_log}");
    assert!(status.success(), "{agent_log}");
}

#[test]
fn the_stateless_built_ins_run_per_run_in_an_agent_of_many_collectors() {
    let instancing = |n: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.cpu]\nenabled = true\n[collectors.kept]\nenabled = true\ncomponent = \"uptime\"\ninstance = \"persistent\"\n",
            common::cache_dir()
        );
        for i in 2..n {
            text.push_str(&format!(
                "[collectors.load{i}]\nenabled = true\ncomponent = \"loadavg\"\n"
            ));
        }
        let conf = common::write_config(dir.path(), &text);
        let config = wdiamond::config::load(&conf).unwrap();
        let loaded = wdiamond::agent::load(
            &common::runtime(),
            &config,
            &wdiamond::host::HostFacts::default(),
        )
        .unwrap();
        let summary = wdiamond::check::summary(&config, &loaded);
        let per_run = n - 2;
        assert_eq!(
            summary.contains(&format!("  {per_run} of them per run (`instance`")),
            n >= wdiamond::agent::PER_RUN_FROM,
            "{summary}"
        );
        let of = |name: &str| {
            let c = loaded
                .collectors
                .iter()
                .find(|c| c.config.plugin.name == name)
                .unwrap();
            (c.instancing, c.instance.is_some())
        };
        (of("cpu"), of("kept"), of("load2"))
    };
    use wdiamond::config::Instancing::{PerRun, Persistent};
    let few = wdiamond::agent::PER_RUN_FROM - 1;
    assert_eq!(
        instancing(few),
        ((Persistent, true), (Persistent, true), (Persistent, true))
    );
    // From PER_RUN_FROM on: loadavg per run, holding no instance; cpu (rates)
    // and the one set persistent keep theirs.
    assert_eq!(
        instancing(few + 1),
        ((Persistent, true), (Persistent, true), (PerRun, false))
    );
}

#[test]
fn what_does_not_go_with_per_run_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("up.py");
    std::fs::write(
        &script,
        "import diamond.collector\nclass Up(diamond.collector.Collector):\n    def collect(self):\n        self.publish('x', 1)\n",
    )
    .unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\
             [collectors.metered]\nenabled = true\ncomponent = \"uptime\"\ninstance = \"per-run\"\n\
             [collectors.metered.limits]\nfuel = 100000000\n",
            common::cache_dir()
        ),
    );
    let o = wdiamond(&["check", conf.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("collectors.metered.instance")
            && stderr.contains("does not go with a fuel limit"),
        "{stderr}"
    );
    {
        let conf = common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\
                 [collectors.loadavg]\nenabled = true\ninstance = \"sometimes\"\n",
                common::cache_dir()
            ),
        );
        let o = wdiamond(&["check", conf.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(78), "{stderr}");
        assert!(
            stderr.contains("wdiamond.toml:6:1: `collectors.loadavg.instance`: unknown instance lifetime \"sometimes\" (one of: \"persistent\", \"per-run\")"),
            "{stderr}"
        );
    }
    {
        // Refused before the Python runtime is needed.
        let conf = common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\
                 [collectors.up]\nenabled = true\ncomponent = {script:?}\ninstance = \"per-run\"\n",
                common::cache_dir()
            ),
        );
        let o = wdiamond(&["check", conf.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(78), "{stderr}");
        assert!(
            stderr.contains("collectors.up.instance")
                && stderr.contains("is for compiled components"),
            "{stderr}"
        );
    }
}

/// CPU of a run of the built-in loadavg, held instance against a per-run
/// one (instantiated from the pool, configured, run, dropped), on this
/// thread; median of 5 rounds of 2,000. A benchmark, not a test:
/// `cargo test --release --test all -- instancing::cost --ignored --nocapture`.
#[test]
#[ignore]
fn cost() {
    fn thread_cpu() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\
             [collectors.fresh]\nenabled = true\ncomponent = \"loadavg\"\ninstance = \"per-run\"\n\
             [collectors.kept]\nenabled = true\ncomponent = \"loadavg\"\ninstance = \"persistent\"\n",
            common::cache_dir()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = common::runtime();
    let mut loaded =
        wdiamond::agent::load(&rt, &config, &wdiamond::host::HostFacts::default()).unwrap();
    let pre = rt.collector_pre(&loaded.collectors[0].component).unwrap();
    let ctx = loaded.collectors[0].ctx.clone();
    let kept = loaded.collectors[1].instance.as_mut().unwrap();
    let n = 2000;
    let (mut held, mut fresh) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = thread_cpu();
        for _ in 0..n {
            let (r, _) = kept.collect(Duration::from_secs(10));
            assert!(matches!(r, Ok(Ok(_))));
        }
        held.push((thread_cpu() - t).as_secs_f64() * 1e6 / n as f64);
        let t = thread_cpu();
        for _ in 0..n {
            let mut i = rt.configured_from(&pre, ctx.clone()).unwrap();
            let (r, _) = i.collect(Duration::from_secs(10));
            assert!(matches!(r, Ok(Ok(_))));
        }
        fresh.push((thread_cpu() - t).as_secs_f64() * 1e6 / n as f64);
    }
    held.sort_by(f64::total_cmp);
    fresh.sort_by(f64::total_cmp);
    println!(
        "loadavg, CPU a run: held instance {:.1} µs (rounds {held:.1?}); per-run instance {:.1} µs (rounds {fresh:.1?})",
        held[2], fresh[2]
    );
}

//! The adversarial cases through the Python path: a hostile Diamond-style
//! script (`tests/fixtures/python/hostile.py`, its `mode` the attack) run
//! by the Python runtime beside the neighbour. The interpreter is the same
//! component for every Python collector; what a script may touch is its
//! grants', and every limit applies to it as to any plugin.

use super::*;

fn hostile(mode: &str, extra: &str) -> String {
    let script = common::repo().join("tests/fixtures/python/hostile.py");
    format!(
        "[collectors.py]\nenabled = true\ncomponent = {:?}\nmode = {mode:?}\n{extra}",
        script.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reading_etc_shadow_is_a_permission_error_and_a_counted_denial() {
    let o = beside_neighbour("python /etc/shadow", &hostile("shadow", ""), "py").await;
    let mine = published(&o.lines, "hostile");
    assert!(
        mine.iter()
            .all(|l| !l.contains("read_shadow") && !l.contains("escaped")),
        "{mine:?}"
    );
    // open, listdir, stat and statvfs: four PermissionErrors per run, each
    // a denial the agent counted (plus the exists() probe's stat).
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile.denied 1 ")),
        "{mine:?}"
    );
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile.exists 0 ")),
        "{mine:?}"
    );
    let runs = get(&o.bad.runs);
    assert!(runs >= 3, "{runs} runs");
    assert!(
        get(&o.bad.denials) >= 5 * runs,
        "{} denials in {runs} runs",
        get(&o.bad.denials)
    );
    assert_eq!(get(&o.bad.failures) + get(&o.bad.guest_errors), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_infinite_loop_and_sleep_are_stopped_at_the_deadline() {
    // A loop in bytecode, and a wait inside WASI (`time.sleep`).
    for mode in ["spin", "sleep"] {
        let o = beside_neighbour(
            &format!("python {mode}"),
            &hostile(mode, "[collectors.py.limits]\ntimeout = 0.3\n"),
            "py",
        )
        .await;
        assert!(
            get(&o.bad.timeouts) >= 2,
            "{mode}: stopped at every run's deadline"
        );
        assert!(published(&o.lines, "hostile").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_unbounded_list_is_stopped_at_the_memory_cap() {
    let o = beside_neighbour(
        "python memory hog",
        &hostile("hog", "[collectors.py.limits]\nmemory_mb = 48\n"),
        "py",
    )
    .await;
    assert!(
        get(&o.bad.memory_exhausted) >= 2,
        "stopped at the cap every run"
    );
    assert!(get(&o.bad.peak_memory) <= 48 << 20);
    assert!(published(&o.lines, "hostile").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exception_in_collect_is_a_counted_guest_error() {
    let o = beside_neighbour("python raises", &hostile("raise", ""), "py").await;
    assert!(get(&o.bad.guest_errors) >= 3, "every run's error counted");
    assert_eq!(get(&o.bad.failures), 0, "an exception is not a trap");
    assert!(published(&o.lines, "hostile").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_escapes_fail_in_python_and_never_trap() {
    let o = beside_neighbour("python escapes", &hostile("escape", ""), "py").await;
    let mine = published(&o.lines, "hostile");
    assert!(mine.iter().all(|l| !l.contains("escaped")), "{mine:?}");
    for name in [
        "command",
        "connect",
        "direct",
        "fileio",
        "fork",
        "osopen",
        "rawsocket",
        "remove",
        "shell",
        "thread",
        "write",
    ] {
        assert!(
            mine.iter()
                .any(|l| l.starts_with(&format!("servers.adv.hostile.refused.{name} 1 "))),
            "{name} was not refused in Python: {mine:?}"
        );
    }
    assert!(!Path::new("/tmp/wdiamond-hostile-wrote").exists());
    assert_eq!(get(&o.bad.failures) + get(&o.bad.guest_errors), 0);
    // The command, the shell, the connection and the direct import call
    // were asked of the host and denied, at every run.
    assert!(get(&o.bad.denials) >= 4 * get(&o.bad.runs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_log_and_print_floods_leave_the_neighbour_on_schedule() {
    let o = beside_neighbour(
        "python log flood",
        &hostile("flood", "[collectors.py.limits]\ntimeout = 0.9\n"),
        "py",
    )
    .await;
    // Whether the flood ends within the deadline or not, the neighbour kept
    // its schedule (checked by beside_neighbour) and the agent kept going.
    // What the flood puts in the log is capped: the daemon's log test
    // (holes.rs, guest_strings_reach_the_log_cut_and_rate_limited).
    assert!(get(&o.bad.runs) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_too_many_metrics_and_bad_names_are_rejected() {
    let many = beside_neighbour(
        "python a million metrics",
        &hostile("many", "[collectors.py.limits]\nmax_metrics = 1000\n"),
        "py",
    )
    .await;
    // The runtime stops the run at the host's limit: a guest error naming
    // it, not a run that fills memory until the deadline.
    assert!(published(&many.lines, "hostile").is_empty());
    assert!(
        get(&many.bad.guest_errors) >= 3,
        "every run stopped at max_metrics"
    );
    assert_eq!(get(&many.bad.failures), 0);
    let names = beside_neighbour("python a 100 kB name", &hostile("bigname", ""), "py").await;
    let mine = published(&names.lines, "hostile");
    assert!(
        mine.iter().all(|l| l.len() < 1000),
        "a huge name reached the archive"
    );
    // The name is refused by the host's checks, counted every run, and the
    // run's other metric published.
    assert!(get(&names.bad.rejected) >= 2, "rejected: {:?}", names.bad);
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile.ok 1 ")),
        "{mine:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exit_and_runaway_recursion_end_the_run_not_the_agent() {
    for mode in ["exit", "recurse"] {
        let o = beside_neighbour(&format!("python {mode}"), &hostile(mode, ""), "py").await;
        // Each run ends (an exit or a stack overflow traps the instance,
        // which is made again for the next run), every one counted.
        assert!(get(&o.bad.runs) >= 3, "{mode}");
        assert_eq!(
            get(&o.bad.failures) + get(&o.bad.guest_errors),
            get(&o.bad.runs),
            "{mode}: every run failed and was counted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cannot_import_a_module_it_wrote_into_its_grant() {
    // Before, a pinned script wrote a module into its directories grant
    // and imported it on its next run. Now the module files are refused by
    // the host (open, create, rename), and the import system reads no
    // files even when the script puts the file finder back.
    let dir = tempfile::tempdir().unwrap();
    let o = beside_neighbour(
        "python plants a module",
        &hostile(
            "plant",
            &format!(
                "arg = {:?}\n[collectors.py.grants]\ndirectories = [{:?}]\n",
                dir.path().display().to_string(),
                dir.path().display().to_string()
            ),
        ),
        "py",
    )
    .await;
    let mine = published(&o.lines, "hostile");
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile.alive 1 ")),
        "{mine:?}"
    );
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile.imported 0 ")),
        "{mine:?}"
    );
    assert!(
        !mine
            .iter()
            .any(|l| l.starts_with("servers.adv.hostile.imported ")
                && !l.starts_with("servers.adv.hostile.imported 0 ")),
        "a planted module ran: {mine:?}"
    );
    // .py, .pyc, .zip and the rename to .py: four refusals a run.
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile.plant_refused 4 ")),
        "{mine:?}"
    );
    for name in [
        "planted_mod.py",
        "planted_mod.pyc",
        "planted.zip",
        "renamed_mod.py",
    ] {
        assert!(!dir.path().join(name).exists(), "{name} was written");
    }
    assert!(get(&o.bad.denials) >= 4 * 3);
    assert_eq!(get(&o.bad.failures), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stat_and_open_follow_one_rule_in_its_own_grant() {
    // Before, open worked in its directories grant while os.stat there was
    // sent to the host's `files` grants and denied.
    let dir = tempfile::tempdir().unwrap();
    let o = beside_neighbour(
        "python stats its own files",
        &hostile(
            "statown",
            &format!(
                "arg = {:?}\n[collectors.py.grants]\ndirectories = [{:?}]\n",
                dir.path().display().to_string(),
                dir.path().display().to_string()
            ),
        ),
        "py",
    )
    .await;
    let mine = published(&o.lines, "hostile");
    for want in ["stat_size 3 ", "writable 1 ", "listed 1 "] {
        assert!(
            mine.iter()
                .any(|l| l.starts_with(&format!("servers.adv.hostile.{want}"))),
            "{want}: {mine:?}"
        );
    }
    assert_eq!(get(&o.bad.denials), 0);
    assert_eq!(get(&o.bad.failures) + get(&o.bad.guest_errors), 0);
}

/// A script in Python 2 (the bridge): urllib2, httplib, `file()`,
/// `commands`, `os.popen` and a socket sending text all meet the grants --
/// each a PermissionError in the script and a denial the agent counts --
/// while Python 2's meaning holds (`7 / 2` is 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_2_names_meet_the_same_grants() {
    // A port something listens on, not granted: only the grant stops it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = common::repo().join("tests/fixtures/python/hostile2.py");
    let section = format!(
        "[collectors.py2]\nenabled = true\ncomponent = {:?}\nport = \"{port}\"\n[collectors.py2.limits]\ntimeout = 5\n",
        script.display().to_string()
    );
    let o = beside_neighbour("python 2 names", &section, "py2").await;
    let mine = published(&o.lines, "hostile2");
    assert!(mine.iter().all(|l| !l.contains("escaped")), "{mine:?}");
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile2.denied 1 ")),
        "{mine:?}"
    );
    assert!(
        mine.iter()
            .any(|l| l.starts_with("servers.adv.hostile2.half 3 ")),
        "{mine:?}"
    );
    let runs = get(&o.bad.runs);
    assert!(runs >= 3, "{runs} runs");
    // Six ways out a run, each denied by the host (and counted).
    assert!(
        get(&o.bad.denials) >= 6 * runs,
        "{} denials in {runs} runs",
        get(&o.bad.denials)
    );
    assert_eq!(
        get(&o.bad.failures) + get(&o.bad.guest_errors),
        0,
        "{:?}",
        o.bad
    );
    drop(listener);
}

/// `python_path`: `.py` files under it are importable, nothing else there
/// is readable, and a compiled extension is refused by name.
#[test]
fn python_path_imports_only_pure_python() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::write(lib.join("helper.py"), "def value():\n    return 42\n").unwrap();
    std::fs::write(lib.join("secret.txt"), "not for plugins").unwrap();
    std::fs::write(
        lib.join("fastlib.cpython-311-x86_64-linux-gnu.so"),
        b"\x7fELF",
    )
    .unwrap();
    let script = dir.path().join("uses.py");
    std::fs::write(
        &script,
        format!(
            "import diamond.collector\nimport helper\n\nclass UsesCollector(diamond.collector.Collector):\n    def get_default_config(self):\n        c = super(UsesCollector, self).get_default_config()\n        c.update({{'path': 'uses'}})\n        return c\n\n    def collect(self):\n        self.publish('value', helper.value())\n        try:\n            open({:?}).read()\n            self.publish('escaped', 1)\n        except PermissionError:\n            self.publish('denied', 1)\n        try:\n            import fastlib\n        except ImportError as e:\n            self.log.info('fastlib: %s', e)\n            self.publish('refused', int('compiled extension' in str(e)))\n",
            lib.join("secret.txt").display().to_string()
        ),
    )
    .unwrap();
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.uses]\nenabled = true\ncomponent = {:?}\npython_path = [{:?}]\n",
            common::cache_dir(),
            script.display().to_string(),
            lib.display().to_string()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap_or_else(|e| panic!("{e}"));
    let rt = common::runtime();
    let mut loaded =
        agent::load(&rt, &config, &HostFacts::default()).unwrap_or_else(|e| panic!("{e}"));
    let lc = &mut loaded.collectors[0];
    let (r, usage) = lc
        .instance_mut(&rt)
        .unwrap()
        .collect(Duration::from_secs(10));
    let metrics = lc.publication.publish(r.unwrap().unwrap(), 0);
    let got: Vec<(String, f64)> = metrics
        .published
        .iter()
        .map(|m| (m.path.rsplit('.').next().unwrap().to_string(), m.value))
        .collect();
    assert!(got.contains(&("value".into(), 42.0)), "{got:?}");
    assert!(got.contains(&("denied".into(), 1.0)), "{got:?}");
    assert!(got.contains(&("refused".into(), 1.0)), "{got:?}");
    assert!(!got.iter().any(|m| m.0 == "escaped"), "{got:?}");
    assert!(usage.calls.denials >= 1);
    // `python_path` on a collector that is not a script: an error naming it.
    let conf = common::write_config(
        dir.path(),
        &format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.loadavg]\nenabled = true\npython_path = [\"/tmp\"]\n",
            common::cache_dir()
        ),
    );
    let config = wdiamond::config::load(&conf).unwrap();
    let err = match agent::load(&rt, &config, &HostFacts::default()) {
        Ok(_) => panic!("python_path accepted on a Rust collector"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`python_path` is for Python collectors"),
        "{err}"
    );
}

/// What a script checks while it is described (`__init__`,
/// `process_config`: Diamond's ntp, unbound, scribe check their binary or
/// file there) its section's grants allow: the probe that describes it has
/// them too.
#[test]
fn a_granted_file_is_readable_while_the_script_is_described() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("checks.py");
    std::fs::write(
        &script,
        "import diamond.collector\n\nclass ChecksCollector(diamond.collector.Collector):\n    def get_default_config(self):\n        c = super(ChecksCollector, self).get_default_config()\n        c.update({'path': 'checks'})\n        return c\n\n    def process_config(self):\n        super(ChecksCollector, self).process_config()\n        self.load = open('/proc/loadavg').read().split()[0]\n\n    def collect(self):\n        self.publish('load', float(self.load))\n",
    )
    .unwrap();
    let section = |grants: &str| {
        common::write_config(
            dir.path(),
            &format!(
                "[server]\nhandlers = []\nplugin_cache_dir = {:?}\n[collectors.checks]\nenabled = true\ncomponent = {:?}\n{grants}",
                common::cache_dir(),
                script.display().to_string()
            ),
        )
    };
    let rt = common::runtime();
    let granted = wdiamond::config::load(&section(
        "[collectors.checks.grants]\nfiles = [\"/proc/loadavg\"]\n",
    ))
    .unwrap();
    agent::load(&rt, &granted, &HostFacts::default()).unwrap_or_else(|e| panic!("{e}"));
    // Not granted: refused, the denial naming the section to add it to.
    let bare = wdiamond::config::load(&section("")).unwrap();
    let err = match agent::load(&rt, &bare, &HostFacts::default()) {
        Ok(_) => panic!("read /proc/loadavg without a grant"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("[collectors.checks.grants] files"), "{err}");
}

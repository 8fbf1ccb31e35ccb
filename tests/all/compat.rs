//! Diamond compatibility: every case of `tests/fixtures/diamond/` for the
//! collectors wdiamond ships, replayed through the real wasm guests.
//!
//! For each sample (`input/1`, `input/2`, or `input/`) the case's files are
//! laid under a fresh root that the host maps /proc and /sys onto, the
//! case's `[mock]` facts are applied, and one collection runs on the same
//! instance. After the last one, the published metrics must equal
//! `expected.tsv` (name, value, precision, type) and `wire.txt` (the line
//! Diamond's graphite handler sends, without the timestamp).
//!
//! How each `[mock]` key is applied:
//! - `proc_xen_exists = true`: the directory `/proc/xen` exists.
//! - `loadavg = [a, b, c]` (Diamond's mocked `os.getloadavg()`): the first
//!   three fields of `/proc/loadavg`, which `getloadavg()` reads, are
//!   replaced by these values; the rest of the fixture line is kept.
//! - `cpu_count`: the host reports it through `host-info.cpu-count`.
//! - `time_1`, `time_2`: the host's clock during the first / second collect.
//! - `[mock.statvfs]`: the host reports these statvfs values for any path.
//! - `stat_st_dev` (one device for every path): every mount point of
//!   `/proc/mounts` exists (as a directory under the root, so they all share
//!   one device, which is what the mock says).
//! - `dev_disk_by_label_exists = false`: `/dev/disk/by-label` is absent.
//!
//! Deliberate deviations (README, "Diamond compatibility") are listed in
//! [`deviation`]: there the value must still equal Diamond's, and the wire
//! line is Diamond's value printed with our precision.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wdiamond::bindings::fs_stats::Statvfs;
use wdiamond::bindings::types::MetricKind;
use wdiamond::host::HostFacts;

/// The collectors whose cases run here, with their metric path segment.
const SUPPORTED: &[(&str, &str)] = &[
    ("cpu", "cpu"),
    ("memory", "memory"),
    ("loadavg", "loadavg"),
    ("network", "network"),
    ("diskspace", "diskspace"),
    ("diskusage", "iostat"),
    ("vmstat", "vmstat"),
    ("sockstat", "sockets"),
    ("tcp", "tcp"),
    ("udp", "udp"),
    ("proc", "proc"),
    ("uptime", "uptime"),
    ("entropy", "entropy"),
    ("filestat", "files"),
    ("interrupt", "interrupts"),
    ("softirq", "softirq"),
    ("netstat", "netstat"),
];

/// Our precision where it deliberately differs from Diamond's.
fn deviation(collector: &str, name: &str) -> Option<u8> {
    // network: Diamond passes 2 as raw_value for the converted byte
    // counters, so its wire shows integers; we print the intended 2.
    const PLAIN: [&str; 14] = [
        "rx_packets",
        "rx_errors",
        "rx_drop",
        "rx_fifo",
        "rx_frame",
        "rx_compressed",
        "rx_multicast",
        "tx_packets",
        "tx_errors",
        "tx_drop",
        "tx_fifo",
        "tx_colls",
        "tx_carrier",
        "tx_compressed",
    ];
    let field = name.rsplit('.').next().unwrap_or_default();
    (collector == "network" && !PLAIN.contains(&field)).then_some(2)
}

/// Metrics the kit's Diamond (2023) publishes that the released 4.0.515
/// scripts do not have yet: memory's `MemUsedPercentage`, diskspace's
/// mounts under /sys (4.0.515 skips every mount under /dev, /proc, /sys),
/// diskusage's NVMe devices (not in 4.0.515's default `devices`).
fn after_the_release(collector: &str, name: &str) -> bool {
    (collector == "memory" && name == "MemUsedPercentage")
        || (collector == "diskspace" && name.starts_with("_sys_"))
        || (collector == "diskusage" && name.starts_with("nvme"))
}

fn fixtures() -> PathBuf {
    common::repo().join("tests/fixtures/diamond")
}

#[derive(Debug, Clone)]
struct Expected {
    value: f64,
    precision: u8,
    kind: &'static str,
}

fn read_expected(case: &Path) -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(case.join("expected.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let kind = if f[3] == "COUNTER" {
                "COUNTER"
            } else {
                "GAUGE"
            };
            (
                f[0].to_string(),
                Expected {
                    value: f[1].parse().unwrap(),
                    precision: f[2].parse().unwrap(),
                    kind,
                },
            )
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn toml_value(v: &toml::Value) -> String {
    v.to_string()
}

/// Which implementation of a collector a case runs through.
#[derive(Clone, Copy, PartialEq)]
enum Guest {
    /// The built-in Rust component.
    Rust,
    /// The Diamond-style Python port in `python/collectors/`, run by the
    /// Python runtime component, granted the case's /proc and /sys.
    Python,
    /// Diamond's own script (released 4.0.515, fetched from PyPI), run
    /// unchanged through the Python 2 bridge, granted the same.
    Diamond,
}

/// Diamond's script of each kit collector, in its released collectors.
fn diamond_script(collector: &str) -> &'static str {
    match collector {
        "softirq" => "interrupt/soft.py",
        "cpu" => "cpu/cpu.py",
        "memory" => "memory/memory.py",
        "loadavg" => "loadavg/loadavg.py",
        "network" => "network/network.py",
        "diskspace" => "diskspace/diskspace.py",
        "diskusage" => "diskusage/diskusage.py",
        "vmstat" => "vmstat/vmstat.py",
        "sockstat" => "sockstat/sockstat.py",
        "tcp" => "tcp/tcp.py",
        "udp" => "udp/udp.py",
        "proc" => "proc/proc.py",
        "uptime" => "uptime/uptime.py",
        "entropy" => "entropy/entropy.py",
        "filestat" => "filestat/filestat.py",
        "interrupt" => "interrupt/interrupt.py",
        other => panic!("{other}: no Diamond script in {}", common::diamond::VERSION),
    }
}

/// Runs one case; returns the mismatches (empty when it passes).
fn run_case(collector: &str, case: &Path, guest: Guest) -> Vec<String> {
    let cfg: toml::Table = std::fs::read_to_string(case.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mock = cfg
        .get("mock")
        .and_then(|m| m.as_table())
        .cloned()
        .unwrap_or_default();
    let root = tempfile::tempdir().unwrap();

    // The wdiamond config for the case: Diamond's keys as the test passes
    // them, and Diamond's first 0 for a counter's first sample.
    let mut text = format!("[server]\nhandlers = []\nplugin_cache_dir = {:?}\n\n[collectors.{collector}]\nenabled = true\npublish_first_rate = true\n", common::cache_dir());
    for (k, v) in &cfg {
        if k != "mock" {
            text.push_str(&format!("{k} = {}\n", toml_value(v)));
        }
    }
    if guest == Guest::Rust && wdiamond::plugin::STATELESS_BUILTINS.contains(&collector) {
        // Run per run (a fresh instance for every sample, below), as an
        // agent of many collectors runs it by default.
        text.push_str("instance = \"per-run\"\n");
    }
    if guest != Guest::Rust {
        let script = match guest {
            Guest::Diamond => common::diamond::script(diamond_script(collector)),
            _ => common::repo().join(format!("python/collectors/{collector}.py")),
        };
        text.push_str(&format!("component = {:?}\n", script.display().to_string()));
        if !cfg.contains_key("path") {
            let seg = SUPPORTED.iter().find(|(c, _)| *c == collector).unwrap().1;
            text.push_str(&format!("path = {seg:?}\n"));
        }
        // Diamond's diskspace stats each mount point, wherever it is.
        let grants = match guest {
            Guest::Diamond => "files = [\"/**\"]\nstatvfs = [\"/**\"]\n",
            _ => "files = [\"/proc/**\", \"/sys/**\"]\n",
        };
        text.push_str(&format!("[collectors.{collector}.grants]\n{grants}"));
    }
    let conf_dir = tempfile::tempdir().unwrap();
    let path = common::write_config(conf_dir.path(), &text);
    let config =
        wdiamond::config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", case.display()));

    let statvfs = mock.get("statvfs").and_then(|v| v.as_table()).map(|t| {
        let f = |k: &str| t[k].as_integer().unwrap() as u64;
        Statvfs {
            bsize: f("f_bsize"),
            frsize: f("f_frsize"),
            blocks: f("f_blocks"),
            bfree: f("f_bfree"),
            bavail: f("f_bavail"),
            files: f("f_files"),
            ffree: f("f_ffree"),
            favail: f("f_favail"),
            flag: f("f_flag"),
            namemax: f("f_namemax"),
        }
    });
    let clock = Arc::new(Mutex::new(1_700_000_000.0));
    let facts = HostFacts {
        fs_root: Some(root.path().to_path_buf()),
        cpu_count: mock
            .get("cpu_count")
            .and_then(|v| v.as_integer())
            .map(|n| n as u32),
        now: Some(clock.clone()),
        statvfs,
    };
    let rt = common::runtime();
    let mut loaded = wdiamond::agent::load(&rt, &config, &facts)
        .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let mut lc = loaded.collectors.remove(0);
    // A per-run collector (the built-ins that keep no state, by default)
    // gets a fresh instance for every sample, as the agent runs it: its
    // figures must be Diamond's all the same.
    let per_run = lc.instancing == wdiamond::config::Instancing::PerRun;

    let input = case.join("input");
    let samples: Vec<PathBuf> = if input.join("1").is_dir() {
        let mut s: Vec<PathBuf> = std::fs::read_dir(&input)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        s.sort();
        s
    } else {
        vec![input.clone()]
    };
    let expected = read_expected(case);
    let mut problems = Vec::new();
    let mut last = wdiamond::metric::Chunk::default();
    for (i, sample) in samples.iter().enumerate() {
        // Fresh root with exactly this sample's files.
        for e in std::fs::read_dir(root.path()).unwrap() {
            std::fs::remove_dir_all(e.unwrap().path()).unwrap();
        }
        copy_tree(sample, root.path());
        if mock.get("proc_xen_exists").and_then(|v| v.as_bool()) == Some(true) {
            std::fs::create_dir_all(root.path().join("proc/xen")).unwrap();
        }
        if let Some(t) = mock
            .get(&format!("time_{}", i + 1))
            .and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)))
        {
            *clock.lock().unwrap() = t;
        }
        if mock.contains_key("stat_st_dev") {
            let mounts =
                std::fs::read_to_string(root.path().join("proc/mounts")).unwrap_or_default();
            for mp in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
                if mp.starts_with('/') && !mp.contains("..") {
                    std::fs::create_dir_all(root.path().join(&mp[1..])).unwrap();
                }
            }
        }
        if let Some(loads) = mock.get("loadavg").and_then(|v| v.as_array()) {
            let file = root.path().join("proc/loadavg");
            let original = std::fs::read_to_string(&file).unwrap_or_default();
            let rest: Vec<&str> = original.split_whitespace().skip(3).collect();
            let loads: Vec<String> = loads
                .iter()
                .map(|v| v.as_float().unwrap().to_string())
                .collect();
            std::fs::write(&file, format!("{} {}\n", loads.join(" "), rest.join(" "))).unwrap();
        }
        if per_run {
            lc.instance = None;
        }
        let instance = lc.instance_mut(&rt).expect("instantiating");
        let (result, _) = instance.collect(Duration::from_secs(10));
        let metrics = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                problems.push(format!(
                    "sample {}: the collector returned an error: {e}",
                    i + 1
                ));
                return problems;
            }
            Err(f) => {
                problems.push(format!("sample {}: the collector failed: {f}", i + 1));
                return problems;
            }
        };
        let checked = lc.publication.publish(metrics, 1_700_000_000);
        assert_eq!(checked.rejected, 0, "{:?}", checked.reasons);
        if i == 0 && samples.len() > 1 && collector == "cpu" {
            // Diamond's first cpu sample: the same names, all 0 but cpu_count.
            let prefix = format!("servers.testhost.{collector}.");
            let names: Vec<String> = checked
                .published
                .iter()
                .map(|m| m.path.trim_start_matches(&prefix).to_string())
                .collect();
            let want: Vec<&String> = expected.keys().collect();
            let mut got: Vec<&String> = names.iter().collect();
            got.sort();
            if got != want {
                problems.push("first sample: names differ from Diamond's".into());
            }
            for m in &checked.published {
                if !m.path.ends_with("cpu_count") && m.value != 0.0 {
                    problems.push(format!(
                        "first sample: {} = {} (Diamond publishes 0)",
                        m.path, m.value
                    ));
                }
            }
        }
        last = checked.published;
    }

    let default_path = SUPPORTED
        .iter()
        .find(|(c, _)| *c == collector)
        .map(|(_, p)| *p)
        .unwrap();
    let path_seg = cfg
        .get("path")
        .and_then(|p| p.as_str())
        .unwrap_or(default_path);
    let prefix = format!("servers.testhost.{path_seg}.");
    let mut got = BTreeMap::new();
    for m in &last {
        let Some(name) = m.path.strip_prefix(&prefix) else {
            problems.push(format!("path {} is not under {prefix}", m.path));
            continue;
        };
        if got.insert(name.to_string(), m).is_some() {
            problems.push(format!("{name} published twice"));
        }
    }
    for (name, e) in &expected {
        if guest == Guest::Diamond && after_the_release(collector, name) {
            continue;
        }
        let Some(m) = got.get(name) else {
            problems.push(format!("missing {name}"));
            continue;
        };
        let kind = if m.kind == MetricKind::Counter {
            "COUNTER"
        } else {
            "GAUGE"
        };
        let close = (m.value - e.value).abs() <= 1e-12 * e.value.abs().max(1.0);
        let precision = match guest {
            Guest::Diamond => e.precision,
            _ => deviation(collector, name).unwrap_or(e.precision),
        };
        if !close || m.precision != precision || kind != e.kind {
            problems.push(format!(
                "{name}: got {} (precision {}, {kind}), Diamond {} (precision {}, {})",
                m.value, m.precision, e.value, e.precision, e.kind
            ));
        }
    }
    for name in got.keys() {
        if !expected.contains_key(name) {
            problems.push(format!("extra metric {name}"));
        }
    }
    // The wire lines.
    let wire = std::fs::read_to_string(case.join("wire.txt")).unwrap();
    let mut want: Vec<String> = wire
        .lines()
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let name = l.split(' ').next().unwrap().strip_prefix(&prefix);
            guest != Guest::Diamond || !name.is_some_and(|n| after_the_release(collector, n))
        })
        .map(|l| {
            let path = l.split(' ').next().unwrap();
            let name = path.strip_prefix(&prefix).unwrap_or(path);
            let ours = deviation(collector, name).filter(|_| guest != Guest::Diamond);
            match (ours, expected.get(name)) {
                (Some(p), Some(e)) => format!("{path} {:.p$}", e.value, p = p as usize),
                _ => l.to_string(),
            }
        })
        .collect();
    want.sort();
    // The lines the host wrote for the handlers (Diamond's `str(metric)`),
    // without their timestamp, which Diamond's wire fixtures leave out.
    let mut lines = Vec::new();
    for m in &last {
        let text = m.line.strip_suffix('\n').unwrap_or(m.line);
        match text.rsplit_once(' ') {
            Some((text, "1700000000")) => lines.push(text.to_string()),
            _ => problems.push(format!(
                "line {text:?} does not end with the run's timestamp"
            )),
        }
    }
    lines.sort();
    for (a, b) in lines.iter().zip(&want) {
        if a != b {
            problems.push(format!("wire: got {a:?}, Diamond {b:?}"));
        }
    }
    if lines.len() != want.len() {
        problems.push(format!(
            "wire: {} lines, Diamond {}",
            lines.len(),
            want.len()
        ));
    }
    problems
}

fn run_collector(collector: &str) {
    run_collector_as(collector, Guest::Rust)
}

fn run_collector_as(collector: &str, guest: Guest) {
    let dir = fixtures().join(collector);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    let mut failures = Vec::new();
    for case in &cases {
        let problems = run_case(collector, case, guest);
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if problems.is_empty() {
            eprintln!(
                "compat {collector}/{name}: ok ({} metrics)",
                read_expected(case).len()
            );
        } else {
            failures.push(format!(
                "{collector}/{name}:\n    {}",
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "Diamond compatibility failures:\n{}",
        failures.join("\n")
    );
}

macro_rules! compat_tests {
    ($($name:ident => $collector:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_collector($collector);
            }
        )*
        /// The collectors the tests above run.
        const COMPAT_TESTED: &[&str] = &[$($collector),*];
    };
}

compat_tests! {
    compat_cpu => "cpu",
    compat_memory => "memory",
    compat_loadavg => "loadavg",
    compat_network => "network",
    compat_diskspace => "diskspace",
    compat_diskusage => "diskusage",
    compat_vmstat => "vmstat",
    compat_sockstat => "sockstat",
    compat_tcp => "tcp",
    compat_udp => "udp",
    compat_proc => "proc",
    compat_uptime => "uptime",
    compat_entropy => "entropy",
    compat_filestat => "filestat",
    compat_interrupt => "interrupt",
    compat_softirq => "softirq",
    compat_netstat => "netstat",
}

/// The Python ports (`python/collectors/`), Diamond's own code style run by
/// the Python runtime, against the same cases.
#[test]
fn compat_python_loadavg() {
    run_collector_as("loadavg", Guest::Python);
}

#[test]
fn compat_python_memory() {
    run_collector_as("memory", Guest::Python);
}

/// Diamond's own scripts, unchanged, through the Python 2 bridge, against
/// every case of the kit they cover (netstat's script is not in 4.0.515).
macro_rules! diamond_compat_tests {
    ($($name:ident => $collector:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_collector_as($collector, Guest::Diamond);
            }
        )*
        /// The collectors the tests above run through Diamond's scripts.
        const DIAMOND_TESTED: &[&str] = &[$($collector),*];
    };
}

diamond_compat_tests! {
    diamond_cpu => "cpu",
    diamond_memory => "memory",
    diamond_loadavg => "loadavg",
    diamond_network => "network",
    diamond_diskspace => "diskspace",
    diamond_diskusage => "diskusage",
    diamond_vmstat => "vmstat",
    diamond_sockstat => "sockstat",
    diamond_tcp => "tcp",
    diamond_udp => "udp",
    diamond_proc => "proc",
    diamond_uptime => "uptime",
    diamond_entropy => "entropy",
    diamond_filestat => "filestat",
    diamond_interrupt => "interrupt",
    diamond_softirq => "softirq",
}

#[test]
fn every_kit_collector_is_tested() {
    let mut kit: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    kit.sort();
    let mut ours: Vec<String> = SUPPORTED.iter().map(|(c, _)| c.to_string()).collect();
    ours.sort();
    assert_eq!(kit, ours);
    // And each has a test that runs it (the lists the tests are made of).
    let mut tested: Vec<String> = COMPAT_TESTED.iter().map(|c| c.to_string()).collect();
    tested.sort();
    assert_eq!(kit, tested, "a kit collector without a compat_ test");
    for c in DIAMOND_TESTED {
        assert!(
            kit.contains(&c.to_string()),
            "diamond_{c}: not a kit collector"
        );
    }
}

//! Diamond's own collector scripts (4.0.515, through the Python 2 bridge)
//! beside the Rust ports (issue 25): the time to load each (read,
//! translate, execute, describe, configure: `agent::load` of one
//! collector, warm component cache), and the CPU of one run (collect and
//! the host's checks; thread CPU time, median of RUNS runs x ROUNDS).
//!
//! Run: `cargo bench --bench diamond` (needs the Python runtime, and
//! Diamond's scripts: the tests fetch them into
//! `target/pypi/diamond-4.0.515/`; `cargo test --release --test all -- compat::` does).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wdiamond::agent;
use wdiamond::host::HostFacts;
use wdiamond::plugin::{Metering, Runtime};

mod common;
use common::{median, thread_cpu};

const RUNS: usize = 200;
const ROUNDS: usize = 5;
const COLLECTORS: &[(&str, &str)] = &[
    ("loadavg", "loadavg/loadavg.py"),
    ("memory", "memory/memory.py"),
    ("cpu", "cpu/cpu.py"),
    ("tcp", "tcp/tcp.py"),
    ("interrupt", "interrupt/interrupt.py"),
];

fn collectors_dir() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo.join(
        "target/pypi/diamond-4.0.515/unpacked/diamond-4.0.515.data/data/share/diamond/collectors",
    );
    assert!(
        dir.join("cpu/cpu.py").is_file(),
        "{} is missing: run `cargo test --release --test all -- compat::` first (it fetches Diamond from PyPI)",
        dir.display()
    );
    dir
}

/// `agent::load` of one collector: (load time ms, the loaded agent).
fn load(rt: &Runtime, dir: &std::path::Path, name: &str, section: &str) -> (f64, agent::Loaded) {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache");
    let conf = dir.join(format!("{name}.toml"));
    std::fs::write(
        &conf,
        format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {cache:?}\n[collectors.default]\ninterval = 10\nhostname = \"bench\"\n{section}"
        ),
    )
    .unwrap();
    let config = wdiamond::config::load(&conf).unwrap();
    let t = Instant::now();
    let loaded = agent::load(rt, &config, &HostFacts::default()).unwrap();
    (t.elapsed().as_secs_f64() * 1e3, loaded)
}

/// Median CPU µs of one run, per round.
fn cpu_per_run(loaded: &mut agent::Loaded) -> Vec<f64> {
    let lc = &mut loaded.collectors[0];
    (0..ROUNDS)
        .map(|_| {
            let mut v = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let c0 = thread_cpu();
                let (r, _) = lc
                    .instance
                    .as_mut()
                    .expect("a persistent instance")
                    .collect(Duration::from_secs(10));
                let checked = lc.publication.publish(r.unwrap().unwrap(), 0);
                std::hint::black_box(&checked);
                v.push((thread_cpu() - c0).as_secs_f64() * 1e6);
            }
            median(v)
        })
        .collect()
}

fn main() {
    let scripts = collectors_dir();
    let dir = tempfile::tempdir().unwrap();
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache");
    Runtime::new(&cache)
        .unwrap()
        .python(Metering::None)
        .unwrap();
    let rt = Runtime::new(&cache).unwrap();
    println!("| collector | load: Rust | load: Diamond's script | CPU per run: Rust | CPU per run: Diamond's script | ratio |");
    println!("|---|---|---|---|---|---|");
    for (name, file) in COLLECTORS {
        let rust_section = format!("[collectors.{name}]\nenabled = true\n");
        let script = scripts.join(file);
        let py_section = format!(
            "[collectors.{name}]\nenabled = true\ncomponent = {:?}\npath = {name:?}\n[collectors.{name}.grants]\nfiles = [\"/proc/**\", \"/sys/**\"]\n",
            script.display().to_string()
        );
        let mut loads = (Vec::new(), Vec::new());
        let mut runs = (Vec::new(), Vec::new());
        for round in 0..3 {
            let (ms, mut l) = load(&rt, dir.path(), name, &rust_section);
            loads.0.push(ms);
            if round == 0 {
                runs.0 = cpu_per_run(&mut l);
            }
            let (ms, mut l) = load(&rt, dir.path(), name, &py_section);
            loads.1.push(ms);
            if round == 0 {
                runs.1 = cpu_per_run(&mut l);
            }
        }
        let (r, p) = (median(runs.0.clone()), median(runs.1.clone()));
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {r:.1} µs | {p:.0} µs ({}) | {:.1}x |",
            median(loads.0),
            median(loads.1),
            runs.1
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            p / r
        );
    }
}

//! What Python collectors cost (issue 12): the Python runtime component's
//! cold compile and warm load, an instantiation, the CPU of one run of the
//! Python loadavg (`python/collectors/loadavg.py`) beside the built-in Rust
//! loadavg and a native floor, and the daemon's RSS and PSS per additional
//! Python collector.
//!
//! Run: `cargo bench --bench python` (needs the runtime: componentize-py
//! installed when the agent was built). Prints the tables of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wdiamond::agent;
use wdiamond::bindings::collector::CollectorPlugin;
use wdiamond::host::{HostFacts, PluginContext};
use wdiamond::plugin::{python, Metering, Runtime};

mod common;
use common::{median, thread_cpu};

const RUNS: usize = 400;
const ROUNDS: usize = 5;

fn kb(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The native floor of loadavg: read, parse, the 8 paths.
fn native_loadavg(out: &mut Vec<(String, f64, u8)>) {
    out.clear();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap();
    let f: Vec<&str> = load.split_whitespace().collect();
    for (i, n) in ["01", "05", "15"].iter().enumerate() {
        let v: f64 = f[i].parse().unwrap();
        out.push((format!("servers.bench.loadavg.{n}"), v, 2));
        out.push((format!("servers.bench.loadavg.{n}_normalized"), v / 2.0, 2));
    }
    let (r, t) = f[3].split_once('/').unwrap();
    out.push((
        "servers.bench.loadavg.processes_running".into(),
        r.parse().unwrap(),
        0,
    ));
    out.push((
        "servers.bench.loadavg.processes_total".into(),
        t.parse().unwrap(),
        0,
    ));
}

fn script() -> String {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    repo.join("python/collectors/loadavg.py")
        .display()
        .to_string()
}

fn python_section(name: &str) -> String {
    format!(
        "[collectors.{name}]\nenabled = true\ncomponent = {:?}\npath = {name:?}\n[collectors.{name}.grants]\nfiles = [\"/proc/loadavg\"]\n",
        script()
    )
}

/// The daemon with the Rust loadavg and `n` Python loadavg collectors at
/// 1 s, after `secs`: (VmRSS, Pss, VmHWM) in KiB.
fn daemon(dir: &std::path::Path, cache: &std::path::Path, n: usize, secs: u64) -> (u64, u64, u64) {
    let conf = dir.join(format!("daemon{n}.toml"));
    let archive = dir.join(format!("archive{n}.log"));
    let mut text = format!("[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {cache:?}\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\n[collectors.loadavg]\nenabled = true\n");
    for i in 0..n {
        text.push_str(&python_section(&format!("py{i}")));
    }
    std::fs::write(&conf, text).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wdiamond"))
        .args(["run", &conf.display().to_string(), "--log-level", "warn"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    let pid = child.id();
    let status = format!("/proc/{pid}/status");
    let got = (
        kb(&status, "VmRSS:"),
        kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:"),
        kb(&status, "VmHWM:"),
    );
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    got
}

fn main() {
    let Some(runtime_file) = python::runtime_path() else {
        eprintln!("{}", python::not_installed());
        std::process::exit(1);
    };
    let size = std::fs::metadata(&runtime_file).unwrap().len();
    let dir = tempfile::tempdir().unwrap();

    // Cold: a fresh cache (read, SHA-256, Cranelift, serialize, write).
    let cold_cache = dir.path().join("cold-cache");
    let rt = Runtime::new(&cold_cache).unwrap();
    let t = Instant::now();
    let component = rt.python(Metering::None).unwrap();
    let cold = t.elapsed();
    let compiled = component.serialize().unwrap().len();
    // Warm: a new agent with that cache (read, SHA-256, deserialize).
    let mut warm = Vec::new();
    for _ in 0..5 {
        let rt = Runtime::new(&cold_cache).unwrap();
        let t = Instant::now();
        rt.python(Metering::None).unwrap();
        warm.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // An instantiation, and one with describe (the script executed).
    let source = python::read_script(std::path::Path::new(&script()), None).unwrap();
    let ctx = || {
        Arc::new(PluginContext {
            name: "bench".into(),
            grants: Default::default(),
            limits: Default::default(),
            config: vec![],
            hostname: String::new(),
            interval: 0.0,
            facts: Default::default(),
            span: tracing::Span::none(),
            log_limit: Default::default(),
            script: Some(Arc::new(source.clone())),
            tls: None,
        })
    };
    let mut inst = Vec::new();
    let mut described = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut i = rt.instance::<CollectorPlugin>(&component, ctx()).unwrap();
        inst.push(t.elapsed().as_secs_f64() * 1e3);
        i.describe().unwrap();
        described.push(t.elapsed().as_secs_f64() * 1e3);
    }

    // CPU per run: the Rust and the Python loadavg, and the native floor.
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache");
    let conf = dir.path().join("bench.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nhandlers = []\nplugin_cache_dir = {cache:?}\n[collectors.default]\ninterval = 10\nhostname = \"bench\"\n[collectors.loadavg]\nenabled = true\n{}",
            python_section("pyloadavg")
        ),
    )
    .unwrap();
    let config = wdiamond::config::load(&conf).unwrap();
    // That cache warm first (a new runtime build compiles there once).
    Runtime::new(&cache)
        .unwrap()
        .python(Metering::None)
        .unwrap();
    let rt = Runtime::new(&cache).unwrap();
    let t = Instant::now();
    let mut loaded = agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let load_time = t.elapsed();
    let mut rounds: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    let mut out = Vec::new();
    for _ in 0..ROUNDS {
        for lc in &mut loaded.collectors {
            let name = if lc.config.plugin.name == "loadavg" {
                "rust"
            } else {
                "python"
            };
            let mut v = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                let c0 = thread_cpu();
                let (r, _) = lc
                    .instance
                    .as_mut()
                    .expect("a persistent instance")
                    .collect(Duration::from_secs(10));
                let checked = lc.publication.publish(r.unwrap().unwrap(), 0);
                v.push((thread_cpu() - c0).as_secs_f64() * 1e6);
                counts.insert(name, checked.published.len());
            }
            rounds.entry(name).or_default().push(median(v));
        }
        let mut v = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let c0 = thread_cpu();
            native_loadavg(&mut out);
            std::hint::black_box(&out);
            v.push((thread_cpu() - c0).as_secs_f64() * 1e6);
        }
        rounds.entry("native").or_default().push(median(v));
        counts.insert("native", out.len());
    }
    drop(loaded);

    // The daemon, per additional Python collector.
    let sizes = [0usize, 1, 10, 50];
    let mut daemons = Vec::new();
    for n in sizes {
        daemons.push((n, daemon(dir.path(), &cache, n, 8)));
    }

    println!(
        "Python runtime: {} ({:.1} MB wasm, {:.1} MB compiled)",
        runtime_file.display(),
        size as f64 / 1e6,
        compiled as f64 / 1e6
    );
    println!("| step | time |");
    println!("|---|---|");
    println!(
        "| cold: read + SHA-256 + compile + cache write | {:.2} s |",
        cold.as_secs_f64()
    );
    println!(
        "| warm: read + SHA-256 + deserialize from the cache (median of 5) | {:.1} ms |",
        median(warm)
    );
    println!("| instantiate (median of 20) | {:.2} ms |", median(inst));
    println!(
        "| instantiate + describe (the script executed; median of 20) | {:.2} ms |",
        median(described)
    );
    println!(
        "| agent::load of Rust + Python loadavg (warm cache) | {:.1} ms |",
        load_time.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "CPU per run (collect + host checks + paths), median of {RUNS} runs x {ROUNDS} rounds:"
    );
    println!("| collector | metrics | median | per-round medians | ratio to native |");
    println!("|---|---|---|---|---|");
    let native = median(rounds["native"].clone());
    for name in ["native", "rust", "python"] {
        let r = &rounds[name];
        let m = median(r.clone());
        println!(
            "| {name} | {} | {m:.1} µs | {:?} | {:.1}x |",
            counts[name],
            r.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>(),
            m / native
        );
    }
    println!();
    println!("The daemon (Rust loadavg + N Python loadavg at 1 s, archive), after 8 s:");
    println!("| N | VmRSS | Pss | VmHWM |");
    println!("|---|---|---|---|");
    for (n, (rss, pss, hwm)) in &daemons {
        println!(
            "| {n} | {:.1} MB | {:.1} MB | {:.1} MB |",
            *rss as f64 / 1024.0,
            *pss as f64 / 1024.0,
            *hwm as f64 / 1024.0
        );
    }
    let (_, (r1, p1, _)) = daemons[1];
    let (_, (r50, p50, _)) = daemons[3];
    println!(
        "per additional Python collector (1 -> 50): RSS {:.0} KiB, PSS {:.0} KiB",
        (r50 - r1) as f64 / 49.0,
        (p50 - p1) as f64 / 49.0
    );
}

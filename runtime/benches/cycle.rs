//! CPU time of one collection cycle of cpu + memory + loadavg through the
//! real wasm guests (collect, host checks, Diamond paths), next to plain
//! native Rust doing the same work (read the three /proc files, parse,
//! derive, build the same paths); and the RSS of the running daemon.
//!
//! Run: `cargo bench --bench cycle` (prints a table for BENCHMARKS.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wdiamond::agent;
use wdiamond::host::HostFacts;
use wdiamond::plugin::Runtime;

mod common;
use common::{median, thread_cpu};

const CYCLES: usize = 2000;
const ROUNDS: usize = 5;

fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The native floor: the same files, parsing, derivatives and paths.
struct Native {
    last: HashMap<String, i128>,
    prefix: String,
}

const CPU_FIELDS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];
const MEM_KEYS: [&str; 16] = [
    "MemAvailable",
    "MemTotal",
    "MemFree",
    "Buffers",
    "Cached",
    "Active",
    "Dirty",
    "Inactive",
    "Shmem",
    "SwapTotal",
    "SwapFree",
    "SwapCached",
    "VmallocTotal",
    "VmallocUsed",
    "VmallocChunk",
    "Committed_AS",
];

impl Native {
    fn cycle(&mut self, out: &mut Vec<(String, f64, u8)>) {
        out.clear();
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        let mut ncpus = -1i64;
        for line in stat.lines().filter(|l| l.starts_with("cpu")) {
            ncpus += 1;
            let mut parts = line.split_whitespace();
            let label = parts.next().unwrap();
            let label = if label == "cpu" { "total" } else { label };
            for (f, v) in CPU_FIELDS.iter().zip(parts) {
                let name = format!("{label}.{f}");
                let v: i128 = v.parse().unwrap();
                let rate = match self.last.insert(name.clone(), v) {
                    Some(old) => ((v - old) as f64 / 10.0).max(0.0),
                    None => 0.0,
                };
                out.push((format!("{}.cpu.{name}", self.prefix), rate, 2));
            }
        }
        out.push((format!("{}.cpu.cpu_count", self.prefix), ncpus as f64, 2));
        let mem = std::fs::read_to_string("/proc/meminfo").unwrap();
        let (mut total, mut avail) = (0i64, 0i64);
        for line in mem.lines() {
            let p: Vec<&str> = line.split_whitespace().collect();
            if p.len() != 3 {
                continue;
            }
            let name = p[0].trim_end_matches(':');
            if !MEM_KEYS.contains(&name) {
                continue;
            }
            let v: i64 = p[1].parse().unwrap();
            if name == "MemTotal" {
                total = v;
            } else if name == "MemAvailable" {
                avail = v;
            }
            out.push((
                format!("{}.memory.{name}", self.prefix),
                (v * 1024) as f64,
                0,
            ));
        }
        out.push((
            format!("{}.memory.MemUsedPercentage", self.prefix),
            100.0 * (total - avail) as f64 / total as f64,
            0,
        ));
        let load = std::fs::read_to_string("/proc/loadavg").unwrap();
        let f: Vec<&str> = load.split_whitespace().collect();
        for (i, n) in ["01", "05", "15"].iter().enumerate() {
            let v: f64 = f[i].parse().unwrap();
            out.push((format!("{}.loadavg.{n}", self.prefix), v, 2));
            out.push((
                format!("{}.loadavg.{n}_normalized", self.prefix),
                v / 2.0,
                2,
            ));
        }
        let (r, t) = f[3].split_once('/').unwrap();
        out.push((
            format!("{}.loadavg.processes_running", self.prefix),
            r.parse().unwrap(),
            0,
        ));
        out.push((
            format!("{}.loadavg.processes_total", self.prefix),
            t.parse().unwrap(),
            0,
        ));
    }
}

fn main() {
    let rss_start = status_kb(std::process::id(), "VmRSS:");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bench.toml");
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache");
    std::fs::write(
        &conf,
        format!("[server]\nhandlers = []\nplugin_cache_dir = {cache:?}\n[collectors.default]\ninterval = 10\nhostname = \"bench\"\n[collectors.cpu]\nenabled = true\n[collectors.memory]\nenabled = true\n[collectors.loadavg]\nenabled = true\n"),
    )
    .unwrap();
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = Runtime::new(&cache).unwrap();
    let t = Instant::now();
    let mut loaded = agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let load_time = t.elapsed();
    let mut native = Native {
        last: HashMap::new(),
        prefix: "servers.bench".into(),
    };
    let mut out = Vec::new();

    let mut wasm_rounds = Vec::new();
    let mut native_rounds = Vec::new();
    let mut publish_rounds = Vec::new();
    let mut read_rounds = Vec::new();
    let mut metrics_wasm = 0;
    for _ in 0..ROUNDS {
        let mut w = Vec::with_capacity(CYCLES);
        let mut p = Vec::with_capacity(CYCLES);
        for _ in 0..CYCLES {
            let c0 = thread_cpu();
            let mut n = 0;
            let mut in_publish = Duration::ZERO;
            for lc in &mut loaded.collectors {
                let (r, _) = lc
                    .instance
                    .as_mut()
                    .expect("a persistent instance")
                    .collect(Duration::from_secs(10));
                let p0 = thread_cpu();
                let checked = lc.publication.publish(r.unwrap().unwrap(), 0);
                in_publish += thread_cpu() - p0;
                n += checked.published.len();
            }
            w.push((thread_cpu() - c0).as_secs_f64() * 1e6);
            p.push(in_publish.as_secs_f64() * 1e6);
            metrics_wasm = n;
        }
        wasm_rounds.push(median(w));
        publish_rounds.push(median(p));
        let mut r = Vec::with_capacity(CYCLES);
        for _ in 0..CYCLES {
            let c0 = thread_cpu();
            for f in ["/proc/stat", "/proc/meminfo", "/proc/loadavg"] {
                std::hint::black_box(std::fs::read(f).unwrap());
            }
            r.push((thread_cpu() - c0).as_secs_f64() * 1e6);
        }
        read_rounds.push(median(r));
        let mut v = Vec::with_capacity(CYCLES);
        for _ in 0..CYCLES {
            let c0 = thread_cpu();
            native.cycle(&mut out);
            v.push((thread_cpu() - c0).as_secs_f64() * 1e6);
        }
        native_rounds.push(median(v));
    }
    let rss_loaded = status_kb(std::process::id(), "VmRSS:");

    // The daemon on the default config, for its resident memory.
    let bin = env!("CARGO_BIN_EXE_wdiamond");
    let dconf = dir.path().join("daemon.toml");
    let archive = dir.path().join("archive.log");
    std::fs::write(
        &dconf,
        format!("[server]\nhandlers = [\"archive\"]\nplugin_cache_dir = {cache:?}\n[handlers.archive]\nlog_file = {archive:?}\n[collectors.default]\ninterval = 1\n[collectors.cpu]\nenabled = true\n[collectors.memory]\nenabled = true\n[collectors.loadavg]\nenabled = true\n"),
    )
    .unwrap();
    let mut child = std::process::Command::new(bin)
        .arg("run")
        .arg(&dconf)
        .arg("--log-level")
        .arg("warn")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(12));
    let (d_rss, d_hwm) = (
        status_kb(child.id(), "VmRSS:"),
        status_kb(child.id(), "VmHWM:"),
    );
    // SAFETY: plain kill(2) of our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();

    let wm = median(wasm_rounds.clone());
    let nm = median(native_rounds.clone());
    println!("cycle = cpu + memory + loadavg, {metrics_wasm} metrics (wasm) / {} (native), {CYCLES} cycles x {ROUNDS} rounds", out.len());
    println!("| what | median CPU time per cycle | per-round medians |");
    println!("|---|---|---|");
    println!(
        "| wasm guests (collect + host checks + paths) | {wm:.1} µs | {:?} |",
        wasm_rounds
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
    );
    println!(
        "| native Rust floor (same files, parsing, paths) | {nm:.1} µs | {:?} |",
        native_rounds
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
    );
    println!("| ratio wasm / native | {:.2}x | |", wm / nm);
    println!(
        "| of the wasm cycle: host-side checks + paths (`publish`) | {:.1} µs | |",
        median(publish_rounds)
    );
    println!(
        "| of both: just reading the three /proc files (kernel) | {:.1} µs | |",
        median(read_rounds)
    );
    println!();
    println!("load of 3 collectors (from the compiled cache, instantiate, describe, configure): {load_time:.1?}");
    println!("bench process RSS: {rss_start} KiB at start, {rss_loaded} KiB with 3 collectors loaded and run");
    println!("daemon (default collectors at 1 s + archive), after 12 s: VmRSS {d_rss} KiB, VmHWM {d_hwm} KiB");
}

//! Throughput: a synthetic collector publishing large batches -> host
//! checks, Diamond paths and lines -> the graphite handler component -> a
//! TCP sink on 127.0.0.1; next to plain native Rust producing the same lines
//! into the same sink. Two workloads: A, the guest formats every name at
//! every run (`flood`); B, the names are declared once as series and each
//! run publishes values (`flood-series`), the native floor likewise keeping
//! its paths. Each first as stages one after the other in one thread (with
//! where the time goes), then as the running agent (its collector and
//! handler tasks overlapping) with the process CPU per metric.
//!
//! Run: `cargo bench --bench throughput`. `B_INTERVAL=<s>` sets the
//! collector interval of the running agent in B (default 0.001: back to
//! back); `PART=agent-b` runs only B (for profiling).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wdiamond::agent;
use wdiamond::host::HostFacts;
use wdiamond::plugin::Runtime;

mod common;
use common::median;

const BATCH: usize = 100_000;
const ROUNDS: usize = 7;

fn sink() -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let bytes = Arc::new(AtomicU64::new(0));
    let b = bytes.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let b = b.clone();
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    b.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (port, bytes)
}

fn wait_for(bytes: &AtomicU64, target: u64) {
    let start = Instant::now();
    while bytes.load(Ordering::Relaxed) < target {
        assert!(start.elapsed() < Duration::from_secs(30), "sink stalled");
        std::hint::spin_loop();
    }
}

fn main() {
    let (port, received) = sink();
    let dir = tempfile::tempdir().unwrap();
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wdiamond-cache");
    let guest = wdiamond::plugin::guest_wasm_dir().join("collector_misbehave.wasm");
    let conf = dir.path().join("t.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {cache:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {port}\n[collectors.default]\ninterval = 10\nhostname = \"bench\"\n[collectors.synthetic]\nenabled = true\ncomponent = {guest:?}\nmode = \"flood\"\ncount = {}\n[collectors.synthetic.limits]\nmax_metrics = 1000000\nmemory_mb = 512\n[collectors.generate]\nenabled = true\ncomponent = {guest:?}\nmode = \"generate\"\ncount = {}\n[collectors.generate.limits]\nmemory_mb = 512\n[collectors.declared]\nenabled = true\ncomponent = {guest:?}\nmode = \"flood-series\"\ncount = {}\n[collectors.declared.limits]\nmax_metrics = 1000000\nmemory_mb = 512\n",
            BATCH - 1,
            BATCH - 1,
            BATCH - 1
        ),
    )
    .unwrap();
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = Runtime::new(&cache).unwrap();
    let mut loaded = agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let mut handler = loaded.handlers.remove(0).instance;
    let mut take = |name: &str| {
        let k = loaded
            .collectors
            .iter()
            .position(|c| c.config.plugin.name == name)
            .unwrap();
        loaded.collectors.remove(k)
    };
    let mut gen = take("generate");
    let mut declared = take("declared");
    let lc = &mut take("synthetic");
    let mut sink_stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    println!("{BATCH} metrics per round, {ROUNDS} rounds (after one warm-up), graphite plaintext to a TCP sink on 127.0.0.1");
    println!();
    println!("A. Names formatted at every run (`flood`: `gauge_args(format_args!(\"m{{i}}\"))`; the floor `write!`s each path):");
    let only_b = std::env::var("PART").as_deref() == Ok("agent-b");
    let mut lines_bytes = 0;
    if !only_b {
        lines_bytes = one_thread(
            lc,
            Some(&mut gen),
            &mut handler,
            &received,
            &mut sink_stream,
            false,
        );
    }
    println!();
    println!("B. Series declared once (`flood-series`: `declare_series` at the first run, then `gauge_series`; the floor keeps its paths from round to round):");
    let b_bytes = one_thread(
        &mut declared,
        None,
        &mut handler,
        &received,
        &mut sink_stream,
        true,
    );

    let b_interval: f64 = std::env::var("B_INTERVAL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.001);
    if only_b {
        lines_bytes = b_bytes; // the same lines
    }
    // PART=agent-b runs only B (for profiling).
    // B once more with the handler's write-ahead spool (`spool_dir`): every
    // chunk appended to disk as it is queued, fsync'd in groups.
    for (declared, interval, spool) in [
        (false, 0.001, false),
        (true, b_interval, false),
        (true, b_interval, true),
    ] {
        if only_b && !declared {
            continue;
        }
        agent_pipeline(
            port,
            &received,
            lines_bytes as f64 / BATCH as f64,
            &cache,
            &guest,
            declared,
            interval,
            spool,
        );
    }
}

/// The stages one after the other in this thread, `ROUNDS` times, next to
/// the native floor; prints the table and where the time goes. Returns the
/// bytes of one round's lines.
fn one_thread(
    lc: &mut agent::LoadedCollector,
    gen: Option<&mut agent::LoadedCollector>,
    handler: &mut wdiamond::plugin::Instance<wdiamond::plugin::Handler>,
    received: &AtomicU64,
    sink_stream: &mut TcpStream,
    declared: bool,
) -> u64 {
    let mut gen = gen;
    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    let (mut t_collect, mut t_publish, mut t_process) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t_pack, mut t_guest, mut t_gen) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t_native_fmt, mut t_native_send) = (Vec::new(), Vec::new());
    let mut lines_bytes = 0u64;
    // The declared floor's paths, made once as the host makes them once.
    let paths: Vec<String> = (0..BATCH - 1)
        .map(|i| format!("servers.bench.misbehave.m{i}"))
        .collect();
    for round in 0..ROUNDS + 1 {
        // wasm pipeline
        let before = received.load(Ordering::Relaxed);
        if let Some(gen) = gen.as_deref_mut() {
            let g0 = Instant::now();
            let (r, _) = gen
                .instance
                .as_mut()
                .expect("a persistent instance")
                .collect(Duration::from_secs(60));
            r.unwrap().unwrap();
            t_gen.push(g0.elapsed().as_secs_f64() * 1e3);
        }
        let t0 = Instant::now();
        let (r, _) = lc
            .instance
            .as_mut()
            .expect("a persistent instance")
            .collect(Duration::from_secs(60));
        let metrics = r.unwrap().unwrap();
        let t1 = Instant::now();
        let checked = lc.publication.publish_with(
            metrics,
            1_795_000_000,
            lc.instance
                .as_mut()
                .expect("a persistent instance")
                .series_mut(),
        );
        let t2 = Instant::now();
        assert_eq!(checked.published.len(), BATCH);
        let mut in_pack = Duration::ZERO;
        let mut in_guest = Duration::ZERO;
        let all = Arc::new(checked.published);
        for start in (0..all.len()).step_by(10_000) {
            // As the queue cuts a batch: slices of the run's chunk.
            let p0 = Instant::now();
            let mut packed = wdiamond::metric::Batch::default();
            packed.push(&all, start..(start + 10_000).min(all.len()));
            in_pack += p0.elapsed();
            let (r, usage) = handler.process(packed, Duration::from_secs(60));
            in_guest += usage.elapsed;
            r.unwrap().unwrap();
        }
        let t3 = Instant::now();
        t_pack.push(in_pack.as_secs_f64() * 1e3);
        t_guest.push(in_guest.as_secs_f64() * 1e3);
        // The sink has everything once the line bytes arrived (counted below).
        if round == 0 {
            let mut text = String::new();
            for m in all.iter() {
                use std::fmt::Write as _;
                let _ = writeln!(text, "{} {:.0} {}", m.path, m.value, m.timestamp);
            }
            lines_bytes = text.len() as u64;
        }
        wait_for(received, before + lines_bytes);
        let t4 = Instant::now();

        // native floor: the same lines from the same values into the sink
        let before = received.load(Ordering::Relaxed);
        let n0 = Instant::now();
        // The same wire formatter the host uses, natively.
        let mut buf = String::with_capacity(lines_bytes as usize);
        floor_lines(&mut buf, &paths, declared, BATCH - 1);
        wdiamond_wire::graphite_line(
            &mut buf,
            "servers.bench.misbehave.runs",
            (round + 1) as f64,
            0,
            1_795_000_000,
        );
        let nf = Instant::now();
        sink_stream.write_all(buf.as_bytes()).unwrap();
        wait_for(received, before + buf.len() as u64);
        let n1 = Instant::now();
        if round == 0 {
            continue; // warm-up
        }
        t_native_fmt.push((nf - n0).as_secs_f64() * 1e3);
        t_native_send.push((n1 - nf).as_secs_f64() * 1e3);
        wasm.push(BATCH as f64 / (t4 - t0).as_secs_f64());
        native.push(BATCH as f64 / (n1 - n0).as_secs_f64());
        t_collect.push((t1 - t0).as_secs_f64() * 1e3);
        t_publish.push((t2 - t1).as_secs_f64() * 1e3);
        t_process.push((t3 - t2).as_secs_f64() * 1e3);
    }
    let (w, n) = (median(wasm.clone()), median(native.clone()));
    println!("| pipeline | median metrics/s | per round |");
    println!("|---|---|---|");
    println!(
        "| wasm: synthetic collector -> host -> graphite handler -> sink | {:.0} | {:?} |",
        w,
        millions(&wasm)
    );
    println!(
        "| native Rust: same lines -> same sink | {:.0} | {:?} |",
        n,
        millions(&native)
    );
    println!("| ratio native / wasm | {:.2}x | |", n / w);
    println!();
    println!("wasm round, median ms: collect (the guest fills its columns, the host lifts them) {:.1}; host (checks, paths, lines) {:.1}; handler (batches cut from the queue, lowered, sent) {:.1}", median(t_collect), median(t_publish), median(t_process));
    if !t_gen.is_empty() {
        println!(
            "  of the collect: the guest filling its columns (no output) {:.1} ms",
            median(t_gen)
        );
    }
    println!(
        "  of the handler: cutting batches {:.1} ms, the process calls {:.1} ms",
        median(t_pack),
        median(t_guest)
    );
    println!(
        "native round, median ms: formatting the lines {:.1}; one write to the sink, until it has read them {:.1}",
        median(t_native_fmt),
        median(t_native_send)
    );
    lines_bytes
}

/// The native floor's work: the lines of metrics `m0..m<n>` (value `i`)
/// into `buf`, their paths taken from `paths` (B) or written with
/// `write!` (A), with the same wire formatter the host uses.
fn floor_lines(buf: &mut String, paths: &[String], declared: bool, n: usize) {
    use std::fmt::Write as _;
    let mut path = String::new();
    for (i, kept) in paths.iter().enumerate().take(n) {
        let p = if declared {
            kept.as_str()
        } else {
            path.clear();
            let _ = write!(path, "servers.bench.misbehave.m{i}");
            path.as_str()
        };
        wdiamond_wire::graphite_line(buf, p, i as f64, 0, 1_795_000_000);
    }
}

/// Rates as `["8.10M", ...]`.
fn millions(v: &[f64]) -> Vec<String> {
    v.iter().map(|x| format!("{:.2}M", x / 1e6)).collect()
}

/// CPU time of the whole process (every thread: agent, sink), seconds.
fn process_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The running agent, as `wdiamond run` runs it: the collector task
/// (collect + host checks + lines) and the handler task (graphite) run
/// concurrently through the queue, so the stages overlap on the two cores.
/// Sustained metrics/s at the sink and process CPU per metric, next to the
/// native floor's in the same process.
fn agent_pipeline(
    port: u16,
    received: &Arc<AtomicU64>,
    line_bytes: f64,
    cache: &std::path::Path,
    guest: &std::path::Path,
    declared: bool,
    interval: f64,
    spool: bool,
) {
    const SECS: f64 = 4.0;
    let mode = if declared { "flood-series" } else { "flood" };
    let paths: Vec<String> = (0..BATCH)
        .map(|i| format!("servers.bench.misbehave.m{i}"))
        .collect();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let conf = dir.path().join("agent.toml");
    let spool_dir = if spool {
        format!(
            "spool_dir = {:?}\nspool_sync = {}\n",
            dir.path().join("spool"),
            std::env::var("SPOOL_SYNC").unwrap_or_else(|_| "1".into())
        )
    } else {
        String::new()
    };
    std::fs::write(
        &conf,
        format!(
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {cache:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {port}\nqueue_size = 2000000\nbatch_size = 10000\n{spool_dir}[collectors.default]\ninterval = {interval}\nhostname = \"bench\"\n[collectors.synthetic]\nenabled = true\ncomponent = {guest:?}\nmode = \"{mode}\"\ncount = {}\n[collectors.synthetic.limits]\nmax_metrics = 1000000\nmemory_mb = 512\ntimeout = 5\n",
            BATCH - 1
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut rates, mut cpus, mut native_rates, mut native_cpus) = (vec![], vec![], vec![], vec![]);
    let mut drops = vec![];
    let mut sink_stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for _ in 0..3 {
        let (rate, cpu, drop) = rt.block_on(async {
            let config = wdiamond::config::load(&conf).unwrap();
            let runtime = Runtime::new(cache).unwrap();
            let mut loaded = agent::load(&runtime, &config, &HostFacts::default()).unwrap();
            agent::open_spools(&mut loaded).unwrap();
            let a = wdiamond::agent::Agent::start(
                runtime,
                HostFacts::default(),
                &conf,
                &config,
                loaded,
            );
            tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
            let hs = a.handler_stats("graphite").unwrap();
            let dropped = || hs.dropped.load(Ordering::Relaxed);
            let (b0, c0, t0, d0) = (
                received.load(Ordering::Relaxed),
                process_cpu(),
                Instant::now(),
                dropped(),
            );
            tokio::time::sleep(Duration::from_secs_f64(SECS)).await;
            let (b1, c1, t1, d1) = (
                received.load(Ordering::Relaxed),
                process_cpu(),
                Instant::now(),
                dropped(),
            );
            a.shutdown().await;
            let metrics = (b1 - b0) as f64 / line_bytes;
            (
                metrics / (t1 - t0).as_secs_f64(),
                (c1 - c0) / metrics,
                (d1 - d0) as f64 / (metrics + (d1 - d0) as f64),
            )
        });
        rates.push(rate);
        cpus.push(cpu);
        drops.push(drop);
        // The native floor, continuously for the same time.
        let (b0, c0, t0) = (
            received.load(Ordering::Relaxed),
            process_cpu(),
            Instant::now(),
        );
        let mut buf = String::new();
        let mut sent = 0u64;
        while t0.elapsed().as_secs_f64() < SECS {
            buf.clear();
            floor_lines(&mut buf, &paths, declared, BATCH);
            sink_stream.write_all(buf.as_bytes()).unwrap();
            sent += buf.len() as u64;
        }
        wait_for(received, b0 + sent);
        let (b1, c1, t1) = (
            received.load(Ordering::Relaxed),
            process_cpu(),
            Instant::now(),
        );
        let metrics = (b1 - b0) as f64 / line_bytes;
        native_rates.push(metrics / (t1 - t0).as_secs_f64());
        native_cpus.push((c1 - c0) / metrics);
    }
    let (r, n) = (median(rates.clone()), median(native_rates.clone()));
    let (c, nc) = (median(cpus.clone()), median(native_cpus.clone()));
    println!();
    println!("The running agent, {}{} ({SECS} s windows after a 1 s warm-up, 3 runs, collector at interval {interval} s -> graphite handler, batch_size 10000):", if declared { "B. series declared once" } else { "A. names formatted at every run" }, if spool { ", with the write-ahead spool (spool_dir, group fsync every 1 s)" } else { "" });
    println!("| pipeline | median metrics/s | runs | process CPU per metric |");
    println!("|---|---|---|---|");
    println!(
        "| wasm agent (collector and handler tasks overlapping) | {r:.0} | {:?} | {:.0} ns |",
        millions(&rates),
        c * 1e9
    );
    println!(
        "  (metrics the collector published that the full queue dropped: {:?})",
        drops
            .iter()
            .map(|x| format!("{:.1}%", x * 100.0))
            .collect::<Vec<_>>()
    );
    println!(
        "| native Rust, one thread | {n:.0} | {:?} | {:.0} ns |",
        millions(&native_rates),
        nc * 1e9
    );
    println!(
        "| ratio native / wasm | {:.2}x | | CPU {:.2}x |",
        n / r,
        c / nc
    );
}

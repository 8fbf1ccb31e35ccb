//! Throughput: a synthetic collector publishing large batches -> host
//! checks and Diamond paths -> the graphite handler component -> a TCP sink
//! on 127.0.0.1; next to plain native Rust producing the same lines into the
//! same sink. Also where the wasm pipeline's time goes.
//!
//! Run: `cargo bench --bench throughput`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wdiamond::agent;
use wdiamond::host::HostFacts;
use wdiamond::plugin::Runtime;

const BATCH: usize = 100_000;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

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
            "[server]\nhandlers = [\"graphite\"]\nplugin_cache_dir = {cache:?}\n[handlers.graphite]\nhost = \"127.0.0.1\"\nport = {port}\n[collectors.default]\ninterval = 10\nhostname = \"bench\"\n[collectors.synthetic]\nenabled = true\ncomponent = {guest:?}\nmode = \"flood\"\ncount = {}\n[collectors.synthetic.limits]\nmax_metrics = 1000000\nmemory_mb = 512\n[collectors.generate]\nenabled = true\ncomponent = {guest:?}\nmode = \"generate\"\ncount = {}\n[collectors.generate.limits]\nmemory_mb = 512\n",
            BATCH - 1,
            BATCH - 1
        ),
    )
    .unwrap();
    let config = wdiamond::config::load(&conf).unwrap();
    let rt = Runtime::new(&cache).unwrap();
    let mut loaded = agent::load(&rt, &config, &HostFacts::default()).unwrap();
    let mut handler = loaded.handlers.remove(0).instance;
    let at = |name: &str| {
        loaded
            .collectors
            .iter()
            .position(|c| c.config.plugin.name == name)
            .unwrap()
    };
    let mut gen = loaded.collectors.remove(at("generate"));
    let lc = &mut loaded.collectors[0];
    let mut t_gen = Vec::new();

    let (mut wasm, mut native) = (Vec::new(), Vec::new());
    let (mut t_collect, mut t_publish, mut t_process) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t_pack, mut t_guest) = (Vec::new(), Vec::new());
    let mut sink_stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut lines_bytes = 0u64;
    for round in 0..ROUNDS + 1 {
        // wasm pipeline
        let before = received.load(Ordering::Relaxed);
        let g0 = Instant::now();
        let (r, _) = gen.instance.collect(Duration::from_secs(60));
        r.unwrap().unwrap();
        t_gen.push(g0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        let (r, _) = lc.instance.collect(Duration::from_secs(60));
        let metrics = r.unwrap().unwrap();
        let t1 = Instant::now();
        let checked = lc.publication.publish(metrics, 1_795_000_000);
        let t2 = Instant::now();
        assert_eq!(checked.published.len(), BATCH);
        let mut in_pack = Duration::ZERO;
        let mut in_guest = Duration::ZERO;
        let all = checked.published;
        for start in (0..all.len()).step_by(10_000) {
            let p0 = Instant::now();
            let mut chunk = wdiamond::metric::Chunk::default();
            chunk.extend_range(&all, start..(start + 10_000).min(all.len()));
            let packed = chunk.into_batch();
            in_pack += p0.elapsed();
            let (r, usage) = handler.process(&packed, Duration::from_secs(60));
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
        wait_for(&received, before + lines_bytes);
        let t4 = Instant::now();

        // native floor: the same lines from the same values into the sink
        let before = received.load(Ordering::Relaxed);
        let n0 = Instant::now();
        // The same wire formatter the handler uses, natively.
        let mut buf = String::with_capacity(lines_bytes as usize);
        let mut path = String::new();
        for i in 0..BATCH - 1 {
            use std::fmt::Write as _;
            path.clear();
            let _ = write!(path, "servers.bench.misbehave.m{i}");
            wdiamond_wire::graphite_line(&mut buf, &path, i as f64, 0, 1_795_000_000);
        }
        wdiamond_wire::graphite_line(
            &mut buf,
            "servers.bench.misbehave.runs",
            (round + 1) as f64,
            0,
            1_795_000_000,
        );
        sink_stream.write_all(buf.as_bytes()).unwrap();
        wait_for(&received, before + buf.len() as u64);
        let n1 = Instant::now();
        if round == 0 {
            continue; // warm-up
        }
        wasm.push(BATCH as f64 / (t4 - t0).as_secs_f64());
        native.push(BATCH as f64 / (n1 - n0).as_secs_f64());
        t_collect.push((t1 - t0).as_secs_f64() * 1e3);
        t_publish.push((t2 - t1).as_secs_f64() * 1e3);
        t_process.push((t3 - t2).as_secs_f64() * 1e3);
    }
    let (w, n) = (median(wasm.clone()), median(native.clone()));
    println!("{BATCH} metrics per round, {ROUNDS} rounds (after one warm-up), graphite plaintext to a TCP sink on 127.0.0.1");
    println!("| pipeline | median metrics/s | per round |");
    println!("|---|---|---|");
    println!(
        "| wasm: synthetic collector -> host -> graphite handler -> sink | {:.0} | {:?} |",
        w,
        wasm.iter()
            .map(|x| format!("{:.2}M", x / 1e6))
            .collect::<Vec<_>>()
    );
    println!(
        "| native Rust: same lines -> same sink | {:.0} | {:?} |",
        n,
        native
            .iter()
            .map(|x| format!("{:.2}M", x / 1e6))
            .collect::<Vec<_>>()
    );
    println!("| ratio native / wasm | {:.2}x | |", n / w);
    println!();
    println!("wasm round, median ms: collect (guest builds {BATCH} records, host lifts them) {:.1}; host checks + paths {:.1}; handler (lower records, guest formats, host sends) {:.1}", median(t_collect), median(t_publish), median(t_process));
    println!(
        "  of the collect: the guest filling its columns (no output) {:.1} ms",
        median(t_gen)
    );
    println!(
        "  of the handler: packing columns {:.1} ms, the process calls {:.1} ms",
        median(t_pack),
        median(t_guest)
    );
}

//! A test-only collector that misbehaves as its `mode` option says, so the
//! runtime's tests can show one bad plugin never hurts the agent, the host
//! or another plugin.
//!
//! Modes: `ok` (publishes `runs`), `leave` / `scan` (a run's leftovers
//! and a later instance looking for them, see below), `trap` (panics: a wasm trap), `trap-once`
//! (traps on its second run only), `error` (returns an error result), `spin`
//! (loops forever), `bomb` (allocates until the memory cap stops it),
//! `recurse` (unbounded recursion), `read` (reads the file `arg`), `run`
//! (runs the argv `arg`, space-separated, asking for a one-hour timeout),
//! `connect` (opens `tcp:arg`), `flood` (publishes `count` metrics),
//! `generate` (fills a publisher with `count` metrics but publishes only
//! their number: the guest's own share of a flood, for benchmarks),
//! `flood-series` (the metrics of `flood`, as series declared at the first
//! run), `nan`
//! (NaN and infinities), `names` (names with spaces, newlines, 10 KB),
//! `instance` (publishes under the instance `arg`).
//!
//! Modes that wait or flood (issue: sandbox holes): `sleep` (sleeps `count`
//! seconds in `collect`; `sleep-configure` in `configure`), `read-many`
//! (reads `arg` `count` times; publishes `ok` and `secret`, the reads that
//! held the word TOPSECRET), `list` (lists the directory `arg`), `stat`
//! (`files.metadata` of `arg`), `statvfs` (`fs-stats.stat` of `arg`),
//! `unix` (connects to the Unix socket `arg`), `send` (sends `count` bytes
//! to `tcp:arg` in one call), `error-flood` (returns an error of `count`
//! bytes with newlines), `deny-flood` (100 denied reads of a `count`-byte
//! path), `stdout-flood` (prints `count` lines), `symlink` (creates a
//! symlink `arg` pointing out), `run-stdin` (runs the argv `arg` with
//! `count` bytes of stdin), `alias-argv` (calls
//! `process.run` through the raw import with `count` argv strings that all
//! alias one 1 MiB buffer: what a hostile non-Rust guest can do).
//!
//! Modes that fill a `directories` grant (the disk budget): `fill` (writes
//! `count` MiB to the file `arg`, 1 MiB at a time), `grow` (sets the file
//! `arg`'s size to `count` MiB), `files` (creates `count` empty files in
//! the directory `arg`), `mkdirs` (creates `count` directories there);
//! each publishes how far it got (`written_mb`, `created`), and `ok` 1
//! when it ended without an error, `refused` 1 when a call failed.

use wdiamond_sdk::bindings::wdiamond::plugin::{process, sockets};
use wdiamond_sdk::{
    declare_series, export_collector, host, option, Collector, Config, ConfigValue, Description,
    Metric, MetricKind, Publisher, SeriesRange,
};

/// The collector's state.
pub struct Misbehave {
    mode: String,
    arg: String,
    count: u64,
    runs: u64,
    series: Option<SeriesRange>,
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 16]);
    1 + recurse(std::hint::black_box(pad[3] + 1))
}

impl Collector for Misbehave {
    fn describe() -> Description {
        Description {
            name: "misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Test-only: misbehaves as told.".into(),
            options: vec![
                option(
                    "mode",
                    ConfigValue::Text("ok".into()),
                    "what to do wrong (see the crate docs)",
                ),
                option(
                    "arg",
                    ConfigValue::Text(String::new()),
                    "the file, argv, address or instance the mode uses",
                ),
                option(
                    "count",
                    ConfigValue::Integer(10_000_000),
                    "metrics published in mode `flood`",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        if config.str("mode").as_deref() == Some("sleep-configure") {
            std::thread::sleep(std::time::Duration::from_secs(config.f64("count")? as u64));
        }
        Ok(Misbehave {
            mode: config.text("mode")?,
            arg: config.text("arg")?,
            count: config.f64("count")? as u64,
            runs: 0,
            series: None,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        self.runs += 1;
        match self.mode.as_str() {
            "trap" => panic!("misbehave: trapping on purpose"),
            "trap-once" if self.runs == 2 => panic!("misbehave: trapping once"),
            "error" => return Err("misbehave: failing on purpose".into()),
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            // What a run leaves in its memory, and a later instance looking
            // for it: `leave` fills 4 MiB of heap with the marker `arg` and
            // returns without clearing it; `scan` reads 4 MiB of fresh heap,
            // publishing `found` (1 if the reversed `arg` is in it).
            "leave" => {
                let marker = self.arg.as_bytes();
                let mut v = vec![0u8; 4 << 20];
                for chunk in v.chunks_mut(marker.len().max(1)) {
                    let n = chunk.len();
                    chunk.copy_from_slice(&marker[..n]);
                }
                std::hint::black_box(&v);
                std::mem::forget(v);
                out.gauge("left", 1.0, 0);
            }
            "scan" => {
                // The marker is `arg` reversed: the instance's own
                // configuration (in its heap too) does not hold it.
                let marker: Vec<u8> = self.arg.bytes().rev().collect();
                let marker = marker.as_slice();
                let layout = std::alloc::Layout::from_size_align(4 << 20, 8).unwrap();
                // SAFETY: read as bytes only; never dereferenced past the
                // allocation.
                let found = unsafe {
                    let p = std::alloc::alloc(layout);
                    let heap = std::slice::from_raw_parts(p, 4 << 20);
                    let hit = !marker.is_empty() && heap.windows(marker.len()).any(|w| w == marker);
                    std::alloc::dealloc(p, layout);
                    hit
                };
                out.gauge("found", if found { 1.0 } else { 0.0 }, 0);
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => {
                out.gauge("depth", recurse(0) as f64, 0);
            }
            "read" => {
                let text = host::read_to_string(&self.arg).map_err(|e| host::describe_error(&e))?;
                out.gauge("bytes", text.len() as f64, 0);
            }
            "run" => {
                let cmd = process::Command {
                    argv: self.arg.split(' ').map(str::to_string).collect(),
                    stdin: vec![],
                    timeout_ms: 3_600_000,
                };
                let o = process::run(&cmd).map_err(|e| host::describe_error(&e))?;
                out.gauge("exit", o.status.unwrap_or(-1) as f64, 0);
            }
            "starttls" => {
                // TLS on a plaintext connection, asked twice: the host
                // decides whether it may and bounds the handshake.
                let c = sockets::Connection::open_plain(sockets::Protocol::Tcp, &self.arg, 1000)
                    .map_err(|e| host::describe_error(&e))?;
                c.start_tls(1000).map_err(|e| host::describe_error(&e))?;
                c.start_tls(1000)
                    .map_err(|e| format!("again: {}", host::describe_error(&e)))?;
                out.gauge("tls", 1.0, 0);
            }
            "starttls-udp" => {
                let c = sockets::Connection::open(sockets::Protocol::Udp, &self.arg, 1000)
                    .map_err(|e| host::describe_error(&e))?;
                c.start_tls(1000).map_err(|e| host::describe_error(&e))?;
                out.gauge("tls", 1.0, 0);
            }
            "connect" => {
                let c = sockets::Connection::open(sockets::Protocol::Tcp, &self.arg, 1000)
                    .map_err(|e| host::describe_error(&e))?;
                drop(c);
                out.gauge("connected", 1.0, 0);
            }
            "generate" => {
                // Fills a publisher as `flood` does and publishes only its
                // size: the guest's own share of a flood (benchmarks).
                let mut p = Publisher::with_capacity(self.count as usize, 0);
                for i in 0..self.count {
                    p.gauge_args(format_args!("m{i}"), i as f64, 0);
                }
                out.gauge("generated", std::hint::black_box(p.len()) as f64, 0);
            }
            "flood" => {
                for i in 0..self.count {
                    out.gauge_args(format_args!("m{i}"), i as f64, 0);
                }
            }
            "flood-series" => {
                let series = match self.series {
                    Some(s) => s,
                    None => *self.series.insert(declare_series(
                        (0..self.count).map(|i| format!("m{i}")),
                        None,
                    )?),
                };
                out.gauge_range(&series, (0..self.count as usize).map(|i| i as f64), 0);
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(self.count)),
            "read-many" => {
                let (mut ok, mut secret) = (0, 0);
                for _ in 0..self.count {
                    if let Ok(b) =
                        wdiamond_sdk::bindings::wdiamond::plugin::files::read_file(&self.arg)
                    {
                        ok += 1;
                        if b.windows(9).any(|w| w == b"TOPSECRET") {
                            secret += 1;
                        }
                    }
                }
                out.gauge("ok", ok as f64, 0);
                out.gauge("secret", secret as f64, 0);
            }
            "list" => {
                let e = wdiamond_sdk::bindings::wdiamond::plugin::files::list_dir(&self.arg)
                    .map_err(|e| host::describe_error(&e))?;
                out.gauge("entries", e.len() as f64, 0);
            }
            "stat" => {
                let m = wdiamond_sdk::bindings::wdiamond::plugin::files::metadata(&self.arg)
                    .map_err(|e| host::describe_error(&e))?;
                out.gauge("size", m.size as f64, 0);
            }
            "statvfs" => {
                let s = wdiamond_sdk::bindings::wdiamond::plugin::fs_stats::stat(&self.arg)
                    .map_err(|e| host::describe_error(&e))?;
                out.gauge("blocks", s.blocks as f64, 0);
            }
            "unix" => {
                let c = sockets::Connection::open(sockets::Protocol::Unix, &self.arg, 1000)
                    .map_err(|e| host::describe_error(&e))?;
                drop(c);
                out.gauge("connected", 1.0, 0);
            }
            "send" => {
                let c = sockets::Connection::open(sockets::Protocol::Tcp, &self.arg, 1000)
                    .map_err(|e| host::describe_error(&e))?;
                let data = vec![b'x'; self.count as usize];
                let n = c
                    .send(&data, 3_600_000)
                    .map_err(|e| host::describe_error(&e))?;
                out.gauge("sent", n as f64, 0);
            }
            "error-flood" => {
                return Err("line\n".repeat(self.count as usize / 5 + 1));
            }
            "deny-flood" => {
                let path = format!("/etc/{}", "y".repeat(self.count as usize));
                for _ in 0..100 {
                    let _ = wdiamond_sdk::bindings::wdiamond::plugin::files::read_file(&path);
                }
            }
            "stdout-flood" => {
                for i in 0..self.count {
                    println!("line {i} {}", "z".repeat(1000));
                }
            }
            "fill" => {
                use std::io::Write;
                let mut f = std::fs::File::create(&self.arg).map_err(|e| e.to_string())?;
                let chunk = vec![b'x'; 1 << 20];
                let mut done = 0;
                let r = (0..self.count).try_for_each(|_| {
                    f.write_all(&chunk)?;
                    done += 1;
                    Ok::<(), std::io::Error>(())
                });
                out.gauge("written_mb", done as f64, 0);
                out.gauge(if r.is_ok() { "ok" } else { "refused" }, 1.0, 0);
            }
            "grow" => {
                let f = std::fs::File::create(&self.arg).map_err(|e| e.to_string())?;
                let r = f.set_len(self.count << 20);
                out.gauge(if r.is_ok() { "ok" } else { "refused" }, 1.0, 0);
            }
            "files" | "mkdirs" => {
                let mut done = 0;
                let r = (0..self.count).try_for_each(|i| {
                    let p = format!("{}/{}-{}-{i}", self.arg, self.mode, self.runs);
                    if self.mode == "files" {
                        std::fs::File::create(p)?;
                    } else {
                        std::fs::create_dir(p)?;
                    }
                    done += 1;
                    Ok::<(), std::io::Error>(())
                });
                out.gauge("created", done as f64, 0);
                out.gauge(if r.is_ok() { "ok" } else { "refused" }, 1.0, 0);
            }
            "symlink" => {
                // WASI's symlink-at, through std: a link out of the
                // plugin's `directories` grant.
                #[allow(deprecated)]
                std::fs::soft_link("../../../../etc/passwd", &self.arg)
                    .map_err(|e| e.to_string())?;
                out.gauge("linked", 1.0, 0);
            }
            "run-stdin" => {
                let cmd = process::Command {
                    argv: self.arg.split(' ').map(str::to_string).collect(),
                    stdin: vec![b'i'; self.count as usize],
                    timeout_ms: 3_600_000,
                };
                let o = process::run(&cmd).map_err(|e| host::describe_error(&e))?;
                out.gauge("exit", o.status.unwrap_or(-1) as f64, 0);
            }
            "alias-argv" => {
                out.gauge("lifted", alias_argv(self.count as usize) as f64, 0);
            }
            "nan" => {
                out.gauge("nan", f64::NAN, 0);
                out.gauge("inf", f64::INFINITY, 0);
                out.gauge("ninf", f64::NEG_INFINITY, 0);
            }
            "names" => {
                out.gauge("has space", 1.0, 0);
                out.gauge("new\nline", 1.0, 0);
                out.gauge("x".repeat(10_240), 1.0, 0);
                out.gauge("a..b", 1.0, 0);
                out.gauge("", 1.0, 0);
            }
            "instance" => {
                out.metric(Metric {
                    name: "stolen".into(),
                    value: 1.0,
                    precision: 0,
                    kind: MetricKind::Gauge,
                    timestamp: None,
                    instance: Some(self.arg.clone()),
                    raw_value: None,
                });
            }
            _ => {}
        }
        out.gauge("runs", self.runs as f64, 0);
        Ok(())
    }
}

/// Calls `process.run` through its raw import with `n` argv entries that
/// all point at one 1 MiB string: the host would lift `n` MiB from a guest
/// that holds one. Returns 1 if the call came back at all.
#[cfg(target_arch = "wasm32")]
fn alias_argv(n: usize) -> u32 {
    #[link(wasm_import_module = "wdiamond:plugin/process@0.1.0")]
    extern "C" {
        #[link_name = "run"]
        fn raw_run(
            argv: *const u8,
            argv_len: usize,
            stdin: *const u8,
            stdin_len: usize,
            timeout: i32,
            ret: *mut u8,
        );
    }
    let big = vec![b'a'; 1 << 20];
    let mut argv: Vec<[u32; 2]> = vec![[big.as_ptr() as u32, big.len() as u32]; n];
    argv[0] = [b"/bin/true".as_ptr() as u32, 9];
    #[repr(align(8))]
    struct Ret([u8; 64]);
    let mut ret = Ret([0; 64]);
    // SAFETY: the canonical ABI of `run(cmd: command)`: argv (ptr, len),
    // stdin (ptr, len), timeout, and a return area the host writes.
    unsafe {
        raw_run(
            argv.as_ptr().cast(),
            n,
            std::ptr::null(),
            0,
            1000,
            ret.0.as_mut_ptr(),
        )
    };
    std::hint::black_box(&big);
    1
}

#[cfg(not(target_arch = "wasm32"))]
fn alias_argv(_n: usize) -> u32 {
    0
}

export_collector!(Misbehave);

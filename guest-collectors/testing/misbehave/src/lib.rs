//! A test-only collector that misbehaves as its `mode` option says, so the
//! runtime's tests can show one bad plugin never hurts the agent, the host
//! or another plugin.
//!
//! Modes: `ok` (publishes `runs`), `trap` (panics: a wasm trap), `trap-once`
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
        Ok(Misbehave {
            mode: config.str("mode").unwrap_or_else(|| "ok".into()),
            arg: config.str("arg").unwrap_or_default(),
            count: config.f64("count", 1e7)? as u64,
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

export_collector!(Misbehave);

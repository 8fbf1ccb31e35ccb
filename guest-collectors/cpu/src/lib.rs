//! Diamond's CPUCollector as a wdiamond component: CPU time per second from
//! `/proc/stat`, per core and in total (`cpu.total.user`, `cpu.cpu0.idle`,
//! `cpu.cpu_count`), with Diamond's `percore`, `normalize`, `simple` and
//! `xenfix` options.

use wdiamond_sdk::derive::{Derivative, Per, MAX_COUNTER};
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC_STAT: &str = "/proc/stat";
/// Field names by column position after the `cpuN` label.
pub const FIELDS: [&str; 10] = [
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

/// One `cpu` line of /proc/stat.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuLine {
    /// `total` for the aggregate line, else `cpuN`.
    pub name: String,
    /// Values by position in [`FIELDS`]; only as many as the line has.
    pub values: Vec<i128>,
}

/// Parsed /proc/stat: the `cpu*` lines and Diamond's `ncpus` (the number of
/// `cpu*` lines minus the aggregate one).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcStat {
    /// The cpu lines, in file order.
    pub lines: Vec<CpuLine>,
    /// Diamond's `ncpus`.
    pub ncpus: i64,
}

/// Parses /proc/stat as Diamond does (`line.startswith('cpu')`, fields by
/// whitespace). A field that is not an integer is an error, as `long()`
/// raising in Diamond.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, String> {
    let mut ncpus = -1;
    let mut lines = Vec::new();
    for line in text.lines() {
        if !line.starts_with("cpu") {
            continue;
        }
        ncpus += 1;
        let mut parts = line.split_whitespace();
        let label = parts.next().unwrap_or_default();
        let name = if label == "cpu" {
            "total".to_string()
        } else {
            label.to_string()
        };
        let values = parts
            .take(FIELDS.len())
            .map(|v| {
                wdiamond_sdk::derive::parse_counter(v)
                    .ok_or_else(|| format!("{PROC_STAT}: {label}: not a number: {v:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        lines.push(CpuLine { name, values });
    }
    Ok(ProcStat { lines, ncpus })
}

/// Diamond's `xenfix` switch: `None` until decided, then latched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XenFix {
    /// Not decided (Diamond's `None`): check on every run.
    Auto,
    /// Halving idle values (Diamond latched `True`): keep checking.
    On,
    /// Never halve.
    Off,
}

/// The collector's state.
pub struct Cpu {
    percore: bool,
    normalize: bool,
    simple: bool,
    interval: f64,
    xenfix: XenFix,
    derivative: Derivative,
    /// Previous aggregate (user, nice, system, idle) for `simple`.
    last_simple: Option<[i128; 4]>,
}

impl Cpu {
    /// Computes the metrics of one sample, as Diamond's `collect()`:
    /// `(name, value)` pairs, all published with precision 2.
    pub fn compute(&mut self, stat: &ProcStat, xen_dir: impl Fn() -> bool) -> Vec<(String, f64)> {
        let mut metrics: Vec<(String, f64)> = vec![("cpu_count".to_string(), stat.ncpus as f64)];
        for line in &stat.lines {
            if line.name != "total" && !self.percore {
                continue;
            }
            for (field, value) in FIELDS.iter().zip(&line.values) {
                let name = format!("{}.{}", line.name, field);
                // A first sample has no rate: nothing is published for it.
                let Some(rate) = self.derivative.rate(
                    &name,
                    *value,
                    MAX_COUNTER,
                    Per::Seconds(self.interval),
                    false,
                ) else {
                    continue;
                };
                let rate = if self.normalize && line.name == "total" && stat.ncpus > 0 {
                    rate / stat.ncpus as f64
                } else {
                    rate
                };
                metrics.push((name, rate));
            }
        }
        if self.xenfix != XenFix::Off {
            if xen_dir() {
                let total: i64 = metrics
                    .iter()
                    .filter(|(n, _)| n.contains("cpu0."))
                    .map(|(_, v)| v.trunc() as i64)
                    .sum();
                if total > 110 {
                    self.xenfix = XenFix::On;
                    for (n, v) in metrics.iter_mut() {
                        if n.contains(".idle") {
                            *v /= 2.0;
                        }
                    }
                } else if total > 0 {
                    self.xenfix = XenFix::Off;
                }
            } else {
                self.xenfix = XenFix::Off;
            }
        }
        metrics
    }

    /// Diamond's `simple` mode: busy percentage of the aggregate line since
    /// the previous run (`None` on the first run).
    pub fn simple_percent(&mut self, stat: &ProcStat) -> Option<f64> {
        let total = stat.lines.iter().find(|l| l.name == "total")?;
        if total.values.len() < 4 {
            return None;
        }
        let now = [
            total.values[0],
            total.values[1],
            total.values[2],
            total.values[3],
        ];
        let prev = self.last_simple.replace(now)?;
        let dt: Vec<i128> = now.iter().zip(prev).map(|(n, p)| n - p).collect();
        let sum: i128 = dt.iter().sum();
        if sum <= 0 {
            return None;
        }
        Some(100.0 - (dt[3] as f64 * 100.0 / sum as f64))
    }
}

impl Collector for Cpu {
    fn describe() -> Description {
        Description {
            name: "cpu".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "CPU time per second from /proc/stat, per core and in total (Diamond's CPUCollector)."
                .into(),
            options: vec![
                option("percore", ConfigValue::Boolean(true), "Collect metrics per cpu core or just total"),
                option("simple", ConfigValue::Boolean(false), "only return aggregate CPU% metric (busy percentage since the previous run)"),
                option("normalize", ConfigValue::Boolean(false), "for cpu totals, divide by the number of CPUs"),
                option("xenfix", ConfigValue::Text("auto".into()), "halve idle time on Xen guests whose idle is doubled: auto (detect via /proc/xen) or false"),
            ],
            capabilities: vec![
                Capability::ReadFiles(PROC_STAT.into()),
                Capability::ReadFiles("/proc/xen".into()),
            ],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let xenfix = match config.str("xenfix").as_deref().map(str::to_ascii_lowercase) {
            None => XenFix::Auto,
            Some(s) if s == "auto" || s == "true" || s == "none" => XenFix::Auto,
            Some(s) if s == "false" => XenFix::Off,
            Some(s) => return Err(format!("`xenfix` must be auto or false, not {s:?}")),
        };
        Ok(Cpu {
            percore: config.bool("percore")?,
            normalize: config.bool("normalize")?,
            simple: config.bool("simple")?,
            interval: config.f64("interval")?,
            xenfix,
            derivative: Derivative::for_config(config),
            last_simple: None,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC_STAT)? else {
            return Ok(());
        };
        let stat = parse_proc_stat(&text)?;
        if self.simple {
            if let Some(p) = self.simple_percent(&stat) {
                // Diamond publishes str('%.4f' % pct) with precision 0.
                let p: f64 = format!("{p:.4}").parse().unwrap_or(p);
                out.gauge("percent", p, 0);
            }
            return Ok(());
        }
        for (name, value) in self.compute(&stat, || host::is_dir("/proc/xen")) {
            out.gauge(name, value, 2);
        }
        Ok(())
    }
}

export_collector!(Cpu);

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(normalize: bool) -> Cpu {
        Cpu {
            percore: true,
            normalize,
            simple: false,
            interval: 10.0,
            xenfix: XenFix::Auto,
            derivative: Derivative::new(),
            last_simple: None,
        }
    }

    #[test]
    fn parses_lines_and_counts_cpus_like_diamond() {
        let s = parse_proc_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 0 0 0 0\nintr 5\n").unwrap();
        assert_eq!(s.ncpus, 2);
        assert_eq!(s.lines[0].name, "total");
        assert_eq!(s.lines[2].values, vec![0, 0, 0, 0]);
        assert!(parse_proc_stat("cpu x").is_err());
    }

    #[test]
    fn rates_per_interval_and_nothing_for_a_first_sample() {
        let mut c = cpu(false);
        let first = c.compute(&parse_proc_stat("cpu 100 200 300 400").unwrap(), || false);
        assert_eq!(first, vec![("cpu_count".to_string(), 0.0)]);
        // Diamond's first 0 on request.
        c.derivative = Derivative::diamond();
        let first = c.compute(&parse_proc_stat("cpu 100 200 300 400").unwrap(), || false);
        assert!(first.len() > 1 && first.iter().skip(1).all(|(_, v)| *v == 0.0));
        c.derivative = Derivative::new();
        c.compute(&parse_proc_stat("cpu 100 200 300 400").unwrap(), || false);
        let second = c.compute(&parse_proc_stat("cpu 110 220 330 440").unwrap(), || false);
        let user = second.iter().find(|(n, _)| n == "total.user").unwrap().1;
        assert_eq!(user, 1.0);
    }

    #[test]
    fn normalize_divides_totals_only() {
        let mut c = cpu(true);
        let a = "cpu 0 0 0 0\ncpu0 0 0 0 0\ncpu1 0 0 0 0";
        let b = "cpu 20 0 0 0\ncpu0 20 0 0 0\ncpu1 20 0 0 0";
        c.compute(&parse_proc_stat(a).unwrap(), || false);
        let m = c.compute(&parse_proc_stat(b).unwrap(), || false);
        let get = |n: &str| m.iter().find(|(k, _)| k == n).unwrap().1;
        assert_eq!(get("total.user"), 1.0);
        assert_eq!(get("cpu0.user"), 2.0);
    }

    #[test]
    fn xenfix_halves_idle_once_cpu0_sum_exceeds_110() {
        let mut c = cpu(false);
        c.interval = 1.0;
        c.compute(
            &parse_proc_stat("cpu 0 0 0 0\ncpu0 0 0 0 0").unwrap(),
            || true,
        );
        let m = c.compute(
            &parse_proc_stat("cpu 0 0 0 200\ncpu0 0 0 0 200").unwrap(),
            || true,
        );
        let idle = m.iter().find(|(k, _)| k == "cpu0.idle").unwrap().1;
        assert_eq!(idle, 100.0);
        assert_eq!(c.xenfix, XenFix::On);
    }

    #[test]
    fn simple_mode_needs_two_samples() {
        let mut c = cpu(false);
        assert_eq!(
            c.simple_percent(&parse_proc_stat("cpu 0 0 0 0").unwrap()),
            None
        );
        let p = c.simple_percent(&parse_proc_stat("cpu 25 0 0 75").unwrap());
        assert_eq!(p, Some(25.0));
    }
}

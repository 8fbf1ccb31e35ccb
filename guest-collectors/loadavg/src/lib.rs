//! Diamond's LoadAverageCollector as a wdiamond component: the 1, 5 and 15
//! minute load averages (also divided by the CPU count) and the running and
//! total process counts, from `/proc/loadavg`.

use wdiamond_sdk::bindings::wdiamond::plugin::host_info;
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC_LOADAVG: &str = "/proc/loadavg";

/// The fields of /proc/loadavg.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadAvg {
    /// 1, 5 and 15 minute load averages (what `os.getloadavg()` returns).
    pub loads: [f64; 3],
    /// Running and total scheduling entities (`1/235`), when the line has
    /// Diamond's `([\d.]+) ([\d.]+) ([\d.]+) (\d+)/(\d+)` shape.
    pub processes: Option<(u64, u64)>,
}

/// Parses /proc/loadavg.
pub fn parse(text: &str) -> Result<LoadAvg, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() < 3 {
        return Err(format!(
            "{PROC_LOADAVG}: expected at least 3 fields, got {text:?}"
        ));
    }
    let mut loads = [0.0; 3];
    for (slot, f) in loads.iter_mut().zip(&fields) {
        *slot = f
            .parse()
            .map_err(|_| format!("{PROC_LOADAVG}: not a number: {f:?}"))?;
    }
    let processes = fields.get(3).and_then(|f| {
        let (r, t) = f.split_once('/')?;
        Some((r.parse().ok()?, t.parse().ok()?))
    });
    Ok(LoadAvg { loads, processes })
}

/// Diamond's metrics `(name, value, precision)`.
pub fn compute(l: &LoadAvg, cpu_count: u32, simple: bool) -> Vec<(&'static str, f64, u8)> {
    let n = cpu_count.max(1) as f64;
    let [l1, l5, l15] = l.loads;
    let mut out = if simple {
        vec![("load", l1, 2), ("load_normalized", l1 / n, 2)]
    } else {
        vec![
            ("01", l1, 2),
            ("05", l5, 2),
            ("15", l15, 2),
            ("01_normalized", l1 / n, 2),
            ("05_normalized", l5 / n, 2),
            ("15_normalized", l15 / n, 2),
        ]
    };
    if let Some((running, total)) = l.processes {
        out.push(("processes_running", running as f64, 0));
        out.push(("processes_total", total as f64, 0));
    }
    out
}

/// The collector's state.
pub struct Loadavg {
    simple: bool,
}

impl Collector for Loadavg {
    fn describe() -> Description {
        Description {
            name: "loadavg".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Load averages and process counts from /proc/loadavg (Diamond's LoadAverageCollector).".into(),
            options: vec![option(
                "simple",
                ConfigValue::Boolean(false),
                "Only collect the 1 minute load average",
            )],
            capabilities: vec![Capability::ReadFiles(PROC_LOADAVG.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Loadavg {
            simple: config.bool("simple")?,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let text = host::read_to_string(PROC_LOADAVG)
            .map_err(|e| format!("{PROC_LOADAVG}: {}", host::describe_error(&e)))?;
        let l = parse(&text)?;
        for (name, value, precision) in compute(&l, host_info::cpu_count(), self.simple) {
            out.gauge(name, value, precision);
        }
        Ok(())
    }
}

export_collector!(Loadavg);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let l = parse("0.12 0.23 0.34 1/235 24672\n").unwrap();
        assert_eq!(l.processes, Some((1, 235)));
        let m = compute(&l, 2, false);
        assert_eq!(m[4], ("05_normalized", 0.115, 2));
        assert_eq!(m.len(), 8);
        assert_eq!(compute(&l, 2, true).len(), 4);
        assert!(parse("garbage").is_err());
    }
}

//! Diamond's MemoryCollector as a wdiamond component: the standard fields of
//! `/proc/meminfo` in the first `byte_unit`, and `MemUsedPercentage`.

use wdiamond_sdk::units::{convert, Unit};
use wdiamond_sdk::{
    export_collector, host, option, Capability, Collector, Config, ConfigValue, Description,
    Publisher,
};

const PROC_MEMINFO: &str = "/proc/meminfo";

/// The /proc/meminfo keys Diamond publishes (its `_KEY_MAPPING`).
pub const KEYS: [&str; 16] = [
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

/// Computes Diamond's metrics from /proc/meminfo text: `(name, value)`
/// pairs, all with precision 0. `unit` is the first `byte_unit`; `detailed`
/// publishes every three-field line, not only [`KEYS`].
pub fn compute(text: &str, unit: Unit, detailed: bool) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut total = None;
    let mut available = None;
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [name, value, units] = parts[..] else {
            continue;
        };
        let name = name.trim_end_matches(':');
        let Ok(value) = value.parse::<i64>() else {
            continue;
        };
        if !detailed && !KEYS.contains(&name) {
            continue;
        }
        // Diamond tests `name in 'MemTotal'`, a substring test.
        if "MemTotal".contains(name) {
            total = Some(value);
        } else if "MemAvailable".contains(name) {
            available = Some(value);
        }
        let Some(from) = Unit::parse(units) else {
            continue;
        };
        out.push((name.to_string(), convert(value as f64, from, unit)));
    }
    if let (Some(total), Some(available)) = (total, available) {
        let used = total - available;
        let percent = 100.0 * used as f64 / total as f64;
        out.push(("MemUsedPercentage".to_string(), round_repr(percent, 2)));
    }
    out
}

/// Python's `round(Decimal(str(x)), places)`: rounds the shortest decimal
/// representation of `x` half-to-even, then reads it back as a float.
pub fn round_repr(x: f64, places: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let text = format!("{}", x.abs());
    let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
    if frac_part.len() <= places {
        return x;
    }
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes().take(places))
        .map(|b| b - b'0')
        .collect();
    let rest = &frac_part.as_bytes()[places..];
    let first = rest[0] - b'0';
    let beyond = rest[1..].iter().any(|&b| b != b'0');
    let last_odd = digits.last().is_some_and(|d| d % 2 == 1);
    let round_up = first > 5 || (first == 5 && (beyond || last_odd));
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - places;
    let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    let value: f64 = format!("{}.{}", &s[..split], &s[split..])
        .parse()
        .unwrap_or(x);
    if x < 0.0 {
        -value
    } else {
        value
    }
}

/// The collector's state.
pub struct Memory {
    unit: Unit,
    detailed: bool,
}

impl Collector for Memory {
    fn describe() -> Description {
        Description {
            name: "memory".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Memory usage from /proc/meminfo (Diamond's MemoryCollector).".into(),
            options: vec![
                option(
                    "detailed",
                    ConfigValue::Boolean(false),
                    "Collect every /proc/meminfo field, not only the standard ones",
                ),
                option(
                    "force_psutil",
                    ConfigValue::Boolean(false),
                    "Accepted for compatibility with Diamond; /proc/meminfo is always used",
                ),
            ],
            capabilities: vec![Capability::ReadFiles(PROC_MEMINFO.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let units = config.list("byte_unit");
        let first = units.first().map(String::as_str).unwrap_or("byte");
        let unit =
            Unit::parse(first).ok_or_else(|| format!("`byte_unit`: unknown unit {first:?}"))?;
        Ok(Memory {
            unit,
            detailed: config.bool("detailed")?,
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC_MEMINFO)? else {
            return Ok(());
        };
        for (name, value) in compute(&text, self.unit, self.detailed) {
            out.gauge(name, value, 0);
        }
        Ok(())
    }
}

export_collector!(Memory);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_repr_is_decimal_half_even() {
        assert_eq!(round_repr(28.975, 2), 28.98);
        assert_eq!(round_repr(28.985, 2), 28.98);
        assert_eq!(round_repr(28.9851, 2), 28.99);
        assert_eq!(round_repr(99.999, 2), 100.0);
        assert_eq!(round_repr(1.5, 2), 1.5);
    }

    #[test]
    fn publishes_standard_keys_in_unit_and_percentage() {
        let text = "MemTotal: 1000 kB\nMemFree: 200 kB\nMemAvailable: 250 kB\nHugePages_Total: 0\nFoo: 3 kB\n";
        let m = compute(text, Unit::parse("byte").unwrap(), false);
        let get = |n: &str| m.iter().find(|(k, _)| k == n).map(|p| p.1);
        assert_eq!(get("MemTotal"), Some(1024000.0));
        assert_eq!(get("Foo"), None);
        assert_eq!(get("MemUsedPercentage"), Some(75.0));
        let all = compute(text, Unit::parse("kB").unwrap(), true);
        assert!(all.iter().any(|(k, _)| k == "Foo"));
    }
}

//! Diamond's VMStatCollector: page and swap activity per second from
//! `/proc/vmstat` (`pgfault`, `pgmajfault`, `pgpgin`, `pgpgout`, `pswpin`,
//! `pswpout`).

use wdiamond_sdk::derive::{parse_counter, Derivative, Per, MAX_COUNTER};
use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROC: &str = "/proc/vmstat";
/// The fields Diamond publishes.
pub const FIELDS: [&str; 6] = [
    "pgpgin",
    "pgpgout",
    "pswpin",
    "pswpout",
    "pgmajfault",
    "pgfault",
];

/// `(name, counter)` of the wanted fields, in file order.
pub fn parse(text: &str) -> Vec<(&str, i128)> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(|c: char| c.is_whitespace())?;
            if !FIELDS.contains(&name) {
                return None;
            }
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            Some((name, parse_counter(&digits)?))
        })
        .collect()
}

/// The collector's state.
pub struct Vmstat {
    interval: f64,
    derivative: Derivative,
}

impl Collector for Vmstat {
    fn describe() -> Description {
        Description {
            name: "vmstat".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary:
                "Paging and swapping per second from /proc/vmstat (Diamond's VMStatCollector)."
                    .into(),
            options: vec![],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Vmstat {
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        for (name, v) in parse(&text) {
            if let Some(rate) =
                self.derivative
                    .rate(name, v, MAX_COUNTER, Per::Seconds(self.interval), false)
            {
                out.gauge(name, rate, 2);
            }
        }
        Ok(())
    }
}

export_collector!(Vmstat);

#[cfg(test)]
mod tests {
    #[test]
    fn parses_only_the_wanted_fields() {
        let p = super::parse("pgfault 10\npgfault_x 3\nnr_free 7\npswpin 2\n");
        assert_eq!(p, vec![("pgfault", 10), ("pswpin", 2)]);
    }
}

//! Diamond's InterruptCollector: interrupts per second per CPU and in
//! total, from `/proc/interrupts` (path `interrupts`), with Diamond's names.

use wdiamond_sdk::derive::{parse_counter, Derivative, Per, MAX_COUNTER};
use wdiamond_sdk::text::split_max;
use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROC: &str = "/proc/interrupts";

/// One line's metric names: Diamond's naming rules.
pub fn line_name(fields: &[&str], cpu_count: usize) -> String {
    let f0 = fields[0].replace(':', "");
    if f0.len() == cpu_count + 1 {
        format!("{f0}.")
    } else if f0.len() == 3 {
        let n = fields.len();
        format!(
            "{}.",
            format!("{} {}", fields[n - 2], fields[n - 1]).replace(' ', "_")
        )
    } else {
        let n = fields.len();
        format!(
            "{}.{}.{f0}.",
            fields[n - 2].replace(' ', "_"),
            fields[n - 1].replace(", ", "-").replace(' ', "_")
        )
    }
}

/// The collector's state.
pub struct Interrupt {
    interval: f64,
    derivative: Derivative,
}

impl Interrupt {
    /// Diamond's metrics of one sample: `(name, value)`, precision 0.
    pub fn compute(&mut self, text: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let mut cpu_count = None;
        for line in text.lines() {
            let Some(n) = cpu_count else {
                let c = line.split_whitespace().count();
                if c > 0 {
                    cpu_count = Some(c);
                }
                continue;
            };
            let data = split_max(line.trim(), n + 2);
            if data.is_empty() {
                continue;
            }
            if data.len() == 2 {
                let name = data[0].replace(':', "");
                let Some(v) = parse_counter(data[1]) else {
                    continue;
                };
                if let Some(rate) =
                    self.derivative
                        .rate(&name, v, MAX_COUNTER, Per::Seconds(self.interval), false)
                {
                    out.push((name, rate));
                }
                continue;
            }
            let name = line_name(&data, n);
            let mut total = Some(0.0);
            let mut values = Vec::new();
            for (index, v) in data.iter().enumerate().skip(1).take(n) {
                let Some(v) = parse_counter(v) else { break };
                let node = format!("{name}CPU{}", index - 1);
                // A first sample has no rate; nor has a total it is part of.
                match self.derivative.rate(
                    &node,
                    v,
                    MAX_COUNTER,
                    Per::Seconds(self.interval),
                    false,
                ) {
                    Some(rate) => {
                        let rate = rate.trunc();
                        total = total.map(|t| t + rate);
                        values.push((node, rate));
                    }
                    None => total = None,
                }
            }
            out.extend(values);
            if let Some(total) = total {
                out.push((format!("{name}total"), total));
            }
        }
        out
    }
}

impl Collector for Interrupt {
    fn describe() -> Description {
        Description {
            name: "interrupts".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Interrupts per second from /proc/interrupts (Diamond's InterruptCollector)."
                .into(),
            options: vec![],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Interrupt {
            interval: config.f64("interval")?,
            derivative: Derivative::for_config(config),
        })
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        for (name, v) in self.compute(&text) {
            out.gauge(name, v, 0);
        }
        Ok(())
    }
}

export_collector!(Interrupt);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_diamond() {
        assert_eq!(
            line_name(&["NMI:", "1", "2", "Non-maskable interrupts"], 2),
            "NMI."
        );
        assert_eq!(
            line_name(&["0:", "1", "2", "IO-APIC-edge", "timer"], 2),
            "IO-APIC-edge.timer.0."
        );
        assert_eq!(
            line_name(&["114:", "1", "IO-APIC-level", "3w-sas"], 1),
            "IO-APIC-level_3w-sas."
        );
        assert_eq!(
            line_name(
                &["11:", "1", "2", "IO-APIC-level", "uhci_hcd:usb1, virtio2"],
                2
            ),
            "IO-APIC-level.uhci_hcd:usb1-virtio2.11."
        );
    }

    #[test]
    fn totals_and_two_field_lines() {
        let mut i = Interrupt {
            interval: 1.0,
            derivative: Derivative::new(),
        };
        i.compute("  CPU0 CPU1\n  0: 1 2 IO-APIC-edge timer\nERR: 5\n");
        let m = i.compute("  CPU0 CPU1\n  0: 4 6 IO-APIC-edge timer\nERR: 7\n");
        assert_eq!(
            m,
            vec![
                ("IO-APIC-edge.timer.0.CPU0".into(), 3.0),
                ("IO-APIC-edge.timer.0.CPU1".into(), 4.0),
                ("IO-APIC-edge.timer.0.total".into(), 7.0),
                ("ERR".into(), 2.0),
            ]
        );
    }
}

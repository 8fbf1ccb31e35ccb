//! Diamond's NetstatCollector: TCP connections per state from
//! `/proc/net/tcp`; all eleven states are published, zeros included.

use wdiamond_sdk::{export_collector, host, Capability, Collector, Config, Description, Publisher};

const PROC: &str = "/proc/net/tcp";
/// Kernel state codes and Diamond's names.
pub const STATES: [(&str, &str); 11] = [
    ("01", "ESTABLISHED"),
    ("02", "SYN_SENT"),
    ("03", "SYN_RECV"),
    ("04", "FIN_WAIT1"),
    ("05", "FIN_WAIT2"),
    ("06", "TIME_WAIT"),
    ("07", "CLOSE"),
    ("08", "CLOSE_WAIT"),
    ("09", "LAST_ACK"),
    ("0A", "LISTEN"),
    ("0B", "CLOSING"),
];

/// Counts per state (header line skipped; the state is the 4th column).
pub fn count(text: &str) -> [u64; 11] {
    let mut n = [0; 11];
    for line in text.lines().skip(1) {
        if let Some(st) = line.split_whitespace().nth(3) {
            if let Some(i) = STATES.iter().position(|(code, _)| *code == st) {
                n[i] += 1;
            }
        }
    }
    n
}

/// The collector.
pub struct Netstat;

impl Collector for Netstat {
    fn describe() -> Description {
        Description {
            name: "netstat".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "TCP connections per state from /proc/net/tcp (Diamond's NetstatCollector)."
                .into(),
            options: vec![],
            capabilities: vec![Capability::ReadFiles(PROC.into())],
        }
    }

    fn configure(_: &Config) -> Result<Self, String> {
        Ok(Netstat)
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        let Some(text) = host::read_optional(PROC)? else {
            return Ok(());
        };
        for ((_, name), n) in STATES.iter().zip(count(&text)) {
            out.gauge(*name, n as f64, 0);
        }
        Ok(())
    }
}

export_collector!(Netstat);

#[cfg(test)]
mod tests {
    #[test]
    fn counts_states() {
        let n = super::count("hdr\n 0: a b 0A\n 1: a b 01\n 2: a b 0A\n");
        assert_eq!(n[9], 2);
        assert_eq!(n[0], 1);
    }
}

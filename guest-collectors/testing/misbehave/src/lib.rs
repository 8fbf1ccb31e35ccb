//! A test-only collector that misbehaves as its `mode` option says, so the
//! runtime's tests can show one bad plugin never stops the others.
//!
//! Modes: `ok` (publishes `runs`), `trap` (panics: a wasm trap), `error`
//! (returns an error result), `spin` (loops forever), `bomb` (allocates
//! until the memory cap stops it), `read` (reads the file in `file`),
//! `trap-once` (traps on its second run, then works).

use wdiamond_sdk::{
    export_collector, host, option, Collector, Config, ConfigValue, Description, Publisher,
};

/// The collector's state.
pub struct Misbehave {
    mode: String,
    file: String,
    runs: u64,
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
                    "ok, trap, error, spin, bomb, read or trap-once",
                ),
                option(
                    "file",
                    ConfigValue::Text("/etc/shadow".into()),
                    "file read in mode `read`",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Misbehave {
            mode: config.str("mode").unwrap_or_else(|| "ok".into()),
            file: config.str("file").unwrap_or_default(),
            runs: 0,
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
            "read" => {
                let text =
                    host::read_to_string(&self.file).map_err(|e| host::describe_error(&e))?;
                out.gauge("bytes", text.len() as f64, 0);
            }
            _ => {}
        }
        out.gauge("runs", self.runs as f64, 0);
        Ok(())
    }
}

export_collector!(Misbehave);

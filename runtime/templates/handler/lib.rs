//! {{name}}: a wdiamond handler. It appends one line per metric to a file
//! (`path value timestamp`, the value with its precision).
//!
//! The formatting is a pure function ([`line`]), unit-tested natively with
//! `cargo test`; the [`Handler`] impl only formats and writes.

use std::io::Write;

use wdiamond_sdk::{
    export_handler, option, Batch, Capability, Config, ConfigValue, Description, Handler,
};

/// One metric's line.
pub fn line(path: &str, value: f64, precision: u8, timestamp: u64) -> String {
    format!("{path} {value:.prec$} {timestamp}\n", prec = precision as usize)
}

/// The handler's state, built by `configure`.
pub struct Plugin {
    file: String,
    out: Option<std::fs::File>,
}

impl Handler for Plugin {
    fn describe() -> Description {
        Description {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Appends one line per metric to a file.".into(),
            options: vec![option(
                "file",
                ConfigValue::Text("/tmp/{{name}}/metrics.txt".into()),
                "The file to append to (its directory must be granted)",
            )],
            // Write access to the directory of the file named by `file`.
            capabilities: vec![Capability::WriteDirectory("file".into())],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let file = config.text("file")?;
        if !file.starts_with('/') {
            return Err(format!("`file` must be an absolute path, not {file:?}"));
        }
        Ok(Plugin { file, out: None })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        let mut text = String::new();
        for m in batch.iter() {
            text.push_str(&line(m.path, m.value, m.precision, m.timestamp));
        }
        if self.out.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file)
                .map_err(|e| format!("opening {}: {e}", self.file))?;
            self.out = Some(f);
        }
        let f = self.out.as_mut().expect("opened above");
        f.write_all(text.as_bytes())
            .map_err(|e| format!("writing {}: {e}", self.file))
    }

    fn flush(&mut self) -> Result<(), String> {
        match self.out.as_mut() {
            Some(f) => f.flush().map_err(|e| format!("flushing {}: {e}", self.file)),
            None => Ok(()),
        }
    }
}

export_handler!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_precision() {
        assert_eq!(line("servers.h.x.y", 1.5, 2, 7), "servers.h.x.y 1.50 7\n");
        assert_eq!(line("a", 2.0, 0, 1), "a 2 1\n");
    }
}

//! Test-only handler: keeps every batch it is given (never drops a
//! handle), and at each `process` reads the oldest one it holds. The host
//! keeps the metrics of only a handler's most recent batches, so once it
//! holds more, the oldest read fails: the error is returned as the result.
//! Mode `count` (config `mode`) reads nothing and returns `ok`.

use wdiamond_sdk::{export_handler, Batch, Config, Description, Handler};

/// The handler's state.
pub struct Hoard {
    held: Vec<Batch>,
    read_oldest: bool,
}

impl Handler for Hoard {
    fn describe() -> Description {
        Description {
            name: "hoard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Test-only: keeps every batch handle it gets.".into(),
            options: vec![],
            capabilities: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Hoard {
            held: Vec::new(),
            read_oldest: config.str("mode").as_deref() != Some("count"),
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        let handle = batch.host_handle().ok_or("not a host batch")?.clone();
        // Keeps the handle itself (an Rc of it), past this call.
        self.held.push(Batch::from_shared(handle));
        if self.read_oldest {
            let oldest = self.held[0].host_handle().expect("host batch");
            let cols = oldest
                .columns()
                .map_err(|e| wdiamond_sdk::host::describe_error(&e))?;
            return Err(format!(
                "read {} held, oldest has {} lines",
                self.held.len(),
                cols.line_ends.len()
            ));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

export_handler!(Hoard);

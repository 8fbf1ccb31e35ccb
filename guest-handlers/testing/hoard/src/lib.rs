//! Test-only handler: keeps every batch handle it is given (never drops
//! one), and at each `process` reads the oldest it holds. The host keeps
//! the metrics of only a handler's most recent batches, so once it holds
//! more, that read fails; the outcome is returned as the error text.

use std::rc::Rc;

use wdiamond_sdk::host::describe_error;
use wdiamond_sdk::{export_handler, Batch, Config, Description, Handler, HostBatch};

/// The handler's state: every handle it was given, oldest first.
pub struct Hoard {
    held: Vec<Rc<HostBatch>>,
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

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Hoard { held: Vec::new() })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        let handle = batch.host_handle().ok_or("not a host batch")?;
        self.held.push(handle.clone());
        let cols = self.held[0].columns().map_err(|e| describe_error(&e))?;
        Err(format!(
            "read {} held, oldest has {} lines",
            self.held.len(),
            cols.line_ends.len()
        ))
    }
}

export_handler!(Hoard);

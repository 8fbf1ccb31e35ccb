//! Test-only handler: `process` sleeps `seconds` (a wait in
//! `wasi:io/poll`), so the host must end the call at its deadline and keep
//! the batch, and a stop must not wait for it.

use wdiamond_sdk::{export_handler, option, Batch, Config, ConfigValue, Description, Handler};

/// The handler's state.
pub struct Stall {
    seconds: f64,
}

impl Handler for Stall {
    fn describe() -> Description {
        Description {
            name: "stall".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Test-only: process sleeps.".into(),
            options: vec![option(
                "seconds",
                ConfigValue::Float(86_400.0),
                "how long process sleeps",
            )],
            capabilities: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Stall {
            seconds: config.f64("seconds")?,
        })
    }

    fn process(&mut self, _batch: &Batch) -> Result<(), String> {
        std::thread::sleep(std::time::Duration::from_secs_f64(self.seconds));
        Ok(())
    }
}

export_handler!(Stall);

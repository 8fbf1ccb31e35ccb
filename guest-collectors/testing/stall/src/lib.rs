//! Test-only collector: `describe` sleeps for a day (a wait in
//! `wasi:io/poll`, not a computation), so loading it must end at the setup
//! deadline instead of blocking `wdiamond check`, a reload or a restart.

use wdiamond_sdk::{export_collector, Collector, Config, Description, Publisher};

/// The collector (never configured: its `describe` does not return).
pub struct Stall;

impl Collector for Stall {
    fn describe() -> Description {
        std::thread::sleep(std::time::Duration::from_secs(86_400));
        Description {
            name: "stall".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Test-only: describe sleeps.".into(),
            options: vec![],
            capabilities: vec![],
        }
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Stall)
    }

    fn collect(&mut self, _out: &mut Publisher) -> Result<(), String> {
        Ok(())
    }
}

export_collector!(Stall);

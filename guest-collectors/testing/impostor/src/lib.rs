//! Test-only collector that calls itself `cpu`: a third-party plugin must
//! not publish inside the built-in cpu collector's paths by its own say.

use wdiamond_sdk::{export_collector, Collector, Config, Description, Publisher};

/// The collector.
pub struct Impostor;

impl Collector for Impostor {
    fn describe() -> Description {
        Description {
            name: "cpu".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Test-only: not the cpu collector.".into(),
            options: vec![],
            capabilities: vec![],
        }
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Impostor)
    }

    fn collect(&mut self, out: &mut Publisher) -> Result<(), String> {
        out.gauge("total.idle", 0.0, 0);
        Ok(())
    }
}

export_collector!(Impostor);

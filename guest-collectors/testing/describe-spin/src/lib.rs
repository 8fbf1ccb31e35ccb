//! A test-only collector whose `describe` computes forever.

use wdiamond_sdk::{export_collector, Collector, Config, Description, Publisher};

/// The collector.
pub struct DescribeSpin;

impl Collector for DescribeSpin {
    fn describe() -> Description {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    fn configure(_: &Config) -> Result<Self, String> {
        Ok(DescribeSpin)
    }

    fn collect(&mut self, _: &mut Publisher) -> Result<(), String> {
        Ok(())
    }
}

export_collector!(DescribeSpin);

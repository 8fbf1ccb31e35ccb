//! A test-only collector whose `describe` allocates without bound.

use wdiamond_sdk::{export_collector, Collector, Config, Description, Publisher};

/// The collector.
pub struct DescribeHog;

impl Collector for DescribeHog {
    fn describe() -> Description {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }

    fn configure(_: &Config) -> Result<Self, String> {
        Ok(DescribeHog)
    }

    fn collect(&mut self, _: &mut Publisher) -> Result<(), String> {
        Ok(())
    }
}

export_collector!(DescribeHog);

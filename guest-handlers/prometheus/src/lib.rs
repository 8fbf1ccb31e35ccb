//! The Prometheus scrape endpoint: the latest value of every series,
//! served by the host on the handler's `listen` address as the text
//! exposition format (0.0.4; gzip when asked). Graphite paths become
//! series by `mappings` rules (shared with remote-write: see
//! `wdiamond_sdk::prometheus`); counters are exposed as their count
//! (Diamond's `raw_value`) with `_total`; a series whose value is older
//! than its ttl (Diamond's, or the `ttl` option) leaves the page.

pub mod page;

use wdiamond_sdk::bindings::wdiamond::plugin::host_info;
use wdiamond_sdk::prometheus::Mapper;
use wdiamond_sdk::{
    export_exporter, option, Batch, Config, ConfigValue, Description, Exporter, Handler,
    MetricKind, Page, Scrape,
};

use page::{Store, Update};

/// The handler's state.
pub struct Prometheus {
    store: Store,
    timestamps: bool,
    reported: u64,
}

impl Handler for Prometheus {
    fn describe() -> Description {
        Description {
            name: "prometheus".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Prometheus scrape endpoint: the latest value of each series, served by the agent on `listen` (text format 0.0.4).".into(),
            options: [
                Mapper::options(),
                vec![option("ttl", ConfigValue::Integer(0), "Seconds a value stays on the page; 0: the metric's own (Diamond's ttl: interval x ttl_multiplier)"),
                option("max_series", ConfigValue::Integer(200_000), "Most series on the page; metrics of further series are dropped and counted"),
                option("timestamps", ConfigValue::Boolean(false), "Write each value's collection time on the page (else Prometheus uses the scrape's)"),
            ]].concat(),
            capabilities: Vec::new(),
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        let mapper = Mapper::from_config(config)?;
        let ttl = match config.f64("ttl")? {
            t if t < 0.0 || t > u32::MAX as f64 => return Err("`ttl` is seconds, 0 or more".into()),
            t if t == 0.0 => None,
            t => Some(t as u32),
        };
        let max_series = match config.f64("max_series")? {
            n if (1.0..=10_000_000.0).contains(&n) => n as usize,
            _ => return Err("`max_series` is 1 to 10000000".into()),
        };
        Ok(Prometheus {
            store: Store::new(mapper, ttl, max_series),
            timestamps: config.bool("timestamps")?,
            reported: 0,
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        for m in batch.iter() {
            self.store.update(Update {
                path: m.path,
                host: m.host,
                collector: m.collector,
                value: m.value,
                raw_value: m.raw_value,
                counter: m.kind == MetricKind::Counter,
                timestamp: m.timestamp,
                ttl: m.ttl,
            });
        }
        if self.store.dropped > self.reported {
            wdiamond_sdk::host::warn(&format!(
                "{} metrics not on the page so far (more series than `max_series`, or a name used by a gauge and a counter)",
                self.store.dropped
            ));
            self.reported = self.store.dropped;
        }
        Ok(())
    }
}

impl Exporter for Prometheus {
    fn render(&mut self, _scrape: &Scrape) -> Result<Page, String> {
        self.store.expire(host_info::now() as u64);
        Ok(Page {
            content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
            body: self.store.render(self.timestamps).into_bytes(),
        })
    }
}

export_exporter!(Prometheus);

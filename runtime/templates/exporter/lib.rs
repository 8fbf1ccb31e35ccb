//! {{name}}: a wdiamond exporter. It keeps the latest value of every
//! metric it receives, and the agent serves them as a Prometheus page on
//! the handler's `listen` address: the plugin renders, the agent listens.
//!
//! The page is a pure function ([`page`]), unit-tested natively with
//! `cargo test`; the [`Handler`] and [`Exporter`] impls only keep values
//! and call it.

use std::collections::BTreeMap;

use wdiamond_sdk::prometheus::{escape_label_value, series};
use wdiamond_sdk::{
    export_exporter, option, Batch, Config, ConfigValue, Description, Exporter, Handler, Page,
    Scrape,
};

/// The page of `latest` (metric name -> host -> value): a `# TYPE` line per
/// name, then a line per host, sorted (the text exposition format 0.0.4).
pub fn page(latest: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
    let mut out = String::new();
    for (name, hosts) in latest {
        out.push_str(&format!("# TYPE {name} gauge\n"));
        for (host, value) in hosts {
            let mut h = String::new();
            escape_label_value(host, &mut h);
            out.push_str(&format!("{name}{{host=\"{h}\"}} {value}\n"));
        }
    }
    out
}

/// The exporter's state, built by `configure`.
pub struct Plugin {
    prefix: String,
    latest: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Handler for Plugin {
    fn describe() -> Description {
        Description {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Serves the latest value of every metric as a Prometheus page.".into(),
            options: vec![option(
                "prefix",
                ConfigValue::Text(String::new()),
                "Put before every metric name, e.g. `myapp_`",
            )],
            // Nothing: the agent serves the page on `listen`, which the
            // operator grants (`grants.listen`).
            capabilities: vec![],
        }
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Plugin {
            prefix: config.text("prefix")?,
            latest: BTreeMap::new(),
        })
    }

    fn process(&mut self, batch: &Batch) -> Result<(), String> {
        for m in batch.iter() {
            // `servers.web1.loadavg.01` -> `loadavg_01` (and the host).
            let (name, _labels) = series(m.path, m.host, &[]);
            self.latest
                .entry(format!("{}{name}", self.prefix))
                .or_default()
                .insert(m.host.to_string(), m.value);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
}

impl Exporter for Plugin {
    fn render(&mut self, _scrape: &Scrape) -> Result<Page, String> {
        Ok(Page {
            content_type: "text/plain; version=0.0.4; charset=utf-8".into(),
            body: page(&self.latest).into_bytes(),
        })
    }
}

export_exporter!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_a_type_per_name_and_a_line_per_host() {
        let mut latest = BTreeMap::new();
        latest.insert("loadavg_01".to_string(), BTreeMap::from([("b".to_string(), 0.5), ("a\"".to_string(), 1.0)]));
        assert_eq!(
            page(&latest),
            "# TYPE loadavg_01 gauge\nloadavg_01{host=\"a\\\"\"} 1\nloadavg_01{host=\"b\"} 0.5\n"
        );
    }
}

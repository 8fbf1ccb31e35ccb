//! The `[handlers.NAME]` sections: the plugin settings plus the host's
//! queue, batch, flush, retry and spool keys.

use std::collections::BTreeMap;
use std::path::Path;

use super::reader::{resolve, Doc};
use super::sections::{each_host_key, read_plugin, Layers, HANDLER_KEYS};
use super::{ConfigError, HandlerConfig};

/// Reads one handler from its layers (`[handlers.default]` first).
pub(super) fn read_handler(
    name: &str,
    layers: &Layers<'_>,
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
) -> HandlerConfig {
    let mut host = BTreeMap::new();
    let plugin = read_plugin(
        name,
        &format!("handlers.{name}"),
        layers,
        HANDLER_KEYS,
        config_dir,
        errors,
        &mut host,
    );
    let mut h = HandlerConfig {
        plugin,
        queue_size: 100_000,
        batch_size: 10_000,
        flush_interval: 1.0,
        retry_max: 10.0,
        spool_dir: None,
        spool_max: 256 << 20,
    };
    each_host_key(layers, host, errors, |r, path, k, v| match k {
        "queue_size" => {
            if let Some(n) = r.count(&path, &v) {
                h.queue_size = (n as usize).max(1);
            }
        }
        "batch_size" => {
            if let Some(n) = r.count(&path, &v) {
                h.batch_size = (n as usize).max(1);
            }
        }
        "flush_interval" => {
            if let Some(n) = r.positive(&path, &v) {
                h.flush_interval = n;
            }
        }
        "retry_max" => {
            if let Some(n) = r.positive(&path, &v) {
                h.retry_max = n;
            }
        }
        "spool_dir" => {
            if let Some(d) = r.string(&path, &v) {
                h.spool_dir = Some(resolve(config_dir, &d));
            }
        }
        "spool_max_mb" => {
            if let Some(n) = r.count(&path, &v) {
                if n == 0 {
                    r.err(&path, "must be at least 1");
                }
                h.spool_max = n << 20;
            }
        }
        _ => {}
    });
    h
}

/// A `[handlers.NAME]` section that `[server] handlers` does not name is a
/// mistake (a typo, or a handler the operator meant to enable).
pub(super) fn check_unused_handlers(
    doc: &Doc,
    handlers_t: &toml::Table,
    used: &[String],
    errors: &mut Vec<ConfigError>,
) {
    for key in handlers_t.keys() {
        if key != "default" && !used.contains(key) {
            errors.push(ConfigError {
                location: doc.at(&["handlers", key]),
                key: format!("handlers.{key}"),
                message: format!(
                    "configured but not used: add {key:?} to [server] handlers, or remove the section"
                ),
            });
        }
    }
}

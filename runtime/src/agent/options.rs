//! A plugin's configuration as its `configure` gets it: the one overlay
//! rule, and the host's keys of a collector.

use crate::bindings::types::{ConfigEntry, Description};
use crate::config::{CollectorConfig, ConfigValue};

/// A plugin's configuration as its `configure` gets it, by one rule:
/// its `describe` defaults, overridden by the host's keys, overridden by
/// the operator's options.
pub fn overlay(
    d: &Description,
    host: Vec<(String, ConfigValue)>,
    operator: &[(String, ConfigValue)],
) -> Vec<ConfigEntry> {
    let mut out: Vec<ConfigEntry> = d
        .options
        .iter()
        .map(|o| ConfigEntry {
            key: o.key.clone(),
            value: o.default.clone(),
        })
        .collect();
    for (key, value) in host.into_iter().chain(operator.iter().cloned()) {
        out.retain(|e| e.key != key);
        out.push(ConfigEntry {
            key,
            value: value.into(),
        });
    }
    out
}

/// The host's keys of a collector's configuration: Diamond's `interval`,
/// `path_prefix`, `byte_unit` (`["byte"]` unless the plugin has its own
/// default), `publish_first_rate`, and `path` when set.
pub(super) fn collector_host_keys(
    c: &CollectorConfig,
    d: &Description,
) -> Vec<(String, ConfigValue)> {
    let mut host = vec![
        ("interval".to_string(), ConfigValue::Float(c.interval)),
        (
            "path_prefix".to_string(),
            ConfigValue::Text(c.path_prefix.clone()),
        ),
        (
            "publish_first_rate".to_string(),
            ConfigValue::Boolean(c.publish_first_rate),
        ),
    ];
    match &c.byte_unit {
        Some(units) => host.push(("byte_unit".into(), ConfigValue::TextList(units.clone()))),
        None if !d.options.iter().any(|o| o.key == "byte_unit") => host.push((
            "byte_unit".into(),
            ConfigValue::TextList(vec!["byte".into()]),
        )),
        None => {}
    }
    if let Some(p) = &c.path {
        host.push(("path".into(), ConfigValue::Text(p.clone())));
    }
    host
}

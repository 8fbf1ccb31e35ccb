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
    register_secrets(d, &out);
    out
}

/// The mark that opens a secret option's help (`config-option.help` in
/// the WIT).
pub const SECRET_MARK: &str = "[secret]";

/// A value shorter than this is not redacted (hiding every `pw` of every
/// log line would garble them): a password that short protects nothing.
const MIN_SECRET: usize = 4;

fn register(value: &str) {
    if value.chars().count() >= MIN_SECRET {
        crate::redact::register(value);
    }
}

/// Registers for redaction the values of the options `d` marks secret, so
/// that a password written in plaintext is hidden as one from a secret
/// reference is.
fn register_secrets(d: &Description, entries: &[ConfigEntry]) {
    use crate::bindings::types::ConfigValue as V;
    for o in d.options.iter().filter(|o| o.help.starts_with(SECRET_MARK)) {
        match entries.iter().find(|e| e.key == o.key).map(|e| &e.value) {
            Some(V::Text(s)) => register(s),
            Some(V::TextList(l)) => l.iter().for_each(|s| register(s)),
            _ => {}
        }
    }
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

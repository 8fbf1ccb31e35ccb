//! Typed access to a plugin's merged configuration, with Diamond's rules.

use crate::{ConfigEntry, ConfigValue};

/// The merged configuration handed to `configure`.
#[derive(Clone, Debug)]
pub struct Config {
    entries: Vec<ConfigEntry>,
}

impl Config {
    /// Wraps the entries the host passed.
    pub fn new(entries: Vec<ConfigEntry>) -> Self {
        Config { entries }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// A string value (numbers and booleans are rendered as text).
    pub fn str(&self, key: &str) -> Option<String> {
        Some(match self.get(key)? {
            ConfigValue::Text(s) => s.clone(),
            ConfigValue::Integer(i) => i.to_string(),
            ConfigValue::Float(f) => f.to_string(),
            ConfigValue::Boolean(b) => if *b { "True" } else { "False" }.to_string(),
            ConfigValue::TextList(l) => l.join(","),
        })
    }

    /// Diamond's `str_to_bool`: `true`/`yes`/`1` and `false`/`no`/`0`,
    /// any case; anything else is an error naming the key.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Boolean(b)) => Ok(*b),
            Some(ConfigValue::Integer(i)) if *i == 0 || *i == 1 => Ok(*i == 1),
            Some(ConfigValue::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(true),
                "false" | "no" | "0" => Ok(false),
                _ => Err(format!("`{key}` must be true or false, not {s:?}")),
            },
            Some(other) => Err(format!("`{key}` must be true or false, not {other:?}")),
        }
    }

    /// A number (integers, floats and numeric strings are accepted).
    pub fn f64(&self, key: &str, default: f64) -> Result<f64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(ConfigValue::Integer(i)) => Ok(*i as f64),
            Some(ConfigValue::Float(f)) => Ok(*f),
            Some(ConfigValue::Text(s)) => s
                .trim()
                .parse()
                .map_err(|_| format!("`{key}` must be a number, not {s:?}")),
            Some(other) => Err(format!("`{key}` must be a number, not {other:?}")),
        }
    }

    /// A list of strings. A single string is split on whitespace and commas
    /// (Diamond's configobj lists and its `byte_unit` string rule).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some(ConfigValue::TextList(l)) => l.clone(),
            Some(ConfigValue::Text(s)) => s
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            Some(other) => vec![format!("{other:?}")],
        }
    }
}

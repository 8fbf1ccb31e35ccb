//! Typed access to a plugin's merged configuration, with Diamond's rules.

use crate::bindings::wdiamond::plugin::sockets::Protocol;
use crate::{ConfigEntry, ConfigValue};

/// The merged configuration handed to `configure`: every option of the
/// plugin's `describe` with its default, then the host's keys (a
/// collector's `interval`, `path_prefix`, `byte_unit`, `path`), then the
/// operator's. An option's default is written once, in `describe`: the
/// typed getters take none, and a key that is not there at all (no
/// default declared) is an error naming it.
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

    /// A value that must be there.
    fn required(&self, key: &str) -> Result<&ConfigValue, String> {
        self.get(key).ok_or_else(|| {
            format!("`{key}` is not set, and the plugin's describe gives it no default")
        })
    }

    /// A string value that must be there (see [`Config::str`]).
    pub fn text(&self, key: &str) -> Result<String, String> {
        self.required(key)?;
        Ok(self.str(key).unwrap_or_default())
    }

    /// A string value, if set (numbers and booleans are rendered as text).
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
    pub fn bool(&self, key: &str) -> Result<bool, String> {
        match self.required(key)? {
            ConfigValue::Boolean(b) => Ok(*b),
            ConfigValue::Integer(i) if *i == 0 || *i == 1 => Ok(*i == 1),
            ConfigValue::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(true),
                "false" | "no" | "0" => Ok(false),
                _ => Err(format!("`{key}` must be true or false, not {s:?}")),
            },
            other => Err(format!("`{key}` must be true or false, not {other:?}")),
        }
    }

    /// A number (integers, floats and numeric strings are accepted).
    pub fn f64(&self, key: &str) -> Result<f64, String> {
        match self.required(key)? {
            ConfigValue::Integer(i) => Ok(*i as f64),
            ConfigValue::Float(f) => Ok(*f),
            ConfigValue::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("`{key}` must be a number, not {s:?}")),
            other => Err(format!("`{key}` must be a number, not {other:?}")),
        }
    }

    /// A TCP or UDP port: a whole number from 1 to 65535 (an error naming
    /// the key otherwise, never a port cut to 16 bits).
    pub fn port(&self, key: &str) -> Result<u16, String> {
        let p = self.f64(key)?;
        if p.fract() != 0.0 || !(1.0..=65535.0).contains(&p) {
            return Err(format!("`{key}` must be a port from 1 to 65535, not {p}"));
        }
        Ok(p as u16)
    }

    /// `tcp` or `udp` (any case).
    pub fn protocol(&self, key: &str) -> Result<Protocol, String> {
        let s = self.text(key)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("`{key}` must be tcp or udp, not {s:?}")),
        }
    }

    /// A timeout given in seconds, as milliseconds: more than 0 and at most
    /// 24 hours (the host caps what it waits anyway).
    pub fn timeout_ms(&self, key: &str) -> Result<u32, String> {
        let t = self.f64(key)?;
        if !(t > 0.0 && t <= 86_400.0) {
            return Err(format!(
                "`{key}` must be a number of seconds above 0 and at most 86400, not {t}"
            ));
        }
        Ok(((t * 1000.0).round() as u32).max(1))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, ConfigValue)]) -> Config {
        Config::new(
            entries
                .iter()
                .map(|(k, v)| ConfigEntry {
                    key: k.to_string(),
                    value: v.clone(),
                })
                .collect(),
        )
    }

    #[test]
    fn ports_are_checked_not_truncated() {
        let c = config(&[
            ("port", ConfigValue::Integer(70000)),
            ("ok", ConfigValue::Text("2003".into())),
            ("half", ConfigValue::Float(20.5)),
        ]);
        assert_eq!(
            c.port("port").unwrap_err(),
            "`port` must be a port from 1 to 65535, not 70000"
        );
        assert_eq!(c.port("ok"), Ok(2003));
        assert!(c.port("half").is_err());
        assert_eq!(
            c.port("missing").unwrap_err(),
            "`missing` is not set, and the plugin's describe gives it no default"
        );
    }

    #[test]
    fn protocols_and_timeouts() {
        let c = config(&[
            ("proto", ConfigValue::Text("UDP".into())),
            ("bad", ConfigValue::Text("sctp".into())),
            ("t", ConfigValue::Float(0.25)),
            ("zero", ConfigValue::Integer(0)),
        ]);
        assert_eq!(c.protocol("proto"), Ok(Protocol::Udp));
        assert!(c.protocol("bad").unwrap_err().contains("`bad`"));
        assert!(c.protocol("missing").unwrap_err().contains("`missing`"));
        assert_eq!(c.timeout_ms("t"), Ok(250));
        assert!(c.timeout_ms("zero").is_err());
        assert!(c.timeout_ms("missing").is_err());
    }
}

//! Typed access to a plugin's merged configuration, with Diamond's rules.

use crate::bindings::wdiamond::plugin::sockets::Protocol;
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

    /// A TCP or UDP port: a whole number from 1 to 65535 (an error naming
    /// the key otherwise, never a port cut to 16 bits).
    pub fn port(&self, key: &str, default: u16) -> Result<u16, String> {
        let p = self.f64(key, f64::from(default))?;
        if p.fract() != 0.0 || !(1.0..=65535.0).contains(&p) {
            return Err(format!("`{key}` must be a port from 1 to 65535, not {p}"));
        }
        Ok(p as u16)
    }

    /// `tcp` or `udp` (any case).
    pub fn protocol(&self, key: &str, default: Protocol) -> Result<Protocol, String> {
        match self.str(key) {
            None => Ok(default),
            Some(s) => match s.trim().to_ascii_lowercase().as_str() {
                "tcp" => Ok(Protocol::Tcp),
                "udp" => Ok(Protocol::Udp),
                _ => Err(format!("`{key}` must be tcp or udp, not {s:?}")),
            },
        }
    }

    /// A timeout given in seconds, as milliseconds: more than 0 and at most
    /// 24 hours (the host caps what it waits anyway).
    pub fn timeout_ms(&self, key: &str, default_secs: f64) -> Result<u32, String> {
        let t = self.f64(key, default_secs)?;
        if !(t > 0.0 && t <= 86_400.0) {
            return Err(format!("`{key}` must be a number of seconds above 0 and at most 86400, not {t}"));
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
            c.port("port", 1).unwrap_err(),
            "`port` must be a port from 1 to 65535, not 70000"
        );
        assert_eq!(c.port("ok", 1), Ok(2003));
        assert!(c.port("half", 1).is_err());
        assert_eq!(c.port("missing", 8125), Ok(8125));
    }

    #[test]
    fn protocols_and_timeouts() {
        let c = config(&[
            ("proto", ConfigValue::Text("UDP".into())),
            ("bad", ConfigValue::Text("sctp".into())),
            ("t", ConfigValue::Float(0.25)),
            ("zero", ConfigValue::Integer(0)),
        ]);
        assert_eq!(c.protocol("proto", Protocol::Tcp), Ok(Protocol::Udp));
        assert!(c.protocol("bad", Protocol::Tcp).unwrap_err().contains("`bad`"));
        assert_eq!(c.protocol("missing", Protocol::Tcp), Ok(Protocol::Tcp));
        assert_eq!(c.timeout_ms("t", 1.0), Ok(250));
        assert!(c.timeout_ms("zero", 1.0).is_err());
        assert_eq!(c.timeout_ms("missing", 15.0), Ok(15_000));
    }
}

//! A span-aware TOML reader: typed getters that record an error with the
//! file, line, column and key instead of stopping at the first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use toml::Value;

use super::ConfigValue;
use super::{ConfigError, Location, MetricFilter};

/// A parsed TOML file with the position of every key.
pub(super) struct Doc {
    pub(super) file: PathBuf,
    pub(super) text: String,
    pub(super) root: toml::Table,
    pub(super) spans: HashMap<Vec<String>, usize>,
}

impl Doc {
    pub(super) fn parse(file: &Path, text: String, errors: &mut Vec<ConfigError>) -> Option<Doc> {
        let root: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let e: toml::de::Error = e;
                let offset = e.span().map(|s| s.start).unwrap_or(0);
                let location = locate(file, &text, offset);
                errors.push(ConfigError {
                    location,
                    key: String::new(),
                    message: format!("invalid TOML: {}", e.message()),
                });
                return None;
            }
        };
        let mut spans = HashMap::new();
        if let Ok(de) = toml::de::DeTable::parse(&text) {
            collect_spans(de.get_ref(), &mut Vec::new(), &mut spans);
        }
        let mut doc = Doc {
            file: file.to_path_buf(),
            text,
            root,
            spans,
        };
        let mut root = std::mem::take(&mut doc.root);
        let env = |name: &str| std::env::var(name).ok();
        super::secrets::resolve(&mut root, &doc.file, &|p| doc.at(p), &env, errors);
        doc.root = root;
        Some(doc)
    }

    pub(super) fn at(&self, path: &[&str]) -> Location {
        let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let offset = self.spans.get(&key).copied();
        match offset {
            Some(o) => locate(&self.file, &self.text, o),
            None => Location {
                file: self.file.clone(),
                line: 0,
                column: 0,
            },
        }
    }
}

pub(super) fn collect_spans(
    t: &toml::de::DeTable<'_>,
    prefix: &mut Vec<String>,
    out: &mut HashMap<Vec<String>, usize>,
) {
    for (k, v) in t.iter() {
        prefix.push(k.get_ref().to_string());
        out.insert(prefix.clone(), k.span().start);
        if let toml::de::DeValue::Table(inner) = v.get_ref() {
            collect_spans(inner, prefix, out);
        }
        prefix.pop();
    }
}

pub(super) fn locate(file: &Path, text: &str, offset: usize) -> Location {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    Location {
        file: file.to_path_buf(),
        line,
        column,
    }
}

/// Collects errors while reading one table.
pub(super) struct Reader<'a> {
    pub(super) doc: &'a Doc,
    pub(super) errors: &'a mut Vec<ConfigError>,
}

impl Reader<'_> {
    pub(super) fn err(&mut self, path: &[&str], message: impl Into<String>) {
        let location = self.doc.at(path);
        self.errors.push(ConfigError {
            location,
            key: path.join("."),
            message: message.into(),
        });
    }

    pub(super) fn string(&mut self, path: &[&str], v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.err(
                    path,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, path: &[&str], v: &Value) -> Option<bool> {
        match v {
            Value::Boolean(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => {
                    self.err(path, format!("expected true or false, found {s:?}"));
                    None
                }
            },
            other => {
                self.err(
                    path,
                    format!("expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn number(&mut self, path: &[&str], v: &Value) -> Option<f64> {
        match v {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) => Some(f),
                Err(_) => {
                    self.err(path, format!("expected a number, found {s:?}"));
                    None
                }
            },
            other => {
                self.err(
                    path,
                    format!("expected a number, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn positive(&mut self, path: &[&str], v: &Value) -> Option<f64> {
        let n = self.number(path, v)?;
        if n > 0.0 && n.is_finite() {
            Some(n)
        } else {
            self.err(path, format!("must be greater than 0, found {n}"));
            None
        }
    }

    pub(super) fn count(&mut self, path: &[&str], v: &Value) -> Option<u64> {
        let n = self.number(path, v)?;
        if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 {
            Some(n as u64)
        } else {
            self.err(path, format!("must be a whole number >= 0, found {n}"));
            None
        }
    }

    pub(super) fn strings(&mut self, path: &[&str], v: &Value) -> Option<Vec<String>> {
        match v {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, item) in a.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            self.err(
                                path,
                                format!("item {i}: expected a string, found {}", other.type_str()),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.err(
                    path,
                    format!("expected a list of strings, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn regex(&mut self, path: &[&str], v: &Value) -> Option<Option<MetricFilter>> {
        let s = self.string(path, v)?;
        if s.is_empty() {
            return Some(None);
        }
        match Regex::new(&s) {
            Ok(r) => Some(Some(MetricFilter(r))),
            Err(e) => {
                self.err(path, format!("invalid regular expression: {e}"));
                None
            }
        }
    }

    pub(super) fn table<'v>(&mut self, path: &[&str], v: &'v Value) -> Option<&'v toml::Table> {
        match v {
            Value::Table(t) => Some(t),
            other => {
                self.err(
                    path,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn unknown(&mut self, path: &[&str], known: &[&str]) {
        let mut list = known.to_vec();
        list.sort_unstable();
        self.err(
            path,
            format!("unknown key (known keys here: {})", list.join(", ")),
        );
    }
}

/// Converts a plugin option to the WIT value type.
pub(super) fn option_value(r: &mut Reader<'_>, path: &[&str], v: &Value) -> Option<ConfigValue> {
    Some(match v {
        Value::String(s) => ConfigValue::Text(s.clone()),
        Value::Integer(i) => ConfigValue::Integer(*i),
        Value::Float(f) => ConfigValue::Float(*f),
        Value::Boolean(b) => ConfigValue::Boolean(*b),
        Value::Array(_) => ConfigValue::TextList(r.strings(path, v)?),
        // A table (Diamond's configobj sub-section, `[collectors.portstat.port.web]`)
        // reaches the plugin as its JSON text.
        Value::Table(t) => match serde_json::to_string(t) {
            Ok(json) => ConfigValue::Text(json),
            Err(e) => {
                r.err(
                    path,
                    format!("this table cannot be given to the plugin: {e}"),
                );
                return None;
            }
        },
        other => {
            r.err(path, format!("plugin options must be strings, numbers, booleans, lists of strings or tables, found {}", other.type_str()));
            return None;
        }
    })
}

/// A path of the config, relative to the config file's directory unless
/// absolute.
pub(super) fn resolve(config_dir: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        config_dir.join(p)
    }
}

pub(super) fn read_file(path: &Path, errors: &mut Vec<ConfigError>) -> Option<Doc> {
    match std::fs::read_to_string(path) {
        Ok(text) => Doc::parse(path, text, errors),
        Err(e) => {
            errors.push(ConfigError {
                location: Location {
                    file: path.to_path_buf(),
                    line: 0,
                    column: 0,
                },
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            });
            None
        }
    }
}

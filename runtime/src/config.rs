//! The TOML configuration: Diamond's concepts, strict, every error at once.
//!
//! ```toml
//! [server]
//! handlers = ["archive"]
//! collectors_config_path = "collectors"   # optional: one NAME.toml per collector
//! plugin_cache_dir = "/var/cache/wdiamond"
//!
//! [handlers.archive]
//! log_file = "/var/log/wdiamond/archive.log"
//!
//! [collectors.default]
//! interval = 10
//!
//! [collectors.cpu]
//! percore = false
//!
//! [collectors.db2]            # a second instance, under its own name
//! component = "/opt/plugins/mysql.wasm"
//! [collectors.db2.grants]
//! connect = ["tcp:db2.internal:3306"]
//! ```
//!
//! Loading never stops at the first mistake: every error found is returned,
//! each with its file, line, column and dotted key, and `wdiamond` exits 78
//! (`EX_CONFIG`). Keys a plugin defines are checked once its `describe` is
//! known (see [`crate::agent::load`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use toml::Value;

use crate::bindings::types::ConfigValue;
use crate::grants::{self, Grants};
use crate::hostname::HostnameMethod;

mod error;
mod model;
mod reader;
mod sections;
#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigErrors, Location};
pub use model::*;
use reader::*;
use sections::*;

fn default_cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache").into_os_string()))
    {
        Some(base) => PathBuf::from(base).join("wdiamond"),
        None => std::env::temp_dir().join("wdiamond-cache"),
    }
}

/// Loads and validates `path` (and the files of `collectors_config_path`).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let Some(doc) = read_file(path, &mut errors) else {
        return Err(ConfigErrors(errors));
    };
    let config_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolve = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            config_dir.join(p)
        }
    };

    // Top level and [server].
    let mut server = ServerConfig {
        handlers: vec!["archive".into()],
        collectors_config_path: None,
        plugin_cache_dir: default_cache_dir(),
        host_root: None,
        health_path: String::new(),
        health_interval: 10.0,
    };
    let mut tenants = Vec::new();
    let empty = toml::Table::new();
    let mut collectors_t = &empty;
    let mut handlers_t = &empty;
    {
        let mut r = Reader {
            doc: &doc,
            errors: &mut errors,
        };
        for (key, value) in doc.root.iter() {
            match key.as_str() {
                "server" => {
                    let Some(t) = r.table(&["server"], value) else {
                        continue;
                    };
                    for (k, v) in t {
                        let p = ["server", k.as_str()];
                        match k.as_str() {
                            "handlers" => {
                                if let Some(h) = r.strings(&p, v) {
                                    server.handlers = h;
                                }
                            }
                            "collectors_config_path" => {
                                server.collectors_config_path = r.string(&p, v).map(|s| resolve(&s))
                            }
                            "plugin_cache_dir" => {
                                if let Some(s) = r.string(&p, v) {
                                    server.plugin_cache_dir = resolve(&s);
                                }
                            }
                            "host_root" => server.host_root = r.string(&p, v).map(|s| resolve(&s)),
                            "health_path" => {
                                if let Some(h) = r.string(&p, v) {
                                    if !h.is_empty() && crate::metric::check_name(&h).is_err() {
                                        r.err(&p, format!("{h:?} is not a valid metric path"));
                                    }
                                    server.health_path = h;
                                }
                            }
                            "health_interval" => {
                                if let Some(n) = r.positive(&p, v) {
                                    server.health_interval = n;
                                }
                            }
                            _ => r.unknown(&p, SERVER_KEYS),
                        }
                    }
                }
                "collectors" => {
                    if let Some(t) = r.table(&["collectors"], value) {
                        collectors_t = t;
                    }
                }
                "handlers" => {
                    if let Some(t) = r.table(&["handlers"], value) {
                        handlers_t = t;
                    }
                }
                "tenants" => {
                    if let Some(t) = r.table(&["tenants"], value) {
                        for (name, tv) in t {
                            if let Some(tt) = r.table(&["tenants", name], tv) {
                                tenants.push(read_tenant(&mut r, name, tt));
                            }
                        }
                    }
                }
                _ => r.unknown(&[key], &["server", "collectors", "handlers", "tenants"]),
            }
        }
    }

    // Per-collector files.
    let mut extra_docs: Vec<(String, Doc)> = Vec::new();
    if let Some(dir) = &server.collectors_config_path {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                    .collect();
                files.sort();
                for f in files {
                    let name = f
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    if let Some(d) = read_file(&f, &mut errors) {
                        extra_docs.push((name, d));
                    }
                }
            }
            Err(e) => errors.push(ConfigError {
                location: doc.at(&["server", "collectors_config_path"]),
                key: "server.collectors_config_path".into(),
                message: format!("cannot read the directory {}: {e}", dir.display()),
            }),
        }
    }

    // Collectors.
    let default_t = match collectors_t.get("default") {
        Some(Value::Table(t)) => Some(t),
        Some(other) => {
            Reader {
                doc: &doc,
                errors: &mut errors,
            }
            .err(
                &["collectors", "default"],
                format!("expected a table, found {}", other.type_str()),
            );
            None
        }
        None => None,
    };
    let mut default_layers: Layers<'_> = Vec::new();
    if let Some(t) = default_t {
        default_layers.push((&doc, vec!["collectors".into(), "default".into()], t));
    }
    let mut names: Vec<String> = collectors_t
        .keys()
        .filter(|k| *k != "default")
        .cloned()
        .collect();
    for (n, _) in &extra_docs {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut collectors = Vec::new();
    for name in names {
        let mut layers: Layers<'_> = Vec::new();
        if let Some(t) = default_t {
            layers.push((&doc, vec!["collectors".into(), "default".into()], t));
        }
        match collectors_t.get(&name) {
            Some(Value::Table(t)) => {
                layers.push((&doc, vec!["collectors".into(), name.clone()], t))
            }
            Some(other) => {
                Reader {
                    doc: &doc,
                    errors: &mut errors,
                }
                .err(
                    &["collectors", &name],
                    format!("expected a table, found {}", other.type_str()),
                );
                continue;
            }
            None => {}
        }
        for (n, d) in &extra_docs {
            if *n == name {
                layers.push((d, Vec::new(), &d.root));
            }
        }
        if let Some(c) = read_collector(&name, &layers, &config_dir, &mut errors) {
            collectors.push(c);
        }
    }

    // Handlers.
    let hdefault = match handlers_t.get("default") {
        Some(Value::Table(t)) => Some(t),
        _ => None,
    };
    for key in handlers_t.keys() {
        if key != "default" && !server.handlers.contains(key) {
            let at = doc.at(&["handlers", key]);
            errors.push(ConfigError {
                location: at,
                key: format!("handlers.{key}"),
                message: format!("configured but not used: add {key:?} to [server] handlers, or remove the section"),
            });
        }
    }
    let mut handlers = Vec::new();
    for name in &server.handlers {
        let mut layers: Layers<'_> = Vec::new();
        if let Some(t) = hdefault {
            layers.push((&doc, vec!["handlers".into(), "default".into()], t));
        }
        match handlers_t.get(name) {
            Some(Value::Table(t)) => layers.push((&doc, vec!["handlers".into(), name.clone()], t)),
            Some(other) => {
                Reader {
                    doc: &doc,
                    errors: &mut errors,
                }
                .err(
                    &["handlers", name],
                    format!("expected a table, found {}", other.type_str()),
                );
                continue;
            }
            None => {}
        }
        let mut host = BTreeMap::new();
        let plugin = read_plugin(
            name,
            &format!("handlers.{name}"),
            &layers,
            HANDLER_KEYS,
            &config_dir,
            &mut errors,
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
        for (k, (layer, v)) in host {
            let (d, prefix, _) = &layers[layer];
            let mut path: Vec<&str> = prefix.iter().map(String::as_str).collect();
            path.push(&k);
            let mut r = Reader {
                doc: d,
                errors: &mut errors,
            };
            match k.as_str() {
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
                        let p = PathBuf::from(&d);
                        h.spool_dir = Some(if p.is_absolute() {
                            p
                        } else {
                            config_dir.join(p)
                        });
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
            }
        }
        handlers.push(h);
    }

    // Tenants: references, and the quotas that can be checked now.
    for c in &collectors {
        let Some(t) = &c.tenant else { continue };
        if !tenants.iter().any(|x| x.name == *t) {
            let names: Vec<&str> = tenants.iter().map(|t| t.name.as_str()).collect();
            errors.push(ConfigError {
                location: c.plugin.location.clone(),
                key: format!("{}.tenant", c.plugin.section),
                message: format!(
                    "no tenant {t:?} (defined: {}); add a [tenants.{t}] section",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        }
    }
    for t in &tenants {
        let members: Vec<&CollectorConfig> = collectors
            .iter()
            .filter(|c| c.enabled && c.tenant.as_deref() == Some(&t.name))
            .collect();
        if let Some(max) = t.max_collectors {
            if members.len() as u64 > max {
                errors.push(ConfigError {
                    location: t.location.clone(),
                    key: format!("tenants.{}.max_collectors", t.name),
                    message: format!("the tenant has {} enabled collectors ({}), more than its max_collectors = {max}", members.len(), members.iter().map(|c| c.plugin.name.as_str()).collect::<Vec<_>>().join(", ")),
                });
            }
        }
        if let Some(max) = t.max_memory {
            let sum: usize = members.iter().map(|c| c.plugin.limits.memory).sum();
            if sum > max {
                errors.push(ConfigError {
                    location: t.location.clone(),
                    key: format!("tenants.{}.max_memory_mb", t.name),
                    message: format!("its collectors' memory caps add up to {} MiB, more than max_memory_mb = {}; lower their [limits] memory_mb", sum >> 20, max >> 20),
                });
            }
        }
    }
    let defaults = read_collector("wdiamond", &default_layers, &config_dir, &mut errors);
    // [collectors.default] is read once per collector: report its errors once.
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.to_string()));

    if errors.is_empty() {
        Ok(Config {
            source: path.to_path_buf(),
            server,
            collectors,
            handlers,
            tenants,
            defaults: defaults.expect("no errors"),
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

impl CollectorConfig {
    /// Its metric paths, with the resolved host name and the plugin's
    /// default path.
    pub fn paths(&self, hostname: Option<&str>, default_path: &str) -> crate::metric::PathBuilder {
        crate::metric::PathBuilder::new(
            &self.path_prefix,
            &self.path_suffix,
            self.path.as_deref(),
            &self.instance_prefix,
            hostname,
            default_path,
        )
    }

    /// Its whitelist and blacklist.
    pub fn filter(&self) -> crate::metric::Filter {
        crate::metric::Filter::new(
            self.whitelist.as_ref().map(|f| &f.0),
            self.blacklist.as_ref().map(|f| &f.0),
        )
    }
}

/// The text of a config value, for `{key}` substitution in capabilities.
pub fn value_text(v: &ConfigValue) -> String {
    match v {
        ConfigValue::Text(s) => s.clone(),
        ConfigValue::Integer(i) => i.to_string(),
        ConfigValue::Float(f) => f.to_string(),
        ConfigValue::Boolean(b) => b.to_string(),
        ConfigValue::TextList(l) => l.join(","),
    }
}

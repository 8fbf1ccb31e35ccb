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

use std::path::{Path, PathBuf};

use toml::Value;

pub use value::ConfigValue;

mod error;
mod handler;
mod model;
pub mod oci_reference;
mod plugin_keys;
mod reader;
mod registries;
mod secrets;
mod sections;
mod server;
mod tenant;
#[cfg(test)]
mod tests;
mod value;

pub use error::{ConfigError, ConfigErrors, Location};
use handler::{active_handlers, bind_tenant_handlers, check_unused_handlers, read_handler};
pub use model::*;
use reader::{read_file, Doc, Reader};
pub use registries::{OciConfig, Pull, RegistryConfig};
use sections::{read_collector, Layers};
use server::{read_collector_files, read_server};
use tenant::{check_tenants, read_tenant};

/// Where compiled components are kept unless `plugin_cache_dir` says:
/// `$XDG_CACHE_HOME/wdiamond` (or `~/.cache/wdiamond`).
pub fn default_cache_dir() -> PathBuf {
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

    // Top level and [server].
    let mut server = ServerConfig {
        handlers: vec!["archive".into()],
        collectors_config_path: None,
        plugin_cache_dir: default_cache_dir(),
        host_root: None,
        health_path: String::new(),
        health_interval: 10.0,
        status_listen: None,
        oci: OciConfig::default(),
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
                    if let Some(t) = r.table(&["server"], value) {
                        read_server(&mut r, t, &config_dir, &mut server);
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

    // Collectors: [collectors.default] < [collectors.NAME] < NAME.toml.
    let extra_docs = match &server.collectors_config_path {
        Some(dir) => read_collector_files(dir, &doc, &mut errors),
        None => Vec::new(),
    };
    let default_t = section(&doc, &mut errors, &["collectors", "default"], collectors_t);
    let default_layers: Layers<'_> = default_t
        .map(|t| (&doc, vec!["collectors".into(), "default".into()], t))
        .into_iter()
        .collect();
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
    let collectors = read_collectors(
        &doc,
        collectors_t,
        names,
        &extra_docs,
        &default_layers,
        &config_dir,
        &mut errors,
    );

    // Handlers: [handlers.default] < [handlers.NAME], for those [server] uses.
    let active = active_handlers(&server.handlers, &tenants, handlers_t);
    check_unused_handlers(&doc, handlers_t, &active, &mut errors);
    let named = Named {
        server: &server.handlers,
        tenants: &tenants,
    };
    let mut handlers = read_handlers(&doc, handlers_t, &active, named, &config_dir, &mut errors);

    check_tenants(&collectors, &tenants, &mut errors);
    bind_tenant_handlers(&mut handlers, &server.handlers, &tenants, &mut errors);
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

/// Every collector, each from its layers: `[collectors.default]`, then
/// `[collectors.NAME]`, then `NAME.toml` of `collectors_config_path`.
fn read_collectors<'a>(
    doc: &'a Doc,
    collectors_t: &'a toml::Table,
    names: Vec<String>,
    extra_docs: &'a [(String, Doc)],
    default_layers: &Layers<'a>,
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<CollectorConfig> {
    let mut collectors = Vec::new();
    for name in names {
        let mut layers = default_layers.clone();
        if collectors_t.contains_key(&name) {
            let Some(t) = section(doc, errors, &["collectors", &name], collectors_t) else {
                continue;
            };
            layers.push((doc, vec!["collectors".into(), name.clone()], t));
        }
        for (n, d) in extra_docs {
            if *n == name {
                layers.push((d, Vec::new(), &d.root));
            }
        }
        if let Some(c) = read_collector(&name, &layers, config_dir, errors) {
            collectors.push(c);
        }
    }
    collectors
}

/// Where handlers are named: `[server] handlers` and each tenant's.
#[derive(Clone, Copy)]
struct Named<'a> {
    server: &'a [String],
    tenants: &'a [TenantConfig],
}

impl Named<'_> {
    /// The line that names handler `name`.
    fn at(&self, doc: &Doc, name: &str) -> Location {
        if self.server.iter().any(|h| h == name) {
            return doc.at(&["server", "handlers"]);
        }
        match self
            .tenants
            .iter()
            .find(|t| t.handlers.iter().any(|h| h == name))
        {
            Some(t) => doc.at(&["tenants", &t.name, "handlers"]),
            None => doc.at(&["handlers"]),
        }
    }
}

/// The handlers `active` names, each from `[handlers.default]` and
/// `[handlers.NAME]`; one with no section of its own is located where it
/// is named (its component is its name).
fn read_handlers(
    doc: &Doc,
    handlers_t: &toml::Table,
    active: &[String],
    named: Named<'_>,
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<HandlerConfig> {
    let handler_default: Layers<'_> = match handlers_t.get("default") {
        Some(Value::Table(t)) => vec![(doc, vec!["handlers".into(), "default".into()], t)],
        _ => Vec::new(),
    };
    let mut handlers = Vec::new();
    for name in active {
        let mut layers = handler_default.clone();
        if handlers_t.contains_key(name) {
            let Some(t) = section(doc, errors, &["handlers", name], handlers_t) else {
                continue;
            };
            layers.push((doc, vec!["handlers".into(), name.clone()], t));
        }
        let mut h = read_handler(name, &layers, config_dir, errors);
        if !handlers_t.contains_key(name) {
            h.plugin.location = named.at(doc, name);
        }
        handlers.push(h);
    }
    handlers
}

/// The table at `path` (`[collectors.NAME]`, …) of `parent`, if it is one;
/// anything else there is an error.
fn section<'d>(
    doc: &Doc,
    errors: &mut Vec<ConfigError>,
    path: &[&str],
    parent: &'d toml::Table,
) -> Option<&'d toml::Table> {
    match parent.get(*path.last()?) {
        Some(Value::Table(t)) => Some(t),
        Some(other) => {
            Reader { doc, errors }.err(
                path,
                format!("expected a table, found {}", other.type_str()),
            );
            None
        }
        None => None,
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

//! The known keys of each section and the readers of the plugin, grants,
//! limits, tenant and collector sections (with `[…default]` layering).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Value;

use super::plugin_keys::{component_ref, read_tls_key};
use super::reader::{option_value, resolve, Doc, Reader};
use super::ConfigValue;
use super::{
    CollectorConfig, ComponentRef, ConfigError, Instancing, Limits, PluginConfig, TlsConfig,
};
use crate::grants::Grants;
use crate::hostname::HostnameMethod;

pub(super) const SERVER_KEYS: &[&str] = &[
    "handlers",
    "collectors_config_path",
    "plugin_cache_dir",
    "host_root",
    "health_path",
    "health_interval",
    "status_listen",
    "trusted_keys",
    "allow_unsigned",
    "pull",
    "registries",
];
pub(super) const TENANT_KEYS: &[&str] = &[
    "prefix",
    "max_collectors",
    "max_memory_mb",
    "max_metrics_per_interval",
    "max_fuel_per_interval",
    "interval",
    "handlers",
    "max_queue_mb",
    "max_spool_mb",
];
/// Keys of every plugin section, collector or handler, read by
/// [`read_plugin`] itself.
const PLUGIN_KEYS: &[&str] = &["component", "sha256", "grants", "limits"];
/// The TLS keys of every plugin section (`tls` first).
const TLS_KEYS: &[&str] = &[
    "tls",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "tls_server_name",
    "insecure_skip_verify",
];
/// A collector's own keys (besides [`PLUGIN_KEYS`] and [`TLS_KEYS`]).
pub(super) const COLLECTOR_KEYS: &[&str] = &[
    "enabled",
    "interval",
    "path",
    "path_prefix",
    "path_suffix",
    "instance_prefix",
    "hostname",
    "hostname_method",
    "metrics_whitelist",
    "metrics_blacklist",
    "byte_unit",
    "measure_collector_time",
    "publish_first_rate",
    "python_path",
    "ttl_multiplier",
    "tenant",
    "instance",
];
/// A handler's own keys (besides [`PLUGIN_KEYS`] and [`TLS_KEYS`]).
pub(super) const HANDLER_KEYS: &[&str] = &[
    "queue_size",
    "batch_size",
    "batch_timeout",
    "flush_interval",
    "retry_max",
    "spool_dir",
    "spool_max_mb",
    "spool_sync",
    "tenant",
    "tenants",
    "listen",
    "listen_path",
];
pub(super) const GRANT_KEYS: &[&str] = &[
    "files",
    "statvfs",
    "commands",
    "connect",
    "directories",
    "run_as",
    "listen",
];
pub(super) const LIMIT_KEYS: &[&str] = &[
    "timeout",
    "fuel",
    "memory_mb",
    "max_metrics",
    "max_read_bytes",
    "command_timeout",
    "socket_timeout",
    "disk_mb",
    "disk_files",
];

/// Sections merged in order, later wins: (doc, path to the table).
pub(super) type Layers<'a> = Vec<(&'a Doc, Vec<String>, &'a toml::Table)>;

/// Reads the keys common to collectors and handlers from merged layers.
/// Returns the plugin settings; `host_values` receives the world's own
/// keys (`host_keys`) for the caller (last layer wins).
pub(super) fn read_plugin(
    name: &str,
    section: &str,
    layers: &Layers<'_>,
    host_keys: &[&str],
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
    host_values: &mut BTreeMap<String, (usize, Value)>,
) -> PluginConfig {
    let mut component = ComponentRef::Builtin(name.to_string());
    let mut sha256 = None;
    let mut grants = Grants::for_section(section);
    let mut limits = Limits::default();
    let mut options = Vec::new();
    let mut option_locations = HashMap::new();
    let mut location = None;
    let mut tls = TlsConfig::default();
    let mut tls_on = None;
    for (layer_idx, (doc, prefix, table)) in layers.iter().enumerate() {
        let mut r = Reader { doc, errors };
        let pre: Vec<&str> = prefix.iter().map(String::as_str).collect();
        if location.is_none() || layer_idx == layers.len() - 1 {
            location = Some(doc.at(&pre));
        }
        for (key, value) in table.iter() {
            let mut path = pre.clone();
            path.push(key);
            let is_default = prefix.last().map(String::as_str) == Some("default");
            match key.as_str() {
                "component" if !is_default => {
                    if let Some(s) = r.string(&path, value) {
                        option_locations.insert(key.clone(), doc.at(&path));
                        component = component_ref(&mut r, &path, s, section, config_dir);
                    }
                }
                "sha256" if !is_default => {
                    if let Some(s) = r.string(&path, value) {
                        let s = s.to_ascii_lowercase();
                        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                            sha256 = Some(s);
                            option_locations.insert(key.clone(), doc.at(&path));
                        } else {
                            r.err(&path, "`sha256` is the file's SHA-256 in 64 hex digits (`wdiamond inspect FILE` prints the line)".to_string());
                        }
                    }
                }
                "grants" => {
                    if let Some(t) = r.table(&path, value) {
                        read_grants(&mut r, &path, t, &mut grants);
                    }
                }
                k if TLS_KEYS.contains(&k) => {
                    if read_tls_key(&mut r, &path, key, value, config_dir, &mut tls, &mut tls_on) {
                        option_locations.insert(key.clone(), doc.at(&path));
                    }
                }
                "limits" => {
                    if let Some(t) = r.table(&path, value) {
                        read_limits(&mut r, &path, t, &mut limits);
                    }
                }
                k if host_keys.contains(&k) => {
                    host_values.insert(k.to_string(), (layer_idx, value.clone()));
                }
                _ if is_default => {
                    let known: Vec<&str> = [host_keys, PLUGIN_KEYS, TLS_KEYS].concat();
                    r.unknown(&path, &known);
                }
                _ => {
                    if let Some(v) = option_value(&mut r, &path, value) {
                        options.retain(|(k, _): &(String, ConfigValue)| k != key);
                        options.push((key.clone(), v));
                        option_locations.insert(key.clone(), doc.at(&path));
                    }
                }
            }
        }
    }
    let location = location.unwrap_or_default();
    let at = |key: &str| {
        option_locations
            .get(key)
            .cloned()
            .unwrap_or_else(|| location.clone())
    };
    if sha256.is_some() && matches!(component, ComponentRef::Builtin(_)) {
        errors.push(ConfigError {
            location: at("sha256"),
            key: format!("{section}.sha256"),
            message: "`sha256` pins a `component` file; this section uses a built-in component, which the binary itself pins".into(),
        });
    }
    // `tls_*` keys without `tls = true` would be ignored: an error instead.
    if tls_on != Some(true) && tls != TlsConfig::default() {
        let key = TLS_KEYS[1..]
            .iter()
            .copied()
            .find(|k| option_locations.contains_key(*k))
            .unwrap_or("tls");
        errors.push(ConfigError {
            location: at(key),
            key: format!("{section}.{key}"),
            message: format!("`{key}` configures TLS, which is off here: add `tls = true`"),
        });
    }
    PluginConfig {
        name: name.to_string(),
        section: section.to_string(),
        component,
        sha256,
        grants,
        limits,
        tls: (tls_on == Some(true)).then_some(tls),
        options,
        option_locations,
        python_path: Vec::new(),
        location,
    }
}

pub(super) fn read_grants(r: &mut Reader<'_>, pre: &[&str], t: &toml::Table, g: &mut Grants) {
    for (key, value) in t {
        let mut path = pre.to_vec();
        path.push(key);
        match key.as_str() {
            "files" | "statvfs" | "connect" | "listen" => {
                for entry in r.strings(&path, value).unwrap_or_default() {
                    let added = match key.as_str() {
                        "files" => g.allow_files(&entry),
                        "statvfs" => g.allow_statvfs(&entry),
                        "listen" => g.allow_listen(&entry),
                        _ => g.allow_connect(&entry),
                    };
                    if let Err(e) = added {
                        r.err(&path, e);
                    }
                }
            }
            "run_as" => {
                if let Some(u) = r.string(&path, value) {
                    if let Err(e) = g.run_as_user(&u) {
                        r.err(&path, e);
                    }
                }
            }
            "directories" => {
                for d in r.strings(&path, value).unwrap_or_default() {
                    if !d.starts_with('/') {
                        r.err(&path, format!("{d:?} must be an absolute path"));
                    } else {
                        g.directories.push(PathBuf::from(d));
                    }
                }
            }
            "commands" => match value {
                Value::Array(items) => {
                    for item in items {
                        match r.strings(&path, item) {
                            Some(argv) if matches!(item, Value::Array(_)) => {
                                if let Err(e) = g.allow_command(&argv) {
                                    r.err(&path, e);
                                }
                            }
                            Some(_) => r.err(
                                &path,
                                "each command is a list: [\"/usr/bin/prog\", \"arg\", \"*\"]",
                            ),
                            None => {}
                        }
                    }
                }
                other => r.err(
                    &path,
                    format!("expected a list of argv lists, found {}", other.type_str()),
                ),
            },
            _ => r.unknown(&path, GRANT_KEYS),
        }
    }
}

pub(super) fn read_limits(r: &mut Reader<'_>, pre: &[&str], t: &toml::Table, l: &mut Limits) {
    for (key, value) in t {
        let mut path = pre.to_vec();
        path.push(key);
        match key.as_str() {
            "timeout" => {
                if let Some(s) = r.positive(&path, value) {
                    l.timeout = Some(Duration::from_secs_f64(s));
                }
            }
            "command_timeout" => {
                if let Some(s) = r.positive(&path, value) {
                    l.command_timeout = Duration::from_secs_f64(s);
                }
            }
            "socket_timeout" => {
                if let Some(s) = r.positive(&path, value) {
                    l.socket_timeout = Duration::from_secs_f64(s);
                }
            }
            "fuel" => {
                if let Some(n) = r.count(&path, value) {
                    l.fuel = if n == 0 { None } else { Some(n) };
                }
            }
            "disk_mb" => {
                if let Some(n) = r.count(&path, value) {
                    if n == 0 || n > 1 << 20 {
                        r.err(&path, "must be between 1 and 1048576 (MiB)");
                    } else {
                        l.disk = Some(n << 20);
                    }
                }
            }
            "disk_files" => {
                if let Some(n) = r.count(&path, value) {
                    if n == 0 {
                        r.err(&path, "must be at least 1");
                    } else {
                        l.disk_files = Some(n);
                    }
                }
            }
            "memory_mb" => {
                if let Some(n) = r.count(&path, value) {
                    if n == 0 || n > 4096 {
                        r.err(&path, "must be between 1 and 4096");
                    } else {
                        l.memory = (n as usize) << 20;
                    }
                }
            }
            "max_metrics" => {
                if let Some(n) = r.count(&path, value) {
                    l.max_metrics = n.min(u32::MAX as u64) as u32;
                }
            }
            "max_read_bytes" => {
                if let Some(n) = r.count(&path, value) {
                    l.max_read_bytes = n;
                }
            }
            _ => r.unknown(&path, LIMIT_KEYS),
        }
    }
}

pub(super) fn read_collector(
    name: &str,
    layers: &Layers<'_>,
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<CollectorConfig> {
    let mut host = BTreeMap::new();
    let before = errors.len();
    let plugin = read_plugin(
        name,
        &format!("collectors.{name}"),
        layers,
        COLLECTOR_KEYS,
        config_dir,
        errors,
        &mut host,
    );
    let mut c = CollectorConfig {
        plugin,
        enabled: false,
        interval: 300.0,
        path: None,
        path_prefix: "servers".into(),
        path_suffix: String::new(),
        instance_prefix: "instances".into(),
        hostname: None,
        hostname_method: HostnameMethod::Smart,
        whitelist: None,
        blacklist: None,
        byte_unit: None,
        measure_collector_time: false,
        publish_first_rate: false,
        ttl_multiplier: 2,
        tenant: None,
        instance: None,
    };
    each_host_key(layers, host, errors, |r, path, k, v| {
        match k {
            "enabled" => c.enabled = r.boolean(path, v).unwrap_or(false),
            "interval" => c.interval = r.positive(path, v).unwrap_or(c.interval),
            "path" => c.path = r.string(path, v),
            "path_prefix" => c.path_prefix = r.string(path, v).unwrap_or_default(),
            "path_suffix" => c.path_suffix = r.string(path, v).unwrap_or_default(),
            "instance_prefix" => c.instance_prefix = r.string(path, v).unwrap_or_default(),
            "hostname" => c.hostname = r.string(path, v),
            "hostname_method" => {
                if let Some(s) = r.string(path, v) {
                    match HostnameMethod::parse(&s) {
                        Some(m) => c.hostname_method = m,
                        None => r.err(
                            path,
                            format!("unknown method {s:?} (one of: {})", HostnameMethod::NAMES),
                        ),
                    }
                }
            }
            "metrics_whitelist" => c.whitelist = r.regex(path, v).flatten(),
            "metrics_blacklist" => c.blacklist = r.regex(path, v).flatten(),
            "byte_unit" => {
                if let Some(list) = r.strings(path, v) {
                    // Diamond splits a string on whitespace.
                    c.byte_unit = Some(
                        list.iter()
                            .flat_map(|s| s.split_whitespace().map(str::to_string))
                            .collect(),
                    );
                }
            }
            "measure_collector_time" => {
                c.measure_collector_time = r.boolean(path, v).unwrap_or(false)
            }
            "publish_first_rate" => c.publish_first_rate = r.boolean(path, v).unwrap_or(false),
            "ttl_multiplier" => {
                c.ttl_multiplier = r.count(path, v).unwrap_or(2).min(u32::MAX as u64) as u32
            }
            "tenant" => c.tenant = r.string(path, v),
            "instance" => {
                if let Some(s) = r.string(path, v) {
                    match Instancing::parse(&s) {
                        Some(i) => c.instance = Some(i),
                        None => r.err(
                            path,
                            format!(
                                "unknown instance lifetime {s:?} (one of: {})",
                                Instancing::NAMES
                            ),
                        ),
                    }
                }
            }
            "python_path" => {
                let dirs = r.strings(path, v).unwrap_or_default();
                c.plugin.python_path = dirs.iter().map(|d| resolve(config_dir, d)).collect();
            }
            _ => {}
        }
    });
    (errors.len() == before).then_some(c)
}

/// Calls `read` with a reader of the right file, the dotted path, the key
/// and the value, for each host key `read_plugin` collected.
pub(super) fn each_host_key(
    layers: &Layers<'_>,
    host: BTreeMap<String, (usize, Value)>,
    errors: &mut Vec<ConfigError>,
    mut read: impl FnMut(&mut Reader<'_>, &[&str], &str, &Value),
) {
    for (k, (layer, v)) in host {
        let (doc, prefix, _) = &layers[layer];
        let mut path: Vec<&str> = prefix.iter().map(String::as_str).collect();
        path.push(&k);
        read(&mut Reader { doc, errors }, &path, &k, &v);
    }
}

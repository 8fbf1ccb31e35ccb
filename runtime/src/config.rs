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

/// Where something is in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One configuration mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where.
    pub location: Location,
    /// The dotted key, e.g. `collectors.cpu.interval`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.location;
        if l.line == 0 {
            write!(f, "{}: ", l.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", l.file.display(), l.line, l.column)?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

/// Every error found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Per-plugin limits (`[collectors.NAME.limits]`, `[handlers.NAME.limits]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock budget of one run; `None`: Diamond's (what is left of
    /// the interval after the stagger, at least 1 s).
    pub timeout: Option<Duration>,
    /// Fuel (roughly, wasm instructions) per run; `None`: unlimited.
    pub fuel: Option<u64>,
    /// Linear memory cap, bytes.
    pub memory: usize,
    /// Most metrics one run may publish.
    pub max_metrics: u32,
    /// Most bytes one file read, command output or stream returns.
    pub max_read_bytes: u64,
    /// Longest a command may run.
    pub command_timeout: Duration,
    /// Longest a socket connect, send or receive may wait.
    pub socket_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: None,
            fuel: None,
            memory: 64 << 20,
            max_metrics: 100_000,
            max_read_bytes: 8 << 20,
            command_timeout: Duration::from_secs(10),
            socket_timeout: Duration::from_secs(10),
        }
    }
}

/// Which component implements a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentRef {
    /// One shipped inside the binary, by name.
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
}

impl fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentRef::Builtin(n) => write!(f, "built-in `{n}`"),
            ComponentRef::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The raw grants as written, before capabilities are folded in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantsConfig {
    /// `files`.
    pub files: Vec<String>,
    /// `statvfs`.
    pub statvfs: Vec<String>,
    /// `commands`.
    pub commands: Vec<Vec<String>>,
    /// `connect`.
    pub connect: Vec<String>,
    /// `directories`.
    pub directories: Vec<PathBuf>,
    /// `run_as`: the user granted commands run as.
    pub run_as: Option<String>,
}

impl GrantsConfig {
    /// Parses the grants into their typed form (already validated at load).
    pub fn build(&self, section: &str) -> Result<Grants, String> {
        // A grant under a symlinked directory (/var/run -> /run) also
        // grants the same glob under the link's target, since paths are
        // checked after canonicalisation.
        let mut files = self.files.clone();
        for f in &self.files {
            if let Some(v) = grants::canonical_variant(f) {
                files.push(v);
            }
        }
        Ok(Grants {
            section: section.to_string(),
            files: files
                .iter()
                .map(|f| grants::parse_path_glob(f))
                .collect::<Result<_, _>>()?,
            statvfs: self
                .statvfs
                .iter()
                .map(|f| grants::parse_path_glob(f))
                .collect::<Result<_, _>>()?,
            commands: self
                .commands
                .iter()
                .map(|c| grants::parse_command(c))
                .collect::<Result<_, _>>()?,
            connect: self
                .connect
                .iter()
                .flat_map(|c| {
                    // A Unix socket under a symlinked directory, likewise.
                    let variant = c
                        .strip_prefix("unix:")
                        .and_then(grants::canonical_variant)
                        .map(|v| format!("unix:{v}"));
                    std::iter::once(c.clone()).chain(variant)
                })
                .map(|c| grants::parse_socket(&c))
                .collect::<Result<_, _>>()?,
            directories: self.directories.clone(),
            run_as: match &self.run_as {
                Some(u) => Some(grants::lookup_user(u)?),
                None => None,
            },
        })
    }
}

/// Settings shared by collectors and handlers.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Instance name: the `NAME` of `[collectors.NAME]`.
    pub name: String,
    /// `collectors.NAME` or `handlers.NAME`.
    pub section: String,
    /// The component.
    pub component: ComponentRef,
    /// Grants as configured.
    pub grants: GrantsConfig,
    /// Limits.
    pub limits: Limits,
    /// The plugin's own keys, in file order.
    pub options: Vec<(String, ConfigValue)>,
    /// Where each of those keys was written.
    pub option_locations: HashMap<String, Location>,
    /// Where the section starts.
    pub location: Location,
}

/// One collector instance.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Common plugin settings.
    pub plugin: PluginConfig,
    /// `enabled`.
    pub enabled: bool,
    /// `interval`, seconds.
    pub interval: f64,
    /// `path`: the metric path segment (default: the plugin's name).
    pub path: Option<String>,
    /// `path_prefix` (default `servers`).
    pub path_prefix: String,
    /// `path_suffix`.
    pub path_suffix: String,
    /// `instance_prefix` (default `instances`).
    pub instance_prefix: String,
    /// `hostname`: overrides the method.
    pub hostname: Option<String>,
    /// `hostname_method`.
    pub hostname_method: HostnameMethod,
    /// `metrics_whitelist`.
    pub whitelist: Option<MetricFilter>,
    /// `metrics_blacklist`.
    pub blacklist: Option<MetricFilter>,
    /// `byte_unit` as configured (`None`: the plugin's default, else `byte`).
    pub byte_unit: Option<Vec<String>>,
    /// `measure_collector_time`: publish `collector_time_ms`.
    pub measure_collector_time: bool,
    /// `ttl_multiplier`: a metric's ttl is this times the interval.
    pub ttl_multiplier: u32,
    /// `tenant`: the tenant it belongs to.
    pub tenant: Option<String>,
}

/// A compiled `metrics_whitelist` / `metrics_blacklist` regex (compared
/// by its text, so a reload can tell whether it changed).
#[derive(Debug, Clone)]
pub struct MetricFilter(pub Regex);

impl PartialEq for MetricFilter {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// One handler instance.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerConfig {
    /// Common plugin settings.
    pub plugin: PluginConfig,
    /// Most metrics held in the handler's queue; past it the oldest batches
    /// are dropped (counted and logged).
    pub queue_size: usize,
    /// Most metrics handed to one `process` call.
    pub batch_size: usize,
    /// How often `flush` is called, seconds.
    pub flush_interval: f64,
    /// Longest wait between retries of a failed batch, seconds.
    pub retry_max: f64,
    /// `spool_dir`: keep what does not fit in memory, and what is left at
    /// shutdown, in this directory.
    pub spool_dir: Option<PathBuf>,
    /// `spool_max_mb`: bound of the spool, bytes.
    pub spool_max: u64,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `handlers`: the handler instances metrics go to.
    pub handlers: Vec<String>,
    /// `collectors_config_path`: a directory of `NAME.toml` files.
    pub collectors_config_path: Option<PathBuf>,
    /// `plugin_cache_dir`: where compiled components are kept.
    pub plugin_cache_dir: PathBuf,
    /// `host_root`: read /proc and /sys under this directory (for an agent
    /// in a container with the host's filesystem mounted there).
    pub host_root: Option<PathBuf>,
    /// `health_path`: publish every plugin's health counters under
    /// `<path_prefix>.<hostname>.<health_path>` (empty: off).
    pub health_path: String,
    /// `health_interval`: seconds between health publications.
    pub health_interval: f64,
}

/// `[tenants.NAME]`: a group of collectors under quotas and a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    /// The tenant's name.
    pub name: String,
    /// Every metric of the tenant's collectors is published under this
    /// prefix, whatever the guest sends (default `tenants.<name>`).
    pub prefix: String,
    /// Most enabled collectors.
    pub max_collectors: Option<u64>,
    /// Most memory: the sum of its collectors' `memory_mb` caps, bytes.
    pub max_memory: Option<usize>,
    /// Most metrics published per quota window (the rest dropped, counted).
    pub max_metrics: Option<u64>,
    /// Most fuel per quota window (runs past it are skipped, counted).
    pub max_fuel: Option<u64>,
    /// The quota window, seconds.
    pub interval: f64,
    /// Where the section starts.
    pub location: Location,
}

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file.
    pub source: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// Every collector instance (enabled or not), by name.
    pub collectors: Vec<CollectorConfig>,
    /// The handler instances named in `server.handlers`, in that order.
    pub handlers: Vec<HandlerConfig>,
    /// Tenants, by name.
    pub tenants: Vec<TenantConfig>,
    /// `[collectors.default]` alone, as a collector: the path prefix and host
    /// name used for health metrics.
    pub defaults: CollectorConfig,
}

// ---------------------------------------------------------------------------
// Parsing with spans

/// A parsed TOML file with the position of every key.
struct Doc {
    file: PathBuf,
    text: String,
    root: toml::Table,
    spans: HashMap<Vec<String>, usize>,
}

impl Doc {
    fn parse(file: &Path, text: String, errors: &mut Vec<ConfigError>) -> Option<Doc> {
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
        Some(Doc {
            file: file.to_path_buf(),
            text,
            root,
            spans,
        })
    }

    fn at(&self, path: &[&str]) -> Location {
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

fn collect_spans(
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

fn locate(file: &Path, text: &str, offset: usize) -> Location {
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
struct Reader<'a> {
    doc: &'a Doc,
    errors: &'a mut Vec<ConfigError>,
}

impl Reader<'_> {
    fn err(&mut self, path: &[&str], message: impl Into<String>) {
        let location = self.doc.at(path);
        self.errors.push(ConfigError {
            location,
            key: path.join("."),
            message: message.into(),
        });
    }

    fn string(&mut self, path: &[&str], v: &Value) -> Option<String> {
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

    fn boolean(&mut self, path: &[&str], v: &Value) -> Option<bool> {
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

    fn number(&mut self, path: &[&str], v: &Value) -> Option<f64> {
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

    fn positive(&mut self, path: &[&str], v: &Value) -> Option<f64> {
        let n = self.number(path, v)?;
        if n > 0.0 && n.is_finite() {
            Some(n)
        } else {
            self.err(path, format!("must be greater than 0, found {n}"));
            None
        }
    }

    fn count(&mut self, path: &[&str], v: &Value) -> Option<u64> {
        let n = self.number(path, v)?;
        if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 {
            Some(n as u64)
        } else {
            self.err(path, format!("must be a whole number >= 0, found {n}"));
            None
        }
    }

    fn strings(&mut self, path: &[&str], v: &Value) -> Option<Vec<String>> {
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

    fn regex(&mut self, path: &[&str], v: &Value) -> Option<Option<MetricFilter>> {
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

    fn table<'v>(&mut self, path: &[&str], v: &'v Value) -> Option<&'v toml::Table> {
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

    fn unknown(&mut self, path: &[&str], known: &[&str]) {
        let mut list = known.to_vec();
        list.sort_unstable();
        self.err(
            path,
            format!("unknown key (known keys here: {})", list.join(", ")),
        );
    }
}

/// Converts a plugin option to the WIT value type.
fn option_value(r: &mut Reader<'_>, path: &[&str], v: &Value) -> Option<ConfigValue> {
    Some(match v {
        Value::String(s) => ConfigValue::Text(s.clone()),
        Value::Integer(i) => ConfigValue::Integer(*i),
        Value::Float(f) => ConfigValue::Float(*f),
        Value::Boolean(b) => ConfigValue::Boolean(*b),
        Value::Array(_) => ConfigValue::TextList(r.strings(path, v)?),
        other => {
            r.err(path, format!("plugin options must be strings, numbers, booleans or lists of strings, found {}", other.type_str()));
            return None;
        }
    })
}

const SERVER_KEYS: &[&str] = &[
    "handlers",
    "collectors_config_path",
    "plugin_cache_dir",
    "host_root",
    "health_path",
    "health_interval",
];
const TENANT_KEYS: &[&str] = &[
    "prefix",
    "max_collectors",
    "max_memory_mb",
    "max_metrics_per_interval",
    "max_fuel_per_interval",
    "interval",
];
const COLLECTOR_KEYS: &[&str] = &[
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
    "ttl_multiplier",
    "tenant",
    "component",
    "grants",
    "limits",
];
const HANDLER_KEYS: &[&str] = &[
    "component",
    "grants",
    "limits",
    "queue_size",
    "batch_size",
    "flush_interval",
    "retry_max",
    "spool_dir",
    "spool_max_mb",
];
const GRANT_KEYS: &[&str] = &[
    "files",
    "statvfs",
    "commands",
    "connect",
    "directories",
    "run_as",
];
const LIMIT_KEYS: &[&str] = &[
    "timeout",
    "fuel",
    "memory_mb",
    "max_metrics",
    "max_read_bytes",
    "command_timeout",
    "socket_timeout",
];

/// Sections merged in order, later wins: (doc, path to the table).
type Layers<'a> = Vec<(&'a Doc, Vec<String>, &'a toml::Table)>;

/// Reads the keys common to collectors and handlers from merged layers.
/// Returns the plugin settings; `host_keys` receives the remaining known
/// keys for the caller (last layer wins).
fn read_plugin(
    name: &str,
    section: &str,
    layers: &Layers<'_>,
    host_keys: &[&str],
    config_dir: &Path,
    errors: &mut Vec<ConfigError>,
    host_values: &mut BTreeMap<String, (usize, Value)>,
) -> PluginConfig {
    let mut component = ComponentRef::Builtin(name.to_string());
    let mut grants = GrantsConfig::default();
    let mut limits = Limits::default();
    let mut options = Vec::new();
    let mut option_locations = HashMap::new();
    let mut location = None;
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
                        component = if s.ends_with(".wasm") || s.contains('/') {
                            let p = PathBuf::from(&s);
                            ComponentRef::File(if p.is_absolute() {
                                p
                            } else {
                                config_dir.join(p)
                            })
                        } else {
                            ComponentRef::Builtin(s)
                        };
                    }
                }
                "grants" => {
                    if let Some(t) = r.table(&path, value) {
                        read_grants(&mut r, &path, t, &mut grants);
                    }
                }
                "limits" => {
                    if let Some(t) = r.table(&path, value) {
                        read_limits(&mut r, &path, t, &mut limits);
                    }
                }
                k if host_keys.contains(&k) && k != "component" => {
                    host_values.insert(k.to_string(), (layer_idx, value.clone()));
                }
                _ if is_default => {
                    let mut known: Vec<&str> = host_keys.to_vec();
                    known.extend(["grants", "limits"]);
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
    PluginConfig {
        name: name.to_string(),
        section: section.to_string(),
        component,
        grants,
        limits,
        options,
        option_locations,
        location: location.unwrap_or(Location {
            file: PathBuf::new(),
            line: 0,
            column: 0,
        }),
    }
}

fn read_grants(r: &mut Reader<'_>, pre: &[&str], t: &toml::Table, g: &mut GrantsConfig) {
    for (key, value) in t {
        let mut path = pre.to_vec();
        path.push(key);
        match key.as_str() {
            "files" | "statvfs" => {
                if let Some(list) = r.strings(&path, value) {
                    for f in &list {
                        if let Err(e) = grants::parse_path_glob(f) {
                            r.err(&path, e);
                        }
                    }
                    if key == "files" {
                        &mut g.files
                    } else {
                        &mut g.statvfs
                    }
                    .extend(list);
                }
            }
            "connect" => {
                if let Some(list) = r.strings(&path, value) {
                    for c in &list {
                        if let Err(e) = grants::parse_socket(c) {
                            r.err(&path, e);
                        }
                    }
                    g.connect.extend(list);
                }
            }
            "run_as" => {
                if let Some(u) = r.string(&path, value) {
                    match grants::lookup_user(&u) {
                        Ok(_) => g.run_as = Some(u),
                        Err(e) => r.err(&path, e),
                    }
                }
            }
            "directories" => {
                if let Some(list) = r.strings(&path, value) {
                    for d in list {
                        if !d.starts_with('/') {
                            r.err(&path, format!("{d:?} must be an absolute path"));
                        } else {
                            g.directories.push(PathBuf::from(d));
                        }
                    }
                }
            }
            "commands" => match value {
                Value::Array(items) => {
                    for item in items {
                        match r.strings(&path, item) {
                            Some(argv) if matches!(item, Value::Array(_)) => {
                                match grants::parse_command(&argv) {
                                    Ok(_) => g.commands.push(argv),
                                    Err(e) => r.err(&path, e),
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

fn read_limits(r: &mut Reader<'_>, pre: &[&str], t: &toml::Table, l: &mut Limits) {
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

fn read_file(path: &Path, errors: &mut Vec<ConfigError>) -> Option<Doc> {
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

fn read_tenant(r: &mut Reader<'_>, name: &str, t: &toml::Table) -> TenantConfig {
    let mut tc = TenantConfig {
        name: name.to_string(),
        prefix: format!("tenants.{name}"),
        max_collectors: None,
        max_memory: None,
        max_metrics: None,
        max_fuel: None,
        interval: 60.0,
        location: r.doc.at(&["tenants", name]),
    };
    if crate::metric::check_name(name).is_err() || name.contains('.') {
        r.err(
            &["tenants", name],
            "a tenant name must be one metric path segment (letters, digits, _ -)",
        );
    }
    for (k, v) in t {
        let p = ["tenants", name, k.as_str()];
        match k.as_str() {
            "prefix" => {
                if let Some(s) = r.string(&p, v) {
                    if crate::metric::check_name(&s).is_err() {
                        r.err(&p, format!("{s:?} is not a valid metric path"));
                    }
                    tc.prefix = s;
                }
            }
            "max_collectors" => tc.max_collectors = r.count(&p, v),
            "max_memory_mb" => tc.max_memory = r.count(&p, v).map(|n| (n as usize) << 20),
            "max_metrics_per_interval" => tc.max_metrics = r.count(&p, v),
            "max_fuel_per_interval" => tc.max_fuel = r.count(&p, v),
            "interval" => {
                if let Some(n) = r.positive(&p, v) {
                    tc.interval = n;
                }
            }
            _ => r.unknown(&p, TENANT_KEYS),
        }
    }
    tc
}

fn read_collector(
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
        ttl_multiplier: 2,
        tenant: None,
    };
    for (k, (layer, v)) in host {
        let (d, prefix, _) = &layers[layer];
        let mut path: Vec<&str> = prefix.iter().map(String::as_str).collect();
        path.push(&k);
        let mut r = Reader { doc: d, errors };
        match k.as_str() {
            "enabled" => c.enabled = r.boolean(&path, &v).unwrap_or(false),
            "interval" => c.interval = r.positive(&path, &v).unwrap_or(c.interval),
            "path" => c.path = r.string(&path, &v),
            "path_prefix" => c.path_prefix = r.string(&path, &v).unwrap_or_default(),
            "path_suffix" => c.path_suffix = r.string(&path, &v).unwrap_or_default(),
            "instance_prefix" => c.instance_prefix = r.string(&path, &v).unwrap_or_default(),
            "hostname" => c.hostname = r.string(&path, &v),
            "hostname_method" => {
                if let Some(s) = r.string(&path, &v) {
                    match HostnameMethod::parse(&s) {
                        Some(m) => c.hostname_method = m,
                        None => r.err(
                            &path,
                            format!("unknown method {s:?} (one of: {})", HostnameMethod::NAMES),
                        ),
                    }
                }
            }
            "metrics_whitelist" => c.whitelist = r.regex(&path, &v).flatten(),
            "metrics_blacklist" => c.blacklist = r.regex(&path, &v).flatten(),
            "byte_unit" => {
                if let Some(list) = r.strings(&path, &v) {
                    // Diamond splits a string on whitespace.
                    c.byte_unit = Some(
                        list.iter()
                            .flat_map(|s| s.split_whitespace().map(str::to_string))
                            .collect(),
                    );
                }
            }
            "measure_collector_time" => {
                c.measure_collector_time = r.boolean(&path, &v).unwrap_or(false)
            }
            "ttl_multiplier" => {
                c.ttl_multiplier = r.count(&path, &v).unwrap_or(2).min(u32::MAX as u64) as u32
            }
            "tenant" => c.tenant = r.string(&path, &v),
            _ => {}
        }
    }
    (errors.len() == before).then_some(c)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, text).unwrap();
        load(&p).map_err(|mut e| {
            for x in &mut e.0 {
                x.location.file = PathBuf::from("w.toml");
            }
            e
        })
    }

    #[test]
    fn defaults_merge_under_each_collector() {
        let c = load_str("[collectors.default]\ninterval = 10\nenabled = true\n[collectors.cpu]\npercore = false\n[collectors.mem2]\ncomponent = \"memory\"\ninterval = 5\n").unwrap();
        let cpu = c
            .collectors
            .iter()
            .find(|c| c.plugin.name == "cpu")
            .unwrap();
        assert_eq!(cpu.interval, 10.0);
        assert!(cpu.enabled);
        assert_eq!(
            cpu.plugin.options,
            vec![("percore".into(), ConfigValue::Boolean(false))]
        );
        let m = c
            .collectors
            .iter()
            .find(|c| c.plugin.name == "mem2")
            .unwrap();
        assert_eq!(m.plugin.component, ComponentRef::Builtin("memory".into()));
        assert_eq!(m.interval, 5.0);
        assert_eq!(c.handlers[0].plugin.name, "archive");
    }

    #[test]
    fn every_error_at_once_with_line_and_key() {
        let text = "[server]\nhandlerz = []\n\n[collectors.default]\ninterval = -1\nfoo = 1\n\n[collectors.cpu]\nhostname_method = \"bogus\"\nmetrics_whitelist = \"(\"\n[collectors.cpu.limits]\nmemory_mb = 0\n[collectors.cpu.grants]\nfiles = [\"relative\"]\n";
        let errs = load_str(text).unwrap_err();
        let shown: Vec<String> = errs.0.iter().map(|e| e.to_string()).collect();
        let expect = [
            "w.toml:2:1: `server.handlerz`: unknown key",
            "w.toml:5:1: `collectors.default.interval`: must be greater than 0, found -1",
            "w.toml:6:1: `collectors.default.foo`: unknown key",
            "w.toml:9:1: `collectors.cpu.hostname_method`: unknown method \"bogus\"",
            "w.toml:10:1: `collectors.cpu.metrics_whitelist`: invalid regular expression",
            "w.toml:12:1: `collectors.cpu.limits.memory_mb`: must be between 1 and 4096",
            "w.toml:14:1: `collectors.cpu.grants.files`: \"relative\" must be an absolute path",
        ];
        for e in expect {
            assert!(
                shown.iter().any(|s| s.starts_with(e)),
                "missing {e:?} in {shown:#?}"
            );
        }
    }

    #[test]
    fn per_collector_files_override_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("collectors")).unwrap();
        std::fs::write(
            dir.path().join("collectors/cpu.toml"),
            "enabled = true\npercore = false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("collectors/extra.toml"),
            "interval = 5\ncomponent = \"memory\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("collectors/bad.toml"), "interval = \"x\"\n").unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, "[server]\ncollectors_config_path = \"collectors\"\n[collectors.cpu]\npercore = true\ninterval = 7\n").unwrap();
        let errs = load(&p).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert!(
            errs.0[0]
                .to_string()
                .contains("bad.toml:1:1: `interval`: expected a number"),
            "{errs}"
        );
        std::fs::remove_file(dir.path().join("collectors/bad.toml")).unwrap();
        let c = load(&p).unwrap();
        let cpu = c
            .collectors
            .iter()
            .find(|c| c.plugin.name == "cpu")
            .unwrap();
        assert!(cpu.enabled);
        assert_eq!(
            cpu.interval, 7.0,
            "keys the file does not set come from the main file"
        );
        assert_eq!(
            cpu.plugin.options,
            vec![("percore".into(), ConfigValue::Boolean(false))]
        );
        let extra = c
            .collectors
            .iter()
            .find(|c| c.plugin.name == "extra")
            .unwrap();
        assert_eq!(
            (extra.interval, &extra.plugin.component),
            (5.0, &ComponentRef::Builtin("memory".into()))
        );
    }

    #[test]
    fn run_as_names_a_real_user() {
        let c = load_str("[collectors.x.grants]\nrun_as = \"nobody\"\n").unwrap();
        let g = c.collectors[0].plugin.grants.build("collectors.x").unwrap();
        assert!(g.run_as.is_some());
        let errs = load_str("[collectors.x.grants]\nrun_as = \"no-such-user-here\"\n").unwrap_err();
        assert!(
            errs.0[0]
                .to_string()
                .contains("`collectors.x.grants.run_as`: no user \"no-such-user-here\""),
            "{errs}"
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let errs = load_str("[server\nx=1").unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].location.line, 1);
        assert!(errs.0[0].message.starts_with("invalid TOML"));
    }

    #[test]
    fn unused_handler_sections_are_errors() {
        let errs = load_str("[handlers.graphite]\nhost = \"x\"\n").unwrap_err();
        assert!(errs.0[0].message.contains("not used"), "{errs}");
    }
}
